// Command bench is tokenwarden's benchmark: many credentials with short
// access-token lifetimes refreshing against the fake OAuth2 provider on a private dev
// server, without faults or kills, and the figures that say whether tokenwarden keeps up:
// refreshes per second, how late each refresh is committed, provider presentations per
// refresh, reuse detections, history events per refresh cycle, the worker's peak RSS and
// CPU, and the engine's own ceiling measured on the same server in the same run (a bare
// workflow looping over one no-op activity and a short timer).
//
// It reuses the soak's machinery (internal/loadtest/harness): the dev server from bin/temporal in
// a process group of its own, the fake provider behind the recording proxy, the worker
// binary as a subprocess with a generated key file. Run it with `make bench` (BENCH_FLAGS
// passes flags); it is not part of `make test`, and a missed target never fails it.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"math"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	enums "go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/tokenwarden/tokenwarden/internal/credential"
	"github.com/tokenwarden/tokenwarden/internal/loadtest/harness"
	"github.com/tokenwarden/tokenwarden/internal/provider"
	"github.com/tokenwarden/tokenwarden/internal/provider/oauth2/oauth2test"
	"github.com/tokenwarden/tokenwarden/internal/seal"
	"github.com/tokenwarden/tokenwarden/internal/store"
	"github.com/tokenwarden/tokenwarden/workflows"
)

const (
	taskQueue        = "bench"
	ceilingQueue     = "bench-ceiling"
	ceilingWorkflow  = "BenchCeilingWorkflow"
	ceilingActivity  = "BenchNoop"
	clientID         = "bench-client"
	clientSecret     = "bench-client-secret"
	progressEvery    = 15 * time.Second
	pollEvery        = 5 * time.Second // the token store is read this often
	overdueThreshold = 2 * time.Second

	targetCredentials = 50000
	targetP99         = 2 * time.Second
	targetCeiling     = 0.80
	targetRSS         = 300 << 20
	targetEvents      = 11.0
)

type options struct {
	credentials   int
	lifetime      time.Duration
	jitter        time.Duration
	duration      time.Duration
	parallel      int
	warmup        time.Duration
	historySample int
	ceilingN      int
	ceilingTimer  time.Duration
	ceilingWarmup time.Duration
	ceilingWindow time.Duration
	temporal      string
	worker        string
	keep          bool
	skipCeiling   bool
	load          float64
	stagger       bool
	atOrigin      bool
	startRate     float64
	workerCache   int
	compression   string
	ceilingUpsert bool
}

func main() {
	harness.Trampoline("bench")
	os.Exit(run())
}

