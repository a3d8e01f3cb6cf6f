// Command worker is the tokenwarden worker: one process hosting the Temporal worker
// that runs every credential workflow and its activities, with the token store attached.
//
// Configuration comes from TOKENWARDEN_* environment variables (run with -help to list
// them). The worker refuses to start without a key file, or with one that other users
// can read: the key protects every token at rest.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"sync/atomic"
	"syscall"
	"time"

	"go.temporal.io/sdk/client"
	sdklog "go.temporal.io/sdk/log"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/tokenwarden/tokenwarden/activities"
	"github.com/tokenwarden/tokenwarden/internal/codec"
	"github.com/tokenwarden/tokenwarden/internal/config"
	"github.com/tokenwarden/tokenwarden/internal/keyring"
	"github.com/tokenwarden/tokenwarden/internal/notify"
	"github.com/tokenwarden/tokenwarden/internal/outbox"
	"github.com/tokenwarden/tokenwarden/internal/provider/catalog"
	"github.com/tokenwarden/tokenwarden/internal/seal"
	"github.com/tokenwarden/tokenwarden/internal/store"
	"github.com/tokenwarden/tokenwarden/internal/tokenapi"
	"github.com/tokenwarden/tokenwarden/internal/tracing"
	"github.com/tokenwarden/tokenwarden/workflows"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	flags := flag.NewFlagSet("worker", flag.ContinueOnError)
	flags.SetOutput(stderr)
	initDevKey := flags.Bool("init-dev-key", false, "create a development key file if none exists (make run does this)")
	var keyCmd keyCommands
	flags.BoolVar(&keyCmd.newKey, "new-key", false, "add a freshly generated key to the key file as its primary key, keeping the others, and exit")
	flags.BoolVar(&keyCmd.rotateKeys, "rotate-keys", false, "re-seal every token store record under the key file's primary key and exit (resumable; safe while workers run)")
	flags.StringVar(&keyCmd.removeKey, "remove-key", "", "remove the key `ID` from the key file and exit; refused while token store rows or running workflows' current runs use it")
	flags.Usage = func() {
		fmt.Fprintln(stderr, "usage: worker [-init-dev-key]\n       worker -new-key | -rotate-keys | -remove-key ID\n\nRuns the tokenwarden worker, or one key maintenance command (the token API's keys are\nstarter apikey create, revoke and list). Settings come from the environment:")
		flags.PrintDefaults()
		fmt.Fprintln(stderr)
		_ = config.Usage(stderr, &config.Worker{})
	}
	if err := flags.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}

	cfg, err := config.LoadWorker()
	if err != nil {
		fmt.Fprintf(stderr, "worker: %v\n", err)
		return 2
	}
	if n := keyCmd.count(); n > 1 || (n == 1 && *initDevKey) {
		fmt.Fprintln(stderr, "worker: -new-key, -rotate-keys, -remove-key and -init-dev-key exclude each other")
		return 2
	} else if n == 1 {
		return runKeyCommand(keyCmd, cfg, stdout, stderr)
	}
	if cfg.ProviderTimeout >= activities.StartToCloseTimeout {
		fmt.Fprintf(stderr, "worker: %s_PROVIDER_TIMEOUT (%s) must be shorter than the refresh activity's start-to-close timeout (%s)\n",
			config.Prefix, cfg.ProviderTimeout, activities.StartToCloseTimeout)
		return 2
	}
	logger := newLogger(cfg, stderr)
	// Built before anything touches the disk; the message names targets, never URLs.
	notifier, err := notify.FromConfig(cfg, logger)
	if err != nil {
		fmt.Fprintf(stderr, "worker: %v\n", err)
		return 2
	}

	if *initDevKey {
		if _, err := os.Stat(cfg.KeyFile); errors.Is(err, os.ErrNotExist) {
			id, err := keyring.GenerateFile(cfg.KeyFile)
			if err != nil {
				fmt.Fprintf(stderr, "worker: create development key: %v\n", err)
				return 1
			}
			fmt.Fprintf(stdout, "created development key %s in %s (mode 0600); keep it: tokens stored under it are unreadable without it\n", id, cfg.KeyFile)
		}
	}
	ring, err := keyring.LoadFile(cfg.KeyFile)
	if err != nil {
		fmt.Fprintf(stderr, "worker: refusing to start: %v\n", err)
		return 2
	}

	// Seeds are sealed under keys derived for them alone (internal/seal): the codec
	// endpoint, which holds the payload keys, can never open one.
	sealer, err := seal.NewSealer(ring, nil)
	if err != nil {
		fmt.Fprintf(stderr, "worker: refusing to start: %v\n", err)
		return 2
	}
	if cfg.AllowPlaintextSeeds {
		logger.Warn("TOKENWARDEN_ALLOW_PLAINTEXT_SEEDS is on: seeds sent in plaintext are accepted and readable in workflow history; for local development only")
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	// Only the faultinject build can skew the clock (activities/faults_on.go); clock is
	// nil, the real one, otherwise.
	clock, skew, err := activities.FaultClock()
	if err != nil {
		fmt.Fprintf(stderr, "worker: %v\n", err)
		return 2
	}
	if clock != nil {
		logger.Warn("fault injection: this worker's clock is skewed", "skew", skew)
	}
	tokens, storeDesc, err := store.OpenClock(ctx, cfg.Store, cfg.SqlitePath, cfg.PostgresDSN, ring, clock)
	if err != nil {
		fmt.Fprintf(stderr, "worker: open token store %s: %v\n", storeDesc, err)
		return 1
	}
	defer tokens.Close()
	// Before anything reads a row: the wrong key file is reported now, not as one failed
	// read per credential (worker/keysafety.go).
	if err := checkStoreKeys(ctx, tokens, ring, cfg.KeyFile, storeDesc); err != nil {
		fmt.Fprintf(stderr, "worker: refusing to start: %v\n", err)
		return 2
	}
	// Token sets the store did not take in time wait here for the next attempt
	// (internal/outbox); it is this host's, whichever store the worker uses.
	pending, err := outbox.Open(filepath.Join(cfg.DataDir, "outbox"), ring)
	if err != nil {
		fmt.Fprintf(stderr, "worker: %v\n", err)
		return 1
	}
	if n, err := pending.Len(); err != nil {
		fmt.Fprintf(stderr, "worker: %v\n", err)
		return 1
	} else if n > 0 {
		logger.Warn("the outbox holds token sets the store did not take; each credential's next refresh commits its own first", "entries", n)
	}

	// Every payload this worker writes (activity inputs and results, query and update
	// results, continue-as-new input, failure details) is encrypted; payloads it reads
	// are decrypted.
	dc := codec.DataConverter(ring)
	wm := newWorkerMetrics() // served on /metrics (worker/metrics.go)
	// Traces, off unless the OTEL_* environment names an OTLP endpoint (internal/tracing):
	// Temporal's spans through the SDK's interceptor, and the provider HTTP calls.
	tr, err := tracing.New(ctx, os.LookupEnv, "tokenwarden-worker", buildVersion())
	if err != nil {
		fmt.Fprintf(stderr, "worker: tracing: %v\n", err)
		return 2
	}
	defer func() {
		// Flush what is buffered, within a bound: a collector that is gone must not hold
		// the shutdown.
		fctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := tr.Shutdown(fctx); err != nil {
			logger.Warn("tracing: shutdown", "error", err)
		}
	}()
	interceptors, err := tr.Interceptors()
	if err != nil {
		fmt.Fprintf(stderr, "worker: tracing: %v\n", err)
		return 2
	}

	// The connection as the temporal CLI would make it (profile, TEMPORAL_*, then the
	// TOKENWARDEN_TEMPORAL_* overrides): the same function as the starter's.
	opts, err := cfg.ClientOptions(nil)
	if err != nil {
		fmt.Fprintf(stderr, "worker: %v\n", err)
		return 2
	}
	conn := config.DescribeConnection(opts)
	opts.Logger = sdklog.NewStructuredLogger(logger)
	opts.DataConverter = dc
	opts.FailureConverter = codec.FailureConverter(dc)
	opts.MetricsHandler = wm.sdk
	opts.Interceptors = append(opts.Interceptors, interceptors...)
	c, err := client.DialContext(ctx, opts)
	if err != nil {
		fmt.Fprintf(stderr, "worker: cannot reach the Temporal server at %s: %v\n", conn, err)
		return 1
	}
	defer c.Close()

	// The codec endpoint, after the dial: a worker that cannot reach Temporal says so
	// rather than report a port conflict.
	codecSrv, err := startCodecServer(cfg, ring, logger)
	if err != nil {
		fmt.Fprintf(stderr, "worker: %v\n", err)
		return 1
	}
	// The token API judges expiry by the real clock; only the store and the activities
	// run on the fault-injection one.
	codecSrv.route(tokenapi.Pattern, tokenapi.NewHandler(tokens,
		tokenapi.RateLimit{Rate: cfg.TokenAPIRate, Burst: cfg.TokenAPIBurst}, logger, time.Now))
	// POST /seal: sealing for starters that cannot read the key file, with its own
	// bearer token.
	codecSrv.route(seal.Path, seal.Handler(sealer, cfg.SealBearerToken))
	mountHealth(codecSrv, readiness{ // GET /livez, GET /readyz (worker/health.go)
		temporal:  describeNamespace(c.WorkflowService(), opts.Namespace),
		namespace: opts.Namespace,
		store:     tokens,
		keyIDs:    ring.IDs(),
		logger:    logger,
	})
	stopMetrics := wm.serve(ctx, codecSrv, tokens, c, logger)
	defer stopMetrics()
	// A codec endpoint that dies takes the worker down with it: the Web UI and the
	// starters that rely on it would otherwise fail in puzzling ways.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var serveFailed atomic.Bool
	if codecSrv != nil {
		go func() {
			if err := codecSrv.serve(); err != nil {
				serveFailed.Store(true)
				logger.Error("codec endpoint stopped; stopping the worker", "addr", codecSrv.addr, "error", err)
				cancel()
			}
		}()
	}

	// The SDK's cache is per process; set before the worker exists (see config.Worker).
	worker.SetStickyWorkflowCacheSize(cfg.WorkflowCacheSize)
	w := worker.New(c, cfg.TaskQueue, worker.Options{
		// On SIGTERM, let a running refresh finish: the provider may already have rotated
		// the token, and cancelling the call would drop the answer (the SDK's default of 0
		// cancels running activities at once).
		WorkerStopTimeout: activities.StartToCloseTimeout,
		// Autoscaling pollers: separate, growing sets for the sticky queue (cached
		// workflows) and the normal one (new workflows, and those evicted from the cache,
		// which most are in a large fleet). With the SDK's default, two workflow pollers
		// shared between both queues, the benchmark's normal queue drained at about ten
		// tasks a second and a few thousand starts waited there for minutes.
		WorkflowTaskPollerBehavior: worker.NewPollerBehaviorAutoscaling(worker.PollerBehaviorAutoscalingOptions{}),
		ActivityTaskPollerBehavior: worker.NewPollerBehaviorAutoscaling(worker.PollerBehaviorAutoscalingOptions{}),
	})
	w.RegisterWorkflowWithOptions(workflows.CredentialWorkflow, workflow.RegisterOptions{Name: workflows.WorkflowType})
	acts := &activities.Activities{
		Store:             tokens,
		Providers:         catalog.Registry(&http.Client{Transport: tr.Transport(nil)}, nil),
		Logger:            logger,
		Now:               clock,
		ProviderTimeout:   cfg.ProviderTimeout,
		LeaseDuration:     cfg.LeaseDuration,
		Outbox:            pending,
		OutboxQueue:       pending.TaskQueue(cfg.TaskQueue),
		MinAccessLifetime: cfg.MinAccessLifetime,
		Parents:           parentSignaller{client: c},
		Metrics:           wm.activity,
		Seeds:             sealer,
		// Plaintext seeds are refused unless a developer allows them (activities/seed.go).
		AllowPlaintextSeeds: cfg.AllowPlaintextSeeds,
	}
	if notifier != nil { // a nil *Webhook in the interface would not read as "none"
		acts.Notifier = notifier
	}
	// Webhook sinks post access tokens to the same named targets, signed with the same
	// secrets (checked by notify.FromConfig).
	if targets, _ := cfg.NotifyTargetList(); len(targets) > 0 {
		var st []activities.SinkTarget
		for _, t := range targets {
			st = append(st, activities.SinkTarget(t))
		}
		acts.SinkWebhooks = activities.NewWebhookSinks(st, cfg.NotifyBearerToken, cfg.NotifyTimeout, nil)
	}
	// Env sinks write only where the operator allows, never beside the key file or
	// the store (activities/sinkpath.go); Check has accepted both lists.
	if acts.EnvSinkDirs, err = cfg.SinkDirList(); err == nil {
		acts.EnvSinkProtected, err = cfg.ProtectedDirs()
	}
	if err != nil {
		codecSrv.shutdown(logger)
		fmt.Fprintf(stderr, "worker: env sinks: %v\n", err)
		return 1
	}
	w.RegisterActivity(acts)
	// Refreshes whose token set may wait in this worker's outbox come on a queue of its
	// own, which no other worker polls (internal/outbox).
	ow := worker.New(c, acts.OutboxQueue, worker.Options{
		WorkerStopTimeout:     activities.StartToCloseTimeout,
		DisableWorkflowWorker: true,
	})
	ow.RegisterActivity(acts)
	if err := w.Start(); err != nil {
		codecSrv.shutdown(logger)
		fmt.Fprintf(stderr, "worker: start: %v\n", err)
		return 1
	}
	if err := ow.Start(); err != nil {
		w.Stop()
		codecSrv.shutdown(logger)
		fmt.Fprintf(stderr, "worker: start the outbox queue's worker: %v\n", err)
		return 1
	}
	logger.Info("worker started", "temporal", conn, "task_queue", cfg.TaskQueue, "outbox_queue", acts.OutboxQueue, "tracing", tr != nil,
		"store", storeDesc, "key_id", ring.PrimaryID(), "notify", notifyTargets(notifier), "codec_endpoint", codecSrv.url(), "sink_dirs", acts.EnvSinkDirs)
	<-ctx.Done()
	logger.Info("shutting down: finishing running activities")
	ow.Stop()
	w.Stop()
	// After the worker: a starter waiting for an update's answer still decodes it.
	codecSrv.shutdown(logger)
	logger.Info("worker stopped")
	if serveFailed.Load() {
		return 1
	}
	return 0
}

func newLogger(cfg config.Worker, w io.Writer) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(cfg.LogLevel))
	opts := &slog.HandlerOptions{Level: level}
	if cfg.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// notifyTargets describes the notification targets for the start-up log, without URLs.
func notifyTargets(n activities.Notifier) string {
	if n == nil {
		return "log only"
	}
	return fmt.Sprint(n)
}

// parentSignaller asks a parent credential's workflow to refresh, for a child whose
// token could not be minted with the parent's current one.
type parentSignaller struct {
	client client.Client
}

func (p parentSignaller) RefreshNow(ctx context.Context, credentialID string) error {
	return p.client.SignalWorkflow(ctx, credentialID, "", workflows.SignalRefreshNow, nil)
}

// buildVersion is the main module's version as the Go toolchain recorded it ("(devel)"
// for a build from a work tree), for the trace resource.
func buildVersion() string {
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
		return bi.Main.Version
	}
	return "unknown"
}
