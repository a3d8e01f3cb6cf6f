package oauth2provider

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tokenwarden/tokenwarden/internal/provider"
)

var testNow = time.Date(2030, 5, 6, 7, 8, 9, 0, time.UTC)

func fixedNow() time.Time { return testNow }

const (
	testRefreshToken = "rt_Pr3sentedRefreshTokenValue_0123456789abcdef"
	testClientID     = "client-1"
	testClientSecret = "hunter2/+&=" // short, with characters that need escaping
)

// seen is one request as the token endpoint received it.
type seen struct {
	form          url.Values
	authorization string
	contentType   string
}

// endpoint is an httptest token endpoint that records every request and answers with
// respond.
type endpoint struct {
	t   *testing.T
	srv *httptest.Server

	mu       sync.Mutex
	requests []seen
}

func newEndpoint(t *testing.T, respond func(w http.ResponseWriter, r *http.Request)) *endpoint {
	t.Helper()
	e := &endpoint{t: t}
	e.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := r.ParseForm(); err != nil {
			t.Errorf("endpoint: parse form: %v", err)
		}
		e.mu.Lock()
		e.requests = append(e.requests, seen{form: r.PostForm, authorization: r.Header.Get("Authorization"), contentType: r.Header.Get("Content-Type")})
		e.mu.Unlock()
		respond(w, r)
	}))
	t.Cleanup(e.srv.Close)
	return e
}

func (e *endpoint) URL() string { return e.srv.URL + "/token" }

func (e *endpoint) Requests() []seen {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]seen(nil), e.requests...)
}

// presentations counts requests that carried refreshToken.
func (e *endpoint) presentations(refreshToken string) int {
	n := 0
	for _, r := range e.Requests() {
		if r.form.Get("refresh_token") == refreshToken {
			n++
		}
	}
	return n
}

func jsonReply(status int, body string) func(http.ResponseWriter, *http.Request) {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		io.WriteString(w, body)
	}
}

func cfgFor(tokenURL string) provider.Config {
	return provider.Config{TokenURL: tokenURL, ClientID: testClientID}
}

func grant() provider.Grant {
	return provider.Grant{RefreshToken: testRefreshToken, ClientSecret: testClientSecret}
}

func refresh(t *testing.T, cfg provider.Config) (provider.TokenSet, *provider.Error) {
	t.Helper()
	ts, err := New(nil, fixedNow).Refresh(context.Background(), cfg, grant())
	if err == nil {
		return ts, nil
	}
	var pe *provider.Error
	if !errors.As(err, &pe) {
		t.Fatalf("error is not a *provider.Error: %T %v", err, err)
	}
	if ts != (provider.TokenSet{}) {
		t.Fatalf("failed refresh returned a token set: %+v", ts)
	}
	return ts, pe
}

func TestRefreshRotated(t *testing.T) {
	e := newEndpoint(t, jsonReply(200, `{"access_token":"at_new","token_type":"bearer","expires_in":3600,
		"refresh_token":"rt_rotated","refresh_token_expires_in":86400}`))
	ts, perr := refresh(t, cfgFor(e.URL()))
	if perr != nil {
		t.Fatal(perr)
	}
	want := provider.TokenSet{
		AccessToken:      "at_new",
		TokenType:        "Bearer",
		RefreshToken:     "rt_rotated",
		AccessExpiresAt:  testNow.Add(time.Hour),
		RefreshExpiresAt: testNow.Add(24 * time.Hour),
	}
	if ts != want {
		t.Fatalf("got %+v\nwant %+v", ts, want)
	}
	reqs := e.Requests()
	if len(reqs) != 1 || reqs[0].form.Get("grant_type") != "refresh_token" || reqs[0].form.Get("refresh_token") != testRefreshToken {
		t.Fatalf("requests: %+v", reqs)
	}
	if reqs[0].form.Has("scope") {
		t.Fatal("scope sent though none configured")
	}
}

