// Package wire holds the HTTP plumbing the provider adapters share: clients that never
// follow a redirect and carry at most one request per call, Retry-After parsing, lifetime
// and URL checks, and, for the login-based adapters (Zogo, SMSBAT ChatHub), one JSON POST
// per call and error-message extraction. Provider text is scrubbed with package scrub.
package wire

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/tokenwarden/tokenwarden/internal/provider"
	"github.com/tokenwarden/tokenwarden/internal/provider/scrub"
)

// DefaultTimeout bounds one request when an adapter is given no client.
const DefaultTimeout = 30 * time.Second

// MaxDescriptionLen is the longest provider-supplied description kept in an error, in
// runes, after scrubbing.
const MaxDescriptionLen = scrub.MaxDescriptionLen

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

// errSecondRequest should be unreachable: PostJSON sends one request per call.
var errSecondRequest = errors.New("refused a second request in one call (a refresh token or login may be presented only once)")

// PostJSON sends body as one JSON POST to endpoint with extra headers. Exactly one
// request goes on the wire: redirects are not followed (a 3xx comes back as a Response)
// and nothing is retried. Failures without a usable answer are Transient "network"
// errors whose text went through sc.
func PostJSON(ctx context.Context, client *http.Client, endpoint string, body any, header http.Header, sc scrub.Scrubber) (*Response, *provider.Error) {
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
	resp, err := SingleShot(client, errSecondRequest).Do(req)
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

// ParseRetryAfter reads RFC 9110 section 10.2.3 Retry-After: delta-seconds or an
// HTTP-date, taken relative to now (the adapter's injected clock). Unparseable, past or
// negative values mean 0; large ones are capped at MaxRetryAfter.
func ParseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if IsDigits(v) {
		return ParseDelaySeconds(v)
	}
	if v == "" {
		return 0
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

// ParseDelaySeconds reads delta-seconds only (1*DIGIT, surrounding space allowed), as a
// Retry-After without the HTTP-date form or a rate-limit reset header. Anything else
// means 0; large values, overflow included, are capped at MaxRetryAfter.
func ParseDelaySeconds(v string) time.Duration {
	v = strings.TrimSpace(v)
	if !IsDigits(v) {
		return 0
	}
	secs, err := strconv.ParseInt(v, 10, 64)
	if err != nil || secs > int64(MaxRetryAfter/time.Second) {
		// Only overflow makes ParseInt fail on digits; either way it is "a lot".
		return MaxRetryAfter
	}
	return time.Duration(secs) * time.Second
}

// IsDigits reports whether s is one or more ASCII digits.
func IsDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}

// MaxLifetimeSeconds keeps absurd token lifetimes from overflowing time.Duration
// (about 292 years).
const MaxLifetimeSeconds = 100 * 365 * 24 * 3600

// Seconds reads a lifetime in seconds that may arrive as a JSON number (decoded with
// UseNumber or not), a numeric string ("90000") or an already parsed number. Unusable
// values (not a number, NaN, zero or negative) are 0, meaning "not given"; fractions are
// cut and large values capped at MaxLifetimeSeconds.
func Seconds(v any) int64 {
	var f float64
	switch x := v.(type) {
	case float64:
		f = x
	case int64:
		f = float64(x)
	case json.Number:
		g, err := x.Float64()
		if err != nil {
			return 0
		}
		f = g
	case string:
		g, err := strconv.ParseFloat(strings.TrimSpace(x), 64)
		if err != nil {
			return 0
		}
		f = g
	default:
		return 0
	}
	if math.IsNaN(f) || f <= 0 {
		return 0
	}
	return int64(min(f, MaxLifetimeSeconds))
}

// Why a URL that would receive secrets was refused. ValidateEndpointURL and
// ValidateBaseURL wrap them after the field name, so an adapter that words a rule its
// own way can tell them apart with errors.Is.
var (
	ErrNotAbsoluteURL  = errors.New("must be an absolute http or https URL")
	ErrPlainHTTP       = errors.New("must use https; plain http is allowed only for a loopback host (127.0.0.0/8, ::1, localhost)")
	ErrUserInfo        = errors.New("must not contain user info")
	ErrQueryOrFragment = errors.New("must not contain a query or fragment")
)

// ValidateEndpointURL checks a URL that will receive secrets: absolute https with a host,
// and no user info (config travels in workflow input and status; it must not carry
// credentials). Plain http is accepted only for a loopback host, where the fakes and a
// local TLS-terminating proxy listen: to any other host a password, refresh token or app
// secret would cross the network in the clear (seed 003, SMSBAT ChatHub: never send
// authentication over HTTP). A query is allowed. Errors start with field.
func ValidateEndpointURL(field, raw string) error {
	_, err := parseEndpointURL(field, raw)
	return err
}

// ValidateBaseURL checks a base URL that paths are appended to and that will receive
// secrets: the rules of ValidateEndpointURL, and no query or fragment (a bare trailing
// "?" included, which would turn the appended path into a query). Errors start with
// field.
func ValidateBaseURL(field, raw string) error {
	u, err := parseEndpointURL(field, raw)
	if err != nil {
		return err
	}
	if u.RawQuery != "" || u.Fragment != "" || u.ForceQuery {
		return fmt.Errorf("%s: %w", field, ErrQueryOrFragment)
	}
	return nil
}

// ValidateRedirectURI checks an authorization flow's redirect URI (config.redirect_uri):
// the browser carries the authorization code there, so the rules of ValidateEndpointURL
// apply, and RFC 6749 section 3.1.2 forbids a fragment. Errors start with field.
func ValidateRedirectURI(field, raw string) error {
	u, err := parseEndpointURL(field, raw)
	if err != nil {
		return err
	}
	if u.Fragment != "" {
		return fmt.Errorf("%s: must not contain a fragment", field)
	}
	return nil
}

func parseEndpointURL(field, raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil || !u.IsAbs() || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("%s: %w", field, ErrNotAbsoluteURL)
	}
	if u.User != nil {
		return nil, fmt.Errorf("%s: %w", field, ErrUserInfo)
	}
	if u.Scheme == "http" && !IsLoopbackHost(u.Hostname()) {
		return nil, fmt.Errorf("%s: %w", field, ErrPlainHTTP)
	}
	return u, nil
}

