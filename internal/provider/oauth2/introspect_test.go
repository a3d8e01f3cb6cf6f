package oauth2provider

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/tokenwarden/tokenwarden/internal/provider"
)

// introspectionCfg points the token endpoint at tokenEP (which must never be called by
// RefreshTokenActive) and introspection at introspectEP.
func introspectionCfg(tokenEP, introspectEP *endpoint) provider.Config {
	cfg := cfgFor(tokenEP.URL())
	cfg.IntrospectionURL = introspectEP.srv.URL + "/introspect"
	return cfg
}

func active(t *testing.T, cfg provider.Config) (bool, *provider.Error) {
	t.Helper()
	act, supported, err := New(nil, fixedNow).RefreshTokenActive(context.Background(), cfg, grant())
	if !supported {
		t.Fatal("supported = false with an introspection_url")
	}
	if err == nil {
		return act, nil
	}
	var pe *provider.Error
	if !errors.As(err, &pe) {
		t.Fatalf("error is not a *provider.Error: %T %v", err, err)
	}
	if act {
		t.Fatal("active = true together with an error")
	}
	return false, pe
}

func TestRefreshTokenActiveUnsupportedWithoutURL(t *testing.T) {
	tokenEP := newEndpoint(t, jsonReply(200, `{"access_token":"a"}`))
	act, supported, err := New(nil, fixedNow).RefreshTokenActive(context.Background(), cfgFor(tokenEP.URL()), grant())
	if act || supported || err != nil {
		t.Fatalf("got %v %v %v", act, supported, err)
	}
	if n := len(tokenEP.Requests()); n != 0 {
		t.Fatalf("token endpoint called %d times", n)
	}
}

func TestRefreshTokenActive(t *testing.T) {
	wantBasic := "Basic " + base64.StdEncoding.EncodeToString([]byte(url.QueryEscape(testClientID)+":"+url.QueryEscape(testClientSecret)))
	for _, answer := range []bool{true, false} {
		for _, style := range []string{"", "header", "body"} {
			t.Run(fmt.Sprintf("active=%v/style=%s", answer, style), func(t *testing.T) {
				tokenEP := newEndpoint(t, jsonReply(200, `{"access_token":"a"}`))
				body := fmt.Sprintf(`{"active":%v}`, answer)
				if answer {
					body = `{"active":true,"token_type":"refresh_token","client_id":"client-1","exp":1900000000,"scope":"a b"}`
				}
				introEP := newEndpoint(t, jsonReply(200, body))
				cfg := introspectionCfg(tokenEP, introEP)
				cfg.AuthStyle = style
				cfg.Scopes = []string{"a"} // never sent to introspection

				got, perr := active(t, cfg)
				if perr != nil || got != answer {
					t.Fatalf("got %v %v, want %v", got, perr, answer)
				}
				if n := len(tokenEP.Requests()); n != 0 {
					t.Fatalf("RefreshTokenActive called the token endpoint %d times", n)
				}
				reqs := introEP.Requests()
				if len(reqs) != 1 {
					t.Fatalf("%d introspection requests", len(reqs))
				}
				r := reqs[0]
				if r.contentType != "application/x-www-form-urlencoded" || r.form.Get("token") != testRefreshToken ||
					r.form.Get("token_type_hint") != "refresh_token" {
					t.Fatalf("request: %+v", r)
				}
				for _, k := range []string{"refresh_token", "grant_type", "scope"} {
					if r.form.Has(k) {
						t.Fatalf("introspection request carries %s: %v", k, r.form)
					}
				}
				if style == "body" {
					if r.authorization != "" || r.form.Get("client_id") != testClientID || r.form.Get("client_secret") != testClientSecret {
						t.Fatalf("body auth: %+v", r)
					}
				} else if r.authorization != wantBasic || r.form.Has("client_id") || r.form.Has("client_secret") {
					t.Fatalf("basic auth: %+v", r)
				}
			})
		}
	}
}