func parseFlags() (options, error) {
	var o options
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.IntVar(&o.credentials, "credentials", 2000, "number of credentials (workflows bench-00001...)")
	fs.DurationVar(&o.lifetime, "lifetime", time.Minute, "access token lifetime at the fake provider, with -load 0 (refresh_margin is a third of it)")
	fs.DurationVar(&o.jitter, "jitter", 5*time.Second, "policy.jitter of every credential (at most a tenth of -lifetime takes effect)")
	fs.DurationVar(&o.duration, "duration", 0, "measurement window, once every credential has committed its first refresh (0: one refresh period of the slowest credential plus 30s, at least 3m)")
	fs.Float64Var(&o.load, "load", 0.35, "pick the access token lifetime so that the credentials ask for this fraction of the engine ceiling measured first (0: use -lifetime)")
	fs.Float64Var(&o.startRate, "start-rate", 0, "credentials started per second (0: 0.35 of the engine ceiling, or unpaced with -skip-ceiling; negative: unpaced)")
	fs.IntVar(&o.workerCache, "worker-cache", 0, "the worker's TOKENWARDEN_WORKFLOW_CACHE_SIZE (0: its default)")
	fs.StringVar(&o.compression, "grpc-compression", "", "gRPC compression of the worker's and this program's requests to the dev server, gzip or none (empty: the worker's default, TOKENWARDEN_TEMPORAL_GRPC_COMPRESSION)")
	fs.BoolVar(&o.stagger, "stagger", true, "seed every credential with an access token whose expiry spreads the first refreshes evenly over one refresh period, as in a fleet running for a while (false: every seed asks for a refresh at once)")
	fs.BoolVar(&o.atOrigin, "window-at-origin", false, "with -stagger, open the window when the first staggered refreshes come due, after the last start, instead of once every credential has committed its first refresh: the first refreshes are measured too, and the run is one refresh period shorter (for -credentials 50000)")
	fs.DurationVar(&o.warmup, "warmup", 0, "wait this long after the first refreshes before the window opens (0: open it at once)")
	fs.IntVar(&o.parallel, "parallel", 16, "credentials (and ceiling workflows) started at once")
	fs.IntVar(&o.historySample, "history-sample", 20, "workflows whose history length is sampled")
	fs.IntVar(&o.ceilingN, "ceiling-workflows", 0, "bare workflows of the engine ceiling (0: as many as -credentials, at most 2000, which saturate the engine already)")
	fs.DurationVar(&o.ceilingTimer, "ceiling-timer", 200*time.Millisecond, "the ceiling workflow's timer per cycle")
	fs.DurationVar(&o.ceilingWarmup, "ceiling-warmup", 10*time.Second, "ceiling: run this long after the last start before measuring")
	fs.DurationVar(&o.ceilingWindow, "ceiling-window", 30*time.Second, "ceiling: measurement window")
	fs.BoolVar(&o.skipCeiling, "skip-ceiling", false, "do not measure the engine ceiling")
	fs.BoolVar(&o.ceilingUpsert, "ceiling-upsert", false, "the bare cycle also upserts one search attribute (TokenExpiresAt), as a credential's cycle does: what that costs the engine")
	fs.StringVar(&o.temporal, "temporal", "bin/temporal", "path of the temporal CLI (dev server)")
	fs.StringVar(&o.worker, "worker", "bin/worker", "path of the worker binary")
	fs.BoolVar(&o.keep, "keep", false, "keep the run's directory (server.log, worker.log, data/)")
	if err := fs.Parse(os.Args[1:]); err != nil {
		return o, err
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if o.skipCeiling && !set["load"] {
		o.load = 0 // the default -load needs the ceiling; without it, -lifetime applies
	}
	if set["lifetime"] && !set["load"] {
		o.load = 0 // a lifetime given is a lifetime meant
	}
	switch {
	case fs.NArg() > 0:
		return o, fmt.Errorf("unexpected arguments: %s", strings.Join(fs.Args(), " "))
	case o.credentials < 1 || o.credentials > 99999:
		return o, errors.New("-credentials: must be 1..99999")
	case o.lifetime < 6*time.Second:
		return o, errors.New("-lifetime: must be at least 6s")
	case o.jitter < 0:
		return o, errors.New("-jitter: must not be negative")
	case o.duration < 0 || o.ceilingWindow <= 0:
		return o, errors.New("-duration: must not be negative; -ceiling-window: must be positive")
	case o.compression != "" && o.compression != "gzip" && o.compression != "none":
		return o, fmt.Errorf("-grpc-compression: %q is not gzip or none", o.compression)
	case o.workerCache < 0:
		return o, errors.New("-worker-cache: must not be negative")
	case o.load < 0 || o.load > 2:
		return o, errors.New("-load: must be between 0 and 2")
	case o.load > 0 && o.skipCeiling:
		return o, errors.New("-load needs the engine ceiling: drop -skip-ceiling")
	case o.atOrigin && !o.stagger:
		return o, errors.New("-window-at-origin needs -stagger: unstaggered seeds ask for their first refresh at once")
	case o.atOrigin && o.warmup > 0:
		return o, errors.New("-window-at-origin and -warmup exclude each other: the window opens at the origin")
	case o.warmup < 0:
		return o, errors.New("-warmup: must not be negative")
	case o.parallel < 1:
		return o, errors.New("-parallel: must be at least 1")
	case o.ceilingTimer <= 0:
		return o, errors.New("-ceiling-timer: must be positive")
	}
	if o.ceilingN <= 0 {
		o.ceilingN = min(o.credentials, 2000)
	}
	o.historySample = min(max(o.historySample, 1), o.credentials)
	return o, nil
}

type bench struct {
	opts  options
	stack *harness.Stack
	ids   []string
	// lifetime is the access tokens' lifetime: -lifetime, or what -load picked.
	lifetime time.Duration
	window   time.Duration // -duration, or what it defaults to
	policy   workflows.Policy
	timing   workflows.Timing
	trk      *tracker
}

func run() int {
	opts, err := parseFlags()
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		fmt.Fprintln(os.Stderr, "bench:", err)
		return 2
	}
	for _, p := range []*string{&opts.temporal, &opts.worker} {
		if abs, err := filepath.Abs(*p); err == nil {
			*p = abs
		}
		if _, err := os.Stat(*p); err != nil {
			fmt.Fprintf(os.Stderr, "bench: %v (run `make bench`, which builds it)\n", err)
			return 2
		}
	}
	// Ctrl-C (or SIGTERM) ends the current phase early and prints what was measured.
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	ctx, interrupt := context.WithCancel(context.Background())
	go func() {
		<-sigs
		fmt.Println("\nbench: interrupted; finishing with what was measured")
		interrupt()
		<-sigs
		fmt.Println("\nbench: aborting")
		os.Exit(130)
	}()

	tmp, err := os.MkdirTemp("", "tokenwarden-bench-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		return 1
	}
	b := &bench{opts: opts}
	b.setLifetime(opts.lifetime)
	var workerEnv []string
	if opts.workerCache > 0 {
		workerEnv = append(workerEnv, fmt.Sprintf("TOKENWARDEN_WORKFLOW_CACHE_SIZE=%d", opts.workerCache))
	}
	lifetime := opts.lifetime.String()
	if opts.load > 0 {
		lifetime = fmt.Sprintf("picked for %.0f%% of the ceiling", 100*opts.load)
	}
	fmt.Printf("bench: %d credentials, access tokens live %s (refresh_margin a third, jitter %s), staggered %t; ceiling: %d bare workflows, timer %s\n",
		opts.credentials, lifetime, opts.jitter, opts.stagger, opts.ceilingN, opts.ceilingTimer)
	b.stack, err = harness.StartStack(ctx, harness.StackOptions{
		Name:         "bench",
		Temporal:     opts.temporal,
		Worker:       opts.worker,
		Dir:          tmp,
		TaskQueue:    taskQueue,
		ClientID:     clientID,
		ClientSecret: clientSecret,
		Lifetime:     opts.lifetime,
		// Margin 0: the policy's margin is a third of the lifetime, which is the proxy's
		// floor anyway, taken from each answer's expires_in (so -load may change it).
		Proxy:           harness.ProxyOptions{Margin: 0, Jitter: opts.jitter, Seed: 1},
		WorkerEnv:       workerEnv,
		GrpcCompression: opts.compression,
		// The bare workflows are terminated before the credentials start, but their
		// mutable state may still be cached then.
		ServerCache: opts.credentials + opts.ceilingN,
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		b.stack.Close(true)
		fmt.Printf("bench: kept %s\n", tmp)
		return 1
	}
	fmt.Printf("bench: dev server %s, provider %s, worker log %s\n", b.stack.Server.FrontendHostPort(), b.stack.Proxy.Base, b.stack.WorkerLogName())
	res, err := b.main(ctx)
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		b.stack.Close(true)
		fmt.Printf("bench: kept %s\n", tmp)
		return 1
	}
	res.print(b)
	b.stack.Close(opts.keep)
	if opts.keep {
		fmt.Printf("bench: kept %s\n", tmp)
	}
	return 0
}

// result is everything the table shows.
type result struct {
	partial bool

	ceiling ceilingResult

	started, startErrors int
	startTook            time.Duration
	window               time.Duration
	commits              int64 // store versions added in the window
	offered              float64

	lateness      harness.LatenessStats // commit - scheduled
	missed        int                   // commits whose predecessor the poller did not see
	presentLate   harness.LatenessStats // first presentation - proxy's due
	overdueEnd    int
	overdueWorst  time.Duration
	refreshedAll  int // credentials with at least one commit in the window
	presentations int
	provRefreshes int
	reuse         int
	maxProcessed  int

	histCycles int64
	histEvents int64
	histUsed   int
	histRuns   int // sampled workflows skipped because they continued as new

	statusChecked int
	statusMaxDiff time.Duration
	proxyChecked  int
	proxyMaxDiff  time.Duration

	worker    harness.ProcStats
	workerCPU time.Duration // in the window
	serverCPU time.Duration // the dev server's, in the window; 0 when unknown
	benchCPU  time.Duration
	states    map[string]int
}

