// Command soak is tokenwarden's bounded soak test (issue 3): many credentials with short
// access-token lifetimes refreshing for minutes against the strict fake provider, while
// the worker is killed with SIGKILL at random and the provider misbehaves at random. At
// the end it prints a table and checks the invariants:
//
//   - the provider detected no refresh-token reuse;
//   - no refresh token was processed twice by the provider;
//   - no token was lost: every credential's stored refresh token is its family's live one,
//     unless an interrupted refresh consumed it (the provider rotated but the answer was
//     lost), which is the documented NEEDS_REAUTH outcome, not a loss.
//
// It starts everything itself: a private Temporal dev server (bin/temporal), the fake
// OAuth2 provider on a loopback listener, and the worker binary as a subprocess. Run it
// with `make soak` (SOAK_FLAGS passes flags); it is not part of `make test`.
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"text/tabwriter"
	"time"

	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/testsuite"

	"github.com/tokenwarden/tokenwarden/activities"
	"github.com/tokenwarden/tokenwarden/internal/codec"
	"github.com/tokenwarden/tokenwarden/internal/fakeoauth"
	"github.com/tokenwarden/tokenwarden/internal/keyring"
	"github.com/tokenwarden/tokenwarden/internal/provider"
	"github.com/tokenwarden/tokenwarden/internal/store"
	"github.com/tokenwarden/tokenwarden/workflows"
)

const (
	taskQueue    = "soak"
	clientID     = "soak-client"
	clientSecret = "soak-client-secret"
	// settleTime is how long the stack runs without kills and faults before the final
	// check, so that refreshes interrupted near the end are settled (a lease of 6 s plus
	// retries) rather than caught half-way.
	settleTime = 20 * time.Second
	// progressEvery is the interval of the progress lines.
	progressEvery = 15 * time.Second
	// ownGroupEnv makes this binary a trampoline: put itself in a new process group and
	// exec the program the variable names. The dev server is started through it, so a
	// Ctrl-C at the terminal (SIGINT to the foreground process group) reaches the soak
	// but not the server, and the partial summary can still query the workflows.
	ownGroupEnv = "TOKENWARDEN_SOAK_EXEC_IN_OWN_GROUP"
)

type options struct {
	credentials int
	duration    time.Duration
	lifetime    time.Duration
	killEvery   time.Duration
	faultRate   float64
	temporal    string
	worker      string
	seed        int64
	json        bool
}

func main() {
	if target := os.Getenv(ownGroupEnv); target != "" {
		trampoline(target)
	}
	os.Exit(run())
}

// trampoline replaces this process with target in a process group of its own.
func trampoline(target string) {
	_ = syscall.Setpgid(0, 0)
	env := slices.DeleteFunc(os.Environ(), func(kv string) bool { return strings.HasPrefix(kv, ownGroupEnv+"=") })
	err := syscall.Exec(target, append([]string{target}, os.Args[1:]...), env)
	fmt.Fprintf(os.Stderr, "soak: exec %s: %v\n", target, err)
	os.Exit(127)
}

func parseFlags() (options, error) {
	var o options
	fs := flag.NewFlagSet("soak", flag.ContinueOnError)
	fs.IntVar(&o.credentials, "credentials", 100, "number of credentials (workflows soak-0001...)")
	fs.DurationVar(&o.duration, "duration", 5*time.Minute, "how long to run with kills and faults (a 20 s settle period follows)")
	fs.DurationVar(&o.lifetime, "lifetime", 10*time.Second, "access token lifetime at the fake provider")
	fs.DurationVar(&o.killEvery, "kill-every", 45*time.Second, "mean interval between worker kill -9s (exponential); 0 = never")
	fs.Float64Var(&o.faultRate, "fault-rate", 0.05, "probability that a token request gets an injected fault")
	fs.StringVar(&o.temporal, "temporal", "bin/temporal", "path of the temporal CLI (dev server)")
	fs.StringVar(&o.worker, "worker", "bin/worker", "path of the worker binary")
	fs.Int64Var(&o.seed, "seed", 0, "random seed (default: time-based; printed so a run can be repeated)")
	fs.BoolVar(&o.json, "json", false, "also print the summary as JSON")
	if err := fs.Parse(os.Args[1:]); err != nil {
		return o, err
	}
	switch {
	case fs.NArg() > 0:
		return o, fmt.Errorf("unexpected arguments: %s", strings.Join(fs.Args(), " "))
	case o.credentials < 1 || o.credentials > 9999:
		return o, errors.New("-credentials: must be 1..9999")
	case o.duration <= 0:
		return o, errors.New("-duration: must be positive")
	case o.lifetime < 3*time.Second:
		return o, errors.New("-lifetime: must be at least 3s")
	case o.killEvery < 0:
		return o, errors.New("-kill-every: must not be negative")
	case o.faultRate < 0 || o.faultRate > 1:
		return o, errors.New("-fault-rate: must be between 0 and 1")
	}
	if o.seed == 0 {
		o.seed = time.Now().UnixNano()
	}
	return o, nil
}

// soak is one run.
type soak struct {
	opts    options
	tmp     string
	dataDir string
	ids     []string
	started time.Time

	fake   *fakeoauth.Server
	prov   *proxy
	server *testsuite.DevServer
	client client.Client

	workerLog *os.File
	workerMu  sync.Mutex
	w         *workerProc
	starts    int
	kills     atomic.Int64
	crashes   atomic.Int64 // worker exits the soak did not cause

	storeMu sync.Mutex
	store   *store.SQLite

	maxLateness  time.Duration // worst window max
	worstOverdue time.Duration // worst overdue credential seen at a progress line
}

