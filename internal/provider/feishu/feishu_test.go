package feishu

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tokenwarden/tokenwarden/internal/provider"
	"github.com/tokenwarden/tokenwarden/internal/provider/internal/wire"
)

const (
	appID        = "cli_a5d611352af9d00b"
	appSecret    = "AppSecretValue0123456789abcdefXYZ"
	refreshToken = "ur-h4_5nUXdJ4O8rqfGe.YJCwM13Gjc557xUG20hkk00f7K"
	accessToken  = "u-OldAccessToken0123456789abcdefghij"
)

var t0 = time.Date(2026, 1, 19, 0, 30, 0, 0, time.UTC)

func clock() time.Time { return t0 }

// recorder is a scripted Feishu: it records every request and answers with reply.
type recorder struct {
	mu       sync.Mutex
	requests []recorded
	reply    func(w http.ResponseWriter, r *http.Request)
}

type recorded struct {
	method, path, contentType string
	body                      map[string]any
}

func startRecorder(t *testing.T, reply func(w http.ResponseWriter, r *http.Request)) (*recorder, string) {
	t.Helper()
	rec := &recorder{reply: reply}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		data, _ := io.ReadAll(r.Body)
		var body map[string]any
		_ = json.Unmarshal(data, &body)
		rec.mu.Lock()
		rec.requests = append(rec.requests, recorded{r.Method, r.URL.Path, r.Header.Get("Content-Type"), body})
		rec.mu.Unlock()
		rec.reply(w, r)
	}))
	t.Cleanup(srv.Close)
	return rec, srv.URL
}

func (r *recorder) all() []recorded {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]recorded(nil), r.requests...)
}

func reply(status int, body string, headers ...string) func(http.ResponseWriter, *http.Request) {
	return func(w http.ResponseWriter, _ *http.Request) {
		for i := 0; i+1 < len(headers); i += 2 {
			w.Header().Set(headers[i], headers[i+1])
		}
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
		w.WriteHeader(status)
		_, _ = io.WriteString(w, body)
	}
}

func userGrant() provider.Grant {
	return provider.Grant{RefreshToken: refreshToken, ClientSecret: appSecret, AccessToken: accessToken}
}

func TestUserRequestEncoding(t *testing.T) {
	rec, base := startRecorder(t, reply(200, `{"code":0,"access_token":"u-NewAccess0123456789abcdefghijklmn","expires_in":7200,
		"refresh_token":"ur-NewRefresh0123456789abcdefghijkl","refresh_token_expires_in":604800,"token_type":"Bearer","scope":"offline_access"}`))
	p := NewUser(nil, clock)

	for _, tc := range []struct {
		name   string
		cfg    provider.Config
		scope  any
		hasKey bool
	}{
		{"no scopes", provider.Config{ClientID: appID, BaseURL: base}, nil, false},
		{"trailing slash and scopes", provider.Config{ClientID: appID, BaseURL: base + "/", Scopes: []string{"offline_access", "contact:user.base:readonly"}},
			"offline_access contact:user.base:readonly", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := len(rec.all())
			ts, err := p.Refresh(context.Background(), tc.cfg, userGrant())
			if err != nil {
				t.Fatal(err)
			}
			reqs := rec.all()[before:]
			if len(reqs) != 1 {
				t.Fatalf("%d requests, want exactly 1", len(reqs))
			}
			r := reqs[0]
			if r.method != http.MethodPost || r.path != "/open-apis/authen/v2/oauth/token" || !strings.HasPrefix(r.contentType, "application/json") {
				t.Fatalf("request %s %s (%s)", r.method, r.path, r.contentType)
			}
			want := map[string]any{"grant_type": "refresh_token", "client_id": appID, "client_secret": appSecret, "refresh_token": refreshToken}
			if tc.hasKey {
				want["scope"] = tc.scope
			}
			if len(r.body) != len(want) {
				t.Fatalf("body %v, want %v", r.body, want)
			}
			for k, v := range want {
				if r.body[k] != v {
					t.Fatalf("body[%s] = %v, want %v", k, r.body[k], v)
				}
			}
			if ts.AccessToken != "u-NewAccess0123456789abcdefghijklmn" || ts.RefreshToken != "ur-NewRefresh0123456789abcdefghijkl" || ts.TokenType != "Bearer" {
				t.Fatalf("token set %+v", ts)
			}
			if !ts.AccessExpiresAt.Equal(t0.Add(2*time.Hour)) || !ts.RefreshExpiresAt.Equal(t0.Add(7*24*time.Hour)) {
				t.Fatalf("expiries %s / %s", ts.AccessExpiresAt, ts.RefreshExpiresAt)
			}
		})
	}
}

