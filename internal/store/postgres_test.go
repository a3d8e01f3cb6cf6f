package store_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tokenwarden/tokenwarden/internal/keyring"
	"github.com/tokenwarden/tokenwarden/internal/store"
	"github.com/tokenwarden/tokenwarden/internal/store/storetest"
)

// The PostgreSQL tests need a server. CI runs them on a machine where one listens on
// 127.0.0.1:5432 with trust authentication (.ci/run starts it if needed); elsewhere,
// point TOKENWARDEN_TEST_POSTGRES_DSN at any database the tests may create schemas in,
// or set TOKENWARDEN_TEST_POSTGRES=skip to skip them deliberately. An unreachable
// server is a failure, not a skip: silently skipping would let CI pass without ever
// testing the store the production deployment uses.
const (
	postgresDSNEnv     = "TOKENWARDEN_TEST_POSTGRES_DSN"
	postgresSkipEnv    = "TOKENWARDEN_TEST_POSTGRES"
	defaultPostgresDSN = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"
)

// testPostgres is a connection to the test database for creating, inspecting and
// dropping the schemas the stores under test live in.
type testPostgres struct {
	dsn  string
	conn *pgx.Conn
	mu   sync.Mutex // pgx.Conn is not safe for concurrent use; subtests run in parallel
}

var (
	pgOnce sync.Once
	pgDSN  string
	pgErr  error
)

// postgresDSN returns the test server's DSN, or fails (or skips, when asked to) the
// test if the server cannot be reached.
func postgresDSN(t *testing.T) string {
	t.Helper()
	if os.Getenv(postgresSkipEnv) == "skip" {
		t.Skipf("%s=skip: PostgreSQL store tests skipped", postgresSkipEnv)
	}
	pgOnce.Do(func() {
		pgDSN = os.Getenv(postgresDSNEnv)
		if pgDSN == "" {
			pgDSN = defaultPostgresDSN
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, pgDSN)
		if err != nil {
			pgErr = err
			return
		}
		defer conn.Close(ctx)
		pgErr = conn.Ping(ctx)
	})
	if pgErr != nil {
		t.Fatalf("cannot reach the test PostgreSQL at %s: %v\n"+
			"These tests need a PostgreSQL server. Start one (on the CI machine: "+
			"pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start), or set %s "+
			"to the DSN of a database where the tests may create and drop schemas "+
			"(default %q), or set %s=skip to skip them explicitly.",
			store.DescribePostgresDSN(pgDSN), pgErr, postgresDSNEnv, defaultPostgresDSN, postgresSkipEnv)
	}
	return pgDSN
}

