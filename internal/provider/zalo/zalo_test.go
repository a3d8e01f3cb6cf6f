package zalo

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tokenwarden/tokenwarden/internal/provider"
	"github.com/tokenwarden/tokenwarden/internal/provider/scrub"
)

// Secret values; no error text may contain them.
const (
	testAppID     = "4291763606161179100"
	testSecret    = "AppSecret-9f8e7d6c5b4a"
	testRefresh   = "rt-Presented_Zalo-Refresh-Token-0123456789"
	testCode      = "code-Zalo-Authorization-Code-0123456789"
	testVerifier  = "verifier-PKCE-0123456789abcdefghijklmnop"
	newAccess     = "at-New-Zalo-Access-Token-ABCDEFGHIJ0123456789"
	newRefresh    = "rt-New-Zalo-Refresh-Token-ABCDEFGHIJ0123456789"
	fixedUnixTime = 1_750_000_000
)

var fixedNow = time.Unix(fixedUnixTime, 0).UTC()

func clock() time.Time { return fixedNow }

// recorded is one request as the test server saw it.
type recorded struct {
	method, path, contentType, secretKey, authorization string
	form                                                url.Values
	rawBody                                             string
}

// recorder serves a fixed answer and records every request.
type recorder struct {
	mu       sync.Mutex
	requests []recorded
	status   int
	header   http.Header
	body     string
}

func (rc *recorder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	raw, _ := io.ReadAll(r.Body)
	form, _ := url.ParseQuery(string(raw))
	rc.mu.Lock()
	rc.requests = append(rc.requests, recorded{
		method: r.Method, path: r.URL.Path, contentType: r.Header.Get("Content-Type"),
		secretKey: r.Header.Get("secret_key"), authorization: r.Header.Get("Authorization"),
		form: form, rawBody: string(raw),
	})
	status, header, body := rc.status, rc.header, rc.body
	rc.mu.Unlock()
	for k, vs := range header {
		for _, v := range vs {
			w.Header().Add(k, v)
		}
	}
	if status == 0 {
		status = http.StatusOK
	}
	if w.Header().Get("Content-Type") == "" {
		w.Header().Set("Content-Type", "application/json")
	}
	w.WriteHeader(status)
	_, _ = io.WriteString(w, body)
}

func (rc *recorder) all() []recorded {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]recorded(nil), rc.requests...)
}

func serve(t *testing.T, rc *recorder) string {
	t.Helper()
	srv := httptest.NewServer(rc)
	t.Cleanup(srv.Close)
	return srv.URL
}

func okBody() string {
	return `{"access_token":"` + newAccess + `","refresh_token":"` + newRefresh + `","expires_in":90000}`
}

func grant() provider.Grant {
	return provider.Grant{RefreshToken: testRefresh, ClientSecret: testSecret}
}

func TestRefreshRequestEncoding(t *testing.T) {
	for _, tc := range []struct {
		name     string
		p        *Provider
		base     string // appended to the server URL
		wantPath string
	}{
		{"oa", NewOA(nil, clock), "", "/v4/oa/access_token"},
		{"user", NewUser(nil, clock), "", "/v4/access_token"},
		{"oa with trailing slash", NewOA(nil, clock), "/", "/v4/oa/access_token"},
		{"user under a path prefix", NewUser(nil, clock), "/zalo-proxy", "/zalo-proxy/v4/access_token"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rc := &recorder{body: okBody()}
			cfg := provider.Config{ClientID: testAppID, BaseURL: serve(t, rc) + tc.base}
			if _, err := tc.p.Refresh(context.Background(), cfg, grant()); err != nil {
				t.Fatalf("Refresh: %v", err)
			}
			reqs := rc.all()
			if len(reqs) != 1 {
				t.Fatalf("%d requests, want exactly 1", len(reqs))
			}
			r := reqs[0]
			if r.method != http.MethodPost || r.path != tc.wantPath {
				t.Errorf("request %s %s, want POST %s", r.method, r.path, tc.wantPath)
			}
			if r.contentType != "application/x-www-form-urlencoded" {
				t.Errorf("Content-Type %q", r.contentType)
			}
			if r.secretKey != testSecret {
				t.Errorf("secret_key header %q, want the app secret", r.secretKey)
			}
			if r.authorization != "" {
				t.Errorf("Authorization header %q sent; Zalo takes the secret in secret_key only", r.authorization)
			}
			want := url.Values{"app_id": {testAppID}, "refresh_token": {testRefresh}, "grant_type": {"refresh_token"}}
			if r.form.Encode() != want.Encode() {
				t.Errorf("form %q, want exactly %q", r.form.Encode(), want.Encode())
			}
			if strings.Contains(r.rawBody, testSecret) {
				t.Errorf("the app secret is in the body")
			}
		})
	}
}

