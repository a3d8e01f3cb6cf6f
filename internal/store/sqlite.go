package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"time"

	"github.com/tokenwarden/tokenwarden/internal/keyring"

	_ "modernc.org/sqlite" // registers the pure-Go "sqlite" database/sql driver
)

// migrations are applied in order; PRAGMA user_version records how many have run. Only
// ever append: an applied migration must never change, because databases in the field
// already ran it.
var migrations = []string{
	// 1: the credentials table. Times are integer Unix nanoseconds in UTC with 0 meaning
	// "zero time", so that SQL comparisons (lease expiry) are exact and no text time
	// format has to be parsed. STRICT makes SQLite reject values of the wrong type
	// instead of silently storing them.
	`CREATE TABLE credentials (
		id                 TEXT    NOT NULL PRIMARY KEY,
		provider           TEXT    NOT NULL DEFAULT '',
		version            INTEGER NOT NULL CHECK (version >= 1),
		key_id             TEXT    NOT NULL,
		secrets            BLOB    NOT NULL,
		token_type         TEXT    NOT NULL DEFAULT '',
		access_expires_at  INTEGER NOT NULL DEFAULT 0,
		refresh_expires_at INTEGER NOT NULL DEFAULT 0,
		updated_at         INTEGER NOT NULL DEFAULT 0,
		last_used_at       INTEGER NOT NULL DEFAULT 0,
		lease_owner        TEXT    NOT NULL DEFAULT '',
		lease_taken_at     INTEGER NOT NULL DEFAULT 0,
		lease_expires_at   INTEGER NOT NULL DEFAULT 0
	) STRICT`,
	// 2: API keys of the token API. hash is the SHA-256 digest of the key; the key
	// itself is never stored. Names stay taken after revocation, so a name in an old
	// log line names one key only.
	`CREATE TABLE api_keys (
		id           TEXT    NOT NULL PRIMARY KEY,
		name         TEXT    NOT NULL UNIQUE,
		hash         BLOB    NOT NULL,
		created_at   INTEGER NOT NULL,
		revoked_at   INTEGER NOT NULL DEFAULT 0,
		last_used_at INTEGER NOT NULL DEFAULT 0
	) STRICT`,
	// 3: the credentials each API key may read. No foreign key to credentials: a key
	// may be created before its credential is seeded, and outlives a retired one.
	`CREATE TABLE api_key_scopes (
		key_id        TEXT NOT NULL REFERENCES api_keys (id) ON DELETE CASCADE,
		credential_id TEXT NOT NULL,
		PRIMARY KEY (key_id, credential_id)
	) STRICT, WITHOUT ROWID`,
	// 4, 5: each API key row's authenticator and the key ID it is under (see
	// apiKeyAuth in apikeys.go). Rows from before stay empty and are refused until
	// revoked and re-created.
	`ALTER TABLE api_keys ADD COLUMN mac_key_id TEXT NOT NULL DEFAULT ''`,
	`ALTER TABLE api_keys ADD COLUMN mac BLOB NOT NULL DEFAULT x''`,
}

// SQLite is a Store in a single SQLite database file, for a single host. Several
// processes may share the file; SQLite's file locking serialises their writes.
//
// Writes run in BEGIN IMMEDIATE transactions, which take the write lock up front: a
// read-then-write transaction that started as a reader could otherwise fail with
// SQLITE_BUSY when it tries to upgrade, instead of waiting its turn.
type SQLite struct {
	db   *sql.DB
	ring *keyring.Keyring
	now  func() time.Time
}

var _ Store = (*SQLite)(nil)

