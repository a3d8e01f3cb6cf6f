package feishutest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

const (
	testAppID     = "cli_fake_app"
	testAppSecret = "fake-app-secret-0123456789"
)

type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

func start(t *testing.T, opts Options) (*Server, string) {
	t.Helper()
	if opts.AppID == "" {
		opts.AppID, opts.AppSecret = testAppID, testAppSecret
	}
	s := New(opts)
	base := s.Start()
	t.Cleanup(s.Close)
	return s, base
}

type reply struct {
	status int
	body   map[string]any
	err    error
}

func (r reply) code() int {
	if n, ok := r.body["code"].(float64); ok {
		return int(n)
	}
	return -1
}

func (r reply) str(k string) string { s, _ := r.body[k].(string); return s }

func post(t *testing.T, ctx context.Context, url string, body any) reply {
	t.Helper()
	raw, _ := json.Marshal(body)
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(raw))
	req.Header.Set("Content-Type", "application/json; charset=utf-8")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return reply{err: err}
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	r := reply{status: resp.StatusCode, err: err}
	if json.Unmarshal(data, &r.body) != nil && r.err == nil {
		r.err = errors.New("not JSON: " + string(data))
	}
	return r
}

func refresh(t *testing.T, base, token string) reply {
	t.Helper()
	return post(t, context.Background(), base+UserTokenPath, map[string]string{
		"grant_type": "refresh_token", "client_id": testAppID, "client_secret": testAppSecret, "refresh_token": token,
	})
}

func mint(t *testing.T, base, secret string) reply {
	t.Helper()
	return post(t, context.Background(), base+TenantTokenPath, map[string]string{"app_id": testAppID, "app_secret": secret})
}

func TestUserRotationAndReuse(t *testing.T) {
	s, base := start(t, Options{UserAccessLifetime: 4 * time.Second})
	rt0 := s.Seed("alice")
	r1 := refresh(t, base, rt0)
	if r1.status != 200 || r1.code() != 0 || r1.str("token_type") != "Bearer" || r1.body["expires_in"] != 4.0 ||
		r1.body["refresh_token_expires_in"] != float64(7*24*3600) {
		t.Fatalf("first refresh: %+v", r1)
	}
	rt1 := r1.str("refresh_token")
	if latest, ok := s.Latest("alice"); !ok || latest != rt1 || !s.ValidUserAccessToken(r1.str("access_token")) {
		t.Fatalf("Latest = %q %v", latest, ok)
	}
	// The seed report: presenting the spent token again gets its answer, word for word.
	raw := refreshRaw(t, base, rt0)
	const seedAnswer = `{"error":"invalid_grant","error_description":"The refresh token has been revoked. Please note that a refresh token can only be used once.","code":20064}`
	if raw.status != http.StatusBadRequest || strings.TrimSpace(raw.body) != seedAnswer {
		t.Fatalf("reuse: HTTP %d %s, want HTTP 400 %s", raw.status, raw.body, seedAnswer)
	}
	if s.ReuseDetections() != 1 || s.MaxPresentations() != 2 || s.MaxProcessed() != 2 || s.Revoked("alice") {
		t.Fatalf("counters after reuse: reuse %d maxPres %d maxProc %d revoked %v", s.ReuseDetections(), s.MaxPresentations(), s.MaxProcessed(), s.Revoked("alice"))
	}
	// Without RevokeOnReuse the live successor still works.
	if r := refresh(t, base, rt1); r.code() != 0 {
		t.Fatalf("successor after reuse: %+v", r)
	}
	if s.Refreshes() != 2 || s.Presentations(rt1) != 1 || s.Processed(rt1) != 1 {
		t.Fatalf("refreshes %d", s.Refreshes())
	}
	if r := refresh(t, base, "ur-unknown"); r.code() != CodeRefreshTokenInvalid {
		t.Fatalf("unknown: %+v", r)
	}
}