func TestEndpointDomains(t *testing.T) {
	for _, tc := range []struct{ base, path, want string }{
		{"", UserTokenPath, "https://open.feishu.cn/open-apis/authen/v2/oauth/token"},
		{LarkBaseURL, UserTokenPath, "https://open.larksuite.com/open-apis/authen/v2/oauth/token"},
		{"https://open.larksuite.com/", TenantTokenPath, "https://open.larksuite.com/open-apis/auth/v3/tenant_access_token/internal"},
		{"", TenantTokenPath, "https://open.feishu.cn/open-apis/auth/v3/tenant_access_token/internal"},
	} {
		if got := endpoint(provider.Config{BaseURL: tc.base}, tc.path); got != tc.want {
			t.Errorf("endpoint(%q, %q) = %q, want %q", tc.base, tc.path, got, tc.want)
		}
	}
}

func TestUserEchoedRefreshTokenIsNotARotation(t *testing.T) {
	_, base := startRecorder(t, reply(200, `{"code":0,"access_token":"u-NewAccess0123456789abcdefghijklmn","expires_in":"7200","refresh_token":"`+refreshToken+`"}`))
	ts, err := NewUser(nil, clock).Refresh(context.Background(), provider.Config{ClientID: appID, BaseURL: base}, userGrant())
	if err != nil {
		t.Fatal(err)
	}
	if ts.RefreshToken != "" || !ts.RefreshExpiresAt.IsZero() || !ts.AccessExpiresAt.Equal(t0.Add(2*time.Hour)) {
		t.Fatalf("token set %+v", ts)
	}
}

