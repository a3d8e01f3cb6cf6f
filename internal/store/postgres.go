package store

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tokenwarden/tokenwarden/internal/keyring"
)

// postgresMigrations are applied in order; tokenwarden_schema_version records which
// have run, one row per migration. Only ever append: an applied migration must never
// change, because databases in the field already ran it.
var postgresMigrations = []string{
	// 1: the credentials table, the same columns as SQLite's. Times are int8 Unix
	// nanoseconds in UTC with 0 meaning "zero time" (timestamptz holds only
	// microseconds, and the store promises exact round trips); lease expiry is decided
	// on exact integers. The ID collates "C" so that the primary key and List order by
	// bytes, whatever the database's default collation.
	`CREATE TABLE tokenwarden_credentials (
		id                 text   COLLATE "C" NOT NULL PRIMARY KEY,
		provider           text   NOT NULL DEFAULT '',
		version            int8   NOT NULL CHECK (version >= 1),
		key_id             text   NOT NULL,
		secrets            bytea  NOT NULL,
		token_type         text   NOT NULL DEFAULT '',
		access_expires_at  int8   NOT NULL DEFAULT 0,
		refresh_expires_at int8   NOT NULL DEFAULT 0,
		updated_at         int8   NOT NULL DEFAULT 0,
		last_used_at       int8   NOT NULL DEFAULT 0,
		lease_owner        text   NOT NULL DEFAULT '',
		lease_taken_at     int8   NOT NULL DEFAULT 0,
		lease_expires_at   int8   NOT NULL DEFAULT 0
	)`,
	// 2: API keys of the token API, as in SQLite. hash is the SHA-256 digest of the
	// key; the key itself is never stored.
	`CREATE TABLE tokenwarden_api_keys (
		id           text  COLLATE "C" NOT NULL PRIMARY KEY,
		name         text  COLLATE "C" NOT NULL UNIQUE,
		hash         bytea NOT NULL,
		created_at   int8  NOT NULL,
		revoked_at   int8  NOT NULL DEFAULT 0,
		last_used_at int8  NOT NULL DEFAULT 0
	)`,
	// 3: the credentials each API key may read (no foreign key to the credentials: a
	// key may be created before its credential is seeded).
	`CREATE TABLE tokenwarden_api_key_scopes (
		key_id        text COLLATE "C" NOT NULL REFERENCES tokenwarden_api_keys (id) ON DELETE CASCADE,
		credential_id text COLLATE "C" NOT NULL,
		PRIMARY KEY (key_id, credential_id)
	)`,
	// 4: each API key row's authenticator and the key ID it is under (see apiKeyAuth
	// in apikeys.go). Rows from before stay empty and are refused until revoked and
	// re-created.
	`ALTER TABLE tokenwarden_api_keys
		ADD COLUMN mac_key_id text  NOT NULL DEFAULT '',
		ADD COLUMN mac        bytea NOT NULL DEFAULT ''::bytea`,
}

// postgresMigrationLock is the first key of the transaction-scoped advisory lock taken
// while migrating; the second is a hash of the schema, so installations in different
// schemas of one database do not wait for each other. ("tw" in ASCII.)
const postgresMigrationLock = 0x7477

// Pool limits used unless the DSN sets them (pool_max_conns=..., etc.). A worker runs
// a handful of activities at once, each holding a connection for one short statement
// or transaction; several workers share the server's max_connections.
const (
	postgresMaxConns        = 8
	postgresMaxConnLifetime = 30 * time.Minute
	postgresMaxConnIdleTime = 5 * time.Minute
	postgresConnectTimeout  = 10 * time.Second
)

// Postgres is a Store in a PostgreSQL database, shared by any number of worker
// processes. Every decision that must be atomic across processes is taken by the
// server: Put is one upsert, ReleaseLease one conditional UPDATE, and CompareAndSwap and
// AcquireLease lock the row (SELECT ... FOR UPDATE) in a READ COMMITTED transaction
// before deciding, so concurrent attempts on one credential queue on the row lock and
// each sees the previous one's committed result.
type Postgres struct {
	pool *pgxpool.Pool
	ring *keyring.Keyring
	now  func() time.Time
}

var _ Store = (*Postgres)(nil)

