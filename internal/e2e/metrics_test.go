package e2e

import (
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

var updateExposition = flag.Bool("update-exposition", false, "rewrite deploy/testdata/worker-metrics.txt from a running worker's /metrics")

// exposedNamesFile lists every sample name a running worker exposed, for deploy/'s
// tests of the Grafana dashboard and the alert rules, which run without a worker.
const exposedNamesFile = "../../deploy/testdata/worker-metrics.txt"

// sdkDashboardNames are the Temporal SDK series that Temporal's published Go/Java SDK
// Grafana dashboard queries and that a worker refreshing one credential produces
// within seconds (the dashboard's failure, cancellation and local-activity series only
// appear once such a thing happens).
var sdkDashboardNames = []string{
	"temporal_request_total",
	"temporal_request_latency_seconds_bucket",
	"temporal_long_request_latency_seconds_bucket",
	"temporal_workflow_task_schedule_to_start_latency_seconds_bucket",
	"temporal_workflow_task_execution_latency_seconds_bucket",
	"temporal_workflow_task_replay_latency_seconds_bucket",
	"temporal_workflow_task_queue_poll_succeed_total",
	"temporal_activity_schedule_to_start_latency_seconds_bucket",
	"temporal_activity_schedule_to_start_latency_seconds_count",
	"temporal_activity_execution_latency_seconds_bucket",
	"temporal_activity_succeed_endtoend_latency_seconds_bucket",
	"temporal_sticky_cache_size",
	"temporal_worker_task_slots_available",
	"temporal_worker_task_slots_used",
}

// TestWorkerMetricsExposition scrapes a running worker that has refreshed a credential
// and checks the SDK's series under the names Temporal's SDK dashboards query, the
// collectors' and tokenwarden's own. It keeps deploy/testdata/worker-metrics.txt
// honest: every name there must be in the live exposition (-update-exposition
// rewrites it).
func TestWorkerMetricsExposition(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	fake, tokenURL := startProvider(t, time.Hour)
	w := e.startWorker()
	const id = "e2e-metrics"
	secrets := fmt.Sprintf(`{"refresh_token":%q,"client_secret":%q}`, fake.Seed(id), clientSecret)
	if code, out := e.runStarter(secrets, "start", e.writeJSON("cred.json", credentialFile(id, tokenURL)), "-secrets", "-"); code != 0 {
		t.Fatalf("starter start exited %d:\n%s", code, out)
	}
	t.Cleanup(func() { _ = stack.client.TerminateWorkflow(t.Context(), id, "", "test finished") })

	want := append(slices.Clone(sdkDashboardNames),
		"go_goroutines", "go_build_info", "process_resident_memory_bytes", "process_cpu_seconds_total",
		"tokenwarden_refreshes_total", "tokenwarden_refresh_duration_seconds_bucket",
		`tokenwarden_credentials`, "tokenwarden_earliest_expiry_seconds")
	var samples map[string][]*sampleLine
	waitFor(t, 60*time.Second, "every expected series on /metrics", func() (bool, string) {
		var err error
		if samples, err = scrape("http://" + e.httpAddr + "/metrics"); err != nil {
			return false, err.Error()
		}
		var missing []string
		for _, n := range want {
			if len(samples[n]) == 0 {
				missing = append(missing, n)
			}
		}
		// The state gauge follows visibility, which lags the workflow a little; it counts
		// the whole namespace, other tests' credentials included.
		if !hasSample(samples, "tokenwarden_credentials", map[string]string{"state": "ACTIVE"}, 1) {
			missing = append(missing, `tokenwarden_credentials{state="ACTIVE"} >= 1`)
		}
		return len(missing) == 0, "missing " + strings.Join(missing, ", ")
	})
	for _, l := range samples["tokenwarden_credentials"] {
		t.Logf("tokenwarden_credentials%v = %v", l.labels, l.value)
	}
	for _, l := range samples["tokenwarden_refreshes_total"] {
		t.Logf("tokenwarden_refreshes_total%v = %v", l.labels, l.value)
	}
	for _, l := range samples["tokenwarden_earliest_expiry_seconds"] {
		t.Logf("tokenwarden_earliest_expiry_seconds = %v", l.value)
	}
	// The SDK's tags are labels, as the dashboards group by them.
	for _, l := range samples["temporal_request_total"] {
		if l.labels["namespace"] == "" || l.labels["operation"] == "" {
			t.Errorf("temporal_request_total without namespace and operation: %v", l.labels)
		}
	}

	// The health endpoints of the same worker: alive, and ready (Temporal answers, the
	// store answers, the key file opens the credential's record).
	for _, path := range []string{"/livez", "/readyz"} {
		resp, err := http.Get("http://" + e.httpAddr + path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || (path == "/readyz" && !strings.Contains(string(body), `"ready":true`)) {
			t.Errorf("GET %s: %d %s", path, resp.StatusCode, body)
		}
		t.Logf("GET %s: %d %s", path, resp.StatusCode, strings.TrimSpace(string(body)))
	}

	names := slices.Sorted(func(yield func(string) bool) {
		for n := range samples {
			if !yield(n) {
				return
			}
		}
	})
	if *updateExposition {
		body := "# Sample names a running worker exposed (internal/e2e TestWorkerMetricsExposition\n# -update-exposition); deploy/'s tests check the dashboard and the rules against them.\n" + strings.Join(names, "\n") + "\n"
		if err := os.WriteFile(filepath.FromSlash(exposedNamesFile), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	data, err := os.ReadFile(filepath.FromSlash(exposedNamesFile))
	if err != nil {
		t.Fatalf("%v (run with -update-exposition to write it)", err)
	}
	for _, n := range strings.Split(string(data), "\n") {
		if n != "" && !strings.HasPrefix(n, "#") && len(samples[n]) == 0 {
			t.Errorf("%s lists %s, which the running worker does not expose", exposedNamesFile, n)
		}
	}
	w.stop(t)
}

// sampleLine is one sample of a scrape.
type sampleLine struct {
	labels map[string]string
	value  float64
}

// scrape reads url's text exposition into samples by sample name (histograms give
// name_bucket, name_sum and name_count, as PromQL sees them).
func scrape(url string) (map[string][]*sampleLine, error) {
	resp, err := http.Get(url)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		return nil, fmt.Errorf("GET %s: %s: %s", url, resp.Status, b)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("parse %s: %w", url, err)
	}
	out := map[string][]*sampleLine{}
	for name, mf := range mfs {
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, lp := range m.GetLabel() {
				labels[lp.GetName()] = lp.GetValue()
			}
			add := func(n string, v float64, extra ...string) {
				l := labels
				if len(extra) == 2 {
					l = map[string]string{extra[0]: extra[1]}
					for k, v := range labels {
						l[k] = v
					}
				}
				out[n] = append(out[n], &sampleLine{labels: l, value: v})
			}
			switch mf.GetType() {
			case dto.MetricType_COUNTER:
				add(name, m.GetCounter().GetValue())
			case dto.MetricType_GAUGE:
				add(name, m.GetGauge().GetValue())
			case dto.MetricType_HISTOGRAM:
				h := m.GetHistogram()
				for _, b := range h.GetBucket() {
					add(name+"_bucket", float64(b.GetCumulativeCount()), "le", fmt.Sprint(b.GetUpperBound()))
				}
				add(name+"_bucket", float64(h.GetSampleCount()), "le", "+Inf")
				add(name+"_sum", h.GetSampleSum())
				add(name+"_count", float64(h.GetSampleCount()))
			default:
				add(name, m.GetUntyped().GetValue())
			}
		}
	}
	return out, nil
}

// hasSample reports whether name has a sample with these labels of at least min.
func hasSample(samples map[string][]*sampleLine, name string, labels map[string]string, min float64) bool {
	for _, s := range samples[name] {
		ok := s.value >= min
		for k, v := range labels {
			ok = ok && s.labels[k] == v
		}
		if ok {
			return true
		}
	}
	return false
}
