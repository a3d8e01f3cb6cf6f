package e2e

import (
	"context"
	"database/sql"
	"encoding/json"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/testsuite"

	"github.com/tokenwarden/tokenwarden/internal/codec"
	"github.com/tokenwarden/tokenwarden/internal/keyring"
	"github.com/tokenwarden/tokenwarden/internal/provider"
	"github.com/tokenwarden/tokenwarden/internal/provider/oauth2/oauth2test"
	"github.com/tokenwarden/tokenwarden/internal/seal"
	"github.com/tokenwarden/tokenwarden/internal/store" // also registers the "sqlite" driver lockStore uses
	"github.com/tokenwarden/tokenwarden/internal/testlog"
	"github.com/tokenwarden/tokenwarden/internal/testnet"
	"github.com/tokenwarden/tokenwarden/workflows"
)

// env is one test's private corner of the stack: its own task queue and data directory.
type env struct {
	t         *testing.T
	taskQueue string
	dataDir   string
	// address is the Temporal frontend the worker and the starter use: the shared dev
	// server unless a test runs its own (see startPrivateServer).
	address string
	// httpAddr is the codec endpoint's host:port of the test's latest worker (each
	// worker process gets a free port of its own); empty before the first.
	httpAddr string
}

// codecEndpoints maps a test to the codec endpoint of its latest worker, for
// runTemporal, which the tests call with t alone.
var codecEndpoints sync.Map // *testing.T -> string

func newEnv(t *testing.T) *env {
	t.Helper()
	name := strings.NewReplacer("/", "-", "_", "-").Replace(t.Name())
	return &env{t: t, taskQueue: "tq-" + name, dataDir: t.TempDir(), address: stack.address}
}

// vars is the TOKENWARDEN_* environment of the worker and the starter. Every worker
// uses the package's shared key file (the shared client decodes with it); the starter
// finds it there too and encrypts locally. The worker's codec endpoint address is
// added by startWorkerBin, the starter's by runStarter.
func (e *env) vars() []string {
	return append(os.Environ(),
		"TOKENWARDEN_TEMPORAL_ADDRESS="+e.address,
		"TOKENWARDEN_TASK_QUEUE="+e.taskQueue,
		"TOKENWARDEN_DATA_DIR="+e.dataDir,
		"TOKENWARDEN_KEY_FILE="+stack.keyFile,
		// The shortest lease the worker accepts for these (internal/leasetiming):
		// 2 x 3 s + 2 s before the commit, 4 s of commit retries, 2 s of margin.
		"TOKENWARDEN_PROVIDER_TIMEOUT=3s",
		"TOKENWARDEN_COMMIT_RETRY=4s",
		"TOKENWARDEN_LEASE_DURATION=15s",
		// The fakes' tokens live a few seconds, so that the tests see many cycles.
		"TOKENWARDEN_MIN_ACCESS_LIFETIME=1s",
		"TOKENWARDEN_SEAL_BEARER_TOKEN="+sealToken,
		"TOKENWARDEN_CODEC_BEARER_TOKEN="+codecToken,
	)
}

// sealToken lets a starter without the key file seal through the worker (POST /seal).
const sealToken = "e2e-seal-token-7f3a91"

// codecToken is the bearer token of every test worker's codec endpoint (the starter
// sends it from the same variable, runTemporal with --codec-auth), so that the tests
// decode as a deployment beyond loopback must: TestWebUI's worker alone has none,
// since the Web UI cannot send one.
const codecToken = "e2e-codec-token-20c4d8"

// worker is a running worker process.
type worker struct {
	cmd    *exec.Cmd
	output *testlog.Buffer
	exited chan struct{} // closed when the process has exited; err is then set
	err    error
	// stopped: the test ended the process itself (stop, kill9) or saw it exit (waitExit).
	stopped bool
}

// startWorker runs the worker binary as its own OS process and stops it (SIGTERM) at
// the end of the test.
func (e *env) startWorker() *worker {
	e.t.Helper()
	return e.startWorkerBin(stack.workerBin)
}