// classification cases use the shapes Feishu answers with: v2 OAuth errors carry code,
// error and error_description; v3 auth errors code and msg; gateway errors code and msg,
// often with HTTP 200.
var classificationCases = []struct {
	name       string
	status     int
	body       string
	headers    []string
	kind       provider.Kind
	code       string
	retryAfter time.Duration
	descHas    string
}{
	{"20026 invalid", 400, `{"code":20026,"error":"invalid_grant","error_description":"The refresh token passed is invalid."}`, nil, provider.Permanent, "20026", 0, "refresh token invalid"},
	{"20037 expired", 400, `{"code":20037,"error":"invalid_grant","error_description":"The refresh token passed has expired."}`, nil, provider.Permanent, "20037", 0, "expired"},
	{"20064 revoked (seed report)", 400, `{"error":"invalid_grant","error_description":"The refresh token has been revoked. Please note that a refresh token can only be used once.","code":20064}`, nil, provider.Permanent, "20064", 0, "revoked"},
	{"20073 already used", 400, `{"code":20073,"error":"invalid_grant","error_description":"The refresh token has been used."}`, nil, provider.Permanent, "20073", 0, "already used"},
	{"20024", 400, `{"code":20024,"error":"invalid_grant","error_description":"The provided token does not match the client."}`, nil, provider.Permanent, "20024", 0, "invalid_grant"},
	{"20074", 400, `{"code":20074,"error":"invalid_grant","error_description":"refresh not enabled"}`, nil, provider.Permanent, "20074", 0, "refresh"},
	{"20010", 400, `{"code":20010,"error":"invalid_grant","error_description":"The user does not have permission to use this app."}`, nil, provider.Permanent, "20010", 0, "permission"},
	{"20008", 400, `{"code":20008,"error":"invalid_grant","error_description":"The user does not exist."}`, nil, provider.Permanent, "20008", 0, "does not exist"},
	{"20066", 400, `{"code":20066,"error":"invalid_grant","error_description":"User status is invalid."}`, nil, provider.Permanent, "20066", 0, "status"},
	{"unknown app-state code", 400, `{"code":20069,"error":"invalid_grant","error_description":"The app is disabled."}`, nil, provider.Permanent, "20069", 0, "disabled"},
	{"20002 client secret", 400, `{"code":20002,"error":"invalid_client","error_description":"The client secret is invalid."}`, nil, provider.Permanent, "config_20002", 0, "configuration"},
	{"99991543 app credential", 200, `{"code":99991543,"msg":"app_id or app_secret is invalid"}`, nil, provider.Permanent, "config_99991543", 0, "configuration"},
	{"10014 app secret (v3)", 400, `{"code":10014,"msg":"app secret invalid"}`, nil, provider.Permanent, "config_10014", 0, "app secret invalid"},
	{"10003 invalid param (v3)", 400, `{"code":10003,"msg":"invalid param"}`, nil, provider.Permanent, "config_10003", 0, "invalid param"},
	{"code as a string", 400, `{"code":"20073","error":"invalid_grant"}`, nil, provider.Permanent, "20073", 0, "already used"},
	{"20050 with 500", 500, `{"code":20050,"error":"server_error","error_description":"Internal server error."}`, nil, provider.Transient, "20050", 0, "server_error"},
	{"20050 with 200", 200, `{"code":20050,"error":"server_error"}`, nil, provider.Transient, "20050", 0, "server"},
	{"99991400 in 200 with reset header", 200, `{"code":99991400,"msg":"request trigger frequency limit"}`, []string{"X-Ogw-Ratelimit-Reset", "7"}, provider.Transient, "99991400", 7 * time.Second, "rate limited"},
	{"99991400 in 400 with Retry-After", 400, `{"code":99991400,"msg":"frequency limit"}`, []string{"Retry-After", "3"}, provider.Transient, "99991400", 3 * time.Second, "frequency"},
	{"429 without code", 429, `slow down`, []string{"Retry-After", "999999"}, provider.Transient, "http_429", MaxRetryAfter, "slow down"},
	{"permanent code under 503 stays transient", 503, `{"code":20064,"msg":"upstream"}`, nil, provider.Transient, "20064", 0, ""},
	{"502 html", 502, `<html>bad gateway</html>`, nil, provider.Transient, "http_502", 0, "bad gateway"},
	{"400 without code", 400, `<html>proxy said no</html>`, nil, provider.Transient, "http_400", 0, "proxy"},
	{"404", 404, `404 page not found`, nil, provider.Permanent, "http_404", 0, "not found"},
	{"401 without code", 401, `{}`, nil, provider.Permanent, "http_401", 0, ""},
	{"302", 302, ``, []string{"Location", "https://evil.example/steal"}, provider.Permanent, "http_302", 0, "redirect not followed"},
	{"200 not JSON", 200, `<html>hello</html>`, nil, provider.Transient, CodeMalformedResponse, 0, "not a JSON object"},
	{"200 code 0 without token", 200, `{"code":0,"msg":"ok"}`, nil, provider.Transient, CodeMalformedResponse, 0, "no "},
	{"200 truncated JSON", 200, `{"code":0,"access_token":"u-abc`, nil, provider.Transient, CodeMalformedResponse, 0, ""},
}

