package zalo

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/tokenwarden/tokenwarden/internal/provider"
	"github.com/tokenwarden/tokenwarden/internal/provider/internal/wire"
	"github.com/tokenwarden/tokenwarden/internal/provider/scrub"
)

// Provider names, as a credential's "provider" field says them.
const (
	NameOA   = "zalo-oa"
	NameUser = "zalo-user"
)

// DefaultBaseURL is Zalo's OAuth host; provider.Config.BaseURL overrides it.
const DefaultBaseURL = "https://oauth.zaloapp.com"

// Token endpoint paths under the base URL.
const (
	OATokenPath   = "/v4/oa/access_token"
	UserTokenPath = "/v4/access_token"
)

// Permission (authorization) page paths under the base URL: the consent page an OA
// admin or a user approves, which sends the browser to the redirect URI with code and
// state.
const (
	OAPermissionPath   = "/v4/oa/permission"
	UserPermissionPath = "/v4/permission"
)

// SecretKeyHeader is the HTTP header that carries the app secret. Zalo does not use
// HTTP Basic or a client_secret form field.
const SecretKeyHeader = "secret_key"

// DefaultTimeout bounds one token request when a constructor is given no client.
const DefaultTimeout = wire.DefaultTimeout

// DefaultRefreshLifetime is assumed for a newly issued refresh token when the answer has
// no refresh_token_expires_in. Zalo documents about three months for OA refresh tokens.
const DefaultRefreshLifetime = 90 * 24 * time.Hour

// maxBodyBytes bounds how much of a token response is read. Real ones are well under
// 4 KiB; a larger body is treated as malformed.
const maxBodyBytes = 1 << 20

// Provider refreshes Zalo OAuth v4 tokens of one kind: Official Account tokens
// (NewOA, "zalo-oa") or user tokens (NewUser, "zalo-user"). It is safe for concurrent use.
type Provider struct {
	name string
	path string
	// permission is the consent page's path (OAPermissionPath, UserPermissionPath).
	permission string
	client     *http.Client
	now        func() time.Time
}

var (
	_ provider.Provider  = (*Provider)(nil)
	_ provider.Refresher = (*Provider)(nil)
)

// NewOA returns the "zalo-oa" adapter (POST {base}/v4/oa/access_token). A nil client gets
// DefaultTimeout and the default transport; a nil now means time.Now. Construction does
// no I/O, so a validation-only instance may be built inside workflow code.
func NewOA(client *http.Client, now func() time.Time) *Provider {
	return newProvider(NameOA, OATokenPath, OAPermissionPath, client, now)
}

// NewUser returns the "zalo-user" adapter (POST {base}/v4/access_token), for tokens a
// Zalo user granted through Zalo Login / Social API. Arguments are as for NewOA.
func NewUser(client *http.Client, now func() time.Time) *Provider {
	return newProvider(NameUser, UserTokenPath, UserPermissionPath, client, now)
}

// newProvider keeps nil arguments as they are and resolves them on use, so that a
// validation-only instance built in workflow code references neither a clock nor a
// network client.
func newProvider(name, path, permission string, client *http.Client, now func() time.Time) *Provider {
	return &Provider{name: name, path: path, permission: permission, client: client, now: now}
}

func (p *Provider) clock() time.Time {
	if p.now == nil {
		return time.Now()
	}
	return p.now()
}

// Name returns the provider name: NameOA or NameUser.
func (p *Provider) Name() string { return p.name }

// TokenURL returns the token endpoint cfg leads to (cfg.BaseURL or DefaultBaseURL, plus
// the kind's path). It does not validate cfg.
func (p *Provider) TokenURL(cfg provider.Config) string { return p.url(cfg, p.path) }

func (p *Provider) url(cfg provider.Config, path string) string {
	base := cfg.BaseURL
	if base == "" {
		base = DefaultBaseURL
	}
	return strings.TrimRight(base, "/") + path
}

