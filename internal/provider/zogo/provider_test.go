package zogo

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tokenwarden/tokenwarden/internal/provider"
)

var fixedNow = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

const (
	testSecret   = "gNBVFAvvU7lp9ARkqh7M0VOzClientSecret"
	testRefresh  = "def502004f618f338802dbRefreshToken0001"
	testPassword = "bestshop-Password-9"
	testUser     = "shop@zogo.test"
)

// The documented login answer (seed 002).
const docLoginAnswer = `{
  "code": 200,
  "status": "success",
  "token_type": "Bearer",
  "expires_in": 1296000,
  "access_token": "eyJ0eXAiOiJKV1QiLCJhbGNewAccess",
  "refresh_token": "def502004f618f338802dbNewRefresh"
}`

// The documented 401 answer (seed 002).
const doc401 = `{
    "code": 401,
    "status": "error",
    "data": {
        "error": "Unauthenticated."
    }
}`

type call struct {
	path   string
	ctype  string
	accept string
	body   map[string]any
}

// recorder answers by path and records every request.
type recorder struct {
	mu      sync.Mutex
	calls   []call
	answers map[string]func(w http.ResponseWriter)
}

func (rc *recorder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	raw, _ := io.ReadAll(r.Body)
	var body map[string]any
	dec := json.NewDecoder(strings.NewReader(string(raw)))
	dec.UseNumber()
	_ = dec.Decode(&body)
	rc.mu.Lock()
	rc.calls = append(rc.calls, call{path: r.URL.Path, ctype: r.Header.Get("Content-Type"), accept: r.Header.Get("Accept"), body: body})
	answer := rc.answers[r.URL.Path]
	rc.mu.Unlock()
	if r.Method != http.MethodPost || answer == nil {
		http.NotFound(w, r)
		return
	}
	answer(w)
}

func (rc *recorder) count(path string) int {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	n := 0
	for _, c := range rc.calls {
		if c.path == path {
			n++
		}
	}
	return n
}

