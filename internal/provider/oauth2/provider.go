package oauth2provider

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"time"

	"golang.org/x/oauth2"

	"github.com/tokenwarden/tokenwarden/internal/provider"
	"github.com/tokenwarden/tokenwarden/internal/provider/internal/wire"
)

// DefaultTimeout bounds one token request when New is given no client. Token endpoints
// answer in well under a second; anything slower is treated as a network failure.
const DefaultTimeout = wire.DefaultTimeout

// Auth styles accepted in provider.Config.AuthStyle.
const (
	// AuthStyleHeader sends client credentials with HTTP Basic (RFC 6749 section 2.3.1).
	AuthStyleHeader = "header"
	// AuthStyleBody sends client_id and client_secret as form fields.
	AuthStyleBody = "body"
	// AuthStyleDefault is treated as AuthStyleHeader; see the package documentation for
	// why it never means x/oauth2's auto-detection.
	AuthStyleDefault = ""
)

// Provider refreshes credentials at any RFC 6749 compliant token endpoint.
// It is safe for concurrent use.
type Provider struct {
	client *http.Client
	now    func() time.Time
}

var (
	_ provider.Provider            = (*Provider)(nil)
	_ provider.Refresher           = (*Provider)(nil)
	_ provider.RefreshTokenChecker = (*Provider)(nil)
)

// New returns an adapter that talks through client and reads time from now.
// A nil client gets DefaultTimeout and the default transport; a nil now means time.Now.
func New(client *http.Client, now func() time.Time) *Provider {
	if now == nil {
		now = time.Now
	}
	return &Provider{client: wire.Client(client), now: now}
}

// ValidateConfig checks the non-secret configuration. Errors start with the field name.
func (p *Provider) ValidateConfig(cfg provider.Config) error {
	if strings.TrimSpace(cfg.TokenURL) == "" {
		return fmt.Errorf("token_url: required")
	}
	if err := wire.ValidateEndpointURL("token_url", cfg.TokenURL); err != nil {
		return err
	}
	// introspection_url is optional: without it RefreshTokenActive reports "unsupported".
	// When present it receives the refresh token and client secret just like token_url,
	// so it obeys the same rules.
	if cfg.IntrospectionURL != "" {
		if err := wire.ValidateEndpointURL("introspection_url", cfg.IntrospectionURL); err != nil {
			return err
		}
	}
	// revocation_url receives the refresh token and client secret: the same rules.
	if cfg.RevocationURL != "" {
		if err := wire.ValidateEndpointURL("revocation_url", cfg.RevocationURL); err != nil {
			return err
		}
	}
	// userinfo_url receives the access token: the same rules.
	if cfg.UserinfoURL != "" {
		if err := wire.ValidateEndpointURL("userinfo_url", cfg.UserinfoURL); err != nil {
			return err
		}
	}
	if cfg.ClientID == "" {
		return fmt.Errorf("client_id: required")
	}
	if _, err := authStyle(cfg.AuthStyle); err != nil {
		return err
	}
	for i, s := range cfg.Scopes {
		if !validScopeToken(s) {
			return fmt.Errorf("scopes[%d]: must be a non-empty RFC 6749 scope token (printable ASCII without space, quote or backslash)", i)
		}
	}
	return validateFlowFields(cfg)
}

// ValidateGrant requires the refresh token the grant is built on (the refresh_token
// grant; see ValidateGrantFor for client credentials).
func (p *Provider) ValidateGrant(g provider.Grant) error {
	if strings.TrimSpace(g.RefreshToken) == "" {
		return fmt.Errorf("refresh_token: required")
	}
	return nil
}

// authStyle maps the config value to x/oauth2's style. It never returns
// oauth2.AuthStyleAutoDetect, which would present the refresh token twice on failure.
func authStyle(s string) (oauth2.AuthStyle, error) {
	switch s {
	case AuthStyleHeader, AuthStyleDefault:
		return oauth2.AuthStyleInHeader, nil
	case AuthStyleBody:
		return oauth2.AuthStyleInParams, nil
	default:
		return 0, fmt.Errorf("auth_style: must be %q, %q or empty (= %q), got %q", AuthStyleHeader, AuthStyleBody, AuthStyleHeader, s)
	}
}

