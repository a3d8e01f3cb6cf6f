package oauth2provider

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strings"

	"golang.org/x/oauth2"

	"github.com/tokenwarden/tokenwarden/internal/provider"
	"github.com/tokenwarden/tokenwarden/internal/provider/internal/wire"
)

// maxIntrospectionBody bounds how much of an introspection answer is read. Real answers
// are a few hundred bytes; anything near the limit is not an RFC 7662 response.
const maxIntrospectionBody = 1 << 20

// RefreshTokenActive asks cfg.IntrospectionURL (RFC 7662) whether grant.RefreshToken is
// still live, without presenting it to the token endpoint. With no IntrospectionURL it
// returns (false, false, nil): the provider offers no way to ask. Otherwise supported is
// true and err, if any, is a *provider.Error classified like Refresh errors; active is
// meaningful only when err is nil.
//
// An introspection request spends nothing: the token endpoint is never contacted, so
// asking twice is harmless, and the call is the safe way to settle the outcome of an
// interrupted Refresh. Note that RFC 7662 section 2.2 makes "active": false cover every
// kind of dead token (used, revoked, expired, unknown, issued to another client); the
// answer says "do not present this token", not why.
func (p *Provider) RefreshTokenActive(ctx context.Context, cfg provider.Config, grant provider.Grant) (active, supported bool, err error) {
	// A client credentials grant has no refresh token whose fate an interrupted mint
	// could have sealed: minting again is always safe.
	if cfg.IntrospectionURL == "" || clientCredentials(cfg) {
		return false, false, nil
	}
	if grant.RefreshToken == "" {
		return false, true, &provider.Error{Kind: provider.Permanent, Code: "missing_refresh_token", Description: "no refresh token to introspect"}
	}
	active, err = p.introspect(ctx, cfg, grant, grant.RefreshToken, "refresh_token")
	return active, true, err
}

// introspect asks cfg.IntrospectionURL whether token (of the hinted type) is active.
func (p *Provider) introspect(ctx context.Context, cfg provider.Config, grant provider.Grant, token, hint string) (bool, error) {
	if err := p.ValidateConfig(cfg); err != nil {
		return false, &provider.Error{Kind: provider.Permanent, Code: "invalid_config", Err: fmt.Errorf("oauth2 introspection: %w", err)}
	}
	req, sc, err := tokenRequest(ctx, cfg.IntrospectionURL, cfg, grant, token, hint)
	if err != nil {
		// Unreachable after ValidateConfig; the error text holds only the URL.
		return false, &provider.Error{Kind: provider.Permanent, Code: "invalid_config",
			Err: fmt.Errorf("oauth2 introspection: building request: %w", err)}
	}
	req.Header.Set("Accept", "application/json")

	// The same per-call client as Refresh: one request at most, redirects not followed.
	// A followed 307/308 would hand the refresh token and client secret to whatever host
	// the Location names.
	resp, err := p.callClient(&exchange{}).Do(req)
	if err != nil {
		return false, &provider.Error{Kind: provider.Transient, Code: CodeNetwork,
			Description: "no response from introspection endpoint", Err: wire.ScrubbedError(err, sc)}
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxIntrospectionBody+1))
	if err != nil {
		return false, &provider.Error{Kind: provider.Transient, Code: CodeNetwork, HTTPStatus: resp.StatusCode,
			Description: "introspection response body could not be read", Err: wire.ScrubbedError(err, sc)}
	}

	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		code, desc := parseErrorBody(resp.Header.Get("Content-Type"), body)
		return false, p.classifyResponse(resp.StatusCode, resp.Header, code, desc, body, sc)
	}
	if len(body) > maxIntrospectionBody {
		return false, malformedIntrospection(resp.StatusCode)
	}
	var ans struct {
		Active           *bool  `json:"active"`
		Error            string `json:"error"`
		ErrorDescription string `json:"error_description"`
	}
	if err := json.Unmarshal(body, &ans); err != nil {
		// Also catches "active": "true" and other non-boolean spellings: RFC 7662 section
		// 2.2 makes it a JSON boolean, and guessing what a string means could make us
		// present a dead token (reuse detection) or drop a live one.
		return false, malformedIntrospection(resp.StatusCode)
	}
	switch {
	case ans.Active != nil:
		return *ans.Active, nil
	case ans.Error != "":
		// An error inside a 2xx, as some servers answer; classified by its code, exactly
		// like a token endpoint's error-in-200.
		return false, p.classifyResponse(resp.StatusCode, resp.Header, ans.Error, ans.ErrorDescription, body, sc)
	default:
		return false, malformedIntrospection(resp.StatusCode)
	}
}

// tokenRequest builds the POST that RFC 7662 (introspection) and RFC 7009 (revocation)
// share: the token and its type hint, form-encoded, with the client authenticating as it
// does at the token endpoint (RFC 6749 section 2.3.1). The scrubber it returns also knows
// the Basic credential as it appears on the wire, in case a debug page echoes the
// Authorization header. cfg must have been validated.
func tokenRequest(ctx context.Context, target string, cfg provider.Config, grant provider.Grant, token, hint string) (*http.Request, scrubber, error) {
	style, _ := authStyle(cfg.AuthStyle)
	form := url.Values{"token": {token}, "token_type_hint": {hint}}
	basicUser, basicPass := url.QueryEscape(cfg.ClientID), url.QueryEscape(grant.ClientSecret)
	if style != oauth2.AuthStyleInHeader {
		form.Set("client_id", cfg.ClientID)
		form.Set("client_secret", grant.ClientSecret)
	}
	sc := newScrubber(token, grant.RefreshToken, grant.ClientSecret,
		base64.StdEncoding.EncodeToString([]byte(basicUser+":"+basicPass)))
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, strings.NewReader(form.Encode()))
	if err != nil {
		return nil, sc, wire.ScrubbedError(err, sc)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if style == oauth2.AuthStyleInHeader {
		req.SetBasicAuth(basicUser, basicPass)
	}
	return req, sc, nil
}

// malformedIntrospection is the error for a 2xx without a usable "active" member. The
// body is not quoted: an introspection answer describes the token and may echo it.
func malformedIntrospection(status int) *provider.Error {
	return &provider.Error{Kind: provider.Transient, Code: CodeMalformedResponse, HTTPStatus: status,
		Description: "introspection endpoint answered without a boolean \"active\" member"}
}

// parseErrorBody reads the RFC 6749 section 5.2 error and error_description from an
// error answer, as JSON or (for form and plain-text content types, as x/oauth2 does)
// form-encoded. Unreadable bodies yield empty strings; the caller then falls back to the
// HTTP status.
func parseErrorBody(contentType string, body []byte) (code, description string) {
	mediaType, _, _ := mime.ParseMediaType(contentType)
	switch mediaType {
	case "application/x-www-form-urlencoded", "text/plain":
		v, err := url.ParseQuery(string(body))
		if err != nil {
			return "", ""
		}
		return v.Get("error"), v.Get("error_description")
	default:
		var e struct {
			Error            any    `json:"error"`
			ErrorDescription string `json:"error_description"`
		}
		if err := json.Unmarshal(body, &e); err != nil {
			return "", ""
		}
		// Only a string is an error code; {"error": {...}} is some other API's shape.
		if s, ok := e.Error.(string); ok {
			return s, e.ErrorDescription
		}
		return "", ""
	}
}