func reply(status int, body string, headers ...string) func(http.ResponseWriter) {
	return func(w http.ResponseWriter) {
		for i := 0; i+1 < len(headers); i += 2 {
			w.Header().Set(headers[i], headers[i+1])
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_, _ = io.WriteString(w, body)
	}
}

func serve(t *testing.T, answers map[string]func(http.ResponseWriter)) (*recorder, provider.Config) {
	t.Helper()
	rc := &recorder{answers: answers}
	srv := httptest.NewServer(rc)
	t.Cleanup(srv.Close)
	return rc, provider.Config{BaseURL: srv.URL, ClientID: "1"}
}

func newP() *Provider { return New(nil, func() time.Time { return fixedNow }) }

func fullGrant() provider.Grant {
	return provider.Grant{RefreshToken: testRefresh, ClientSecret: testSecret, Username: testUser, Password: testPassword}
}

func asError(t *testing.T, err error) *provider.Error {
	t.Helper()
	var pe *provider.Error
	if !errors.As(err, &pe) {
		t.Fatalf("error %v (%T) is not a *provider.Error", err, err)
	}
	return pe
}

func assertNoSecrets(t *testing.T, err error) {
	t.Helper()
	for _, s := range []string{testSecret, testRefresh, testPassword, "def502004f618f338802dbNewRefresh"} {
		if strings.Contains(err.Error(), s) {
			t.Errorf("error text leaks a secret: %s", err)
		}
	}
}

func TestRefreshRequestEncodingAndDocumentedAnswer(t *testing.T) {
	rc, cfg := serve(t, map[string]func(http.ResponseWriter){RefreshPath: reply(200, docLoginAnswer)})
	ts, err := newP().Refresh(context.Background(), cfg, fullGrant())
	if err != nil {
		t.Fatal(err)
	}
	if len(rc.calls) != 1 {
		t.Fatalf("%d requests, want 1", len(rc.calls))
	}
	c := rc.calls[0]
	if c.path != RefreshPath || c.ctype != "application/json" || c.accept != "application/json" {
		t.Errorf("request %s %q %q", c.path, c.ctype, c.accept)
	}
	want := map[string]any{"refresh_token": testRefresh, "client_id": json.Number("1"), "client_secret": testSecret}
	if len(c.body) != len(want) {
		t.Errorf("body has keys %v, want exactly %v", c.body, want)
	}
	for k, v := range want {
		if c.body[k] != v {
			t.Errorf("body[%s] = %#v, want %#v", k, c.body[k], v)
		}
	}
	if ts.AccessToken != "eyJ0eXAiOiJKV1QiLCJhbGNewAccess" || ts.TokenType != "Bearer" || ts.RefreshToken != "def502004f618f338802dbNewRefresh" {
		t.Errorf("token set %+v", ts)
	}
	if want := fixedNow.Add(1296000 * time.Second); !ts.AccessExpiresAt.Equal(want) {
		t.Errorf("AccessExpiresAt %s, want %s", ts.AccessExpiresAt, want)
	}
}

func TestLoginRequestEncodingAndClientIDSpelling(t *testing.T) {
	for _, tc := range []struct {
		clientID string
		want     any
	}{{"1", json.Number("1")}, {"42", json.Number("42")}, {"app-7", "app-7"}, {"007", "007"}} {
		rc, cfg := serve(t, map[string]func(http.ResponseWriter){LoginPath: reply(200, docLoginAnswer)})
		cfg.ClientID = tc.clientID
		g := fullGrant()
		g.RefreshToken = "" // login-only grant
		if _, err := newP().Refresh(context.Background(), cfg, g); err != nil {
			t.Fatal(err)
		}
		if len(rc.calls) != 1 || rc.calls[0].path != LoginPath {
			t.Fatalf("calls %+v, want one login", rc.calls)
		}
		b := rc.calls[0].body
		if b["username"] != testUser || b["password"] != testPassword || b["client_secret"] != testSecret || b["client_id"] != tc.want || len(b) != 4 {
			t.Errorf("client_id %q: login body %v", tc.clientID, b)
		}
	}
}

func TestAnswerVariants(t *testing.T) {
	cases := []struct {
		name, body string
		check      func(t *testing.T, ts provider.TokenSet)
	}{
		{"no expires_in means no expiry", `{"code":200,"status":"success","token_type":"Bearer","access_token":"a1","refresh_token":"r2"}`,
			func(t *testing.T, ts provider.TokenSet) {
				if !ts.AccessExpiresAt.IsZero() || ts.RefreshToken != "r2" {
					t.Errorf("%+v", ts)
				}
			}},
		{"echoed refresh token is not a rotation", `{"access_token":"a1","refresh_token":"` + testRefresh + `","expires_in":"60"}`,
			func(t *testing.T, ts provider.TokenSet) {
				if ts.RefreshToken != "" || !ts.AccessExpiresAt.Equal(fixedNow.Add(time.Minute)) {
					t.Errorf("%+v", ts)
				}
			}},
		{"tokens under data", `{"code":200,"status":"success","data":{"access_token":"a1","refresh_token":"r2","expires_in":10}}`,
			func(t *testing.T, ts provider.TokenSet) {
				if ts.AccessToken != "a1" || ts.RefreshToken != "r2" || !ts.AccessExpiresAt.Equal(fixedNow.Add(10*time.Second)) {
					t.Errorf("%+v", ts)
				}
			}},
		{"a hundred years", `{"access_token":"a1","expires_in":3153600000}`,
			func(t *testing.T, ts provider.TokenSet) {
				if ts.AccessExpiresAt.Before(fixedNow.Add(99 * 365 * 24 * time.Hour)) {
					t.Errorf("%+v", ts)
				}
			}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, cfg := serve(t, map[string]func(http.ResponseWriter){RefreshPath: reply(200, tc.body)})
			ts, err := newP().Refresh(context.Background(), cfg, fullGrant())
			if err != nil {
				t.Fatal(err)
			}
			tc.check(t, ts)
		})
	}
}

