// Package storetest is the behavioural contract of store.Store, written once and run
// against every implementation.
//
// An implementation's test calls Run with its Backend: how to make a fresh, empty
// database, open handles on it, and reach its rows behind the store's back:
//
//	func TestContract(t *testing.T) {
//		storetest.Run(t, storetest.Backend{NewDB: func(t *testing.T) storetest.DB {
//			path := filepath.Join(t.TempDir(), "db")
//			return storetest.DB{
//				Open: func(t *testing.T, ring *keyring.Keyring, now func() time.Time) store.Store {
//					s, err := store.OpenSQLite(t.Context(), path, ring, now)
//					...
//				},
//				Rows: ..., SQL: ..., AtRest: ...,
//			}
//		}})
//	}
//
// Every test gets a database of its own. The tests only use ASCII credential IDs whose
// byte order and usual collation order agree; a SQL implementation must still order by
// bytes (COLLATE "C" in PostgreSQL).
//
// PostgresSchema gives a test a private schema on the test PostgreSQL server, for tests
// outside package store that run a program against a PostgreSQL store.
package storetest

import (
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tokenwarden/tokenwarden/internal/keyring"
	"github.com/tokenwarden/tokenwarden/internal/keyring/keyringtest"
	"github.com/tokenwarden/tokenwarden/internal/store"
)

// Backend is a store implementation as the contract sees it.
type Backend struct {
	// NewDB creates a fresh, empty database for one test and drops it when the test
	// ends (t.Cleanup).
	NewDB func(t *testing.T) DB
	// ServerClock says that the database server times leases by its own clock,
	// whatever the clock a handle was opened with (PostgreSQL). Run then also checks
	// that workers whose clocks disagree with the server's still agree on who holds a
	// lease. A store on a local file (SQLite) has no clock of its own: its workers
	// share the host's.
	ServerClock bool
}

// DB is one fresh database of a Backend, and the ways into it.
type DB struct {
	// Open opens a handle on the database that seals with ring, on the clock now (nil
	// is time.Now), as store.OpenClock does. Every call opens the same database, and
	// several handles may be open at once, as several workers' would be. Run closes
	// every handle when the test ends, so Open need not; a test may close one earlier,
	// to open the database again.
	Open func(t *testing.T, ring *keyring.Keyring, now func() time.Time) store.Store
	// Rows reads and writes credential rows behind the store's back.
	Rows RowAccess
	// SQL runs statements on the database behind the store's back (see RawSQL).
	SQL RawSQL
	// AtRest returns what the database keeps of the credentials, the way someone who
	// can read it without the key file sees it, each piece under a name for messages:
	// the database files, say, or every row as text.
	AtRest func(t *testing.T) map[string][]byte
}

// database is one test's fresh DB, and the keyring of the suite's stores.
type database struct {
	DB
	ring *keyring.Keyring
}

// open opens a handle on the test's database and closes it when the test ends.
func (d database) open(t *testing.T, ring *keyring.Keyring, now func() time.Time) store.Store {
	t.Helper()
	s := d.Open(t, ring, now)
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

// A contractTest runs on a fresh database of the backend under test.
type contractTest struct {
	name string
	fn   func(t *testing.T, d database)
}

// onStore runs fn on one handle, sealing with the suite's keyring.
func onStore(fn func(t *testing.T, s store.Store)) func(*testing.T, database) {
	return func(t *testing.T, d database) { fn(t, d.open(t, d.ring, nil)) }
}

// Run runs the contract suite as subtests of t: the record operations at the top, then
// the sections Tampering, KeyRotation, APIKeyAuth and Clock. Each subtest gets a
// fresh database from b.
func Run(t *testing.T, b Backend) {
	t.Helper()
	ring := keyringtest.Random(t, "k1")
	run := func(t *testing.T, tests []contractTest) {
		t.Helper()
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				tt.fn(t, database{DB: b.NewDB(t), ring: ring})
			})
		}
	}
	run(t, []contractTest{
		{"PutCreatesThenIncrements", onStore(testPutVersions)},
		{"GetRoundTripsEveryField", onStore(testRoundTrip)},
		{"GetMissing", onStore(testGetMissing)},
		{"InvalidArgumentsRefused", onStore(testInvalidArgumentsRefused)},
		{"CompareAndSwap", onStore(testCompareAndSwap)},
		{"CompareAndSwapMissing", onStore(testCompareAndSwapMissing)},
		{"CompareAndSwapRace", onStore(testCompareAndSwapRace)},
		{"CompareAndSwapFenced", onStore(testCompareAndSwapFenced)},
		{"StaleOwnerCommitRefused", onStore(testStaleOwnerCommitRefused)},
		{"Leases", onStore(testLeases)},
		{"LeaseOnMissingRecord", onStore(testLeaseMissing)},
		{"WritesClearLease", onStore(testWritesClearLease)},
		{"Delete", onStore(testDelete)},
		{"List", onStore(testList)},
		{"ReopenKeepsRecords", withRings(testReopenKeepsRecords)},
		{"NoPlaintextAtRest", testNoPlaintextAtRest},
		{"ResealUnderPrimaryKey", onStore(testResealUnderPrimary)},
		{"TouchLastUsed", onStore(testTouchLastUsed)},
		{"LastUsedNeverGoesBack", onStore(testLastUsedNeverGoesBack)},
		{"APIKeys", onStore(testAPIKeys)},
	})
	t.Run("Tampering", func(t *testing.T) { run(t, tamperingTests) })
	t.Run("KeyRotation", func(t *testing.T) { run(t, keyRotationTests) })
	t.Run("APIKeyAuth", func(t *testing.T) { run(t, apiKeyAuthTests) })
	t.Run("Clock", func(t *testing.T) {
		run(t, clockTests)
		if b.ServerClock {
			run(t, serverClockTests)
		}
	})
}