// IsLoopbackHost reports whether host (a URL's Hostname: no port, no brackets) names
// this machine: an IPv4 address in 127.0.0.0/8, ::1 (or the IPv4-mapped form of a
// loopback address), or the name localhost. Other names, "*.localhost" included, are not
// trusted: what they resolve to is up to the resolver, not to this check.
func IsLoopbackHost(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.Unmap().IsLoopback()
}

// JoinURL appends path to base, keeping any path prefix base has.
func JoinURL(base, path string) string {
	return strings.TrimRight(base, "/") + path
}

// Message pulls a human-readable explanation out of an error body: the first string
// found at the given JSON paths ("data.error", "message"), or the body as text when it is
// not JSON. The result is scrubbed and truncated.
func Message(body []byte, sc scrub.Scrubber, paths ...string) string {
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

// ScrubbedError keeps err in the chain (errors.Is(err, context.DeadlineExceeded) still
// works) while its text passes through sc, cut to 4*MaxDescriptionLen runes.
func ScrubbedError(err error, sc scrub.Scrubber) error {
	return sc.Error(err, 4*MaxDescriptionLen)
}

// Client returns c, or a client with DefaultTimeout when c is nil.
func Client(c *http.Client) *http.Client {
	if c == nil {
		return &http.Client{Timeout: DefaultTimeout}
	}
	return c
}

// NoRedirects returns a copy of c (nil: a client with DefaultTimeout) that hands a 3xx
// answer back instead of following it: a followed redirect would carry the request's
// secrets to whatever host the Location names. c itself is not changed.
func NoRedirects(c *http.Client) *http.Client {
	hc := *Client(c)
	hc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return &hc
}

// SingleShot returns a copy of c (nil: a client with DefaultTimeout) for one call: it
// never follows a redirect, and it carries at most one request; any later one fails with
// errSecond without reaching the network. Build one per call. The guard should never
// fire; it keeps "a refresh token is presented exactly once" from depending on the
// internals of net/http or of a client library.
func SingleShot(c *http.Client, errSecond error) *http.Client {
	hc := NoRedirects(c)
	hc.Transport = OneRequest(hc.Transport, errSecond)
	return hc
}

// OneRequest wraps base (nil: http.DefaultTransport) so that it carries at most one
// request; later ones have their body closed and fail with errSecond.
func OneRequest(base http.RoundTripper, errSecond error) http.RoundTripper {
	if base == nil {
		base = http.DefaultTransport
	}
	return &oneRequest{base: base, errSecond: errSecond}
}

type oneRequest struct {
	base      http.RoundTripper
	errSecond error

	mu   sync.Mutex
	sent bool
}

func (t *oneRequest) RoundTrip(req *http.Request) (*http.Response, error) {
	t.mu.Lock()
	second := t.sent
	t.sent = true
	t.mu.Unlock()
	if second {
		if req.Body != nil {
			req.Body.Close()
		}
		return nil, t.errSecond
	}
	return t.base.RoundTrip(req)
}
