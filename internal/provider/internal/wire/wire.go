// Package wire holds what the login-based adapters (Zogo, SMSBAT ChatHub) share: one
// JSON POST per call that never follows a redirect and is never retried, scrubbing of
// provider text, Retry-After parsing and base URL checks.
package wire

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/tokenwarden/tokenwarden/internal/provider"
)

// DefaultTimeout bounds one request when an adapter is given no client.
const DefaultTimeout = 30 * time.Second

// MaxDescriptionLen is the longest provider-supplied description kept in an error, in
// runes, after scrubbing.
const MaxDescriptionLen = 200

// MaxRetryAfter caps the delay a provider can ask for.
const MaxRetryAfter = time.Hour

// maxBodyBytes bounds a response body; token answers are a few hundred bytes.
const maxBodyBytes = 1 << 20

// Codes of our own.
const (
	CodeNetwork           = "network"
	CodeMalformedResponse = "malformed_response"
	CodeInvalidConfig     = "invalid_config"
)

// Response is one HTTP answer, body read in full.
type Response struct {
	Status int
	Header http.Header
	Body   []byte
}

// PostJSON sends body as one JSON POST to endpoint with extra headers. Exactly one
// request goes on the wire: redirects are not followed (a 3xx comes back as a Response)
// and nothing is retried. Failures without a usable answer are Transient "network"
// errors whose text went through sc.
func PostJSON(ctx context.Context, client *http.Client, endpoint string, body any, header http.Header, sc Scrubber) (*Response, *provider.Error) {
	raw, err := json.Marshal(body)
	if err != nil {
		return nil, &provider.Error{Kind: provider.Permanent, Code: CodeInvalidConfig, Description: "request body could not be encoded"}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, bytes.NewReader(raw))
	if err != nil {
		return nil, &provider.Error{Kind: provider.Permanent, Code: CodeInvalidConfig, Description: "request could not be built", Err: ScrubbedError(err, sc)}
	}
	// No GetBody: net/http cannot replay the body on its own (it would only retry a
	// request nothing was written for, which presents nothing).
	req.GetBody = nil
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	for k, vs := range header {
		for _, v := range vs {
			req.Header.Add(k, v)
		}
	}
	hc := *client
	hc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	resp, err := hc.Do(req)
	if err != nil {
		return nil, &provider.Error{Kind: provider.Transient, Code: CodeNetwork, Description: "no response from provider", Err: ScrubbedError(err, sc)}
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxBodyBytes))
	if err != nil {
		return nil, &provider.Error{Kind: provider.Transient, Code: CodeNetwork, HTTPStatus: resp.StatusCode,
			Description: "response body could not be read", Err: ScrubbedError(err, sc)}
	}
	return &Response{Status: resp.StatusCode, Header: resp.Header, Body: data}, nil
}

// IsTransientStatus reports statuses that say "later": 5xx, 408 and 429.
func IsTransientStatus(status int) bool {
	return status >= 500 || status == http.StatusRequestTimeout || status == http.StatusTooManyRequests
}

// ParseRetryAfter reads RFC 9110 Retry-After (delta-seconds or HTTP-date relative to
// now). Unparseable, past or negative values mean 0; large ones are capped.
func ParseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if strings.Trim(v, "0123456789") == "" {
		secs, err := strconv.ParseInt(v, 10, 64)
		if err != nil || secs > int64(MaxRetryAfter/time.Second) {
			return MaxRetryAfter
		}
		return time.Duration(secs) * time.Second
	}
	t, err := http.ParseTime(v)
	if err != nil {
		return 0
	}
	d := t.Sub(now)
	if d < 0 {
		return 0
	}
	return min(d, MaxRetryAfter)
}

// ValidateBaseURL checks a base URL that will receive secrets: absolute http or https
// with a host, no user info, no query or fragment. Errors start with field.
func ValidateBaseURL(field, raw string) error {
	u, err := url.Parse(raw)
	if err != nil || !u.IsAbs() || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("%s: must be an absolute http or https URL", field)
	}
	if u.User != nil {
		return fmt.Errorf("%s: must not contain user info", field)
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return fmt.Errorf("%s: must not contain a query or fragment", field)
	}
	return nil
}