// startWorkerBin runs bin (the normal or the faultinject worker) with the test's
// environment plus extra variables.
func (e *env) startWorkerBin(bin string, extra ...string) *worker {
	e.t.Helper()
	w := &worker{output: &testlog.Buffer{}, exited: make(chan struct{})}
	// A free port per worker process: a restarted worker must not wait for its
	// predecessor's socket, and parallel tests must not share an endpoint.
	e.httpAddr = testnet.FreeAddr(e.t)
	codecEndpoints.Store(e.t, "http://"+e.httpAddr+"/codec")
	e.t.Cleanup(func() { codecEndpoints.Delete(e.t) })
	w.cmd = exec.Command(bin, "-init-dev-key")
	w.cmd.Env = append(e.vars(), "TOKENWARDEN_HTTP_ADDR="+e.httpAddr)
	w.cmd.Env = append(w.cmd.Env, extra...)
	w.cmd.Stdout, w.cmd.Stderr = w.output, w.output
	if err := w.cmd.Start(); err != nil {
		e.t.Fatalf("start worker: %v", err)
	}
	go func() {
		w.err = w.cmd.Wait()
		close(w.exited)
	}()
	e.t.Cleanup(func() {
		w.stop(e.t)
		if e.t.Failed() {
			e.t.Logf("worker (pid %d) output:\n%s", w.cmd.Process.Pid, w.output.String())
		}
	})
	return w
}

// stop sends SIGTERM and waits for a clean exit.
func (w *worker) stop(t *testing.T) {
	select {
	case <-w.exited:
		if !w.stopped {
			t.Errorf("worker exited on its own: %v", w.err)
		}
		w.stopped = true
		return
	default:
	}
	w.stopped = true
	_ = w.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-w.exited:
		if w.err != nil {
			t.Errorf("worker did not exit cleanly: %v", w.err)
		}
	case <-time.After(30 * time.Second):
		_ = w.cmd.Process.Kill()
		t.Errorf("worker did not stop within 30s of SIGTERM")
	}
}

// kill9 ends the worker with SIGKILL, as abruptly as a power cut: nothing it holds in
// memory survives, no deferred function runs, and the kernel closes its connections.
func (w *worker) kill9(t *testing.T) {
	t.Helper()
	w.stopped = true
	if err := w.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatalf("kill -9 worker: %v", err)
	}
	select {
	case <-w.exited:
	case <-time.After(10 * time.Second):
		t.Fatal("worker still running 10s after SIGKILL")
	}
}

// waitExit waits for a worker that is expected to end by itself and returns the signal
// that ended it (0 if it exited normally).
func (w *worker) waitExit(t *testing.T, timeout time.Duration) syscall.Signal {
	t.Helper()
	select {
	case <-w.exited:
	case <-time.After(timeout):
		t.Fatalf("worker still running after %s", timeout)
	}
	w.stopped = true
	if ws, ok := w.cmd.ProcessState.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return ws.Signal()
	}
	return 0
}

// runStarter runs the starter binary and returns its exit code and output.
func (e *env) runStarter(stdin string, args ...string) (int, string) {
	e.t.Helper()
	return e.runStarterEnv(nil, stdin, args...)
}

