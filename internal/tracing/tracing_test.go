package tracing

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/tokenwarden/tokenwarden/internal/tracing/tracingtest"
)

func mapEnv(m map[string]string) Env {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

func TestEnabled(t *testing.T) {
	for _, c := range []struct {
		env  map[string]string
		want bool
		err  bool
	}{
		{env: nil, want: false},
		{env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}, want: true},
		{env: map[string]string{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://collector:4318/v1/traces"}, want: true},
		{env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_SDK_DISABLED": "true"}, want: false},
		{env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_TRACES_EXPORTER": "none"}, want: false},
		{env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_TRACES_EXPORTER": "zipkin"}, err: true},
		{env: map[string]string{"OTEL_TRACES_EXPORTER": "otlp"}, want: false}, // no endpoint: off
	} {
		got, err := Enabled(mapEnv(c.env))
		if got != c.want || (err != nil) != c.err {
			t.Errorf("Enabled(%v) = %v, %v", c.env, got, err)
		}
	}
}

func TestOffByDefault(t *testing.T) {
	tr, err := New(context.Background(), mapEnv(nil), "svc", "v")
	if err != nil || tr != nil {
		t.Fatalf("New without an endpoint = %v, %v; want nil, nil", tr, err)
	}
	if ics, err := tr.Interceptors(); err != nil || len(ics) != 0 {
		t.Errorf("interceptors while off: %v %v", ics, err)
	}
	if tr.Transport(nil) != http.DefaultTransport {
		t.Error("the transport while off must be the base one")
	}
	if err := tr.Shutdown(context.Background()); err != nil {
		t.Error(err)
	}
}

// TestTransportSpansHideTheQuery: a provider call through Transport is sent with its
// real URL and a traceparent header, and exported as a client span whose attributes
// show neither the query (where a token may travel) nor user info.
func TestTransportSpansHideTheQuery(t *testing.T) {
	col := &tracingtest.Collector{}
	cs := httptest.NewServer(col)
	defer cs.Close()
	var gotQuery, gotTraceparent string
	provider := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gotQuery, gotTraceparent = r.URL.RawQuery, r.Header.Get("traceparent")
		_, _ = io.WriteString(w, `{"ok":true}`)
	}))
	defer provider.Close()

	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", cs.URL)
	t.Setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")
	tr, err := New(context.Background(), mapEnv(map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": cs.URL}), "tokenwarden-test", "v0")
	if err != nil || tr == nil {
		t.Fatalf("New: %v, %v", tr, err)
	}
	const secret = "access-token-secret-7d2a"
	u := strings.Replace(provider.URL, "http://", "http://user:pw-secret-91@", 1) + "/detail?access_token=" + secret
	resp, err := (&http.Client{Transport: tr.Transport(nil)}).Get(u)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if gotQuery != "access_token="+secret {
		t.Errorf("the provider got query %q, want the real one", gotQuery)
	}
	if gotTraceparent == "" {
		t.Error("no traceparent header on the provider call")
	}
	if err := tr.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	spans := col.Spans()
	if len(spans) != 1 || !strings.HasPrefix(spans[0], "HTTP GET 127.0.0.1:") {
		t.Fatalf("exported spans %q, want one HTTP GET client span", spans)
	}
	for _, bad := range []string{secret, "access_token", "pw-secret-91", "user:"} {
		if strings.Contains(spans[0], bad) {
			t.Errorf("the span shows %q: %s", bad, spans[0])
		}
	}
	t.Logf("exported span: %s", spans[0])
}
