// Command soak is tokenwarden's bounded soak test: many credentials with short
// access-token lifetimes refreshing for minutes against the strict fake provider, while
// the worker is killed with SIGKILL at random, the provider misbehaves at random, the
// token store is locked for seconds at a time, and every restarted worker runs with a
// clock skewed by up to -skew. At the end it prints a table and checks the invariants:
//
//   - the provider detected no refresh-token reuse;
//   - no refresh token was processed twice by the provider;
//   - no token was lost: every credential's stored refresh token is its family's live one,
//     unless an interrupted refresh consumed it (the provider rotated but the answer was
//     lost), which is the documented NEEDS_REAUTH outcome, not a loss.
//
// It starts everything itself: a private Temporal dev server (bin/temporal), the fake
// OAuth2 provider on a loopback listener, and the worker binary as a subprocess. The clock
// skew needs the worker built with -tags faultinject (activities/faults_on.go), which
// `make soak` builds; a worker that ignores the skew fails the soak. Run it with `make
// soak` (SOAK_FLAGS passes flags); it is not part of `make test`.
package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	_ "modernc.org/sqlite" // the "sqlite" driver for the outages' second connection

	"github.com/tokenwarden/tokenwarden/activities"
	"github.com/tokenwarden/tokenwarden/internal/credential"
	"github.com/tokenwarden/tokenwarden/internal/loadtest/harness"
	"github.com/tokenwarden/tokenwarden/internal/provider"
	"github.com/tokenwarden/tokenwarden/internal/provider/oauth2/oauth2test"
	"github.com/tokenwarden/tokenwarden/internal/seal"
	"github.com/tokenwarden/tokenwarden/workflows"
)

const (
	taskQueue    = "soak"
	clientID     = "soak-client"
	clientSecret = "soak-client-secret"
	// settleTime is how long the stack runs without kills and faults before the final
	// check, so that refreshes interrupted near the end are settled (the 10 s heartbeat
	// timeout, then the rest of a 15 s lease, then the retry) rather than caught
	// half-way.
	settleTime = 20 * time.Second
	// progressEvery is the interval of the progress lines.
	progressEvery = 15 * time.Second
	// clockSkewEnv is activities.ClockSkewEnv, which only the faultinject build has.
	clockSkewEnv = "TOKENWARDEN_FAULT_CLOCK_SKEW"
	// skewConfirmed is what a faultinject worker logs when it runs skewed (worker/main.go).
	skewConfirmed = "this worker's clock is skewed"
	// outboxKept is what the worker logs when the store did not take a token set before
	// the lease's end and the outbox keeps it (activities/refresh.go).
	outboxKept = "it is kept in the outbox"
)

type options struct {
	credentials int
	duration    time.Duration
	lifetime    time.Duration
	killEvery   time.Duration
	faultRate   float64
	outageEvery time.Duration
	outageMin   time.Duration
	outageMax   time.Duration
	skew        time.Duration
	temporal    string
	worker      string
	seed        int64
	json        bool
}

func main() {
	harness.Trampoline("soak")
	os.Exit(run())
}

