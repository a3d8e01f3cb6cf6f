package e2e

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	coltrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/protobuf/proto"
)

// otlpCollector is a fake OTLP/HTTP trace receiver: each span as its name followed by
// its attributes.
type otlpCollector struct {
	mu    sync.Mutex
	spans []string
}

func (c *otlpCollector) ServeHTTP(w http.ResponseWriter, r *http.Request) {
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

func (c *otlpCollector) names() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.spans...)
}

// TestTracingToOTLP: a worker given OTEL_EXPORTER_OTLP_ENDPOINT exports the SDK
// interceptor's spans (activities started by the workflow and run by the worker) and
// a client span of the provider call, with no secret in any of them. (Without the
// variable, every other test's worker runs with tracing off.)
func TestTracingToOTLP(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	col := &otlpCollector{}
	cs := httptest.NewServer(col)
	t.Cleanup(cs.Close)
	fake, tokenURL := startProvider(t, time.Hour)
	w := e.startWorkerBin(stack.workerBin,
		"OTEL_EXPORTER_OTLP_ENDPOINT="+cs.URL,
		"OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf",
		"OTEL_BSP_SCHEDULE_DELAY=100",
		"OTEL_SERVICE_NAME=tokenwarden-e2e")
	const id = "e2e-tracing"
	seed := fake.Seed(id)
	secrets := fmt.Sprintf(`{"refresh_token":%q,"client_secret":%q}`, seed, clientSecret)
	if code, out := e.runStarter(secrets, "start", e.writeJSON("cred.json", credentialFile(id, tokenURL)), "-secrets", "-"); code != 0 {
		t.Fatalf("starter start exited %d:\n%s", code, out)
	}
	t.Cleanup(func() { _ = stack.client.TerminateWorkflow(t.Context(), id, "", "test finished") })
	// No RunWorkflow span: it would end with the workflow, and a credential's never ends.
	want := []string{"StartActivity:", "RunActivity:", "HTTP POST 127.0.0.1:"}
	waitFor(t, 60*time.Second, "workflow, activity and provider spans at the collector", func() (bool, string) {
		spans := col.names()
		var missing []string
		for _, p := range want {
			found := false
			for _, s := range spans {
				found = found || strings.HasPrefix(s, p)
			}
			if !found {
				missing = append(missing, p)
			}
		}
		return len(missing) == 0, fmt.Sprintf("%d spans, none starting with %v", len(spans), missing)
	})
	w.stop(t)
	spans := col.names()
	for _, s := range spans {
		for _, secret := range []string{seed, clientSecret} {
			if strings.Contains(s, secret) {
				t.Errorf("a span carries a secret: %s", s)
			}
		}
		if latest, ok := fake.Latest(id); ok && strings.Contains(s, latest) {
			t.Errorf("a span carries the rotated refresh token: %s", s)
		}
	}
	seen := map[string]bool{}
	for _, s := range spans {
		name, _, _ := strings.Cut(s, " ")
		if !seen[name] {
			seen[name] = true
			t.Logf("span %s", name)
		}
	}
	if !strings.Contains(w.output.String(), "tracing=true") {
		t.Errorf("the worker's start-up line does not say tracing is on")
	}
}