// validScopeToken implements RFC 6749 section 3.3: scope-token = 1*( %x21 / %x23-5B / %x5D-7E ).
func validScopeToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x21 || c > 0x7e || c == '"' || c == '\\' {
			return false
		}
	}
	return true
}

// Refresh presents grant.RefreshToken to cfg.TokenURL exactly once and returns the new
// token set, or a *provider.Error classified as described in the package documentation.
func (p *Provider) Refresh(ctx context.Context, cfg provider.Config, grant provider.Grant) (provider.TokenSet, error) {
	if err := p.ValidateConfig(cfg); err != nil {
		return provider.TokenSet{}, &provider.Error{Kind: provider.Permanent, Code: "invalid_config", Err: fmt.Errorf("oauth2 refresh: %w", err)}
	}
	if clientCredentials(cfg) {
		return p.mint(ctx, cfg, grant)
	}
	if grant.RefreshToken == "" {
		// x/oauth2 would refuse too, but say so in our own words and without a round trip.
		return provider.TokenSet{}, &provider.Error{Kind: provider.Permanent, Code: "missing_refresh_token", Description: "no refresh token to present"}
	}
	style, _ := authStyle(cfg.AuthStyle) // validated above

	conf := &oauth2.Config{
		ClientID:     cfg.ClientID,
		ClientSecret: grant.ClientSecret,
		Endpoint:     oauth2.Endpoint{TokenURL: cfg.TokenURL, AuthStyle: style},
		// x/oauth2 only uses Scopes for authorization-code URLs; the refresh request gets
		// them from singleShotTransport below. Set anyway so the config is self-describing.
		Scopes: cfg.Scopes,
	}

	ex := &exchange{scope: strings.Join(cfg.Scopes, " ")}
	hc := p.callClient(ex)
	ctx = context.WithValue(ctx, oauth2.HTTPClient, hc)

	// A token with an empty access token is never Valid, so the source refreshes at once.
	src := conf.TokenSource(ctx, &oauth2.Token{RefreshToken: grant.RefreshToken})
	tok, err := src.Token()
	scrub := newScrubber(grant.RefreshToken, grant.ClientSecret)
	if err != nil {
		return provider.TokenSet{}, p.classify(err, ex, scrub)
	}
	return p.tokenSet(tok, grant.RefreshToken), nil
}

// callClient returns a copy of the configured client wired for one Refresh call: one
// request at most (errSecondRequest after that), redirects not followed, and the
// exchange recorded.
func (p *Provider) callClient(ex *exchange) *http.Client {
	hc := *p.client
	hc.Transport = &exchangeTransport{base: hc.Transport, ex: ex}
	return wire.SingleShot(&hc, errSecondRequest)
}

// tokenSet converts x/oauth2's token. presented is the refresh token we sent.
func (p *Provider) tokenSet(tok *oauth2.Token, presented string) provider.TokenSet {
	ts := provider.TokenSet{AccessToken: tok.AccessToken, TokenType: tok.Type()}
	// x/oauth2 copies the presented refresh token into the result when the response has
	// none, so "the provider did not rotate" shows up as equality with what we sent.
	// provider.TokenSet wants "" in that case (the caller keeps its token), and a server
	// that echoes the same value back has not rotated either.
	if tok.RefreshToken != presented {
		ts.RefreshToken = tok.RefreshToken
	}
	now := p.now()
	// Token.Expiry was computed by x/oauth2 from the wall clock; use the raw lifetime and
	// our own clock instead. ExpiresIn is only filled for JSON bodies, so fall back to the
	// extra field for form-encoded ones. Extra fields may arrive as a JSON number, a
	// numeric string, or (form-encoded bodies) an already parsed number.
	secs := tok.ExpiresIn
	if secs <= 0 {
		secs = wire.Seconds(tok.Extra("expires_in"))
	}
	if secs > 0 {
		ts.AccessExpiresAt = now.Add(secondsToDuration(secs))
	}
	if rs := wire.Seconds(tok.Extra("refresh_token_expires_in")); rs > 0 {
		ts.RefreshExpiresAt = now.Add(secondsToDuration(rs))
	}
	return ts
}

func secondsToDuration(secs int64) time.Duration {
	return time.Duration(min(secs, wire.MaxLifetimeSeconds)) * time.Second
}
