// Package harness holds the machinery shared by tokenwarden's load programs (the soak,
// internal/loadtest/soak, and the benchmark, internal/loadtest/bench): a private Temporal dev server
// started from bin/temporal in a process group of its own, the fake OAuth2 provider on a
// loopback listener behind a recording proxy, the worker binary as a subprocess with a
// generated key file, the token store read back, and the table the programs print.
package harness

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	sdklog "go.temporal.io/sdk/log"
	"go.temporal.io/sdk/testsuite"

	"github.com/tokenwarden/tokenwarden/internal/codec"
	"github.com/tokenwarden/tokenwarden/internal/keyring"
	"github.com/tokenwarden/tokenwarden/internal/provider/oauth2/oauth2test"
	"github.com/tokenwarden/tokenwarden/internal/seal"
	"github.com/tokenwarden/tokenwarden/internal/store"
)

// OwnGroupEnv makes a program that calls Trampoline first a trampoline: put itself in a
// new process group and exec the program the variable names. The dev server is started
// through it, so a Ctrl-C at the terminal (SIGINT to the foreground process group)
// reaches the program but not the server, and a partial summary can still query the
// workflows.
const OwnGroupEnv = "TOKENWARDEN_SOAK_EXEC_IN_OWN_GROUP"

// Trampoline must be the first call of main: when OwnGroupEnv is set it replaces this
// process with the program the variable names, in a process group of its own, and never
// returns. prog prefixes the error message.
func Trampoline(prog string) {
	target := os.Getenv(OwnGroupEnv)
	if target == "" {
		return
	}
	_ = syscall.Setpgid(0, 0)
	env := slices.DeleteFunc(os.Environ(), func(kv string) bool { return strings.HasPrefix(kv, OwnGroupEnv+"=") })
	err := syscall.Exec(target, append([]string{target}, os.Args[1:]...), env)
	fmt.Fprintf(os.Stderr, "%s: exec %s: %v\n", prog, target, err)
	os.Exit(127)
}

// devServerArgs tune the dev server for a fleet of thousands of workflows on one
// machine (scripts/stack.sh, behind `make run`, does the same but for the cache):
//
//   - SQLite in write-ahead-log mode with synchronous=NORMAL: a commit appends to the
//     log without waiting for the disk, which is synced at checkpoints; committed
//     transactions still survive the server process being killed, which is what the
//     soak does to it. With SQLite's defaults (a rollback journal, synchronous=FULL)
//     every transaction waits for several fsyncs, and on a 2-core machine the engine
//     then tops out at about 15 workflow cycles a second instead of 55-70.
//   - One partition per task queue instead of four: on a single node partitions only
//     add forwarding, which is rate limited, so tasks that land in a partition without
//     a waiting poller queued there for tens of seconds.
//   - A mutable-state cache of cache workflows (at least 16384) instead of the dev
//     server's 8096: a workflow that is not cached is read back from SQLite on every
//     task, and the benchmark runs tens of thousands of credentials.
func devServerArgs(cache int) []string {
	return []string{
		"--sqlite-pragma", "journal_mode=wal", "--sqlite-pragma", "synchronous=normal",
		"--dynamic-config-value", "matching.numTaskqueueReadPartitions=1",
		"--dynamic-config-value", "matching.numTaskqueueWritePartitions=1",
		"--dynamic-config-value", fmt.Sprintf("history.hostLevelCacheMaxSize=%d", max(cache, minServerCache)),
	}
}

// minServerCache is the least mutable-state cache devServerArgs gives the dev server.
const minServerCache = 16384

