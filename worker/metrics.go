package main

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"go.temporal.io/api/workflowservice/v1"

	"github.com/tokenwarden/tokenwarden/internal/credential"
	"github.com/tokenwarden/tokenwarden/internal/metrics"
	"github.com/tokenwarden/tokenwarden/internal/store"
	"github.com/tokenwarden/tokenwarden/workflows"
)

// MetricsPath is where the worker's HTTP endpoint serves Prometheus metrics.
const MetricsPath = "/metrics"

// collectInterval is how often the credential gauges are recomputed from the token
// store and Temporal's visibility.
const collectInterval = 15 * time.Second

// publishedStates are the TokenState values a running credential workflow publishes
// (REFRESHING is not published; RETIRED workflows have completed). Each gets a
// tokenwarden_credentials series, zero included.
var publishedStates = []credential.State{
	credential.StateSeeding, credential.StateActive, credential.StateDegraded,
	credential.StateExpired, credential.StateNeedsReauth,
}

// workerMetrics is the worker's registry: tokenwarden's own metrics, the Temporal
// SDK's (through sdk, client.Options.MetricsHandler) and the credential gauges.
type workerMetrics struct {
	registry    *metrics.Registry
	sdk         *metrics.SDKHandler
	activity    *metrics.Activity
	credentials *metrics.CredentialStates
	failing     map[string]bool // by source; the collector's goroutine only
}

func newWorkerMetrics() *workerMetrics {
	r := metrics.NewRegistry()
	return &workerMetrics{
		registry:    r,
		sdk:         metrics.NewSDKHandler(r),
		activity:    metrics.NewActivity(r),
		credentials: metrics.NewCredentialStates(r),
		failing:     map[string]bool{},
	}
}

// visibility is the part of the Temporal client the collector uses.
type visibility interface {
	CountWorkflow(ctx context.Context, req *workflowservice.CountWorkflowExecutionsRequest) (*workflowservice.CountWorkflowExecutionsResponse, error)
}

// lister is the part of the token store the collector uses.
type lister interface {
	List(ctx context.Context) ([]store.Record, error)
}

// serve adds GET /metrics to the worker's HTTP endpoint (before it starts serving) and
// starts the collector of the credential gauges; the returned function stops the
// collector and waits for it. Without an HTTP endpoint nothing is collected.
func (m *workerMetrics) serve(ctx context.Context, srv *codecServer, tokens lister, vis visibility, logger *slog.Logger) (stop func()) {
	if srv == nil {
		return func() {}
	}
	srv.route("GET "+MetricsPath, m.registry) // GET and HEAD

	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		m.collectEvery(ctx, collectInterval, tokens, vis, logger)
	}()
	return func() {
		cancel()
		wg.Wait()
	}
}

// collectEvery collects at once and then every interval until ctx is done.
func (m *workerMetrics) collectEvery(ctx context.Context, interval time.Duration, tokens lister, vis visibility, logger *slog.Logger) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		m.collect(ctx, tokens, vis, logger)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// collect recomputes the credential gauges once. A failure keeps the previous values and
// counts in tokenwarden_collect_errors_total (tokenwarden_last_collect_timestamp_seconds
// shows how old the values are); the first of a run of failures is logged as a warning.
func (m *workerMetrics) collect(ctx context.Context, tokens lister, vis visibility, logger *slog.Logger) {
	cctx, cancel := context.WithTimeout(ctx, collectInterval)
	defer cancel()

	// The earliest access-token expiry, from the store's non-secret fields.
	if recs, err := tokens.List(cctx); err != nil {
		m.failed(ctx, "store", logger, "metrics: cannot list the token store", "error", err)
	} else {
		m.failing["store"] = false
		expiries := make([]time.Time, len(recs))
		for i, rec := range recs {
			expiries[i] = rec.AccessExpiresAt
		}
		m.credentials.SetEarliestExpiry(expiries, time.Now())
	}

	// Credentials by state, from Temporal's visibility: one count per published state.
	// "GROUP BY TokenState" would be one call, but Temporal's visibility (the dev server
	// of Server 1.29 included) refuses GROUP BY on anything but ExecutionStatus.
	counts := make(map[string]int64, len(publishedStates))
	for _, st := range publishedStates {
		resp, err := vis.CountWorkflow(cctx, &workflowservice.CountWorkflowExecutionsRequest{Query: stateQuery(st)})
		if err != nil {
			m.failed(ctx, "visibility", logger, "metrics: cannot count credentials by state in Temporal's visibility", "state", st, "error", err)
			return
		}
		counts[string(st)] = resp.GetCount()
	}
	m.credentials.SetStates(counts, time.Now())
	m.failing["visibility"] = false
}

// failed counts a failed collection, unless the worker is stopping, and logs it: as a
// warning when the source worked last time, else at debug level.
func (m *workerMetrics) failed(ctx context.Context, source string, logger *slog.Logger, msg string, args ...any) {
	if ctx.Err() != nil {
		return
	}
	m.credentials.CollectFailed(source)
	level := slog.LevelWarn
	if m.failing[source] {
		level = slog.LevelDebug
	}
	m.failing[source] = true
	logger.Log(ctx, level, msg, args...)
}

func stateQuery(st credential.State) string {
	return fmt.Sprintf("WorkflowType = '%s' AND ExecutionStatus = 'Running' AND %s = '%s'",
		workflows.WorkflowType, workflows.SearchState.GetName(), st)
}
