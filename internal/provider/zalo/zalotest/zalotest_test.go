package zalotest

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

const (
	testApp    = "1234567890"
	testSecret = "the-app-secret"
)

type result struct {
	status int
	body   map[string]any
	raw    string
}

// post sends one form to the fake and decodes the answer.
func post(t *testing.T, s *Server, path string, form url.Values, secret string) result {
	t.Helper()
	res, err := postCtx(context.Background(), s, path, form, secret, "application/x-www-form-urlencoded")
	if err != nil {
		t.Fatalf("POST %s: %v", path, err)
	}
	return res
}

func postCtx(ctx context.Context, s *Server, path string, form url.Values, secret, contentType string) (result, error) {
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, s.URL()+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", contentType)
	if secret != "" {
		req.Header.Set(SecretKeyHeader, secret)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return result{}, err
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	r := result{status: resp.StatusCode, raw: string(raw)}
	dec := json.NewDecoder(strings.NewReader(string(raw)))
	dec.UseNumber()
	_ = dec.Decode(&r.body)
	return r, nil
}

func refreshForm(rt string) url.Values {
	return url.Values{"app_id": {testApp}, "grant_type": {"refresh_token"}, "refresh_token": {rt}}
}

func start(t *testing.T, opts Options) *Server {
	t.Helper()
	if opts.AppID == "" {
		opts.AppID, opts.AppSecret = testApp, testSecret
	}
	s := New(opts)
	s.Start()
	t.Cleanup(s.Close)
	return s
}

func wantZaloError(t *testing.T, r result, code int) {
	t.Helper()
	if r.status != http.StatusOK {
		t.Errorf("status %d, want 200 (Zalo answers errors with 200)", r.status)
	}
	got, _ := r.body["error"].(json.Number)
	if got.String() != strconv.Itoa(code) {
		t.Fatalf("error %v, want %d (body %s)", r.body["error"], code, r.raw)
	}
	for _, k := range []string{"error_name", "error_description"} {
		if _, ok := r.body[k].(string); !ok {
			t.Errorf("error answer lacks %s: %s", k, r.raw)
		}
	}
	if _, ok := r.body["access_token"]; ok {
		t.Errorf("error answer carries access_token: %s", r.raw)
	}
}

func TestRotationRules(t *testing.T) {
	s := start(t, Options{})
	rt := s.SeedOA("fam")
	r := post(t, s, OATokenPath, refreshForm(rt), testSecret)
	if r.status != 200 || r.body["access_token"] == nil || r.body["refresh_token"] == nil {
		t.Fatalf("refresh failed: %d %s", r.status, r.raw)
	}
	if n, ok := r.body["expires_in"].(json.Number); !ok || n.String() != "90000" {
		t.Errorf("expires_in %v, want the number 90000", r.body["expires_in"])
	}
	if _, ok := r.body["refresh_token_expires_in"]; ok {
		t.Errorf("refresh_token_expires_in sent without SendRefreshTokenExpiresIn")
	}
	next := r.body["refresh_token"].(string)
	firstAccess := r.body["access_token"].(string)
	if latest, ok := s.Latest("fam"); !ok || latest != next {
		t.Errorf("Latest %q, want the new token", latest)
	}
	if !s.ValidAccessToken(firstAccess) {
		t.Errorf("new access token not valid")
	}

	// Reuse: -14014, counted, the family survives.
	wantZaloError(t, post(t, s, OATokenPath, refreshForm(rt), testSecret), ErrInvalidRefreshToken)
	if s.ReuseDetections() != 1 || s.Revoked("fam") {
		t.Errorf("reuse %d revoked %v, want 1 and false", s.ReuseDetections(), s.Revoked("fam"))
	}
	if s.Presentations(rt) != 2 || s.Processed(rt) != 2 || s.MaxPresentations() != 2 || s.MaxProcessed() != 2 {
		t.Errorf("presentations %d processed %d", s.Presentations(rt), s.Processed(rt))
	}

	// The successor still works, and retires the previous access token.
	r = post(t, s, OATokenPath, refreshForm(next), testSecret)
	if r.status != 200 || r.body["access_token"] == nil {
		t.Fatalf("successor refresh failed: %s", r.raw)
	}
	if s.ValidAccessToken(firstAccess) {
		t.Errorf("the previous access token still valid after a new one was minted")
	}
	if s.Refreshes() != 2 || s.Requests() != 3 || s.TotalPresentations() != 3 {
		t.Errorf("refreshes %d requests %d presentations %d", s.Refreshes(), s.Requests(), s.TotalPresentations())
	}

	// Unknown token, and an OA token on the user path.
	wantZaloError(t, post(t, s, OATokenPath, refreshForm("zrt_nope"), testSecret), ErrInvalidRefreshToken)
	latest, _ := s.Latest("fam")
	wantZaloError(t, post(t, s, UserTokenPath, refreshForm(latest), testSecret), ErrInvalidRefreshToken)
	if l2, ok := s.Latest("fam"); !ok || l2 != latest {
		t.Errorf("a wrong-path presentation changed the family")
	}
}

func TestRevokeOnReuse(t *testing.T) {
	s := start(t, Options{RevokeOnReuse: true})
	rt := s.SeedUser("u")
	r := post(t, s, UserTokenPath, refreshForm(rt), testSecret)
	next := r.body["refresh_token"].(string)
	wantZaloError(t, post(t, s, UserTokenPath, refreshForm(rt), testSecret), ErrInvalidRefreshToken)
	if !s.Revoked("u") {
		t.Fatal("family not revoked")
	}
	wantZaloError(t, post(t, s, UserTokenPath, refreshForm(next), testSecret), ErrInvalidRefreshToken)
	if s.ValidAccessToken(r.body["access_token"].(string)) {
		t.Errorf("access token survived revocation")
	}
}

func TestRequestChecks(t *testing.T) {
	s := start(t, Options{})
	rt := s.SeedOA("fam")
	form := refreshForm(rt)

	wrongApp := refreshForm(rt)
	wrongApp.Set("app_id", "42")
	noGrant := refreshForm(rt)
	noGrant.Del("grant_type")
	wrongGrant := refreshForm(rt)
	wrongGrant.Set("grant_type", "client_credentials")

	wantZaloError(t, post(t, s, OATokenPath, wrongApp, testSecret), ErrInvalidAppID)
	wantZaloError(t, post(t, s, OATokenPath, form, ""), ErrInvalidSecretKey)
	wantZaloError(t, post(t, s, OATokenPath, form, "wrong"), ErrInvalidSecretKey)
	wantZaloError(t, post(t, s, OATokenPath, noGrant, testSecret), ErrInvalidGrantType)
	wantZaloError(t, post(t, s, OATokenPath, wrongGrant, testSecret), ErrInvalidGrantType)
	r, err := postCtx(context.Background(), s, OATokenPath, form, testSecret, "application/json")
	if err != nil {
		t.Fatal(err)
	}
	wantZaloError(t, r, ErrInvalidParameter)
	noToken := refreshForm("")
	wantZaloError(t, post(t, s, OATokenPath, noToken, testSecret), ErrInvalidParameter)

	if s.Processed(rt) != 0 {
		t.Errorf("rejected requests were processed: %d", s.Processed(rt))
	}
	// The JSON-bodied request carried no refresh_token form field, so it presented nothing.
	if s.Presentations(rt) != 5 {
		t.Errorf("presentations %d, want 5 (every form carrying the token)", s.Presentations(rt))
	}
	if r := post(t, s, OATokenPath, form, testSecret); r.body["access_token"] == nil {
		t.Errorf("the token did not survive rejected requests: %s", r.raw)
	}
}

func TestNoAppCheckWhenAppIDEmpty(t *testing.T) {
	s := New(Options{})
	s.Start()
	defer s.Close()
	rt := s.SeedOA("x")
	if r := post(t, s, OATokenPath, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}}, ""); r.body["access_token"] == nil {
		t.Errorf("refresh without app checks failed: %s", r.raw)
	}
}