// runStarterEnv is runStarter with extra environment variables (later ones win).
func (e *env) runStarterEnv(extra []string, stdin string, args ...string) (int, string) {
	e.t.Helper()
	cmd := exec.Command(stack.starterBin, args...)
	cmd.Env = e.vars()
	if e.httpAddr != "" {
		cmd.Env = append(cmd.Env, "TOKENWARDEN_CODEC_ENDPOINT=http://"+e.httpAddr+"/codec",
			"TOKENWARDEN_SEAL_ENDPOINT=http://"+e.httpAddr+"/seal")
	}
	cmd.Env = append(cmd.Env, extra...)
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

// runTemporal runs the real temporal CLI against the shared test server, with
// --codec-endpoint pointing at the test's latest worker once it has one: payloads then
// go into history encrypted, and query and update results come back decrypted.
func runTemporal(t *testing.T, args ...string) string {
	t.Helper()
	args = append(args, "--address", stack.address)
	if ep, ok := codecEndpoints.Load(t); ok {
		args = append(args, "--codec-endpoint", ep.(string), "--codec-auth", "Bearer "+codecToken)
	}
	cmd := exec.Command(stack.temporalBin, args...)
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

// queryStatus asks the workflow for its status through the shared server's client.
func queryStatus(t *testing.T, id string) (workflows.Status, error) {
	return queryStatusOn(stack.client, id)
}

// queryStatusOn asks the workflow for its status through c.
func queryStatusOn(c client.Client, id string) (workflows.Status, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	v, err := c.QueryWorkflow(ctx, id, "", workflows.QueryStatus)
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
	return waitForStatusOn(t, stack.client, id, timeout, what, cond)
}

// waitForStatusOn is waitForStatus through the client c.
func waitForStatusOn(t *testing.T, c client.Client, id string, timeout time.Duration, what string, cond func(workflows.Status) bool) workflows.Status {
	t.Helper()
	var st workflows.Status
	waitFor(t, timeout, what, func() (bool, string) {
		var err error
		st, err = queryStatusOn(c, id)
		if err != nil {
			return false, err.Error()
		}
		b, _ := json.Marshal(st)
		return cond(st), string(b)
	})
	return st
}

// storedRecord reads the credential from the worker's SQLite store, decrypting with the
// shared key file. SQLite's WAL lets it read while the worker runs.
func (e *env) storedRecord(id string) store.Record {
	e.t.Helper()
	s := e.openStore()
	defer s.Close()
	rec, err := s.Get(context.Background(), id)
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

// openStore opens the worker's token store from the test process, with the shared key
// file.
func (e *env) openStore() *store.SQLite {
	e.t.Helper()
	ring, err := keyring.LoadFile(stack.keyFile)
	if err != nil {
		e.t.Fatalf("load key file: %v", err)
	}
	s, err := store.OpenSQLite(context.Background(), filepath.Join(e.dataDir, "tokens.db"), ring, nil)
	if err != nil {
		e.t.Fatalf("open store: %v", err)
	}
	return s
}

// lockStore takes SQLite's write lock on the worker's token store (BEGIN EXCLUSIVE on a
// connection of the test's own) and holds it until release is called: every write of
// the worker waits out its busy timeout and fails with SQLITE_BUSY meanwhile. In WAL
// mode readers are not blocked. version reads the credential's stored version through
// the locked connection.
func (e *env) lockStore() (version func(id string) int64, release func()) {
	e.t.Helper()
	ctx := context.Background()
	q := url.Values{}
	q.Add("_pragma", "busy_timeout(10000)")
	u := url.URL{Scheme: "file", Path: filepath.Join(e.dataDir, "tokens.db"), RawQuery: q.Encode()}
	db, err := sql.Open("sqlite", u.String())
	if err != nil {
		e.t.Fatalf("open the token store for locking: %v", err)
	}
	conn, err := db.Conn(ctx)
	if err != nil {
		db.Close()
		e.t.Fatalf("connect to the token store: %v", err)
	}
	if _, err := conn.ExecContext(ctx, "BEGIN EXCLUSIVE"); err != nil {
		conn.Close()
		db.Close()
		e.t.Fatalf("lock the token store: %v", err)
	}
	var once sync.Once
	release = func() {
		once.Do(func() {
			if _, err := conn.ExecContext(ctx, "ROLLBACK"); err != nil {
				e.t.Errorf("unlock the token store: %v", err)
			}
			conn.Close()
			db.Close()
		})
	}
	e.t.Cleanup(release)
	version = func(id string) int64 {
		var v int64
		if err := conn.QueryRowContext(ctx, "SELECT version FROM credentials WHERE id = ?", id).Scan(&v); err != nil {
			e.t.Fatalf("read the version of %s under the lock: %v", id, err)
		}
		return v
	}
	return version, release
}

// startFake runs a fake OAuth2 provider (token and introspection endpoints) that knows
// the e2e client.
func startFake(t *testing.T, opts oauth2test.Options) *oauth2test.Server {
	t.Helper()
	opts.ClientID, opts.ClientSecret = clientID, clientSecret
	fake := oauth2test.New(opts)
	fake.Start()
	t.Cleanup(fake.Close)
	return fake
}

// testCredential describes a credential a test starts through the SDK client.
type testCredential struct {
	id   string
	fake *oauth2test.Server
	// introspect gives the credential the fake's RFC 7662 endpoint.
	introspect bool
}

// sealedSeed seals seed for the credential id with in's provider and configuration, as
// the starter does with the key file.
func sealedSeed(t *testing.T, id string, in workflows.CredentialInput, seed workflows.Seed) *workflows.SeedEnvelope {
	t.Helper()
	s, err := seal.NewSealer(stack.ring, nil)
	if err != nil {
		t.Fatal(err)
	}
	env, err := s.SealFor(seal.Request{ID: id, Provider: in.Provider, Config: in.Config, Seed: seed})
	if err != nil {
		t.Fatal(err)
	}
	return &env
}

// startCredential seeds a token family named after the credential at the fake and
// starts its workflow on the test's task queue through c, without an access token, so
// the first refresh runs at once. It returns the seed refresh token. The workflow is
// terminated when the test ends.
func (e *env) startCredential(c client.Client, cred testCredential) (seed string) {
	e.t.Helper()
	seed = cred.fake.Seed(cred.id)
	dur := func(d time.Duration) *workflows.Duration { v := workflows.Duration(d); return &v }
	cfg := provider.Config{TokenURL: cred.fake.URL() + oauth2test.TokenPath, ClientID: clientID}
	if cred.introspect {
		cfg.IntrospectionURL = cred.fake.IntrospectionURL()
	}
	in := workflows.CredentialInput{
		Provider: "oauth2",
		Config:   cfg,
		Policy: workflows.Policy{
			RefreshMargin: dur(time.Second),
			Jitter:        dur(200 * time.Millisecond),
			RetryInitial:  dur(time.Second),
			RetryMax:      dur(5 * time.Second),
		},
	}
	in.Seed = sealedSeed(e.t, cred.id, in, workflows.Seed{RefreshToken: seed, ClientSecret: clientSecret})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: cred.id, TaskQueue: e.taskQueue},
		workflows.WorkflowType, in); err != nil {
		e.t.Fatalf("start credential %s: %v", cred.id, err)
	}
	e.t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = c.TerminateWorkflow(ctx, cred.id, "", "test finished")
	})
	return seed
}

