package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tokenwarden/tokenwarden/internal/config"
	"github.com/tokenwarden/tokenwarden/internal/keyring"
	"github.com/tokenwarden/tokenwarden/internal/store"
	"github.com/tokenwarden/tokenwarden/internal/store/storetest"
)

// keyTestStore is a configured store for the key commands: the key file and the
// environment are set up, store.Open opens the configured store with the key file as it
// is now.
type keyTestStore struct {
	keyPath string
	firstID string
}

// setupSQLite prepares a worker environment with a SQLite store.
func setupSQLite(t *testing.T) keyTestStore {
	t.Helper()
	dataDir, _ := workerEnv(t, nil)
	return newKeyTestStore(t, dataDir)
}

// setupPostgres prepares a worker environment with a PostgreSQL store in a fresh
// schema of the test server (see storetest.PostgresSchema for the variables).
func setupPostgres(t *testing.T) keyTestStore {
	t.Helper()
	_, dsn := storetest.PostgresSchema(t)
	dataDir, _ := workerEnv(t, map[string]string{"TOKENWARDEN_STORE": "postgres", "TOKENWARDEN_POSTGRES_DSN": dsn})
	return newKeyTestStore(t, dataDir)
}

func newKeyTestStore(t *testing.T, dataDir string) keyTestStore {
	t.Helper()
	keyPath := filepath.Join(dataDir, "keys.json")
	id, err := keyring.GenerateFile(keyPath)
	if err != nil {
		t.Fatal(err)
	}
	return keyTestStore{keyPath: keyPath, firstID: id}
}

// open opens the configured store with the key file's current keys.
func (k keyTestStore) open(t *testing.T) (store.Store, *keyring.Keyring) {
	t.Helper()
	ring, err := keyring.LoadFile(k.keyPath)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := config.LoadWorker()
	if err != nil {
		t.Fatal(err)
	}
	s, _, err := store.Open(t.Context(), cfg.Store, cfg.SqlitePath, cfg.PostgresDSN, ring)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, ring
}

// seed writes n records under the key file's current primary key and returns them.
func (k keyTestStore) seed(t *testing.T, n int) map[string]store.Record {
	t.Helper()
	s, _ := k.open(t)
	recs := map[string]store.Record{}
	for i := range n {
		rec := store.Record{
			ID:       fmt.Sprintf("cred-%03d", i),
			Provider: "example",
			Secrets:  store.Secrets{AccessToken: fmt.Sprintf("access-%d", i), RefreshToken: fmt.Sprintf("refresh-%d", i)},
		}
		put, err := s.Put(t.Context(), rec)
		if err != nil {
			t.Fatal(err)
		}
		if i%3 == 0 { // some records at version 2
			put.Secrets.AccessToken += "-b"
			// Commits are fenced: the writer holds the refresh lease.
			if _, err := s.AcquireLease(t.Context(), rec.ID, "test-writer", time.Minute); err != nil {
				t.Fatal(err)
			}
			if put, err = s.CompareAndSwap(t.Context(), put, 1, "test-writer"); err != nil {
				t.Fatal(err)
			}
		}
		recs[rec.ID] = put
	}
	return recs
}

// checkRecords reads every record through the key file as it is now and checks that
// version and secrets are what was written.
func (k keyTestStore) checkRecords(t *testing.T, want map[string]store.Record) {
	t.Helper()
	s, _ := k.open(t)
	for id, w := range want {
		got, err := s.Get(t.Context(), id)
		if err != nil {
			t.Errorf("Get(%q): %v", id, err)
			continue
		}
		if got.Version != w.Version || got.Secrets != w.Secrets || !got.UpdatedAt.Equal(w.UpdatedAt) {
			t.Errorf("%s: version %d (want %d), UpdatedAt %v (want %v), secrets equal %v", id, got.Version, w.Version, got.UpdatedAt, w.UpdatedAt, got.Secrets == w.Secrets)
		}
	}
}

func (k keyTestStore) keyIDs(t *testing.T) map[string]int {
	t.Helper()
	s, _ := k.open(t)
	counts, err := s.KeyIDs(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	return counts
}

func checkStdout(t *testing.T, r result, want ...string) {
	t.Helper()
	for _, w := range want {
		if !strings.Contains(r.stdout, w) {
			t.Errorf("stdout does not mention %q:\n%s", w, r.stdout)
		}
	}
}

func TestKeyRotationSQLite(t *testing.T)   { testKeyRotation(t, setupSQLite(t)) }
func TestKeyRotationPostgres(t *testing.T) { testKeyRotation(t, setupPostgres(t)) }

// testKeyRotation follows the README's procedure: add a key, rotate, remove the old key.
func testKeyRotation(t *testing.T, k keyTestStore) {
	recs := k.seed(t, 7)
	old := k.firstID

	// Nothing to do yet: everything is under the only key.
	r := runWorker(t, "-rotate-keys")
	r.check(t, 0)
	checkStdout(t, r, "0 of 7 records to reseal under key "+old, "records per key ID: "+old+"=7", "every record is sealed under key "+old+"\n")

	r = runWorker(t, "-new-key")
	r.check(t, 0)
	checkStdout(t, r, "as the primary key (previous primary "+old+" kept)", "-rotate-keys")
	ring, err := keyring.LoadFile(k.keyPath)
	if err != nil {
		t.Fatal(err)
	}
	newID := ring.PrimaryID()
	if newID == old || len(ring.IDs()) != 2 {
		t.Fatalf("after -new-key the ring is %v", ring)
	}
	assertMode(t, k.keyPath, 0o600)
	k.checkRecords(t, recs) // the old rows still read

	// The old key cannot go while rows use it, nor can the primary.
	before, _ := os.ReadFile(k.keyPath)
	r = runWorker(t, "-remove-key", old)
	r.check(t, 2, "7 records are still sealed under key "+old, "-rotate-keys")
	r = runWorker(t, "-remove-key", newID)
	r.check(t, 2, "is the primary key")
	if after, _ := os.ReadFile(k.keyPath); !bytes.Equal(before, after) {
		t.Fatal("a refused -remove-key changed the key file")
	}

	r = runWorker(t, "-rotate-keys")
	r.check(t, 0)
	checkStdout(t, r,
		fmt.Sprintf("7 of 7 records to reseal under key %s (%s=7)", newID, old),
		"resealed 7/7 under key "+newID,
		"records per key ID: "+newID+"=7\n",
		"no record uses "+old+" any more", "Temporal history")
	if got := k.keyIDs(t); !maps.Equal(got, map[string]int{newID: 7}) {
		t.Errorf("KeyIDs after rotation = %v", got)
	}
	k.checkRecords(t, recs) // versions and secrets unchanged

	// Running it again finds nothing to do.
	r = runWorker(t, "-rotate-keys")
	r.check(t, 0)
	checkStdout(t, r, "0 of 7 records to reseal", "records per key ID: "+newID+"=7")
	if strings.Contains(r.stdout, "resealed") {
		t.Errorf("second rotation resealed something:\n%s", r.stdout)
	}

	r = runWorker(t, "-remove-key", old)
	r.check(t, 0)
	checkStdout(t, r, "removed key "+old)
	ring, err = keyring.LoadFile(k.keyPath)
	if err != nil {
		t.Fatal(err)
	}
	if ids := ring.IDs(); len(ids) != 1 || ids[0] != newID {
		t.Fatalf("after -remove-key the ring holds %v, want [%s]", ids, newID)
	}
	assertMode(t, k.keyPath, 0o600)
	k.checkRecords(t, recs) // everything reads with the new key alone
	for _, out := range []string{r.stdout, r.stderr} {
		if strings.Contains(out, `"keys"`) || strings.Contains(out, "access-") {
			t.Errorf("output shows key file content or secrets:\n%s", out)
		}
	}
}

// cancellingStore cancels the rotation's context after a number of reseals, as a
// Ctrl-C in the middle of a rotation would.
type cancellingStore struct {
	store.Store
	after  int32
	n      atomic.Int32
	cancel context.CancelFunc
}

func (c *cancellingStore) Reseal(ctx context.Context, id string) (bool, error) {
	changed, err := c.Store.Reseal(ctx, id)
	if c.n.Add(1) == c.after {
		c.cancel()
	}
	return changed, err
}

func TestKeyRotationInterruptedAndResumedSQLite(t *testing.T) {
	testKeyRotationInterrupted(t, setupSQLite(t))
}

func TestKeyRotationInterruptedAndResumedPostgres(t *testing.T) {
	testKeyRotationInterrupted(t, setupPostgres(t))
}

func testKeyRotationInterrupted(t *testing.T, k keyTestStore) {
	recs := k.seed(t, 10)
	newID, _, err := keyring.AddKey(k.keyPath)
	if err != nil {
		t.Fatal(err)
	}
	s, ring := k.open(t)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var out bytes.Buffer
	err = rotateKeys(ctx, &cancellingStore{Store: s, after: 4, cancel: cancel}, ring, "test store", 3, &out)
	if err == nil || !strings.Contains(err.Error(), "interrupted after resealing 4/10") || !strings.Contains(err.Error(), "run worker -rotate-keys again") {
		t.Fatalf("interrupted rotation error = %v\noutput:\n%s", err, out.String())
	}
	for _, want := range []string{"10 of 10 records to reseal", "resealed 3/10 under key " + newID, "resealed 4/10 under key " + newID} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output does not mention %q:\n%s", want, out.String())
		}
	}
	if got := k.keyIDs(t); !maps.Equal(got, map[string]int{k.firstID: 6, newID: 4}) {
		t.Fatalf("KeyIDs after the interruption = %v, want %s=6 %s=4", got, k.firstID, newID)
	}
	k.checkRecords(t, recs)

	r := runWorker(t, "-rotate-keys")
	r.check(t, 0)
	checkStdout(t, r, "6 of 10 records to reseal", "resealed 6/6 under key "+newID, "records per key ID: "+newID+"=10")
	k.checkRecords(t, recs)
}

// A worker still sealing with the old key during the rotation leaves rows behind: the
// rotation says so and fails, and the next run finishes.
func TestKeyRotationReportsLeftovers(t *testing.T) {
	k := setupSQLite(t)
	k.seed(t, 3)
	oldRing, err := keyring.LoadFile(k.keyPath)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := keyring.AddKey(k.keyPath); err != nil {
		t.Fatal(err)
	}
	s, ring := k.open(t)
	lagging, _ := k.openWith(t, oldRing)
	st := &writeDuringRotation{Store: s, lagging: lagging}
	var out bytes.Buffer
	err = rotateKeys(t.Context(), st, ring, "test store", 100, &out)
	if err == nil || !strings.Contains(err.Error(), "1 records are still sealed under other keys") || !strings.Contains(err.Error(), "restart every worker") {
		t.Fatalf("rotation error = %v, want leftovers reported\n%s", err, out.String())
	}
	r := runWorker(t, "-rotate-keys")
	r.check(t, 0)
	checkStdout(t, r, "1 of 4 records to reseal", "resealed 1/1")
}

func (k keyTestStore) openWith(t *testing.T, ring *keyring.Keyring) (store.Store, *keyring.Keyring) {
	t.Helper()
	cfg, err := config.LoadWorker()
	if err != nil {
		t.Fatal(err)
	}
	s, _, err := store.Open(t.Context(), cfg.Store, cfg.SqlitePath, cfg.PostgresDSN, ring)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, ring
}

// writeDuringRotation adds a record through a lagging worker's store on the first reseal.
type writeDuringRotation struct {
	store.Store
	lagging store.Store
	done    bool
}

func (w *writeDuringRotation) Reseal(ctx context.Context, id string) (bool, error) {
	if !w.done {
		w.done = true
		if _, err := w.lagging.Put(ctx, store.Record{ID: "zz-late", Secrets: store.Secrets{AccessToken: "late"}}); err != nil {
			return false, err
		}
	}
	return w.Store.Reseal(ctx, id)
}

func TestKeyCommandRefusals(t *testing.T) {
	t.Run("exclusive flags", func(t *testing.T) {
		setupSQLite(t)
		for _, args := range [][]string{{"-new-key", "-rotate-keys"}, {"-rotate-keys", "-remove-key", "x"}, {"-init-dev-key", "-rotate-keys"}} {
			r := runWorker(t, args...)
			r.check(t, 2, "exclude each other")
		}
	})
	t.Run("new key with a readable key file", func(t *testing.T) {
		k := setupSQLite(t)
		if err := os.Chmod(k.keyPath, 0o644); err != nil {
			t.Fatal(err)
		}
		before, _ := os.ReadFile(k.keyPath)
		r := runWorker(t, "-new-key")
		r.check(t, 1, "has mode 0644", "chmod 600")
		if after, _ := os.ReadFile(k.keyPath); !bytes.Equal(before, after) {
			t.Error("-new-key changed a key file it refused")
		}
	})
	t.Run("rotate without the old key", func(t *testing.T) {
		k := setupSQLite(t)
		k.seed(t, 2)
		// Replace the key file by an unrelated one: the rows' key is gone.
		if err := os.Remove(k.keyPath); err != nil {
			t.Fatal(err)
		}
		key := make([]byte, keyring.KeySize)
		_, _ = rand.Read(key)
		content := fmt.Sprintf(`{"primary":"other","keys":{"other":%q}}`, base64.StdEncoding.EncodeToString(key))
		if err := os.WriteFile(k.keyPath, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		r := runWorker(t, "-rotate-keys")
		r.check(t, 1, "sealed under keys the key file does not hold: "+k.firstID+" (2 records)")
	})
	t.Run("remove unknown key", func(t *testing.T) {
		k := setupSQLite(t)
		r := runWorker(t, "-remove-key", "nope")
		r.check(t, 1, `holds no key "nope"`, k.firstID)
	})
}