func parseFlags() (options, error) {
	var o options
	fs := flag.NewFlagSet("soak", flag.ContinueOnError)
	fs.IntVar(&o.credentials, "credentials", 100, "number of credentials (workflows soak-0001...)")
	fs.DurationVar(&o.duration, "duration", 5*time.Minute, "how long to run with kills and faults (a 20 s settle period follows)")
	fs.DurationVar(&o.lifetime, "lifetime", 10*time.Second, "access token lifetime at the fake provider")
	fs.DurationVar(&o.killEvery, "kill-every", 45*time.Second, "mean interval between worker kill -9s (exponential); 0 = never")
	fs.Float64Var(&o.faultRate, "fault-rate", 0.05, "probability that a token request gets an injected fault")
	fs.DurationVar(&o.outageEvery, "outage-every", 40*time.Second, "mean interval between store outages (exponential; the soak holds BEGIN EXCLUSIVE on tokens.db); 0 = never")
	fs.DurationVar(&o.outageMin, "outage-min", 5*time.Second, "shortest store outage")
	fs.DurationVar(&o.outageMax, "outage-max", 20*time.Second, "longest store outage")
	fs.DurationVar(&o.skew, "skew", 30*time.Second, "each restarted worker's clock is skewed by a uniform amount in [-skew, +skew] (needs a faultinject worker); 0 = never")
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
	case o.outageEvery < 0:
		return o, errors.New("-outage-every: must not be negative")
	case o.outageMin <= 0 || o.outageMax < o.outageMin:
		return o, errors.New("-outage-min, -outage-max: need 0 < min <= max")
	case o.skew < 0:
		return o, errors.New("-skew: must not be negative")
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
	ids     []string
	started time.Time

	stack   *harness.Stack
	kills   atomic.Int64
	crashes atomic.Int64 // worker exits the soak did not cause

	faultsMu sync.Mutex
	outages  []time.Duration // how long each store outage held the lock
	skews    []time.Duration // the clock skew of each worker start after the first

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
	fmt.Printf("soak: a store outage of %s-%s every %s on average, restarted workers' clocks skewed by up to ±%s\n",
		opts.outageMin, opts.outageMax, killText(opts.outageEvery), opts.skew)

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
	s.stack, err = harness.StartStack(runCtx, harness.StackOptions{
		Name:         "soak",
		Temporal:     s.opts.temporal,
		Worker:       s.opts.worker,
		Dir:          s.tmp,
		TaskQueue:    taskQueue,
		ClientID:     clientID,
		ClientSecret: clientSecret,
		Lifetime:     s.opts.lifetime,
		Proxy: harness.ProxyOptions{
			Margin:    s.opts.lifetime / 3,
			Jitter:    min(time.Second, s.opts.lifetime/10),
			FaultRate: s.opts.faultRate,
			Seed:      s.opts.seed,
		},
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "soak:", err)
		return 1
	}
	fmt.Printf("soak: dev server %s, provider %s, worker log %s\n", s.stack.Server.FrontendHostPort(), s.stack.Proxy.Base, s.stack.WorkerLogName())

	s.started = time.Now()
	phaseCtx, endPhase := context.WithTimeout(runCtx, s.opts.duration)
	defer endPhase()
	if err := s.startCredentials(phaseCtx); err != nil && phaseCtx.Err() == nil {
		fmt.Fprintln(os.Stderr, "soak:", err)
		return 1
	}

	s.stack.Proxy.SetFaults(s.opts.faultRate > 0)
	var wg sync.WaitGroup
	wg.Add(3)
	go func() { defer wg.Done(); s.superviseWorker(phaseCtx) }()
	go func() { defer wg.Done(); s.storeOutages(phaseCtx) }()
	go func() { defer wg.Done(); s.progress(phaseCtx) }()
	<-phaseCtx.Done()
	elapsed := time.Since(s.started)
	s.stack.Proxy.SetFaults(false)
	s.stack.Fake.ClearFaults()
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
	s.stack.Worker.Stop()
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

// startCredentials seeds a token family per credential at the fake and starts its
// workflow, spread over one token lifetime so the refreshes do not all fall together.
func (s *soak) startCredentials(ctx context.Context) error {
	dur := func(d time.Duration) *workflows.Duration { v := workflows.Duration(d); return &v }
	cfg := provider.Config{
		TokenURL:         s.stack.Proxy.Base + oauth2test.TokenPath,
		IntrospectionURL: s.stack.Proxy.Base + oauth2test.IntrospectionPath,
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
		seed := s.stack.Fake.Seed(id)
		s.stack.Proxy.Own(seed, id)
		sealed, err := s.stack.Sealer.SealFor(seal.Request{ID: id, Provider: "oauth2", Config: cfg,
			Seed: workflows.Seed{RefreshToken: seed, ClientSecret: clientSecret}})
		if err != nil {
			return fmt.Errorf("seal the seed of %s: %w", id, err)
		}
		in := workflows.CredentialInput{Provider: "oauth2", Config: cfg, Policy: policy, Seed: &sealed}
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		_, err = s.stack.Client.ExecuteWorkflow(cctx, client.StartWorkflowOptions{ID: id, TaskQueue: taskQueue}, workflows.WorkflowType, in)
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
	w := s.stack.Worker
	for {
		select {
		case <-ctx.Done():
			if !w.Running() {
				if err := w.Start(); err != nil {
					fmt.Println("soak:", err)
				}
			}
			return
		case <-nextKill:
			w.Kill9()
			s.kills.Add(1)
			s.stack.Proxy.Killed(time.Now())
			nextKill = nil
			restart = time.After(time.Second + time.Duration(rng.Float64()*float64(2*time.Second)))
		case <-restart:
			restart = nil
			var extra []string
			if s.opts.skew > 0 {
				skew := time.Duration((2*rng.Float64() - 1) * float64(s.opts.skew)).Round(time.Millisecond)
				extra = []string{clockSkewEnv + "=" + skew.String()}
				s.faultsMu.Lock()
				s.skews = append(s.skews, skew)
				s.faultsMu.Unlock()
			}
			if err := w.StartWith(extra); err != nil {
				fmt.Println("soak:", err)
				restart = time.After(time.Second)
				continue
			}
			nextKill = killTimer()
		case <-w.Exited():
			err := w.Reap()
			s.crashes.Add(1)
			fmt.Printf("soak: the worker exited by itself (%v); restarting it; see %s\n", err, s.stack.WorkerLogName())
			nextKill = nil
			restart = time.After(time.Second)
		}
	}
}

// storeOutages makes the token store unavailable at exponentially distributed intervals
// (mean -outage-every), the way a stuck process or an operator's tool would: a second
// connection holds SQLite's write lock (BEGIN EXCLUSIVE) for -outage-min to -outage-max.
// Readers still read (WAL); every write the worker tries waits its 5 s busy timeout and
// fails, so a commit after the provider rotated retries until the lease nears its end
// and then goes to the outbox (activities/refresh.go). An outage still on when ctx ends
// is cut short.
func (s *soak) storeOutages(ctx context.Context) {
	if s.opts.outageEvery <= 0 {
		return
	}
	rng := rand.New(rand.NewPCG(uint64(s.opts.seed), 2))
	path := filepath.Join(s.stack.DataDir, "tokens.db")
	for {
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Duration(rng.ExpFloat64() * float64(s.opts.outageEvery))):
		}
		hold := s.opts.outageMin + time.Duration(rng.Float64()*float64(s.opts.outageMax-s.opts.outageMin))
		held, err := lockStore(ctx, path, hold)
		if err != nil {
			fmt.Println("soak: store outage:", err)
			continue
		}
		s.faultsMu.Lock()
		s.outages = append(s.outages, held)
		s.faultsMu.Unlock()
	}
}

