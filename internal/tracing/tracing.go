// Package tracing sets up OpenTelemetry traces for the worker: the Temporal SDK's
// tracing interceptor (workflow, activity, signal, query and update spans, carried
// across the client and the worker in Temporal headers) and client spans for the
// provider HTTP calls. It is off unless the standard OTEL_* environment names an OTLP
// endpoint, and everything it makes is passed explicitly: no global tracer provider
// or propagator is set.
package tracing

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
	temporalotel "go.temporal.io/sdk/contrib/opentelemetry"
	"go.temporal.io/sdk/interceptor"
)

// Env looks a variable up, as os.LookupEnv does.
type Env func(key string) (string, bool)

// Enabled reports whether the environment asks for traces: OTEL_EXPORTER_OTLP_ENDPOINT
// or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT is set, OTEL_SDK_DISABLED is not true, and
// OTEL_TRACES_EXPORTER is unset or otlp. The specification's default exporter is otlp
// to localhost; tokenwarden asks for an explicit endpoint instead, so that a worker
// without a collector neither dials one nor logs export failures.
func Enabled(env Env) (bool, error) {
	if v, _ := env("OTEL_SDK_DISABLED"); strings.EqualFold(strings.TrimSpace(v), "true") {
		return false, nil
	}
	switch v, _ := env("OTEL_TRACES_EXPORTER"); strings.TrimSpace(v) {
	case "", "otlp":
	case "none":
		return false, nil
	default:
		return false, fmt.Errorf("OTEL_TRACES_EXPORTER=%q: tokenwarden exports traces with otlp only (or none)", v)
	}
	for _, k := range []string{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT"} {
		if v, _ := env(k); strings.TrimSpace(v) != "" {
			return true, nil
		}
	}
	return false, nil
}

// Tracing is one process's tracer provider and propagator. A nil *Tracing traces
// nothing: its methods return what the caller would use without tracing.
type Tracing struct {
	provider   *sdktrace.TracerProvider
	propagator propagation.TextMapPropagator
}

// New builds the tracer provider when Enabled; nil, nil when not. The OTLP exporter
// reads its own OTEL_EXPORTER_OTLP_* settings (endpoint, headers, TLS, timeout,
// compression) from the process environment; OTEL_EXPORTER_OTLP_TRACES_PROTOCOL or
// OTEL_EXPORTER_OTLP_PROTOCOL picks http/protobuf (the default) or grpc. The sampler
// (OTEL_TRACES_SAMPLER, OTEL_TRACES_SAMPLER_ARG) and the batch processor
// (OTEL_BSP_*) read theirs in the SDK. service names the resource unless
// OTEL_SERVICE_NAME or OTEL_RESOURCE_ATTRIBUTES says otherwise.
func New(ctx context.Context, env Env, service, version string) (*Tracing, error) {
	on, err := Enabled(env)
	if err != nil || !on {
		return nil, err
	}
	protocol, _ := env("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
	if protocol == "" {
		protocol, _ = env("OTEL_EXPORTER_OTLP_PROTOCOL")
	}
	var exp sdktrace.SpanExporter
	switch strings.TrimSpace(protocol) {
	case "", "http/protobuf":
		exp, err = otlptracehttp.New(ctx)
	case "grpc":
		exp, err = otlptracegrpc.New(ctx)
	default:
		return nil, fmt.Errorf("OTEL_EXPORTER_OTLP_PROTOCOL=%q: want http/protobuf or grpc", protocol)
	}
	if err != nil {
		// The exporter's errors name settings, not header values.
		return nil, fmt.Errorf("OTLP trace exporter: %w", err)
	}
	// Later sources win: the environment over tokenwarden's defaults.
	res, err := resource.New(ctx,
		resource.WithAttributes(attribute.String("service.name", service), attribute.String("service.version", version)),
		resource.WithTelemetrySDK(),
		resource.WithFromEnv(),
	)
	if err != nil && !errors.Is(err, resource.ErrPartialResource) {
		_ = exp.Shutdown(ctx)
		return nil, fmt.Errorf("trace resource (OTEL_RESOURCE_ATTRIBUTES, OTEL_SERVICE_NAME): %w", err)
	}
	return &Tracing{
		provider:   sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp), sdktrace.WithResource(res)),
		propagator: propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{}),
	}, nil
}

// Shutdown flushes the spans still buffered and stops the exporter.
func (t *Tracing) Shutdown(ctx context.Context) error {
	if t == nil {
		return nil
	}
	if err := t.provider.Shutdown(ctx); err != nil {
		return fmt.Errorf("flush traces: %w", err)
	}
	return nil
}

// TracerProvider is the provider, or a no-op one when tracing is off.
func (t *Tracing) TracerProvider() trace.TracerProvider {
	if t == nil {
		return noop.NewTracerProvider()
	}
	return t.provider
}

// Interceptors are the Temporal client interceptors to add to client.Options (they
// apply to the workers made from that client too): none when tracing is off.
func (t *Tracing) Interceptors() ([]interceptor.ClientInterceptor, error) {
	if t == nil {
		return nil, nil
	}
	i, err := temporalotel.NewTracingInterceptor(temporalotel.TracerOptions{
		Tracer:            t.provider.Tracer("github.com/tokenwarden/tokenwarden"),
		TextMapPropagator: t.propagator,
	})
	if err != nil {
		return nil, fmt.Errorf("temporal tracing interceptor: %w", err)
	}
	return []interceptor.ClientInterceptor{i}, nil
}

// Transport wraps base (nil: http.DefaultTransport) with client spans and trace
// context headers; base itself when tracing is off.
//
// otelhttp records the request URL on the span. A provider URL may carry a secret in
// its query or user info (an access token as a query parameter, as some probe
// endpoints want it), and spans leave the process, so otelhttp only ever sees the URL
// without them: redact hands it a copy of the request without query and user info,
// and restore puts the real URL back before base sends it.
func (t *Tracing) Transport(base http.RoundTripper) http.RoundTripper {
	if base == nil {
		base = http.DefaultTransport
	}
	if t == nil {
		return base
	}
	inner := otelhttp.NewTransport(restore{base},
		otelhttp.WithTracerProvider(t.provider),
		otelhttp.WithPropagators(t.propagator),
		otelhttp.WithSpanNameFormatter(func(_ string, r *http.Request) string {
			return "HTTP " + r.Method + " " + r.URL.Host
		}),
	)
	return redact{inner}
}

type realURLKey struct{}

// redact passes next a shallow copy of the request whose URL has neither query nor
// user info, keeping the real URL in its context.
type redact struct{ next http.RoundTripper }

func (r redact) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.URL.RawQuery == "" && req.URL.User == nil && req.URL.Fragment == "" {
		return r.next.RoundTrip(req)
	}
	shown := *req.URL
	shown.RawQuery, shown.ForceQuery, shown.User, shown.Fragment, shown.RawFragment = "", false, nil, "", ""
	out := req.WithContext(context.WithValue(req.Context(), realURLKey{}, req.URL))
	out.URL = &shown
	return r.next.RoundTrip(out)
}

// restore sends the request with the URL redact kept aside.
type restore struct{ next http.RoundTripper }

func (r restore) RoundTrip(req *http.Request) (*http.Response, error) {
	if real, ok := req.Context().Value(realURLKey{}).(*url.URL); ok {
		req = req.Clone(req.Context())
		req.URL = real
	}
	return r.next.RoundTrip(req)
}
