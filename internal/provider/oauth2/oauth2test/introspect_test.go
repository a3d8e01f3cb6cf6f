package oauth2test

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/tokenwarden/tokenwarden/internal/testlog"
)

// ask introspects token with Basic client authentication.
func ask(t *testing.T, s *Server, token string) reply {
	t.Helper()
	r, err := send(context.Background(), s.IntrospectionURL(), introspectForm(token), true)
	if err != nil {
		t.Fatalf("POST %s: %v", s.IntrospectionURL(), err)
	}
	return r
}

func introspectForm(token string) url.Values {
	return url.Values{"token": {token}, "token_type_hint": {"refresh_token"}}
}

// wantActive checks an introspection answer; an inactive one must say nothing else
// (RFC 7662 section 2.2 advises against leaking details about dead tokens).
func wantActive(t *testing.T, r reply, want bool) {
	t.Helper()
	active, ok := r.body["active"].(bool)
	if r.status != http.StatusOK || !ok || active != want {
		t.Fatalf("got %d %s, want active=%v", r.status, r.raw, want)
	}
	if !want && len(r.body) != 1 {
		t.Fatalf("inactive answer carries more than active: %s", r.raw)
	}
	if r.header.Get("Cache-Control") != "no-store" {
		t.Fatalf("introspection answer cacheable: %v", r.header)
	}
}

func TestURLHelpers(t *testing.T) {
	s := New(Options{})
	if s.URL() != "" || s.IntrospectionURL() != "" {
		t.Fatal("URLs before Start")
	}
	tokenURL := s.Start()
	t.Cleanup(s.Close)
	if tokenURL != s.URL()+TokenPath || s.IntrospectionURL() != s.URL()+IntrospectionPath || !strings.HasPrefix(s.URL(), "http://127.0.0.1:") {
		t.Fatalf("token %q base %q introspection %q", tokenURL, s.URL(), s.IntrospectionURL())
	}
}

func TestIntrospectionFollowsTheRefreshTokenLifecycle(t *testing.T) {
	clk := newClock()
	s, u := startServer(t, Options{AccessLifetime: 10 * time.Minute, RefreshLifetime: time.Hour, Now: clk.Now})
	rt0 := s.Seed("fam")

	r := ask(t, s, rt0)
	wantActive(t, r, true)
	if r.str("token_type") != "refresh_token" || r.str("client_id") != testClientID || r.body["exp"] != float64(clk.Now().Add(time.Hour).Unix()) {
		t.Fatalf("active answer: %s", r.raw)
	}

	// Asking, however often, spends nothing: the token still refreshes afterwards.
	for range 3 {
		wantActive(t, ask(t, s, rt0), true)
	}
	clk.Advance(time.Minute)
	rr := post(t, u, rt0)
	if rr.status != http.StatusOK {
		t.Fatalf("refresh after introspection: %d %s", rr.status, rr.raw)
	}
	rt1, at1 := rr.str("refresh_token"), rr.str("access_token")

	// The used token is dead, and asking about it is not reuse.
	for range 3 {
		wantActive(t, ask(t, s, rt0), false)
	}
	if s.ReuseDetections() != 0 || s.Revoked("fam") {
		t.Fatal("introspecting a used token triggered reuse detection")
	}
	r = ask(t, s, rt1)
	wantActive(t, r, true)
	if r.body["exp"] != float64(clk.Now().Add(time.Hour).Unix()) {
		t.Fatalf("successor exp: %s", r.raw)
	}
	r = ask(t, s, at1)
	wantActive(t, r, true)
	if r.str("token_type") != "Bearer" || r.body["exp"] != float64(clk.Now().Add(10*time.Minute).Unix()) {
		t.Fatalf("access token answer: %s", r.raw)
	}
	wantActive(t, ask(t, s, "rt_unknown"), false)

	if s.Introspections() != 10 || s.Requests() != 1 || s.TotalPresentations() != 1 ||
		s.Presentations(rt0) != 1 || s.Processed(rt0) != 1 || s.Presentations(rt1) != 0 || s.Processed(rt1) != 0 {
		t.Fatalf("counters: introspections=%d requests=%d total=%d rt0=%d/%d rt1=%d/%d", s.Introspections(), s.Requests(),
			s.TotalPresentations(), s.Presentations(rt0), s.Processed(rt0), s.Presentations(rt1), s.Processed(rt1))
	}

	// Expiry: the access token first, then the refresh token.
	clk.Advance(10 * time.Minute)
	wantActive(t, ask(t, s, at1), false)
	wantActive(t, ask(t, s, rt1), true)
	clk.Advance(time.Hour)
	wantActive(t, ask(t, s, rt1), false)
}