func TestRefreshTokenActiveClassification(t *testing.T) {
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
	P, T := provider.Permanent, provider.Transient
	cases := []struct {
		name       string
		respond    func(http.ResponseWriter, *http.Request)
		kind       provider.Kind
		code       string
		retryAfter time.Duration
	}{
		{"500", reply(500, "", ""), T, "http_500", 0},
		{"502 html", reply(502, "text/html", "<h1>Bad Gateway</h1>"), T, "http_502", 0},
		{"503 retry-after", reply(503, "text/plain", "down", "Retry-After", "120"), T, "http_503", 2 * time.Minute},
		{"503 retry-after date", reply(503, "", "", "Retry-After", testNow.Add(90*time.Second).Format(http.TimeFormat)), T, "http_503", 90 * time.Second},
		{"429", reply(429, "", "", "Retry-After", "30"), T, "http_429", 30 * time.Second},
		{"429 capped", reply(429, "", "", "Retry-After", "86400"), T, "http_429", MaxRetryAfter},
		{"401 invalid_client", reply(401, "application/json", `{"error":"invalid_client"}`), P, "invalid_client", 0},
		{"401 form invalid_client", reply(401, "application/x-www-form-urlencoded", `error=invalid_client`), P, "invalid_client", 0},
		{"401 empty", reply(401, "", ""), P, "http_401", 0},
		{"403", reply(403, "text/plain", "forbidden"), P, "http_403", 0},
		{"401 ignores retry-after", reply(401, "", "", "Retry-After", "5"), P, "http_401", 0},
		{"400 invalid_request", reply(400, "application/json", `{"error":"invalid_request"}`), P, "invalid_request", 0},
		{"400 unreadable", reply(400, "text/html", "<html>Bad Request</html>"), T, "http_400", 0},
		{"400 error object", reply(400, "application/json", `{"error":{"message":"x"}}`), T, "http_400", 0},
		{"404", reply(404, "", ""), P, "http_404", 0},
		{"302", reply(302, "", "", "Location", "/elsewhere"), P, "http_302", 0},
		{"200 not json", reply(200, "application/json", "<html>hi</html>"), T, CodeMalformedResponse, 0},
		{"200 empty object", reply(200, "application/json", `{}`), T, CodeMalformedResponse, 0},
		{"200 active string", reply(200, "application/json", `{"active":"true"}`), T, CodeMalformedResponse, 0},
		{"200 active null", reply(200, "application/json", `{"active":null}`), T, CodeMalformedResponse, 0},
		{"200 array", reply(200, "application/json", `[true]`), T, CodeMalformedResponse, 0},
		{"200 too large", reply(200, "application/json", `{"active":true,"pad":"`+strings.Repeat("x", maxIntrospectionBody)+`"}`), T, CodeMalformedResponse, 0},
		{"200 server_error", reply(200, "application/json", `{"error":"server_error"}`), T, "server_error", 0},
		{"200 invalid_client", reply(200, "application/json", `{"error":"invalid_client"}`), P, "invalid_client", 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tokenEP := newEndpoint(t, jsonReply(200, `{"access_token":"a"}`))
			introEP := newEndpoint(t, tc.respond)
			_, perr := active(t, introspectionCfg(tokenEP, introEP))
			if perr == nil || perr.Kind != tc.kind || perr.Code != tc.code || perr.RetryAfter != tc.retryAfter {
				t.Fatalf("got %v (retry after %v), want %v %s %v", perr, perr.RetryAfter, tc.kind, tc.code, tc.retryAfter)
			}
			if len(introEP.Requests()) != 1 || len(tokenEP.Requests()) != 0 {
				t.Fatalf("requests: introspection %d, token %d", len(introEP.Requests()), len(tokenEP.Requests()))
			}
		})
	}
}

func TestRefreshTokenActiveNeverFollowsRedirects(t *testing.T) {
	target := newEndpoint(t, jsonReply(200, `{"active":true}`))
	tokenEP := newEndpoint(t, jsonReply(200, `{"access_token":"a"}`))
	for _, status := range []int{301, 302, 303, 307, 308} {
		introEP := newEndpoint(t, func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, target.srv.URL+"/introspect", status)
		})
		_, perr := active(t, introspectionCfg(tokenEP, introEP))
		if perr == nil || perr.Kind != provider.Permanent || perr.HTTPStatus != status {
			t.Fatalf("%d: got %v", status, perr)
		}
	}
	if n := len(target.Requests()); n != 0 {
		t.Fatalf("redirect target received %d requests", n)
	}
}