func run() int {
	opts, err := parseFlags()
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		fmt.Fprintln(os.Stderr, "soak:", err)
		return 2
	}
	for _, p := range []*string{&opts.temporal, &opts.worker} {
		abs, err := filepath.Abs(*p)
		if err == nil {
			*p = abs
		}
		if _, err := os.Stat(*p); err != nil {
			fmt.Fprintf(os.Stderr, "soak: %v (run `make soak`, which builds it)\n", err)
			return 2
		}
	}
	fmt.Printf("soak: seed %d (repeat with -seed %d)\n", opts.seed, opts.seed)
	fmt.Printf("soak: %d credentials, %s, access tokens live %s, a worker kill -9 every %s on average, fault rate %.3g per token request\n",
		opts.credentials, opts.duration, opts.lifetime, killText(opts.killEvery), opts.faultRate)

	// Ctrl-C (or SIGTERM) ends the soak early with a partial summary; a second one gives up
	// on the summary and only cleans up.
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	runCtx, interrupt := context.WithCancel(context.Background())
	abortCtx, abort := context.WithCancel(context.Background())
	go func() {
		<-sigs
		fmt.Println("\nsoak: interrupted; finishing with a partial summary (Ctrl-C again to abort)")
		interrupt()
		<-sigs
		fmt.Println("\nsoak: aborting")
		abort()
	}()

	s := &soak{opts: opts}
	code := s.main(runCtx, abortCtx)
	s.cleanup(code == 1)
	return code
}

func killText(d time.Duration) string {
	if d == 0 {
		return "never"
	}
	return d.String()
}

func (s *soak) main(runCtx, abortCtx context.Context) int {
	var err error
	s.tmp, err = os.MkdirTemp("", "tokenwarden-soak-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "soak:", err)
		return 1
	}
	s.dataDir = filepath.Join(s.tmp, "data")
	if err := s.startStack(runCtx); err != nil {
		fmt.Fprintln(os.Stderr, "soak:", err)
		return 1
	}
	fmt.Printf("soak: dev server %s, provider %s, worker log %s\n", s.server.FrontendHostPort(), s.prov.base, s.workerLog.Name())

	s.started = time.Now()
	phaseCtx, endPhase := context.WithTimeout(runCtx, s.opts.duration)
	defer endPhase()
	if err := s.startCredentials(phaseCtx); err != nil && phaseCtx.Err() == nil {
		fmt.Fprintln(os.Stderr, "soak:", err)
		return 1
	}

	s.prov.faultsOn.Store(s.opts.faultRate > 0)
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); s.superviseWorker(phaseCtx) }()
	go func() { defer wg.Done(); s.progress(phaseCtx) }()
	<-phaseCtx.Done()
	elapsed := time.Since(s.started)
	s.prov.faultsOn.Store(false)
	s.fake.ClearFaults()
	wg.Wait() // the supervisor leaves a running worker behind
	partial := runCtx.Err() != nil

	if !partial {
		fmt.Printf("soak: %s done; settling for %s without kills or faults\n", s.opts.duration, settleTime)
		select {
		case <-time.After(settleTime):
		case <-runCtx.Done():
			partial = true
		}
	}
	if abortCtx.Err() != nil {
		return 130
	}

	fmt.Println("soak: querying every credential's status")
	statuses := s.queryStatuses(abortCtx)
	fmt.Println("soak: stopping the worker (SIGTERM)")
	s.stopWorker()
	if abortCtx.Err() != nil {
		return 130
	}

	sum, err := s.summarize(elapsed, partial, statuses)
	if err != nil {
		fmt.Fprintln(os.Stderr, "soak:", err)
		return 1
	}
	sum.print(os.Stdout)
	if s.opts.json {
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		_ = enc.Encode(sum)
	}
	switch {
	case !sum.Pass:
		fmt.Printf("soak: FAIL: %s\nsoak: kept %s for investigation (worker.log, server.log, data/)\n", strings.Join(sum.Failures, "; "), s.tmp)
		return 1
	case partial:
		fmt.Println("soak: interrupted; the invariants held so far")
		return 130
	default:
		fmt.Println("soak: PASS")
		return 0
	}
}