func TestClassification(t *testing.T) {
	for _, tc := range classificationCases {
		t.Run(tc.name, func(t *testing.T) {
			rec, base := startRecorder(t, reply(tc.status, tc.body, tc.headers...))
			cfg := provider.Config{ClientID: appID, BaseURL: base}
			for _, adapter := range []struct {
				name  string
				p     provider.Refresher
				grant provider.Grant
			}{
				{"user", NewUser(nil, clock), userGrant()},
				{"tenant", NewTenant(nil, clock), provider.Grant{ClientSecret: appSecret, AccessToken: accessToken}},
			} {
				_, err := adapter.p.Refresh(context.Background(), cfg, adapter.grant)
				var pe *provider.Error
				if !errors.As(err, &pe) {
					t.Fatalf("%s: error %v is not a *provider.Error", adapter.name, err)
				}
				if pe.Kind != tc.kind || pe.Code != tc.code || pe.RetryAfter != tc.retryAfter {
					t.Fatalf("%s: got %s %q retry %s, want %s %q retry %s (%v)", adapter.name, pe.Kind, pe.Code, pe.RetryAfter, tc.kind, tc.code, tc.retryAfter, err)
				}
				if pe.HTTPStatus != tc.status {
					t.Fatalf("%s: HTTPStatus %d, want %d", adapter.name, pe.HTTPStatus, tc.status)
				}
				if !strings.Contains(err.Error(), tc.descHas) {
					t.Fatalf("%s: %q lacks %q", adapter.name, err.Error(), tc.descHas)
				}
				assertNoSecrets(t, err)
			}
			if n := len(rec.all()); n != 2 {
				t.Fatalf("%d requests for two calls, want 2 (one each)", n)
			}
		})
	}
}

func assertNoSecrets(t *testing.T, err error) {
	t.Helper()
	for _, s := range []string{appSecret, refreshToken, accessToken} {
		if strings.Contains(err.Error(), s) {
			t.Fatalf("error leaks a secret: %v", err)
		}
	}
}

func TestRedirectIsNotFollowed(t *testing.T) {
	var hits atomic.Int32
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hits.Add(1) }))
	defer target.Close()
	_, base := startRecorder(t, func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, target.URL+r.URL.Path, http.StatusTemporaryRedirect)
	})
	_, err := NewUser(nil, clock).Refresh(context.Background(), provider.Config{ClientID: appID, BaseURL: base}, userGrant())
	if !provider.IsPermanent(err) || hits.Load() != 0 {
		t.Fatalf("err %v, redirect target hit %d times", err, hits.Load())
	}
}

func TestErrorsAreScrubbed(t *testing.T) {
	echo := `{"code":20026,"error":"invalid_grant","error_description":"bad token ` + refreshToken + ` with secret ` + appSecret +
		` and ur-SomeOtherTokenLooking0123456789abc and url ` + strings.ReplaceAll(refreshToken, ".", "%2E") + `"}`
	_, base := startRecorder(t, reply(400, echo))
	_, err := NewUser(nil, clock).Refresh(context.Background(), provider.Config{ClientID: appID, BaseURL: base}, userGrant())
	assertNoSecrets(t, err)
	if strings.Contains(err.Error(), "SomeOtherTokenLooking") || !strings.Contains(err.Error(), "[redacted]") {
		t.Fatalf("not scrubbed: %v", err)
	}
	// A 5xx debug page quoting the request.
	_, base = startRecorder(t, reply(500, `request body: {"client_secret":"`+appSecret+`","refresh_token":"`+refreshToken+`"}`))
	_, err = NewUser(nil, clock).Refresh(context.Background(), provider.Config{ClientID: appID, BaseURL: base}, userGrant())
	assertNoSecrets(t, err)
	// Tenant: the app secret echoed in msg.
	_, base = startRecorder(t, reply(400, `{"code":10014,"msg":"app secret invalid: `+appSecret+`"}`))
	_, err = NewTenant(nil, clock).Refresh(context.Background(), provider.Config{ClientID: appID, BaseURL: base}, provider.Grant{ClientSecret: appSecret})
	assertNoSecrets(t, err)
}