// base is a fixed instant with nanoseconds set, so that any rounding shows.
var base = time.Date(2026, 11, 26, 18, 30, 0, 123456789, time.UTC)

// elsewhere is a non-UTC zone: stores must return the same instant in UTC.
var elsewhere = time.FixedZone("UTC+05:30", 5*3600+30*60)

func sample(id string) store.Record {
	return store.Record{
		ID:       id,
		Provider: "example-oauth",
		Secrets: store.Secrets{
			AccessToken:  "access-" + id + "-s3cr3t",
			RefreshToken: "refresh-" + id + "-s3cr3t",
			ClientSecret: "client-" + id + "-s3cr3t",
		},
		TokenType:        "Bearer",
		AccessExpiresAt:  base.Add(time.Hour).In(elsewhere),
		RefreshExpiresAt: base.Add(90 * 24 * time.Hour).Add(1), // 1 ns past, to catch rounding
		LastUsedAt:       base.Add(-time.Minute),
	}
}

// sameTime reports whether got is want's instant as the store must return it: the zero
// time stays zero, anything else comes back in UTC, exact to the nanosecond.
func sameTime(want, got time.Time) bool {
	if want.IsZero() {
		return got.IsZero()
	}
	return got.Equal(want) && got.Location() == time.UTC
}

// diff lists the fields where got differs from want. Version, UpdatedAt and Lease are
// compared only when checkMeta is set; Secrets only when checkSecrets is set.
func diff(want, got store.Record, checkSecrets, checkMeta bool) []string {
	var d []string
	str := func(name, w, g string) {
		if w != g {
			d = append(d, fmt.Sprintf("%s = %q, want %q", name, g, w))
		}
	}
	tm := func(name string, w, g time.Time) {
		if !sameTime(w, g) {
			d = append(d, fmt.Sprintf("%s = %v, want %v in UTC", name, g, w))
		}
	}
	str("ID", want.ID, got.ID)
	str("Provider", want.Provider, got.Provider)
	str("TokenType", want.TokenType, got.TokenType)
	tm("AccessExpiresAt", want.AccessExpiresAt, got.AccessExpiresAt)
	tm("RefreshExpiresAt", want.RefreshExpiresAt, got.RefreshExpiresAt)
	tm("LastUsedAt", want.LastUsedAt, got.LastUsedAt)
	if checkSecrets {
		// Report which field differs, never the values: they look like secrets in logs.
		if got.Secrets != want.Secrets {
			d = append(d, "Secrets differ")
		}
	} else if got.Secrets != (store.Secrets{}) {
		d = append(d, "Secrets are set, want empty")
	}
	if checkMeta {
		if got.Version != want.Version {
			d = append(d, fmt.Sprintf("Version = %d, want %d", got.Version, want.Version))
		}
		tm("UpdatedAt", want.UpdatedAt, got.UpdatedAt)
		str("Lease.Owner", want.Lease.Owner, got.Lease.Owner)
		tm("Lease.TakenAt", want.Lease.TakenAt, got.Lease.TakenAt)
		tm("Lease.ExpiresAt", want.Lease.ExpiresAt, got.Lease.ExpiresAt)
	}
	return d
}

func checkRecord(t *testing.T, what string, want, got store.Record, checkSecrets, checkMeta bool) {
	t.Helper()
	if d := diff(want, got, checkSecrets, checkMeta); len(d) > 0 {
		t.Errorf("%s:\n  %s", what, strings.Join(d, "\n  "))
	}
}