func TestIntrospectionAfterRevocation(t *testing.T) {
	s, u := startServer(t, Options{})
	rt0 := s.Seed("fam")
	r := post(t, u, rt0)
	rt1, at1 := r.str("refresh_token"), r.str("access_token")
	post(t, u, rt0) // reuse: the family dies
	for _, tok := range []string{rt0, rt1, at1} {
		wantActive(t, ask(t, s, tok), false)
	}

	// A reseed is a new generation: only its token is live.
	rtNew := s.Seed("fam")
	wantActive(t, ask(t, s, rtNew), true)
	wantActive(t, ask(t, s, rt1), false)

	s.RevokeFamily("fam")
	wantActive(t, ask(t, s, rtNew), false)
}

func TestIntrospectionWithoutRotation(t *testing.T) {
	s, u := startServer(t, Options{NoRotation: true})
	rt := s.Seed("fam")
	for range 2 {
		if r := post(t, u, rt); r.status != http.StatusOK {
			t.Fatalf("%d %s", r.status, r.raw)
		}
		wantActive(t, ask(t, s, rt), true)
	}
	r := ask(t, s, rt)
	if _, ok := r.body["exp"]; ok {
		t.Fatalf("exp without a refresh lifetime: %s", r.raw)
	}
}

func TestIntrospectionClientAuthenticationAndBadRequests(t *testing.T) {
	s, _ := startServer(t, Options{})
	rt := s.Seed("fam")
	iu := s.IntrospectionURL()
	ctx := context.Background()
	withClient := func(id, secret string) url.Values {
		f := introspectForm(rt)
		f.Set("client_id", id)
		f.Set("client_secret", secret)
		return f
	}

	r, _ := send(ctx, iu, introspectForm(rt), false)
	wantError(t, r, http.StatusUnauthorized, "invalid_client")
	r, _ = send(ctx, iu, withClient(testClientID, "wrong"), false)
	wantError(t, r, http.StatusUnauthorized, "invalid_client")
	r, _ = send(ctx, iu, withClient(testClientID, testClientSecret), true)
	wantError(t, r, http.StatusBadRequest, "invalid_request")
	r, _ = send(ctx, iu, withClient(testClientID, testClientSecret), false)
	wantActive(t, r, true)
	wantActive(t, ask(t, s, rt), true) // Basic

	r, _ = send(ctx, iu, url.Values{"token_type_hint": {"refresh_token"}}, true)
	wantError(t, r, http.StatusBadRequest, "invalid_request")
	resp, err := http.Post(iu, "application/json", strings.NewReader(`{"token":"x"}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("JSON body: %d", resp.StatusCode)
	}
	resp, err = http.Get(iu)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Fatalf("GET: %d", resp.StatusCode)
	}
	// None of this touched the token endpoint's books.
	if s.Requests() != 0 || s.Presentations(rt) != 0 || s.Processed(rt) != 0 || s.Introspections() != 7 {
		t.Fatalf("requests=%d presentations=%d processed=%d introspections=%d", s.Requests(), s.Presentations(rt), s.Processed(rt), s.Introspections())
	}

	open := New(Options{})
	open.Start()
	t.Cleanup(open.Close)
	r, _ = send(ctx, open.IntrospectionURL(), introspectForm(open.Seed("fam")), false)
	wantActive(t, r, true)
	if _, ok := r.body["client_id"]; ok {
		t.Fatalf("client_id without client authentication: %s", r.raw)
	}
}

func TestFaultPathsAreSeparate(t *testing.T) {
	s, u := startServer(t, Options{})
	rt := s.Seed("fam")

	// A sticky introspection fault neither strikes nor blocks the token endpoint.
	s.InjectFault(Fault{Kind: FaultStatus, Status: http.StatusBadGateway, Path: IntrospectionPath})
	s.InjectFault(Fault{Kind: FaultRateLimit, Count: 1})
	if r := ask(t, s, rt); r.status != http.StatusBadGateway {
		t.Fatalf("introspection fault: %d %s", r.status, r.raw)
	}
	if r := post(t, u, rt); r.status != http.StatusTooManyRequests {
		t.Fatalf("token fault queued behind a sticky introspection fault: %d %s", r.status, r.raw)
	}
	r := post(t, u, rt)
	if r.status != http.StatusOK {
		t.Fatalf("token endpoint under an introspection fault: %d %s", r.status, r.raw)
	}
	rt = r.str("refresh_token")
	if r := ask(t, s, rt); r.status != http.StatusBadGateway {
		t.Fatalf("sticky introspection fault went away: %d", r.status)
	}
	s.ClearFaults()

	// A token fault (Path "" or TokenPath) leaves introspection alone.
	s.InjectFault(Fault{Kind: FaultStatus, Count: 1})
	s.InjectFault(Fault{Kind: FaultStatus, Status: 500, Count: 1, Path: TokenPath})
	wantActive(t, ask(t, s, rt), true)
	if s.PendingFaults() != 2 {
		t.Fatal("introspection took a token-endpoint fault")
	}
	for _, want := range []int{503, 500, 200} {
		if r := post(t, u, rt); r.status != want {
			t.Fatalf("got %d want %d", r.status, want)
		}
	}
}

func TestIntrospectionFaultKinds(t *testing.T) {
	s, _ := startServer(t, Options{})
	rt := s.Seed("fam")

	s.InjectFault(Fault{Kind: FaultMissingAccessToken, Path: IntrospectionPath, Count: 1})
	r := ask(t, s, rt)
	if _, ok := r.body["active"]; r.status != http.StatusOK || ok || r.body == nil {
		t.Fatalf("missing active: %d %s", r.status, r.raw)
	}

	s.InjectFault(Fault{Kind: FaultMalformedJSON, Path: IntrospectionPath, Count: 1})
	if r := ask(t, s, rt); r.status != http.StatusOK || r.body != nil {
		t.Fatalf("malformed: %d %s", r.status, r.raw)
	}

	s.InjectFault(Fault{Kind: FaultHang, Path: IntrospectionPath, Count: 1})
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if _, err := send(ctx, s.IntrospectionURL(), introspectForm(rt), true); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("hang: %v", err)
	}

	// AfterGrant latency answers with the state at arrival: the token was live then,
	// even though a refresh consumed it during the wait.
	s.InjectFault(Fault{Kind: FaultLatency, Phase: AfterGrant, Delay: 200 * time.Millisecond, Path: IntrospectionPath, Count: 1})
	answered := make(chan reply, 1)
	go func() {
		r, _ := send(context.Background(), s.IntrospectionURL(), introspectForm(rt), true)
		answered <- r
	}()
	waitFor(t, func() bool { return s.Introspections() == 4 })
	time.Sleep(50 * time.Millisecond) // let the lookup happen before the refresh
	if r := post(t, strings.TrimSuffix(s.IntrospectionURL(), IntrospectionPath)+TokenPath, rt); r.status != http.StatusOK {
		t.Fatalf("refresh: %d %s", r.status, r.raw)
	}
	wantActive(t, <-answered, true)
	wantActive(t, ask(t, s, rt), false)
}

func TestInjectFaultRejectsUnknownPath(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Fatal("no panic for an unknown path")
		}
	}()
	New(Options{}).InjectFault(Fault{Kind: FaultStatus, Path: "/revoke"})
}

func TestIntrospectionLogNeverContainsTokens(t *testing.T) {
	var buf testlog.Buffer
	s, _ := startServer(t, Options{Logger: slog.New(slog.NewTextHandler(&buf, nil))})
	rt := s.Seed("fam")
	ask(t, s, rt)
	log := buf.String()
	if strings.Contains(log, rt) || strings.Contains(log, testClientSecret) {
		t.Fatalf("log contains a secret: %s", log)
	}
	if !strings.Contains(log, "introspection request") || !strings.Contains(log, Fingerprint(rt)) || !strings.Contains(log, "outcome=active") {
		t.Fatalf("log lacks message, fingerprint or outcome: %s", log)
	}
}

// SetAccessLifetime applies to the tokens issued after it, both in expires_in and in
// what introspection says about the new access token; earlier tokens keep their expiry.
func TestSetAccessLifetime(t *testing.T) {
	clk := newClock()
	s, u := startServer(t, Options{AccessLifetime: 10 * time.Minute, Now: clk.Now})
	r := post(t, u, s.Seed("fam"))
	if r.status != http.StatusOK || r.body["expires_in"] != float64(600) {
		t.Fatalf("before: %d %s", r.status, r.raw)
	}
	at1 := r.str("access_token")

	s.SetAccessLifetime(5*time.Minute + 28*time.Second)
	r = post(t, u, r.str("refresh_token"))
	if r.status != http.StatusOK || r.body["expires_in"] != float64(328) {
		t.Fatalf("after: %d %s, want expires_in 328", r.status, r.raw)
	}
	if a := ask(t, s, r.str("access_token")); a.body["exp"] != float64(clk.Now().Add(328*time.Second).Unix()) {
		t.Fatalf("new access token introspects as %s, want exp in 328s", a.raw)
	}
	if a := ask(t, s, at1); a.body["exp"] != float64(clk.Now().Add(10*time.Minute).Unix()) {
		t.Fatalf("earlier access token introspects as %s, want its 10 minutes", a.raw)
	}
}