func TestNetworkFailures(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	base := srv.URL
	srv.Close()
	_, err := NewUser(nil, clock).Refresh(context.Background(), provider.Config{ClientID: appID, BaseURL: base}, userGrant())
	var pe *provider.Error
	if !errors.As(err, &pe) || pe.Kind != provider.Transient || pe.Code != CodeNetwork {
		t.Fatalf("closed server: %v", err)
	}

	block := make(chan struct{})
	_, base = startRecorder(t, func(http.ResponseWriter, *http.Request) { <-block })
	defer close(block)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	_, err = NewTenant(nil, clock).Refresh(ctx, provider.Config{ClientID: appID, BaseURL: base}, provider.Grant{ClientSecret: appSecret})
	if !errors.As(err, &pe) || pe.Code != CodeNetwork || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("timeout: %v", err)
	}
	assertNoSecrets(t, err)
}

func TestTenantRequestAndUnchangedRemint(t *testing.T) {
	token := "t-caecc734c2e3328a62489fe0648c4b98779515d3"
	rec, base := startRecorder(t, reply(200, `{"code":0,"msg":"ok","tenant_access_token":"`+token+`","expire":7200}`))
	p := NewTenant(nil, clock)
	cfg := provider.Config{ClientID: appID, BaseURL: base}

	ts, err := p.Refresh(context.Background(), cfg, provider.Grant{ClientSecret: appSecret})
	if err != nil {
		t.Fatal(err)
	}
	if ts.AccessToken != token || ts.TokenType != "Bearer" || ts.RefreshToken != "" || !ts.AccessExpiresAt.Equal(t0.Add(2*time.Hour)) || !ts.RefreshExpiresAt.IsZero() {
		t.Fatalf("token set %+v", ts)
	}
	if p.UnchangedRemints() != 0 {
		t.Fatal("a first mint counted as unchanged")
	}
	r := rec.all()[0]
	if r.path != "/open-apis/auth/v3/tenant_access_token/internal" || !strings.HasPrefix(r.contentType, "application/json") ||
		len(r.body) != 2 || r.body["app_id"] != appID || r.body["app_secret"] != appSecret {
		t.Fatalf("request %+v", r)
	}

	// The same token handed back (more than 30 minutes left): fine, but counted.
	ts2, err := p.Refresh(context.Background(), cfg, provider.Grant{ClientSecret: appSecret, AccessToken: token})
	if err != nil || ts2 != ts {
		t.Fatalf("unchanged re-mint: %+v, %v", ts2, err)
	}
	if p.UnchangedRemints() != 1 {
		t.Fatalf("UnchangedRemints = %d, want 1", p.UnchangedRemints())
	}
	if n := len(rec.all()); n != 2 {
		t.Fatalf("%d requests, want 2", n)
	}
}

