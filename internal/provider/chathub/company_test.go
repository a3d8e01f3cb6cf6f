package chathub

import (
	"context"
	"encoding/base64"
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
	testLogin    = "acme-company"
	testPassword = "Company-Password-0123456789"
)

// docJWT is the company token from the ChatHub documentation (seed 003): no exp.
const docJWT = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIiwiaWF0IjoxNTE2MjM5MDIyfQ.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c"

func jwtWith(t *testing.T, claims any) string {
	t.Helper()
	p, err := json.Marshal(claims)
	if err != nil {
		t.Fatal(err)
	}
	enc := base64.RawURLEncoding
	return enc.EncodeToString([]byte(`{"alg":"HS256","typ":"JWT"}`)) + "." + enc.EncodeToString(p) + ".c2lnbmF0dXJl"
}

type recorder struct {
	mu     sync.Mutex
	n      int
	path   string
	ctype  string
	body   map[string]any
	status int
	header []string
	answer string
}

func (rc *recorder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	raw, _ := io.ReadAll(r.Body)
	rc.mu.Lock()
	defer rc.mu.Unlock()
	rc.n++
	rc.path, rc.ctype = r.URL.Path, r.Header.Get("Content-Type")
	rc.body = nil
	_ = json.Unmarshal(raw, &rc.body)
	for i := 0; i+1 < len(rc.header); i += 2 {
		w.Header().Set(rc.header[i], rc.header[i+1])
	}
	w.WriteHeader(rc.status)
	_, _ = io.WriteString(w, rc.answer)
}

func serve(t *testing.T, status int, answer string, header ...string) (*recorder, provider.Config) {
	t.Helper()
	rc := &recorder{status: status, answer: answer, header: header}
	srv := httptest.NewServer(rc)
	t.Cleanup(srv.Close)
	return rc, provider.Config{BaseURL: srv.URL}
}

func grant() provider.Grant { return provider.Grant{Username: testLogin, Password: testPassword} }

func newC() *Company { return NewCompany(nil, func() time.Time { return fixedNow }) }

func asError(t *testing.T, err error) *provider.Error {
	t.Helper()
	var pe *provider.Error
	if !errors.As(err, &pe) {
		t.Fatalf("error %v (%T) is not a *provider.Error", err, err)
	}
	return pe
}

func TestCompanyRequestAndDocumentedAnswer(t *testing.T) {
	rc, cfg := serve(t, 200, `"`+docJWT+`"`)
	ts, err := newC().Refresh(context.Background(), cfg, grant())
	if err != nil {
		t.Fatal(err)
	}
	if rc.n != 1 || rc.path != CompanyTokenPath || rc.ctype != "application/json" {
		t.Errorf("request: %d × %s %q", rc.n, rc.path, rc.ctype)
	}
	if len(rc.body) != 2 || rc.body["login"] != testLogin || rc.body["password"] != testPassword {
		t.Errorf("body %v, want exactly login and password", rc.body)
	}
	// The documented token has no exp: it lives for the rotation period, so the workflow
	// logs in again months from now, not on its one-hour assumed lifetime.
	if ts.AccessToken != docJWT || ts.TokenType != "Bearer" || ts.RefreshToken != "" ||
		!ts.AccessExpiresAt.Equal(fixedNow.Add(DefaultCompanyRotation)) {
		t.Errorf("token set %+v: want the JWT, no refresh token, expiry at the end of the rotation period", ts)
	}
}

