package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/tokenwarden/tokenwarden/internal/keyring"
	"github.com/tokenwarden/tokenwarden/internal/store"
	"github.com/tokenwarden/tokenwarden/workflows"
)

// env is one test's private corner of the stack: its own task queue and data directory.
type env struct {
	t         *testing.T
	taskQueue string
	dataDir   string
}

func newEnv(t *testing.T) *env {
	t.Helper()
	name := strings.NewReplacer("/", "-", "_", "-").Replace(t.Name())
	return &env{t: t, taskQueue: "tq-" + name, dataDir: t.TempDir()}
}

// vars is the TOKENWARDEN_* environment of the worker and the starter.
func (e *env) vars() []string {
	return append(os.Environ(),
		"TOKENWARDEN_TEMPORAL_ADDRESS="+stack.address,
		"TOKENWARDEN_TASK_QUEUE="+e.taskQueue,
		"TOKENWARDEN_DATA_DIR="+e.dataDir,
		"TOKENWARDEN_PROVIDER_TIMEOUT=3s",
		"TOKENWARDEN_LEASE_DURATION=6s",
	)
}

// lockedBuffer collects a child process's output for the test log.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// worker is a running worker process.
type worker struct {
	cmd    *exec.Cmd
	output *lockedBuffer
	done   chan error
}

// startWorker runs the worker binary as its own OS process and stops it (SIGTERM) at
// the end of the test.
func (e *env) startWorker() *worker {
	e.t.Helper()
	w := &worker{output: &lockedBuffer{}, done: make(chan error, 1)}
	w.cmd = exec.Command(stack.workerBin, "-init-dev-key")
	w.cmd.Env = e.vars()
	w.cmd.Stdout, w.cmd.Stderr = w.output, w.output
	if err := w.cmd.Start(); err != nil {
		e.t.Fatalf("start worker: %v", err)
	}
	go func() { w.done <- w.cmd.Wait() }()
	e.t.Cleanup(func() {
		w.stop(e.t)
		if e.t.Failed() {
			e.t.Logf("worker output:\n%s", w.output.String())
		}
	})
	return w
}

// stop sends SIGTERM and waits for a clean exit.
func (w *worker) stop(t *testing.T) {
	if w.cmd.ProcessState != nil {
		return
	}
	_ = w.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-w.done:
		if err != nil {
			t.Errorf("worker did not exit cleanly: %v", err)
		}
	case <-time.After(30 * time.Second):
		_ = w.cmd.Process.Kill()
		t.Errorf("worker did not stop within 30s of SIGTERM")
	}
}

// runStarter runs the starter binary and returns its exit code and output.
func (e *env) runStarter(stdin string, args ...string) (int, string) {
	e.t.Helper()
	cmd := exec.Command(stack.starterBin, args...)
	cmd.Env = e.vars()
	cmd.Stdin = strings.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	if err != nil {
		if ee, ok := err.(*exec.ExitError); ok {
			return ee.ExitCode(), string(out)
		}
		e.t.Fatalf("run starter: %v", err)
	}
	return 0, string(out)
}

// runTemporal runs the real temporal CLI against the test server.
func runTemporal(t *testing.T, args ...string) string {
	t.Helper()
	cmd := exec.Command(stack.temporalBin, append(args, "--address", stack.address)...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("temporal %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// writeJSON writes v as a file in the test's data directory and returns its path.
func (e *env) writeJSON(name string, v any) string {
	e.t.Helper()
	data, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		e.t.Fatal(err)
	}
	path := filepath.Join(e.t.TempDir(), name)
	if err := os.WriteFile(path, data, 0o600); err != nil {
		e.t.Fatal(err)
	}
	return path
}

// queryStatus asks the workflow for its status through the SDK client.
func queryStatus(t *testing.T, id string) (workflows.Status, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	v, err := stack.client.QueryWorkflow(ctx, id, "", workflows.QueryStatus)
	if err != nil {
		return workflows.Status{}, err
	}
	var st workflows.Status
	return st, v.Get(&st)
}

// waitFor polls cond every 200ms until it holds or the timeout passes.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	last := ""
	for time.Now().Before(deadline) {
		ok, state := cond()
		if ok {
			return
		}
		last = state
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("timed out after %s waiting for %s; last seen: %s", timeout, what, last)
}

// waitForStatus waits until the credential's status satisfies cond.
func waitForStatus(t *testing.T, id string, timeout time.Duration, what string, cond func(workflows.Status) bool) workflows.Status {
	t.Helper()
	var st workflows.Status
	waitFor(t, timeout, what, func() (bool, string) {
		var err error
		st, err = queryStatus(t, id)
		if err != nil {
			return false, err.Error()
		}
		b, _ := json.Marshal(st)
		return cond(st), string(b)
	})
	return st
}

// storedRecord reads the credential from the worker's SQLite store, decrypting with the
// key file the worker created. SQLite's WAL lets it read while the worker runs.
func (e *env) storedRecord(id string) store.Record {
	e.t.Helper()
	ring, err := keyring.LoadFile(filepath.Join(e.dataDir, "keys.json"))
	if err != nil {
		e.t.Fatalf("load key file: %v", err)
	}
	ctx := context.Background()
	s, err := store.OpenSQLite(ctx, filepath.Join(e.dataDir, "tokens.db"), ring, nil)
	if err != nil {
		e.t.Fatalf("open store: %v", err)
	}
	defer s.Close()
	rec, err := s.Get(ctx, id)
	if err != nil {
		e.t.Fatalf("read %s from the store: %v", id, err)
	}
	return rec
}

// historyLength counts the events of the workflow's current run.
func historyLength(t *testing.T, id string) int {
	t.Helper()
	it := stack.client.GetWorkflowHistory(context.Background(), id, "", false, 0)
	n := 0
	for it.HasNext() {
		if _, err := it.Next(); err != nil {
			t.Fatalf("read history of %s: %v", id, err)
		}
		n++
	}
	return n
}
