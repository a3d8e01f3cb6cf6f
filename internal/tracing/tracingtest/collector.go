// Package tracingtest holds a fake OTLP/HTTP trace receiver for the tests of
// internal/tracing and of the worker, as httptest sits beside net/http.
package tracingtest

import (
	"io"
	"net/http"
	"sync"

	coltrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/protobuf/proto"
)

// Collector answers OTLP/HTTP trace exports (POST /v1/traces, protobuf) and keeps each
// span as one line: its name, then every attribute as key=value.
type Collector struct {
	mu    sync.Mutex
	spans []string
}

func (c *Collector) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	var req coltrace.ExportTraceServiceRequest
	if r.URL.Path != "/v1/traces" || proto.Unmarshal(body, &req) != nil {
		http.Error(w, "bad export", http.StatusBadRequest)
		return
	}
	c.mu.Lock()
	for _, rs := range req.GetResourceSpans() {
		for _, ss := range rs.GetScopeSpans() {
			for _, s := range ss.GetSpans() {
				line := s.GetName()
				for _, a := range s.GetAttributes() {
					line += " " + a.GetKey() + "=" + a.GetValue().String()
				}
				c.spans = append(c.spans, line)
			}
		}
	}
	c.mu.Unlock()
	out, _ := proto.Marshal(&coltrace.ExportTraceServiceResponse{})
	w.Header().Set("Content-Type", "application/x-protobuf")
	_, _ = w.Write(out)
}

// Spans returns the spans received so far.
func (c *Collector) Spans() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.spans...)
}