func TestRefreshNotRotated(t *testing.T) {
	for name, body := range map[string]string{
		"no refresh_token":   `{"access_token":"at_new","expires_in":60}`,
		"same refresh_token": `{"access_token":"at_new","expires_in":60,"refresh_token":"` + testRefreshToken + `"}`,
		"empty":              `{"access_token":"at_new","expires_in":60,"refresh_token":""}`,
	} {
		t.Run(name, func(t *testing.T) {
			e := newEndpoint(t, jsonReply(200, body))
			ts, perr := refresh(t, cfgFor(e.URL()))
			if perr != nil {
				t.Fatal(perr)
			}
			// x/oauth2 copies the presented token in; the adapter must hand back "".
			if ts.RefreshToken != "" || ts.AccessToken != "at_new" || ts.TokenType != "Bearer" ||
				!ts.AccessExpiresAt.Equal(testNow.Add(time.Minute)) || !ts.RefreshExpiresAt.IsZero() {
				t.Fatalf("got %+v", ts)
			}
		})
	}
}

func TestRefreshLifetimeFormats(t *testing.T) {
	cases := []struct {
		name, contentType, body string
		access, refresh         time.Duration
	}{
		{"string lifetimes", "application/json", `{"access_token":"a","expires_in":"120","refresh_token_expires_in":"7200"}`, 2 * time.Minute, 2 * time.Hour},
		{"no lifetimes", "application/json", `{"access_token":"a"}`, 0, 0},
		{"zero and negative", "application/json", `{"access_token":"a","expires_in":0,"refresh_token_expires_in":-5}`, 0, 0},
		{"garbage refresh lifetime", "application/json", `{"access_token":"a","expires_in":1,"refresh_token_expires_in":"soon"}`, time.Second, 0},
		{"form encoded", "application/x-www-form-urlencoded", `access_token=a&expires_in=300&refresh_token_expires_in=600&refresh_token=rt_x`, 5 * time.Minute, 10 * time.Minute},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newEndpoint(t, func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", tc.contentType)
				io.WriteString(w, tc.body)
			})
			ts, perr := refresh(t, cfgFor(e.URL()))
			if perr != nil {
				t.Fatal(perr)
			}
			check := func(what string, got time.Time, d time.Duration) {
				if d == 0 && !got.IsZero() || d != 0 && !got.Equal(testNow.Add(d)) {
					t.Errorf("%s = %v, want now+%v", what, got, d)
				}
			}
			check("AccessExpiresAt", ts.AccessExpiresAt, tc.access)
			check("RefreshExpiresAt", ts.RefreshExpiresAt, tc.refresh)
		})
	}
}

func TestClientAuthStyles(t *testing.T) {
	wantBasic := "Basic " + base64.StdEncoding.EncodeToString([]byte(url.QueryEscape(testClientID)+":"+url.QueryEscape(testClientSecret)))
	for _, style := range []string{"", "header", "body"} {
		t.Run("style="+style, func(t *testing.T) {
			e := newEndpoint(t, jsonReply(200, `{"access_token":"a"}`))
			cfg := cfgFor(e.URL())
			cfg.AuthStyle = style
			if _, perr := refresh(t, cfg); perr != nil {
				t.Fatal(perr)
			}
			req := e.Requests()[0]
			if req.contentType != "application/x-www-form-urlencoded" {
				t.Errorf("content type %q", req.contentType)
			}
			if style == "body" {
				if req.authorization != "" || req.form.Get("client_id") != testClientID || req.form.Get("client_secret") != testClientSecret {
					t.Fatalf("body auth: authorization %q form %v", req.authorization, req.form)
				}
				return
			}
			if req.authorization != wantBasic || req.form.Has("client_secret") || req.form.Has("client_id") {
				t.Fatalf("header auth: authorization %q form %v", req.authorization, req.form)
			}
		})
	}
}