func newTestPostgres(t *testing.T) *testPostgres {
	t.Helper()
	dsn := postgresDSN(t)
	conn, err := pgx.Connect(t.Context(), dsn)
	if err != nil {
		t.Fatalf("connect to the test PostgreSQL: %v", err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return &testPostgres{dsn: dsn, conn: conn}
}

// newSchema creates an empty schema with a random name, dropped with everything in it
// when t ends, and returns a DSN whose search_path points at it.
func (p *testPostgres) newSchema(t *testing.T) (schema, dsn string) {
	t.Helper()
	b := make([]byte, 8)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	schema = "tw_test_" + hex.EncodeToString(b)
	p.exec(t, `CREATE SCHEMA `+schema)
	t.Cleanup(func() {
		p.mu.Lock()
		defer p.mu.Unlock()
		if _, err := p.conn.Exec(context.Background(), `DROP SCHEMA `+schema+` CASCADE`); err != nil {
			t.Errorf("drop test schema %s: %v", schema, err)
		}
	})
	return schema, withSearchPath(t, p.dsn, schema)
}

// withSearchPath adds search_path to a URL or key=value DSN; pgx sends unknown
// parameters to the server as run-time settings.
func withSearchPath(t *testing.T, dsn, schema string) string {
	t.Helper()
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		u, err := url.Parse(dsn)
		if err != nil {
			t.Fatalf("%s is not a valid URL", postgresDSNEnv)
		}
		q := u.Query()
		q.Set("search_path", schema)
		u.RawQuery = q.Encode()
		return u.String()
	}
	return dsn + " search_path=" + schema
}

func (p *testPostgres) exec(t *testing.T, sql string, args ...any) int64 {
	t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	tag, err := p.conn.Exec(t.Context(), sql, args...)
	if err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return tag.RowsAffected()
}

func openPostgres(t *testing.T, dsn string, ring *keyring.Keyring, now func() time.Time) *store.Postgres {
	t.Helper()
	s, err := store.OpenPostgres(t.Context(), dsn, ring, now)
	if err != nil {
		t.Fatalf("OpenPostgres: %v", err)
	}
	return s
}

// freshPostgres opens a store in a new schema and closes it when t ends.
func freshPostgres(t *testing.T, p *testPostgres, ring *keyring.Keyring) (*store.Postgres, string, string) {
	t.Helper()
	schema, dsn := p.newSchema(t)
	s := openPostgres(t, dsn, ring, nil)
	t.Cleanup(func() { s.Close() })
	return s, schema, dsn
}

// postgresRows is storetest.RowAccess on a test schema, through the test connection.
type postgresRows struct {
	p      *testPostgres
	schema string
}

func (r postgresRows) ReadRow(t *testing.T, id string) storetest.RawRow {
	t.Helper()
	r.p.mu.Lock()
	defer r.p.mu.Unlock()
	var row storetest.RawRow
	if err := r.p.conn.QueryRow(t.Context(), `SELECT version, key_id, secrets FROM `+r.schema+`.tokenwarden_credentials WHERE id = $1`, id).
		Scan(&row.Version, &row.KeyID, &row.Sealed); err != nil {
		t.Fatalf("read row %q: %v", id, err)
	}
	return row
}

func (r postgresRows) WriteRow(t *testing.T, id string, row storetest.RawRow) {
	t.Helper()
	r.p.exec(t, `UPDATE `+r.schema+`.tokenwarden_credentials SET version = $1, key_id = $2, secrets = $3 WHERE id = $4`,
		row.Version, row.KeyID, row.Sealed, id)
}

func TestPostgresContract(t *testing.T) {
	p := newTestPostgres(t)
	storetest.Run(t, storetest.Backend{ServerClock: true, NewDB: func(t *testing.T) storetest.DB {
		// The schema's cleanup is registered before the handles' Close, so it runs after.
		schema, dsn := p.newSchema(t)
		return storetest.DB{
			Open: func(t *testing.T, ring *keyring.Keyring, now func() time.Time) store.Store {
				return openPostgres(t, dsn, ring, now)
			},
			Rows: postgresRows{p: p, schema: schema},
			SQL: func(t *testing.T, query string, args ...any) {
				t.Helper()
				// The contract writes SQLite's placeholders and table names.
				n := 0
				query = regexp.MustCompile(`\?`).ReplaceAllStringFunc(query, func(string) string { n++; return "$" + strconv.Itoa(n) })
				query = regexp.MustCompile(`\b(api_keys|api_key_scopes)\b`).ReplaceAllString(query, schema+".tokenwarden_$1")
				p.exec(t, query, args...)
			},
			AtRest: func(t *testing.T) map[string][]byte { return p.rowsAsText(t, schema) },
		}
	}})
}

// rowsAsText reads every credential row of the schema as the server prints it, every
// column as text (bytea in hex).
func (p *testPostgres) rowsAsText(t *testing.T, schema string) map[string][]byte {
	t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	rows, err := p.conn.Query(t.Context(), `SELECT id, c::text FROM `+schema+`.tokenwarden_credentials c ORDER BY id`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	text := map[string][]byte{}
	for rows.Next() {
		var id, row string
		if err := rows.Scan(&id, &row); err != nil {
			t.Fatal(err)
		}
		text["row "+id] = []byte(row)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return text
}

// Two pools are two workers: separate server sessions that share nothing but the
// database. For every round, attempts spread over both pools race a compare-and-swap
// at the same version and a lease on the same row; exactly one of each must win.
func TestPostgresCrossProcessRaces(t *testing.T) {
	p := newTestPostgres(t)
	ring := newRing(t, "k1", map[string][]byte{"k1": randomKey(t)})
	_, dsn := p.newSchema(t)
	workers := []*store.Postgres{openPostgres(t, dsn, ring, nil), openPostgres(t, dsn, ring, nil)}
	for _, w := range workers {
		t.Cleanup(func() { w.Close() })
	}
	ctx := t.Context()
	const (
		rounds   = 10
		attempts = 16 // per round, alternating between the two workers
	)
	ids := []string{"shared-1", "shared-2"}
	for _, id := range ids {
		if _, err := workers[0].Put(ctx, secretRecord(id)); err != nil {
			t.Fatal(err)
		}
	}

	t.Run("CompareAndSwap", func(t *testing.T) {
		for round := range rounds {
			id := ids[round%len(ids)]
			cur, err := workers[round%2].Get(ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			// One lease for the round: the race is on the version.
			owner := fmt.Sprintf("round-%d", round)
			if _, err := workers[round%2].AcquireLease(ctx, id, owner, time.Minute); err != nil {
				t.Fatal(err)
			}
			var (
				wg    sync.WaitGroup
				start = make(chan struct{})
				errs  = make([]error, attempts)
			)
			for i := range attempts {
				wg.Go(func() {
					rec := secretRecord(id)
					rec.Secrets.AccessToken = fmt.Sprintf("round-%d-attempt-%d", round, i)
					<-start
					_, errs[i] = workers[i%2].CompareAndSwap(ctx, rec, cur.Version, owner)
				})
			}
			close(start)
			wg.Wait()
			winner := -1
			for i, err := range errs {
				switch {
				case err == nil:
					if winner >= 0 {
						t.Fatalf("round %d: attempts %d and %d both won at version %d", round, winner, i, cur.Version)
					}
					winner = i
				case errors.Is(err, store.ErrVersionConflict):
				default:
					t.Fatalf("round %d attempt %d: %v, want nil or ErrVersionConflict", round, i, err)
				}
			}
			if winner < 0 {
				t.Fatalf("round %d: no attempt won", round)
			}
			// Both workers read the winner's write.
			for wi, w := range workers {
				got, err := w.Get(ctx, id)
				if err != nil {
					t.Fatal(err)
				}
				if got.Version != cur.Version+1 || got.Secrets.AccessToken != fmt.Sprintf("round-%d-attempt-%d", round, winner) {
					t.Fatalf("round %d: worker %d reads version %d and not the winner's token (want version %d, attempt %d)",
						round, wi, got.Version, cur.Version+1, winner)
				}
			}
		}
	})

	t.Run("Leases", func(t *testing.T) {
		for round := range rounds {
			id := ids[round%len(ids)]
			var (
				wg    sync.WaitGroup
				start = make(chan struct{})
				errs  = make([]error, attempts)
				prevs = make([]store.Lease, attempts)
			)
			owner := func(i int) string { return fmt.Sprintf("round-%d-worker-%d-attempt-%d", round, i%2, i) }
			for i := range attempts {
				wg.Go(func() {
					<-start
					prevs[i], errs[i] = workers[i%2].AcquireLease(ctx, id, owner(i), time.Minute)
				})
			}
			close(start)
			wg.Wait()
			winner := -1
			for i, err := range errs {
				switch {
				case err == nil:
					if winner >= 0 {
						t.Fatalf("round %d: attempts %d and %d both took the lease", round, winner, i)
					}
					winner = i
				case errors.Is(err, store.ErrLeaseHeld):
				default:
					t.Fatalf("round %d attempt %d: %v, want nil or ErrLeaseHeld", round, i, err)
				}
			}
			if winner < 0 {
				t.Fatalf("round %d: nobody took the lease", round)
			}
			if prevs[winner] != (store.Lease{}) {
				t.Errorf("round %d: the winner's previous lease = %+v, want none", round, prevs[winner])
			}
			for i, err := range errs {
				if err != nil && prevs[i].Owner != owner(winner) {
					t.Errorf("round %d attempt %d: told the lease is held by %q, want the winner %q", round, i, prevs[i].Owner, owner(winner))
				}
			}
			got, err := workers[(winner+1)%2].Get(ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			if got.Lease.Owner != owner(winner) {
				t.Fatalf("round %d: stored lease owner %q, want %q", round, got.Lease.Owner, owner(winner))
			}
			// The other worker cannot release it; the winner can.
			if err := workers[(winner+1)%2].ReleaseLease(ctx, id, owner(winner+1)); err != nil {
				t.Fatal(err)
			}
			if got, _ := workers[0].Get(ctx, id); got.Lease.Owner != owner(winner) {
				t.Fatalf("round %d: a non-owner's release freed the lease", round)
			}
			if err := workers[winner%2].ReleaseLease(ctx, id, owner(winner)); err != nil {
				t.Fatal(err)
			}
		}
	})

	// Expired-lease takeover raced from both workers: still exactly one new holder.
	t.Run("ExpiredLeaseTakeover", func(t *testing.T) {
		const short = 50 * time.Millisecond
		for round := range rounds {
			id := ids[round%len(ids)]
			if _, err := workers[0].AcquireLease(ctx, id, "dead-attempt", short); err != nil {
				t.Fatal(err)
			}
			time.Sleep(2 * short) // expired by the server's clock
			var (
				wg    sync.WaitGroup
				start = make(chan struct{})
				errs  = make([]error, attempts)
				prevs = make([]store.Lease, attempts)
			)
			for i := range attempts {
				wg.Go(func() {
					<-start
					prevs[i], errs[i] = workers[i%2].AcquireLease(ctx, id, fmt.Sprintf("taker-%d", i), time.Minute)
				})
			}
			close(start)
			wg.Wait()
			wins := 0
			for i, err := range errs {
				if err == nil {
					wins++
					if prevs[i].Owner != "dead-attempt" {
						t.Errorf("round %d: the taker's previous lease owner = %q, want dead-attempt", round, prevs[i].Owner)
					}
				} else if !errors.Is(err, store.ErrLeaseHeld) {
					t.Fatalf("round %d attempt %d: %v", round, i, err)
				}
			}
			if wins != 1 {
				t.Fatalf("round %d: %d attempts took over the expired lease, want exactly 1", round, wins)
			}
			if _, err := workers[1].Put(ctx, secretRecord(id)); err != nil { // clears the lease
				t.Fatal(err)
			}
		}
	})
}

// Workers that start together all migrate the same fresh schema; the advisory lock
// makes one apply the migration and the others find it done.
func TestPostgresConcurrentOpen(t *testing.T) {
	p := newTestPostgres(t)
	ring := newRing(t, "k1", map[string][]byte{"k1": randomKey(t)})
	for round := range 3 {
		schema, dsn := p.newSchema(t)
		const n = 6
		var (
			wg    sync.WaitGroup
			start = make(chan struct{})
			errs  = make([]error, n)
		)
		for i := range n {
			wg.Go(func() {
				<-start
				s, err := store.OpenPostgres(t.Context(), dsn, ring, nil)
				if err == nil {
					_, err = s.Put(t.Context(), secretRecord(fmt.Sprintf("c%d", i)))
					s.Close()
				}
				errs[i] = err
			})
		}
		close(start)
		wg.Wait()
		for i, err := range errs {
			if err != nil {
				t.Errorf("round %d: OpenPostgres %d of %d started together: %v", round, i, n, err)
			}
		}
		var versions int
		p.mu.Lock()
		err := p.conn.QueryRow(t.Context(), `SELECT count(*) FROM `+schema+`.tokenwarden_schema_version`).Scan(&versions)
		p.mu.Unlock()
		if err != nil || versions != 4 {
			t.Fatalf("round %d: schema version rows = %d (%v), want 4 (one per migration)", round, versions, err)
		}
	}
}

// List orders by bytes, not by the database's collation: upper case before '_' before
// lower case before non-ASCII.
func TestPostgresListByteOrder(t *testing.T) {
	p := newTestPostgres(t)
	s, _, _ := freshPostgres(t, p, newRing(t, "k1", map[string][]byte{"k1": randomKey(t)}))
	want := []string{"B", "Z", "_x", "a", "a-b", "aa", "ä"}
	for _, i := range []int{6, 3, 0, 5, 2, 4, 1} {
		if _, err := s.Put(t.Context(), secretRecord(want[i])); err != nil {
			t.Fatal(err)
		}
	}
	list, err := s.List(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range list {
		got = append(got, r.ID)
	}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("List order = %q, want byte order %q", got, want)
	}
}

func TestPostgresSchema(t *testing.T) {
	p := newTestPostgres(t)
	ring := newRing(t, "k1", map[string][]byte{"k1": randomKey(t)})
	ctx := t.Context()
	schema, dsn := p.newSchema(t)

	// Reopening applies nothing (that it keeps the data is storetest's
	// ReopenKeepsRecords).
	openPostgres(t, dsn, ring, nil).Close()
	openPostgres(t, dsn, ring, nil).Close()

	var versions []int32
	p.mu.Lock()
	rows, err := p.conn.Query(ctx, `SELECT version FROM `+schema+`.tokenwarden_schema_version ORDER BY version`)
	if err == nil {
		versions, err = pgx.CollectRows(rows, pgx.RowTo[int32])
	}
	p.mu.Unlock()
	if err != nil || !slices.Equal(versions, []int32{1, 2, 3, 4}) {
		t.Fatalf("schema versions = %v (%v), want [1 2 3 4]", versions, err)
	}

	// A database from a newer tokenwarden is refused rather than misread.
	p.exec(t, `INSERT INTO `+schema+`.tokenwarden_schema_version (version) VALUES (99)`)
	if _, err := store.OpenPostgres(ctx, dsn, ring, nil); err == nil || !strings.Contains(err.Error(), "newer") {
		t.Fatalf("OpenPostgres on a newer schema error = %v, want refusal", err)
	}

	// A search_path naming no existing schema is reported as such.
	missing := withSearchPath(t, p.dsn, schema+"_missing")
	if _, err := store.OpenPostgres(ctx, missing, ring, nil); err == nil || !strings.Contains(err.Error(), "search_path") {
		t.Fatalf("OpenPostgres with a missing schema error = %v, want one about search_path", err)
	}
}

// OpenPostgres refuses a missing keyring or DSN; what an open store refuses is
// storetest's InvalidArgumentsRefused.
func TestPostgresRejects(t *testing.T) {
	p := newTestPostgres(t)
	ring := newRing(t, "k1", map[string][]byte{"k1": randomKey(t)})
	ctx := t.Context()
	if _, err := store.OpenPostgres(ctx, p.dsn, nil, nil); err == nil {
		t.Error("OpenPostgres with a nil keyring succeeded")
	}
	if _, err := store.OpenPostgres(ctx, "", ring, nil); err == nil {
		t.Error("OpenPostgres with an empty DSN succeeded")
	}
}

// The DSN is a secret: neither OpenPostgres's errors nor DescribePostgresDSN show its
// password, whether the string does not parse or the server cannot be reached.
func TestPostgresDSNNeverShown(t *testing.T) {
	const pw = "hunter2-SECRET"
	ring := newRing(t, "k1", map[string][]byte{"k1": randomKey(t)})
	for _, dsn := range []string{
		"postgres://tw:" + pw + "@127.0.0.1:1/tokens?sslmode=disable&connect_timeout=2", // nothing listens on port 1
		"host=127.0.0.1 port=1 user=tw password=" + pw + " dbname=tokens sslmode=disable connect_timeout=2",
		"postgres://tw:" + pw + "@127.0.0.1:1/tokens?pool_max_conns=zero", // does not parse
		"postgres://tw:" + pw + "@[::1/tokens",                            // neither does this
		"postgres://tw@127.0.0.1:1/tokens?sslmode=disable&sslpassword=" + pw,
	} {
		desc := store.DescribePostgresDSN(dsn)
		if strings.Contains(desc, pw) {
			t.Errorf("DescribePostgresDSN shows the password: %q", desc)
		}
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		_, err := store.OpenPostgres(ctx, dsn, ring, nil)
		cancel()
		if err == nil {
			t.Errorf("OpenPostgres(%s) succeeded", desc)
			continue
		}
		if strings.Contains(err.Error(), pw) {
			t.Errorf("OpenPostgres error shows the password: %v", err)
		}
		t.Logf("%s: %v", desc, err)
	}
	if got, want := store.DescribePostgresDSN("postgres://tw:"+pw+"@db.example:6432/tokens?sslmode=require"), "postgres db.example:6432/tokens"; got != want {
		t.Errorf("DescribePostgresDSN = %q, want %q", got, want)
	}
}