// lockStore holds the write lock of the SQLite database at path for hold (less if ctx
// ends) and returns how long it held it.
func lockStore(ctx context.Context, path string, hold time.Duration) (time.Duration, error) {
	q := url.Values{}
	// The worker's own transactions are short: wait for one to end rather than fail.
	q.Add("_pragma", "busy_timeout(5000)")
	db, err := sql.Open("sqlite", (&url.URL{Scheme: "file", Path: filepath.ToSlash(path), RawQuery: q.Encode()}).String())
	if err != nil {
		return 0, fmt.Errorf("open %s: %w", filepath.Base(path), err)
	}
	defer db.Close()
	conn, err := db.Conn(ctx)
	if err != nil {
		return 0, fmt.Errorf("connect to %s: %w", filepath.Base(path), err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, "BEGIN EXCLUSIVE"); err != nil {
		return 0, fmt.Errorf("lock %s: %w", filepath.Base(path), err)
	}
	locked := time.Now()
	select {
	case <-ctx.Done():
	case <-time.After(hold):
	}
	held := time.Since(locked)
	// Not ctx: the lock must be released even when the phase has ended.
	if _, err := conn.ExecContext(context.Background(), "ROLLBACK"); err != nil {
		return held, fmt.Errorf("unlock %s: %w", filepath.Base(path), err)
	}
	return held, nil
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
		if n, err := s.stack.Committed(ctx); err == nil {
			committed = fmt.Sprint(n)
		}
		late := s.stack.Proxy.Window()
		lateText := "every refresh due was within 15s of a kill"
		if len(late) > 0 {
			st := harness.LatenessOf(late)
			s.maxLateness = max(s.maxLateness, st.Max)
			lateText = fmt.Sprintf("lateness p50 %s p95 %s max %s", harness.Sec(st.P50), harness.Sec(st.P95), harness.Sec(st.Max))
		}
		n, worst := s.stack.Proxy.Overdue(time.Now())
		s.worstOverdue = max(s.worstOverdue, worst)
		s.faultsMu.Lock()
		outages := len(s.outages)
		s.faultsMu.Unlock()
		fmt.Printf("[%7s] committed %s  provider refreshes %d  kills %d  store outages %d  faults %d  parked %s  expired %s  %s  overdue now %d (worst %s)  load %s\n",
			time.Since(s.started).Round(time.Second), committed, s.stack.Fake.Refreshes(), s.kills.Load(), outages,
			s.stack.Proxy.FaultCount(), s.countState(ctx, credential.StateNeedsReauth), s.countState(ctx, credential.StateExpired), lateText,
			n, harness.Sec(worst), harness.LoadAverage())
	}
}