func TestCompanyExpClaim(t *testing.T) {
	exp := fixedNow.Add(90 * 24 * time.Hour)
	rotateBy := fixedNow.Add(DefaultCompanyRotation)
	for _, tc := range []struct {
		name, answer string
		want         time.Time
		malformed    bool
	}{
		{"exp", `"` + jwtWith(t, map[string]any{"sub": 1, "exp": exp.Unix()}) + `"`, exp, false},
		{"fractional exp", `"` + jwtWith(t, map[string]any{"exp": float64(exp.Unix()) + 0.5}) + `"`, exp.Add(500 * time.Millisecond), false},
		{"unquoted JWT", jwtWith(t, map[string]any{"exp": exp.Unix()}), exp, false},
		{"no exp", `"` + jwtWith(t, map[string]any{"sub": 1}) + `"`, rotateBy, false},
		{"exp after the rotation period", `"` + jwtWith(t, map[string]any{"exp": rotateBy.Add(time.Hour).Unix()}) + `"`, rotateBy, false},
		{"exp as string", `"` + jwtWith(t, map[string]any{"exp": "soon"}) + `"`, time.Time{}, true},
		{"exp in the past", `"` + jwtWith(t, map[string]any{"exp": fixedNow.Add(-time.Minute).Unix()}) + `"`, time.Time{}, true},
		{"two parts", `"eyJhbGciOiJIUzI1NiJ9.eyJleHAiOjF9"`, time.Time{}, true},
		{"payload not base64", `"eyJhbGciOiJIUzI1NiJ9.!!!.sig"`, time.Time{}, true},
		{"payload not JSON", `"eyJhbGciOiJIUzI1NiJ9.` + base64.RawURLEncoding.EncodeToString([]byte("hello")) + `.sig"`, time.Time{}, true},
		{"JSON object instead of string", `{"token":"` + docJWT + `"}`, time.Time{}, true},
		{"empty string", `""`, time.Time{}, true},
		{"broken JSON string", `"eyJ`, time.Time{}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, cfg := serve(t, 200, tc.answer)
			ts, err := newC().Refresh(context.Background(), cfg, grant())
			if tc.malformed {
				pe := asError(t, err)
				if pe.Kind != provider.Transient || pe.Code != CodeMalformedResponse {
					t.Errorf("got %v", err)
				}
				if strings.Contains(err.Error(), "eyJ") {
					t.Errorf("error quotes the token: %s", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !ts.AccessExpiresAt.Equal(tc.want) {
				t.Errorf("AccessExpiresAt %s, want %s", ts.AccessExpiresAt, tc.want)
			}
		})
	}
}

func TestCompanyClassification(t *testing.T) {
	for _, tc := range []struct {
		name   string
		status int
		body   string
		header []string
		kind   provider.Kind
		code   string
		retry  time.Duration
	}{
		{"401", 401, `{"error":"Invalid login or password"}`, nil, provider.Permanent, CodeLoginRejected, 0},
		{"403", 403, `Forbidden`, nil, provider.Permanent, CodeLoginRejected, 0},
		{"400", 400, `{"title":"One or more validation errors occurred."}`, nil, provider.Permanent, "http_400", 0},
		{"404", 404, ``, nil, provider.Permanent, "http_404", 0},
		{"302", 302, ``, []string{"Location", "https://elsewhere.example/"}, provider.Permanent, "http_302", 0},
		{"500", 500, `boom`, nil, provider.Transient, "http_500", 0},
		{"502", 502, `<html>bad gateway</html>`, nil, provider.Transient, "http_502", 0},
		{"429", 429, ``, []string{"Retry-After", "30"}, provider.Transient, "http_429", 30 * time.Second},
		{"408", 408, ``, nil, provider.Transient, "http_408", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rc, cfg := serve(t, tc.status, tc.body, tc.header...)
			_, err := newC().Refresh(context.Background(), cfg, grant())
			pe := asError(t, err)
			if pe.Kind != tc.kind || pe.Code != tc.code || pe.HTTPStatus != tc.status || pe.RetryAfter != tc.retry {
				t.Errorf("got %v (kind %v, retry %s)", err, pe.Kind, pe.RetryAfter)
			}
			if rc.n != 1 {
				t.Errorf("%d requests, want 1 (no retries, no redirects)", rc.n)
			}
		})
	}
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close()
	_, err := newC().Refresh(context.Background(), provider.Config{BaseURL: url}, grant())
	if pe := asError(t, err); pe.Kind != provider.Transient || pe.Code != CodeNetwork {
		t.Errorf("closed server: %v", err)
	}
}

func TestCompanyScrubsSecrets(t *testing.T) {
	_, cfg := serve(t, 401, `{"error":"wrong password `+testPassword+` for `+testLogin+`"}`)
	_, err := newC().Refresh(context.Background(), cfg, grant())
	if strings.Contains(err.Error(), testPassword) || strings.Contains(err.Error(), testLogin) {
		t.Errorf("error leaks the login: %s", err)
	}
	if !strings.Contains(err.Error(), "[redacted]") {
		t.Errorf("want a redaction in %s", err)
	}
}

func TestCompanyValidate(t *testing.T) {
	c := &Company{}
	if err := c.ValidateConfig(provider.Config{}); err != nil {
		t.Errorf("empty config (default base URL): %v", err)
	}
	if err := c.ValidateConfig(provider.Config{BaseURL: "chatapi.smsbat.com"}); err == nil || !strings.HasPrefix(err.Error(), "base_url: ") {
		t.Errorf("relative base_url: %v", err)
	}
	for _, tc := range []struct {
		lifetime string
		ok       bool
	}{
		{"", true}, {"2160h", true}, {"3s", true}, {"4392h", true},
		{"4393h", false}, {"0s", false}, {"-1h", false}, {"90d", false}, {"soon", false},
	} {
		err := c.ValidateConfig(provider.Config{TokenLifetime: tc.lifetime})
		if tc.ok != (err == nil) || (err != nil && !strings.HasPrefix(err.Error(), "token_lifetime: ")) {
			t.Errorf("token_lifetime %q: %v", tc.lifetime, err)
		}
	}
	for _, tc := range []struct {
		g    provider.Grant
		want string
	}{
		{grant(), ""},
		{provider.Grant{Password: testPassword}, "username: required"},
		{provider.Grant{Username: testLogin}, "password: required"},
		{provider.Grant{RefreshToken: "r"}, "username: required"},
	} {
		err := c.ValidateGrant(tc.g)
		if (tc.want == "") != (err == nil) || (err != nil && !strings.HasPrefix(err.Error(), tc.want)) {
			t.Errorf("ValidateGrant = %v, want %q", err, tc.want)
		}
	}
	_, err := newC().Refresh(context.Background(), provider.Config{}, provider.Grant{Username: testLogin})
	if pe := asError(t, err); pe.Kind != provider.Permanent || pe.Code != CodeMissingGrant {
		t.Errorf("missing password: %v", err)
	}
}

// TestCompanyTokenLifetimeChoosesTheRotation: config.token_lifetime replaces the default
// rotation period, for a token with no exp and for one whose exp is later.
func TestCompanyTokenLifetimeChoosesTheRotation(t *testing.T) {
	for _, answer := range []string{`"` + docJWT + `"`, `"` + jwtWith(t, map[string]any{"exp": fixedNow.Add(100 * 24 * time.Hour).Unix()}) + `"`} {
		_, cfg := serve(t, 200, answer)
		cfg.TokenLifetime = "2160h"
		ts, err := newC().Refresh(context.Background(), cfg, grant())
		if err != nil {
			t.Fatal(err)
		}
		if want := fixedNow.Add(90 * 24 * time.Hour); !ts.AccessExpiresAt.Equal(want) {
			t.Errorf("AccessExpiresAt %s, want %s (token_lifetime 2160h)", ts.AccessExpiresAt, want)
		}
	}
}

func TestTokenExpiry(t *testing.T) {
	if exp, err := TokenExpiry(docJWT); err != nil || !exp.IsZero() {
		t.Errorf("documented JWT: %s %v", exp, err)
	}
	padded := "eyJhbGciOiJub25lIn0." + base64.URLEncoding.EncodeToString([]byte(`{"exp":1900000000}`)) + "."
	if exp, err := TokenExpiry(padded); err != nil || exp.Unix() != 1900000000 {
		t.Errorf("padded unsigned JWT: %s %v", exp, err)
	}
	for _, bad := range []string{"", "a.b", "a..c", "a.b.c.d", "x.eyJleHAiOm51bGx9Cg.y+z", "x." + base64.RawURLEncoding.EncodeToString([]byte(`[1]`)) + ".y"} {
		if _, err := TokenExpiry(bad); !errors.Is(err, ErrMalformedJWT) {
			t.Errorf("TokenExpiry(%q) = %v, want ErrMalformedJWT", bad, err)
		}
	}
}
