package oauth2provider

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/tokenwarden/tokenwarden/internal/provider"
	"github.com/tokenwarden/tokenwarden/internal/provider/scrub"
)

// TestAdversarialProviderCannotLeakSecrets runs a token endpoint that echoes the refresh
// token and client secret back in every place an error can carry text.
func TestAdversarialProviderCannotLeakSecrets(t *testing.T) {
	jsonStr := func(s string) string { b, _ := json.Marshal(s); return string(b) }
	echo := func(status int, contentType string, body func(form url.Values, auth string) string) func(http.ResponseWriter, *http.Request) {
		return func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", contentType)
			w.WriteHeader(status)
			io.WriteString(w, body(r.PostForm, r.Header.Get("Authorization")))
		}
	}
	cases := map[string]func(http.ResponseWriter, *http.Request){
		"json description": echo(400, "application/json", func(f url.Values, _ string) string {
			return `{"error":"invalid_grant","error_description":` + jsonStr("token "+f.Get("refresh_token")+" with secret "+testClientSecret+" rejected") + `}`
		}),
		"json code": echo(400, "application/json", func(f url.Values, _ string) string {
			return `{"error":` + jsonStr(f.Get("refresh_token")+testClientSecret) + `}`
		}),
		"error in 200": echo(200, "application/json", func(f url.Values, _ string) string {
			return `{"error":"server_error","error_description":` + jsonStr(testClientSecret+" / "+f.Get("refresh_token")) + `}`
		}),
		"html body 400": echo(400, "text/html", func(f url.Values, auth string) string {
			return "<html><pre>request was: " + url.Values(f).Encode() + "\nAuthorization: " + auth + "\nsecret=" + testClientSecret + "</pre></html>"
		}),
		"plain body 500": echo(500, "text/plain", func(f url.Values, _ string) string {
			return "panic: bad token " + f.Get("refresh_token") + " secret " + testClientSecret
		}),
		"json-escaped body 502": echo(502, "text/plain", func(f url.Values, _ string) string {
			return "debug " + jsonStr(f.Get("refresh_token")) + " " + jsonStr(testClientSecret)
		}),
		"form-encoded error": echo(400, "application/x-www-form-urlencoded", func(f url.Values, _ string) string {
			return url.Values{"error": {"invalid_grant"}, "error_description": {f.Get("refresh_token") + " " + testClientSecret}}.Encode()
		}),
		"redirect to token url": func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, "/x?rt="+url.QueryEscape(r.PostForm.Get("refresh_token"))+"&s="+url.QueryEscape(testClientSecret), http.StatusFound)
		},
	}
	forbidden := []string{testRefreshToken, testClientSecret, url.QueryEscape(testClientSecret), "hunter2",
		"Pr3sentedRefreshTokenValue", base64.StdEncoding.EncodeToString([]byte(testClientID + ":" + url.QueryEscape(testClientSecret)))}
	for name, respond := range cases {
		for _, style := range []string{"header", "body"} {
			t.Run(name+"/"+style, func(t *testing.T) {
				e := newEndpoint(t, respond)
				cfg := cfgFor(e.URL())
				cfg.AuthStyle = style
				_, perr := refresh(t, cfg)
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
				if !strings.Contains(perr.Error(), scrub.Redacted) && perr.Description != "" {
					t.Fatalf("expected a redaction marker: %v", perr)
				}
			})
		}
	}
}

func TestScrubberKeepsReadableTextAndRedactsTokens(t *testing.T) {
	sc := newScrubber(testRefreshToken, testClientSecret)
	cases := []struct{ in, want string }{
		{"The refresh token is invalid_or_expired.", "The refresh token is invalid_or_expired."},
		{"unsupported_grant_type for client", "unsupported_grant_type for client"},
		{"see https://auth.example.com/docs/errors/invalid", "see https://auth.example.com/docs/errors/invalid"},
		{"other token ya29.A0ARrdaM-xyzXYZ0123456789abcdef leaked", "other token " + scrub.Redacted + " leaked"},
		{"jwt eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl end", "jwt " + scrub.Redacted + " end"},
		{"hex 0123456789abcdef0123456789abcdef", "hex " + scrub.Redacted},
		{"secret " + testClientSecret + "!", "secret " + scrub.Redacted + "!"},
		{"escaped " + url.QueryEscape(testClientSecret), "escaped " + scrub.Redacted},
		{"line1\nline2\r\n\tline3\x00x", "line1 line2 line3 x"},
	}
	for _, tc := range cases {
		if got := sc.Scrub(tc.in, MaxDescriptionLen); got != tc.want {
			t.Errorf("scrub(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestScrubBeforeTruncate(t *testing.T) {
	// The secret straddles the cut: truncating first would leave a prefix that no longer
	// matches the secret exactly.
	secret := "s3cr3t-that-is-short" // not token-shaped enough to rely on the regex alone
	sc := newScrubber(secret)
	in := strings.Repeat("a ", 97) + secret + " tail"
	got := sc.Scrub(in, MaxDescriptionLen)
	if strings.Contains(got, "s3cr") {
		t.Fatalf("partial secret survived: %q", got)
	}
	if utf8.RuneCountInString(got) > MaxDescriptionLen+1 {
		t.Fatalf("not truncated: %d runes", utf8.RuneCountInString(got))
	}
}

func TestDescriptionTruncated(t *testing.T) {
	long := strings.Repeat("é", 500)
	e := newEndpoint(t, jsonReply(400, `{"error":"invalid_grant","error_description":"`+long+`"}`))
	_, perr := refresh(t, cfgFor(e.URL()))
	if n := utf8.RuneCountInString(perr.Description); n != MaxDescriptionLen+1 || !strings.HasSuffix(perr.Description, "…") {
		t.Fatalf("description has %d runes: %q", n, perr.Description)
	}
}

func TestRetryAfterUsesInjectedClock(t *testing.T) {
	// The date is far from the wall clock; only the injected clock makes it 10 minutes.
	at := testNow.Add(10 * time.Minute).Format(http.TimeFormat)
	e := newEndpoint(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Retry-After", at)
		w.WriteHeader(http.StatusServiceUnavailable)
	})
	_, err := New(nil, fixedNow).Refresh(t.Context(), cfgFor(e.URL()), grant())
	if got := provider.RetryAfter(err); got != 10*time.Minute {
		t.Fatalf("RetryAfter = %v (%v)", got, err)
	}
}