func TestExchangeCodeEncoding(t *testing.T) {
	for _, tc := range []struct {
		name     string
		p        *Provider
		verifier string
		wantPath string
		want     url.Values
	}{
		{"user with verifier", NewUser(nil, clock), testVerifier, "/v4/access_token",
			url.Values{"app_id": {testAppID}, "code": {testCode}, "code_verifier": {testVerifier}, "grant_type": {"authorization_code"}}},
		{"oa with verifier", NewOA(nil, clock), testVerifier, "/v4/oa/access_token",
			url.Values{"app_id": {testAppID}, "code": {testCode}, "code_verifier": {testVerifier}, "grant_type": {"authorization_code"}}},
		{"oa without verifier", NewOA(nil, clock), "", "/v4/oa/access_token",
			url.Values{"app_id": {testAppID}, "code": {testCode}, "grant_type": {"authorization_code"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rc := &recorder{body: okBody()}
			cfg := provider.Config{ClientID: testAppID, BaseURL: serve(t, rc)}
			ts, err := tc.p.ExchangeCode(context.Background(), cfg, testSecret, testCode, tc.verifier)
			if err != nil {
				t.Fatalf("ExchangeCode: %v", err)
			}
			if ts.AccessToken != newAccess || ts.RefreshToken != newRefresh {
				t.Errorf("token set %+v", ts)
			}
			reqs := rc.all()
			if len(reqs) != 1 {
				t.Fatalf("%d requests, want 1", len(reqs))
			}
			if reqs[0].path != tc.wantPath || reqs[0].secretKey != testSecret {
				t.Errorf("path %q secret_key %q", reqs[0].path, reqs[0].secretKey)
			}
			if reqs[0].form.Encode() != tc.want.Encode() {
				t.Errorf("form %q, want %q", reqs[0].form.Encode(), tc.want.Encode())
			}
		})
	}
}

func TestExchangeCodeRefusesWithoutSending(t *testing.T) {
	rc := &recorder{body: okBody()}
	cfg := provider.Config{ClientID: testAppID, BaseURL: serve(t, rc)}
	for name, call := range map[string]func() error{
		"user without verifier": func() error {
			_, err := NewUser(nil, clock).ExchangeCode(context.Background(), cfg, testSecret, testCode, "")
			return err
		},
		"no code": func() error {
			_, err := NewOA(nil, clock).ExchangeCode(context.Background(), cfg, testSecret, " ", "")
			return err
		},
		"no secret": func() error {
			_, err := NewOA(nil, clock).ExchangeCode(context.Background(), cfg, "", testCode, "")
			return err
		},
		"bad config": func() error {
			_, err := NewOA(nil, clock).ExchangeCode(context.Background(), provider.Config{BaseURL: cfg.BaseURL}, testSecret, testCode, "")
			return err
		},
	} {
		t.Run(name, func(t *testing.T) {
			err := call()
			if !provider.IsPermanent(err) {
				t.Fatalf("err %v, want permanent", err)
			}
			assertNoSecrets(t, err)
		})
	}
	if n := len(rc.all()); n != 0 {
		t.Errorf("%d requests sent, want none", n)
	}
}

func TestSuccessParsing(t *testing.T) {
	for _, tc := range []struct {
		name          string
		body          string
		wantRefresh   string
		wantAccessIn  time.Duration // 0: AccessExpiresAt zero
		wantRefreshIn time.Duration // 0: RefreshExpiresAt zero
	}{
		{"expires_in number", okBody(), newRefresh, 90000 * time.Second, DefaultRefreshLifetime},
		{"expires_in string", `{"access_token":"` + newAccess + `","refresh_token":"` + newRefresh + `","expires_in":"90000"}`,
			newRefresh, 90000 * time.Second, DefaultRefreshLifetime},
		{"refresh_token_expires_in string", `{"access_token":"` + newAccess + `","refresh_token":"` + newRefresh + `","expires_in":"90000","refresh_token_expires_in":"7776000"}`,
			newRefresh, 90000 * time.Second, 7776000 * time.Second},
		{"refresh_token_expires_in number", `{"access_token":"` + newAccess + `","refresh_token":"` + newRefresh + `","expires_in":3600,"refresh_token_expires_in":2592000}`,
			newRefresh, time.Hour, 30 * 24 * time.Hour},
		{"error 0 is success", `{"error":0,"access_token":"` + newAccess + `","refresh_token":"` + newRefresh + `","expires_in":90000}`,
			newRefresh, 90000 * time.Second, DefaultRefreshLifetime},
		{"no expires_in", `{"access_token":"` + newAccess + `","refresh_token":"` + newRefresh + `"}`, newRefresh, 0, DefaultRefreshLifetime},
		{"garbage expires_in", `{"access_token":"` + newAccess + `","refresh_token":"` + newRefresh + `","expires_in":"soon"}`, newRefresh, 0, DefaultRefreshLifetime},
		{"no refresh_token", `{"access_token":"` + newAccess + `","expires_in":90000}`, "", 90000 * time.Second, 0},
		{"echoed refresh_token", `{"access_token":"` + newAccess + `","refresh_token":"` + testRefresh + `","expires_in":90000}`, "", 90000 * time.Second, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rc := &recorder{body: tc.body}
			cfg := provider.Config{ClientID: testAppID, BaseURL: serve(t, rc)}
			ts, err := NewOA(nil, clock).Refresh(context.Background(), cfg, grant())
			if err != nil {
				t.Fatalf("Refresh: %v", err)
			}
			if ts.AccessToken != newAccess || ts.RefreshToken != tc.wantRefresh || ts.TokenType != "Bearer" {
				t.Errorf("tokens %q %q %q", ts.AccessToken, ts.RefreshToken, ts.TokenType)
			}
			check := func(what string, got time.Time, want time.Duration) {
				if want == 0 {
					if !got.IsZero() {
						t.Errorf("%s = %v, want zero", what, got)
					}
				} else if !got.Equal(fixedNow.Add(want)) {
					t.Errorf("%s = %v, want now+%v", what, got, want)
				}
			}
			check("AccessExpiresAt", ts.AccessExpiresAt, tc.wantAccessIn)
			check("RefreshExpiresAt", ts.RefreshExpiresAt, tc.wantRefreshIn)
		})
	}
}