// OpenPostgres connects to the database at dsn (a postgres:// URL or key=value
// connection string, as libpq takes them; pgxpool's pool_* settings are honoured), brings
// the schema up to date and returns a Store that seals secrets with ring. now supplies
// UpdatedAt for writes; nil means time.Now.
//
// The tables are created in the first existing schema of the connection's search_path
// (set it in the DSN, e.g. ?search_path=tokenwarden, to keep them apart). The DSN may
// hold a password: no error from OpenPostgres quotes it (see DescribePostgresDSN for
// what may be logged).
func OpenPostgres(ctx context.Context, dsn string, ring *keyring.Keyring, now func() time.Time) (*Postgres, error) {
	if dsn == "" {
		return nil, errors.New("postgres store: empty connection string")
	}
	if ring == nil {
		return nil, errors.New("postgres store: nil keyring")
	}
	if now == nil {
		now = time.Now
	}
	cfg, err := postgresPoolConfig(dsn)
	if err != nil {
		return nil, err
	}
	where := describePostgres(cfg.ConnConfig)
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("postgres store: open %s: %w", where, err)
	}
	// The pool connects lazily; connect now so that an unreachable server or a refused
	// login is reported as such, at start-up.
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("postgres store: connect to %s: %w", where, err)
	}
	s := &Postgres{pool: pool, ring: ring, now: now}
	if err := s.migrate(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("postgres store: open %s: %w", where, err)
	}
	return s, nil
}

// postgresPoolConfig parses dsn and fills in the pool limits it leaves unset.
func postgresPoolConfig(dsn string) (*pgxpool.Config, error) {
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		// pgx redacts passwords on a best-effort basis only, and the underlying
		// url.Parse error quotes the whole string: show none of it.
		return nil, errors.New("postgres store: the connection string is not a valid PostgreSQL URL or key=value string (it is not shown: it may hold a password)")
	}
	has := func(key string) bool { return dsnHasKey(dsn, key) }
	if !has("pool_max_conns") {
		cfg.MaxConns = postgresMaxConns
	}
	if !has("pool_max_conn_lifetime") {
		cfg.MaxConnLifetime = postgresMaxConnLifetime
	}
	if !has("pool_max_conn_idle_time") {
		cfg.MaxConnIdleTime = postgresMaxConnIdleTime
	}
	if !has("connect_timeout") && cfg.ConnConfig.ConnectTimeout == 0 {
		cfg.ConnConfig.ConnectTimeout = postgresConnectTimeout
	}
	if _, ok := cfg.ConnConfig.RuntimeParams["application_name"]; !ok {
		cfg.ConnConfig.RuntimeParams["application_name"] = "tokenwarden"
	}
	return cfg, nil
}

// dsnHasKey reports whether the connection string sets key, as a URL query parameter
// or a key=value pair. pgxpool removes its pool_* keys from the parsed config, so the
// string is the only place to tell "set to the default" from "not set".
func dsnHasKey(dsn, key string) bool {
	for _, sep := range []string{"?", "&", " ", "\t", "\n"} {
		if strings.Contains(dsn, sep+key+"=") || strings.Contains(dsn, sep+key+" =") {
			return true
		}
	}
	return strings.HasPrefix(dsn, key+"=") || strings.HasPrefix(dsn, key+" =")
}

// DescribePostgresDSN names the server and database of dsn for logs: "host:port/db" (or
// several hosts, comma-separated), never the user's password or any other parameter. A
// DSN that does not parse is described as such, without quoting it.
func DescribePostgresDSN(dsn string) string {
	cfg, err := pgconn.ParseConfig(dsn)
	if err != nil {
		return "(unparsable PostgreSQL connection string)"
	}
	return describePostgres(&pgx.ConnConfig{Config: *cfg})
}

func describePostgres(cfg *pgx.ConnConfig) string {
	var hosts []string
	add := func(host string, port uint16) {
		h := host // a Unix socket directory
		if !strings.HasPrefix(host, "/") {
			h = net.JoinHostPort(host, strconv.Itoa(int(port)))
		}
		if !slices.Contains(hosts, h) { // sslmode=prefer adds a plain-text fallback to each host
			hosts = append(hosts, h)
		}
	}
	add(cfg.Host, cfg.Port)
	for _, fb := range cfg.Fallbacks {
		add(fb.Host, fb.Port)
	}
	return fmt.Sprintf("postgres %s/%s", strings.Join(hosts, ","), cfg.Database)
}