// ValidateConfig checks the non-secret configuration. client_id (the Zalo app id, a
// decimal number) is required; base_url is optional. Fields other adapters use are
// refused rather than ignored: token_url and introspection_url would receive the app
// secret and refresh token if honoured, and silently sending them to the default host
// instead would surprise whoever set them. Errors start with the field name.
func (p *Provider) ValidateConfig(cfg provider.Config) error {
	if cfg.ClientID == "" {
		return errors.New("client_id: required (the Zalo app id)")
	}
	if !wire.IsDigits(cfg.ClientID) {
		// App ids are decimal. Refusing anything else also stops an app secret pasted into
		// the wrong field from travelling in workflow input.
		return errors.New("client_id: must be the Zalo app id, a decimal number")
	}
	if cfg.BaseURL != "" {
		if err := wire.ValidateBaseURL("base_url", cfg.BaseURL); errors.Is(err, wire.ErrQueryOrFragment) {
			return errors.New("base_url: must not have a query or fragment") // this adapter's wording
		} else if err != nil {
			return err
		}
	}
	notUsed := func(field string) error {
		return fmt.Errorf("%s: not used by %s (the endpoint is base_url + %s; set base_url to change the host)", field, p.name, p.path)
	}
	switch {
	case cfg.TokenURL != "":
		return notUsed("token_url")
	case cfg.IntrospectionURL != "":
		return fmt.Errorf("introspection_url: not supported by %s (Zalo has no token introspection)", p.name)
	case cfg.AuthStyle != "":
		return fmt.Errorf("auth_style: not used by %s (the app secret always travels in the %s header)", p.name, SecretKeyHeader)
	case len(cfg.Scopes) > 0:
		return fmt.Errorf("scopes: not used by %s (permissions are granted when the app is authorized)", p.name)
	case cfg.OperatorID != "":
		return fmt.Errorf("operator_id: not used by %s", p.name)
	case cfg.Parent != "":
		return fmt.Errorf("parent: not used by %s", p.name)
	case cfg.AuthorizeURL != "":
		return fmt.Errorf("authorize_url: not used by %s (the permission page is base_url + %s)", p.name, p.permission)
	case cfg.GrantType != "":
		return fmt.Errorf("grant_type: not used by %s", p.name)
	}
	if cfg.RedirectURI != "" {
		return wire.ValidateRedirectURI("redirect_uri", cfg.RedirectURI)
	}
	return nil
}

// ValidateGrant requires the refresh token and the app secret.
func (p *Provider) ValidateGrant(g provider.Grant) error {
	if strings.TrimSpace(g.RefreshToken) == "" {
		return errors.New("refresh_token: required")
	}
	if strings.TrimSpace(g.ClientSecret) == "" {
		return errors.New("client_secret: required (the Zalo app secret)")
	}
	return nil
}

// Refresh presents grant.RefreshToken to Zalo exactly once and returns the new token
// set, or a *provider.Error classified as the package documentation describes.
func (p *Provider) Refresh(ctx context.Context, cfg provider.Config, grant provider.Grant) (provider.TokenSet, error) {
	if err := p.ValidateConfig(cfg); err != nil {
		return provider.TokenSet{}, &provider.Error{Kind: provider.Permanent, Code: "invalid_config", Err: fmt.Errorf("%s refresh: %w", p.name, err)}
	}
	if grant.RefreshToken == "" {
		return provider.TokenSet{}, &provider.Error{Kind: provider.Permanent, Code: "missing_refresh_token", Description: "no refresh token to present"}
	}
	if grant.ClientSecret == "" {
		return provider.TokenSet{}, &provider.Error{Kind: provider.Permanent, Code: "missing_client_secret", Description: "no app secret (client_secret) to send in the secret_key header"}
	}
	form := url.Values{
		"app_id":        {cfg.ClientID},
		"refresh_token": {grant.RefreshToken},
		"grant_type":    {"refresh_token"},
	}
	return p.post(ctx, cfg, grant.ClientSecret, form, scrub.New(grant.RefreshToken, grant.ClientSecret), grant.RefreshToken)
}