// startStack starts the dev server, the fake provider behind its proxy, and the worker.
func (s *soak) startStack(ctx context.Context) error {
	self, err := os.Executable()
	if err != nil {
		return err
	}
	serverLog, err := os.Create(filepath.Join(s.tmp, "server.log"))
	if err != nil {
		return err
	}
	// The server process runs this binary as a trampoline (see ownGroupEnv); it inherits
	// our environment, so set the variable just for the start.
	if err := os.Setenv(ownGroupEnv, s.opts.temporal); err != nil {
		return err
	}
	// The worker encrypts every payload with the key in its data directory; make that key
	// now, so that this program's client can read the statuses the worker writes.
	if _, err := keyring.GenerateFile(filepath.Join(s.dataDir, "keys.json")); err != nil {
		return err
	}
	ring, err := keyring.LoadFile(filepath.Join(s.dataDir, "keys.json"))
	if err != nil {
		return err
	}
	dc := codec.DataConverter(ring)
	startCtx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	s.server, err = testsuite.StartDevServer(startCtx, testsuite.DevServerOptions{
		ExistingPath: self,
		LogLevel:     "error",
		DBFilename:   filepath.Join(s.tmp, "temporal.db"),
		ClientOptions: &client.Options{Logger: quietLogger{}, DataConverter: dc,
			FailureConverter: codec.FailureConverter(dc)},
		ExtraArgs: []string{
			"--search-attribute", "TokenState=Keyword",
			"--search-attribute", "TokenProvider=Keyword",
			"--search-attribute", "TokenExpiresAt=Datetime",
		},
		Stdout: serverLog,
		Stderr: serverLog,
	})
	cancel()
	_ = os.Unsetenv(ownGroupEnv)
	if err != nil {
		return fmt.Errorf("start the Temporal dev server: %w (see %s)", err, serverLog.Name())
	}
	s.client = s.server.Client()

	s.fake = fakeoauth.New(fakeoauth.Options{
		AccessLifetime: s.opts.lifetime,
		ClientID:       clientID,
		ClientSecret:   clientSecret,
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	s.prov = newProxy(s.fake, "http://"+ln.Addr().String(), s.opts)
	go func() { _ = s.prov.http.Serve(ln) }()

	s.workerLog, err = os.Create(filepath.Join(s.tmp, "worker.log"))
	if err != nil {
		return err
	}
	if err := s.startWorker(); err != nil {
		return err
	}
	// The worker creates the key file and the store; wait for them before reading either.
	deadline := time.Now().Add(30 * time.Second)
	for {
		if _, err := os.Stat(filepath.Join(s.dataDir, "tokens.db")); err == nil {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the worker did not create its token store within 30s (see %s)", s.workerLog.Name())
		}
		time.Sleep(100 * time.Millisecond)
	}
	return nil
}

// startCredentials seeds a token family per credential at the fake and starts its
// workflow, spread over one token lifetime so the refreshes do not all fall together.
func (s *soak) startCredentials(ctx context.Context) error {
	dur := func(d time.Duration) *workflows.Duration { v := workflows.Duration(d); return &v }
	cfg := provider.Config{
		TokenURL:         s.prov.base + fakeoauth.TokenPath,
		IntrospectionURL: s.prov.base + fakeoauth.IntrospectionPath,
		ClientID:         clientID,
		AuthStyle:        "header",
	}
	policy := workflows.Policy{
		RefreshMargin: dur(s.opts.lifetime / 3),
		Jitter:        dur(min(time.Second, s.opts.lifetime/10)),
		RetryInitial:  dur(time.Second),
		RetryMax:      dur(10 * time.Second),
	}
	spacing := s.opts.lifetime / time.Duration(s.opts.credentials)
	for i := 1; i <= s.opts.credentials; i++ {
		id := fmt.Sprintf("soak-%04d", i)
		seed := s.fake.Seed(id)
		s.prov.own(seed, id)
		in := workflows.CredentialInput{
			Provider: "oauth2",
			Config:   cfg,
			Policy:   policy,
			Seed:     &workflows.Seed{RefreshToken: seed, ClientSecret: clientSecret},
		}
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		_, err := s.client.ExecuteWorkflow(cctx, client.StartWorkflowOptions{ID: id, TaskQueue: taskQueue}, workflows.WorkflowType, in)
		cancel()
		if err != nil {
			return fmt.Errorf("start credential %s: %w", id, err)
		}
		s.ids = append(s.ids, id)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(spacing):
		}
	}
	fmt.Printf("soak: started %d credentials over %s\n", len(s.ids), time.Since(s.started).Round(100*time.Millisecond))
	return nil
}

// ---------------------------------------------------------------------------------------
// The worker process.

type workerProc struct {
	cmd    *exec.Cmd
	exited chan struct{}
	err    error
}

func (s *soak) workerEnv() []string {
	env := slices.DeleteFunc(os.Environ(), func(kv string) bool {
		return strings.HasPrefix(kv, "TOKENWARDEN_") || strings.HasPrefix(kv, ownGroupEnv+"=")
	})
	return append(env,
		"TOKENWARDEN_TEMPORAL_ADDRESS="+s.server.FrontendHostPort(),
		"TOKENWARDEN_DATA_DIR="+s.dataDir,
		"TOKENWARDEN_TASK_QUEUE="+taskQueue,
		"TOKENWARDEN_PROVIDER_TIMEOUT=3s",
		"TOKENWARDEN_LEASE_DURATION=6s",
		"TOKENWARDEN_LOG_LEVEL=warn",
		// No codec endpoint: this program reads the key file itself, and a fixed port
		// could collide with a running `make run`.
		"TOKENWARDEN_HTTP_ADDR=",
	)
}

// startWorker runs the worker binary in a process group of its own (a Ctrl-C at the
// terminal must not stop it before the summary), appending its output to worker.log.
func (s *soak) startWorker() error {
	s.workerMu.Lock()
	defer s.workerMu.Unlock()
	s.starts++
	fmt.Fprintf(s.workerLog, "=== soak: worker start #%d at %s\n", s.starts, time.Now().Format(time.RFC3339Nano))
	cmd := exec.Command(s.opts.worker, "-init-dev-key")
	cmd.Env = s.workerEnv()
	cmd.Stdout, cmd.Stderr = s.workerLog, s.workerLog
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start the worker: %w", err)
	}
	w := &workerProc{cmd: cmd, exited: make(chan struct{})}
	go func() {
		w.err = cmd.Wait()
		close(w.exited)
	}()
	s.w = w
	return nil
}

// kill9 ends the worker with SIGKILL and waits for it.
func (s *soak) kill9() {
	s.workerMu.Lock()
	defer s.workerMu.Unlock()
	if s.w == nil {
		return
	}
	_ = s.w.cmd.Process.Signal(syscall.SIGKILL)
	<-s.w.exited
	fmt.Fprintf(s.workerLog, "=== soak: worker killed with SIGKILL at %s\n", time.Now().Format(time.RFC3339Nano))
	s.w = nil
}