// StackOptions configures StartStack.
type StackOptions struct {
	Name      string // the program's name: prefixes the worker log's markers and messages
	Temporal  string // path of the temporal CLI (dev server)
	Worker    string // path of the worker binary
	Dir       string // the run's directory: server.log, worker.log, temporal.db, data/
	TaskQueue string
	// The fake provider's client and access-token lifetime.
	ClientID, ClientSecret string
	Lifetime               time.Duration
	Proxy                  ProxyOptions
	// WorkerEnv adds NAME=value settings to the worker's environment (WorkerEnv).
	WorkerEnv []string
	// GrpcCompression, when set, is the gRPC compression of the worker's requests
	// (TOKENWARDEN_TEMPORAL_GRPC_COMPRESSION) and of this program's client: gzip or
	// none. Empty: the defaults of each.
	GrpcCompression string
	// ServerCache is the dev server's mutable-state cache, in workflows: the most the
	// run keeps alive at once, so that none is read back from SQLite on every task. At
	// least 16384 is used.
	ServerCache int
}

// Stack is a running dev server, fake provider behind its proxy, and worker. Fields
// are set as they start; Close copes with a stack that started only in part.
type Stack struct {
	Name    string
	Dir     string
	DataDir string

	Server *testsuite.DevServer
	Client client.Client // encrypts and decrypts with the worker's key
	DC     converter.DataConverter
	// Sealer seals seeds with the worker's key, as the starter does.
	Sealer *seal.Sealer
	Fake   *oauth2test.Server
	Proxy  *Proxy
	Worker *Worker

	workerLog *os.File
	stores    storeOnce
}