// privateServer is a Temporal dev server of one test's own.
type privateServer struct {
	t        *testing.T
	hostPort string
	// extraPorts pins the HTTP API and metrics ports across restarts. Left to the CLI,
	// each start picks random free ones, and the port the frontend just released is a
	// likely pick: the restarted server then collides with itself.
	extraPorts []string
	dbFile     string
	srv        *testsuite.DevServer // nil while stopped
	log        *testlog.Buffer
}

// startPrivateServer starts a Temporal dev server of the test's own on a fixed free
// port, persisting to a SQLite file in the test's temp dir, so the test can stop and
// restart it (same port, same file) without disturbing the shared one.
func startPrivateServer(t *testing.T) *privateServer {
	t.Helper()
	p := &privateServer{t: t, hostPort: testnet.FreeAddr(t), dbFile: filepath.Join(t.TempDir(), "temporal.db"), log: &testlog.Buffer{}}
	for _, flag := range []string{"--http-port", "--metrics-port"} {
		_, port, _ := net.SplitHostPort(testnet.FreeAddr(t))
		p.extraPorts = append(p.extraPorts, flag, port)
	}
	p.start()
	t.Cleanup(func() {
		p.stop()
		if t.Failed() {
			t.Logf("private dev server output:\n%s", p.log.String())
		}
	})
	return p
}

// start (re)starts the server on the same port and database file.
func (p *privateServer) start() {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	srv, err := testsuite.StartDevServer(ctx, testsuite.DevServerOptions{
		ExistingPath: stack.temporalBin,
		LogLevel:     "error",
		DBFilename:   p.dbFile,
		ClientOptions: &client.Options{HostPort: p.hostPort, Logger: quietLogger(),
			DataConverter: codec.DataConverter(stack.ring), FailureConverter: codec.FailureConverter(codec.DataConverter(stack.ring))},
		ExtraArgs: append(append([]string{}, searchAttributeArgs...), p.extraPorts...),
		Stdout:    p.log,
		Stderr:    p.log,
	})
	if err != nil {
		p.t.Fatalf("start a private Temporal dev server on %s: %v\n%s", p.hostPort, err, p.log.String())
	}
	p.srv = srv
}

// client is a client of the running server; it is closed when the server stops.
func (p *privateServer) client() client.Client { return p.srv.Client() }

// stop closes the client and stops the server process (SIGINT, then waits for exit).
func (p *privateServer) stop() {
	if p.srv == nil {
		return
	}
	p.srv.Client().Close()
	if err := p.srv.Stop(); err != nil {
		p.t.Logf("private dev server exited with %v", err)
	}
	p.srv = nil
}