func TestClassification(t *testing.T) {
	noLogin := fullGrant()
	noLogin.Username, noLogin.Password = "", ""
	cases := []struct {
		name        string
		refresh     func(http.ResponseWriter)
		kind        provider.Kind
		code        string
		status      int
		retryAfter  time.Duration
		description string
	}{
		{"documented 401", reply(401, doc401), provider.Permanent, CodeRefreshRejected, 401, 0, "Unauthenticated."},
		{"401 envelope in a 200", reply(200, doc401), provider.Permanent, CodeRefreshRejected, 200, 0, "Unauthenticated."},
		{"passport invalid_request", reply(401, `{"error":"invalid_request","error_description":"The refresh token is invalid.","message":"The refresh token is invalid."}`),
			provider.Permanent, CodeRefreshRejected, 401, 0, "The refresh token is invalid."},
		{"400", reply(400, `{"code":400,"status":"error","data":{"error":"bad"}}`), provider.Permanent, CodeRefreshRejected, 400, 0, "bad"},
		{"403", reply(403, `forbidden`), provider.Permanent, CodeRefreshRejected, 403, 0, "forbidden"},
		{"500", reply(500, `<html>oops</html>`), provider.Transient, "http_500", 500, 0, ""},
		{"500 envelope in a 200", reply(200, `{"code":500,"status":"error","data":{"error":"Server Error"}}`), provider.Transient, "http_500", 200, 0, "Server Error"},
		{"429 with Retry-After", reply(429, `slow down`, "Retry-After", "7"), provider.Transient, "http_429", 429, 7 * time.Second, ""},
		{"503 with huge Retry-After", reply(503, ``, "Retry-After", "999999"), provider.Transient, "http_503", 503, time.Hour, ""},
		{"404", reply(404, `not found`), provider.Permanent, "http_404", 404, 0, ""},
		{"not JSON", reply(200, `<html>hello</html>`), provider.Transient, CodeMalformedResponse, 200, 0, ""},
		{"no access_token", reply(200, `{"code":200,"status":"success","refresh_token":"`+"def502004f618f338802dbNewRefresh"+`"}`), provider.Transient, CodeMalformedResponse, 200, 0, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rc, cfg := serve(t, map[string]func(http.ResponseWriter){RefreshPath: tc.refresh})
			_, err := newP().Refresh(context.Background(), cfg, noLogin)
			pe := asError(t, err)
			if pe.Kind != tc.kind || pe.Code != tc.code || pe.HTTPStatus != tc.status || pe.RetryAfter != tc.retryAfter {
				t.Errorf("got %v (kind %v code %s status %d retry %s)", pe, pe.Kind, pe.Code, pe.HTTPStatus, pe.RetryAfter)
			}
			if tc.description != "" && !strings.Contains(pe.Description, tc.description) {
				t.Errorf("description %q, want it to contain %q", pe.Description, tc.description)
			}
			if rc.count(LoginPath) != 0 || rc.count(RefreshPath) != 1 {
				t.Errorf("calls %+v", rc.calls)
			}
			assertNoSecrets(t, err)
		})
	}
}

func TestNetworkAndRedirect(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close()
	_, err := newP().Refresh(context.Background(), provider.Config{BaseURL: url, ClientID: "1"}, fullGrant())
	if pe := asError(t, err); pe.Kind != provider.Transient || pe.Code != CodeNetwork {
		t.Errorf("closed server: %v", err)
	}

	target := &recorder{answers: map[string]func(http.ResponseWriter){RefreshPath: reply(200, docLoginAnswer)}}
	tsrv := httptest.NewServer(target)
	defer tsrv.Close()
	rc, cfg := serve(t, map[string]func(http.ResponseWriter){RefreshPath: reply(307, ``, "Location", tsrv.URL+RefreshPath)})
	_, err = newP().Refresh(context.Background(), cfg, fullGrant())
	if pe := asError(t, err); pe.Kind != provider.Permanent || pe.Code != "http_307" {
		t.Errorf("redirect: %v", err)
	}
	if len(target.calls) != 0 || rc.count(LoginPath) != 0 {
		t.Errorf("redirect was followed or fell back to login: target %d, login %d", len(target.calls), rc.count(LoginPath))
	}
}