// StartStack starts the dev server, the fake provider behind its proxy, and the worker,
// and waits for the worker's token store. On an error the partial stack is returned
// with it, for Close.
func StartStack(ctx context.Context, o StackOptions) (*Stack, error) {
	s := &Stack{Name: o.Name, Dir: o.Dir, DataDir: filepath.Join(o.Dir, "data")}
	self, err := os.Executable()
	if err != nil {
		return s, err
	}
	serverLog, err := os.Create(filepath.Join(s.Dir, "server.log"))
	if err != nil {
		return s, err
	}
	// The server process runs this binary as a trampoline (see OwnGroupEnv); it inherits
	// our environment, so set the variable just for the start.
	if err := os.Setenv(OwnGroupEnv, o.Temporal); err != nil {
		return s, err
	}
	// The worker encrypts every payload with the key in its data directory; make that key
	// now, so that this program's client can read the statuses the worker writes.
	if _, err := keyring.GenerateFile(filepath.Join(s.DataDir, "keys.json")); err != nil {
		return s, err
	}
	ring, err := keyring.LoadFile(filepath.Join(s.DataDir, "keys.json"))
	if err != nil {
		return s, err
	}
	s.DC = codec.DataConverter(ring)
	if s.Sealer, err = seal.NewSealer(ring, nil); err != nil {
		return s, err
	}
	startCtx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	s.Server, err = testsuite.StartDevServer(startCtx, testsuite.DevServerOptions{
		ExistingPath: self,
		LogLevel:     "error",
		DBFilename:   filepath.Join(s.Dir, "temporal.db"),
		ClientOptions: &client.Options{Logger: sdklog.NewStructuredLogger(slog.New(slog.DiscardHandler)), DataConverter: s.DC,
			FailureConverter: codec.FailureConverter(s.DC), ConnectionOptions: connectionOptions(o.GrpcCompression)},
		ExtraArgs: append([]string{
			"--search-attribute", "TokenState=Keyword",
			"--search-attribute", "TokenProvider=Keyword",
			"--search-attribute", "TokenExpiresAt=Datetime",
		}, devServerArgs(o.ServerCache)...),
		Stdout: serverLog,
		Stderr: serverLog,
	})
	cancel()
	_ = os.Unsetenv(OwnGroupEnv)
	if err != nil {
		s.Server = nil
		return s, fmt.Errorf("start the Temporal dev server: %w (see %s)", err, serverLog.Name())
	}
	s.Client = s.Server.Client()

	s.Fake = oauth2test.New(oauth2test.Options{
		AccessLifetime: o.Lifetime,
		ClientID:       o.ClientID,
		ClientSecret:   o.ClientSecret,
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return s, err
	}
	s.Proxy = NewProxy(s.Fake, "http://"+ln.Addr().String(), o.Proxy)
	go func() { _ = s.Proxy.http.Serve(ln) }()

	s.workerLog, err = os.Create(filepath.Join(s.Dir, "worker.log"))
	if err != nil {
		return s, err
	}
	env := append(WorkerEnv(s.Server.FrontendHostPort(), s.DataDir, o.TaskQueue), o.WorkerEnv...)
	if o.GrpcCompression != "" {
		env = append(env, "TOKENWARDEN_TEMPORAL_GRPC_COMPRESSION="+o.GrpcCompression)
	}
	s.Worker = NewWorker(o.Name, o.Worker, s.workerLog, env)
	if err := s.Worker.Start(); err != nil {
		return s, err
	}
	// The worker creates the key file and the store; wait for them before reading either.
	deadline := time.Now().Add(30 * time.Second)
	for {
		if _, err := os.Stat(filepath.Join(s.DataDir, "tokens.db")); err == nil {
			break
		}
		if time.Now().After(deadline) {
			return s, fmt.Errorf("the worker did not create its token store within 30s (see %s)", s.workerLog.Name())
		}
		time.Sleep(100 * time.Millisecond)
	}
	return s, nil
}

// WorkerEnv is the worker's environment: ours without TOKENWARDEN_* and the trampoline
// variable, plus the private server, data directory and task queue.
func WorkerEnv(temporalAddr, dataDir, taskQueue string) []string {
	env := slices.DeleteFunc(os.Environ(), func(kv string) bool {
		return strings.HasPrefix(kv, "TOKENWARDEN_") || strings.HasPrefix(kv, OwnGroupEnv+"=")
	})
	return append(env,
		"TOKENWARDEN_TEMPORAL_ADDRESS="+temporalAddr,
		"TOKENWARDEN_DATA_DIR="+dataDir,
		"TOKENWARDEN_TASK_QUEUE="+taskQueue,
		// The shortest lease the worker accepts for these (internal/leasetiming), as in
		// the end-to-end tests: 2 x 3 s + 2 s before the commit, 4 s of commit
		// retries, 2 s of margin.
		"TOKENWARDEN_PROVIDER_TIMEOUT=3s",
		"TOKENWARDEN_COMMIT_RETRY=4s",
		"TOKENWARDEN_LEASE_DURATION=15s",
		// The soak's tokens live 10 s.
		"TOKENWARDEN_MIN_ACCESS_LIFETIME=1s",
		"TOKENWARDEN_LOG_LEVEL=warn",
		// No codec endpoint: this program reads the key file itself, and a fixed port
		// could collide with a running `make run`.
		"TOKENWARDEN_HTTP_ADDR=",
	)
}

// WorkerLogName is the path of the worker's log.
func (s *Stack) WorkerLogName() string {
	if s.workerLog == nil {
		return ""
	}
	return s.workerLog.Name()
}

// OpenStore opens the worker's token store (once; later calls return the same store).
func (s *Stack) OpenStore(ctx context.Context) (*store.SQLite, error) {
	return s.stores.open(ctx, s.DataDir)
}

// Committed is the number of refreshes committed to the store: every version after the
// seed's version 1.
func (s *Stack) Committed(ctx context.Context) (int64, error) {
	st, err := s.OpenStore(ctx)
	if err != nil {
		return 0, err
	}
	recs, err := st.List(ctx)
	if err != nil {
		return 0, err
	}
	var n int64
	for _, r := range recs {
		n += r.Version - 1
	}
	return n, nil
}

// connectionOptions are this program's client's: gzip (the SDK's default) unless
// compression is "none".
func connectionOptions(compression string) client.ConnectionOptions {
	if compression == "none" {
		return client.ConnectionOptions{GrpcCompression: &client.GrpcCompressionNone{}}
	}
	return client.ConnectionOptions{}
}

// ServerPid finds the dev server's process: the child of this process that runs
// `server start-dev` on the stack's database file (testsuite.DevServer does not say).
// Its CPU time is what the engine costs, which the benchmark divides by the cycles.
func (s *Stack) ServerPid() (int, error) {
	db := filepath.Join(s.Dir, "temporal.db")
	dirs, err := filepath.Glob("/proc/[0-9]*")
	if err != nil {
		return 0, err
	}
	self := os.Getpid()
	for _, d := range dirs {
		pid, err := strconv.Atoi(filepath.Base(d))
		if err != nil || pid == self {
			continue
		}
		cmdline, err := os.ReadFile(filepath.Join(d, "cmdline"))
		if err != nil {
			continue // gone, or not ours to read
		}
		args := strings.Split(string(cmdline), "\x00")
		if !slices.Contains(args, "start-dev") || !slices.Contains(args, db) {
			continue
		}
		if ppid, err := parentPid(pid); err == nil && ppid == self {
			return pid, nil
		}
	}
	return 0, fmt.Errorf("no dev server process on %s among this process's children", db)
}

// parentPid reads the parent's PID, field 4 of /proc/<pid>/stat.
func parentPid(pid int) (int, error) {
	f, err := statFields(pid, 4)
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(f[1])
}

// Close stops the worker and everything else, and removes the run's directory unless
// keep.
func (s *Stack) Close(keep bool) {
	if s.Worker != nil {
		s.Worker.Stop()
	}
	if s.workerLog != nil {
		_ = s.workerLog.Close()
	}
	s.stores.close()
	if s.Fake != nil {
		s.Fake.Close()
	}
	if s.Proxy != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_ = s.Proxy.http.Shutdown(ctx)
		cancel()
	}
	if s.Server != nil {
		s.Client.Close()
		_ = s.Server.Stop()
	}
	if s.Dir != "" && !keep {
		_ = os.RemoveAll(s.Dir)
	}
}