// stopWorker asks the worker to stop (SIGTERM) and waits up to 30 s before SIGKILL.
func (s *soak) stopWorker() {
	s.workerMu.Lock()
	defer s.workerMu.Unlock()
	if s.w == nil {
		return
	}
	_ = s.w.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.w.exited:
		if s.w.err != nil {
			fmt.Printf("soak: the worker did not exit cleanly: %v\n", s.w.err)
		}
	case <-time.After(30 * time.Second):
		fmt.Println("soak: the worker did not stop within 30s of SIGTERM; killing it")
		_ = s.w.cmd.Process.Kill()
		<-s.w.exited
	}
	s.w = nil
}

func (s *soak) running() *workerProc {
	s.workerMu.Lock()
	defer s.workerMu.Unlock()
	return s.w
}

// superviseWorker kills the worker at exponentially distributed intervals (mean
// -kill-every) and restarts it 1-3 s later; it also restarts a worker that died by
// itself. When ctx ends it leaves a running worker behind.
func (s *soak) superviseWorker(ctx context.Context) {
	rng := rand.New(rand.NewPCG(uint64(s.opts.seed), 1))
	killTimer := func() <-chan time.Time {
		if s.opts.killEvery <= 0 {
			return nil
		}
		return time.After(time.Duration(rng.ExpFloat64() * float64(s.opts.killEvery)))
	}
	nextKill := killTimer()
	var restart <-chan time.Time
	exited := func() <-chan struct{} {
		if w := s.running(); w != nil {
			return w.exited
		}
		return nil
	}
	for {
		select {
		case <-ctx.Done():
			if s.running() == nil {
				if err := s.startWorker(); err != nil {
					fmt.Println("soak:", err)
				}
			}
			return
		case <-nextKill:
			s.kill9()
			s.kills.Add(1)
			s.prov.killed(time.Now())
			nextKill = nil
			restart = time.After(time.Second + time.Duration(rng.Float64()*float64(2*time.Second)))
		case <-restart:
			restart = nil
			if err := s.startWorker(); err != nil {
				fmt.Println("soak:", err)
				restart = time.After(time.Second)
				continue
			}
			nextKill = killTimer()
		case <-exited():
			w := s.running()
			s.workerMu.Lock()
			s.w = nil
			s.workerMu.Unlock()
			s.crashes.Add(1)
			fmt.Printf("soak: the worker exited by itself (%v); restarting it; see %s\n", w.err, s.workerLog.Name())
			nextKill = nil
			restart = time.After(time.Second)
		}
	}
}

// ---------------------------------------------------------------------------------------
// The provider proxy: counts, fault injection, lateness.

// proxy sits in front of the fake provider on the loopback listener. For every token
// request it remembers the refresh token presented (the fake counts Processed per token
// value but cannot list them), decides whether the request gets an injected fault, and
// reads the answer to learn which credential each new refresh token belongs to and when
// its access token expires. That gives the scheduling lateness of every refresh: how long
// after its due time a credential first presented its refresh token.
type proxy struct {
	fake     *fakeoauth.Server
	base     string
	http     *http.Server
	opts     options
	faultsOn atomic.Bool

	mu        sync.Mutex
	rng       *rand.Rand
	owner     map[string]string    // refresh token -> credential
	presented map[string]bool      // refresh tokens seen on the wire
	due       map[string]time.Time // credential -> when its current access token is due for refresh
	current   map[string]string    // credential -> the refresh token last delivered to it
	expires   map[string]time.Time // credential -> when its current access token expires
	faults    map[string]int       // injected, by kind
	late      []time.Duration      // lateness samples since the last window
	allLate   []time.Duration
	nearKill  []time.Duration // samples within killShadow of a worker kill
	expired   int             // first presentations after the access token had expired
	lastKill  time.Time
}

// killShadow is how long after a kill -9 a refresh counts as delayed by the kill rather
// than by load: the restart pause (1-3 s), the server's sticky-queue timeout for the dead
// worker's workflow tasks (5 s), the heartbeat timeout of its activities (10 s).
const killShadow = 15 * time.Second

// killed records a worker kill for the lateness split.
func (p *proxy) killed(at time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.lastKill = at
}

// faultKinds are the faults the soak injects, one chosen uniformly per faulted request.
var faultKinds = []struct {
	name  string
	fault fakeoauth.Fault
}{
	{"503 before grant", fakeoauth.Fault{Kind: fakeoauth.FaultStatus, Status: http.StatusServiceUnavailable, Phase: fakeoauth.BeforeGrant}},
	{"429 Retry-After 2s", fakeoauth.Fault{Kind: fakeoauth.FaultRateLimit, RetryAfter: 2 * time.Second, Phase: fakeoauth.BeforeGrant}},
	{"connection reset before grant", fakeoauth.Fault{Kind: fakeoauth.FaultCloseConnection, Phase: fakeoauth.BeforeGrant}},
	{"connection reset after grant", fakeoauth.Fault{Kind: fakeoauth.FaultCloseConnection, Phase: fakeoauth.AfterGrant}},
	{"5s latency after grant", fakeoauth.Fault{Kind: fakeoauth.FaultLatency, Delay: 5 * time.Second, Phase: fakeoauth.AfterGrant}},
	{"malformed JSON before grant", fakeoauth.Fault{Kind: fakeoauth.FaultMalformedJSON, Phase: fakeoauth.BeforeGrant}},
}

func newProxy(fake *fakeoauth.Server, base string, opts options) *proxy {
	p := &proxy{
		fake: fake, base: base, opts: opts,
		rng:       rand.New(rand.NewPCG(uint64(opts.seed), 2)),
		owner:     map[string]string{},
		presented: map[string]bool{},
		due:       map[string]time.Time{},
		current:   map[string]string{},
		expires:   map[string]time.Time{},
		faults:    map[string]int{},
	}
	p.http = &http.Server{Handler: p, ReadHeaderTimeout: 10 * time.Second}
	return p
}

