// Package metrics holds the worker's Prometheus metrics on prometheus/client_golang:
// tokenwarden's own series (tokenwarden.go), the Temporal SDK's through SDKHandler
// (sdk.go), and the Go runtime, process and build-info collectors.
//
// The small wrapper types here keep the call sites (activities, the worker's
// collector) free of client_golang: a metric is made once, by name, help and label
// names, and used with label values.
package metrics

import (
	"fmt"
	"io"
	"net/http"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
)

// ContentType is the media type of the text exposition format WriteText writes (and
// /metrics answers a scraper that asks for nothing better).
const ContentType = "text/plain; version=0.0.4; charset=utf-8"

// DefaultBuckets are histogram upper bounds in seconds, from a millisecond to ten
// minutes: wide enough for provider calls and for Temporal's long polls.
var DefaultBuckets = []float64{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600}

// Registry is one process's metrics. The zero value is not usable; call NewRegistry.
type Registry struct {
	reg *prometheus.Registry

	// Two locks, never held together: sdkMetrics.get asks owned while holding its own.
	ownMu sync.Mutex
	own   map[string]bool // names made by NewCounter, NewGauge, NewHistogram
	sdkMu sync.Mutex
	sdk   *sdkMetrics // made by the first NewSDKHandler
}

// NewRegistry returns a registry with the Go runtime (go_*), process (process_*) and
// build-info (go_build_info) collectors: the memory, CPU and version panels every
// Go service dashboard has, and the SDK dashboards leave to the worker.
func NewRegistry() *Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		collectors.NewBuildInfoCollector(),
	)
	return &Registry{reg: reg, own: map[string]bool{}}
}

// owned reports whether tokenwarden registered name itself.
func (r *Registry) owned(name string) bool {
	r.ownMu.Lock()
	defer r.ownMu.Unlock()
	return r.own[name]
}

// Gatherer is the registry for client_golang's own tools (testutil, push).
func (r *Registry) Gatherer() prometheus.Gatherer { return r.reg }

// register registers c, or returns the collector already registered with the same
// descriptors: making a metric twice, as two components may, yields the same one.
// Another type or other labels under a taken name panic, as a programming error.
func register[C prometheus.Collector](r *Registry, name string, c C) C {
	r.sdkMu.Lock()
	sdk := r.sdk
	r.sdkMu.Unlock()
	if sdk != nil && sdk.has(name) {
		panic(fmt.Sprintf("metrics: %s is already a Temporal SDK metric", name))
	}
	r.ownMu.Lock()
	r.own[name] = true
	r.ownMu.Unlock()
	if err := r.reg.Register(c); err != nil {
		if are, ok := err.(prometheus.AlreadyRegisteredError); ok {
			if existing, ok := are.ExistingCollector.(C); ok {
				return existing
			}
		}
		panic(fmt.Sprintf("metrics: %v", err))
	}
	return c
}

// Counter is a counter family with fixed label names.
type Counter struct{ vec *prometheus.CounterVec }

// NewCounter registers (or returns) the counter family name.
func (r *Registry) NewCounter(name, help string, labelNames ...string) *Counter {
	return &Counter{vec: register(r, name, prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, labelNames))}
}

// Inc adds one to the series with these label values.
func (c *Counter) Inc(labelValues ...string) { c.vec.WithLabelValues(labelValues...).Inc() }

// Add adds v (not negative) to the series with these label values.
func (c *Counter) Add(v float64, labelValues ...string) { c.vec.WithLabelValues(labelValues...).Add(v) }

// Value is the series' current value (0 if it does not exist), for tests.
func (c *Counter) Value(labelValues ...string) float64 {
	var m dto.Metric
	if err := c.vec.WithLabelValues(labelValues...).Write(&m); err != nil {
		return 0
	}
	return m.GetCounter().GetValue()
}

// Gauge is a gauge family with fixed label names.
type Gauge struct{ vec *prometheus.GaugeVec }

// NewGauge registers (or returns) the gauge family name.
func (r *Registry) NewGauge(name, help string, labelNames ...string) *Gauge {
	return &Gauge{vec: register(r, name, prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: name, Help: help}, labelNames))}
}

// Set sets the series with these label values.
func (g *Gauge) Set(v float64, labelValues ...string) { g.vec.WithLabelValues(labelValues...).Set(v) }

// Add adds v to the series with these label values.
func (g *Gauge) Add(v float64, labelValues ...string) { g.vec.WithLabelValues(labelValues...).Add(v) }

// Delete removes the series, so that it is absent from the exposition rather than
// stale; it reports whether it existed.
func (g *Gauge) Delete(labelValues ...string) bool { return g.vec.DeleteLabelValues(labelValues...) }

// Value is the series' current value, for tests.
func (g *Gauge) Value(labelValues ...string) float64 {
	var m dto.Metric
	if err := g.vec.WithLabelValues(labelValues...).Write(&m); err != nil {
		return 0
	}
	return m.GetGauge().GetValue()
}

// Histogram is a histogram family with fixed label names.
type Histogram struct{ vec *prometheus.HistogramVec }

// NewHistogram registers (or returns) the histogram family name; nil buckets mean
// DefaultBuckets.
func (r *Registry) NewHistogram(name, help string, buckets []float64, labelNames ...string) *Histogram {
	if buckets == nil {
		buckets = DefaultBuckets
	}
	return &Histogram{vec: register(r, name, prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: name, Help: help, Buckets: buckets}, labelNames))}
}

// Observe records v in the series with these label values.
func (h *Histogram) Observe(v float64, labelValues ...string) {
	h.vec.WithLabelValues(labelValues...).Observe(v)
}

// Count is the series' number of observations and their sum, for tests.
func (h *Histogram) Count(labelValues ...string) (count uint64, sum float64) {
	var m dto.Metric
	if err := h.vec.WithLabelValues(labelValues...).(prometheus.Metric).Write(&m); err != nil {
		return 0, 0
	}
	return m.GetHistogram().GetSampleCount(), m.GetHistogram().GetSampleSum()
}

// ServeHTTP serves the registry to a scraper (GET and HEAD; content negotiated by
// promhttp, the text format by default). A collector that fails does not hide the
// others: the scrape goes on without it.
func (r *Registry) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	if req.Method != http.MethodGet && req.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	promhttp.HandlerFor(r.reg, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError}).ServeHTTP(w, req)
}

// WriteText writes every family in the text exposition format 0.0.4, in name order.
func (r *Registry) WriteText(w io.Writer) error {
	mfs, err := r.reg.Gather()
	if err != nil {
		return fmt.Errorf("gather metrics: %w", err)
	}
	enc := expfmt.NewEncoder(w, expfmt.NewFormat(expfmt.TypeTextPlain))
	for _, mf := range mfs {
		if err := enc.Encode(mf); err != nil {
			return fmt.Errorf("encode %s: %w", mf.GetName(), err)
		}
	}
	return nil
}