func mustPut(t *testing.T, s store.Store, rec store.Record) store.Record {
	t.Helper()
	got, err := s.Put(t.Context(), rec)
	if err != nil {
		t.Fatalf("Put(%q): %v", rec.ID, err)
	}
	return got
}

func mustGet(t *testing.T, s store.Store, id string) store.Record {
	t.Helper()
	got, err := s.Get(t.Context(), id)
	if err != nil {
		t.Fatalf("Get(%q): %v", id, err)
	}
	return got
}

// ownerSeq makes lease owners unique within a test binary, as the activities' are.
var ownerSeq struct {
	sync.Mutex
	n int
}

func newOwner(name string) string {
	ownerSeq.Lock()
	defer ownerSeq.Unlock()
	ownerSeq.n++
	return fmt.Sprintf("%s-%d", name, ownerSeq.n)
}

// cas is CompareAndSwap as the refresh activity runs it: under a live lease taken for a
// fresh owner (every commit is fenced). A missing record gets no lease, and the
// CompareAndSwap reports it.
func cas(t *testing.T, s store.Store, rec store.Record, expected int64) (store.Record, error) {
	t.Helper()
	owner := newOwner("writer")
	if _, err := s.AcquireLease(t.Context(), rec.ID, owner, time.Hour); err != nil && !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("AcquireLease(%q) before CompareAndSwap: %v", rec.ID, err)
	}
	got, err := s.CompareAndSwap(t.Context(), rec, expected, owner)
	if err != nil {
		// A refused commit keeps its lease (it is the record of an unknown outcome);
		// the next write of the test must not find it held.
		if rerr := s.ReleaseLease(t.Context(), rec.ID, owner); rerr != nil {
			t.Fatalf("ReleaseLease(%q) after a refused CompareAndSwap: %v", rec.ID, rerr)
		}
	}
	return got, err
}

func testPutVersions(t *testing.T, s store.Store) {
	rec := sample("c1")
	rec.Version = 42 // ignored: Put always writes the next version
	v1 := mustPut(t, s, rec)
	if v1.Version != 1 {
		t.Fatalf("first Put Version = %d, want 1", v1.Version)
	}
	if v1.UpdatedAt.IsZero() || v1.UpdatedAt.Location() != time.UTC {
		t.Errorf("Put UpdatedAt = %v, want a UTC time", v1.UpdatedAt)
	}
	if v1.Lease != (store.Lease{}) {
		t.Errorf("Put Lease = %+v, want none", v1.Lease)
	}
	checkRecord(t, "first Put result", rec, v1, true, false)

	rec.Secrets.AccessToken = "second-access"
	rec.Version = 0
	v2 := mustPut(t, s, rec)
	if v2.Version != 2 {
		t.Fatalf("second Put Version = %d, want 2", v2.Version)
	}
	got := mustGet(t, s, "c1")
	checkRecord(t, "Get after second Put", v2, got, true, true)
}

func testRoundTrip(t *testing.T, s store.Store) {
	full := sample("full")
	// A wall-clock time with a monotonic reading must come back as the same instant.
	full.LastUsedAt = time.Now().Add(-time.Second)
	putFull := mustPut(t, s, full)
	checkRecord(t, "Put result", full, putFull, true, false)
	checkRecord(t, "Get", putFull, mustGet(t, s, "full"), true, true)

	// Zero times and empty strings stay zero and empty.
	sparse := store.Record{ID: "sparse", Secrets: store.Secrets{RefreshToken: "only-refresh"}}
	putSparse := mustPut(t, s, sparse)
	got := mustGet(t, s, "sparse")
	checkRecord(t, "Get sparse", putSparse, got, true, true)
	for name, tm := range map[string]time.Time{
		"AccessExpiresAt": got.AccessExpiresAt, "RefreshExpiresAt": got.RefreshExpiresAt,
		"LastUsedAt": got.LastUsedAt, "Lease.TakenAt": got.Lease.TakenAt, "Lease.ExpiresAt": got.Lease.ExpiresAt,
	} {
		if !tm.IsZero() {
			t.Errorf("sparse %s = %v, want zero", name, tm)
		}
	}
}

func testGetMissing(t *testing.T, s store.Store) {
	_, err := s.Get(t.Context(), "nope")
	if !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Get(missing) error = %v, want ErrNotFound", err)
	}
}