func TestClassification(t *testing.T) {
	for _, tc := range []struct {
		name       string
		status     int
		header     http.Header
		body       string
		wantKind   provider.Kind
		wantCode   string
		wantRetry  time.Duration
		wantInDesc string
	}{
		{"-14014 in 200", 200, nil, `{"error":-14014,"error_name":"Invalid refresh token","error_description":"refresh token is expired or used"}`,
			provider.Permanent, "-14014", 0, "Invalid refresh token: refresh token is expired or used"},
		{"-14014 as a string", 200, nil, `{"error":"-14014","error_name":"Invalid refresh token"}`, provider.Permanent, "-14014", 0, "Invalid refresh token"},
		{"-14014 with empty access_token", 200, nil, `{"error":-14014,"error_name":"Invalid refresh token.","message":"","access_token":"","refresh_token":""}`,
			provider.Permanent, "-14014", 0, ""},
		{"-14002 invalid app id", 200, nil, `{"error":-14002,"error_name":"Invalid appId","error_description":"","error_reason":"","ref_doc":""}`,
			provider.Permanent, "-14002", 0, "Invalid appId"},
		{"-14004 secret key", 200, nil, `{"error":-14004,"error_name":"Invalid secret key"}`, provider.Permanent, "-14004", 0, ""},
		{"-14005 code", 200, nil, `{"error":-14005,"error_name":"Invalid code"}`, provider.Permanent, "-14005", 0, ""},
		{"-14018 grant type", 200, nil, `{"error":-14018,"error_name":"Invalid grant type"}`, provider.Permanent, "-14018", 0, ""},
		{"-32 rate limit", 200, http.Header{"Retry-After": {"30"}}, `{"error":-32,"error_name":"Exceed rate limit"}`,
			provider.Transient, "-32", 30 * time.Second, ""},
		{"unknown code naming the refresh token", 200, nil, `{"error":-14999,"error_name":"Refresh_token is revoked"}`, provider.Permanent, "-14999", 0, ""},
		{"unknown code naming invalid", 200, nil, `{"error":-14031,"error_name":"Invalid oa id"}`, provider.Permanent, "-14031", 0, ""},
		{"unknown code otherwise", 200, nil, `{"error":-1,"error_name":"Internal server error"}`, provider.Transient, "-1", 0, "Internal server error"},
		{"unknown code without name", 200, nil, `{"error":-99999}`, provider.Transient, "-99999", 0, ""},
		{"positive unknown code", 200, nil, `{"error":42,"error_name":"invalid something"}`, provider.Transient, "42", 0, ""},
		{"textual invalid_grant", 200, nil, `{"error":"invalid_grant"}`, provider.Permanent, "invalid_grant", 0, ""},
		{"textual server_error", 200, nil, `{"error":"server_error"}`, provider.Transient, "server_error", 0, ""},
		{"missing access_token", 200, nil, `{"refresh_token":"` + newRefresh + `","expires_in":90000}`, provider.Transient, CodeMalformedResponse, 0, ""},
		{"empty access_token", 200, nil, `{"access_token":"","expires_in":90000}`, provider.Transient, CodeMalformedResponse, 0, ""},
		{"malformed JSON", 200, nil, `{"access_token": <html>`, provider.Transient, CodeMalformedResponse, 0, ""},
		{"empty body", 200, nil, ``, provider.Transient, CodeMalformedResponse, 0, ""},
		{"JSON array", 200, nil, `[]`, provider.Transient, CodeMalformedResponse, 0, ""},
		{"JSON null", 200, nil, `null`, provider.Transient, CodeMalformedResponse, 0, ""},
		{"502 text", 502, nil, `Bad Gateway`, provider.Transient, "http_502", 0, "Bad Gateway"},
		{"503 Retry-After", 503, http.Header{"Retry-After": {"120"}}, ``, provider.Transient, "http_503", 2 * time.Minute, ""},
		{"503 huge Retry-After", 503, http.Header{"Retry-After": {"999999"}}, ``, provider.Transient, "http_503", MaxRetryAfter, ""},
		{"500 with a Zalo error is still transient", 500, nil, `{"error":-14014,"error_name":"Invalid refresh token"}`, provider.Transient, "-14014", 0, ""},
		{"429", 429, nil, ``, provider.Transient, "http_429", 0, ""},
		{"408", 408, nil, ``, provider.Transient, "http_408", 0, ""},
		{"400 bare", 400, nil, `<html>bad request</html>`, provider.Transient, "http_400", 0, ""},
		{"400 with Zalo error", 400, nil, `{"error":-14002,"error_name":"Invalid appId"}`, provider.Permanent, "-14002", 0, ""},
		{"401 bare", 401, nil, ``, provider.Permanent, "http_401", 0, ""},
		{"403 bare", 403, nil, ``, provider.Permanent, "http_403", 0, ""},
		{"404 bare", 404, nil, `not found`, provider.Permanent, "http_404", 0, ""},
		{"301", 301, http.Header{"Location": {"https://example.invalid/"}}, ``, provider.Permanent, "http_301", 0, "redirect"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rc := &recorder{status: tc.status, header: tc.header, body: tc.body}
			cfg := provider.Config{ClientID: testAppID, BaseURL: serve(t, rc)}
			_, err := NewOA(nil, clock).Refresh(context.Background(), cfg, grant())
			var pe *provider.Error
			if !errors.As(err, &pe) {
				t.Fatalf("err %v, want *provider.Error", err)
			}
			if pe.Kind != tc.wantKind || pe.Code != tc.wantCode {
				t.Errorf("got %s %q, want %s %q (%v)", pe.Kind, pe.Code, tc.wantKind, tc.wantCode, err)
			}
			if pe.HTTPStatus != tc.status {
				t.Errorf("HTTPStatus %d, want %d", pe.HTTPStatus, tc.status)
			}
			if pe.RetryAfter != tc.wantRetry {
				t.Errorf("RetryAfter %v, want %v", pe.RetryAfter, tc.wantRetry)
			}
			if !strings.Contains(pe.Description, tc.wantInDesc) {
				t.Errorf("description %q lacks %q", pe.Description, tc.wantInDesc)
			}
			if n := len(rc.all()); n != 1 {
				t.Errorf("%d requests, want 1", n)
			}
			assertNoSecrets(t, err)
		})
	}
}