func (b *bench) main(ctx context.Context) (*result, error) {
	res := &result{}
	var err error
	if !b.opts.skipCeiling {
		res.ceiling, err = b.runCeiling(ctx)
		if err != nil {
			return nil, fmt.Errorf("engine ceiling: %w", err)
		}
		if res.ceiling.cycles == 0 && ctx.Err() == nil {
			return nil, errors.New("engine ceiling: no bare cycle in the window; nothing to size -load against")
		}
	}

	for i := 1; i <= b.opts.credentials; i++ {
		b.ids = append(b.ids, fmt.Sprintf("bench-%05d", i))
	}
	if b.opts.load > 0 {
		want := b.opts.load * res.ceiling.rate
		b.setLifetime(lifetimeFor(b.ids, want, b.opts.jitter))
		b.stack.Fake.SetAccessLifetime(b.lifetime)
		fmt.Printf("bench: -load %.2f: access tokens live %s, so that the credentials ask for %.2f refreshes/s (ceiling %.2f/s)\n",
			b.opts.load, b.lifetime, offeredRate(b.ids, b.lifetime, b.timing), res.ceiling.rate)
	}
	b.window = b.opts.duration
	if b.window == 0 {
		lead := min(max(b.timing.RefreshMargin.D(), b.lifetime/3), b.lifetime/2)
		b.window = max(3*time.Minute, b.lifetime-lead+30*time.Second)
	}

	st, err := b.stack.OpenStore(ctx)
	if err != nil {
		return nil, fmt.Errorf("open the token store: %w", err)
	}
	b.trk = &tracker{st: st, timing: b.timing, last: map[string]store.Record{}, scheduledFrom: 2}
	if b.opts.atOrigin {
		b.trk.scheduledFrom = 1
	}

	// Start the credentials.
	cfg := provider.Config{
		TokenURL:         b.stack.Proxy.Base + oauth2test.TokenPath,
		IntrospectionURL: b.stack.Proxy.Base + oauth2test.IntrospectionPath,
		ClientID:         clientID,
		AuthStyle:        "header",
	}
	// Starting a credential costs the engine about three bare cycles (a seed activity
	// between two workflow tasks, plus creating the execution and its visibility record:
	// 24 starts a second against a ceiling of 70 cycles). Unpaced, the starts would
	// outrun the engine, and the workflow tasks it cannot hand out at once wait in the
	// task queue's backlog, some of them for minutes. Paced, with every seed's first
	// refresh due after the last start, the engine carries the starts alone and then
	// the refreshes alone, evenly phased.
	startRate := b.opts.startRate
	if startRate == 0 && !b.opts.skipCeiling {
		startRate = 0.35 * res.ceiling.rate
	}
	t0 := time.Now()
	origin := t0 // the first refreshes are phased over one period from here
	if startRate > 0 {
		origin = t0.Add(time.Duration(float64(len(b.ids))/startRate*float64(time.Second)) + 10*time.Second)
		fmt.Printf("bench: starting %d credentials at %.1f/s; their first refreshes fall evenly between %s and one period later\n",
			len(b.ids), startRate, origin.Format(time.TimeOnly))
	}
	phase := map[string]float64{}
	for i, id := range b.ids {
		phase[id] = goldenPhase(i)
	}
	res.started, res.startErrors = startAll(ctx, "credentials", b.ids, b.opts.parallel, startRate, func(ctx context.Context, id string) error {
		seed := b.stack.Fake.Seed(id)
		b.stack.Proxy.Own(seed, id)
		plain := workflows.Seed{RefreshToken: seed, ClientSecret: clientSecret}
		if b.opts.stagger {
			// The workflow wakes NextWakeup before this expiry: at now + phase of one
			// period. The access token itself is never used (no probe, no token API).
			plain.AccessToken = "bench-seeded-" + id
			plain.AccessExpiresAt = b.staggeredExpiry(id, time.Now(), origin, phase[id])
		}
		sealed, err := b.stack.Sealer.SealFor(seal.Request{ID: id, Provider: "oauth2", Config: cfg, Seed: plain})
		if err != nil {
			return err
		}
		in := workflows.CredentialInput{Provider: "oauth2", Config: cfg, Policy: b.policy, Seed: &sealed}
		_, err = b.stack.Client.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: id, TaskQueue: taskQueue}, workflows.WorkflowType, in)
		return err
	})
	res.startTook = time.Since(t0)
	if res.started == 0 {
		return nil, errors.New("no credential could be started")
	}
	res.offered = offeredRate(b.ids[:res.started], b.lifetime, b.timing)

	// The window starts when every credential has committed its first refresh (store
	// version 2), so that it holds scheduled refreshes only. A staggered seed's is due
	// within one period of the origin; an unstaggered seed asks for it at once. With
	// -window-at-origin it starts at the origin instead: a staggered seed's first
	// refresh is scheduled like any other, and the window of one period holds it.
	if b.opts.atOrigin {
		if wait := time.Until(origin); wait > 0 {
			fmt.Printf("bench: the window opens at the origin, in %s\n", wait.Round(time.Second))
			select {
			case <-ctx.Done():
			case <-time.After(wait):
			}
		} else {
			fmt.Printf("bench: the starts ended %s after the origin; the window opens now\n", (-wait).Round(time.Second))
		}
	} else if err := b.awaitFirstRefreshes(ctx, res.started, latest(origin, time.Now()).Add(2*b.lifetime)); err != nil {
		return nil, err
	}

	if b.opts.warmup > 0 {
		fmt.Printf("bench: warming up for %s\n", b.opts.warmup)
		select {
		case <-ctx.Done():
		case <-time.After(b.opts.warmup):
		}
	}

	// The measurement window.
	sample := sampleIDs(b.ids[:res.started], b.opts.historySample)
	_ = b.stack.Proxy.Window() // drop the samples of the start phase
	w0, _ := harness.ReadProcStats(b.stack.Worker.Pid())
	s0 := b.serverCPU()
	if err := b.trk.poll(ctx, false); err != nil {
		return nil, err
	}
	fake := b.stack.Fake
	pres0, refr0 := fake.TotalPresentations(), fake.Refreshes()
	v0 := b.trk.versions()
	winStart := time.Now()
	if b.opts.atOrigin {
		fmt.Printf("bench: measuring for %s, the first refreshes included\n", b.window)
	} else {
		fmt.Printf("bench: every credential has committed its first refresh; measuring for %s\n", b.window)
	}

	wctx, cancel := context.WithTimeout(ctx, b.window)
	poll := time.NewTicker(pollEvery)
	prog := time.NewTicker(progressEvery)
	var presentLate []time.Duration
