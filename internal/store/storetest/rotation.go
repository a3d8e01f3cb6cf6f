package storetest

import (
	"crypto/rand"
	"errors"
	"fmt"
	"maps"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tokenwarden/tokenwarden/internal/keyring"
	"github.com/tokenwarden/tokenwarden/internal/keyring/keyringtest"
	"github.com/tokenwarden/tokenwarden/internal/store"
)

// opener opens a handle on the test's database with the given keyring, closed when the
// test ends. Every call opens the same database, and several handles may be open at
// once, as several workers' would be.
type opener func(t *testing.T, ring *keyring.Keyring) store.Store

// withRings runs fn with an opener on the test's database, for tests that open it more
// than once or with keyrings of their own.
func withRings(fn func(t *testing.T, open opener)) func(*testing.T, database) {
	return func(t *testing.T, d database) {
		fn(t, func(t *testing.T, ring *keyring.Keyring) store.Store {
			t.Helper()
			return d.open(t, ring, nil)
		})
	}
}

// keyRotationTests are the key rotation contract (Reseal, KeyIDs, writes sealed under
// the primary key), and what a keyring without the right key reads.
var keyRotationTests = []contractTest{
	{"ResealUnderNewPrimary", withRings(testResealUnderNewPrimary)},
	{"ResealMissing", withRings(testResealMissing)},
	{"ResealRacesCompareAndSwap", withRings(testResealRacesCompareAndSwap)},
	{"WriteSealsUnderPrimary", withRings(testWriteSealsUnderPrimary)},
	{"WrongKeyringFailsLoudly", withRings(testWrongKeyringFailsLoudly)},
}

// rotationRings are the key file's states during a rotation: before (old key only),
// during (both keys, new primary), after (new key only), and a worker that has the new
// key file's keys but still seals with the old primary (not restarted in time).
type rotationRings struct {
	before, during, after, lagging *keyring.Keyring
}