// countState counts this soak's credentials in a state, from the TokenState search
// attribute (eventually consistent, good enough for progress).
func (s *soak) countState(ctx context.Context, st credential.State) string {
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	res, err := s.stack.Client.CountWorkflow(cctx, &workflowservice.CountWorkflowExecutionsRequest{
		Namespace: "default",
		Query:     fmt.Sprintf("TokenState = %q AND TaskQueue = %q AND ExecutionStatus = 'Running'", st, taskQueue),
	})
	if err != nil {
		return "?"
	}
	return fmt.Sprint(res.GetCount())
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
				v, err := s.stack.Client.QueryWorkflow(qctx, id, "", workflows.QueryStatus)
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

	StoreOutages       int                   `json:"store_outages"`
	StoreOutageTotal   string                `json:"store_outage_total"`
	StoreOutageLongest string                `json:"store_outage_longest"`
	OutboxKept         int                   `json:"outbox_kept"`
	SkewedStarts       int                   `json:"skewed_worker_starts"`
	SkewConfirmed      int                   `json:"skewed_worker_starts_confirmed"`
	SkewMin            string                `json:"clock_skew_min"`
	SkewMax            string                `json:"clock_skew_max"`
	WorkerKills        int64                 `json:"worker_kills"`
	WorkerCrashes      int64                 `json:"worker_exits_not_caused_by_soak"`
	FaultsInjected     map[string]int        `json:"faults_injected"`
	FaultsTotal        int                   `json:"faults_injected_total"`
	Lateness           harness.LatenessStats `json:"lateness"`
	// LatenessNearKill: refreshes due within 15 s after a worker kill.
	LatenessNearKill harness.LatenessStats `json:"lateness_after_kills"`
	ExpiredBeforeRT  int                   `json:"refreshes_started_after_expiry"`
	WorstOverdue     string                `json:"worst_overdue_at_progress_lines"`

	Failures []string `json:"failures"`
	Pass     bool     `json:"pass"`
}

var interruptedAt = regexp.MustCompile(`\(interrupted attempt at [^)]*\)`)