// OpenSQLite opens (creating if needed) the database at path, brings its schema up to
// date and returns a Store that seals secrets with ring. now supplies UpdatedAt for
// writes; nil means time.Now.
//
// The parent directory is created with mode 0700 if missing and the database file is
// kept at mode 0600: the secrets are encrypted, but the file still reveals which
// credentials exist and when they expire.
func OpenSQLite(ctx context.Context, path string, ring *keyring.Keyring, now func() time.Time) (*SQLite, error) {
	if path == "" {
		return nil, errors.New("sqlite store: empty database path")
	}
	if ring == nil {
		return nil, errors.New("sqlite store: nil keyring")
	}
	if now == nil {
		now = time.Now
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("sqlite store: resolve path %s: %w", path, err)
	}
	if err := prepareFile(abs); err != nil {
		return nil, err
	}

	db, err := sql.Open("sqlite", dsn(abs))
	if err != nil {
		return nil, fmt.Errorf("sqlite store: open %s: %w", abs, err)
	}
	s := &SQLite{db: db, ring: ring, now: now}
	if err := s.init(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("sqlite store: open %s: %w", abs, err)
	}
	return s, nil
}

// dsn builds a file: URI for the modernc driver. Every pooled connection runs these
// settings when it opens, so per-connection pragmas (busy_timeout, foreign_keys,
// synchronous) hold on all of them.
func dsn(absPath string) string {
	q := url.Values{}
	// Wait up to 5 s for another writer instead of failing at once with SQLITE_BUSY.
	q.Add("_pragma", "busy_timeout(5000)")
	q.Add("_pragma", "foreign_keys(1)")
	// FULL, not NORMAL: in WAL mode NORMAL may lose the last commits on power loss, and
	// losing a freshly rotated refresh token would strand the credential (the provider
	// has already invalidated the old one).
	q.Add("_pragma", "synchronous(FULL)")
	// Overwrite deleted content with zeros, so ciphertexts sealed under a retired key do
	// not linger in free pages.
	q.Add("_pragma", "secure_delete(1)")
	q.Set("_journal_mode", "WAL")
	q.Set("_txlock", "immediate")
	// url.URL escapes '?' and '#' in the path, which would otherwise start the query or
	// fragment of the URI; SQLite decodes the escapes.
	u := url.URL{Scheme: "file", Path: filepath.ToSlash(absPath), RawQuery: q.Encode()}
	return u.String()
}

// prepareFile creates the parent directory (0700) and the database file (0600) before
// SQLite touches them, so the file is never briefly readable under a loose umask.
// SQLite creates the -wal and -shm files with the database file's permissions.
func prepareFile(path string) error {
	dir := filepath.Dir(path)
	if _, err := os.Stat(dir); errors.Is(err, os.ErrNotExist) {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return fmt.Errorf("sqlite store: create directory %s: %w", dir, err)
		}
		if err := os.Chmod(dir, 0o700); err != nil {
			return fmt.Errorf("sqlite store: set mode of directory %s: %w", dir, err)
		}
	} else if err != nil {
		return fmt.Errorf("sqlite store: check directory %s: %w", dir, err)
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("sqlite store: create database file %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("sqlite store: create database file %s: %w", path, err)
	}
	// Also tightens a pre-existing file that someone left readable.
	if err := os.Chmod(path, 0o600); err != nil {
		return fmt.Errorf("sqlite store: set mode of database file %s: %w", path, err)
	}
	return nil
}

// init verifies the connection settings and applies pending migrations.
func (s *SQLite) init(ctx context.Context) error {
	var mode string
	if err := s.db.QueryRowContext(ctx, "PRAGMA journal_mode").Scan(&mode); err != nil {
		return fmt.Errorf("read journal mode: %w", err)
	}
	if mode != "wal" {
		return fmt.Errorf("journal mode is %q, want wal (is the database on a filesystem without shared memory support?)", mode)
	}
	return s.migrate(ctx)
}

