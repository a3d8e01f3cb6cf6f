// Package metrics is a small Prometheus-compatible metrics registry: counters, gauges
// and histograms with label sets, exposed in the Prometheus text exposition format
// 0.0.4. It exists so that the worker can serve /metrics without a client library.
//
// Everything is safe for concurrent use. Families are written in name order and the
// series of a family in label order, so two scrapes of the same values are identical.
package metrics

import (
	"bufio"
	"fmt"
	"io"
	"math"
	"net/http"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
)

// ContentType is the media type of the text exposition format this package writes.
const ContentType = "text/plain; version=0.0.4; charset=utf-8"

// DefaultBuckets are histogram upper bounds in seconds, from a millisecond to ten
// minutes: wide enough for provider calls and for Temporal's long polls.
var DefaultBuckets = []float64{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600}

var (
	metricNameRE = regexp.MustCompile(`^[a-zA-Z_:][a-zA-Z0-9_:]*$`)
	labelNameRE  = regexp.MustCompile(`^[a-zA-Z_][a-zA-Z0-9_]*$`)
)

type kind int

const (
	kindCounter kind = iota
	kindGauge
	kindHistogram
)

func (k kind) String() string {
	switch k {
	case kindCounter:
		return "counter"
	case kindGauge:
		return "gauge"
	default:
		return "histogram"
	}
}

