package e2e

import (
	"fmt"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/tokenwarden/tokenwarden/internal/tracing/tracingtest"
)

// TestTracingToOTLP: a worker given OTEL_EXPORTER_OTLP_ENDPOINT exports the SDK
// interceptor's spans (activities started by the workflow and run by the worker) and
// a client span of the provider call, with no secret in any of them. (Without the
// variable, every other test's worker runs with tracing off.)
func TestTracingToOTLP(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	col := &tracingtest.Collector{}
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
		spans := col.Spans()
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
	spans := col.Spans()
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
