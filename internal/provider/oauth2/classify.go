package oauth2provider

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"golang.org/x/oauth2"

	"github.com/tokenwarden/tokenwarden/internal/provider"
)

// MaxRetryAfter caps the delay a provider can ask for, so a confused or hostile
// Retry-After cannot stall a credential for days.
const MaxRetryAfter = time.Hour

// Codes of our own, used when the provider gave none.
const (
	CodeNetwork           = "network"
	CodeMalformedResponse = "malformed_response"
)

// transientCodes are error codes with which a server says "not now" rather than "no".
// temporarily_unavailable and server_error come from RFC 6749 section 4.1.2.1, slow_down
// from RFC 8628; some token endpoints use them too.
var transientCodes = map[string]bool{
	"temporarily_unavailable": true,
	"server_error":            true,
	"slow_down":               true,
}

// classify turns whatever x/oauth2 returned into a scrubbed *provider.Error.
func (p *Provider) classify(err error, ex *exchange, sc scrubber) *provider.Error {
	var re *oauth2.RetrieveError
	if errors.As(err, &re) && re.Response != nil {
		return p.classifyResponse(re.Response.StatusCode, re.Response.Header, re.ErrorCode, re.ErrorDescription, re.Body, sc)
	}

	gotResponse, status, bodyErr := ex.snapshot()
	switch {
	case errors.Is(err, errSecondRequest):
		// Unreachable by construction; if it ever happens the token may already be
		// consumed, and only a retry can tell.
		return &provider.Error{Kind: provider.Transient, Code: CodeNetwork, HTTPStatus: status,
			Description: "a second token request was refused", Err: err}
	case !gotResponse:
		return &provider.Error{Kind: provider.Transient, Code: CodeNetwork,
			Description: "no response from token endpoint", Err: scrubbedError(err, sc)}
	case bodyErr != nil:
		return &provider.Error{Kind: provider.Transient, Code: CodeNetwork, HTTPStatus: status,
			Description: "token response body could not be read", Err: scrubbedError(bodyErr, sc)}
	default:
		// A 2xx that x/oauth2 could not turn into a token: not JSON/form, or no
		// access_token. Neither the body nor x/oauth2's message is quoted: the body of an
		// almost-successful answer is exactly where fresh tokens would be.
		return &provider.Error{Kind: provider.Transient, Code: CodeMalformedResponse, HTTPStatus: status,
			Description: "token endpoint answered without a usable token response"}
	}
}

// classifyResponse applies the table in the package documentation to an HTTP answer.
func (p *Provider) classifyResponse(status int, header http.Header, code, description string, body []byte, sc scrubber) *provider.Error {
	code = sc.Scrub(code, maxCodeLen)
	e := &provider.Error{HTTPStatus: status, Code: code}
	if code != "" {
		e.Description = sc.Scrub(description, MaxDescriptionLen)
	} else {
		e.Code = fmt.Sprintf("http_%d", status)
		e.Description = sc.Scrub(string(body), MaxDescriptionLen)
	}

	switch {
	case status >= 500 || status == http.StatusRequestTimeout || status == http.StatusTooManyRequests:
		e.Kind = provider.Transient
	case transientCodes[code]:
		e.Kind = provider.Transient
	case code != "":
		// invalid_grant, invalid_client, unauthorized_client, unsupported_grant_type,
		// invalid_scope, invalid_request and anything else the server chose to name.
		e.Kind = provider.Permanent
	case status == http.StatusBadRequest:
		e.Kind = provider.Transient
	case status >= 300 && status < 500:
		e.Kind = provider.Permanent
	default:
		e.Kind = provider.Transient
	}
	if e.Kind == provider.Transient {
		e.RetryAfter = parseRetryAfter(header.Get("Retry-After"), p.now())
	}
	return e
}

// parseRetryAfter reads RFC 9110 section 10.2.3 Retry-After: delta-seconds or an
// HTTP-date. Dates are taken relative to now (the injected clock). Unparseable, past or
// negative values mean 0; large ones are capped at MaxRetryAfter.
func parseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	var d time.Duration
	if isDigits(v) {
		secs, err := strconv.ParseInt(v, 10, 64)
		if err != nil || secs > int64(MaxRetryAfter/time.Second) {
			// Only overflow makes ParseInt fail on digits; either way it is "a lot".
			return MaxRetryAfter
		}
		d = time.Duration(secs) * time.Second
	} else {
		t, err := http.ParseTime(v)
		if err != nil {
			return 0
		}
		d = t.Sub(now)
		if d < 0 {
			return 0
		}
	}
	return min(d, MaxRetryAfter)
}

func isDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}

// scrubbedError keeps err in the chain while its text passes through the scrubber.
func scrubbedError(err error, sc scrubber) error {
	return sc.Error(err, 4*MaxDescriptionLen)
}
