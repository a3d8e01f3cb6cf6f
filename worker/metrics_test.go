package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.temporal.io/api/workflowservice/v1"

	"github.com/tokenwarden/tokenwarden/internal/config"
	"github.com/tokenwarden/tokenwarden/internal/keyring/keyringtest"
	"github.com/tokenwarden/tokenwarden/internal/metrics"
	"github.com/tokenwarden/tokenwarden/internal/store"
)

type fakeLister struct {
	recs []store.Record
	err  error
}

func (f fakeLister) List(context.Context) ([]store.Record, error) { return f.recs, f.err }

// fakeVisibility answers counts per TokenState and records the queries.
type fakeVisibility struct {
	mu      sync.Mutex
	counts  map[string]int64
	err     error
	queries []string
}

func (f *fakeVisibility) CountWorkflow(_ context.Context, req *workflowservice.CountWorkflowExecutionsRequest) (*workflowservice.CountWorkflowExecutionsResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.queries = append(f.queries, req.GetQuery())
	if f.err != nil {
		return nil, f.err
	}
	for state, n := range f.counts {
		if strings.HasSuffix(req.GetQuery(), "TokenState = '"+state+"'") {
			return &workflowservice.CountWorkflowExecutionsResponse{Count: n}, nil
		}
	}
	return &workflowservice.CountWorkflowExecutionsResponse{}, nil
}

func get(t *testing.T, url string) (int, http.Header, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, resp.Header, string(body)
}