// ExchangeCode trades an authorization code (from Zalo's permission page) for the first
// token set of a credential, to seed it. codeVerifier is the PKCE verifier whose
// challenge went to the permission page; it is required for zalo-user and optional for
// zalo-oa (send it when the OA authorization used a code_challenge). The code is sent
// exactly once, like a refresh token: Zalo codes are single-use and short-lived.
// Errors are *provider.Error values classified like Refresh errors.
func (p *Provider) ExchangeCode(ctx context.Context, cfg provider.Config, appSecret, code, codeVerifier string) (provider.TokenSet, error) {
	if err := p.ValidateConfig(cfg); err != nil {
		return provider.TokenSet{}, &provider.Error{Kind: provider.Permanent, Code: "invalid_config", Err: fmt.Errorf("%s code exchange: %w", p.name, err)}
	}
	switch {
	case strings.TrimSpace(code) == "":
		return provider.TokenSet{}, &provider.Error{Kind: provider.Permanent, Code: "missing_code", Description: "no authorization code to exchange"}
	case appSecret == "":
		return provider.TokenSet{}, &provider.Error{Kind: provider.Permanent, Code: "missing_client_secret", Description: "no app secret to send in the secret_key header"}
	case codeVerifier == "" && p.name == NameUser:
		return provider.TokenSet{}, &provider.Error{Kind: provider.Permanent, Code: "missing_code_verifier", Description: "zalo-user code exchange needs the PKCE code_verifier"}
	}
	form := url.Values{
		"app_id":     {cfg.ClientID},
		"code":       {code},
		"grant_type": {"authorization_code"},
	}
	if codeVerifier != "" {
		form.Set("code_verifier", codeVerifier)
	}
	return p.post(ctx, cfg, appSecret, form, scrub.New(code, codeVerifier, appSecret), "")
}

var _ provider.Authorizer = (*Provider)(nil)

// CanAuthorize: both kinds have a permission page; nothing more is needed.
func (p *Provider) CanAuthorize(provider.Config) error { return nil }

// AuthCodeURL returns the permission page's URL: app_id, redirect_uri, the S256
// code_challenge (Zalo knows no other method and takes no code_challenge_method) and
// state.
func (p *Provider) AuthCodeURL(cfg provider.Config, redirectURI, state, challenge string) (string, error) {
	if err := p.ValidateConfig(cfg); err != nil {
		return "", err
	}
	q := url.Values{"app_id": {cfg.ClientID}, "redirect_uri": {redirectURI}, "state": {state}}
	if challenge != "" {
		q.Set("code_challenge", challenge)
	}
	return p.url(cfg, p.permission) + "?" + q.Encode(), nil
}

// Exchange is ExchangeCode with the grant's app secret. Zalo's token endpoint takes no
// redirect_uri: the permission page checked it against the app's registered callback.
func (p *Provider) Exchange(ctx context.Context, cfg provider.Config, grant provider.Grant, _, code, verifier string) (provider.TokenSet, error) {
	return p.ExchangeCode(ctx, cfg, grant.ClientSecret, code, verifier)
}

// post sends one token request and interprets the answer. presented is the refresh
// token sent, if any, so that an echo of it is not mistaken for a rotation.
func (p *Provider) post(ctx context.Context, cfg provider.Config, secret string, form url.Values, sc scrub.Scrubber, presented string) (provider.TokenSet, error) {
	body := form.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, p.TokenURL(cfg), strings.NewReader(body))
	if err != nil {
		// Only a bad URL or method gets here, and both were validated.
		return provider.TokenSet{}, &provider.Error{Kind: provider.Permanent, Code: "invalid_config", Description: "could not build the token request"}
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	req.Header.Set(SecretKeyHeader, secret)
	// No GetBody: nothing may replay the form (and the refresh token in it).
	req.GetBody = nil

	resp, err := p.callClient().Do(req)
	if err != nil {
		return provider.TokenSet{}, &provider.Error{Kind: provider.Transient, Code: CodeNetwork,
			Description: "no response from the Zalo token endpoint", Err: wire.ScrubbedError(err, sc)}
	}
	defer resp.Body.Close()
	raw, readErr := io.ReadAll(io.LimitReader(resp.Body, maxBodyBytes+1))
	if readErr != nil {
		return provider.TokenSet{}, &provider.Error{Kind: provider.Transient, Code: CodeNetwork, HTTPStatus: resp.StatusCode,
			Description: "token response body could not be read", Err: wire.ScrubbedError(readErr, sc)}
	}
	if len(raw) > maxBodyBytes {
		raw = nil // treated as unreadable below
	}
	return p.interpret(resp.StatusCode, resp.Header, raw, sc, presented)
}

// callClient returns a copy of the configured client that never follows a redirect and
// refuses to send a second request.
func (p *Provider) callClient() *http.Client {
	return wire.SingleShot(p.client, errSecondRequest)
}

// errSecondRequest should be unreachable: it keeps "exactly once" from depending on
// net/http's internals.
var errSecondRequest = errors.New("zalo: refused a second token request in one call (a refresh token may be presented only once)")