// migrate applies the migrations the database has not seen yet in one transaction,
// together with their rows in the version table. A transaction-scoped advisory lock
// serialises workers that start at once: the second waits, then finds nothing to do.
// (CREATE TABLE IF NOT EXISTS alone is not enough: two concurrent creators can both
// pass the check, and one then fails on the catalog's unique index.)
func (s *Postgres) migrate(ctx context.Context) error {
	// The version check reads what the lock holder committed, which a snapshot taken
	// before the lock would not show; READ COMMITTED takes one per statement.
	tx, err := s.pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.ReadCommitted})
	if err != nil {
		return fmt.Errorf("migrate: begin: %w", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx))

	var schema *string
	if err := tx.QueryRow(ctx, `SELECT current_schema()`).Scan(&schema); err != nil {
		return fmt.Errorf("migrate: read current schema: %w", err)
	}
	if schema == nil {
		return errors.New("migrate: no schema of the search_path exists; create it or fix search_path in the connection string")
	}
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1, hashtext(current_schema()))`, postgresMigrationLock); err != nil {
		return fmt.Errorf("migrate: take the migration lock: %w", err)
	}
	if _, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS tokenwarden_schema_version (
			version    int4        NOT NULL PRIMARY KEY,
			applied_at timestamptz NOT NULL DEFAULT now()
		)`); err != nil {
		return fmt.Errorf("migrate: create version table in schema %q: %w", *schema, err)
	}
	var have int
	if err := tx.QueryRow(ctx, `SELECT coalesce(max(version), 0) FROM tokenwarden_schema_version`).Scan(&have); err != nil {
		return fmt.Errorf("migrate: read schema version: %w", err)
	}
	if have > len(postgresMigrations) {
		return fmt.Errorf("migrate: database schema version %d is newer than this program understands (%d); upgrade tokenwarden", have, len(postgresMigrations))
	}
	if have == len(postgresMigrations) {
		return nil // nothing to commit; the deferred rollback releases the lock
	}
	for i := have; i < len(postgresMigrations); i++ {
		if _, err := tx.Exec(ctx, postgresMigrations[i]); err != nil {
			return fmt.Errorf("migrate: apply migration %d in schema %q: %w", i+1, *schema, err)
		}
		if _, err := tx.Exec(ctx, `INSERT INTO tokenwarden_schema_version (version) VALUES ($1)`, i+1); err != nil {
			return fmt.Errorf("migrate: record migration %d: %w", i+1, err)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("migrate: commit: %w", err)
	}
	return nil
}

// Close closes every pooled connection, waiting for those in use to be returned.
func (s *Postgres) Close() error {
	s.pool.Close()
	return nil
}