// JoinURL appends path to base, keeping any path prefix base has.
func JoinURL(base, path string) string {
	return strings.TrimRight(base, "/") + path
}

// Message pulls a human-readable explanation out of an error body: the first string
// found at the given JSON paths ("data.error", "message"), or the body as text when it is
// not JSON. The result is scrubbed and truncated.
func Message(body []byte, sc Scrubber, paths ...string) string {
	var v any
	if json.Unmarshal(body, &v) == nil {
		for _, p := range paths {
			if s, ok := lookup(v, p).(string); ok && s != "" {
				return sc.Scrub(s, MaxDescriptionLen)
			}
		}
		if s, ok := v.(string); ok {
			return sc.Scrub(s, MaxDescriptionLen)
		}
		return ""
	}
	return sc.Scrub(string(body), MaxDescriptionLen)
}

func lookup(v any, path string) any {
	for _, k := range strings.Split(path, ".") {
		m, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = m[k]
	}
	return v
}

// ScrubbedError keeps err in the chain while its text passes through the scrubber.
func ScrubbedError(err error, sc Scrubber) error {
	if err == nil {
		return nil
	}
	return &redactedError{msg: sc.Scrub(err.Error(), 4*MaxDescriptionLen), cause: err}
}

type redactedError struct {
	msg   string
	cause error
}

func (e *redactedError) Error() string { return e.msg }
func (e *redactedError) Unwrap() error { return e.cause }

// Redacted replaces every secret and token-shaped run in scrubbed text.
const Redacted = "[redacted]"

// tokenRun matches runs of token characters (base64, base64url, JWT, hex).
var tokenRun = regexp.MustCompile(`[A-Za-z0-9_.~+/=-]{20,}`)

// Scrubber removes one call's secrets, and anything token-shaped, from provider text.
type Scrubber struct {
	secrets []string // longest first
}

// NewScrubber returns a scrubber for the given secrets (empty ones are ignored). Raw,
// URL-escaped and JSON-escaped spellings are all redacted.
func NewScrubber(secrets ...string) Scrubber {
	seen := map[string]bool{}
	var forms []string
	for _, s := range secrets {
		if s == "" {
			continue
		}
		js, _ := json.Marshal(s)
		for _, f := range []string{s, url.QueryEscape(s), url.PathEscape(s), strings.Trim(string(js), `"`)} {
			if f != "" && !seen[f] {
				seen[f] = true
				forms = append(forms, f)
			}
		}
	}
	sort.Slice(forms, func(i, j int) bool { return len(forms[i]) > len(forms[j]) })
	return Scrubber{secrets: forms}
}

// Scrub returns s with secrets and token-like runs redacted, control characters turned
// into spaces, whitespace collapsed, and the result cut to limit runes (after
// redaction, so a cut never leaves half a secret).
func (sc Scrubber) Scrub(s string, limit int) string {
	for _, secret := range sc.secrets {
		s = strings.ReplaceAll(s, secret, Redacted)
	}
	s = tokenRun.ReplaceAllStringFunc(s, func(run string) string {
		if strings.ContainsFunc(run, func(r rune) bool { return ('0' <= r && r <= '9') || ('A' <= r && r <= 'Z') }) {
			return Redacted
		}
		return run
	})
	s = strings.Join(strings.FieldsFunc(s, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }), " ")
	if limit <= 0 {
		return ""
	}
	n := 0
	for i := range s {
		if n == limit {
			return s[:i] + "…"
		}
		n++
	}
	return s
}

// Client returns c, or a client with DefaultTimeout when c is nil.
func Client(c *http.Client) *http.Client {
	if c == nil {
		return &http.Client{Timeout: DefaultTimeout}
	}
	return c
}