// testInvalidArgumentsRefused: a record without an ID, or with a time the store cannot
// hold, is refused rather than written; so is a lease without an owner or a length on
// a free record (testLeases tries them on a held one).
func testInvalidArgumentsRefused(t *testing.T, s store.Store) {
	ctx := t.Context()
	if _, err := s.Put(ctx, store.Record{}); err == nil {
		t.Error("Put with an empty ID succeeded")
	}
	rec := sample("c1")
	rec.AccessExpiresAt = time.Date(3000, 1, 1, 0, 0, 0, 0, time.UTC)
	if _, err := s.Put(ctx, rec); err == nil || !strings.Contains(err.Error(), "storable range") {
		t.Errorf("Put with a year-3000 time error = %v, want range error", err)
	}
	mustPut(t, s, sample("c1"))
	if _, err := s.AcquireLease(ctx, "c1", "", time.Minute); err == nil {
		t.Error("AcquireLease with an empty owner succeeded")
	}
	if _, err := s.AcquireLease(ctx, "c1", "a", 0); err == nil {
		t.Error("AcquireLease with a zero duration succeeded")
	}
}

func testCompareAndSwap(t *testing.T, s store.Store) {
	v1 := mustPut(t, s, sample("c1"))

	next := v1
	next.Secrets.AccessToken = "rotated-access"
	next.Secrets.RefreshToken = "rotated-refresh"
	next.AccessExpiresAt = base.Add(2 * time.Hour)
	next.Version = 99 // ignored: the version written is expectedVersion+1
	v2, err := cas(t, s, next, 1)
	if err != nil {
		t.Fatalf("CompareAndSwap at current version: %v", err)
	}
	if v2.Version != 2 {
		t.Fatalf("CompareAndSwap Version = %d, want 2", v2.Version)
	}
	checkRecord(t, "CompareAndSwap result", next, v2, true, false)
	checkRecord(t, "Get after CompareAndSwap", v2, mustGet(t, s, "c1"), true, true)

	for _, stale := range []int64{1, 3, 0} {
		loser := v1
		loser.Secrets.AccessToken = "must-not-win"
		_, err := cas(t, s, loser, stale)
		if !errors.Is(err, store.ErrVersionConflict) {
			t.Errorf("CompareAndSwap at version %d (stored 2) error = %v, want ErrVersionConflict", stale, err)
		}
		if errors.Is(err, store.ErrNotFound) {
			t.Errorf("CompareAndSwap at version %d error also matches ErrNotFound", stale)
		}
		if err != nil && strings.Contains(err.Error(), "must-not-win") {
			t.Errorf("CompareAndSwap error contains a secret: %v", err)
		}
	}
	checkRecord(t, "Get after stale CompareAndSwaps", v2, mustGet(t, s, "c1"), true, true)
}

func testCompareAndSwapMissing(t *testing.T, s store.Store) {
	_, err := cas(t, s, sample("ghost"), 1)
	if !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("CompareAndSwap(missing) error = %v, want ErrNotFound", err)
	}
	if _, err := s.Get(t.Context(), "ghost"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("CompareAndSwap(missing) created a record (Get error = %v)", err)
	}
}

func testCompareAndSwapRace(t *testing.T, s store.Store) {
	const n = 20
	mustPut(t, s, sample("race"))
	// One lease for all: the race is on the version, which is checked first.
	owner := newOwner("racer")
	if _, err := s.AcquireLease(t.Context(), "race", owner, time.Hour); err != nil {
		t.Fatal(err)
	}

	var (
		wg      sync.WaitGroup
		start   = make(chan struct{})
		results = make([]error, n)
		written = make([]store.Record, n)
	)
	for i := range n {
		wg.Go(func() {
			rec := sample("race")
			rec.Secrets.AccessToken = fmt.Sprintf("access-from-%d", i)
			<-start // line everyone up so the attempts really overlap
			written[i], results[i] = s.CompareAndSwap(t.Context(), rec, 1, owner)
		})
	}
	close(start)
	wg.Wait()

	winner := -1
	for i, err := range results {
		switch {
		case err == nil:
			if winner >= 0 {
				t.Fatalf("both attempt %d and %d won the CompareAndSwap at version 1", winner, i)
			}
			winner = i
		case errors.Is(err, store.ErrVersionConflict):
		default:
			t.Errorf("attempt %d: error = %v, want nil or ErrVersionConflict", i, err)
		}
	}
	if winner < 0 {
		t.Fatal("no attempt won the CompareAndSwap")
	}
	got := mustGet(t, s, "race")
	if got.Version != 2 {
		t.Errorf("Version after race = %d, want 2", got.Version)
	}
	if want := fmt.Sprintf("access-from-%d", winner); got.Secrets.AccessToken != want {
		t.Errorf("stored AccessToken is not the winner's (attempt %d)", winner)
	}
	checkRecord(t, "Get after race", written[winner], got, true, true)
}