// writeTx runs fn in a READ COMMITTED transaction, whatever the server's
// default_transaction_isolation: under REPEATABLE READ or SERIALIZABLE a row lock
// taken after a concurrent commit fails with a serialization error instead of seeing
// the new row, and the store's callers would see spurious failures.
func (s *Postgres) writeTx(ctx context.Context, fn func(tx pgx.Tx) error) error {
	tx, err := s.pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.ReadCommitted})
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	if err := fn(tx); err != nil {
		return err
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

// Get returns the record with its secrets decrypted.
func (s *Postgres) Get(ctx context.Context, id string) (Record, error) {
	var (
		rec    Record
		keyID  string
		sealed []byte
		t      rowTimes
	)
	err := s.pool.QueryRow(ctx, `SELECT `+selectColumns+` FROM tokenwarden_credentials WHERE id = $1`, id).
		Scan(&rec.ID, &rec.Provider, &rec.Version, &keyID, &sealed, &rec.TokenType,
			&t.accessExpires, &t.refreshExpires, &t.updated, &t.lastUsed,
			&rec.Lease.Owner, &t.leaseTaken, &t.leaseExpires)
	if errors.Is(err, pgx.ErrNoRows) {
		return Record{}, fmt.Errorf("postgres store: get credential %q: %w", id, ErrNotFound)
	}
	if err != nil {
		return Record{}, fmt.Errorf("postgres store: get credential %q: %w", id, err)
	}
	t.apply(&rec)
	secrets, err := openSecrets(s.ring, rec.ID, rec.Version, keyID, sealed)
	if err != nil {
		return Record{}, fmt.Errorf("postgres store: get credential %q (version %d): %w", id, rec.Version, err)
	}
	rec.Secrets = secrets
	return rec, nil
}

// List returns every record's non-secret fields ordered by ID in byte order. It does
// not read or decrypt the secrets column, so it works even without the right key.
func (s *Postgres) List(ctx context.Context) ([]Record, error) {
	rows, err := s.pool.Query(ctx, `SELECT id, provider, version, token_type,
		access_expires_at, refresh_expires_at, updated_at, last_used_at,
		lease_owner, lease_taken_at, lease_expires_at
		FROM tokenwarden_credentials ORDER BY id COLLATE "C"`)
	if err != nil {
		return nil, fmt.Errorf("postgres store: list credentials: %w", err)
	}
	defer rows.Close()
	var out []Record
	for rows.Next() {
		rec, err := scanListed(rows)
		if err != nil {
			return nil, fmt.Errorf("postgres store: list credentials: %w", err)
		}
		out = append(out, rec)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("postgres store: list credentials: %w", err)
	}
	return out, nil
}

// Put writes rec as the next version, creating the record at version 1 if needed. The
// secrets are sealed for the version they are written at, so Put first locks the row
// and reads its version, then upserts on the condition that it is still that one:
// concurrent Puts of an existing ID queue on the row lock, and of the concurrent Puts of
// a new ID one inserts while the others find the row there (their condition fails) and
// try again on top of it.
func (s *Postgres) Put(ctx context.Context, rec Record) (Record, error) {
	w, err := prepareWrite(rec, s.ring, s.now)
	if err != nil {
		return Record{}, fmt.Errorf("postgres store: put: %w", err)
	}
	var version int64
	for range putAttempts {
		version = 0
		err = s.writeTx(ctx, func(tx pgx.Tx) error {
			var current int64
			err := tx.QueryRow(ctx, `SELECT version FROM tokenwarden_credentials WHERE id = $1 FOR UPDATE`, rec.ID).Scan(&current)
			if err != nil && !errors.Is(err, pgx.ErrNoRows) {
				return fmt.Errorf("lock row: %w", err)
			}
			if err := w.seal(current + 1); err != nil {
				return err
			}
			err = tx.QueryRow(ctx, `INSERT INTO tokenwarden_credentials AS c (
					id, provider, version, key_id, secrets, token_type,
					access_expires_at, refresh_expires_at, updated_at, last_used_at,
					lease_owner, lease_taken_at, lease_expires_at)
				VALUES ($1, $2, 1, $3, $4, $5, $6, $7, $8, $9, '', 0, 0)
				ON CONFLICT (id) DO UPDATE SET
					provider = excluded.provider,
					version = c.version + 1,
					key_id = excluded.key_id,
					secrets = excluded.secrets,
					token_type = excluded.token_type,
					access_expires_at = excluded.access_expires_at,
					refresh_expires_at = excluded.refresh_expires_at,
					updated_at = excluded.updated_at,
					last_used_at = greatest(c.last_used_at, excluded.last_used_at),
					lease_owner = '', lease_taken_at = 0, lease_expires_at = 0
				WHERE c.version = $10
				RETURNING version, last_used_at`,
				w.rec.ID, w.rec.Provider, w.keyID, w.sealed, w.rec.TokenType,
				w.t.accessExpires, w.t.refreshExpires, w.t.updated, w.t.lastUsed, current,
			).Scan(&version, &w.t.lastUsed)
			if errors.Is(err, pgx.ErrNoRows) {
				return errPutRaced // another Put created the row since the read
			}
			return err
		})
		if !errors.Is(err, errPutRaced) {
			break
		}
	}
	if err != nil {
		return Record{}, fmt.Errorf("postgres store: put credential %q: %w", rec.ID, err)
	}
	w.rec.Version = version
	w.rec.LastUsedAt = fromNanos(w.t.lastUsed)
	return w.rec, nil
}

// putAttempts bounds how often Put starts over after another Put created the row
// between its read and its write; the row lock decides every later round.
const putAttempts = 5

var errPutRaced = errors.New("record created by a concurrent write")

// postgresNowNS is the server's clock in the store's time encoding (Unix nanoseconds,
// exact to the microsecond the server keeps). clock_timestamp(), not now(): now() is
// the start of the transaction, which may be long before the row lock was granted.
// extract returns numeric, so the product is exact.
const postgresNowNS = `(extract(epoch FROM clock_timestamp()) * 1000000)::int8 * 1000`

// CompareAndSwap writes rec as expectedVersion+1 if the stored version is
// expectedVersion and leaseOwner holds a lease that is live by the server's clock. The
// row is locked first, so the version and lease compared are the latest committed ones
// and no other writer can slip in between the check and the write.
func (s *Postgres) CompareAndSwap(ctx context.Context, rec Record, expectedVersion int64, leaseOwner string) (Record, error) {
	if leaseOwner == "" {
		return Record{}, fmt.Errorf("postgres store: compare-and-swap credential %q: empty lease owner", rec.ID)
	}
	w, err := prepareWrite(rec, s.ring, s.now)
	if err == nil {
		err = w.seal(expectedVersion + 1)
	}
	if err != nil {
		return Record{}, fmt.Errorf("postgres store: compare-and-swap: %w", err)
	}
	err = s.writeTx(ctx, func(tx pgx.Tx) error {
		var (
			found          int64
			owner          string
			expires, nowNS int64
		)
		err := tx.QueryRow(ctx, `SELECT version, lease_owner, lease_expires_at, `+postgresNowNS+`
			FROM tokenwarden_credentials WHERE id = $1 FOR UPDATE`, rec.ID).Scan(&found, &owner, &expires, &nowNS)
		if errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("at version %d: %w", expectedVersion, ErrNotFound)
		}
		if err != nil {
			return fmt.Errorf("lock row: %w", err)
		}
		if found != expectedVersion {
			return fmt.Errorf("expected version %d, found %d: %w", expectedVersion, found, ErrVersionConflict)
		}
		if err := checkLeaseHeld(owner, leaseOwner, expires, nowNS); err != nil {
			return fmt.Errorf("at version %d: %w", expectedVersion, err)
		}
		// last_used_at keeps the later value: a consumer's read recorded
		// (TouchLastUsed) after this writer read the record must not be undone.
		err = tx.QueryRow(ctx, `UPDATE tokenwarden_credentials SET
				provider = $1, version = version + 1, key_id = $2, secrets = $3, token_type = $4,
				access_expires_at = $5, refresh_expires_at = $6, updated_at = $7, last_used_at = greatest(last_used_at, $8),
				lease_owner = '', lease_taken_at = 0, lease_expires_at = 0
			WHERE id = $9 AND version = $10
			RETURNING last_used_at`,
			w.rec.Provider, w.keyID, w.sealed, w.rec.TokenType,
			w.t.accessExpires, w.t.refreshExpires, w.t.updated, w.t.lastUsed,
			w.rec.ID, expectedVersion).Scan(&w.t.lastUsed)
		if errors.Is(err, pgx.ErrNoRows) { // cannot happen while we hold the row lock
			return errors.New("updated no row under the row lock")
		}
		return err
	})
	if err != nil {
		return Record{}, fmt.Errorf("postgres store: compare-and-swap credential %q: %w", rec.ID, err)
	}
	w.rec.Version = expectedVersion + 1
	w.rec.LastUsedAt = fromNanos(w.t.lastUsed)
	return w.rec, nil
}