// migrate applies the migrations the database has not seen yet, all in one transaction
// together with the user_version bump, so a crash leaves the schema either before or
// after, and two processes starting at once do not both apply them.
func (s *SQLite) migrate(ctx context.Context) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("migrate: begin: %w", err)
	}
	defer tx.Rollback()

	var have int
	if err := tx.QueryRowContext(ctx, "PRAGMA user_version").Scan(&have); err != nil {
		return fmt.Errorf("migrate: read schema version: %w", err)
	}
	if have > len(migrations) {
		return fmt.Errorf("migrate: database schema version %d is newer than this program understands (%d); upgrade tokenwarden", have, len(migrations))
	}
	for i := have; i < len(migrations); i++ {
		if _, err := tx.ExecContext(ctx, migrations[i]); err != nil {
			return fmt.Errorf("migrate: apply migration %d: %w", i+1, err)
		}
	}
	if have == len(migrations) {
		return nil // nothing to commit
	}
	// PRAGMA does not take bound parameters; the value is our own integer.
	if _, err := tx.ExecContext(ctx, fmt.Sprintf("PRAGMA user_version = %d", len(migrations))); err != nil {
		return fmt.Errorf("migrate: set schema version: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("migrate: commit: %w", err)
	}
	return nil
}

// Close closes the database. The last connection to close checkpoints the WAL into
// the main file.
func (s *SQLite) Close() error {
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("sqlite store: close: %w", err)
	}
	return nil
}

const selectColumns = `id, provider, version, key_id, secrets, token_type,
	access_expires_at, refresh_expires_at, updated_at, last_used_at,
	lease_owner, lease_taken_at, lease_expires_at`

// Get returns the record with its secrets decrypted.
func (s *SQLite) Get(ctx context.Context, id string) (Record, error) {
	row := s.db.QueryRowContext(ctx, `SELECT `+selectColumns+` FROM credentials WHERE id = ?`, id)
	var (
		rec    Record
		keyID  string
		sealed []byte
		t      rowTimes
	)
	err := row.Scan(&rec.ID, &rec.Provider, &rec.Version, &keyID, &sealed, &rec.TokenType,
		&t.accessExpires, &t.refreshExpires, &t.updated, &t.lastUsed,
		&rec.Lease.Owner, &t.leaseTaken, &t.leaseExpires)
	if errors.Is(err, sql.ErrNoRows) {
		return Record{}, fmt.Errorf("sqlite store: get credential %q: %w", id, ErrNotFound)
	}
	if err != nil {
		return Record{}, fmt.Errorf("sqlite store: get credential %q: %w", id, err)
	}
	t.apply(&rec)
	secrets, err := openSecrets(s.ring, rec.ID, rec.Version, keyID, sealed)
	if err != nil {
		return Record{}, fmt.Errorf("sqlite store: get credential %q (version %d): %w", id, rec.Version, err)
	}
	rec.Secrets = secrets
	return rec, nil
}