func (p *proxy) own(refreshToken, id string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.owner[refreshToken] = id
}

func (p *proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost || r.URL.Path != fakeoauth.TokenPath {
		p.fake.ServeHTTP(w, r)
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, 64<<10))
	if err != nil {
		panic(http.ErrAbortHandler)
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	form, _ := url.ParseQuery(string(body))
	presented := form.Get("refresh_token")
	now := time.Now()

	p.mu.Lock()
	id := p.owner[presented]
	if presented != "" && !p.presented[presented] {
		p.presented[presented] = true
		if due, ok := p.due[id]; ok {
			if !p.lastKill.IsZero() && now.Sub(p.lastKill) < killShadow {
				p.nearKill = append(p.nearKill, now.Sub(due))
			} else {
				p.late = append(p.late, now.Sub(due))
				p.allLate = append(p.allLate, now.Sub(due))
			}
			if now.After(p.expires[id]) {
				p.expired++
			}
		}
	}
	if p.faultsOn.Load() && p.rng.Float64() < p.opts.faultRate {
		k := faultKinds[p.rng.IntN(len(faultKinds))]
		f := k.fault
		f.Count = 1
		// The fault goes to the next token request to arrive: this one, unless another
		// overtakes it, which changes nothing about the rate.
		p.fake.InjectFault(f)
		p.faults[k.name]++
	}
	p.mu.Unlock()

	cw := &captureWriter{ResponseWriter: w}
	p.fake.ServeHTTP(cw, r)
	if cw.status != http.StatusOK || id == "" {
		return
	}
	var answer struct {
		RefreshToken string `json:"refresh_token"`
		ExpiresIn    int64  `json:"expires_in"`
	}
	if json.Unmarshal(cw.body.Bytes(), &answer) != nil || answer.RefreshToken == "" || answer.ExpiresIn <= 0 {
		return
	}
	delivered := time.Now()
	lifetime := time.Duration(answer.ExpiresIn) * time.Second
	p.mu.Lock()
	p.owner[answer.RefreshToken] = id
	p.current[id] = answer.RefreshToken
	p.expires[id] = delivered.Add(lifetime)
	p.due[id] = delivered.Add(lifetime - renewalLead(id, lifetime, p.opts.lifetime))
	p.mu.Unlock()
}

// renewalLead mirrors workflows.NextWakeup for the soak's policy: refresh
// max(margin, lifetime/3) (at most half the lifetime) plus the credential's jitter
// before expiry.
func renewalLead(id string, lifetime, configured time.Duration) time.Duration {
	lead := max(configured/3, lifetime/3)
	lead = min(lead, lifetime/2)
	jitter := min(min(time.Second, configured/10), lifetime/10)
	return lead + time.Duration(workflows.JitterFraction(id)*float64(jitter))
}

// overdue counts the credentials whose refresh is more than a second past due and not yet
// begun (the delivered token not presented), and the worst of them. Unlike the lateness
// samples, taken when a refresh begins, it sees credentials that are stuck.
func (p *proxy) overdue(now time.Time) (n int, worst time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for id, tok := range p.current {
		if p.presented[tok] {
			continue
		}
		if d := now.Sub(p.due[id]); d > time.Second {
			n++
			worst = max(worst, d)
		}
	}
	return n, worst
}

// window returns the lateness samples since the last call.
func (p *proxy) window() []time.Duration {
	p.mu.Lock()
	defer p.mu.Unlock()
	w := p.late
	p.late = nil
	return w
}

func (p *proxy) snapshot() (presented []string, faults map[string]int, late, nearKill []time.Duration, expired int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for t := range p.presented {
		presented = append(presented, t)
	}
	return presented, maps(p.faults), slices.Clone(p.allLate), slices.Clone(p.nearKill), p.expired
}

func (p *proxy) faultCount() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, c := range p.faults {
		n += c
	}
	return n
}