func TestLifetimesAndStrings(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	var mu sync.Mutex
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }

	s := start(t, Options{AccessLifetime: 4 * time.Second, RefreshLifetime: time.Hour, ExpiresInAsString: true, SendRefreshTokenExpiresIn: true, Now: clock})
	rt := s.SeedOA("fam")
	r := post(t, s, OATokenPath, refreshForm(rt), testSecret)
	if r.body["expires_in"] != "4" || r.body["refresh_token_expires_in"] != "3600" {
		t.Errorf("lifetimes %v %v, want strings \"4\" and \"3600\"", r.body["expires_in"], r.body["refresh_token_expires_in"])
	}
	access, next := r.body["access_token"].(string), r.body["refresh_token"].(string)
	advance(5 * time.Second)
	if s.ValidAccessToken(access) {
		t.Errorf("access token valid after its lifetime")
	}
	advance(time.Hour)
	if _, ok := s.Latest("fam"); ok {
		t.Errorf("Latest reports an expired refresh token")
	}
	wantZaloError(t, post(t, s, OATokenPath, refreshForm(next), testSecret), ErrInvalidRefreshToken)
}

func TestCodeExchange(t *testing.T) {
	s := start(t, Options{})
	old := s.SeedUser("u")
	verifier := "a-verifier-of-enough-length-0123456789"
	code := s.IssueCode(User, "u", CodeChallenge(verifier))
	form := url.Values{"app_id": {testApp}, "grant_type": {"authorization_code"}, "code": {code}, "code_verifier": {verifier}}

	// Wrong path: unknown there.
	wantZaloError(t, post(t, s, OATokenPath, form, testSecret), ErrInvalidCode)
	r := post(t, s, UserTokenPath, form, testSecret)
	if r.body["access_token"] == nil || r.body["refresh_token"] == nil {
		t.Fatalf("exchange failed: %s", r.raw)
	}
	if latest, _ := s.Latest("u"); latest != r.body["refresh_token"] {
		t.Errorf("exchange did not restart the family")
	}
	wantZaloError(t, post(t, s, UserTokenPath, refreshForm(old), testSecret), ErrInvalidRefreshToken)
	wantZaloError(t, post(t, s, UserTokenPath, form, testSecret), ErrInvalidCode) // single use

	code = s.IssueCode(User, "v", CodeChallenge(verifier))
	form.Set("code", code)
	form.Set("code_verifier", "wrong")
	wantZaloError(t, post(t, s, UserTokenPath, form, testSecret), ErrInvalidCode)
	if s.Exchanges() != 1 {
		t.Errorf("exchanges %d, want 1", s.Exchanges())
	}
}

