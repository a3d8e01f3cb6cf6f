package metrics

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func text(t *testing.T, r *Registry) string {
	t.Helper()
	var b strings.Builder
	if err := r.WriteText(&b); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

func TestRegistryFamilies(t *testing.T) {
	r := NewRegistry()
	c := r.NewCounter("tw_c_total", "C.", "provider", "outcome")
	c.Inc("oauth2", "committed")
	c.Add(2, "oauth2", "committed")
	g := r.NewGauge("tw_g", "G.", "state")
	g.Set(4, "ACTIVE")
	g.Set(1, "EXPIRED")
	if !g.Delete("EXPIRED") || g.Delete("EXPIRED") {
		t.Error("Delete must report whether the series existed")
	}
	h := r.NewHistogram("tw_h_seconds", "H.", []float64{0.1, 1}, "provider")
	h.Observe(0.05, "oauth2")
	h.Observe(0.5, "oauth2")
	if n, sum := h.Count("oauth2"); n != 2 || sum != 0.55 {
		t.Errorf("histogram count %d sum %v", n, sum)
	}
	if c.Value("oauth2", "committed") != 3 || g.Value("ACTIVE") != 4 {
		t.Errorf("values %v %v", c.Value("oauth2", "committed"), g.Value("ACTIVE"))
	}
	got := text(t, r)
	for _, want := range []string{
		"# TYPE tw_c_total counter",
		`tw_c_total{outcome="committed",provider="oauth2"} 3`,
		`tw_g{state="ACTIVE"} 4`,
		`tw_h_seconds_bucket{provider="oauth2",le="0.1"} 1`,
		`tw_h_seconds_bucket{provider="oauth2",le="+Inf"} 2`,
		`tw_h_seconds_count{provider="oauth2"} 2`,
		// The Go runtime, process and build-info collectors.
		"# TYPE go_goroutines gauge",
		"# TYPE go_memstats_heap_inuse_bytes gauge",
		"# TYPE process_cpu_seconds_total counter",
		"# TYPE process_resident_memory_bytes gauge",
		"# TYPE go_build_info gauge",
	} {
		if !strings.Contains(got, want+"\n") {
			t.Errorf("missing %q in\n%s", want, got)
		}
	}
	if strings.Contains(got, `state="EXPIRED"`) {
		t.Error("a deleted series is still exposed")
	}
}

func TestRegistration(t *testing.T) {
	r := NewRegistry()
	a := r.NewCounter("c_total", "C.", "x")
	b := r.NewCounter("c_total", "C.", "x")
	a.Inc("1")
	if b.Value("1") != 1 {
		t.Fatal("registering the same counter twice must return the same family")
	}
	mustPanic(t, "other type", func() { r.NewGauge("c_total", "C.", "x") })
	mustPanic(t, "other labels", func() { r.NewCounter("c_total", "C.", "y") })
	mustPanic(t, "label count", func() { a.Inc() })
	mustPanic(t, "negative counter", func() { a.Add(-1, "1") })
}

func mustPanic(t *testing.T, what string, f func()) {
	t.Helper()
	defer func() {
		if recover() == nil {
			t.Errorf("%s: no panic", what)
		}
	}()
	f()
}

func TestServeHTTP(t *testing.T) {
	r := NewRegistry()
	r.NewCounter("c_total", "C.").Inc()
	rec := httptest.NewRecorder()
	r.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	if rec.Code != 200 || !strings.HasPrefix(rec.Header().Get("Content-Type"), "text/plain; version=0.0.4") || !strings.Contains(rec.Body.String(), "\nc_total 1\n") {
		t.Fatalf("GET: %d %q %q", rec.Code, rec.Header().Get("Content-Type"), rec.Body.String())
	}
	rec = httptest.NewRecorder()
	r.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/metrics", nil))
	if rec.Code != http.StatusMethodNotAllowed {
		t.Fatalf("POST: %d", rec.Code)
	}
}
