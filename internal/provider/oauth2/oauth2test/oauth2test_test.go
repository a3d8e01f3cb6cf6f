package oauth2test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tokenwarden/tokenwarden/internal/testlog"
)

// clock is a manually advanced time source.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func newClock() *clock { return &clock{now: time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

const (
	testClientID     = "client-1"
	testClientSecret = "s3cr3t/+ &=x" // needs escaping in Basic and in forms
)

func startServer(t *testing.T, opts Options) (*Server, string) {
	t.Helper()
	if opts.ClientID == "" {
		opts.ClientID, opts.ClientSecret = testClientID, testClientSecret
	}
	s := New(opts)
	u := s.Start()
	t.Cleanup(s.Close)
	return s, u
}

type reply struct {
	status int
	header http.Header
	body   map[string]any
	raw    string
}

func (r reply) str(key string) string {
	v, _ := r.body[key].(string)
	return v
}

// post sends a refresh request with Basic client auth.
func post(t *testing.T, tokenURL, refreshToken string) reply {
	t.Helper()
	r, err := send(context.Background(), tokenURL, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {refreshToken}}, true)
	if err != nil {
		t.Fatalf("POST %s: %v", tokenURL, err)
	}
	return r
}

func send(ctx context.Context, tokenURL string, form url.Values, basic bool) (reply, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, tokenURL, strings.NewReader(form.Encode()))
	if err != nil {
		return reply{}, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if basic {
		req.SetBasicAuth(url.QueryEscape(testClientID), url.QueryEscape(testClientSecret))
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return reply{}, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return reply{}, err
	}
	r := reply{status: resp.StatusCode, header: resp.Header, raw: string(raw)}
	_ = json.Unmarshal(raw, &r.body)
	return r, nil
}

func wantError(t *testing.T, r reply, status int, code string) {
	t.Helper()
	if r.status != status || r.str("error") != code {
		t.Fatalf("got %d %s, want %d error %q", r.status, r.raw, status, code)
	}
}

func TestRotationMintsSuccessorAndConsumesPresentedToken(t *testing.T) {
	clk := newClock()
	s, u := startServer(t, Options{AccessLifetime: 10 * time.Minute, RefreshLifetime: 24 * time.Hour, Now: clk.Now})
	rt0 := s.Seed("fam")
	if !strings.HasPrefix(rt0, RefreshTokenPrefix) {
		t.Fatalf("seed %q lacks prefix", rt0)
	}

	r := post(t, u, rt0)
	if r.status != http.StatusOK {
		t.Fatalf("refresh: %d %s", r.status, r.raw)
	}
	rt1, at1 := r.str("refresh_token"), r.str("access_token")
	if !strings.HasPrefix(rt1, RefreshTokenPrefix) || rt1 == rt0 || !strings.HasPrefix(at1, AccessTokenPrefix) {
		t.Fatalf("bad tokens in %s", r.raw)
	}
	if r.str("token_type") != "Bearer" || r.body["expires_in"] != float64(600) || r.body["refresh_token_expires_in"] != float64(86400) {
		t.Fatalf("bad response fields: %s", r.raw)
	}
	if r.header.Get("Cache-Control") != "no-store" {
		t.Fatalf("Cache-Control = %q", r.header.Get("Cache-Control"))
	}
	if got, ok := s.Latest("fam"); !ok || got != rt1 {
		t.Fatalf("Latest = %q, %v; want successor", got, ok)
	}
	if !s.ValidAccessToken(at1) {
		t.Fatal("new access token not valid")
	}

	r = post(t, u, rt1)
	if r.status != http.StatusOK {
		t.Fatalf("second refresh: %d %s", r.status, r.raw)
	}
	if s.Refreshes() != 2 || s.MaxPresentations() != 1 || s.TotalPresentations() != 2 || s.ReuseDetections() != 0 || s.Requests() != 2 {
		t.Fatalf("counters: refreshes=%d max=%d total=%d reuse=%d requests=%d",
			s.Refreshes(), s.MaxPresentations(), s.TotalPresentations(), s.ReuseDetections(), s.Requests())
	}
	if !s.ValidAccessToken(at1) {
		t.Fatal("earlier access token should stay valid until it expires")
	}
}