loop:
	for {
		select {
		case <-wctx.Done():
			break loop
		case <-poll.C:
			if err := b.trk.poll(ctx, true); err != nil {
				fmt.Println("bench: reading the token store:", err)
			}
		case <-prog.C:
			presentLate = append(presentLate, b.stack.Proxy.Window()...)
			l := harness.LatenessOf(b.trk.late)
			n, worst := b.trk.overdue(time.Now())
			ps, _ := harness.ReadProcStats(b.stack.Worker.Pid())
			el := time.Since(winStart)
			fmt.Printf("[%7s] commits %d (%.1f/s)  commit lateness p50 %s p99 %s max %s  overdue now %d (worst %s)  worker RSS %d MiB, CPU %.0fs  load %s\n",
				el.Round(time.Second), b.trk.versions()-v0, float64(b.trk.versions()-v0)/el.Seconds(),
				harness.Sec(l.P50), harness.Sec(l.P99), harness.Sec(l.Max), n, harness.Sec(worst), ps.RSS>>20, ps.CPU.Seconds(), harness.LoadAverage())
		}
	}
	cancel()
	poll.Stop()
	prog.Stop()
	res.partial = ctx.Err() != nil
	// The last poll closes the window: commits are counted from poll to poll.
	pollCtx, cancelPoll := context.WithTimeout(context.Background(), time.Minute)
	defer cancelPoll()
	if err := b.trk.poll(pollCtx, true); err != nil {
		return nil, err
	}
	res.window = time.Since(winStart)
	res.commits = b.trk.versions() - v0
	res.presentations, res.provRefreshes = fake.TotalPresentations()-pres0, fake.Refreshes()-refr0
	presentLate = append(presentLate, b.stack.Proxy.Window()...)
	res.presentLate = harness.LatenessOf(presentLate)
	res.lateness = harness.LatenessOf(b.trk.late)
	res.missed = b.trk.missed
	res.overdueEnd, res.overdueWorst = b.trk.overdue(time.Now())
	res.reuse = fake.ReuseDetections()
	res.maxProcessed = fake.MaxProcessed()
	for _, id := range b.ids[:res.started] {
		if r, ok := b.trk.last[id]; ok && r.Version > v0Of(b.trk.first, id) {
			res.refreshedAll++
		}
	}
	b.historyCycles(pollCtx, sample, winStart.Add(res.window), res)
	if ps, err := harness.ReadProcStats(b.stack.Worker.Pid()); err == nil {
		res.worker = ps
		res.workerCPU = ps.CPU - w0.CPU
	}
	if s1 := b.serverCPU(); s0 > 0 && s1 > 0 {
		res.serverCPU = s1 - s0
	}
	res.benchCPU = selfCPU()
	b.crossCheck(pollCtx, sample, res)
	fmt.Println("bench: stopping the worker (SIGTERM)")
	b.stack.Worker.Stop()
	return res, nil
}

func v0Of(first map[string]int64, id string) int64 { return first[id] }

// serverCPU is the dev server's CPU time so far, 0 when it cannot be read.
func (b *bench) serverCPU() time.Duration {
	pid, err := b.stack.ServerPid()
	if err != nil {
		return 0
	}
	ps, err := harness.ReadProcStats(pid)
	if err != nil {
		return 0
	}
	return ps.CPU
}

// selfCPU is this program's CPU time so far (user + system).
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// perCycle renders cpu spent over n cycles in milliseconds each.
func perCycle(cpu time.Duration, n int64) string {
	if cpu <= 0 || n <= 0 {
		return "n/a"
	}
	return fmt.Sprintf("%.2f ms", float64(cpu.Microseconds())/1000/float64(n))
}