// refreshRaw is refresh with the body as sent, for tests of the exact wire shape.
func refreshRaw(t *testing.T, base, token string) (r struct {
	status int
	body   string
}) {
	t.Helper()
	raw, _ := json.Marshal(map[string]string{
		"grant_type": "refresh_token", "client_id": testAppID, "client_secret": testAppSecret, "refresh_token": token,
	})
	resp, err := http.Post(base+UserTokenPath, "application/json", bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	r.status, r.body = resp.StatusCode, string(data)
	return r
}

// TestReuseCodeAlreadyUsed: the second answer Feishu has for a reused refresh token.
// Everything but the code and its description is as for 20064: the reuse is counted
// and, with RevokeOnReuse, the family revoked (whose tokens then answer 20064).
func TestReuseCodeAlreadyUsed(t *testing.T) {
	s, base := start(t, Options{ReuseCode: CodeRefreshTokenUsed, RevokeOnReuse: true})
	rt0 := s.Seed("frank")
	rt1 := refresh(t, base, rt0).str("refresh_token")
	r := refresh(t, base, rt0)
	if r.status != http.StatusBadRequest || r.code() != CodeRefreshTokenUsed || r.str("error") != "invalid_grant" ||
		!strings.Contains(r.str("error_description"), "has been used") {
		t.Fatalf("reuse with ReuseCode 20073: %+v", r)
	}
	if s.ReuseDetections() != 1 || !s.Revoked("frank") {
		t.Fatalf("reuse %d revoked %v", s.ReuseDetections(), s.Revoked("frank"))
	}
	if r := refresh(t, base, rt1); r.code() != CodeRefreshTokenRevoked {
		t.Fatalf("successor of a reused token: %+v", r)
	}
	defer func() {
		if recover() == nil {
			t.Fatal("New accepted ReuseCode 20026")
		}
	}()
	New(Options{AppID: testAppID, AppSecret: testAppSecret, ReuseCode: CodeRefreshTokenInvalid})
}

func TestUserRevokeOnReuseAndRevocation(t *testing.T) {
	s, base := start(t, Options{RevokeOnReuse: true})
	rt0 := s.Seed("bob")
	rt1 := refresh(t, base, rt0).str("refresh_token")
	refresh(t, base, rt0)
	if !s.Revoked("bob") {
		t.Fatal("family not revoked on reuse")
	}
	if r := refresh(t, base, rt1); r.code() != CodeRefreshTokenRevoked {
		t.Fatalf("successor of a reused token: %+v", r)
	}
	rt := s.Seed("carol")
	s.RevokeFamily("carol")
	if r := refresh(t, base, rt); r.code() != CodeRefreshTokenRevoked {
		t.Fatalf("revoked: %+v", r)
	}
	if _, ok := s.Latest("carol"); ok {
		t.Fatal("Latest of a revoked family")
	}
}

func TestUserExpiryAndClientChecks(t *testing.T) {
	clk := &fakeClock{now: time.Date(2026, 1, 19, 0, 0, 0, 0, time.UTC)}
	s, base := start(t, Options{RefreshLifetime: time.Hour, Now: clk.Now})
	rt := s.Seed("dave")
	clk.Advance(time.Hour)
	if r := refresh(t, base, rt); r.code() != CodeRefreshTokenExpired {
		t.Fatalf("expired: %+v", r)
	}
	rt = s.Seed("erin")
	r := post(t, context.Background(), base+UserTokenPath, map[string]string{
		"grant_type": "refresh_token", "client_id": testAppID, "client_secret": "wrong", "refresh_token": rt})
	if r.code() != CodeInvalidClient || s.Processed(rt) != 0 || s.Presentations(rt) != 1 {
		t.Fatalf("wrong secret: %+v processed %d", r, s.Processed(rt))
	}
	r = post(t, context.Background(), base+UserTokenPath, map[string]string{
		"grant_type": "password", "client_id": testAppID, "client_secret": testAppSecret, "refresh_token": rt})
	if r.code() != CodeInvalidRequest || r.str("error") != "unsupported_grant_type" {
		t.Fatalf("grant type: %+v", r)
	}
	// Form-encoded bodies are not Feishu's v2 protocol.
	resp, err := http.Post(base+UserTokenPath, "application/x-www-form-urlencoded", bytes.NewBufferString("grant_type=refresh_token&refresh_token="+rt))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 400 || s.Processed(rt) != 0 {
		t.Fatalf("form body: %d", resp.StatusCode)
	}
	if latest, _ := s.Latest("erin"); latest != rt {
		t.Fatal("a rejected request consumed the token")
	}
}

func TestTenantThirtyMinuteRule(t *testing.T) {
	clk := &fakeClock{now: time.Date(2026, 1, 19, 0, 0, 0, 0, time.UTC)}
	s, base := start(t, Options{Now: clk.Now})
	r1 := mint(t, base, testAppSecret)
	tok := r1.str("tenant_access_token")
	if r1.code() != 0 || r1.str("msg") != "ok" || r1.body["expire"] != 7200.0 || tok == "" {
		t.Fatalf("first mint: %+v", r1)
	}
	// 30 minutes and 1 second left: the same token, with the remaining lifetime.
	clk.Advance(89*time.Minute + 59*time.Second)
	r := mint(t, base, testAppSecret)
	if r.str("tenant_access_token") != tok || r.body["expire"] != 1801.0 {
		t.Fatalf("outside the window: %+v", r)
	}
	// Exactly 30 minutes left still counts as "30 minutes or more".
	clk.Advance(time.Second)
	if r := mint(t, base, testAppSecret); r.str("tenant_access_token") != tok || r.body["expire"] != 1800.0 {
		t.Fatalf("at the line: %+v", r)
	}
	// Inside the window: a new token; the old one stays valid until it expires.
	clk.Advance(time.Second)
	r = mint(t, base, testAppSecret)
	if r.str("tenant_access_token") == tok || r.body["expire"] != 7200.0 {
		t.Fatalf("inside the window: %+v", r)
	}
	if !s.ValidTenantToken(tok) || s.TenantMints() != 2 || s.TenantReissues() != 2 || s.CurrentTenantToken() != r.str("tenant_access_token") {
		t.Fatalf("mints %d reissues %d", s.TenantMints(), s.TenantReissues())
	}
	clk.Advance(30 * time.Minute)
	if s.ValidTenantToken(tok) {
		t.Fatal("old tenant token valid after its expiry")
	}
	if r := mint(t, base, "wrong"); r.status != 400 || r.code() != CodeAppSecretInvalid {
		t.Fatalf("wrong secret: %+v", r)
	}
	if r := post(t, context.Background(), base+TenantTokenPath, map[string]string{"app_id": testAppID}); r.code() != CodeInvalidParam {
		t.Fatalf("missing secret: %+v", r)
	}
	if s.Requests(TenantTokenPath) != 6 || s.Requests(UserTokenPath) != 0 {
		t.Fatalf("requests %d/%d", s.Requests(TenantTokenPath), s.Requests(UserTokenPath))
	}
}

func TestFaults(t *testing.T) {
	s, base := start(t, Options{})

	// Before the grant: nothing consumed, a retry with the same token is fine.
	rt := s.Seed("f")
	s.InjectFault(Fault{Kind: FaultStatus, Status: 502, Count: 1, Path: UserTokenPath})
	if r := refresh(t, base, rt); r.status != 502 {
		t.Fatalf("status fault: %+v", r)
	}
	s.InjectFault(Fault{Kind: FaultErrorCode, Count: 1, RetryAfter: 2 * time.Second})
	if r := refresh(t, base, rt); r.status != 200 || r.code() != CodeRateLimited {
		t.Fatalf("error-code fault: %+v", r)
	}
	if s.Processed(rt) != 0 || s.Presentations(rt) != 2 {
		t.Fatalf("before-faults processed %d", s.Processed(rt))
	}
	if r := refresh(t, base, rt); r.code() != 0 {
		t.Fatalf("retry after before-faults: %+v", r)
	}

	// After the grant: consumed, but the client never sees the successor.
	rt, _ = s.Latest("f")
	s.InjectFault(Fault{Kind: FaultMalformedJSON, Phase: AfterGrant, Count: 1})
	if r := refresh(t, base, rt); r.err == nil {
		t.Fatalf("malformed fault answered JSON: %+v", r)
	}
	if latest, _ := s.Latest("f"); latest == rt || s.Processed(rt) != 1 {
		t.Fatal("after-fault did not consume the token")
	}

	// Close the connection; hang until the client gives up.
	rt, _ = s.Latest("f")
	s.InjectFault(Fault{Kind: FaultCloseConnection, Count: 1})
	if r := refresh(t, base, rt); r.err == nil {
		t.Fatalf("close fault: %+v", r)
	}
	s.InjectFault(Fault{Kind: FaultHang, Count: 1, Path: TenantTokenPath})
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if r := post(t, ctx, base+TenantTokenPath, map[string]string{"app_id": testAppID, "app_secret": testAppSecret}); r.err == nil {
		t.Fatalf("hang fault: %+v", r)
	}
	deadline := time.Now().Add(5 * time.Second)
	for s.InFlight() != 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if s.TenantMints() != 0 || s.PendingFaults() != 0 {
		t.Fatalf("hang minted %d, pending %d", s.TenantMints(), s.PendingFaults())
	}
	if r := refresh(t, base, rt); r.code() != 0 {
		t.Fatalf("after close fault the token should be unconsumed: %+v", r)
	}

	// Latency: answers normally after the delay.
	s.InjectFault(Fault{Kind: FaultLatency, Delay: 50 * time.Millisecond, Count: 1})
	started := time.Now()
	if r := mint(t, base, testAppSecret); r.code() != 0 || time.Since(started) < 50*time.Millisecond {
		t.Fatalf("latency fault: %+v", r)
	}
	if s.MaxProcessed() != 1 {
		t.Fatalf("MaxProcessed %d, want 1", s.MaxProcessed())
	}
}