func TestMetricsEndpoint(t *testing.T) {
	ring := keyringtest.Random(t)
	logger := slog.New(slog.DiscardHandler)
	cfg := config.Worker{Temporal: config.Temporal{TemporalNamespace: "default"}, HTTPAddr: "127.0.0.1:0", CodecBearerToken: "codec-secret"}
	srv, err := startCodecServer(cfg, ring, logger)
	if err != nil {
		t.Fatal(err)
	}
	wm := newWorkerMetrics()
	soon := time.Now().Add(90 * time.Second)
	tokens := fakeLister{recs: []store.Record{{ID: "a", AccessExpiresAt: soon}, {ID: "b", AccessExpiresAt: soon.Add(time.Hour)}, {ID: "c"}}}
	vis := &fakeVisibility{counts: map[string]int64{"ACTIVE": 4, "NEEDS_REAUTH": 1}}
	stop := wm.serve(context.Background(), srv, tokens, vis, logger)
	go func() { _ = srv.serve() }()
	t.Cleanup(func() {
		stop()
		srv.shutdown(logger)
	})

	// Metrics from the activities and the SDK handler, as the worker wires them.
	wm.activity.Refresh("oauth2", metrics.OutcomeCommitted)
	wm.activity.RefreshDuration("oauth2", 120*time.Millisecond)
	wm.sdk.WithTags(map[string]string{"namespace": "default"}).Counter("temporal_request").Inc(1)

	base := "http://" + srv.addr
	var body string
	deadline := time.Now().Add(5 * time.Second)
	for { // the first collection runs at once, in the background
		var code int
		var h http.Header
		code, h, body = get(t, base+MetricsPath)
		if code != 200 || !strings.HasPrefix(h.Get("Content-Type"), "text/plain; version=0.0.4") {
			t.Fatalf("GET /metrics: %d %q", code, h.Get("Content-Type"))
		}
		// The visibility timestamp is set after every state's gauge: once it shows, the
		// whole first collection does.
		if strings.Contains(body, `tokenwarden_last_collect_timestamp_seconds{source="visibility"}`) || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	for _, want := range []string{
		"# TYPE tokenwarden_refreshes_total counter",
		`tokenwarden_refreshes_total{outcome="committed",provider="oauth2"} 1`,
		`tokenwarden_refresh_duration_seconds_bucket{provider="oauth2",le="0.25"} 1`,
		"# TYPE temporal_request_total counter",
		`temporal_request_total{namespace="default"} 1`,
		"# TYPE tokenwarden_credentials gauge",
		`tokenwarden_credentials{state="ACTIVE"} 4`,
		`tokenwarden_credentials{state="NEEDS_REAUTH"} 1`,
		`tokenwarden_credentials{state="DEGRADED"} 0`,
		`tokenwarden_credentials{state="SEEDING"} 0`,
		`tokenwarden_credentials{state="EXPIRED"} 0`,
		"# TYPE tokenwarden_earliest_expiry_seconds gauge",
	} {
		if !strings.Contains(body, want+"\n") {
			t.Errorf("missing %q in\n%s", want, body)
		}
	}
	// About 90 s until the earliest expiry; the credential without one is skipped.
	i := strings.Index(body, "\ntokenwarden_earliest_expiry_seconds ")
	if i < 0 {
		t.Fatalf("no earliest expiry in\n%s", body)
	}
	line := strings.SplitN(body[i+1:], "\n", 2)[0]
	if v, err := strconv.ParseFloat(strings.TrimPrefix(line, "tokenwarden_earliest_expiry_seconds "), 64); err != nil || v < 80 || v > 90 {
		t.Errorf("%q: want about 90 seconds", line)
	}
	vis.mu.Lock()
	q := vis.queries[0]
	vis.mu.Unlock()
	if q != "WorkflowType = 'CredentialWorkflow' AND ExecutionStatus = 'Running' AND TokenState = 'SEEDING'" {
		t.Errorf("visibility query %q", q)
	}

	// /metrics needs no bearer token (it holds no secret); the codec still does, and
	// /healthz still answers.
	if code, _, _ := get(t, base+"/healthz"); code != 200 {
		t.Errorf("/healthz: %d", code)
	}
	resp, err := http.Post(base+"/codec/decode", "application/json", strings.NewReader(`{"payloads":[]}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("/codec/decode without the bearer token: %d, want 401", resp.StatusCode)
	}
	resp, err = http.Post(base+MetricsPath, "text/plain", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode == http.StatusOK {
		t.Errorf("POST /metrics: %d", resp.StatusCode)
	}
}

func TestMetricsCollectFailures(t *testing.T) {
	var logs bytes.Buffer
	logger := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelWarn}))
	wm := newWorkerMetrics()
	vis := &fakeVisibility{err: errors.New("TokenState is not a search attribute")}
	for range 3 {
		wm.collect(context.Background(), fakeLister{err: errors.New("database is locked")}, vis, logger)
	}
	var b strings.Builder
	if err := wm.registry.WriteText(&b); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		`tokenwarden_collect_errors_total{source="store"} 3`,
		`tokenwarden_collect_errors_total{source="visibility"} 3`,
	} {
		if !strings.Contains(b.String(), want+"\n") {
			t.Errorf("missing %q in\n%s", want, b.String())
		}
	}
	if strings.Contains(b.String(), "tokenwarden_credentials{") || strings.Contains(b.String(), "\ntokenwarden_earliest_expiry_seconds ") {
		t.Errorf("gauges set without data:\n%s", b.String())
	}
	// One warning per source for a run of failures.
	if n := strings.Count(logs.String(), "level=WARN"); n != 2 {
		t.Errorf("%d warnings, want 2:\n%s", n, logs.String())
	}
	// Recovery, then a new failure warns again.
	wm.collect(context.Background(), fakeLister{}, &fakeVisibility{}, logger)
	wm.collect(context.Background(), fakeLister{err: errors.New("gone")}, &fakeVisibility{}, logger)
	if n := strings.Count(logs.String(), "level=WARN"); n != 3 {
		t.Errorf("%d warnings, want 3:\n%s", n, logs.String())
	}
	// A worker that is stopping does not count its cancelled calls as failures.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	wm.collect(ctx, fakeLister{err: context.Canceled}, &fakeVisibility{err: context.Canceled}, logger)
	b.Reset()
	_ = wm.registry.WriteText(&b)
	if !strings.Contains(b.String(), `tokenwarden_collect_errors_total{source="store"} 4`+"\n") {
		t.Errorf("cancelled collection counted:\n%s", b.String())
	}
}