func TestRetryAfterHTTPDate(t *testing.T) {
	when := fixedNow.Add(90 * time.Second).Format(http.TimeFormat)
	rc := &recorder{status: 503, header: http.Header{"Retry-After": {when}}}
	cfg := provider.Config{ClientID: testAppID, BaseURL: serve(t, rc)}
	_, err := NewOA(nil, clock).Refresh(context.Background(), cfg, grant())
	if got := provider.RetryAfter(err); got != 90*time.Second {
		t.Errorf("RetryAfter %v, want 90s", got)
	}
}

func TestRedirectIsNotFollowed(t *testing.T) {
	elsewhere := &recorder{body: okBody()}
	target := serve(t, elsewhere)
	for _, status := range []int{http.StatusTemporaryRedirect, http.StatusPermanentRedirect, http.StatusFound} {
		rc := &recorder{status: status, header: http.Header{"Location": {target + "/v4/oa/access_token"}}}
		cfg := provider.Config{ClientID: testAppID, BaseURL: serve(t, rc)}
		_, err := NewOA(nil, clock).Refresh(context.Background(), cfg, grant())
		if !provider.IsPermanent(err) {
			t.Errorf("%d: err %v, want permanent", status, err)
		}
	}
	if n := len(elsewhere.all()); n != 0 {
		t.Errorf("the redirect target received %d requests; the refresh token left for another host", n)
	}
}