func TestReuseRevokesWholeFamily(t *testing.T) {
	s, u := startServer(t, Options{})
	rt0 := s.Seed("fam")
	other := s.Seed("other")
	r := post(t, u, rt0)
	rt1, at1 := r.str("refresh_token"), r.str("access_token")

	wantError(t, post(t, u, rt0), http.StatusBadRequest, "invalid_grant")
	if s.ReuseDetections() != 1 || !s.Revoked("fam") {
		t.Fatalf("reuse=%d revoked=%v", s.ReuseDetections(), s.Revoked("fam"))
	}
	if _, ok := s.Latest("fam"); ok {
		t.Fatal("Latest still reports a live token after revocation")
	}
	if s.ValidAccessToken(at1) {
		t.Fatal("access token survived family revocation")
	}
	// The live successor dies with the family; presenting it is not itself a reuse.
	wantError(t, post(t, u, rt1), http.StatusBadRequest, "invalid_grant")
	if s.ReuseDetections() != 1 {
		t.Fatalf("reuse=%d after presenting revoked successor", s.ReuseDetections())
	}
	if s.Presentations(rt0) != 2 || s.Presentations(rt1) != 1 || s.MaxPresentations() != 2 {
		t.Fatalf("presentations rt0=%d rt1=%d max=%d", s.Presentations(rt0), s.Presentations(rt1), s.MaxPresentations())
	}
	// Other families are untouched.
	if r := post(t, u, other); r.status != http.StatusOK || s.Revoked("other") {
		t.Fatalf("other family: %d %s", r.status, r.raw)
	}
	// Reseeding is a re-authorization: the family lives again, old tokens stay dead.
	rtNew := s.Seed("fam")
	if s.Revoked("fam") {
		t.Fatal("family still revoked after reseed")
	}
	wantError(t, post(t, u, rt1), http.StatusBadRequest, "invalid_grant")
	if r := post(t, u, rtNew); r.status != http.StatusOK {
		t.Fatalf("reseeded token: %d %s", r.status, r.raw)
	}
}

func TestReseedRevokesPreviousGeneration(t *testing.T) {
	s, u := startServer(t, Options{})
	old := s.Seed("fam")
	_ = s.Seed("fam")
	wantError(t, post(t, u, old), http.StatusBadRequest, "invalid_grant")
	if s.ReuseDetections() != 0 {
		t.Fatal("presenting a revoked, unused token counted as reuse")
	}
}

func TestRevokeFamily(t *testing.T) {
	s, u := startServer(t, Options{})
	rt := s.Seed("fam")
	if !s.RevokeFamily("fam") || s.RevokeFamily("nope") {
		t.Fatal("RevokeFamily result wrong")
	}
	wantError(t, post(t, u, rt), http.StatusBadRequest, "invalid_grant")
	if s.ReuseDetections() != 0 || !s.Revoked("fam") {
		t.Fatal("RevokeFamily state wrong")
	}
}