func TestRefreshTokenActiveNetworkErrors(t *testing.T) {
	tokenEP := newEndpoint(t, jsonReply(200, `{"access_token":"a"}`))
	t.Run("connection refused", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		ln.Close()
		cfg := cfgFor(tokenEP.URL())
		cfg.IntrospectionURL = "http://" + addr + "/introspect"
		_, perr := active(t, cfg)
		wantNetwork(t, perr, 0)
	})
	t.Run("reset", func(t *testing.T) {
		introEP := newEndpoint(t, func(w http.ResponseWriter, r *http.Request) {
			conn, _, err := w.(http.Hijacker).Hijack()
			if err != nil {
				t.Error(err)
				return
			}
			conn.(*net.TCPConn).SetLinger(0)
			conn.Close()
		})
		_, perr := active(t, introspectionCfg(tokenEP, introEP))
		wantNetwork(t, perr, 0)
	})
	t.Run("reset mid body", func(t *testing.T) {
		introEP := newEndpoint(t, func(w http.ResponseWriter, r *http.Request) {
			conn, buf, err := w.(http.Hijacker).Hijack()
			if err != nil {
				t.Error(err)
				return
			}
			buf.WriteString("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 500\r\n\r\n{\"active\":")
			buf.Flush()
			conn.(*net.TCPConn).SetLinger(0)
			conn.Close()
		})
		_, perr := active(t, introspectionCfg(tokenEP, introEP))
		wantNetwork(t, perr, 200)
	})
	t.Run("context deadline", func(t *testing.T) {
		release := make(chan struct{})
		introEP := newEndpoint(t, func(w http.ResponseWriter, r *http.Request) {
			select {
			case <-r.Context().Done():
			case <-release:
			}
		})
		defer close(release)
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		defer cancel()
		_, supported, err := New(nil, fixedNow).RefreshTokenActive(ctx, introspectionCfg(tokenEP, introEP), grant())
		var perr *provider.Error
		if !supported || !errors.As(err, &perr) {
			t.Fatalf("got %v %v", supported, err)
		}
		wantNetwork(t, perr, 0)
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("deadline not in the chain: %v", err)
		}
	})
	if n := len(tokenEP.Requests()); n != 0 {
		t.Fatalf("token endpoint called %d times", n)
	}
}

// TestRefreshTokenActiveCannotLeakSecrets: an introspection endpoint that echoes the
// request in every place an error can carry text.
func TestRefreshTokenActiveCannotLeakSecrets(t *testing.T) {
	jsonStr := func(s string) string { b, _ := json.Marshal(s); return string(b) }
	echo := func(status int, contentType string, body func(form url.Values, auth string) string) func(http.ResponseWriter, *http.Request) {
		return func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", contentType)
			w.WriteHeader(status)
			io.WriteString(w, body(r.PostForm, r.Header.Get("Authorization")))
		}
	}
	cases := map[string]func(http.ResponseWriter, *http.Request){
		"401 json description": echo(401, "application/json", func(f url.Values, auth string) string {
			return `{"error":"invalid_client","error_description":` + jsonStr("token "+f.Get("token")+" secret "+testClientSecret+" auth "+auth) + `}`
		}),
		"json code": echo(400, "application/json", func(f url.Values, _ string) string {
			return `{"error":` + jsonStr(f.Get("token")+testClientSecret) + `}`
		}),
		"error in 200": echo(200, "application/json", func(f url.Values, _ string) string {
			return `{"error":"server_error","error_description":` + jsonStr(testClientSecret+" / "+f.Get("token")) + `}`
		}),
		"html 403": echo(403, "text/html", func(f url.Values, auth string) string {
			return "<pre>request was: " + f.Encode() + "\nAuthorization: " + auth + "</pre>"
		}),
		"plain 500": echo(500, "text/plain", func(f url.Values, _ string) string {
			return "panic: bad token " + f.Get("token") + " secret " + testClientSecret
		}),
		"malformed 200 echoing the token": echo(200, "application/json", func(f url.Values, _ string) string {
			return `{"token":` + jsonStr(f.Get("token")) + `}`
		}),
		"redirect": func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, "/x?t="+url.QueryEscape(r.PostForm.Get("token"))+"&s="+url.QueryEscape(testClientSecret), http.StatusFound)
		},
	}
	basic := base64.StdEncoding.EncodeToString([]byte(testClientID + ":" + url.QueryEscape(testClientSecret)))
	forbidden := []string{testRefreshToken, testClientSecret, url.QueryEscape(testClientSecret), "hunter2", "Pr3sentedRefreshTokenValue", basic}
	tokenEP := newEndpoint(t, jsonReply(200, `{"access_token":"a"}`))
	for name, respond := range cases {
		for _, style := range []string{"header", "body"} {
			t.Run(name+"/"+style, func(t *testing.T) {
				cfg := introspectionCfg(tokenEP, newEndpoint(t, respond))
				cfg.AuthStyle = style
				_, perr := active(t, cfg)
				if perr == nil {
					t.Fatal("no error")
				}
				texts := []string{perr.Error(), perr.Code, perr.Description, fmt.Sprintf("%+v", perr), fmt.Sprintf("%#v", perr)}
				for err := error(perr); err != nil; err = errors.Unwrap(err) {
					texts = append(texts, err.Error())
				}
				for _, text := range texts {
					for _, secret := range forbidden {
						if strings.Contains(text, secret) {
							t.Fatalf("error text leaks %q: %s", secret, text)
						}
					}
				}
			})
		}
	}
	if n := len(tokenEP.Requests()); n != 0 {
		t.Fatalf("token endpoint called %d times", n)
	}
}