func TestScopesAreSent(t *testing.T) {
	e := newEndpoint(t, jsonReply(200, `{"access_token":"a"}`))
	cfg := cfgFor(e.URL())
	cfg.Scopes = []string{"read:mail", "offline_access"}
	if _, perr := refresh(t, cfg); perr != nil {
		t.Fatal(perr)
	}
	req := e.Requests()[0]
	if got := req.form.Get("scope"); got != "read:mail offline_access" {
		t.Fatalf("scope = %q", got)
	}
	if req.form.Get("refresh_token") != testRefreshToken || req.form.Get("grant_type") != "refresh_token" {
		t.Fatalf("adding scope lost fields: %v", req.form)
	}
}

// TestClassification covers every row of the table in the package documentation, and
// asserts for each that the refresh token went over the wire exactly once.
func TestClassification(t *testing.T) {
	type want struct {
		kind       provider.Kind
		code       string
		status     int
		retryAfter time.Duration
		descHas    string
	}
	reply := func(status int, contentType, body string, headers ...string) func(http.ResponseWriter, *http.Request) {
		return func(w http.ResponseWriter, r *http.Request) {
			for i := 0; i+1 < len(headers); i += 2 {
				w.Header().Set(headers[i], headers[i+1])
			}
			if contentType != "" {
				w.Header().Set("Content-Type", contentType)
			}
			w.WriteHeader(status)
			io.WriteString(w, body)
		}
	}
	errJSON := func(status int, code string) func(http.ResponseWriter, *http.Request) {
		return reply(status, "application/json", fmt.Sprintf(`{"error":%q,"error_description":"the %s happened"}`, code, code))
	}
	P, T := provider.Permanent, provider.Transient
	cases := []struct {
		name    string
		respond func(http.ResponseWriter, *http.Request)
		want    want
	}{
		// RFC 6749 section 5.2 codes.
		{"invalid_grant", errJSON(400, "invalid_grant"), want{P, "invalid_grant", 400, 0, "the invalid_grant happened"}},
		{"invalid_client 401", errJSON(401, "invalid_client"), want{P, "invalid_client", 401, 0, ""}},
		{"unauthorized_client", errJSON(400, "unauthorized_client"), want{P, "unauthorized_client", 400, 0, ""}},
		{"unsupported_grant_type", errJSON(400, "unsupported_grant_type"), want{P, "unsupported_grant_type", 400, 0, ""}},
		{"invalid_scope", errJSON(400, "invalid_scope"), want{P, "invalid_scope", 400, 0, ""}},
		{"invalid_request", errJSON(400, "invalid_request"), want{P, "invalid_request", 400, 0, ""}},
		{"unknown code", errJSON(400, "consent_required"), want{P, "consent_required", 400, 0, ""}},
		{"form-encoded error", reply(400, "application/x-www-form-urlencoded", "error=invalid_grant&error_description=gone"), want{P, "invalid_grant", 400, 0, "gone"}},
		{"temporarily_unavailable 400", errJSON(400, "temporarily_unavailable"), want{T, "temporarily_unavailable", 400, 0, ""}},
		{"slow_down with retry-after", reply(400, "application/json", `{"error":"slow_down"}`, "Retry-After", "7"), want{T, "slow_down", 400, 7 * time.Second, ""}},
		// Errors inside 200 responses.
		{"error in 200", errJSON(200, "invalid_grant"), want{P, "invalid_grant", 200, 0, ""}},
		{"server_error in 200", errJSON(200, "server_error"), want{T, "server_error", 200, 0, ""}},
		// Server trouble: status wins over any code.
		{"500 empty", reply(500, "", ""), want{T, "http_500", 500, 0, ""}},
		{"502 html", reply(502, "text/html", "<html><body><h1>502 Bad Gateway</h1></body></html>"), want{T, "http_502", 502, 0, "502 Bad Gateway"}},
		{"503 retry-after seconds", reply(503, "text/plain", "down", "Retry-After", "120"), want{T, "http_503", 503, 2 * time.Minute, "down"}},
		{"503 retry-after date", reply(503, "", "", "Retry-After", testNow.Add(90*time.Second).Format(http.TimeFormat)), want{T, "http_503", 503, 90 * time.Second, ""}},
		{"503 with invalid_grant", errJSON(503, "invalid_grant"), want{T, "invalid_grant", 503, 0, ""}},
		{"429", reply(429, "", "", "Retry-After", "30"), want{T, "http_429", 429, 30 * time.Second, ""}},
		{"429 capped", reply(429, "", "", "Retry-After", "86400"), want{T, "http_429", 429, MaxRetryAfter, ""}},
		{"408", reply(408, "", ""), want{T, "http_408", 408, 0, ""}},
		// 4xx without a readable code.
		{"400 html", reply(400, "text/html", "<html>Bad Request</html>"), want{T, "http_400", 400, 0, "Bad Request"}},
		{"400 json without error", reply(400, "application/json", `{"message":"nope"}`), want{T, "http_400", 400, 0, ""}},
		{"400 retry-after honoured", reply(400, "", "", "Retry-After", "5"), want{T, "http_400", 400, 5 * time.Second, ""}},
		{"401 empty", reply(401, "", ""), want{P, "http_401", 401, 0, ""}},
		{"403", reply(403, "text/plain", "forbidden"), want{P, "http_403", 403, 0, "forbidden"}},
		{"404", reply(404, "text/plain", "404 page not found"), want{P, "http_404", 404, 0, ""}},
		{"405", reply(405, "", ""), want{P, "http_405", 405, 0, ""}},
		{"410", reply(410, "", ""), want{P, "http_410", 410, 0, ""}},
		{"permanent ignores retry-after", reply(401, "", "", "Retry-After", "5"), want{P, "http_401", 401, 0, ""}},
		// Redirects are not followed.
		{"302", reply(302, "", "", "Location", "/elsewhere"), want{P, "http_302", 302, 0, ""}},
		{"307", reply(307, "", "", "Location", "/elsewhere"), want{P, "http_307", 307, 0, ""}},
		// 2xx that is not a token response.
		{"200 not json", reply(200, "application/json", "<html>hello</html>"), want{T, CodeMalformedResponse, 200, 0, ""}},
		{"200 text", reply(200, "text/html", "<html>hello</html>"), want{T, CodeMalformedResponse, 200, 0, ""}},
		{"200 no access_token", reply(200, "application/json", `{"token_type":"Bearer","refresh_token":"rt_new"}`), want{T, CodeMalformedResponse, 200, 0, ""}},
		{"200 empty", reply(200, "application/json", ""), want{T, CodeMalformedResponse, 200, 0, ""}},
		{"200 form without access_token", reply(200, "application/x-www-form-urlencoded", "foo=bar"), want{T, CodeMalformedResponse, 200, 0, ""}},
		{"204", reply(204, "", ""), want{T, CodeMalformedResponse, 204, 0, ""}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newEndpoint(t, tc.respond)
			_, perr := refresh(t, cfgFor(e.URL()))
			if perr == nil {
				t.Fatal("no error")
			}
			got := want{perr.Kind, perr.Code, perr.HTTPStatus, perr.RetryAfter, ""}
			w := tc.want
			if got.kind != w.kind || got.code != w.code || got.status != w.status || got.retryAfter != w.retryAfter {
				t.Fatalf("got %v %q %d %v, want %v %q %d %v (%v)", got.kind, got.code, got.status, got.retryAfter, w.kind, w.code, w.status, w.retryAfter, perr)
			}
			if !strings.Contains(perr.Description, w.descHas) {
				t.Fatalf("description %q lacks %q", perr.Description, w.descHas)
			}
			if n := len(e.Requests()); n != 1 {
				t.Fatalf("%d requests, want exactly 1", n)
			}
			if provider.IsPermanent(perr) != (w.kind == provider.Permanent) {
				t.Fatal("IsPermanent disagrees")
			}
		})
	}
}