func TestUnknownTokenAndBadRequests(t *testing.T) {
	s, u := startServer(t, Options{})
	wantError(t, post(t, u, "rt_nope"), http.StatusBadRequest, "invalid_grant")

	r, err := send(context.Background(), u, url.Values{"grant_type": {"password"}, "username": {"x"}}, true)
	if err != nil {
		t.Fatal(err)
	}
	wantError(t, r, http.StatusBadRequest, "unsupported_grant_type")

	r, _ = send(context.Background(), u, url.Values{"grant_type": {"refresh_token"}}, true)
	wantError(t, r, http.StatusBadRequest, "invalid_request")
	r, _ = send(context.Background(), u, url.Values{"refresh_token": {"rt_x"}}, true)
	wantError(t, r, http.StatusBadRequest, "invalid_request")

	resp, err := http.Post(u, "application/json", strings.NewReader(`{"grant_type":"refresh_token"}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("JSON body: status %d", resp.StatusCode)
	}
	resp, err = http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Fatalf("GET: status %d", resp.StatusCode)
	}
	resp, err = http.Post(strings.TrimSuffix(u, "/token")+"/other", "application/x-www-form-urlencoded", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Fatalf("other path: status %d", resp.StatusCode)
	}
	if s.Refreshes() != 0 {
		t.Fatal("bad requests refreshed something")
	}
}

func TestRefreshTokenExpiry(t *testing.T) {
	clk := newClock()
	s, u := startServer(t, Options{AccessLifetime: time.Minute, RefreshLifetime: time.Hour, Now: clk.Now})
	rt0 := s.Seed("fam")
	clk.Advance(59 * time.Minute)
	r := post(t, u, rt0)
	if r.status != http.StatusOK {
		t.Fatalf("refresh before expiry: %d %s", r.status, r.raw)
	}
	rt1, at1 := r.str("refresh_token"), r.str("access_token")

	// The successor's lifetime counts from its own minting.
	clk.Advance(59 * time.Minute)
	if s.ValidAccessToken(rt1) {
		t.Fatal("a refresh token must not pass as an access token")
	}
	if s.ValidAccessToken(at1) {
		t.Fatal("access token valid after its lifetime")
	}
	if _, ok := s.Latest("fam"); !ok {
		t.Fatal("successor expired too early")
	}
	clk.Advance(time.Minute)
	if _, ok := s.Latest("fam"); ok {
		t.Fatal("Latest reports an expired token")
	}
	wantError(t, post(t, u, rt1), http.StatusBadRequest, "invalid_grant")
	if s.Revoked("fam") || s.ReuseDetections() != 0 {
		t.Fatal("expiry must not count as reuse or revoke")
	}
}

func TestNoExpiryWhenRefreshLifetimeZero(t *testing.T) {
	clk := newClock()
	s, u := startServer(t, Options{Now: clk.Now})
	rt := s.Seed("fam")
	clk.Advance(10 * 365 * 24 * time.Hour)
	r := post(t, u, rt)
	if r.status != http.StatusOK {
		t.Fatalf("%d %s", r.status, r.raw)
	}
	if _, ok := r.body["refresh_token_expires_in"]; ok {
		t.Fatalf("refresh_token_expires_in sent without a lifetime: %s", r.raw)
	}
	if r.body["expires_in"] != float64(DefaultAccessLifetime/time.Second) {
		t.Fatalf("default access lifetime not used: %s", r.raw)
	}
}

func TestNoRotationKeepsTokenValid(t *testing.T) {
	clk := newClock()
	s, u := startServer(t, Options{NoRotation: true, RefreshLifetime: time.Hour, Now: clk.Now})
	rt := s.Seed("fam")
	clk.Advance(15 * time.Minute)
	for i := range 3 {
		r := post(t, u, rt)
		if r.status != http.StatusOK {
			t.Fatalf("refresh %d: %d %s", i, r.status, r.raw)
		}
		if _, ok := r.body["refresh_token"]; ok {
			t.Fatalf("refresh_token sent without rotation: %s", r.raw)
		}
		if r.body["refresh_token_expires_in"] != float64(45*60) {
			t.Fatalf("remaining lifetime wrong: %s", r.raw)
		}
	}
	if got, ok := s.Latest("fam"); !ok || got != rt {
		t.Fatal("Latest changed without rotation")
	}
	if s.Presentations(rt) != 3 || s.ReuseDetections() != 0 || s.Refreshes() != 3 {
		t.Fatal("counters wrong without rotation")
	}
}

func TestClientAuthentication(t *testing.T) {
	s, u := startServer(t, Options{})
	rt := s.Seed("fam")
	form := func(extra url.Values) url.Values {
		v := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}}
		for k, vs := range extra {
			v[k] = vs
		}
		return v
	}
	ctx := context.Background()

	// Missing client.
	r, _ := send(ctx, u, form(nil), false)
	wantError(t, r, http.StatusUnauthorized, "invalid_client")
	if r.header.Get("WWW-Authenticate") != "" {
		t.Fatal("WWW-Authenticate without a Basic attempt")
	}
	// Wrong secret in the body.
	r, _ = send(ctx, u, form(url.Values{"client_id": {testClientID}, "client_secret": {"wrong"}}), false)
	wantError(t, r, http.StatusUnauthorized, "invalid_client")
	// Wrong client id in the body.
	r, _ = send(ctx, u, form(url.Values{"client_id": {"someone"}, "client_secret": {testClientSecret}}), false)
	wantError(t, r, http.StatusUnauthorized, "invalid_client")
	// Wrong Basic credentials: 401 with a challenge (RFC 6749 section 5.2).
	req, _ := http.NewRequest(http.MethodPost, u, strings.NewReader(form(nil).Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(testClientID, "wrong")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized || resp.Header.Get("WWW-Authenticate") == "" {
		t.Fatalf("bad Basic: %d, WWW-Authenticate %q", resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
	}
	// Both methods at once.
	r, _ = send(ctx, u, form(url.Values{"client_id": {testClientID}, "client_secret": {testClientSecret}}), true)
	wantError(t, r, http.StatusBadRequest, "invalid_request")
	if s.Refreshes() != 0 {
		t.Fatal("unauthenticated request refreshed")
	}
	if s.Presentations(rt) != 5 { // every request above carried the token
		t.Fatalf("presentations = %d", s.Presentations(rt))
	}

	// Body credentials work...
	r, _ = send(ctx, u, form(url.Values{"client_id": {testClientID}, "client_secret": {testClientSecret}}), false)
	if r.status != http.StatusOK {
		t.Fatalf("body auth: %d %s", r.status, r.raw)
	}
	// ...and so does Basic with form-urlencoded credentials.
	r = post(t, u, r.str("refresh_token"))
	if r.status != http.StatusOK {
		t.Fatalf("basic auth: %d %s", r.status, r.raw)
	}
}

func TestClientAuthenticationDisabled(t *testing.T) {
	s := New(Options{})
	u := s.Start()
	t.Cleanup(s.Close)
	rt := s.Seed("fam")
	r, err := send(context.Background(), u, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}}, false)
	if err != nil || r.status != http.StatusOK {
		t.Fatalf("%v %d %s", err, r.status, r.raw)
	}
}

func TestConcurrentPresentationsOfOneTokenDetectReuse(t *testing.T) {
	s, u := startServer(t, Options{})
	rt := s.Seed("fam")
	const n = 8
	var wg sync.WaitGroup
	statuses := make(chan int, n)
	for range n {
		wg.Go(func() {
			r, err := send(context.Background(), u, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}}, true)
			if err != nil {
				t.Error(err)
				return
			}
			statuses <- r.status
		})
	}
	wg.Wait()
	close(statuses)
	ok := 0
	for st := range statuses {
		if st == http.StatusOK {
			ok++
		}
	}
	if ok != 1 || s.ReuseDetections() != n-1 || !s.Revoked("fam") || s.Presentations(rt) != n {
		t.Fatalf("ok=%d reuse=%d revoked=%v presentations=%d", ok, s.ReuseDetections(), s.Revoked("fam"), s.Presentations(rt))
	}
}

func TestConcurrentFamiliesAreIndependent(t *testing.T) {
	s, u := startServer(t, Options{})
	const families, rounds = 6, 5
	var wg sync.WaitGroup
	for i := range families {
		name := string(rune('a' + i))
		rt := s.Seed(name)
		wg.Go(func() {
			for range rounds {
				r, err := send(context.Background(), u, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}}, true)
				if err != nil || r.status != http.StatusOK {
					t.Errorf("family %s: %v %d %s", name, err, r.status, r.raw)
					return
				}
				rt = r.str("refresh_token")
			}
		})
	}
	wg.Wait()
	if s.Refreshes() != families*rounds || s.MaxPresentations() != 1 || s.ReuseDetections() != 0 {
		t.Fatalf("refreshes=%d max=%d reuse=%d", s.Refreshes(), s.MaxPresentations(), s.ReuseDetections())
	}
	// Each family refreshed strictly in sequence, while families overlapped each other
	// (usually; the overall gauge is not asserted because scheduling may serialise them).
	for i := range families {
		if n := s.MaxConcurrentFor(string(rune('a' + i))); n != 1 {
			t.Fatalf("family %c: %d refreshes in flight at once", 'a'+i, n)
		}
	}
}

func TestLogNeverContainsTokens(t *testing.T) {
	var buf testlog.Buffer
	s, u := startServer(t, Options{Logger: slog.New(slog.NewTextHandler(&buf, nil))})
	rt0 := s.Seed("fam")
	r := post(t, u, rt0)
	post(t, u, rt0) // reuse
	log := buf.String()
	for _, tok := range []string{rt0, r.str("refresh_token"), r.str("access_token"), testClientSecret} {
		if strings.Contains(log, tok) {
			t.Fatalf("log contains a secret: %s", log)
		}
	}
	if !strings.Contains(log, Fingerprint(rt0)) || !strings.Contains(log, "reuse_detected") {
		t.Fatalf("log lacks fingerprint or outcome: %s", log)
	}
}

func TestFingerprint(t *testing.T) {
	a, b := Fingerprint("rt_abc"), Fingerprint("rt_abd")
	if a == b || !strings.HasPrefix(a, "rt_") || len(a) != len("rt_")+12 || Fingerprint("") != "-" {
		t.Fatalf("fingerprints %q %q", a, b)
	}
	if strings.Contains(Fingerprint("at_secretvalue"), "secretvalue") {
		t.Fatal("fingerprint leaks the token")
	}
}

func TestServeStopsOnContextAndReleasesHangs(t *testing.T) {
	s := New(Options{})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- s.Serve(ctx, ln) }()
	u := "http://" + ln.Addr().String() + "/token"
	rt := s.Seed("fam")
	if r := post(t, u, rt); r.status != http.StatusOK {
		t.Fatalf("%d %s", r.status, r.raw)
	}

	s.InjectFault(Fault{Kind: FaultHang})
	hung := make(chan error, 1)
	go func() {
		_, err := send(context.Background(), u, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {"rt_x"}}, false)
		hung <- err
	}()
	waitFor(t, func() bool { return s.Requests() == 2 })
	cancel()
	select {
	case err := <-served:
		if err != nil {
			t.Fatalf("Serve: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Serve did not return")
	}
	if err := <-hung; err == nil {
		t.Fatal("hung request got an answer")
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached")
		}
		time.Sleep(5 * time.Millisecond)
	}
}
