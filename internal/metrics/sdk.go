package metrics

import (
	"maps"
	"slices"
	"strings"
	"time"

	"go.temporal.io/sdk/client"
)

// SDKHandler exposes the Temporal SDK's metrics through a registry: pass it as
// client.Options.MetricsHandler. Metric names are kept as the SDK reports them
// (temporal_request, temporal_workflow_task_execution_latency, ...); tags become labels
// (sorted by name); counters are counters, gauges gauges, and timers histograms in
// seconds over DefaultBuckets.
//
// The SDK's tag sets vary within one metric name, so these families take whatever
// labels a series brings. A name the SDK uses with two types, or a name already
// registered by NewCounter, NewGauge or NewHistogram, records nothing rather than fail
// the worker.
type SDKHandler struct {
	r      *Registry
	labels []labelPair // sorted by name
}

var _ client.MetricsHandler = (*SDKHandler)(nil)

// NewSDKHandler returns a handler without tags that records into r.
func NewSDKHandler(r *Registry) *SDKHandler { return &SDKHandler{r: r} }

// WithTags returns a handler whose metrics also carry these tags; a tag already set is
// overwritten.
func (h *SDKHandler) WithTags(tags map[string]string) client.MetricsHandler {
	merged := make(map[string]string, len(h.labels)+len(tags))
	for _, l := range h.labels {
		merged[l.name] = l.value
	}
	for k, v := range tags {
		merged[sanitizeLabelName(k)] = v
	}
	labels := make([]labelPair, 0, len(merged))
	for _, k := range slices.Sorted(maps.Keys(merged)) {
		labels = append(labels, labelPair{k, merged[k]})
	}
	return &SDKHandler{r: h.r, labels: labels}
}

func (h *SDKHandler) family(name string, k kind) *family {
	f, err := h.r.register(sanitizeMetricName(name), "Temporal SDK metric "+name+".", k, DefaultBuckets, nil, true)
	if err != nil {
		return nil
	}
	return f
}

// Counter returns the counter called name with this handler's tags.
func (h *SDKHandler) Counter(name string) client.MetricsCounter {
	f := h.family(name, kindCounter)
	if f == nil {
		return client.MetricsNopHandler.Counter(name)
	}
	s := f.get(h.labels)
	return counterFunc(func(d int64) {
		if d > 0 {
			s.add(float64(d))
		}
	})
}

// Gauge returns the gauge called name with this handler's tags.
func (h *SDKHandler) Gauge(name string) client.MetricsGauge {
	f := h.family(name, kindGauge)
	if f == nil {
		return client.MetricsNopHandler.Gauge(name)
	}
	s := f.get(h.labels)
	return gaugeFunc(s.set)
}

// Timer returns the timer called name with this handler's tags: a histogram in seconds.
func (h *SDKHandler) Timer(name string) client.MetricsTimer {
	f := h.family(name, kindHistogram)
	if f == nil {
		return client.MetricsNopHandler.Timer(name)
	}
	s := f.get(h.labels)
	return timerFunc(func(d time.Duration) { s.observe(f.buckets, d.Seconds()) })
}

type counterFunc func(int64)

func (c counterFunc) Inc(d int64) { c(d) }

type gaugeFunc func(float64)

func (g gaugeFunc) Update(v float64) { g(v) }

type timerFunc func(time.Duration)

func (t timerFunc) Record(d time.Duration) { t(d) }

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