func TestMalformedResponseNeverQuotesBody(t *testing.T) {
	e := newEndpoint(t, jsonReply(200, `{"token_type":"Bearer","refresh_token":"rt_freshly_minted_SECRET"}`))
	_, perr := refresh(t, cfgFor(e.URL()))
	if perr == nil || strings.Contains(perr.Error(), "freshly") {
		t.Fatalf("malformed response error quotes the body: %v", perr)
	}
}

func TestNetworkErrors(t *testing.T) {
	t.Run("connection refused", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		ln.Close()
		_, perr := refresh(t, cfgFor("http://"+addr+"/token"))
		wantNetwork(t, perr, 0)
	})
	t.Run("connection reset before answer", func(t *testing.T) {
		e := newEndpoint(t, func(w http.ResponseWriter, r *http.Request) {
			conn, _, err := w.(http.Hijacker).Hijack()
			if err != nil {
				t.Error(err)
				return
			}
			conn.(*net.TCPConn).SetLinger(0)
			conn.Close()
		})
		_, perr := refresh(t, cfgFor(e.URL()))
		wantNetwork(t, perr, 0)
		if n := e.presentations(testRefreshToken); n != 1 {
			t.Fatalf("token presented %d times after a reset, want 1", n)
		}
	})
	t.Run("reset mid body", func(t *testing.T) {
		e := newEndpoint(t, func(w http.ResponseWriter, r *http.Request) {
			conn, buf, err := w.(http.Hijacker).Hijack()
			if err != nil {
				t.Error(err)
				return
			}
			buf.WriteString("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 500\r\n\r\n{\"access_token\":\"at_")
			buf.Flush()
			conn.(*net.TCPConn).SetLinger(0)
			conn.Close()
		})
		_, perr := refresh(t, cfgFor(e.URL()))
		wantNetwork(t, perr, 200)
	})
	t.Run("context deadline", func(t *testing.T) {
		release := make(chan struct{})
		e := newEndpoint(t, func(w http.ResponseWriter, r *http.Request) {
			select {
			case <-r.Context().Done():
			case <-release:
			}
		})
		defer close(release)
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		defer cancel()
		_, err := New(nil, fixedNow).Refresh(ctx, cfgFor(e.URL()), grant())
		var perr *provider.Error
		if !errors.As(err, &perr) {
			t.Fatalf("got %v", err)
		}
		wantNetwork(t, perr, 0)
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("deadline not in the chain: %v", err)
		}
	})
	t.Run("client timeout", func(t *testing.T) {
		release := make(chan struct{})
		e := newEndpoint(t, func(w http.ResponseWriter, r *http.Request) {
			select {
			case <-r.Context().Done():
			case <-release:
			}
		})
		defer close(release)
		p := New(&http.Client{Timeout: 50 * time.Millisecond}, fixedNow)
		_, err := p.Refresh(context.Background(), cfgFor(e.URL()), grant())
		var perr *provider.Error
		if !errors.As(err, &perr) {
			t.Fatalf("got %v", err)
		}
		wantNetwork(t, perr, 0)
	})
}