func TestValidation(t *testing.T) {
	u, tn := &User{}, &Tenant{}
	cfg := provider.Config{ClientID: appID}
	if err := u.ValidateConfig(cfg); err != nil {
		t.Fatal(err)
	}
	if err := tn.ValidateConfig(provider.Config{ClientID: appID, BaseURL: LarkBaseURL}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		p     provider.Provider
		cfg   provider.Config
		field string
	}{
		{u, provider.Config{}, "client_id:"},
		{u, provider.Config{ClientID: " cli_x"}, "client_id:"},
		{u, provider.Config{ClientID: appID, BaseURL: "open.feishu.cn"}, "base_url:"},
		{u, provider.Config{ClientID: appID, BaseURL: "ftp://open.feishu.cn"}, "base_url:"},
		{u, provider.Config{ClientID: appID, BaseURL: "https://user:pw@open.feishu.cn"}, "base_url:"},
		{u, provider.Config{ClientID: appID, BaseURL: "https://open.feishu.cn?x=1"}, "base_url:"},
		{u, provider.Config{ClientID: appID, TokenURL: "https://open.feishu.cn/x"}, "token_url:"},
		{u, provider.Config{ClientID: appID, AuthStyle: "body"}, "auth_style:"},
		{u, provider.Config{ClientID: appID, IntrospectionURL: "https://x"}, "introspection_url:"},
		{u, provider.Config{ClientID: appID, Scopes: []string{"a b"}}, "scopes[0]:"},
		{tn, provider.Config{ClientID: appID, Scopes: []string{"x"}}, "scopes:"},
		{tn, provider.Config{ClientID: appID, Parent: "x"}, "parent:"},
		{tn, provider.Config{}, "client_id:"},
	} {
		err := tc.p.ValidateConfig(tc.cfg)
		if err == nil || !strings.HasPrefix(err.Error(), tc.field) {
			t.Errorf("ValidateConfig(%+v) = %v, want an error starting with %q", tc.cfg, err, tc.field)
		}
	}
	for _, tc := range []struct {
		p     provider.Provider
		g     provider.Grant
		field string
	}{
		{u, provider.Grant{ClientSecret: appSecret}, "refresh_token:"},
		{tn, provider.Grant{}, "client_secret:"},
		{tn, provider.Grant{ClientSecret: appSecret, RefreshToken: refreshToken}, "refresh_token:"},
	} {
		err := tc.p.ValidateGrant(tc.g)
		if err == nil || !strings.HasPrefix(err.Error(), tc.field) {
			t.Errorf("ValidateGrant = %v, want an error starting with %q", err, tc.field)
		}
		if err != nil && (strings.Contains(err.Error(), appSecret) || strings.Contains(err.Error(), refreshToken)) {
			t.Errorf("ValidateGrant leaks a secret: %v", err)
		}
	}
	if err := u.ValidateGrant(userGrant()); err != nil {
		t.Fatal(err)
	}
	if err := tn.ValidateGrant(provider.Grant{ClientSecret: appSecret}); err != nil {
		t.Fatal(err)
	}
}

func TestRefreshRefusesBadInputWithoutARequest(t *testing.T) {
	rec, base := startRecorder(t, reply(200, `{}`))
	_, err := NewUser(nil, clock).Refresh(context.Background(), provider.Config{ClientID: appID, BaseURL: base}, provider.Grant{ClientSecret: appSecret})
	if !provider.IsPermanent(err) {
		t.Fatalf("missing refresh token: %v", err)
	}
	_, err = NewUser(nil, clock).Refresh(context.Background(), provider.Config{ClientID: appID, BaseURL: base}, provider.Grant{RefreshToken: refreshToken})
	var pe *provider.Error
	if !errors.As(err, &pe) || pe.Kind != provider.Permanent || pe.Code != "missing_client_secret" {
		t.Fatalf("missing client secret: %v", err)
	}
	if err := (&User{}).ValidateGrant(provider.Grant{RefreshToken: refreshToken}); err != nil {
		t.Fatalf("a reseed with a refresh token alone must validate: %v", err)
	}
	_, err = NewTenant(nil, clock).Refresh(context.Background(), provider.Config{BaseURL: base}, provider.Grant{ClientSecret: appSecret})
	if !provider.IsPermanent(err) {
		t.Fatalf("missing client_id: %v", err)
	}
	if n := len(rec.all()); n != 0 {
		t.Fatalf("%d requests sent for invalid input", n)
	}
}

func TestSingleShotRefusesASecondRequest(t *testing.T) {
	var n atomic.Int32
	tr := wire.OneRequest(roundTripFunc(func(*http.Request) (*http.Response, error) {
		n.Add(1)
		return &http.Response{StatusCode: 200, Body: io.NopCloser(strings.NewReader("{}")), Header: http.Header{}}, nil
	}), errSecondRequest)
	req, _ := http.NewRequest(http.MethodPost, "http://x/", strings.NewReader("{}"))
	if _, err := tr.RoundTrip(req); err != nil {
		t.Fatal(err)
	}
	req2, _ := http.NewRequest(http.MethodPost, "http://x/", strings.NewReader("{}"))
	if _, err := tr.RoundTrip(req2); !errors.Is(err, errSecondRequest) || n.Load() != 1 {
		t.Fatalf("second request: %v, base saw %d", err, n.Load())
	}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }
