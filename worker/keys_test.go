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

	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/testsuite"

	"github.com/tokenwarden/tokenwarden/internal/apikeys"
	"github.com/tokenwarden/tokenwarden/internal/codec"
	"github.com/tokenwarden/tokenwarden/internal/config"
	"github.com/tokenwarden/tokenwarden/internal/keyring"
	"github.com/tokenwarden/tokenwarden/internal/store"
	"github.com/tokenwarden/tokenwarden/internal/store/storetest"
	"github.com/tokenwarden/tokenwarden/workflows"
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

	startDevServer(t, ring) // -remove-key reads the running histories: none here
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

func TestKeyRotationAPIKeysSQLite(t *testing.T)   { testKeyRotationAPIKeys(t, setupSQLite(t)) }
func TestKeyRotationAPIKeysPostgres(t *testing.T) { testKeyRotationAPIKeys(t, setupPostgres(t)) }

// API key rows are authenticated under the key file's keys too: -remove-key refuses
// while one is under the key, -rotate-keys moves them, and they still authenticate
// with the new key alone.
func testKeyRotationAPIKeys(t *testing.T, k keyTestStore) {
	s, _ := k.open(t)
	created, err := apikeys.Create(t.Context(), s, "billing", []string{"crm"})
	if err != nil {
		t.Fatal(err)
	}
	old := k.firstID
	runWorker(t, "-new-key").check(t, 0)

	r := runWorker(t, "-remove-key", old)
	r.check(t, 2, "1 API keys are still authenticated under key "+old, "-rotate-keys")
	r = runWorker(t, "-rotate-keys")
	r.check(t, 0)
	checkStdout(t, r, "re-authenticated 1 API keys under key ")
	_, ringNow := k.open(t)
	startDevServer(t, ringNow)
	runWorker(t, "-remove-key", old).check(t, 0)

	s, ring := k.open(t)
	if len(ring.IDs()) != 1 || ring.IDs()[0] == old {
		t.Fatalf("ring after -remove-key: %v", ring)
	}
	got, err := s.LookupAPIKey(t.Context(), created.Info.ID)
	if err != nil || got.Revoked() || !got.Allows("crm") {
		t.Fatalf("LookupAPIKey with the new key alone = %+v, %v", got, err)
	}
}

// cancellingStore cancels the rotation's context after a number of reseals, as a
// Ctrl-C in the middle of a rotation would.
type cancellingStore struct {
	rotationStore
	after  int32
	n      atomic.Int32
	cancel context.CancelFunc
}

func (c *cancellingStore) Reseal(ctx context.Context, id string) (bool, error) {
	changed, err := c.rotationStore.Reseal(ctx, id)
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
	err = rotateKeys(ctx, &cancellingStore{rotationStore: s, after: 4, cancel: cancel}, ring, "test store", 3, &out)
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
	st := &writeDuringRotation{rotationStore: s, lagging: lagging}
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
	rotationStore
	lagging store.Records
	done    bool
}

func (w *writeDuringRotation) Reseal(ctx context.Context, id string) (bool, error) {
	if !w.done {
		w.done = true
		if _, err := w.lagging.Put(ctx, store.Record{ID: "zz-late", Secrets: store.Secrets{AccessToken: "late"}}); err != nil {
			return false, err
		}
	}
	return w.rotationStore.Reseal(ctx, id)
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

// startDevServer starts a Temporal dev server from the temporal CLI the Makefile builds
// into bin/ (TOKENWARDEN_TEST_TEMPORAL_BIN overrides it), points the worker's
// configuration at it and returns a client whose payloads are encrypted with ring.
func startDevServer(t *testing.T, ring *keyring.Keyring) client.Client {
	t.Helper()
	bin := os.Getenv("TOKENWARDEN_TEST_TEMPORAL_BIN")
	if bin == "" {
		var err error
		if bin, err = filepath.Abs(filepath.Join("..", "bin", "temporal")); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("the temporal CLI is missing at %s: run make test, which builds it", bin)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	var serverLog bytes.Buffer
	dc := codec.DataConverter(ring)
	srv, err := testsuite.StartDevServer(ctx, testsuite.DevServerOptions{
		ExistingPath:  bin,
		LogLevel:      "error",
		ClientOptions: &client.Options{DataConverter: dc, FailureConverter: codec.FailureConverter(dc)},
		Stdout:        &serverLog,
		Stderr:        &serverLog,
	})
	if err != nil {
		t.Fatalf("start the Temporal dev server: %v\n%s", err, serverLog.String())
	}
	t.Cleanup(func() { _ = srv.Stop() })
	t.Setenv("TOKENWARDEN_TEMPORAL_ADDRESS", srv.FrontendHostPort())
	return srv.Client()
}

// replaceKeyFile writes a key file holding one random key under id in place of k's.
func (k keyTestStore) replaceKeyFile(t *testing.T, id string) {
	t.Helper()
	key := make([]byte, keyring.KeySize)
	_, _ = rand.Read(key)
	content := fmt.Sprintf(`{"primary":%q,"keys":{%q:%q}}`, id, id, base64.StdEncoding.EncodeToString(key))
	if err := os.Remove(k.keyPath); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(k.keyPath, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

// A worker started with the wrong key file says so at once (exit 2, before it dials
// Temporal) instead of running and failing every read; with the right one it passes the
// check (and here fails to reach Temporal, which is not listening).
func TestWorkerRefusesKeyFileWithoutTheStoreKeys(t *testing.T) {
	for _, tt := range []struct {
		name string // the switch below sets up each case's key file
		code int
		want []string
	}{
		{"key IDs missing", 2, nil},
		{"same key ID, other key", 2, []string{"refusing to start", "opens none of the 2 records"}},
		{"right key file", 1, []string{"cannot reach the Temporal server"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			k := setupSQLite(t)
			k.seed(t, 2)
			s, _ := k.open(t)
			if _, err := apikeys.Create(t.Context(), s, "billing", []string{"cred-000"}); err != nil {
				t.Fatal(err)
			}
			want := tt.want
			switch tt.name {
			case "key IDs missing":
				k.replaceKeyFile(t, "other")
				want = []string{"worker: refusing to start", k.firstID + " (2 records)", k.firstID + " (1 API keys)", "holds other", "right key file"}
			case "same key ID, other key":
				k.replaceKeyFile(t, k.firstID)
			}
			r := runWorker(t)
			r.check(t, tt.code, want...)
			if tt.code == 1 && strings.Contains(r.stderr, "refusing to start") {
				t.Errorf("the right key file was refused:\n%s", r.stderr)
			}
		})
	}
}

// -remove-key reads the current run of every running credential workflow: a key that
// one of them holds payloads under (in its start input, or in any later event such as a
// signal) is refused with the workflows named; once they are gone, it is removed.
func TestRemoveKeyRefusedWhileRunningHistoriesUseIt(t *testing.T) {
	k := setupSQLite(t)
	old := k.firstID
	ring0, err := keyring.LoadFile(k.keyPath)
	if err != nil {
		t.Fatal(err)
	}
	c0 := startDevServer(t, ring0) // seals under the old key
	ctx := t.Context()
	// No worker polls this queue: the runs stay open with their start events as written.
	start := func(c client.Client, id string) {
		t.Helper()
		opts := client.StartWorkflowOptions{ID: id, TaskQueue: "key-safety-test"}
		if _, err := c.ExecuteWorkflow(ctx, opts, workflows.WorkflowType, map[string]string{"id": id}); err != nil {
			t.Fatal(err)
		}
	}
	start(c0, "cred-old")

	runWorker(t, "-new-key").check(t, 0)
	ring1, err := keyring.LoadFile(k.keyPath)
	if err != nil {
		t.Fatal(err)
	}
	dc1 := codec.DataConverter(ring1)
	c1, err := client.Dial(client.Options{HostPort: os.Getenv("TOKENWARDEN_TEMPORAL_ADDRESS"), DataConverter: dc1, Logger: quietSDKLogger{}})
	if err != nil {
		t.Fatal(err)
	}
	defer c1.Close()
	start(c1, "cred-new")
	start(c1, "cred-new-signalled")
	// A signal sent by a client that still seals with the old key.
	if err := c0.SignalWorkflow(ctx, "cred-new-signalled", "", workflows.SignalRefreshNow, "now"); err != nil {
		t.Fatal(err)
	}
	waitRunning(t, c1, 3)

	before, _ := os.ReadFile(k.keyPath)
	r := runWorker(t, "-remove-key", old)
	r.check(t, 2, "refusing", "2 running workflows would no longer replay without key "+old, "cred-old (run ", "cred-new-signalled (run ", "continue-as-new")
	if strings.Contains(r.stderr, "cred-new (run") {
		t.Errorf("the refusal names a workflow whose run uses only the new key:\n%s", r.stderr)
	}
	if after, _ := os.ReadFile(k.keyPath); !bytes.Equal(before, after) {
		t.Fatal("a refused -remove-key changed the key file")
	}

	for _, id := range []string{"cred-old", "cred-new-signalled"} {
		if err := c1.TerminateWorkflow(ctx, id, "", "test: moved on"); err != nil {
			t.Fatal(err)
		}
	}
	waitRunning(t, c1, 1)
	r = runWorker(t, "-remove-key", old)
	r.check(t, 0)
	checkStdout(t, r, "removed key "+old)
}

// waitRunning waits until visibility lists n running credential workflows.
func waitRunning(t *testing.T, c client.Client, n int) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := c.ListWorkflow(t.Context(), &workflowservice.ListWorkflowExecutionsRequest{
			Query: fmt.Sprintf("WorkflowType = '%s' AND ExecutionStatus = 'Running'", workflows.WorkflowType),
		})
		if err == nil && len(resp.GetExecutions()) == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("visibility does not list %d running workflows: %d, %v", n, len(resp.GetExecutions()), err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// quietSDKLogger drops the SDK's log lines.
type quietSDKLogger struct{}

func (quietSDKLogger) Debug(string, ...any) {}
func (quietSDKLogger) Info(string, ...any)  {}
func (quietSDKLogger) Warn(string, ...any)  {}
func (quietSDKLogger) Error(string, ...any) {}