func TestSecretsAreScrubbed(t *testing.T) {
	echo := func(w http.ResponseWriter, r *http.Request) string {
		raw, _ := io.ReadAll(r.Body)
		return string(raw) + " secret=" + r.Header.Get("secret_key") + " " + url.QueryEscape(testRefresh) + " " + newRefresh
	}
	for _, tc := range []struct {
		name   string
		status int
		json   bool
	}{
		{"200 error description", 200, true},
		{"5xx text body", 503, false},
		{"400 text body", 400, false},
		{"404 text body", 404, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				text := echo(w, r)
				w.WriteHeader(tc.status)
				if tc.json {
					_, _ = io.WriteString(w, `{"error":-14014,"error_name":"Invalid refresh token `+testRefresh+`","error_description":`+quote(text)+`}`)
				} else {
					_, _ = io.WriteString(w, text)
				}
			}))
			defer srv.Close()
			cfg := provider.Config{ClientID: testAppID, BaseURL: srv.URL}
			_, err := NewUser(nil, clock).Refresh(context.Background(), cfg, grant())
			if err == nil {
				t.Fatal("want an error")
			}
			assertNoSecrets(t, err)
			if strings.Contains(err.Error(), newRefresh) {
				t.Errorf("a token-like value survived: %v", err)
			}
			if !strings.Contains(err.Error(), scrub.Redacted) {
				t.Errorf("nothing was redacted in %q", err)
			}
		})
	}
	t.Run("exchange", func(t *testing.T) {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.WriteString(w, `{"error":-14005,"error_name":"Invalid code","error_description":`+quote(echo(w, r)+" "+testCode+" "+testVerifier)+`}`)
		}))
		defer srv.Close()
		_, err := NewUser(nil, clock).ExchangeCode(context.Background(), provider.Config{ClientID: testAppID, BaseURL: srv.URL}, testSecret, testCode, testVerifier)
		if !provider.IsPermanent(err) {
			t.Fatalf("err %v, want permanent", err)
		}
		assertNoSecrets(t, err)
	})
}