func maps(m map[string]int) map[string]int {
	out := make(map[string]int, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// captureWriter keeps a copy of the answer; it lets the fake hijack the connection for
// its connection-reset faults.
type captureWriter struct {
	http.ResponseWriter
	status int
	body   bytes.Buffer
}

func (c *captureWriter) WriteHeader(code int) {
	c.status = code
	c.ResponseWriter.WriteHeader(code)
}

func (c *captureWriter) Write(b []byte) (int, error) {
	if c.status == 0 {
		c.status = http.StatusOK
	}
	c.body.Write(b)
	return c.ResponseWriter.Write(b)
}

func (c *captureWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	hj, ok := c.ResponseWriter.(http.Hijacker)
	if !ok {
		return nil, nil, errors.New("soak proxy: connection cannot be hijacked")
	}
	return hj.Hijack()
}

// ---------------------------------------------------------------------------------------
// Progress.

func (s *soak) progress(ctx context.Context) {
	t := time.NewTicker(progressEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		committed := "?"
		if n, err := s.committed(ctx); err == nil {
			committed = fmt.Sprint(n)
		}
		late := s.prov.window()
		lateText := "every refresh due was within 15s of a kill"
		if len(late) > 0 {
			st := latenessOf(late)
			s.maxLateness = max(s.maxLateness, st.Max)
			lateText = fmt.Sprintf("lateness p50 %s p95 %s max %s", sec(st.P50), sec(st.P95), sec(st.Max))
		}
		n, worst := s.prov.overdue(time.Now())
		s.worstOverdue = max(s.worstOverdue, worst)
		fmt.Printf("[%7s] committed %s  provider refreshes %d  kills %d  faults %d  parked %s  expired %s  %s  overdue now %d (worst %s)  load %s\n",
			time.Since(s.started).Round(time.Second), committed, s.fake.Refreshes(), s.kills.Load(),
			s.prov.faultCount(), s.countState(ctx, workflows.StateNeedsReauth), s.countState(ctx, workflows.StateExpired), lateText,
			n, sec(worst), loadAverage())
	}
}

// countState counts this soak's credentials in a state, from the TokenState search
// attribute (eventually consistent, good enough for progress).
func (s *soak) countState(ctx context.Context, st workflows.State) string {
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	res, err := s.client.CountWorkflow(cctx, &workflowservice.CountWorkflowExecutionsRequest{
		Namespace: "default",
		Query:     fmt.Sprintf("TokenState = %q AND TaskQueue = %q AND ExecutionStatus = 'Running'", st, taskQueue),
	})
	if err != nil {
		return "?"
	}
	return fmt.Sprint(res.GetCount())
}

// loadAverage is the one-minute load average where /proc tells it (Linux), else "?".
func loadAverage() string {
	data, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	if f := strings.Fields(string(data)); len(f) > 0 {
		return f[0]
	}
	return "?"
}

func (s *soak) openStore(ctx context.Context) (*store.SQLite, error) {
	s.storeMu.Lock()
	defer s.storeMu.Unlock()
	if s.store != nil {
		return s.store, nil
	}
	ring, err := keyring.LoadFile(filepath.Join(s.dataDir, "keys.json"))
	if err != nil {
		return nil, err
	}
	st, err := store.OpenSQLite(ctx, filepath.Join(s.dataDir, "tokens.db"), ring, nil)
	if err != nil {
		return nil, err
	}
	s.store = st
	return st, nil
}

// committed is the number of refreshes committed to the store: every version after the
// seed's version 1.
func (s *soak) committed(ctx context.Context) (int64, error) {
	st, err := s.openStore(ctx)
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

// ---------------------------------------------------------------------------------------
// The final check.

// queryStatuses asks every credential's workflow for its status (the worker must run).
func (s *soak) queryStatuses(ctx context.Context) map[string]workflows.Status {
	// A server or worker that cannot answer must not hold the summary up for long.
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	out := map[string]workflows.Status{}
	var mu sync.Mutex
	sem := make(chan struct{}, 8)
	var wg sync.WaitGroup
	for _, id := range s.ids {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			for attempt := 0; attempt < 5 && ctx.Err() == nil; attempt++ {
				qctx, cancel := context.WithTimeout(ctx, 10*time.Second)
				v, err := s.client.QueryWorkflow(qctx, id, "", workflows.QueryStatus)
				var st workflows.Status
				if err == nil {
					err = v.Get(&st)
				}
				cancel()
				if err == nil {
					mu.Lock()
					out[id] = st
					mu.Unlock()
					return
				}
				time.Sleep(time.Second)
			}
		}()
	}
	wg.Wait()
	return out
}

// summary is what the soak reports. Durations are strings for the JSON form.
type summary struct {
	Seed        int64   `json:"seed"`
	Partial     bool    `json:"partial"`
	Credentials int     `json:"credentials"`
	Duration    string  `json:"duration"`
	Settle      string  `json:"settle"`
	Lifetime    string  `json:"access_token_lifetime"`
	KillEvery   string  `json:"kill_every"`
	FaultRate   float64 `json:"fault_rate"`

	RefreshesCommitted   int64 `json:"refreshes_committed"`
	ProviderRefreshes    int   `json:"provider_refreshes"`
	AnswersLost          int64 `json:"provider_refreshes_not_committed"`
	Presentations        int   `json:"refresh_token_presentations"`
	Processed            int   `json:"processed"`
	MaxProcessedPerToken int   `json:"max_processed_per_token"`
	MaxPresentedPerToken int   `json:"max_presentations_per_token"`
	MaxConcurrentPerCred int   `json:"max_concurrent_requests_per_credential"`
	ReuseDetections      int   `json:"reuse_detections"`
	Introspections       int   `json:"introspections"`

	Current              int                 `json:"stored_token_is_live"`
	ConsumedParked       []string            `json:"consumed_by_interrupted_refresh_parked"`
	ConsumedUnsettled    []string            `json:"consumed_by_interrupted_refresh_unsettled"`
	Revoked              []string            `json:"families_revoked"`
	TokensLost           []string            `json:"tokens_lost"`
	States               map[string]int      `json:"states"`
	StatusUnknown        []string            `json:"status_unknown,omitempty"`
	NeedsReauth          map[string][]string `json:"needs_reauth_by_reason"`
	NeedsReauthForbidden []string            `json:"needs_reauth_other_reason"`

	WorkerKills    int64          `json:"worker_kills"`
	WorkerCrashes  int64          `json:"worker_exits_not_caused_by_soak"`
	FaultsInjected map[string]int `json:"faults_injected"`
	FaultsTotal    int            `json:"faults_injected_total"`
	Lateness       latenessStats  `json:"lateness"`
	// LatenessNearKill: refreshes due within 15 s after a worker kill.
	LatenessNearKill latenessStats `json:"lateness_after_kills"`
	ExpiredBeforeRT  int           `json:"refreshes_started_after_expiry"`
	WorstOverdue     string        `json:"worst_overdue_at_progress_lines"`

	Failures []string `json:"failures"`
	Pass     bool     `json:"pass"`
}

type latenessStats struct {
	Samples int           `json:"samples"`
	P50     time.Duration `json:"p50_ns"`
	P95     time.Duration `json:"p95_ns"`
	P99     time.Duration `json:"p99_ns"`
	Max     time.Duration `json:"max_ns"`
}

func latenessOf(d []time.Duration) latenessStats {
	if len(d) == 0 {
		return latenessStats{}
	}
	d = slices.Clone(d)
	slices.Sort(d)
	q := func(f float64) time.Duration { return d[min(len(d)-1, int(f*float64(len(d))))] }
	return latenessStats{Samples: len(d), P50: q(0.50), P95: q(0.95), P99: q(0.99), Max: d[len(d)-1]}
}

var interruptedAt = regexp.MustCompile(`\(interrupted attempt at [^)]*\)`)

func (s *soak) summarize(elapsed time.Duration, partial bool, statuses map[string]workflows.Status) (*summary, error) {
	ctx := context.Background()
	st, err := s.openStore(ctx)
	if err != nil {
		return nil, fmt.Errorf("open the token store: %w", err)
	}
	presented, faults, late, nearKill, expired := s.prov.snapshot()
	sum := &summary{
		Seed: s.opts.seed, Partial: partial, Credentials: len(s.ids),
		Duration: elapsed.Round(time.Second).String(), Settle: settleOf(partial), Lifetime: s.opts.lifetime.String(),
		KillEvery: killText(s.opts.killEvery), FaultRate: s.opts.faultRate,
		ProviderRefreshes:    s.fake.Refreshes(),
		Presentations:        s.fake.TotalPresentations(),
		MaxProcessedPerToken: s.fake.MaxProcessed(),
		MaxPresentedPerToken: s.fake.MaxPresentations(),
		ReuseDetections:      s.fake.ReuseDetections(),
		Introspections:       s.fake.Introspections(),
		States:               map[string]int{},
		NeedsReauth:          map[string][]string{},
		WorkerKills:          s.kills.Load(),
		WorkerCrashes:        s.crashes.Load(),
		FaultsInjected:       faults,
		Lateness:             latenessOf(late),
		LatenessNearKill:     latenessOf(nearKill),
		ExpiredBeforeRT:      expired,
		WorstOverdue:         s.worstOverdue.Round(10 * time.Millisecond).String(),
	}
	for _, t := range presented {
		sum.Processed += s.fake.Processed(t)
	}
	for _, n := range faults {
		sum.FaultsTotal += n
	}

	for _, id := range s.ids {
		sum.MaxConcurrentPerCred = max(sum.MaxConcurrentPerCred, s.fake.MaxConcurrentFor(id))
		status, known := statuses[id]
		if known {
			sum.States[string(status.State)]++
		} else {
			sum.StatusUnknown = append(sum.StatusUnknown, id)
		}
		interruptedPark := known && status.State == workflows.StateNeedsReauth &&
			strings.HasPrefix(status.LastError, activities.ReasonInterruptedRefresh)
		if known && status.State == workflows.StateNeedsReauth {
			reason := interruptedAt.ReplaceAllString(status.LastError, "(interrupted attempt at ...)")
			if status.LastErrorCode != "" {
				reason = "[" + status.LastErrorCode + "] " + reason
			}
			sum.NeedsReauth[reason] = append(sum.NeedsReauth[reason], id)
			if !interruptedPark {
				sum.NeedsReauthForbidden = append(sum.NeedsReauthForbidden, id)
			}
		}

		rec, err := st.Get(ctx, id)
		if err != nil {
			sum.TokensLost = append(sum.TokensLost, id+" (not in the store: "+err.Error()+")")
			continue
		}
		sum.RefreshesCommitted += rec.Version - 1
		latest, live := s.fake.Latest(id)
		stored := rec.Secrets.RefreshToken
		switch {
		case live && stored == latest:
			sum.Current++
		case s.fake.Revoked(id):
			// Only reuse detection revokes a family here; ReuseDetections reports it.
			sum.Revoked = append(sum.Revoked, id)
		case live && s.fake.Processed(stored) == 1 && s.fake.Presentations(latest) == 0:
			// The provider processed the stored token once and minted a successor that
			// was never presented: the answer of an interrupted refresh was lost.
			if interruptedPark {
				sum.ConsumedParked = append(sum.ConsumedParked, id)
			} else {
				// Not parked (yet): the stop or the final query caught it between the
				// lost answer and the introspection that parks it.
				sum.ConsumedUnsettled = append(sum.ConsumedUnsettled, id)
			}
		default:
			sum.TokensLost = append(sum.TokensLost, id)
		}
	}
	sum.AnswersLost = int64(sum.ProviderRefreshes) - sum.RefreshesCommitted

	if sum.ReuseDetections > 0 {
		sum.Failures = append(sum.Failures, fmt.Sprintf("%d reuse detections", sum.ReuseDetections))
	}
	if len(sum.TokensLost) > 0 {
		sum.Failures = append(sum.Failures, fmt.Sprintf("%d tokens lost", len(sum.TokensLost)))
	}
	if sum.MaxProcessedPerToken > 1 {
		sum.Failures = append(sum.Failures, fmt.Sprintf("a refresh token was processed %d times", sum.MaxProcessedPerToken))
	}
	if len(sum.NeedsReauthForbidden) > 0 {
		sum.Failures = append(sum.Failures, fmt.Sprintf("%d credentials in NEEDS_REAUTH for another reason than an interrupted refresh", len(sum.NeedsReauthForbidden)))
	}
	sum.Pass = len(sum.Failures) == 0
	return sum, nil
}

func settleOf(partial bool) string {
	if partial {
		return "no settle period"
	}
	return "then " + settleTime.String() + " without kills or faults"
}

func sec(d time.Duration) string { return fmt.Sprintf("%.2fs", d.Seconds()) }

func (sum *summary) print(out io.Writer) {
	title := "soak summary"
	if sum.Partial {
		title += " (PARTIAL: interrupted)"
	}
	fmt.Fprintf(out, "\n%s, seed %d\n", title, sum.Seed)
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	row := func(k string, v any, note string) { fmt.Fprintf(tw, "%s\t%v\t%s\n", k, v, note) }
	okIf := func(ok bool, want string) string {
		if ok {
			return "ok (" + want + ")"
		}
		return "FAIL (" + want + ")"
	}
	row("credentials", sum.Credentials, "")
	row("duration", sum.Duration, fmt.Sprintf("%s; access tokens live %s; kill -9 every %s on average; fault rate %.3g", sum.Settle, sum.Lifetime, sum.KillEvery, sum.FaultRate))
	row("refreshes committed", sum.RefreshesCommitted, "sum of store versions - 1")
	row("provider refreshes", sum.ProviderRefreshes, fmt.Sprintf("%d answers lost before the commit", sum.AnswersLost))
	row("refresh-token presentations", sum.Presentations, fmt.Sprintf("most for one token: %d (retries after before-grant faults)", sum.MaxPresentedPerToken))
	row("processed by the provider", sum.Processed, "")
	row("max processed per token", sum.MaxProcessedPerToken, okIf(sum.MaxProcessedPerToken <= 1, "must be 1"))
	row("reuse detections", sum.ReuseDetections, okIf(sum.ReuseDetections == 0, "must be 0"))
	row("max concurrent requests per credential", sum.MaxConcurrentPerCred, "")
	row("introspections", sum.Introspections, "")
	row("stored token is the live one", sum.Current, "")
	row("consumed by an interrupted refresh, parked", len(sum.ConsumedParked), "documented outcome, not a loss")
	if len(sum.ConsumedUnsettled) > 0 {
		row("consumed by an interrupted refresh, not yet parked", len(sum.ConsumedUnsettled), strings.Join(sum.ConsumedUnsettled, " "))
	}
	row("tokens lost", len(sum.TokensLost), okIf(len(sum.TokensLost) == 0, "must be 0")+" "+strings.Join(sum.TokensLost, " "))
	if len(sum.Revoked) > 0 {
		row("families revoked", len(sum.Revoked), strings.Join(sum.Revoked, " "))
	}
	var states []string
	for k, v := range sum.States {
		states = append(states, fmt.Sprintf("%s %d", k, v))
	}
	sort.Strings(states)
	row("states at the end", strings.Join(states, ", "), "")
	if len(sum.StatusUnknown) > 0 {
		row("status unknown", len(sum.StatusUnknown), strings.Join(sum.StatusUnknown, " "))
	}
	row("NEEDS_REAUTH", sum.States[string(workflows.StateNeedsReauth)], okIf(len(sum.NeedsReauthForbidden) == 0, "only after an interrupted refresh")+
		fmt.Sprintf("; %d of %d credentials answered the status query", sum.Credentials-len(sum.StatusUnknown), sum.Credentials))
	var reasons []string
	for r := range sum.NeedsReauth {
		reasons = append(reasons, r)
	}
	sort.Strings(reasons)
	for _, r := range reasons {
		row("  reason", len(sum.NeedsReauth[r]), r)
	}
	row("worker kills (SIGKILL)", sum.WorkerKills, fmt.Sprintf("exits not caused by the soak: %d", sum.WorkerCrashes))
	row("faults injected", sum.FaultsTotal, "")
	var kinds []string
	for _, k := range faultKinds {
		kinds = append(kinds, k.name)
	}
	for _, k := range kinds {
		row("  "+k, sum.FaultsInjected[k], "")
	}
	l := sum.Lateness
	row("refresh lateness", fmt.Sprintf("p50 %s p95 %s p99 %s max %s", sec(l.P50), sec(l.P95), sec(l.P99), sec(l.Max)),
		fmt.Sprintf("%d refreshes: first presentation of the token vs its due time", l.Samples))
	l = sum.LatenessNearKill
	row("  within 15s after a kill", fmt.Sprintf("p50 %s p95 %s p99 %s max %s", sec(l.P50), sec(l.P95), sec(l.P99), sec(l.Max)),
		fmt.Sprintf("%d refreshes (restart, sticky-queue and heartbeat timeouts)", l.Samples))
	row("refreshes started after expiry", sum.ExpiredBeforeRT, "the access token had run out when the refresh began")
	row("worst overdue credential", sum.WorstOverdue, "seen at a progress line: due, not yet begun")
	_ = tw.Flush()
}

func (s *soak) cleanup(keep bool) {
	s.stopWorker()
	if s.workerLog != nil {
		_ = s.workerLog.Close()
	}
	s.storeMu.Lock()
	if s.store != nil {
		_ = s.store.Close()
	}
	s.storeMu.Unlock()
	if s.fake != nil {
		s.fake.Close()
	}
	if s.prov != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_ = s.prov.http.Shutdown(ctx)
		cancel()
	}
	if s.server != nil {
		s.client.Close()
		_ = s.server.Stop()
	}
	if s.tmp != "" && !keep {
		_ = os.RemoveAll(s.tmp)
	}
}

type quietLogger struct{}

func (quietLogger) Debug(string, ...any) {}
func (quietLogger) Info(string, ...any)  {}
func (quietLogger) Warn(string, ...any)  {}
func (quietLogger) Error(string, ...any) {}