// storeClockTolerance bounds how far the store's clock (the database server's, for a
// store that has one) may be from the test's: the tests run beside the database.
const storeClockTolerance = 5 * time.Second

// checkTakenNow checks a lease taken just now for owner and ttl: TakenAt on the store's
// clock, near the test's, and ExpiresAt exactly ttl later.
func checkTakenNow(t *testing.T, what string, got store.Lease, owner string, ttl time.Duration) {
	t.Helper()
	now := time.Now()
	if got.Owner != owner || got.TakenAt.Location() != time.UTC || got.ExpiresAt.Sub(got.TakenAt) != ttl ||
		got.TakenAt.Before(now.Add(-storeClockTolerance)) || got.TakenAt.After(now.Add(storeClockTolerance)) {
		t.Errorf("%s = {Owner:%q TakenAt:%v ExpiresAt:%v}, want %q's, taken about %v (in UTC) for %s",
			what, got.Owner, got.TakenAt, got.ExpiresAt, owner, now.UTC(), ttl)
	}
}

// waitPast sleeps until a lease of ttl taken just before has expired. The store's clock
// may be offset from the test's, but it runs at the same rate, so the lease's own
// length (plus a little) is enough; leases meant to expire are kept short.
func waitPast(ttl time.Duration) { time.Sleep(ttl + 50*time.Millisecond) }

func testLeases(t *testing.T, s store.Store) {
	ctx := t.Context()
	mustPut(t, s, sample("c1"))

	// Free lease: taken, and the previous lease is empty.
	prev, err := s.AcquireLease(ctx, "c1", "attempt-A", time.Hour)
	if err != nil {
		t.Fatalf("AcquireLease(free): %v", err)
	}
	checkLease(t, "previous lease of a free record", store.Lease{}, prev)
	leaseA := mustGet(t, s, "c1").Lease
	checkTakenNow(t, "Get after AcquireLease", leaseA, "attempt-A", time.Hour)

	// Another owner while live: refused, and told who holds it.
	prev, err = s.AcquireLease(ctx, "c1", "attempt-B", time.Minute)
	if !errors.Is(err, store.ErrLeaseHeld) {
		t.Fatalf("AcquireLease(held by other) error = %v, want ErrLeaseHeld", err)
	}
	checkLease(t, "lease returned with ErrLeaseHeld", leaseA, prev)
	checkLease(t, "Get after refused AcquireLease", leaseA, mustGet(t, s, "c1").Lease)

	// The same owner may take it again (e.g. a retried activity) and change its length;
	// here to a short one that the rest of the test outlives.
	const short = 150 * time.Millisecond
	prev, err = s.AcquireLease(ctx, "c1", "attempt-A", short)
	if err != nil {
		t.Fatalf("AcquireLease(same owner): %v", err)
	}
	checkLease(t, "previous lease on re-acquire", leaseA, prev)
	leaseA2 := mustGet(t, s, "c1").Lease
	checkTakenNow(t, "Get after re-acquire", leaseA2, "attempt-A", short)
	if leaseA2.TakenAt.Before(leaseA.TakenAt) {
		t.Errorf("re-acquired lease taken at %v, before the first (%v): the store's clock went back", leaseA2.TakenAt, leaseA.TakenAt)
	}

	// Once expired by the store's clock, another owner takes it and learns who held it
	// before, and since when.
	waitPast(short)
	prev, err = s.AcquireLease(ctx, "c1", "attempt-B", time.Hour)
	if err != nil {
		t.Fatalf("AcquireLease(expired): %v", err)
	}
	checkLease(t, "previous (expired) lease", leaseA2, prev)
	leaseB := mustGet(t, s, "c1").Lease
	checkTakenNow(t, "Get after takeover", leaseB, "attempt-B", time.Hour)
	if !leaseB.TakenAt.After(leaseA2.ExpiresAt) && !leaseB.TakenAt.Equal(leaseA2.ExpiresAt) {
		t.Errorf("takeover at %v, before the expired lease's end %v", leaseB.TakenAt, leaseA2.ExpiresAt)
	}

	// Release by a non-owner (A, whose lease expired and was taken over) changes nothing.
	if err := s.ReleaseLease(ctx, "c1", "attempt-A"); err != nil {
		t.Fatalf("ReleaseLease(non-owner): %v", err)
	}
	checkLease(t, "Get after non-owner release", leaseB, mustGet(t, s, "c1").Lease)

	// Release by the owner frees it; releasing again is a no-op.
	for range 2 {
		if err := s.ReleaseLease(ctx, "c1", "attempt-B"); err != nil {
			t.Fatalf("ReleaseLease(owner): %v", err)
		}
		checkLease(t, "Get after owner release", store.Lease{}, mustGet(t, s, "c1").Lease)
	}

	// A released lease is free for anyone, and the previous lease is empty.
	prev, err = s.AcquireLease(ctx, "c1", "attempt-C", time.Minute)
	if err != nil {
		t.Fatalf("AcquireLease after release: %v", err)
	}
	checkLease(t, "previous lease after release", store.Lease{}, prev)

	// No owner, and no length, are refused and change nothing.
	held := mustGet(t, s, "c1").Lease
	for _, bad := range []struct {
		owner string
		ttl   time.Duration
	}{{"", time.Minute}, {"attempt-D", 0}, {"attempt-D", -time.Second}} {
		if _, err := s.AcquireLease(ctx, "c1", bad.owner, bad.ttl); err == nil || errors.Is(err, store.ErrLeaseHeld) {
			t.Errorf("AcquireLease(owner %q, ttl %s) error = %v, want a refusal of the arguments", bad.owner, bad.ttl, err)
		}
	}
	checkLease(t, "Get after refused arguments", held, mustGet(t, s, "c1").Lease)

	// Leases do not change the version: they are not writes of the token set.
	if v := mustGet(t, s, "c1").Version; v != 1 {
		t.Errorf("Version after lease operations = %d, want 1", v)
	}
}