// List returns every record's non-secret fields ordered by ID (byte order). It does not
// read or decrypt the secrets column, so it works even without the right key.
func (s *SQLite) List(ctx context.Context) ([]Record, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT id, provider, version, token_type,
		access_expires_at, refresh_expires_at, updated_at, last_used_at,
		lease_owner, lease_taken_at, lease_expires_at
		FROM credentials ORDER BY id`)
	if err != nil {
		return nil, fmt.Errorf("sqlite store: list credentials: %w", err)
	}
	defer rows.Close()
	var out []Record
	for rows.Next() {
		rec, err := scanListed(rows)
		if err != nil {
			return nil, fmt.Errorf("sqlite store: list credentials: %w", err)
		}
		out = append(out, rec)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite store: list credentials: %w", err)
	}
	return out, nil
}

// Put writes rec as the next version, creating the record at version 1 if needed.
func (s *SQLite) Put(ctx context.Context, rec Record) (Record, error) {
	w, err := prepareWrite(rec, s.ring, s.now)
	if err != nil {
		return Record{}, fmt.Errorf("sqlite store: put: %w", err)
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return Record{}, fmt.Errorf("sqlite store: put credential %q: begin: %w", rec.ID, err)
	}
	defer tx.Rollback()

	// The write lock is held (BEGIN IMMEDIATE): the version read here is the one the
	// upsert below writes on top of, and the secrets are sealed for it.
	var current int64
	err = tx.QueryRowContext(ctx, `SELECT version FROM credentials WHERE id = ?`, rec.ID).Scan(&current)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return Record{}, fmt.Errorf("sqlite store: put credential %q: read version: %w", rec.ID, err)
	}
	if err := w.seal(current + 1); err != nil {
		return Record{}, fmt.Errorf("sqlite store: put: %w", err)
	}
	// One upsert decides between insert (version 1) and update (version + 1), and
	// reports the version it wrote.
	var version int64
	err = tx.QueryRowContext(ctx, `INSERT INTO credentials (
			id, provider, version, key_id, secrets, token_type,
			access_expires_at, refresh_expires_at, updated_at, last_used_at,
			lease_owner, lease_taken_at, lease_expires_at)
		VALUES (?, ?, 1, ?, ?, ?, ?, ?, ?, ?, '', 0, 0)
		ON CONFLICT (id) DO UPDATE SET
			provider = excluded.provider,
			version = credentials.version + 1,
			key_id = excluded.key_id,
			secrets = excluded.secrets,
			token_type = excluded.token_type,
			access_expires_at = excluded.access_expires_at,
			refresh_expires_at = excluded.refresh_expires_at,
			updated_at = excluded.updated_at,
			last_used_at = max(credentials.last_used_at, excluded.last_used_at),
			lease_owner = '', lease_taken_at = 0, lease_expires_at = 0
		RETURNING version, last_used_at`,
		w.rec.ID, w.rec.Provider, w.keyID, w.sealed, w.rec.TokenType,
		w.t.accessExpires, w.t.refreshExpires, w.t.updated, w.t.lastUsed,
	).Scan(&version, &w.t.lastUsed)
	if err != nil {
		return Record{}, fmt.Errorf("sqlite store: put credential %q: %w", rec.ID, err)
	}
	if version != current+1 { // cannot happen under the write lock
		return Record{}, fmt.Errorf("sqlite store: put credential %q: wrote version %d, sealed for %d", rec.ID, version, current+1)
	}
	if err := tx.Commit(); err != nil {
		return Record{}, fmt.Errorf("sqlite store: put credential %q: commit: %w", rec.ID, err)
	}
	w.rec.Version = version
	w.rec.LastUsedAt = fromNanos(w.t.lastUsed)
	return w.rec, nil
}

// CompareAndSwap writes rec as expectedVersion+1 if the stored version is
// expectedVersion and leaseOwner holds a live lease. The transaction holds the write
// lock (BEGIN IMMEDIATE) from the check to the write, and the lease is judged by the
// store's clock read under that lock.
func (s *SQLite) CompareAndSwap(ctx context.Context, rec Record, expectedVersion int64, leaseOwner string) (Record, error) {
	if leaseOwner == "" {
		return Record{}, fmt.Errorf("sqlite store: compare-and-swap credential %q: empty lease owner", rec.ID)
	}
	w, err := prepareWrite(rec, s.ring, s.now)
	if err == nil {
		err = w.seal(expectedVersion + 1)
	}
	if err != nil {
		return Record{}, fmt.Errorf("sqlite store: compare-and-swap: %w", err)
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return Record{}, fmt.Errorf("sqlite store: compare-and-swap credential %q: begin: %w", rec.ID, err)
	}
	defer tx.Rollback()

	var (
		found   int64
		owner   string
		expires int64
	)
	err = tx.QueryRowContext(ctx, `SELECT version, lease_owner, lease_expires_at FROM credentials WHERE id = ?`, rec.ID).
		Scan(&found, &owner, &expires)
	if errors.Is(err, sql.ErrNoRows) {
		return Record{}, fmt.Errorf("sqlite store: compare-and-swap credential %q at version %d: %w", rec.ID, expectedVersion, ErrNotFound)
	}
	if err != nil {
		return Record{}, fmt.Errorf("sqlite store: compare-and-swap credential %q: read row: %w", rec.ID, err)
	}
	if found != expectedVersion {
		return Record{}, fmt.Errorf("credential %q: expected version %d, found %d: %w", rec.ID, expectedVersion, found, ErrVersionConflict)
	}
	nowNS, err := toNanos(s.now())
	if err != nil {
		return Record{}, fmt.Errorf("sqlite store: compare-and-swap credential %q: store clock: %w", rec.ID, err)
	}
	if err := checkLeaseHeld(owner, leaseOwner, expires, nowNS); err != nil {
		return Record{}, fmt.Errorf("sqlite store: compare-and-swap credential %q at version %d: %w", rec.ID, expectedVersion, err)
	}
	// last_used_at keeps the later value: a consumer's read recorded (TouchLastUsed)
	// after this writer read the record must not be undone.
	err = tx.QueryRowContext(ctx, `UPDATE credentials SET
			provider = ?, version = version + 1, key_id = ?, secrets = ?, token_type = ?,
			access_expires_at = ?, refresh_expires_at = ?, updated_at = ?, last_used_at = max(last_used_at, ?),
			lease_owner = '', lease_taken_at = 0, lease_expires_at = 0
		WHERE id = ? AND version = ?
		RETURNING last_used_at`,
		w.rec.Provider, w.keyID, w.sealed, w.rec.TokenType,
		w.t.accessExpires, w.t.refreshExpires, w.t.updated, w.t.lastUsed,
		w.rec.ID, expectedVersion).Scan(&w.t.lastUsed)
	if err != nil {
		return Record{}, fmt.Errorf("sqlite store: compare-and-swap credential %q: %w", rec.ID, err)
	}
	if err := tx.Commit(); err != nil {
		return Record{}, fmt.Errorf("sqlite store: compare-and-swap credential %q: commit: %w", rec.ID, err)
	}
	w.rec.Version = expectedVersion + 1
	w.rec.LastUsedAt = fromNanos(w.t.lastUsed)
	return w.rec, nil
}

// AcquireLease takes the refresh lease for owner for ttl if it is free, expired by the
// store's clock, or already owner's. It returns the lease that was there before. The
// store's clock is read under the write lock, so the lease is judged and stamped at
// one instant.
func (s *SQLite) AcquireLease(ctx context.Context, id, owner string, ttl time.Duration) (Lease, error) {
	if err := checkLeaseRequest(owner, ttl); err != nil {
		return Lease{}, fmt.Errorf("sqlite store: acquire lease on credential %q: %w", id, err)
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return Lease{}, fmt.Errorf("sqlite store: acquire lease on credential %q: begin: %w", id, err)
	}
	defer tx.Rollback()

	var (
		prev            Lease
		takenNS, prevNS int64
	)
	err = tx.QueryRowContext(ctx, `SELECT lease_owner, lease_taken_at, lease_expires_at FROM credentials WHERE id = ?`, id).
		Scan(&prev.Owner, &takenNS, &prevNS)
	if errors.Is(err, sql.ErrNoRows) {
		return Lease{}, fmt.Errorf("sqlite store: acquire lease on credential %q: %w", id, ErrNotFound)
	}
	if err != nil {
		return Lease{}, fmt.Errorf("sqlite store: acquire lease on credential %q: %w", id, err)
	}
	prev.TakenAt, prev.ExpiresAt = fromNanos(takenNS), fromNanos(prevNS)

	nowNS, expNS, err := leaseSpan(s.now(), ttl)
	if err != nil {
		return Lease{}, fmt.Errorf("sqlite store: acquire lease on credential %q: %w", id, err)
	}
	// Live means now < ExpiresAt, compared in integer nanoseconds.
	if prev.Owner != "" && prev.Owner != owner && nowNS < prevNS {
		return prev, fmt.Errorf("sqlite store: acquire lease on credential %q for %q: held by %q until %s: %w",
			id, owner, prev.Owner, prev.ExpiresAt.Format(time.RFC3339Nano), ErrLeaseHeld)
	}
	if _, err := tx.ExecContext(ctx, `UPDATE credentials SET lease_owner = ?, lease_taken_at = ?, lease_expires_at = ? WHERE id = ?`,
		owner, nowNS, expNS, id); err != nil {
		return Lease{}, fmt.Errorf("sqlite store: acquire lease on credential %q: %w", id, err)
	}
	if err := tx.Commit(); err != nil {
		return Lease{}, fmt.Errorf("sqlite store: acquire lease on credential %q: commit: %w", id, err)
	}
	return prev, nil
}

// ReleaseLease drops the lease if owner holds it. A lease held by someone else, a free
// lease and a missing record are all left alone without error.
func (s *SQLite) ReleaseLease(ctx context.Context, id, owner string) error {
	if owner == "" {
		return nil // nobody can hold a lease under the empty owner
	}
	if _, err := s.db.ExecContext(ctx, `UPDATE credentials SET lease_owner = '', lease_taken_at = 0, lease_expires_at = 0
		WHERE id = ? AND lease_owner = ?`, id, owner); err != nil {
		return fmt.Errorf("sqlite store: release lease on credential %q for %q: %w", id, owner, err)
	}
	return nil
}

// Delete removes the record. secure_delete overwrites its ciphertext in the file.
func (s *SQLite) Delete(ctx context.Context, id string) error {
	if _, err := s.db.ExecContext(ctx, `DELETE FROM credentials WHERE id = ?`, id); err != nil {
		return fmt.Errorf("sqlite store: delete credential %q: %w", id, err)
	}
	return nil
}

// Reseal re-encrypts the record's secrets under the primary key if they are under
// another one, keeping the version, UpdatedAt and the lease. The transaction holds the
// write lock (BEGIN IMMEDIATE) from the read to the write, so no other writer can
// commit in between; the UPDATE still names the version, key ID and ciphertext it read.
func (s *SQLite) Reseal(ctx context.Context, id string) (bool, error) {
	changed, err := resealLoop(func() (bool, error) { return s.resealOnce(ctx, id) })
	if err != nil {
		return false, fmt.Errorf("sqlite store: reseal credential %q: %w", id, err)
	}
	return changed, nil
}

func (s *SQLite) resealOnce(ctx context.Context, id string) (bool, error) {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return false, fmt.Errorf("begin: %w", err)
	}
	defer tx.Rollback()

	var (
		version int64
		keyID   string
		sealed  []byte
	)
	err = tx.QueryRowContext(ctx, `SELECT version, key_id, secrets FROM credentials WHERE id = ?`, id).
		Scan(&version, &keyID, &sealed)
	if errors.Is(err, sql.ErrNoRows) {
		return false, ErrNotFound
	}
	if err != nil {
		return false, err
	}
	row, ok, err := resealSecrets(s.ring, id, version, keyID, sealed)
	if err != nil || !ok {
		return false, err
	}
	res, err := tx.ExecContext(ctx, `UPDATE credentials SET key_id = ?, secrets = ?
		WHERE id = ? AND version = ? AND key_id = ? AND secrets = ?`,
		row.keyID, row.sealed, id, version, keyID, sealed)
	if err != nil {
		return false, err
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, err
	}
	if n != 1 {
		return false, errResealRaced
	}
	if err := tx.Commit(); err != nil {
		return false, fmt.Errorf("commit: %w", err)
	}
	return true, nil
}

// KeyIDs counts the records under each key ID.
func (s *SQLite) KeyIDs(ctx context.Context) (map[string]int, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT key_id, count(*) FROM credentials GROUP BY key_id`)
	if err != nil {
		return nil, fmt.Errorf("sqlite store: count records per key: %w", err)
	}
	defer rows.Close()
	counts, err := scanKeyCounts(rows)
	if err != nil {
		return nil, fmt.Errorf("sqlite store: count records per key: %w", err)
	}
	return counts, nil
}