func wantNetwork(t *testing.T, perr *provider.Error, status int) {
	t.Helper()
	if perr == nil || perr.Kind != provider.Transient || perr.Code != CodeNetwork || perr.HTTPStatus != status {
		t.Fatalf("want transient network error with status %d, got %v", status, perr)
	}
}

func TestAutoDetectNeverPresentsTwice(t *testing.T) {
	// x/oauth2's AuthStyleAutoDetect would retry this 401 with body credentials.
	e := newEndpoint(t, jsonReply(401, `{"error":"invalid_client"}`))
	for _, style := range []string{"", "header", "body"} {
		cfg := cfgFor(e.URL())
		cfg.AuthStyle = style
		refresh(t, cfg)
	}
	if n := e.presentations(testRefreshToken); n != 3 {
		t.Fatalf("3 calls presented the token %d times", n)
	}
}

func TestRedirectTargetNeverSeesToken(t *testing.T) {
	target := newEndpoint(t, jsonReply(200, `{"access_token":"a"}`))
	for _, status := range []int{301, 302, 303, 307, 308} {
		e := newEndpoint(t, func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, target.URL(), status)
		})
		_, perr := refresh(t, cfgFor(e.URL()))
		if perr == nil || perr.Kind != provider.Permanent || perr.HTTPStatus != status {
			t.Fatalf("%d: got %v", status, perr)
		}
	}
	if n := len(target.Requests()); n != 0 {
		t.Fatalf("redirect target received %d requests", n)
	}
}

