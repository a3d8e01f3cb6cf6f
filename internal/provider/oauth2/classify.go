package oauth2provider

import (
	"errors"
	"fmt"
	"net/http"

	"golang.org/x/oauth2"

	"github.com/tokenwarden/tokenwarden/internal/provider"
	"github.com/tokenwarden/tokenwarden/internal/provider/internal/wire"
)

// MaxRetryAfter caps the delay a provider can ask for, so a confused or hostile
// Retry-After cannot stall a credential for days.
const MaxRetryAfter = wire.MaxRetryAfter

// Codes of our own, used when the provider gave none.
const (
	CodeNetwork           = wire.CodeNetwork
	CodeMalformedResponse = wire.CodeMalformedResponse
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
			Description: "no response from token endpoint", Err: wire.ScrubbedError(err, sc)}
	case bodyErr != nil:
		return &provider.Error{Kind: provider.Transient, Code: CodeNetwork, HTTPStatus: status,
			Description: "token response body could not be read", Err: wire.ScrubbedError(bodyErr, sc)}
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
	case wire.IsTransientStatus(status):
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
		e.RetryAfter = wire.ParseRetryAfter(header.Get("Retry-After"), p.now())
	}
	return e
}