// Registry holds metric families. The zero value is not usable; call NewRegistry.
type Registry struct {
	mu       sync.RWMutex
	families map[string]*family
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry {
	return &Registry{families: map[string]*family{}}
}

// family is one metric name: its type, help text and series.
type family struct {
	name    string
	help    string
	kind    kind
	buckets []float64 // histograms: sorted upper bounds, without +Inf
	// labelNames are the fixed label names of a family made by NewCounter, NewGauge or
	// NewHistogram. Free-form families (the Temporal SDK's, whose tags vary) have
	// none: each series carries its own label names.
	labelNames []string
	free       bool

	mu     sync.RWMutex
	series map[string]*series
}

type labelPair struct{ name, value string }

// series is one label set of a family.
type series struct {
	labels []labelPair
	value  atomic.Uint64 // counters and gauges: math.Float64bits

	hmu    sync.Mutex // histograms
	counts []uint64   // per bucket, not cumulative; the last one is +Inf
	sum    float64
	count  uint64
}

func (s *series) add(v float64) {
	for {
		old := s.value.Load()
		if s.value.CompareAndSwap(old, math.Float64bits(math.Float64frombits(old)+v)) {
			return
		}
	}
}

func (s *series) set(v float64) { s.value.Store(math.Float64bits(v)) }

func (s *series) observe(buckets []float64, v float64) {
	i := sort.SearchFloat64s(buckets, v) // first bound >= v: le is inclusive
	s.hmu.Lock()
	s.counts[i]++
	s.sum += v
	s.count++
	s.hmu.Unlock()
}

// register returns the family called name, creating it; a family of that name with
// another type, label names or buckets is an error.
func (r *Registry) register(name, help string, k kind, buckets []float64, labelNames []string, free bool) (*family, error) {
	if k != kindHistogram {
		buckets = nil
	} else if len(buckets) == 0 {
		buckets = DefaultBuckets
	}
	buckets = trimInf(buckets) // +Inf is always there
	r.mu.RLock()
	f, ok := r.families[name]
	r.mu.RUnlock()
	if ok { // the fast path of the SDK handler, which asks for its families by name every time
		return f.same(k, buckets, labelNames, free)
	}
	if !metricNameRE.MatchString(name) {
		return nil, fmt.Errorf("metrics: invalid metric name %q", name)
	}
	for i, l := range labelNames {
		if !labelNameRE.MatchString(l) || strings.HasPrefix(l, "__") || (k == kindHistogram && l == "le") {
			return nil, fmt.Errorf("metrics: %s: invalid label name %q", name, l)
		}
		if slices.Contains(labelNames[:i], l) {
			return nil, fmt.Errorf("metrics: %s: duplicate label name %q", name, l)
		}
	}
	for i, b := range buckets {
		if math.IsNaN(b) || (i > 0 && b <= buckets[i-1]) {
			return nil, fmt.Errorf("metrics: %s: buckets must be increasing", name)
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if f, ok := r.families[name]; ok {
		return f.same(k, buckets, labelNames, free)
	}
	f = &family{name: name, help: help, kind: k, buckets: slices.Clone(buckets), labelNames: slices.Clone(labelNames),
		free: free, series: map[string]*series{}}
	if !free && len(labelNames) == 0 && k != kindGauge {
		f.get(nil) // a counter or histogram without labels is exposed at zero from the start
	}
	r.families[name] = f
	return f, nil
}

// same returns f if it was registered with this type, buckets and label names.
func (f *family) same(k kind, buckets []float64, labelNames []string, free bool) (*family, error) {
	if f.kind != k || f.free != free || !slices.Equal(f.labelNames, labelNames) || !slices.Equal(f.buckets, buckets) {
		return nil, fmt.Errorf("metrics: %s is already registered as a %s with other labels or buckets", f.name, f.kind)
	}
	return f, nil
}

// trimInf drops a final +Inf bucket: it is always there.
func trimInf(buckets []float64) []float64 {
	if n := len(buckets); n > 0 && math.IsInf(buckets[n-1], +1) {
		return buckets[:n-1]
	}
	return buckets
}

func mustRegister(f *family, err error) *family {
	if err != nil {
		panic(err)
	}
	return f
}

// key encodes a label set as a map key.
func key(labels []labelPair) string {
	var b strings.Builder
	for _, l := range labels {
		b.WriteString(l.name)
		b.WriteByte(0xfe)
		b.WriteString(l.value)
		b.WriteByte(0xff)
	}
	return b.String()
}

// get returns the series with these labels, creating it.
func (f *family) get(labels []labelPair) *series {
	k := key(labels)
	f.mu.RLock()
	s, ok := f.series[k]
	f.mu.RUnlock()
	if ok {
		return s
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if s, ok := f.series[k]; ok {
		return s
	}
	s = &series{labels: labels}
	if f.kind == kindHistogram {
		s.counts = make([]uint64, len(f.buckets)+1)
	}
	f.series[k] = s
	return s
}

// fixed pairs the family's label names with values, which must match in number.
func (f *family) fixed(values []string) []labelPair {
	if len(values) != len(f.labelNames) {
		panic(fmt.Sprintf("metrics: %s has labels %q, got %d values", f.name, f.labelNames, len(values)))
	}
	labels := make([]labelPair, len(values))
	for i, v := range values {
		labels[i] = labelPair{f.labelNames[i], v}
	}
	return labels
}

func (f *family) delete(labels []labelPair) bool {
	k := key(labels)
	f.mu.Lock()
	defer f.mu.Unlock()
	_, ok := f.series[k]
	delete(f.series, k)
	return ok
}

// Counter is a family of monotonically increasing values.
type Counter struct{ f *family }

// NewCounter registers a counter (by convention named ..._total). Registering the same
// name again with the same label names returns the same counter; anything else panics.
func (r *Registry) NewCounter(name, help string, labelNames ...string) *Counter {
	return &Counter{mustRegister(r.register(name, help, kindCounter, nil, labelNames, false))}
}

// Inc adds one to the series with these label values (in the order of the label names).
func (c *Counter) Inc(labelValues ...string) { c.Add(1, labelValues...) }

// Add adds v, which must not be negative, to the series with these label values.
func (c *Counter) Add(v float64, labelValues ...string) {
	if v < 0 {
		panic(fmt.Sprintf("metrics: %s: counters cannot decrease (%v)", c.f.name, v))
	}
	c.f.get(c.f.fixed(labelValues)).add(v)
}

// Value returns the current value of a series (0 if it does not exist).
func (c *Counter) Value(labelValues ...string) float64 { return c.f.value(c.f.fixed(labelValues)) }

// Gauge is a family of values that go up and down.
type Gauge struct{ f *family }

// NewGauge registers a gauge. A gauge's series exist once set: a gauge without labels
// is not exposed before its first Set.
func (r *Registry) NewGauge(name, help string, labelNames ...string) *Gauge {
	return &Gauge{mustRegister(r.register(name, help, kindGauge, nil, labelNames, false))}
}

// Set sets the series with these label values to v.
func (g *Gauge) Set(v float64, labelValues ...string) { g.f.get(g.f.fixed(labelValues)).set(v) }

// Add adds v (possibly negative) to the series with these label values.
func (g *Gauge) Add(v float64, labelValues ...string) { g.f.get(g.f.fixed(labelValues)).add(v) }

// Delete removes the series with these label values, so that it is no longer exposed.
// It reports whether the series existed.
func (g *Gauge) Delete(labelValues ...string) bool { return g.f.delete(g.f.fixed(labelValues)) }

// Value returns the current value of a series (0 if it does not exist).
func (g *Gauge) Value(labelValues ...string) float64 { return g.f.value(g.f.fixed(labelValues)) }

func (f *family) value(labels []labelPair) float64 {
	f.mu.RLock()
	s, ok := f.series[key(labels)]
	f.mu.RUnlock()
	if !ok {
		return 0
	}
	return math.Float64frombits(s.value.Load())
}

// Histogram is a family of distributions over fixed buckets.
type Histogram struct{ f *family }

// NewHistogram registers a histogram with these bucket upper bounds (increasing; nil
// means DefaultBuckets; +Inf is always added).
func (r *Registry) NewHistogram(name, help string, buckets []float64, labelNames ...string) *Histogram {
	return &Histogram{mustRegister(r.register(name, help, kindHistogram, buckets, labelNames, false))}
}

// Observe records v in the series with these label values.
func (h *Histogram) Observe(v float64, labelValues ...string) {
	h.f.get(h.f.fixed(labelValues)).observe(h.f.buckets, v)
}

// Count returns how many values a series has recorded, and their sum.
func (h *Histogram) Count(labelValues ...string) (count uint64, sum float64) {
	h.f.mu.RLock()
	s, ok := h.f.series[key(h.f.fixed(labelValues))]
	h.f.mu.RUnlock()
	if !ok {
		return 0, 0
	}
	s.hmu.Lock()
	defer s.hmu.Unlock()
	return s.count, s.sum
}

// ServeHTTP writes the registry in the text exposition format.
func (r *Registry) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	if req.Method != http.MethodGet && req.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	w.Header().Set("Content-Type", ContentType)
	w.Header().Set("Cache-Control", "no-store")
	if req.Method == http.MethodHead {
		return
	}
	_ = r.WriteText(w)
}

// snapshot is a consistent copy of one series' values.
type snapshot struct {
	labels []labelPair
	value  float64
	counts []uint64
	sum    float64
	count  uint64
}

// WriteText writes every family that has at least one series, in name order, in the
// Prometheus text exposition format 0.0.4.
func (r *Registry) WriteText(w io.Writer) error {
	r.mu.RLock()
	fams := make([]*family, 0, len(r.families))
	for _, f := range r.families {
		fams = append(fams, f)
	}
	r.mu.RUnlock()
	slices.SortFunc(fams, func(a, b *family) int { return strings.Compare(a.name, b.name) })

	bw := bufio.NewWriter(w)
	for _, f := range fams {
		snaps := f.snapshot()
		if len(snaps) == 0 {
			continue
		}
		fmt.Fprintf(bw, "# HELP %s %s\n# TYPE %s %s\n", f.name, escapeHelp(f.help), f.name, f.kind)
		for _, s := range snaps {
			if f.kind != kindHistogram {
				writeSample(bw, f.name, s.labels, nil, s.value)
				continue
			}
			var cum uint64
			for i, c := range s.counts {
				cum += c
				le := "+Inf"
				if i < len(f.buckets) {
					le = formatFloat(f.buckets[i])
				}
				writeSample(bw, f.name+"_bucket", s.labels, &labelPair{"le", le}, float64(cum))
			}
			writeSample(bw, f.name+"_sum", s.labels, nil, s.sum)
			writeSample(bw, f.name+"_count", s.labels, nil, float64(s.count))
		}
	}
	return bw.Flush()
}

func (f *family) snapshot() []snapshot {
	f.mu.RLock()
	out := make([]snapshot, 0, len(f.series))
	for _, s := range f.series {
		snap := snapshot{labels: s.labels}
		if f.kind == kindHistogram {
			s.hmu.Lock()
			snap.counts, snap.sum, snap.count = slices.Clone(s.counts), s.sum, s.count
			s.hmu.Unlock()
		} else {
			snap.value = math.Float64frombits(s.value.Load())
		}
		out = append(out, snap)
	}
	f.mu.RUnlock()
	slices.SortFunc(out, func(a, b snapshot) int { return compareLabels(a.labels, b.labels) })
	return out
}

func compareLabels(a, b []labelPair) int {
	for i := range min(len(a), len(b)) {
		if c := strings.Compare(a[i].name, b[i].name); c != 0 {
			return c
		}
		if c := strings.Compare(a[i].value, b[i].value); c != 0 {
			return c
		}
	}
	return len(a) - len(b)
}

func writeSample(w *bufio.Writer, name string, labels []labelPair, extra *labelPair, v float64) {
	w.WriteString(name)
	if len(labels) > 0 || extra != nil {
		w.WriteByte('{')
		for i, l := range labels {
			if i > 0 {
				w.WriteByte(',')
			}
			writeLabel(w, l)
		}
		if extra != nil {
			if len(labels) > 0 {
				w.WriteByte(',')
			}
			writeLabel(w, *extra)
		}
		w.WriteByte('}')
	}
	w.WriteByte(' ')
	w.WriteString(formatFloat(v))
	w.WriteByte('\n')
}

func writeLabel(w *bufio.Writer, l labelPair) {
	w.WriteString(l.name)
	w.WriteString(`="`)
	w.WriteString(escapeLabelValue(l.value))
	w.WriteByte('"')
}

var (
	labelValueEscaper = strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`)
	helpEscaper       = strings.NewReplacer(`\`, `\\`, "\n", `\n`)
)

// escapeLabelValue escapes backslash, double quote and line feed, and replaces invalid
// UTF-8, which Prometheus would refuse.
func escapeLabelValue(v string) string {
	return labelValueEscaper.Replace(strings.ToValidUTF8(v, "\uFFFD"))
}

func escapeHelp(h string) string { return helpEscaper.Replace(strings.ToValidUTF8(h, "\uFFFD")) }

func formatFloat(v float64) string {
	switch {
	case math.IsInf(v, +1):
		return "+Inf"
	case math.IsInf(v, -1):
		return "-Inf"
	case math.IsNaN(v):
		return "NaN"
	}
	return strconv.FormatFloat(v, 'g', -1, 64)
}
