package activities_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"go.uber.org/mock/gomock"

	"github.com/tokenwarden/tokenwarden/activities"
	"github.com/tokenwarden/tokenwarden/activities/activitiesmock"
	"github.com/tokenwarden/tokenwarden/internal/credential"
	"github.com/tokenwarden/tokenwarden/internal/metrics"
	"github.com/tokenwarden/tokenwarden/internal/provider/oauth2/oauth2test"
)

// withMetrics gives the harness's activities a metrics registry.
func withMetrics(h *harness) *metrics.Registry {
	r := metrics.NewRegistry()
	h.acts.Metrics = metrics.NewActivity(r)
	return r
}

func exposition(t *testing.T, r *metrics.Registry) string {
	t.Helper()
	var b strings.Builder
	if err := r.WriteText(&b); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

func wantLines(t *testing.T, r *metrics.Registry, lines ...string) {
	t.Helper()
	got := exposition(t, r)
	for _, l := range lines {
		if !strings.Contains(got, l+"\n") {
			t.Errorf("missing %q in\n%s", l, got)
		}
	}
}

func TestMetricsRefreshOutcomes(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	r := withMetrics(h)
	_, v := h.seed(credID, "fam", testClientSecret)

	// A refresh against the fake provider commits.
	res := h.mustRefresh(h.request(credID, v))
	wantLines(t, r,
		`tokenwarden_refreshes_total{outcome="committed",provider="oauth2"} 1`,
		`tokenwarden_refresh_duration_seconds_count{provider="oauth2"} 1`,
	)

	// A retry of the same round finds it committed: counted, not timed (no provider call).
	h.mustRefresh(h.request(credID, v))
	wantLines(t, r,
		`tokenwarden_refreshes_total{outcome="already_committed",provider="oauth2"} 1`,
		`tokenwarden_refresh_duration_seconds_count{provider="oauth2"} 1`,
	)

	// Another attempt holds the lease: in flight, not timed.
	if _, err := h.sqlite.AcquireLease(context.Background(), credID, "someone-else", time.Minute); err != nil {
		t.Fatal(err)
	}
	if _, err := h.refresh(h.request(credID, res.Version)); err == nil {
		t.Fatal("refresh under another attempt's lease succeeded")
	}
	if err := h.sqlite.ReleaseLease(context.Background(), credID, "someone-else"); err != nil {
		t.Fatal(err)
	}
	wantLines(t, r, `tokenwarden_refreshes_total{outcome="in_flight",provider="oauth2"} 1`)

	// The provider answers 503: transient, timed.
	h.fake.InjectFault(oauth2test.Fault{Kind: oauth2test.FaultStatus, Count: 1, Status: 503})
	if _, err := h.refresh(h.request(credID, res.Version)); err == nil {
		t.Fatal("refresh against a 503 succeeded")
	}
	wantLines(t, r,
		`tokenwarden_refreshes_total{outcome="transient",provider="oauth2"} 1`,
		`tokenwarden_refresh_duration_seconds_count{provider="oauth2"} 2`,
	)

	// The grant is revoked: permanent, timed.
	h.fake.RevokeFamily("fam")
	if _, err := h.refresh(h.request(credID, res.Version)); err == nil {
		t.Fatal("refresh of a revoked grant succeeded")
	}
	wantLines(t, r,
		`tokenwarden_refreshes_total{outcome="permanent",provider="oauth2"} 1`,
		`tokenwarden_refresh_duration_seconds_count{provider="oauth2"} 3`,
		`tokenwarden_refreshes_total{outcome="committed",provider="oauth2"} 1`,
	)

	// An unknown provider is invalid input, and does not become a label value.
	req := h.request(credID, res.Version)
	req.Provider = "no-such-provider"
	if _, err := h.refresh(req); err == nil {
		t.Fatal("refresh with an unknown provider succeeded")
	}
	wantLines(t, r, `tokenwarden_refreshes_total{outcome="invalid_input",provider="unknown"} 1`)
	if strings.Contains(exposition(t, r), "no-such-provider") {
		t.Fatal("an unknown provider name became a label value")
	}
}

func TestMetricsProbe(t *testing.T) {
	h := newHarness(t, harnessOptions{introspect: true})
	r := withMetrics(h)
	_, v := h.seed(credID, "fam", testClientSecret)
	cfg := h.config()
	probe := func() {
		t.Helper()
		if _, err := h.env.ExecuteActivity(h.acts.Probe, activities.ProbeRequest{CredentialID: credID, Provider: "oauth2", Config: cfg}); err != nil {
			t.Fatalf("Probe: %v", err)
		}
	}
	probe() // seeded without an access token
	h.mustRefresh(h.request(credID, v))
	probe()
	wantLines(t, r,
		`tokenwarden_probes_total{outcome="no_access_token",provider="oauth2"} 1`,
		`tokenwarden_probes_total{outcome="valid",provider="oauth2"} 1`,
	)
}

func TestMetricsNotify(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	r := withMetrics(h)
	notify := func(event string) error {
		_, err := h.env.ExecuteActivity(h.acts.Notify, credential.Notification{Event: event, CredentialID: credID, State: "NEEDS_REAUTH"})
		return err
	}
	if err := notify(credential.EventIncident); err != nil {
		t.Fatal(err)
	}
	if err := notify("made-up event"); err != nil {
		t.Fatal(err)
	}
	failing := activitiesmock.NewMockNotifier(gomock.NewController(t))
	failing.EXPECT().Notify(gomock.Any(), event(credential.EventRecovered)).Return(errors.New("webhook answered 500"))
	h.acts.Notifier = failing
	if err := notify(credential.EventRecovered); err == nil {
		t.Fatal("a failing notifier succeeded")
	}
	wantLines(t, r,
		`tokenwarden_notifications_total{event="incident",outcome="logged"} 1`,
		`tokenwarden_notifications_total{event="other",outcome="logged"} 1`,
		`tokenwarden_notifications_total{event="recovered",outcome="failed"} 1`,
	)
}