func TestNetworkFailures(t *testing.T) {
	t.Run("connection refused", func(t *testing.T) {
		srv := httptest.NewServer(http.NotFoundHandler())
		base := srv.URL
		srv.Close()
		_, err := NewOA(nil, clock).Refresh(context.Background(), provider.Config{ClientID: testAppID, BaseURL: base}, grant())
		var pe *provider.Error
		if !errors.As(err, &pe) || pe.Kind != provider.Transient || pe.Code != CodeNetwork {
			t.Fatalf("err %v, want transient network", err)
		}
		assertNoSecrets(t, err)
	})
	t.Run("timeout keeps the cause", func(t *testing.T) {
		release := make(chan struct{})
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			select {
			case <-release:
			case <-r.Context().Done():
			}
		}))
		defer srv.Close()
		defer close(release)
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		defer cancel()
		_, err := NewOA(nil, clock).Refresh(ctx, provider.Config{ClientID: testAppID, BaseURL: srv.URL}, grant())
		if provider.IsPermanent(err) || !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("err %v, want transient wrapping context.DeadlineExceeded", err)
		}
	})
	t.Run("connection closed after the request: no second attempt", func(t *testing.T) {
		var mu sync.Mutex
		n := 0
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.ReadAll(r.Body)
			mu.Lock()
			n++
			mu.Unlock()
			conn, _, err := w.(http.Hijacker).Hijack()
			if err == nil {
				conn.Close()
			}
		}))
		defer srv.Close()
		_, err := NewOA(nil, clock).Refresh(context.Background(), provider.Config{ClientID: testAppID, BaseURL: srv.URL}, grant())
		if err == nil || provider.IsPermanent(err) {
			t.Fatalf("err %v, want transient", err)
		}
		mu.Lock()
		defer mu.Unlock()
		if n != 1 {
			t.Errorf("the server saw %d requests, want exactly 1", n)
		}
	})
}

func TestSingleShotRefusesASecondRequest(t *testing.T) {
	rc := &recorder{body: okBody()}
	base := serve(t, rc)
	hc := NewOA(nil, clock).callClient()
	for i := 0; i < 2; i++ {
		req, _ := http.NewRequest(http.MethodPost, base+OATokenPath, strings.NewReader("x=1"))
		resp, err := hc.Do(req)
		if i == 0 {
			if err != nil {
				t.Fatalf("first request: %v", err)
			}
			resp.Body.Close()
		} else if !errors.Is(err, errSecondRequest) {
			t.Fatalf("second request: err %v, want errSecondRequest", err)
		}
	}
	if n := len(rc.all()); n != 1 {
		t.Errorf("%d requests reached the server, want 1", n)
	}
}

func TestValidateConfig(t *testing.T) {
	p := NewOA(nil, nil)
	for _, tc := range []struct {
		cfg       provider.Config
		wantField string // "" = valid
	}{
		{provider.Config{ClientID: testAppID}, ""},
		{provider.Config{ClientID: testAppID, BaseURL: "http://127.0.0.1:8080"}, ""},
		{provider.Config{ClientID: testAppID, BaseURL: "https://proxy.example/zalo/"}, ""},
		{provider.Config{}, "client_id: required"},
		{provider.Config{ClientID: "app-secret-pasted"}, "client_id: must be"},
		{provider.Config{ClientID: " 123"}, "client_id: must be"},
		{provider.Config{ClientID: testAppID, BaseURL: "oauth.zaloapp.com"}, "base_url:"},
		{provider.Config{ClientID: testAppID, BaseURL: "ftp://oauth.zaloapp.com"}, "base_url:"},
		{provider.Config{ClientID: testAppID, BaseURL: "https://u:p@oauth.zaloapp.com"}, "base_url: must not contain user info"},
		{provider.Config{ClientID: testAppID, BaseURL: "https://oauth.zaloapp.com?x=1"}, "base_url: must not have a query"},
		{provider.Config{ClientID: testAppID, TokenURL: "https://oauth.zaloapp.com/v4/oa/access_token"}, "token_url: not used by zalo-oa"},
		{provider.Config{ClientID: testAppID, IntrospectionURL: "https://x.example/introspect"}, "introspection_url:"},
		{provider.Config{ClientID: testAppID, AuthStyle: "header"}, "auth_style:"},
		{provider.Config{ClientID: testAppID, Scopes: []string{"x"}}, "scopes:"},
		{provider.Config{ClientID: testAppID, OperatorID: "7"}, "operator_id:"},
		{provider.Config{ClientID: testAppID, Parent: "p"}, "parent:"},
	} {
		err := p.ValidateConfig(tc.cfg)
		switch {
		case tc.wantField == "" && err != nil:
			t.Errorf("%+v: unexpected error %v", tc.cfg, err)
		case tc.wantField != "" && (err == nil || !strings.HasPrefix(err.Error(), tc.wantField)):
			t.Errorf("%+v: error %v, want prefix %q", tc.cfg, err, tc.wantField)
		}
	}
}