// testCompareAndSwapFenced: a commit needs its writer's live lease. Each refusal is
// ErrLeaseLost (not a version conflict, which would tell the activity another attempt
// committed) and leaves the record as it was.
func testCompareAndSwapFenced(t *testing.T, s store.Store) {
	ctx := t.Context()
	v1 := mustPut(t, s, sample("c1"))
	next := v1
	next.Secrets.AccessToken = "fenced-out"
	refused := func(what string, owner string) {
		t.Helper()
		_, err := s.CompareAndSwap(ctx, next, 1, owner)
		if !errors.Is(err, store.ErrLeaseLost) {
			t.Errorf("CompareAndSwap %s: error = %v, want ErrLeaseLost", what, err)
		}
		if errors.Is(err, store.ErrVersionConflict) {
			t.Errorf("CompareAndSwap %s: error also matches ErrVersionConflict", what)
		}
		if err != nil && strings.Contains(err.Error(), "fenced-out") {
			t.Errorf("CompareAndSwap error contains a secret: %v", err)
		}
		checkRecord(t, "Get after CompareAndSwap "+what, v1, mustGet(t, s, "c1"), true, false)
	}

	if _, err := s.CompareAndSwap(ctx, next, 1, ""); err == nil {
		t.Error("CompareAndSwap without a lease owner succeeded")
	}
	refused("with no lease taken", "attempt-A")

	if _, err := s.AcquireLease(ctx, "c1", "attempt-B", time.Hour); err != nil {
		t.Fatal(err)
	}
	refused("while another owner holds the lease", "attempt-A")
	if err := s.ReleaseLease(ctx, "c1", "attempt-B"); err != nil {
		t.Fatal(err)
	}
	refused("after its owner released the lease", "attempt-B")

	// Expired by the store's clock, and nobody else took it: still refused, since
	// another attempt may be about to.
	const short = 100 * time.Millisecond
	if _, err := s.AcquireLease(ctx, "c1", "attempt-A", short); err != nil {
		t.Fatal(err)
	}
	waitPast(short)
	refused("after its lease expired", "attempt-A")

	// A writer holding the lease at a stale version is told about the version: that
	// another attempt committed is what it needs to know.
	if _, err := s.AcquireLease(ctx, "c1", "attempt-A", time.Hour); err != nil {
		t.Fatal(err)
	}
	if _, err := s.CompareAndSwap(ctx, next, 7, "attempt-A"); !errors.Is(err, store.ErrVersionConflict) {
		t.Errorf("CompareAndSwap under the lease at a stale version: error = %v, want ErrVersionConflict", err)
	}
	if _, err := s.CompareAndSwap(ctx, next, 1, "attempt-A"); err != nil {
		t.Errorf("CompareAndSwap under the writer's live lease: %v", err)
	}
}