func TestLoginFallback(t *testing.T) {
	t.Run("refresh rejected, login succeeds", func(t *testing.T) {
		rc, cfg := serve(t, map[string]func(http.ResponseWriter){RefreshPath: reply(401, doc401), LoginPath: reply(200, docLoginAnswer)})
		ts, err := newP().Refresh(context.Background(), cfg, fullGrant())
		if err != nil {
			t.Fatal(err)
		}
		if ts.AccessToken != "eyJ0eXAiOiJKV1QiLCJhbGNewAccess" || ts.RefreshToken != "def502004f618f338802dbNewRefresh" {
			t.Errorf("token set %+v, want the login's tokens", ts)
		}
		if rc.count(RefreshPath) != 1 || rc.count(LoginPath) != 1 {
			t.Errorf("refresh %d, login %d; want one each", rc.count(RefreshPath), rc.count(LoginPath))
		}
	})
	t.Run("refresh rejected, login rejected", func(t *testing.T) {
		rc, cfg := serve(t, map[string]func(http.ResponseWriter){RefreshPath: reply(401, doc401),
			LoginPath: reply(401, `{"code":401,"status":"error","data":{"error":"The user credentials were incorrect. `+testPassword+`"}}`)})
		_, err := newP().Refresh(context.Background(), cfg, fullGrant())
		pe := asError(t, err)
		if pe.Kind != provider.Permanent || pe.Code != CodeLoginRejected || !strings.Contains(pe.Description, "refresh token rejected") {
			t.Errorf("got %v", err)
		}
		if rc.count(LoginPath) != 1 {
			t.Errorf("%d logins", rc.count(LoginPath))
		}
		assertNoSecrets(t, err)
	})
	t.Run("refresh rejected, login unavailable", func(t *testing.T) {
		_, cfg := serve(t, map[string]func(http.ResponseWriter){RefreshPath: reply(401, doc401), LoginPath: reply(503, `down`)})
		_, err := newP().Refresh(context.Background(), cfg, fullGrant())
		if pe := asError(t, err); pe.Kind != provider.Transient || pe.Code != "http_503" {
			t.Errorf("got %v", err)
		}
	})
	t.Run("transient refresh failure does not log in", func(t *testing.T) {
		rc, cfg := serve(t, map[string]func(http.ResponseWriter){RefreshPath: reply(502, `bad gateway`), LoginPath: reply(200, docLoginAnswer)})
		_, err := newP().Refresh(context.Background(), cfg, fullGrant())
		if pe := asError(t, err); pe.Kind != provider.Transient || rc.count(LoginPath) != 0 {
			t.Errorf("got %v, %d logins", err, rc.count(LoginPath))
		}
	})
	t.Run("malformed refresh answer does not log in", func(t *testing.T) {
		rc, cfg := serve(t, map[string]func(http.ResponseWriter){RefreshPath: reply(200, `nope`), LoginPath: reply(200, docLoginAnswer)})
		_, err := newP().Refresh(context.Background(), cfg, fullGrant())
		if pe := asError(t, err); pe.Code != CodeMalformedResponse || rc.count(LoginPath) != 0 {
			t.Errorf("got %v, %d logins", err, rc.count(LoginPath))
		}
	})
}

func TestScrubsEchoedSecrets(t *testing.T) {
	echo := `{"code":401,"status":"error","data":{"error":"bad refresh_token ` + testRefresh + ` for client_secret ` + testSecret + ` password ` + testPassword + `"}}`
	_, cfg := serve(t, map[string]func(http.ResponseWriter){RefreshPath: reply(401, echo), LoginPath: reply(500, echo)})
	_, err := newP().Refresh(context.Background(), cfg, fullGrant())
	assertNoSecrets(t, err)
	if !strings.Contains(err.Error(), "[redacted]") {
		t.Errorf("expected a redaction in %s", err)
	}
}

func TestValidate(t *testing.T) {
	p := &Provider{}
	for _, tc := range []struct {
		cfg  provider.Config
		want string
	}{
		{provider.Config{ClientID: "1"}, ""},
		{provider.Config{ClientID: "1", BaseURL: "https://zogo.vn"}, ""},
		{provider.Config{}, "client_id: required"},
		{provider.Config{ClientID: "1", BaseURL: "ftp://x"}, "base_url: "},
		{provider.Config{ClientID: "1", BaseURL: "https://u:p@zogo.vn"}, "base_url: must not contain user info"},
	} {
		err := p.ValidateConfig(tc.cfg)
		if (tc.want == "") != (err == nil) || (err != nil && !strings.HasPrefix(err.Error(), tc.want)) {
			t.Errorf("ValidateConfig(%+v) = %v, want %q", tc.cfg, err, tc.want)
		}
	}
	for _, tc := range []struct {
		g    provider.Grant
		want string
	}{
		{fullGrant(), ""},
		{provider.Grant{RefreshToken: "r", ClientSecret: "s"}, ""},
		{provider.Grant{Username: "u", Password: "p", ClientSecret: "s"}, ""},
		{provider.Grant{RefreshToken: "r"}, "client_secret: required"},
		{provider.Grant{ClientSecret: "s"}, "refresh_token: required"},
		{provider.Grant{ClientSecret: "s", Username: "u"}, "password: required"},
		{provider.Grant{ClientSecret: "s", Password: testPassword}, "username: required"},
	} {
		err := p.ValidateGrant(tc.g)
		if (tc.want == "") != (err == nil) || (err != nil && !strings.HasPrefix(err.Error(), tc.want)) {
			t.Errorf("ValidateGrant = %v, want %q", err, tc.want)
		}
		if err != nil && strings.Contains(err.Error(), testPassword) {
			t.Errorf("leak: %v", err)
		}
	}
	if pe := asError(t, func() error {
		_, err := newP().Refresh(context.Background(), provider.Config{ClientID: "1"}, provider.Grant{ClientSecret: "s"})
		return err
	}()); pe.Code != CodeMissingGrant || pe.Kind != provider.Permanent {
		t.Errorf("missing grant: %v", pe)
	}
}