func latest(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// awaitFirstRefreshes waits, until the deadline at most, for n credentials to have
// store version 2 or more.
func (b *bench) awaitFirstRefreshes(ctx context.Context, n int, deadline time.Time) error {
	t0 := time.Now()
	last := time.Now()
	for {
		if err := b.trk.poll(ctx, false); err != nil {
			return err
		}
		b.trk.mu.Lock()
		done := 0
		for _, r := range b.trk.last {
			if r.Version >= 2 {
				done++
			}
		}
		b.trk.mu.Unlock()
		if done >= n {
			fmt.Printf("bench: first refreshes committed %s after the last start\n", time.Since(t0).Round(100*time.Millisecond))
			return nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			fmt.Printf("bench: only %d/%d first refreshes committed after %s; measuring anyway\n", done, n, time.Since(t0).Round(time.Second))
			return nil
		}
		if time.Since(last) >= 5*time.Second {
			fmt.Printf("bench: first refreshes committed %d/%d\n", done, n)
			last = time.Now()
		}
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
	}
}

// ---------------------------------------------------------------------------------------
// Commit lateness from the token store.

// tracker reads the token store every pollEvery. A credential's record holds what its
// workflow's schedule is computed from: the commit time (UpdatedAt, which the workflow
// takes as LastRefreshAt) and the access token's expiry. workflows.NextWakeup over those
// gives the workflow's NextActionAt for the next refresh exactly; when the next version
// appears, its UpdatedAt minus that time is the refresh's commit lateness.
type tracker struct {
	st     *store.SQLite
	timing workflows.Timing
	// scheduledFrom is the lowest version whose successor the workflow scheduled:
	// 2, as the seed asks for its first refresh at once; 1 with -window-at-origin,
	// whose staggered seeds schedule their first refresh too.
	scheduledFrom int64

	mu     sync.Mutex
	last   map[string]store.Record
	first  map[string]int64 // version at the window's first poll
	late   []time.Duration
	missed int
}

func (t *tracker) scheduled(r store.Record) time.Time {
	_, at := workflows.NextWakeup(workflows.Status{
		ID: r.ID, State: credential.StateActive,
		LastRefreshAt: r.UpdatedAt, AccessExpiresAt: r.AccessExpiresAt, RefreshExpiresAt: r.RefreshExpiresAt,
	}, t.timing, time.Time{})
	return at
}

// poll reads every record; inWindow records lateness samples (otherwise the poll only
// sets the baseline).
func (t *tracker) poll(ctx context.Context, inWindow bool) error {
	recs, err := t.st.List(ctx)
	if err != nil {
		return err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if !inWindow {
		t.first = map[string]int64{}
	}
	for _, r := range recs {
		r.Secrets = store.Secrets{} // keep no secret longer than needed
		prev, ok := t.last[r.ID]
		if !inWindow {
			t.first[r.ID] = r.Version
		}
		// Version 1 is the seed, and version 2 the refresh an unstaggered seed asks for
		// at once: lateness starts with version scheduledFrom+1.
		if inWindow && ok && r.Version > prev.Version && prev.Version >= t.scheduledFrom {
			if r.Version == prev.Version+1 {
				t.late = append(t.late, r.UpdatedAt.Sub(t.scheduled(prev)))
			} else {
				t.missed += int(r.Version - prev.Version - 1)
				// The last of them still has its own predecessor unknown: not sampled.
				t.missed++
			}
		}
		t.last[r.ID] = r
	}
	return nil
}

func (t *tracker) versions() int64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	var n int64
	for _, r := range t.last {
		n += r.Version
	}
	return n
}

// overdue counts credentials whose next refresh, as the workflow scheduled it, is more
// than overdueThreshold past and not yet committed (as of the last poll).
func (t *tracker) overdue(now time.Time) (n int, worst time.Duration) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, r := range t.last {
		// Version 1 (the seed) counts too: a credential whose first refresh never came
		// is the most overdue of all.
		if d := now.Sub(t.scheduled(r)); d > overdueThreshold+pollEvery {
			// pollEvery: the commit may have landed since the last poll.
			n++
			worst = max(worst, d-pollEvery)
		}
	}
	return n, worst
}

// setLifetime sets the access tokens' lifetime and the policy that goes with it: a
// refresh_margin of a third of it (the workflow's floor, so the margin is exact).
func (b *bench) setLifetime(d time.Duration) {
	dur := func(d time.Duration) *workflows.Duration { v := workflows.Duration(d); return &v }
	b.lifetime = d
	b.policy = workflows.Policy{
		RefreshMargin: dur(d / 3),
		Jitter:        dur(b.opts.jitter),
		RetryInitial:  dur(time.Second),
		RetryMax:      dur(10 * time.Second),
	}
	b.timing = b.policy.Resolve(false)
}

// lifetimeFor is the access token lifetime, in whole seconds (expires_in is in
// seconds), at which the credentials ask for about rate refreshes a second.
func lifetimeFor(ids []string, rate float64, jitter time.Duration) time.Duration {
	asked := func(lifetime time.Duration) float64 {
		b := &bench{opts: options{jitter: jitter}}
		b.setLifetime(lifetime)
		return offeredRate(ids, lifetime, b.timing)
	}
	// offeredRate falls as the lifetime grows: bisect between 6 s and a week.
	lo, hi := 6*time.Second, 7*24*time.Hour
	for hi-lo > time.Second {
		mid := (lo + hi) / 2
		if asked(mid) > rate {
			lo = mid
		} else {
			hi = mid
		}
	}
	return hi.Round(time.Second)
}

// goldenPhase is the i-th point of the golden-ratio sequence in [0, 1): every prefix of
// it is spread evenly, so credentials started in ID order are evenly phased too.
func goldenPhase(i int) float64 {
	const phi = 0.6180339887498949
	_, f := math.Modf(float64(i) * phi)
	return f
}

// staggeredExpiry is the expiry of the access token a credential seeded at seededAt
// carries, such that its workflow wakes for its first refresh at origin plus phase of one
// refresh period. The workflow takes the token's lifetime to be expiry minus the seed
// time, and its renewal lead is the larger of the margin (a third of the real lifetime)
// and a third of that, capped at half of it; inverting that gives the expiry.
func (b *bench) staggeredExpiry(id string, seededAt, origin time.Time, phase float64) time.Time {
	margin := b.timing.RefreshMargin.D()
	jitter := time.Duration(workflows.JitterFraction(id) * float64(min(b.timing.Jitter.D(), b.lifetime/10)))
	period := b.lifetime - max(margin, b.lifetime/3) - jitter
	wake := max(origin.Sub(seededAt)+time.Duration(phase*float64(period)), 0)
	lifetime := wake + margin + jitter // lead = margin, while lifetime/3 <= margin <= lifetime/2
	switch {
	case lifetime > 3*margin:
		lifetime = 3 * (wake + jitter) / 2 // lead = a third of the lifetime
	case lifetime < 2*margin:
		lifetime = 2 * (wake + jitter) // lead = half the lifetime
	}
	return seededAt.Add(lifetime)
}

// offeredRate is the refresh rate the credentials ask for in steady state: each one
// refreshes every lifetime minus its renewal lead (margin or a third, and its jitter).
func offeredRate(ids []string, lifetime time.Duration, t workflows.Timing) float64 {
	var r float64
	lead := min(max(t.RefreshMargin.D(), lifetime/3), lifetime/2)
	jitter := min(t.Jitter.D(), lifetime/10)
	for _, id := range ids {
		period := lifetime - lead - time.Duration(workflows.JitterFraction(id)*float64(jitter))
		r += 1 / period.Seconds()
	}
	return r
}

// ---------------------------------------------------------------------------------------
// History length and cross-checks.