func TestRefreshTokenActiveRefusesWithoutRequest(t *testing.T) {
	introEP := newEndpoint(t, jsonReply(200, `{"active":true}`))
	cfg := provider.Config{TokenURL: "https://auth.example.com/token", ClientID: testClientID, IntrospectionURL: introEP.srv.URL + "/introspect"}
	p := New(nil, fixedNow)

	_, supported, err := p.RefreshTokenActive(context.Background(), cfg, provider.Grant{ClientSecret: "x"})
	var perr *provider.Error
	if !supported || !errors.As(err, &perr) || perr.Kind != provider.Permanent || perr.Code != "missing_refresh_token" {
		t.Fatalf("missing token: %v %v", supported, err)
	}
	bad := cfg
	bad.IntrospectionURL = "https://u:p@auth.example.com/introspect"
	_, supported, err = p.RefreshTokenActive(context.Background(), bad, grant())
	if !supported || !errors.As(err, &perr) || perr.Code != "invalid_config" || !strings.Contains(err.Error(), "introspection_url") {
		t.Fatalf("bad config: %v %v", supported, err)
	}
	if n := len(introEP.Requests()); n != 0 {
		t.Fatalf("%d requests", n)
	}
}

func TestValidateConfigIntrospectionURL(t *testing.T) {
	base := provider.Config{TokenURL: "https://auth.example.com/oauth/token", ClientID: "c"}
	cases := []struct {
		url, wantPrefix string // "" = valid
	}{
		{"", ""},
		{"https://auth.example.com/oauth/introspect", ""},
		{"http://127.0.0.1:9400/introspect", ""},
		{"/introspect", "introspection_url: must be an absolute http or https URL"},
		{"ftp://example.com/introspect", "introspection_url: must be an absolute http or https URL"},
		{"https:///introspect", "introspection_url: must be an absolute http or https URL"},
		{"https://exa mple.com/%zz", "introspection_url: must be an absolute http or https URL"},
		{"https://u:p@example.com/introspect", "introspection_url: must not contain user info"},
	}
	for _, tc := range cases {
		cfg := base
		cfg.IntrospectionURL = tc.url
		err := New(nil, nil).ValidateConfig(cfg)
		if tc.wantPrefix == "" {
			if err != nil {
				t.Errorf("%q: unexpected %v", tc.url, err)
			}
			continue
		}
		if err == nil || !strings.HasPrefix(err.Error(), tc.wantPrefix) {
			t.Errorf("%q: got %v, want prefix %q", tc.url, err, tc.wantPrefix)
		}
	}
}