// ---------------------------------------------------------------------------------------
// Reporting helpers.

// Table prints aligned "name  value  note" rows.
type Table struct{ tw *tabwriter.Writer }

// NewTable returns a table writing to out; call Flush at the end.
func NewTable(out io.Writer) *Table {
	return &Table{tw: tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)}
}

// Row adds a row.
func (t *Table) Row(k string, v any, note string) { fmt.Fprintf(t.tw, "%s\t%v\t%s\n", k, v, note) }

// Flush writes the table out.
func (t *Table) Flush() error { return t.tw.Flush() }

// LatenessStats are quantiles of a set of durations.
type LatenessStats struct {
	Samples int           `json:"samples"`
	P50     time.Duration `json:"p50_ns"`
	P95     time.Duration `json:"p95_ns"`
	P99     time.Duration `json:"p99_ns"`
	Max     time.Duration `json:"max_ns"`
}

// LatenessOf computes the quantiles of d (which it does not modify).
func LatenessOf(d []time.Duration) LatenessStats {
	if len(d) == 0 {
		return LatenessStats{}
	}
	d = slices.Clone(d)
	slices.Sort(d)
	q := func(f float64) time.Duration { return d[min(len(d)-1, int(f*float64(len(d))))] }
	return LatenessStats{Samples: len(d), P50: q(0.50), P95: q(0.95), P99: q(0.99), Max: d[len(d)-1]}
}

// Sec formats a duration as seconds with two decimals.
func Sec(d time.Duration) string { return fmt.Sprintf("%.2fs", d.Seconds()) }

// LoadAverage is the one-minute load average where /proc tells it (Linux), else "?".
func LoadAverage() string {
	data, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	if f := strings.Fields(string(data)); len(f) > 0 {
		return f[0]
	}
	return "?"
}
