package metrics

import (
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.temporal.io/sdk/client"
)

// SDKHandler exposes the Temporal SDK's metrics: pass it as
// client.Options.MetricsHandler. Names follow the convention Temporal's published SDK
// dashboards query (the Prometheus naming of the SDK's tally reporter): a counter gets
// the suffix _total (temporal_request -> temporal_request_total), a timer becomes a
// histogram in seconds with the suffix _seconds (temporal_request_latency ->
// temporal_request_latency_seconds_bucket, _sum, _count), a gauge keeps its name. Tags
// become labels.
//
// The SDK's tag sets vary within one metric name, which a client_golang vector cannot
// hold, so each tag set is a metric of its own with its tags as constant labels,
// collected by one unchecked collector. A name the SDK uses with two types, or one
// tokenwarden registered itself, records nothing rather than fail the worker.
type SDKHandler struct {
	m      *sdkMetrics
	labels prometheus.Labels
	key    string // labels, canonically encoded
}

var _ client.MetricsHandler = (*SDKHandler)(nil)

// NewSDKHandler returns a handler without tags that records into r. Every handler of
// one registry shares the same metrics.
func NewSDKHandler(r *Registry) *SDKHandler {
	r.sdkMu.Lock()
	defer r.sdkMu.Unlock()
	if r.sdk == nil {
		r.sdk = &sdkMetrics{owned: r.owned, kinds: map[string]sdkKind{}, series: map[string]prometheus.Metric{}}
		r.reg.MustRegister(r.sdk)
	}
	return &SDKHandler{m: r.sdk, labels: prometheus.Labels{}}
}

// WithTags returns a handler whose metrics also carry these tags; a tag already set is
// overwritten.
func (h *SDKHandler) WithTags(tags map[string]string) client.MetricsHandler {
	labels := maps.Clone(h.labels)
	for k, v := range tags {
		labels[sanitizeLabelName(k)] = strings.ToValidUTF8(v, "\uFFFD")
	}
	var b strings.Builder
	for _, k := range slices.Sorted(maps.Keys(labels)) {
		b.WriteString(k)
		b.WriteByte(0)
		b.WriteString(labels[k])
		b.WriteByte(0)
	}
	return &SDKHandler{m: h.m, labels: labels, key: b.String()}
}

// Counter returns the counter called name with this handler's tags.
func (h *SDKHandler) Counter(name string) client.MetricsCounter {
	c, ok := h.m.get(sdkCounter, withSuffix(name, "_total"), name, h).(prometheus.Counter)
	if !ok {
		return client.MetricsNopHandler.Counter(name)
	}
	return counterFunc(func(d int64) {
		if d > 0 { // counters only go up; the SDK never sends less
			c.Add(float64(d))
		}
	})
}

// Gauge returns the gauge called name with this handler's tags.
func (h *SDKHandler) Gauge(name string) client.MetricsGauge {
	g, ok := h.m.get(sdkGauge, sanitizeMetricName(name), name, h).(prometheus.Gauge)
	if !ok {
		return client.MetricsNopHandler.Gauge(name)
	}
	return gaugeFunc(g.Set)
}

// Timer returns the timer called name with this handler's tags: a histogram in seconds
// over DefaultBuckets.
func (h *SDKHandler) Timer(name string) client.MetricsTimer {
	o, ok := h.m.get(sdkTimer, withSuffix(name, "_seconds"), name, h).(prometheus.Histogram)
	if !ok {
		return client.MetricsNopHandler.Timer(name)
	}
	return timerFunc(func(d time.Duration) { o.Observe(d.Seconds()) })
}

type sdkKind int

const (
	sdkCounter sdkKind = iota + 1
	sdkGauge
	sdkTimer
)

// sdkMetrics is every series the SDK has asked for, by exposed name and tag set.
type sdkMetrics struct {
	owned func(name string) bool // names tokenwarden registered itself
	mu    sync.Mutex
	kinds map[string]sdkKind
	// series are prometheus.Counter, Gauge or Histogram, each with its own constant
	// labels, by name + "\xff" + the handler's key.
	series map[string]prometheus.Metric
}

// get returns the series name with h's labels, made on first use; nil when name is
// taken by another kind or by tokenwarden.
func (m *sdkMetrics) get(k sdkKind, name, sdkName string, h *SDKHandler) prometheus.Metric {
	m.mu.Lock()
	defer m.mu.Unlock()
	if have, ok := m.kinds[name]; ok && have != k {
		return nil
	} else if !ok {
		if m.owned(name) {
			return nil
		}
		m.kinds[name] = k
	}
	id := name + "\xff" + h.key
	if s, ok := m.series[id]; ok {
		return s
	}
	help := "Temporal SDK metric " + sdkName + "."
	var s prometheus.Metric
	switch k {
	case sdkCounter:
		s = prometheus.NewCounter(prometheus.CounterOpts{Name: name, Help: help, ConstLabels: h.labels})
	case sdkGauge:
		s = prometheus.NewGauge(prometheus.GaugeOpts{Name: name, Help: help, ConstLabels: h.labels})
	default:
		s = prometheus.NewHistogram(prometheus.HistogramOpts{Name: name, Help: help + " In seconds.", Buckets: DefaultBuckets, ConstLabels: h.labels})
	}
	m.series[id] = s
	return s
}

// has reports whether the SDK has used name.
func (m *sdkMetrics) has(name string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	_, ok := m.kinds[name]
	return ok
}

// Describe sends nothing: the collector is unchecked, since its label sets are not
// known in advance.
func (m *sdkMetrics) Describe(chan<- *prometheus.Desc) {}

// Collect sends every series.
func (m *sdkMetrics) Collect(ch chan<- prometheus.Metric) {
	m.mu.Lock()
	all := slices.Collect(maps.Values(m.series))
	m.mu.Unlock()
	for _, s := range all {
		ch <- s
	}
}

type counterFunc func(int64)

func (c counterFunc) Inc(d int64) { c(d) }

type gaugeFunc func(float64)

func (g gaugeFunc) Update(v float64) { g(v) }

type timerFunc func(time.Duration)

func (t timerFunc) Record(d time.Duration) { t(d) }

// withSuffix sanitizes name and appends suffix unless it already ends with it.
func withSuffix(name, suffix string) string {
	name = sanitizeMetricName(name)
	if strings.HasSuffix(name, suffix) {
		return name
	}
	return name + suffix
}

// sanitizeMetricName and sanitizeLabelName replace characters Prometheus does not allow
// with underscores (the SDK's names are valid already; this guards against surprises).
func sanitizeMetricName(s string) string { return sanitize(s, true) }

func sanitizeLabelName(s string) string {
	s = sanitize(s, false)
	if strings.HasPrefix(s, "__") || s == "le" {
		s = "tag_" + s
	}
	return s
}

func sanitize(s string, colon bool) string {
	if s == "" {
		return "_"
	}
	b := []byte(s)
	for i, c := range b {
		ok := c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (colon && c == ':') || (i > 0 && c >= '0' && c <= '9')
		if !ok {
			b[i] = '_'
		}
	}
	return string(b)
}