func TestValidateGrant(t *testing.T) {
	p := NewUser(nil, nil)
	for _, tc := range []struct {
		g    provider.Grant
		want string
	}{
		{grant(), ""},
		{provider.Grant{ClientSecret: testSecret}, "refresh_token: required"},
		{provider.Grant{RefreshToken: "  ", ClientSecret: testSecret}, "refresh_token: required"},
		{provider.Grant{RefreshToken: testRefresh}, "client_secret: required (the Zalo app secret)"},
	} {
		err := p.ValidateGrant(tc.g)
		if tc.want == "" {
			if err != nil {
				t.Errorf("unexpected %v", err)
			}
			continue
		}
		if err == nil || err.Error() != tc.want {
			t.Errorf("error %v, want %q", err, tc.want)
		}
		assertNoSecrets(t, err)
	}
}

func TestRefreshRefusesBadInputWithoutSending(t *testing.T) {
	rc := &recorder{body: okBody()}
	base := serve(t, rc)
	for name, tc := range map[string]struct {
		cfg provider.Config
		g   provider.Grant
	}{
		"no app id":        {provider.Config{BaseURL: base}, grant()},
		"token_url set":    {provider.Config{ClientID: testAppID, BaseURL: base, TokenURL: base}, grant()},
		"no refresh token": {provider.Config{ClientID: testAppID, BaseURL: base}, provider.Grant{ClientSecret: testSecret}},
		"no secret":        {provider.Config{ClientID: testAppID, BaseURL: base}, provider.Grant{RefreshToken: testRefresh}},
	} {
		_, err := NewOA(nil, clock).Refresh(context.Background(), tc.cfg, tc.g)
		if !provider.IsPermanent(err) {
			t.Errorf("%s: err %v, want permanent", name, err)
		}
		assertNoSecrets(t, err)
	}
	if n := len(rc.all()); n != 0 {
		t.Errorf("%d requests sent, want none", n)
	}
}

func TestNames(t *testing.T) {
	if NewOA(nil, nil).Name() != "zalo-oa" || NewUser(nil, nil).Name() != "zalo-user" {
		t.Errorf("names %q %q", NewOA(nil, nil).Name(), NewUser(nil, nil).Name())
	}
	if got := NewOA(nil, nil).TokenURL(provider.Config{}); got != "https://oauth.zaloapp.com/v4/oa/access_token" {
		t.Errorf("default OA token URL %q", got)
	}
	if got := NewUser(nil, nil).TokenURL(provider.Config{}); got != "https://oauth.zaloapp.com/v4/access_token" {
		t.Errorf("default user token URL %q", got)
	}
}

func assertNoSecrets(t *testing.T, err error) {
	t.Helper()
	if err == nil {
		return
	}
	msg := err.Error()
	for _, s := range []string{testSecret, testRefresh, url.QueryEscape(testRefresh), testCode, testVerifier} {
		if strings.Contains(msg, s) {
			t.Errorf("error text contains a secret: %q", msg)
		}
	}
}

func quote(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch r {
		case '"', '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}