func (s *soak) summarize(elapsed time.Duration, partial bool, statuses map[string]workflows.Status) (*summary, error) {
	ctx := context.Background()
	st, err := s.stack.OpenStore(ctx)
	if err != nil {
		return nil, fmt.Errorf("open the token store: %w", err)
	}
	presented, faults, late, nearKill, expired := s.stack.Proxy.Snapshot()
	sum := &summary{
		Seed: s.opts.seed, Partial: partial, Credentials: len(s.ids),
		Duration: elapsed.Round(time.Second).String(), Settle: settleOf(partial), Lifetime: s.opts.lifetime.String(),
		KillEvery: killText(s.opts.killEvery), FaultRate: s.opts.faultRate,
		ProviderRefreshes:    s.stack.Fake.Refreshes(),
		Presentations:        s.stack.Fake.TotalPresentations(),
		MaxProcessedPerToken: s.stack.Fake.MaxProcessed(),
		MaxPresentedPerToken: s.stack.Fake.MaxPresentations(),
		ReuseDetections:      s.stack.Fake.ReuseDetections(),
		Introspections:       s.stack.Fake.Introspections(),
		States:               map[string]int{},
		NeedsReauth:          map[string][]string{},
		WorkerKills:          s.kills.Load(),
		WorkerCrashes:        s.crashes.Load(),
		FaultsInjected:       faults,
		Lateness:             harness.LatenessOf(late),
		LatenessNearKill:     harness.LatenessOf(nearKill),
		ExpiredBeforeRT:      expired,
		WorstOverdue:         s.worstOverdue.Round(10 * time.Millisecond).String(),
	}
	for _, t := range presented {
		sum.Processed += s.stack.Fake.Processed(t)
	}
	s.faultsMu.Lock()
	var total, longest time.Duration
	for _, d := range s.outages {
		total += d
		longest = max(longest, d)
	}
	sum.StoreOutages = len(s.outages)
	sum.StoreOutageTotal = total.Round(100 * time.Millisecond).String()
	sum.StoreOutageLongest = longest.Round(100 * time.Millisecond).String()
	var lo, hi time.Duration
	for _, d := range s.skews {
		if d != 0 {
			sum.SkewedStarts++
		}
		lo, hi = min(lo, d), max(hi, d)
	}
	sum.SkewMin, sum.SkewMax = lo.String(), hi.String()
	s.faultsMu.Unlock()
	if logText, err := os.ReadFile(s.stack.WorkerLogName()); err == nil {
		sum.OutboxKept = strings.Count(string(logText), outboxKept)
		sum.SkewConfirmed = strings.Count(string(logText), skewConfirmed)
	} else {
		return nil, fmt.Errorf("read the worker log: %w", err)
	}
	for _, n := range faults {
		sum.FaultsTotal += n
	}

	for _, id := range s.ids {
		sum.MaxConcurrentPerCred = max(sum.MaxConcurrentPerCred, s.stack.Fake.MaxConcurrentFor(id))
		status, known := statuses[id]
		if known {
			sum.States[string(status.State)]++
		} else {
			sum.StatusUnknown = append(sum.StatusUnknown, id)
		}
		interruptedPark := known && status.State == credential.StateNeedsReauth &&
			strings.HasPrefix(status.LastError, activities.ReasonInterruptedRefresh)
		if known && status.State == credential.StateNeedsReauth {
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
		latest, live := s.stack.Fake.Latest(id)
		stored := rec.Secrets.RefreshToken
		switch {
		case live && stored == latest:
			sum.Current++
		case s.stack.Fake.Revoked(id):
			// Only reuse detection revokes a family here; ReuseDetections reports it.
			sum.Revoked = append(sum.Revoked, id)
		case live && s.stack.Fake.Processed(stored) == 1 && s.stack.Fake.Presentations(latest) == 0:
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
	if sum.SkewedStarts > 0 && sum.SkewConfirmed < sum.SkewedStarts {
		sum.Failures = append(sum.Failures, fmt.Sprintf("only %d of %d skewed worker starts ran skewed (is the worker a faultinject build?)", sum.SkewConfirmed, sum.SkewedStarts))
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

func (sum *summary) print(out io.Writer) {
	title := "soak summary"
	if sum.Partial {
		title += " (PARTIAL: interrupted)"
	}
	fmt.Fprintf(out, "\n%s, seed %d\n", title, sum.Seed)
	tw := harness.NewTable(out)
	row := tw.Row
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
	row("NEEDS_REAUTH", sum.States[string(credential.StateNeedsReauth)], okIf(len(sum.NeedsReauthForbidden) == 0, "only after an interrupted refresh")+
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
	row("store outages (SQLite locked)", sum.StoreOutages, fmt.Sprintf("BEGIN EXCLUSIVE on a second connection; %s in all, longest %s", sum.StoreOutageTotal, sum.StoreOutageLongest))
	row("  token sets kept in the outbox", sum.OutboxKept, "the store did not take them before the lease's end (worker log)")
	row("worker starts with a skewed clock", sum.SkewedStarts, fmt.Sprintf("%s to %s; %d confirmed in the worker log (faultinject build)", sum.SkewMin, sum.SkewMax, sum.SkewConfirmed))
	row("faults injected", sum.FaultsTotal, "")
	var kinds []string
	for _, k := range harness.FaultKinds {
		kinds = append(kinds, k.Name)
	}
	for _, k := range kinds {
		row("  "+k, sum.FaultsInjected[k], "")
	}
	l := sum.Lateness
	row("refresh lateness", fmt.Sprintf("p50 %s p95 %s p99 %s max %s", harness.Sec(l.P50), harness.Sec(l.P95), harness.Sec(l.P99), harness.Sec(l.Max)),
		fmt.Sprintf("%d refreshes: first presentation of the token vs its due time", l.Samples))
	l = sum.LatenessNearKill
	row("  within 15s after a kill", fmt.Sprintf("p50 %s p95 %s p99 %s max %s", harness.Sec(l.P50), harness.Sec(l.P95), harness.Sec(l.P99), harness.Sec(l.Max)),
		fmt.Sprintf("%d refreshes (restart, sticky-queue and heartbeat timeouts)", l.Samples))
	row("refreshes started after expiry", sum.ExpiredBeforeRT, "the access token had run out when the refresh began")
	row("worst overdue credential", sum.WorstOverdue, "seen at a progress line: due, not yet begun")
	_ = tw.Flush()
}

func (s *soak) cleanup(keep bool) {
	if s.stack != nil {
		s.stack.Close(keep)
	} else if s.tmp != "" && !keep {
		_ = os.RemoveAll(s.tmp)
	}
}