func TestFaultPhases(t *testing.T) {
	t.Run("before grant: presented, not processed, not consumed", func(t *testing.T) {
		s := start(t, Options{})
		rt := s.SeedOA("f")
		s.InjectFault(Fault{Kind: FaultStatus, Status: 503, Count: 1})
		if r := post(t, s, OATokenPath, refreshForm(rt), testSecret); r.status != 503 {
			t.Fatalf("status %d, want 503", r.status)
		}
		if s.Presentations(rt) != 1 || s.Processed(rt) != 0 || s.Refreshes() != 0 {
			t.Errorf("presentations %d processed %d refreshes %d", s.Presentations(rt), s.Processed(rt), s.Refreshes())
		}
		if r := post(t, s, OATokenPath, refreshForm(rt), testSecret); r.body["access_token"] == nil {
			t.Errorf("retry after a before-fault failed: %s", r.raw)
		}
		if s.PendingFaults() != 0 {
			t.Errorf("fault still pending")
		}
	})
	t.Run("after grant: processed and consumed, answer lost", func(t *testing.T) {
		s := start(t, Options{})
		rt := s.SeedOA("f")
		s.InjectFault(Fault{Kind: FaultErrorIn200, Phase: AfterGrant, Count: 1})
		r := post(t, s, OATokenPath, refreshForm(rt), testSecret)
		wantZaloError(t, r, DefaultFaultErrorCode)
		if s.Processed(rt) != 1 || s.Refreshes() != 1 {
			t.Errorf("processed %d refreshes %d, want 1 and 1", s.Processed(rt), s.Refreshes())
		}
		if latest, ok := s.Latest("f"); !ok || latest == rt {
			t.Errorf("token not consumed by an after-fault request")
		}
	})
	t.Run("missing access token after grant carries the new refresh token", func(t *testing.T) {
		s := start(t, Options{})
		rt := s.SeedOA("f")
		s.InjectFault(Fault{Kind: FaultMissingAccessToken, Phase: AfterGrant, Count: 1})
		r := post(t, s, OATokenPath, refreshForm(rt), testSecret)
		latest, _ := s.Latest("f")
		if r.body["access_token"] != nil || r.body["refresh_token"] != latest {
			t.Errorf("answer %s", r.raw)
		}
	})
	t.Run("malformed and empty bodies", func(t *testing.T) {
		s := start(t, Options{})
		rt := s.SeedOA("f")
		s.InjectFault(Fault{Kind: FaultMalformedJSON, Count: 1})
		s.InjectFault(Fault{Kind: FaultEmptyBody, Count: 1})
		if r := post(t, s, OATokenPath, refreshForm(rt), testSecret); r.status != 200 || r.body != nil {
			t.Errorf("malformed: %d %q", r.status, r.raw)
		}
		if r := post(t, s, OATokenPath, refreshForm(rt), testSecret); r.status != 200 || r.raw != "" {
			t.Errorf("empty: %d %q", r.status, r.raw)
		}
	})
	t.Run("path selection and count", func(t *testing.T) {
		s := start(t, Options{})
		s.InjectFault(Fault{Kind: FaultStatus, Path: UserTokenPath, Count: 2})
		if r := post(t, s, OATokenPath, refreshForm(s.SeedOA("o")), testSecret); r.status != 200 || r.body["access_token"] == nil {
			t.Errorf("OA request hit a user-path fault: %d", r.status)
		}
		for i := 0; i < 2; i++ {
			if r := post(t, s, UserTokenPath, refreshForm(s.SeedUser("u")), testSecret); r.status != 502 {
				t.Errorf("user request %d: status %d, want 502", i, r.status)
			}
		}
		if r := post(t, s, UserTokenPath, refreshForm(s.SeedUser("u")), testSecret); r.status != 200 {
			t.Errorf("fault outlived its count")
		}
	})
	t.Run("latency with a client that leaves consumes nothing", func(t *testing.T) {
		s := start(t, Options{})
		rt := s.SeedOA("f")
		s.InjectFault(Fault{Kind: FaultLatency, Delay: 2 * time.Second, Count: 1})
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		if _, err := postCtx(ctx, s, OATokenPath, refreshForm(rt), testSecret, "application/x-www-form-urlencoded"); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("err %v, want deadline exceeded", err)
		}
		waitIdle(t, s)
		if s.Processed(rt) != 0 {
			t.Errorf("processed %d, want 0", s.Processed(rt))
		}
		if latest, _ := s.Latest("f"); latest != rt {
			t.Errorf("token consumed")
		}
	})
	t.Run("hang and close connection answer nothing", func(t *testing.T) {
		s := start(t, Options{})
		rt := s.SeedOA("f")
		s.InjectFault(Fault{Kind: FaultCloseConnection, Count: 1})
		if _, err := postCtx(context.Background(), s, OATokenPath, refreshForm(rt), testSecret, "application/x-www-form-urlencoded"); err == nil {
			t.Errorf("close connection: got an answer")
		}
		s.InjectFault(Fault{Kind: FaultHang, Count: 1})
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		defer cancel()
		if _, err := postCtx(ctx, s, OATokenPath, refreshForm(rt), testSecret, "application/x-www-form-urlencoded"); err == nil {
			t.Errorf("hang: got an answer")
		}
		waitIdle(t, s)
		if latest, _ := s.Latest("f"); latest != rt {
			t.Errorf("token consumed")
		}
	})
}

func TestInjectFaultPanicsOnBadInput(t *testing.T) {
	for name, f := range map[string]Fault{
		"kind":  {Kind: 0},
		"phase": {Kind: FaultStatus, Phase: 7},
		"path":  {Kind: FaultStatus, Path: "/token"},
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("%s: no panic", name)
				}
			}()
			New(Options{}).InjectFault(f)
		}()
	}
}

func TestFingerprint(t *testing.T) {
	if got := Fingerprint(""); got != "-" {
		t.Errorf("empty: %q", got)
	}
	fp := Fingerprint(RefreshTokenPrefix + "abc")
	if !strings.HasPrefix(fp, RefreshTokenPrefix) || strings.Contains(fp, "abc") || len(fp) != len(RefreshTokenPrefix)+12 {
		t.Errorf("fingerprint %q", fp)
	}
}

func waitIdle(t *testing.T, s *Server) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for s.InFlight() != 0 {
		if time.Now().After(deadline) {
			t.Fatal("requests still in flight")
		}
		time.Sleep(10 * time.Millisecond)
	}
}