// testStaleOwnerCommitRefused is the interleaving fencing exists for: attempt A's lease
// expires while it is still working, attempt B takes the lease over, and A's late
// commit must not land, neither before B commits nor after.
func testStaleOwnerCommitRefused(t *testing.T, s store.Store) {
	ctx := t.Context()
	v1 := mustPut(t, s, sample("c1"))
	const short = 100 * time.Millisecond
	if _, err := s.AcquireLease(ctx, "c1", "attempt-A", short); err != nil {
		t.Fatal(err)
	}
	waitPast(short)
	prev, err := s.AcquireLease(ctx, "c1", "attempt-B", time.Hour)
	if err != nil {
		t.Fatalf("AcquireLease over the expired lease: %v", err)
	}
	if prev.Owner != "attempt-A" {
		t.Fatalf("previous lease owner = %q, want attempt-A", prev.Owner)
	}

	fromA := v1
	fromA.Secrets.RefreshToken = "from-stale-A"
	if _, err := s.CompareAndSwap(ctx, fromA, 1, "attempt-A"); !errors.Is(err, store.ErrLeaseLost) {
		t.Fatalf("stale owner's CompareAndSwap: error = %v, want ErrLeaseLost", err)
	}
	checkRecord(t, "Get after the stale owner's commit", v1, mustGet(t, s, "c1"), true, false)
	if got := mustGet(t, s, "c1").Lease.Owner; got != "attempt-B" {
		t.Fatalf("lease owner after the stale commit = %q, want attempt-B (a refused commit must not clear it)", got)
	}

	fromB := v1
	fromB.Secrets.RefreshToken = "from-B"
	v2, err := s.CompareAndSwap(ctx, fromB, 1, "attempt-B")
	if err != nil {
		t.Fatalf("lease holder's CompareAndSwap: %v", err)
	}
	if _, err := s.CompareAndSwap(ctx, fromA, 1, "attempt-A"); !errors.Is(err, store.ErrVersionConflict) {
		t.Fatalf("stale owner's CompareAndSwap after B committed: error = %v, want ErrVersionConflict", err)
	}
	checkRecord(t, "Get after both commits", v2, mustGet(t, s, "c1"), true, true)
}

func checkLease(t *testing.T, what string, want, got store.Lease) {
	t.Helper()
	if got.Owner != want.Owner || !sameTime(want.TakenAt, got.TakenAt) || !sameTime(want.ExpiresAt, got.ExpiresAt) {
		t.Errorf("%s = {Owner:%q TakenAt:%v ExpiresAt:%v}, want {Owner:%q TakenAt:%v ExpiresAt:%v} (times in UTC)",
			what, got.Owner, got.TakenAt, got.ExpiresAt, want.Owner, want.TakenAt, want.ExpiresAt)
	}
}

func testLeaseMissing(t *testing.T, s store.Store) {
	_, err := s.AcquireLease(t.Context(), "ghost", "attempt-A", time.Minute)
	if !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("AcquireLease(missing) error = %v, want ErrNotFound", err)
	}
	if err := s.ReleaseLease(t.Context(), "ghost", "attempt-A"); err != nil {
		t.Fatalf("ReleaseLease(missing) error = %v, want nil", err)
	}
}

func testWritesClearLease(t *testing.T, s store.Store) {
	ctx := t.Context()
	v1 := mustPut(t, s, sample("c1"))
	if _, err := s.AcquireLease(ctx, "c1", "attempt-A", time.Hour); err != nil {
		t.Fatalf("AcquireLease: %v", err)
	}
	v2, err := s.CompareAndSwap(ctx, v1, 1, "attempt-A")
	if err != nil {
		t.Fatalf("CompareAndSwap: %v", err)
	}
	if v2.Lease != (store.Lease{}) {
		t.Errorf("CompareAndSwap result Lease = %+v, want none", v2.Lease)
	}
	checkLease(t, "Get after CompareAndSwap", store.Lease{}, mustGet(t, s, "c1").Lease)
	// Another owner can take it at once, well before the old lease would have expired.
	prev, err := s.AcquireLease(ctx, "c1", "attempt-B", time.Hour)
	if err != nil {
		t.Fatalf("AcquireLease after CompareAndSwap: %v", err)
	}
	checkLease(t, "previous lease after CompareAndSwap", store.Lease{}, prev)

	mustPut(t, s, v2)
	checkLease(t, "Get after Put", store.Lease{}, mustGet(t, s, "c1").Lease)
}

func testDelete(t *testing.T, s store.Store) {
	ctx := t.Context()
	mustPut(t, s, sample("c1"))
	mustPut(t, s, sample("c1")) // version 2
	mustPut(t, s, sample("keep"))

	if err := s.Delete(ctx, "c1"); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if _, err := s.Get(ctx, "c1"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Get after Delete error = %v, want ErrNotFound", err)
	}
	if _, err := cas(t, s, sample("c1"), 2); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("CompareAndSwap after Delete error = %v, want ErrNotFound", err)
	}
	if err := s.Delete(ctx, "c1"); err != nil {
		t.Fatalf("Delete(missing) error = %v, want nil", err)
	}
	// Other records are untouched.
	mustGet(t, s, "keep")
	// Recreating starts the history over.
	if v := mustPut(t, s, sample("c1")).Version; v != 1 {
		t.Fatalf("Put after Delete Version = %d, want 1", v)
	}
}

