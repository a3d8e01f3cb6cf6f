package metrics

import (
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
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

func TestExpositionGolden(t *testing.T) {
	r := NewRegistry()
	refreshes := r.NewCounter("tw_refreshes_total", "Refresh attempts.", "provider", "outcome")
	up := r.NewGauge("tw_up", "Whether it is up.")
	temp := r.NewGauge("tw_temperature_celsius", "Temperature\nin \\degrees\\.", "room")
	lat := r.NewHistogram("tw_latency_seconds", "Latency.", []float64{0.1, 1, 10}, "op")
	r.NewCounter("tw_unused_total", "Never incremented, no labels: exposed at 0.")
	r.NewCounter("tw_unused_labelled_total", "Never incremented, labelled: not exposed.", "x")
	r.NewGauge("tw_unset", "Never set: not exposed.")

	refreshes.Inc("zalo-oa", "committed")
	refreshes.Inc("oauth2", "transient")
	refreshes.Add(2, "oauth2", "committed")
	up.Set(1)
	temp.Set(-3.5, "b")
	temp.Set(21.25, "a")
	temp.Add(1e6, "c")
	for _, v := range []float64{0.05, 0.1, 0.5, 3, 42} {
		lat.Observe(v, "refresh")
	}

	want := `# HELP tw_latency_seconds Latency.
# TYPE tw_latency_seconds histogram
tw_latency_seconds_bucket{op="refresh",le="0.1"} 2
tw_latency_seconds_bucket{op="refresh",le="1"} 3
tw_latency_seconds_bucket{op="refresh",le="10"} 4
tw_latency_seconds_bucket{op="refresh",le="+Inf"} 5
tw_latency_seconds_sum{op="refresh"} 45.65
tw_latency_seconds_count{op="refresh"} 5
# HELP tw_refreshes_total Refresh attempts.
# TYPE tw_refreshes_total counter
tw_refreshes_total{provider="oauth2",outcome="committed"} 2
tw_refreshes_total{provider="oauth2",outcome="transient"} 1
tw_refreshes_total{provider="zalo-oa",outcome="committed"} 1
# HELP tw_temperature_celsius Temperature\nin \\degrees\\.
# TYPE tw_temperature_celsius gauge
tw_temperature_celsius{room="a"} 21.25
tw_temperature_celsius{room="b"} -3.5
tw_temperature_celsius{room="c"} 1e+06
# HELP tw_unused_total Never incremented, no labels: exposed at 0.
# TYPE tw_unused_total counter
tw_unused_total 0
# HELP tw_up Whether it is up.
# TYPE tw_up gauge
tw_up 1
`
	if got := text(t, r); got != want {
		t.Fatalf("exposition:\n%s\nwant:\n%s", got, want)
	}
	// Stable: the same values give the same text.
	for range 5 {
		if got := text(t, r); got != want {
			t.Fatal("second scrape differs")
		}
	}
	if refreshes.Value("oauth2", "committed") != 2 || temp.Value("c") != 1e6 || refreshes.Value("x", "y") != 0 {
		t.Fatal("Value")
	}
	if n, sum := lat.Count("refresh"); n != 5 || math.Abs(sum-45.65) > 1e-9 {
		t.Fatalf("Count = %d, %v", n, sum)
	}
}

func TestLabelValueEscaping(t *testing.T) {
	r := NewRegistry()
	c := r.NewCounter("esc_total", "Escaping.", "v")
	c.Inc(`back\slash`)
	c.Inc(`say "hi"`)
	c.Inc("two\nlines")
	c.Inc("bad utf8 \xff")
	c.Inc("ünïcode ok")
	want := `# HELP esc_total Escaping.
# TYPE esc_total counter
esc_total{v="back\\slash"} 1
esc_total{v="bad utf8 ` + "\uFFFD" + `"} 1
esc_total{v="say \"hi\""} 1
esc_total{v="two\nlines"} 1
esc_total{v="ünïcode ok"} 1
`
	if got := text(t, r); got != want {
		t.Fatalf("exposition:\n%s\nwant:\n%s", got, want)
	}
}

func TestSpecialValuesAndDelete(t *testing.T) {
	r := NewRegistry()
	g := r.NewGauge("g", "G.", "k")
	g.Set(math.Inf(1), "pinf")
	g.Set(math.Inf(-1), "ninf")
	g.Set(math.NaN(), "nan")
	g.Set(0.000001, "small")
	got := text(t, r)
	for _, line := range []string{`g{k="pinf"} +Inf`, `g{k="ninf"} -Inf`, `g{k="nan"} NaN`, `g{k="small"} 1e-06`} {
		if !strings.Contains(got, line+"\n") {
			t.Errorf("missing %q in\n%s", line, got)
		}
	}
	if !g.Delete("nan") || g.Delete("nan") {
		t.Fatal("Delete result")
	}
	if strings.Contains(text(t, r), "nan") {
		t.Fatal("deleted series still exposed")
	}
	solo := r.NewGauge("solo", "Solo.")
	solo.Set(3)
	solo.Delete()
	if strings.Contains(text(t, r), "solo") {
		t.Fatal("a family without series must not be exposed")
	}
}

func TestHistogramBoundsAreInclusive(t *testing.T) {
	r := NewRegistry()
	h := r.NewHistogram("h", "H.", []float64{1, 2, math.Inf(1)})
	h.Observe(1)
	h.Observe(2.5)
	h.Observe(-5)
	want := `# HELP h H.
# TYPE h histogram
h_bucket{le="1"} 2
h_bucket{le="2"} 2
h_bucket{le="+Inf"} 3
h_sum -1.5
h_count 3
`
	if got := text(t, r); got != want {
		t.Fatalf("exposition:\n%s\nwant:\n%s", got, want)
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
	mustPanic(t, "bad name", func() { r.NewCounter("1c", "C.") })
	mustPanic(t, "bad label", func() { r.NewCounter("d_total", "D.", "a-b") })
	mustPanic(t, "reserved label", func() { r.NewCounter("d_total", "D.", "__x") })
	mustPanic(t, "le on a histogram", func() { r.NewHistogram("h", "H.", nil, "le") })
	mustPanic(t, "duplicate label", func() { r.NewCounter("d_total", "D.", "a", "a") })
	mustPanic(t, "unsorted buckets", func() { r.NewHistogram("h", "H.", []float64{2, 1}) })
	mustPanic(t, "other buckets", func() {
		r.NewHistogram("h2", "H.", []float64{1, 2})
		r.NewHistogram("h2", "H.", []float64{1, 3})
	})
	mustPanic(t, "label count", func() { a.Inc() })
	mustPanic(t, "negative counter", func() { a.Add(-1, "1") })
	if h := r.NewHistogram("h3", "H.", nil); len(h.f.buckets) != len(DefaultBuckets) {
		t.Fatal("nil buckets must mean DefaultBuckets")
	}
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

func TestConcurrentUse(t *testing.T) {
	r := NewRegistry()
	c := r.NewCounter("c_total", "C.", "w")
	g := r.NewGauge("g", "G.", "w")
	h := r.NewHistogram("h", "H.", []float64{0.5}, "w")
	var wg sync.WaitGroup
	const workers, n = 8, 1000
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			label := fmt.Sprint(w % 2)
			for i := range n {
				c.Inc(label)
				g.Add(1, label)
				h.Observe(float64(i%2), label)
				if i%100 == 0 {
					_ = text(t, r)
				}
			}
		}()
	}
	wg.Wait()
	if c.Value("0")+c.Value("1") != workers*n || g.Value("0")+g.Value("1") != workers*n {
		t.Fatalf("lost updates: counter %v, gauge %v", c.Value("0")+c.Value("1"), g.Value("0")+g.Value("1"))
	}
	if n0, _ := h.Count("0"); n0 != workers/2*n {
		t.Fatalf("histogram count %d", n0)
	}
}

func TestServeHTTP(t *testing.T) {
	r := NewRegistry()
	r.NewCounter("c_total", "C.").Inc()
	rec := httptest.NewRecorder()
	r.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	if rec.Code != 200 || rec.Header().Get("Content-Type") != ContentType || !strings.Contains(rec.Body.String(), "c_total 1\n") {
		t.Fatalf("GET: %d %q %q", rec.Code, rec.Header().Get("Content-Type"), rec.Body.String())
	}
	rec = httptest.NewRecorder()
	r.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/metrics", nil))
	if rec.Code != http.StatusMethodNotAllowed {
		t.Fatalf("POST: %d", rec.Code)
	}
}