func TestMissingRefreshTokenIsPermanentWithoutRequest(t *testing.T) {
	e := newEndpoint(t, jsonReply(200, `{"access_token":"a"}`))
	_, err := New(nil, nil).Refresh(context.Background(), cfgFor(e.URL()), provider.Grant{ClientSecret: "x"})
	if !provider.IsPermanent(err) || len(e.Requests()) != 0 {
		t.Fatalf("got %v after %d requests", err, len(e.Requests()))
	}
}

func TestInvalidConfigIsPermanentWithoutRequest(t *testing.T) {
	_, err := New(nil, nil).Refresh(context.Background(), provider.Config{TokenURL: "ftp://x/token", ClientID: "c"}, grant())
	var perr *provider.Error
	if !errors.As(err, &perr) || perr.Kind != provider.Permanent || perr.Code != "invalid_config" || !strings.Contains(err.Error(), "token_url") {
		t.Fatalf("got %v", err)
	}
}

func TestValidateConfig(t *testing.T) {
	ok := provider.Config{TokenURL: "https://auth.example.com/oauth/token", ClientID: "c"}
	cases := []struct {
		name   string
		mutate func(*provider.Config)
		field  string // "" = valid
	}{
		{"valid", func(*provider.Config) {}, ""},
		{"http with port", func(c *provider.Config) { c.TokenURL = "http://127.0.0.1:9400/token" }, ""},
		{"header", func(c *provider.Config) { c.AuthStyle = "header" }, ""},
		{"body", func(c *provider.Config) { c.AuthStyle = "body" }, ""},
		{"scopes", func(c *provider.Config) { c.Scopes = []string{"a", "read:x", "https://scope.example/x"} }, ""},
		{"missing token_url", func(c *provider.Config) { c.TokenURL = "" }, "token_url: required"},
		{"relative token_url", func(c *provider.Config) { c.TokenURL = "/token" }, "token_url: must be an absolute http or https URL"},
		{"ftp token_url", func(c *provider.Config) { c.TokenURL = "ftp://example.com/token" }, "token_url: must be an absolute http or https URL"},
		{"no host", func(c *provider.Config) { c.TokenURL = "https:///token" }, "token_url: must be an absolute http or https URL"},
		{"unparseable", func(c *provider.Config) { c.TokenURL = "https://exa mple.com/%zz" }, "token_url: must be an absolute http or https URL"},
		{"user info", func(c *provider.Config) { c.TokenURL = "https://u:p@example.com/token" }, "token_url: must not contain user info"},
		{"missing client_id", func(c *provider.Config) { c.ClientID = "" }, "client_id: required"},
		{"bad auth_style", func(c *provider.Config) { c.AuthStyle = "auto" }, "auth_style:"},
		{"empty scope", func(c *provider.Config) { c.Scopes = []string{"a", ""} }, "scopes[1]:"},
		{"scope with space", func(c *provider.Config) { c.Scopes = []string{"a b"} }, "scopes[0]:"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := ok
			tc.mutate(&cfg)
			err := New(nil, nil).ValidateConfig(cfg)
			if tc.field == "" {
				if err != nil {
					t.Fatalf("unexpected error %v", err)
				}
				return
			}
			if err == nil || !strings.HasPrefix(err.Error(), tc.field) {
				t.Fatalf("got %v, want prefix %q", err, tc.field)
			}
		})
	}
}