func newRotationRings(t *testing.T) rotationRings {
	t.Helper()
	key := func() []byte {
		k := make([]byte, keyring.KeySize)
		if _, err := rand.Read(k); err != nil {
			t.Fatal(err)
		}
		return k
	}
	oldKey, newKey := key(), key()
	ring := func(primary string, keys map[string][]byte) *keyring.Keyring {
		r, err := keyring.New(primary, keys)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	both := map[string][]byte{"old": oldKey, "new": newKey}
	return rotationRings{
		before:  ring("old", map[string][]byte{"old": oldKey}),
		during:  ring("new", both),
		after:   ring("new", map[string][]byte{"new": newKey}),
		lagging: ring("old", both),
	}
}

func mustKeyIDs(t *testing.T, s store.Store) map[string]int {
	t.Helper()
	got, err := s.KeyIDs(t.Context())
	if err != nil {
		t.Fatalf("KeyIDs: %v", err)
	}
	if got == nil {
		t.Fatal("KeyIDs returned a nil map")
	}
	return got
}

func checkKeyIDs(t *testing.T, what string, s store.Store, want map[string]int) {
	t.Helper()
	if got := mustKeyIDs(t, s); !maps.Equal(got, want) {
		t.Errorf("%s: KeyIDs = %v, want %v", what, got, want)
	}
}

func mustReseal(t *testing.T, s store.Store, id string, want bool) {
	t.Helper()
	changed, err := s.Reseal(t.Context(), id)
	if err != nil {
		t.Fatalf("Reseal(%q): %v", id, err)
	}
	if changed != want {
		t.Errorf("Reseal(%q) changed = %v, want %v", id, changed, want)
	}
}

// testResealUnderPrimary runs in the plain contract suite, with one key: nothing to do.
func testResealUnderPrimary(t *testing.T, s store.Store) {
	checkKeyIDs(t, "empty store", s, map[string]int{})
	put := mustPut(t, s, sample("c1"))
	mustPut(t, s, sample("c2"))
	mustReseal(t, s, "c1", false)
	checkRecord(t, "Get after a no-op Reseal", put, mustGet(t, s, "c1"), true, true)
	counts := mustKeyIDs(t, s)
	if len(counts) != 1 {
		t.Fatalf("KeyIDs = %v, want one key with 2 records", counts)
	}
	for _, n := range counts {
		if n != 2 {
			t.Errorf("KeyIDs = %v, want 2 records", counts)
		}
	}
	if _, err := s.Reseal(t.Context(), "ghost"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Reseal(missing) error = %v, want ErrNotFound", err)
	}
}

func testResealUnderNewPrimary(t *testing.T, open opener) {
	ctx := t.Context()
	r := newRotationRings(t)
	before := open(t, r.before)

	// Rows written before the rotation: one at version 2, one with a live lease.
	ids := []string{"c1", "c2", "c3"}
	for _, id := range ids {
		mustPut(t, before, sample(id))
	}
	next := sample("c2")
	next.Secrets.AccessToken = "c2-second-access"
	if _, err := cas(t, before, next, 1); err != nil {
		t.Fatal(err)
	}
	if _, err := before.AcquireLease(ctx, "c3", "worker-a", time.Hour); err != nil {
		t.Fatal(err)
	}
	checkKeyIDs(t, "before the rotation", before, map[string]int{"old": 3})

	during := open(t, r.during)
	want := map[string]store.Record{}
	for _, id := range ids {
		want[id] = mustGet(t, before, id)
		checkRecord(t, "Get through the rotated ring before resealing", want[id], mustGet(t, during, id), true, true)
	}

	// Resealing one record leaves a mix that both rings of the rotation still read
	// where they hold the key.
	mustReseal(t, during, "c1", true)
	checkKeyIDs(t, "after resealing c1", during, map[string]int{"old": 2, "new": 1})
	checkRecord(t, "Get c1 after Reseal", want["c1"], mustGet(t, during, "c1"), true, true)
	checkRecord(t, "Get c2 (not resealed yet)", want["c2"], mustGet(t, during, "c2"), true, true)

	for _, id := range ids[1:] {
		mustReseal(t, during, id, true)
	}
	checkKeyIDs(t, "after resealing everything", during, map[string]int{"new": 3})
	for _, id := range ids {
		mustReseal(t, during, id, false) // already under the primary: nothing to do
		// Version, UpdatedAt, lease and secrets are exactly as before.
		checkRecord(t, "Get through the rotated ring after Reseal", want[id], mustGet(t, during, id), true, true)
	}
	if got := mustGet(t, during, "c3"); got.Lease.Owner != "worker-a" {
		t.Errorf("Reseal dropped the lease: owner = %q", got.Lease.Owner)
	}

	// The old key is no longer needed: a ring with the new key alone reads everything,
	// and a ring with the old key alone reads nothing.
	after := open(t, r.after)
	for _, id := range ids {
		checkRecord(t, "Get through the new key alone", want[id], mustGet(t, after, id), true, true)
		if _, err := before.Get(ctx, id); err == nil || !strings.Contains(err.Error(), `"new"`) {
			t.Errorf("Get(%q) with the old key alone: error = %v, want one naming key \"new\"", id, err)
		}
	}

	// A writer that read before the reseal still commits at the version it read:
	// resealing is not a new token set.
	stale := want["c2"]
	stale.Secrets.AccessToken = "c2-third-access"
	got, err := cas(t, during, stale, want["c2"].Version)
	if err != nil {
		t.Fatalf("CompareAndSwap at the version read before Reseal: %v", err)
	}
	if got.Version != want["c2"].Version+1 {
		t.Errorf("CompareAndSwap Version = %d, want %d", got.Version, want["c2"].Version+1)
	}
}

func testResealMissing(t *testing.T, open opener) {
	r := newRotationRings(t)
	s := open(t, r.during)
	if _, err := s.Reseal(t.Context(), "ghost"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Reseal(missing) error = %v, want ErrNotFound", err)
	}
	checkKeyIDs(t, "after Reseal(missing)", s, map[string]int{})
	if _, err := s.Get(t.Context(), "ghost"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Reseal(missing) created a record (Get error = %v)", err)
	}
}

// testResealRacesCompareAndSwap runs a rotation (one handle resealing in a loop) while
// a worker that still seals with the old key (another handle) keeps refreshing the same
// records. Resealing never changes the version, so every one of the worker's
// compare-and-swaps must win, and the last token set written must be the one stored:
// no reseal may put an older token set back.
func testResealRacesCompareAndSwap(t *testing.T, open opener) {
	ctx := t.Context()
	r := newRotationRings(t)
	worker := open(t, r.lagging)
	rotator := open(t, r.during)
	const rounds = 25
	ids := []string{"race-1", "race-2", "race-3"}
	for _, id := range ids {
		mustPut(t, worker, sample(id))
	}

	var (
		wg       sync.WaitGroup
		done     = make(chan struct{})
		resealed = make(chan int, 1)
		errs     = make(chan error, len(ids)+1)
	)
	for _, id := range ids {
		wg.Go(func() {
			for i := range rounds {
				cur, err := worker.Get(ctx, id)
				if err != nil {
					errs <- fmt.Errorf("round %d: Get(%q): %w", i, id, err)
					return
				}
				cur.Secrets.AccessToken = fmt.Sprintf("%s-round-%d", id, i)
				owner := fmt.Sprintf("%s-round-%d", id, i)
				if _, err := worker.AcquireLease(ctx, id, owner, time.Hour); err != nil {
					errs <- fmt.Errorf("round %d: AcquireLease(%q): %w", i, id, err)
					return
				}
				if _, err := worker.CompareAndSwap(ctx, cur, cur.Version, owner); err != nil {
					errs <- fmt.Errorf("round %d: CompareAndSwap(%q) at version %d: %w", i, id, cur.Version, err)
					return
				}
			}
		})
	}
	go func() {
		n := 0
		defer func() { resealed <- n }()
		for {
			select {
			case <-done:
				return
			default:
			}
			for _, id := range ids {
				changed, err := rotator.Reseal(ctx, id)
				if err != nil {
					errs <- fmt.Errorf("Reseal(%q): %w", id, err)
					return
				}
				if changed {
					n++
				}
			}
		}
	}()
	wg.Wait()
	close(done)
	n := <-resealed
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if t.Failed() {
		return
	}
	t.Logf("%d reseals during %d compare-and-swaps", n, rounds*len(ids))

	for _, id := range ids {
		// The worker's last write may have come after the rotator's last pass.
		if _, err := rotator.Reseal(ctx, id); err != nil {
			t.Fatalf("final Reseal(%q): %v", id, err)
		}
		got := mustGet(t, rotator, id)
		if got.Version != 1+rounds {
			t.Errorf("%s: Version = %d, want %d (one per compare-and-swap)", id, got.Version, 1+rounds)
		}
		if want := fmt.Sprintf("%s-round-%d", id, rounds-1); got.Secrets.AccessToken != want {
			t.Errorf("%s: stored AccessToken is not the last one written (round %d)", id, rounds-1)
		}
	}
	checkKeyIDs(t, "after the race", rotator, map[string]int{"new": len(ids)})
}

// testWriteSealsUnderPrimary: after the key file gains a new primary key (the old one
// kept), the records written before still read; a write seals its record under the new
// primary and leaves the others under the old one; once the old key is dropped, the
// rewritten record reads and the others fail, naming the key they need.
func testWriteSealsUnderPrimary(t *testing.T, open opener) {
	r := newRotationRings(t)
	before := open(t, r.before)
	for _, id := range []string{"c1", "c2"} {
		mustPut(t, before, sample(id))
	}
	if err := before.Close(); err != nil {
		t.Fatal(err)
	}

	during := open(t, r.during)
	for _, id := range []string{"c1", "c2"} {
		if got := mustGet(t, during, id); got.Secrets != sample(id).Secrets {
			t.Fatalf("Get(%s) after rotation returned different secrets", id)
		}
	}
	c1 := mustGet(t, during, "c1")
	if _, err := cas(t, during, c1, c1.Version); err != nil {
		t.Fatal(err)
	}
	checkKeyIDs(t, "after rewriting c1", during, map[string]int{"new": 1, "old": 1})
	if err := during.Close(); err != nil {
		t.Fatal(err)
	}

	after := open(t, r.after)
	if _, err := after.Get(t.Context(), "c1"); err != nil {
		t.Fatalf("Get(c1) with only the new key: %v", err)
	}
	if _, err := after.Get(t.Context(), "c2"); err == nil || !strings.Contains(err.Error(), `"old"`) {
		t.Fatalf("Get(c2) with only the new key error = %v, want one naming key \"old\"", err)
	}
}

// testWrongKeyringFailsLoudly: a keyring that never had the records' key, or has other
// bytes under its ID (a development key generated again), fails Get loudly: naming the
// credential and the key, never a secret, and never ErrNotFound. List, which decrypts
// nothing, still works.
func testWrongKeyringFailsLoudly(t *testing.T, open opener) {
	rec := sample("c1")
	s := open(t, keyringtest.Random(t, "k1"))
	mustPut(t, s, rec)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name    string
		ring    *keyring.Keyring
		wantErr string
	}{
		{name: "key ID unknown", ring: keyringtest.Random(t, "k2"), wantErr: `key "k1", which this keyring does not hold`},
		{name: "same ID other key", ring: keyringtest.Random(t, "k1"), wantErr: `key "k1": authentication failed`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := open(t, tt.ring)
			got, err := s.Get(t.Context(), "c1")
			if err == nil {
				t.Fatalf("Get with the wrong keyring succeeded (secrets empty: %v)", got.Secrets == store.Secrets{})
			}
			msg := err.Error()
			if !strings.Contains(msg, tt.wantErr) || !strings.Contains(msg, `"c1"`) {
				t.Errorf("Get error = %q, want it to name the credential and contain %q", msg, tt.wantErr)
			}
			if errors.Is(err, store.ErrNotFound) {
				t.Error("Get error matches ErrNotFound; an undecryptable record is not a missing one")
			}
			for _, sec := range []string{rec.Secrets.AccessToken, rec.Secrets.RefreshToken, rec.Secrets.ClientSecret} {
				if strings.Contains(msg, sec) {
					t.Errorf("Get error leaks a secret: %q", msg)
				}
			}
			list, err := s.List(t.Context())
			if err != nil || len(list) != 1 || list[0].ID != "c1" {
				t.Errorf("List with the wrong keyring = %v, %v; want [c1]", list, err)
			}
		})
	}
}