// testReopenKeepsRecords: what one handle wrote is there, whole, for a handle opened
// after it was closed.
func testReopenKeepsRecords(t *testing.T, open opener) {
	ring := keyringtest.Random(t, "k1")
	s := open(t, ring)
	put := mustPut(t, s, sample("c1"))
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	checkRecord(t, "Get after reopen", put, mustGet(t, open(t, ring), "c1"), true, true)
}

// testNoPlaintextAtRest: the database holds ciphertext only. Neither the sealed
// secrets of a row nor anything the database keeps (DB.AtRest), while the store is
// open or after it closed, contains a secret, its hex form, or a fragment of the JSON
// document they are sealed in.
func testNoPlaintextAtRest(t *testing.T, d database) {
	s := d.open(t, d.ring, nil)
	v1 := mustPut(t, s, sample("c1"))
	next := v1
	next.Secrets.AccessToken = "rotated-access-c1-s3cr3t"
	if _, err := cas(t, s, next, v1.Version); err != nil {
		t.Fatal(err)
	}
	mustPut(t, s, sample("c2"))

	secrets := []string{next.Secrets.AccessToken}
	for _, id := range []string{"c1", "c2"} {
		rec := sample(id)
		secrets = append(secrets, rec.Secrets.AccessToken, rec.Secrets.RefreshToken, rec.Secrets.ClientSecret)
	}
	// Also no fragment that would betray the JSON document, in case a test string is
	// ever split across pages.
	secrets = append(secrets, "s3cr3t", `"refresh_token"`, "access_token")

	for _, id := range []string{"c1", "c2"} {
		row := d.Rows.ReadRow(t, id)
		if row.KeyID != d.ring.PrimaryID() || len(row.Sealed) < 28 { // nonce + tag at least
			t.Errorf("row %s: key ID %q, %d sealed bytes; want %s and a ciphertext", id, row.KeyID, len(row.Sealed), d.ring.PrimaryID())
		}
		for _, sec := range secrets {
			if strings.Contains(string(row.Sealed), sec) {
				t.Errorf("row %s: the sealed secrets contain %q", id, sec)
			}
		}
	}
	scan := func(when string) {
		t.Helper()
		kept := d.AtRest(t)
		if len(kept) == 0 {
			t.Fatalf("%s: AtRest returned nothing to check", when)
		}
		for name, data := range kept {
			for _, sec := range secrets {
				if strings.Contains(string(data), sec) || strings.Contains(string(data), hex.EncodeToString([]byte(sec))) {
					t.Errorf("%s: %s contains %q", when, name, sec)
				}
			}
		}
	}
	scan("while open")
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	scan("after close")
}

func testList(t *testing.T, s store.Store) {
	ctx := t.Context()
	empty, err := s.List(ctx)
	if err != nil {
		t.Fatalf("List(empty): %v", err)
	}
	if len(empty) != 0 {
		t.Fatalf("List(empty) returned %d records", len(empty))
	}

	want := map[string]store.Record{}
	for _, id := range []string{"gamma", "alpha", "beta"} {
		want[id] = mustPut(t, s, sample(id))
	}
	want["beta"] = mustPut(t, s, sample("beta")) // version 2
	if _, err := s.AcquireLease(ctx, "gamma", "attempt-A", time.Minute); err != nil {
		t.Fatal(err)
	}
	g := want["gamma"]
	g.Lease = mustGet(t, s, "gamma").Lease
	if g.Lease.Owner != "attempt-A" || g.Lease.ExpiresAt.Sub(g.Lease.TakenAt) != time.Minute {
		t.Fatalf("lease after AcquireLease = %+v, want attempt-A's for 1m", g.Lease)
	}
	want["gamma"] = g

	got, err := s.List(ctx)
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	var ids []string
	for _, r := range got {
		ids = append(ids, r.ID)
	}
	if strings.Join(ids, ",") != "alpha,beta,gamma" {
		t.Fatalf("List IDs = %v, want [alpha beta gamma]", ids)
	}
	for _, r := range got {
		// checkSecrets=false also asserts the Secrets are empty.
		checkRecord(t, "List entry "+r.ID, want[r.ID], r, false, true)
	}
}