// AcquireLease takes the refresh lease for owner for ttl if it is free, expired by the
// server's clock, or already owner's. It returns the lease that was there before. The
// row is locked while deciding, so of several processes racing for a free lease exactly
// one takes it and the others see it held; the server's clock, read after the lock is
// granted, both judges the old lease and stamps the new one, so workers whose clocks
// disagree still agree on who holds it.
func (s *Postgres) AcquireLease(ctx context.Context, id, owner string, ttl time.Duration) (Lease, error) {
	if err := checkLeaseRequest(owner, ttl); err != nil {
		return Lease{}, fmt.Errorf("postgres store: acquire lease on credential %q: %w", id, err)
	}
	var prev Lease
	err := s.writeTx(ctx, func(tx pgx.Tx) error {
		var takenNS, prevNS, nowNS int64
		err := tx.QueryRow(ctx, `SELECT lease_owner, lease_taken_at, lease_expires_at, `+postgresNowNS+`
			FROM tokenwarden_credentials WHERE id = $1 FOR UPDATE`, id).
			Scan(&prev.Owner, &takenNS, &prevNS, &nowNS)
		if errors.Is(err, pgx.ErrNoRows) {
			return ErrNotFound
		}
		if err != nil {
			return err
		}
		prev.TakenAt, prev.ExpiresAt = fromNanos(takenNS), fromNanos(prevNS)
		// Live means now < ExpiresAt, compared in integer nanoseconds.
		if prev.Owner != "" && prev.Owner != owner && nowNS < prevNS {
			return fmt.Errorf("for %q: held by %q until %s: %w",
				owner, prev.Owner, prev.ExpiresAt.Format(time.RFC3339Nano), ErrLeaseHeld)
		}
		_, expNS, err := leaseSpan(fromNanos(nowNS), ttl)
		if err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `UPDATE tokenwarden_credentials
			SET lease_owner = $1, lease_taken_at = $2, lease_expires_at = $3 WHERE id = $4`,
			owner, nowNS, expNS, id)
		return err
	})
	if errors.Is(err, ErrLeaseHeld) {
		return prev, fmt.Errorf("postgres store: acquire lease on credential %q %w", id, err)
	}
	if err != nil {
		return Lease{}, fmt.Errorf("postgres store: acquire lease on credential %q: %w", id, err)
	}
	return prev, nil
}