func sampleIDs(ids []string, n int) []string {
	var out []string
	for i := 0; i < n; i++ {
		out = append(out, ids[i*len(ids)/n])
	}
	return out
}

func upsertNote(upsert bool) string {
	if upsert {
		return " + search-attribute upsert"
	}
	return ""
}

// refreshActivity is the activity type of a refresh: the method name the worker
// registers (activities.Activities.Refresh).
const refreshActivity = "Refresh"

// historyCycles measures history events per refresh cycle exactly, on the sampled
// workflows' current runs: it walks each history and takes the refresh activities
// scheduled until the window closed; from the first to the last of them lie (count - 1)
// whole cycles and (last event ID - first event ID) events. Cycle boundaries, not the
// window's edges, delimit the count, so a cycle cut by an edge does not skew it; cycles
// before the window count too, since with long lifetimes a window holds about one
// refresh per credential. A run with fewer than two refreshes is skipped.
func (b *bench) historyCycles(ctx context.Context, ids []string, to time.Time, res *result) {
	for _, id := range ids {
		var first, last int64
		n := 0
		hctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		it := b.stack.Client.GetWorkflowHistory(hctx, id, "", false, enums.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
		var err error
		for it.HasNext() {
			var ev *historypb.HistoryEvent
			if ev, err = it.Next(); err != nil {
				break
			}
			at := ev.GetEventTime().AsTime()
			attrs := ev.GetActivityTaskScheduledEventAttributes()
			if attrs == nil || attrs.GetActivityType().GetName() != refreshActivity || at.After(to) {
				continue
			}
			if n == 0 {
				first = ev.GetEventId()
			}
			last = ev.GetEventId()
			n++
		}
		cancel()
		switch {
		case err != nil:
			fmt.Printf("bench: history of %s: %v\n", id, err)
		case n < 2:
			res.histRuns++
		default:
			res.histUsed++
			res.histEvents += last - first
			res.histCycles += int64(n - 1)
		}
	}
}

// crossCheck compares the scheduled times the lateness is computed from with the
// workflows' own NextActionAt (status query, sampled workflows) and with the proxy's due
// times (every credential whose record and proxy agree on the latest refresh), and
// counts the credentials' states.
func (b *bench) crossCheck(ctx context.Context, sample []string, res *result) {
	res.states = map[string]int{}
	b.trk.mu.Lock()
	last := b.trk.last
	b.trk.mu.Unlock()
	for _, id := range sample {
		qctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		v, err := b.stack.Client.QueryWorkflow(qctx, id, "", workflows.QueryStatus)
		var st workflows.Status
		if err == nil {
			err = v.Get(&st)
		}
		cancel()
		if err != nil {
			res.states["status unknown"]++
			continue
		}
		res.states[string(st.State)]++
		r, ok := last[id]
		if ok && st.Version == r.Version && st.NextAction == workflows.ActionRefresh {
			res.statusChecked++
			res.statusMaxDiff = max(res.statusMaxDiff, absDur(st.NextActionAt.Sub(b.trk.scheduled(r))))
		}
	}
	for id, r := range last {
		due, ok := b.stack.Proxy.Due(id)
		if !ok || r.Version < 2 {
			continue
		}
		d := absDur(due.Sub(b.trk.scheduled(r)))
		if d > b.lifetime/4 {
			continue // the proxy has seen a newer answer than the last poll
		}
		res.proxyChecked++
		res.proxyMaxDiff = max(res.proxyMaxDiff, d)
	}
}

func sec3(d time.Duration) string { return fmt.Sprintf("%.3fs", d.Seconds()) }

func absDur(d time.Duration) time.Duration {
	if d < 0 {
		return -d
	}
	return d
}

// ---------------------------------------------------------------------------------------
// Starting many workflows.

// startAll calls start for every id with at most parallel calls at once, printing
// progress every 5 s; it returns how many succeeded and failed. The first failures are
// printed. It stops starting when ctx ends.
// startAll calls start for every ID, parallel at a time and, when rate > 0, at most
// rate a second.
func startAll(ctx context.Context, what string, ids []string, parallel int, rate float64, start func(context.Context, string) error) (ok, failed int) {
	var done, bad atomic.Int64
	t0 := time.Now()
	stop := make(chan struct{})
	go func() {
		t := time.NewTicker(5 * time.Second)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				n := done.Load()
				fmt.Printf("bench: started %d/%d %s (%.0f/s)  load %s\n", n, len(ids), what, float64(n)/time.Since(t0).Seconds(), harness.LoadAverage())
			}
		}
	}()
	work := make(chan string)
	var wg sync.WaitGroup
	for range parallel {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for id := range work {
				var err error
				for attempt := 0; attempt < 3; attempt++ {
					sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
					err = start(sctx, id)
					cancel()
					if err == nil || ctx.Err() != nil {
						break
					}
					time.Sleep(time.Second)
				}
				if err != nil {
					if bad.Add(1) <= 3 {
						fmt.Printf("bench: start %s: %v\n", id, err)
					}
					continue
				}
				done.Add(1)
			}
		}()
	}
	var pace <-chan time.Time
	if rate > 0 {
		t := time.NewTicker(time.Duration(float64(time.Second) / rate))
		defer t.Stop()
		pace = t.C
	}
feed:
	for _, id := range ids {
		if pace != nil {
			select {
			case <-pace:
			case <-ctx.Done():
				break feed
			}
		}
		select {
		case work <- id:
		case <-ctx.Done():
			break feed
		}
	}
	close(work)
	wg.Wait()
	close(stop)
	fmt.Printf("bench: started %d/%d %s in %s (%d failed)\n", done.Load(), len(ids), what, time.Since(t0).Round(100*time.Millisecond), bad.Load())
	return int(done.Load()), int(bad.Load())
}

// ---------------------------------------------------------------------------------------
// The engine ceiling.

type ceilingResult struct {
	workflows int
	cycles    int64
	window    time.Duration
	rate      float64
	demand    float64 // the most the workflows could ask for: N / timer
	// serverCPU and benchCPU are the dev server's and this program's CPU time in the
	// window (this program hosts the bare workflows' SDK worker); 0 when unknown.
	serverCPU, benchCPU time.Duration
}

// ceilingInput tells a ceiling workflow how long to loop.
type ceilingInput struct {
	Until  time.Time     `json:"until"`
	Timer  time.Duration `json:"timer"`
	Upsert bool          `json:"upsert,omitempty"`
}

// benchCeilingWorkflow is the engine's bare cycle: one no-op activity, one short timer,
// until its deadline.
func benchCeilingWorkflow(ctx workflow.Context, in ceilingInput) (int, error) {
	actx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{StartToCloseTimeout: 30 * time.Second})
	n := 0
	for workflow.Now(ctx).Before(in.Until) {
		if err := workflow.ExecuteActivity(actx, ceilingActivity).Get(ctx, nil); err != nil {
			return n, err
		}
		if in.Upsert {
			// What a credential's cycle adds: TokenExpiresAt moves with every refresh.
			if err := workflow.UpsertTypedSearchAttributes(ctx, workflows.SearchExpiresAt.ValueSet(workflow.Now(ctx))); err != nil {
				return n, err
			}
		}
		if err := workflow.Sleep(ctx, in.Timer); err != nil {
			return n, err
		}
		n++
	}
	return n, nil
}

// runCeiling runs the bare workflows on their own task queue, hosted by an SDK worker in
// this process (the same client, so the same payload encryption as the worker's), before
// any credential is started; it counts activity executions in the window.
func (b *bench) runCeiling(ctx context.Context) (ceilingResult, error) {
	var cycles atomic.Int64
	// The worker's poller behaviour (worker/main.go), so that the two compare.
	w := worker.New(b.stack.Client, ceilingQueue, worker.Options{
		WorkflowTaskPollerBehavior: worker.NewPollerBehaviorAutoscaling(worker.PollerBehaviorAutoscalingOptions{}),
		ActivityTaskPollerBehavior: worker.NewPollerBehaviorAutoscaling(worker.PollerBehaviorAutoscalingOptions{}),
	})
	w.RegisterWorkflowWithOptions(benchCeilingWorkflow, workflow.RegisterOptions{Name: ceilingWorkflow})
	w.RegisterActivityWithOptions(func(context.Context) error { cycles.Add(1); return nil }, activity.RegisterOptions{Name: ceilingActivity})
	if err := w.Start(); err != nil {
		return ceilingResult{}, err
	}
	stopWorker := sync.OnceFunc(w.Stop)
	defer stopWorker()
	ids := make([]string, b.opts.ceilingN)
	for i := range ids {
		ids[i] = fmt.Sprintf("ceiling-%05d", i+1)
	}
	// The workflows are terminated once measured (below); the deadline only bounds them
	// if this program dies first. It must outlast the starts, which slow down as the
	// workflows already started saturate the engine: 2000 starts have taken minutes.
	until := time.Now().Add(time.Hour + b.opts.ceilingWarmup + b.opts.ceilingWindow)
	fmt.Printf("bench: engine ceiling: starting %d bare workflows (activity + %s timer) on task queue %s\n", len(ids), b.opts.ceilingTimer, ceilingQueue)
	started, _ := startAll(ctx, "ceiling workflows", ids, b.opts.parallel, 0, func(ctx context.Context, id string) error {
		_, err := b.stack.Client.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: id, TaskQueue: ceilingQueue},
			ceilingWorkflow, ceilingInput{Until: until, Timer: b.opts.ceilingTimer, Upsert: b.opts.ceilingUpsert})
		return err
	})
	if started == 0 {
		return ceilingResult{}, errors.New("no ceiling workflow started")
	}
	select {
	case <-time.After(b.opts.ceilingWarmup):
	case <-ctx.Done():
	}
	c0, t0 := cycles.Load(), time.Now()
	s0, p0 := b.serverCPU(), selfCPU()
	select {
	case <-time.After(b.opts.ceilingWindow):
	case <-ctx.Done():
	}
	res := ceilingResult{workflows: started, cycles: cycles.Load() - c0, window: time.Since(t0)}
	if s1 := b.serverCPU(); s0 > 0 && s1 > 0 {
		res.serverCPU = s1 - s0
	}
	res.benchCPU = selfCPU() - p0
	res.rate = float64(res.cycles) / res.window.Seconds()
	res.demand = float64(started) / b.opts.ceilingTimer.Seconds()
	fmt.Printf("bench: engine ceiling: %.1f cycles/s over %s; terminating the bare workflows\n", res.rate, res.window.Round(time.Second))
	// Terminate them so they add nothing to the credentials' measurement. Stop their
	// worker first: terminations of workflows still cycling contend with the cycles
	// and run at a few a second.
	stopWorker()
	_, _ = startAll(context.Background(), "ceiling terminations", ids[:started], b.opts.parallel, 0, func(ctx context.Context, id string) error {
		err := b.stack.Client.TerminateWorkflow(ctx, id, "", "bench: ceiling measured")
		if err != nil && strings.Contains(err.Error(), "already completed") {
			return nil
		}
		return err
	})
	return res, nil
}

// ---------------------------------------------------------------------------------------
// The table.

func verdict(pass bool, target string) string {
	if pass {
		return "PASS (target " + target + ")"
	}
	return "MISS (target " + target + ")"
}

func (res *result) print(b *bench) {
	title := fmt.Sprintf("\nbench summary: %d credentials, access tokens live %s, window %s", res.started, b.lifetime, res.window.Round(time.Second))
	if res.partial {
		title += " (PARTIAL: interrupted)"
	}
	fmt.Println(title)
	t := harness.NewTable(os.Stdout)
	rate := float64(res.commits) / res.window.Seconds()
	t.Row("credentials", res.started,
		verdict(res.started >= targetCredentials && res.refreshedAll == res.started && res.overdueEnd == 0, fmt.Sprintf("%d held", targetCredentials))+
			fmt.Sprintf("; %d refreshed in the window, %d overdue at the end (> %s past NextActionAt, uncommitted); started in %s, %d start failures",
				res.refreshedAll, res.overdueEnd, overdueThreshold, res.startTook.Round(time.Second), res.startErrors))
	t.Row("refreshes per second", fmt.Sprintf("%.2f", rate),
		fmt.Sprintf("%d commits (store versions added) in the window; the credentials ask for %.2f/s", res.commits, res.offered))
	l := res.lateness
	t.Row("commit lateness", fmt.Sprintf("p50 %s p99 %s max %s", sec3(l.P50), sec3(l.P99), sec3(l.Max)),
		verdict(l.Samples > 0 && l.P99 <= targetP99, "p99 <= 2s")+
			fmt.Sprintf("; %d refreshes: store commit time (UpdatedAt) - the workflow's NextActionAt (NextWakeup over the previous record); %d commits not sampled", l.Samples, res.missed))
	p := res.presentLate
	t.Row("  start lateness", fmt.Sprintf("p50 %s p99 %s max %s", sec3(p.P50), sec3(p.P99), sec3(p.Max)),
		fmt.Sprintf("%d refreshes: first presentation at the provider - the proxy's due time (soak's measure)", p.Samples))
	if res.overdueEnd > 0 {
		t.Row("  worst overdue at the end", harness.Sec(res.overdueWorst), "")
	}
	ppr := 0.0
	if res.provRefreshes > 0 {
		ppr = float64(res.presentations) / float64(res.provRefreshes)
	}
	t.Row("provider presentations per refresh", fmt.Sprintf("%.3f", ppr),
		fmt.Sprintf("%d presentations / %d refreshes granted by the provider, in the window; most processed per token %d", res.presentations, res.provRefreshes, res.maxProcessed))
	t.Row("reuse detections", res.reuse, verdict(res.reuse == 0, "0")+"; whole run")
	epc := 0.0
	if res.histCycles > 0 {
		epc = float64(res.histEvents) / float64(res.histCycles)
	}
	t.Row("history events per refresh cycle", fmt.Sprintf("%.1f", epc),
		verdict(res.histCycles > 0 && epc <= targetEvents, "<= 11")+
			fmt.Sprintf("; %d sampled workflows: events from the first to the last refresh scheduled in the run / the cycles between them (%d events, %d cycles; %d skipped: fewer than two refreshes in the run)", res.histUsed, res.histEvents, res.histCycles, res.histRuns))
	t.Row("worker peak RSS", fmt.Sprintf("%.1f MiB", float64(res.worker.PeakRSS)/(1<<20)),
		verdict(res.worker.PeakRSS > 0 && res.worker.PeakRSS <= targetRSS, fmt.Sprintf("<= %d MiB", targetRSS>>20))+fmt.Sprintf("; VmHWM of the worker process (RSS at the end %.1f MiB)", float64(res.worker.RSS)/(1<<20)))
	cpr := 0.0
	if res.commits > 0 {
		cpr = res.workerCPU.Seconds() / float64(res.commits) * 1000
	}
	t.Row("worker CPU", fmt.Sprintf("%.1fs", res.worker.CPU.Seconds()),
		fmt.Sprintf("utime+stime, whole run; %.1fs in the window = %.0f%% of one core, %.1f ms per refresh", res.workerCPU.Seconds(), 100*res.workerCPU.Seconds()/res.window.Seconds(), cpr))
	t.Row("bench process CPU", fmt.Sprintf("%.1fs", res.benchCPU.Seconds()), "this program: fake provider, proxy, store polls, the ceiling's SDK worker (the dev server is not counted)")
	t.Row("dev server CPU per refresh", perCycle(res.serverCPU, res.commits),
		fmt.Sprintf("the engine's cost of a credential cycle: %.1fs of the dev server's CPU in the window / %d refreshes", res.serverCPU.Seconds(), res.commits))
	c := res.ceiling
	if b.opts.skipCeiling {
		t.Row("engine ceiling", "not measured", "-skip-ceiling")
	} else {
		var sat string
		if c.rate < 0.9*c.demand {
			sat = "saturated: below the most its workflows could ask for"
		} else {
			sat = "NOT saturated: the workflows asked for no more; the ceiling is higher"
		}
		t.Row("engine ceiling", fmt.Sprintf("%.2f cycles/s", c.rate),
			fmt.Sprintf("%d bare workflows (no-op activity + %s timer%s), %d cycles in %s, before the credentials started; %s (at most %.0f/s)", c.workflows, b.opts.ceilingTimer, upsertNote(b.opts.ceilingUpsert), c.cycles, c.window.Round(time.Second), sat, c.demand))
		ratio := 0.0
		if c.rate > 0 {
			ratio = rate / c.rate
		}
		v := verdict(ratio >= targetCeiling, ">= 80%")
		if ratio < targetCeiling && res.offered < targetCeiling*c.rate {
			// tokenwarden cannot refresh faster than its credentials ask: the ratio says
			// nothing about its own ceiling then (lateness and overdue say whether it kept up).
			v = "n/a (target >= 80%): the credentials ask for only " + fmt.Sprintf("%.2f/s (%.0f%% of the ceiling); more credentials or shorter lifetimes are needed to test it", res.offered, 100*res.offered/c.rate)
		}
		t.Row("refreshes / ceiling", fmt.Sprintf("%.1f%%", 100*ratio), v)
		t.Row("  dev server CPU per bare cycle", perCycle(c.serverCPU, c.cycles),
			fmt.Sprintf("%.1fs in the ceiling's window; this program (its SDK worker) %s per bare cycle", c.serverCPU.Seconds(), perCycle(c.benchCPU, c.cycles)))
	}
	var states []string
	for k, v := range res.states {
		states = append(states, fmt.Sprintf("%s %d", k, v))
	}
	slices.Sort(states)
	t.Row("sampled states at the end", strings.Join(states, ", "), fmt.Sprintf("status query of the %d sampled workflows", b.opts.historySample))
	t.Row("check: NextActionAt", sec3(res.statusMaxDiff),
		fmt.Sprintf("largest |workflow's NextActionAt - the bench's scheduled time| over %d sampled workflows", res.statusChecked))
	t.Row("check: proxy due", sec3(res.proxyMaxDiff),
		fmt.Sprintf("largest |proxy's due time - the bench's scheduled time| over %d credentials", res.proxyChecked))
	t.Row("load average", harness.LoadAverage(), "one minute, at the end")
	_ = t.Flush()
}