// ReleaseLease drops the lease if owner holds it. A lease held by someone else, a free
// lease and a missing record are all left alone without error.
func (s *Postgres) ReleaseLease(ctx context.Context, id, owner string) error {
	if owner == "" {
		return nil // nobody can hold a lease under the empty owner
	}
	if _, err := s.pool.Exec(ctx, `UPDATE tokenwarden_credentials
		SET lease_owner = '', lease_taken_at = 0, lease_expires_at = 0
		WHERE id = $1 AND lease_owner = $2`, id, owner); err != nil {
		return fmt.Errorf("postgres store: release lease on credential %q for %q: %w", id, owner, err)
	}
	return nil
}

// Delete removes the record. The old row version stays in the table file (sealed) until
// VACUUM reclaims it, like every earlier version of every row.
func (s *Postgres) Delete(ctx context.Context, id string) error {
	if _, err := s.pool.Exec(ctx, `DELETE FROM tokenwarden_credentials WHERE id = $1`, id); err != nil {
		return fmt.Errorf("postgres store: delete credential %q: %w", id, err)
	}
	return nil
}

// Reseal re-encrypts the record's secrets under the primary key if they are under
// another one, keeping the version, UpdatedAt and the lease. The row is locked (SELECT
// ... FOR UPDATE) from the read to the write, so a concurrent CompareAndSwap either
// commits first (and Reseal reseals what it wrote, or finds it already under the
// primary key) or waits and then commits on top at the version it expected; the UPDATE
// still names the version, key ID and ciphertext it read.
func (s *Postgres) Reseal(ctx context.Context, id string) (bool, error) {
	changed, err := resealLoop(func() (bool, error) {
		var changed bool
		err := s.writeTx(ctx, func(tx pgx.Tx) error {
			var (
				version int64
				keyID   string
				sealed  []byte
			)
			err := tx.QueryRow(ctx, `SELECT version, key_id, secrets FROM tokenwarden_credentials WHERE id = $1 FOR UPDATE`, id).
				Scan(&version, &keyID, &sealed)
			if errors.Is(err, pgx.ErrNoRows) {
				return ErrNotFound
			}
			if err != nil {
				return err
			}
			row, ok, err := resealSecrets(s.ring, id, version, keyID, sealed)
			if err != nil || !ok {
				return err
			}
			tag, err := tx.Exec(ctx, `UPDATE tokenwarden_credentials SET key_id = $1, secrets = $2
				WHERE id = $3 AND version = $4 AND key_id = $5 AND secrets = $6`,
				row.keyID, row.sealed, id, version, keyID, sealed)
			if err != nil {
				return err
			}
			if tag.RowsAffected() != 1 {
				return errResealRaced
			}
			changed = true
			return nil
		})
		return changed, err
	})
	if err != nil {
		return false, fmt.Errorf("postgres store: reseal credential %q: %w", id, err)
	}
	return changed, nil
}

// KeyIDs counts the records under each key ID.
func (s *Postgres) KeyIDs(ctx context.Context) (map[string]int, error) {
	rows, err := s.pool.Query(ctx, `SELECT key_id, count(*) FROM tokenwarden_credentials GROUP BY key_id`)
	if err != nil {
		return nil, fmt.Errorf("postgres store: count records per key: %w", err)
	}
	defer rows.Close()
	counts, err := scanKeyCounts(rows)
	if err != nil {
		return nil, fmt.Errorf("postgres store: count records per key: %w", err)
	}
	return counts, nil
}
