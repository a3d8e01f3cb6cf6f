// Package provider defines what tokenwarden needs from a credential provider and how
// provider failures are classified.
//
// An adapter turns one provider's wire protocol into a TokenSet and every failure into
// an *Error whose Kind decides the workflow's reaction: Permanent parks the credential in
// NEEDS_REAUTH (a human must reseed it), Transient is retried with backoff forever.
// Adapters never put a token or secret into an error: descriptions are scrubbed.
package provider

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"
)

// Config is the non-secret part of a credential's provider configuration. It travels in
// workflow input and status, so it must never hold a secret.
type Config struct {
	// TokenURL is the provider's token endpoint. Every URL here receives secrets, so it
	// must be https; plain http is accepted only for a loopback host (the fakes in tests).
	TokenURL string `json:"token_url,omitempty"`
	// ClientID identifies the OAuth2 client (the app id for most providers).
	ClientID string `json:"client_id,omitempty"`
	// AuthStyle says how the client authenticates to the token endpoint:
	// "header" (HTTP Basic), "body" (client_id/client_secret form fields) or "" (= "header").
	// Never auto-detect: trying one style and then the other would present the refresh
	// token twice.
	AuthStyle string `json:"auth_style,omitempty"`
	// Scopes, when set, are sent with the refresh request.
	Scopes []string `json:"scopes,omitempty"`
	// IntrospectionURL, when set, is the provider's RFC 7662 introspection endpoint. It
	// lets tokenwarden ask whether a refresh token is still live without spending it,
	// which settles the outcome of an interrupted refresh without a second presentation.
	IntrospectionURL string `json:"introspection_url,omitempty"`
	// UserinfoURL, when set, is an endpoint that answers 2xx for a live access token and
	// 401 for a dead one (OpenID Connect UserInfo); probes use it when there is no
	// introspection endpoint.
	UserinfoURL string `json:"userinfo_url,omitempty"`
	// RevocationURL, when set, is the provider's RFC 7009 revocation endpoint: a retired
	// credential's refresh token is revoked there before its secrets are deleted.
	RevocationURL string `json:"revocation_url,omitempty"`
	// BaseURL overrides the API base of providers with a fixed host (Zalo, Feishu/Lark,
	// Zogo sandbox or production, SMSBAT ChatHub, baoming), so tests point at loopback.
	BaseURL string `json:"base_url,omitempty"`
	// OperatorID is the SMSBAT ChatHub operator whose token an operator credential mints.
	OperatorID string `json:"operator_id,omitempty"`
	// Parent is the ID of the credential whose access token this one is minted with
	// (a ChatHub operator credential names its company credential).
	Parent string `json:"parent,omitempty"`
	// EnrollID is the baoming (报名工具) enrollment whose detail the liveness probe reads:
	// the eid of an enrollment the token's account has joined (24 hex digits). Not a
	// secret: it names an enrollment, not the account, and opens nothing by itself.
	EnrollID string `json:"eid,omitempty"`
	// TokenLifetime is the lifetime to ask for, as a Go duration ("12h"), where the client
	// chooses it: the ChatHub operator token (at most 24h, which is the default), and the
	// ChatHub company token, which never expires by itself and lives for its rotation
	// period (default 180 days).
	TokenLifetime string `json:"token_lifetime,omitempty"`
	// AuthorizeURL is the generic oauth2 provider's authorization endpoint (RFC 6749
	// section 4.1.1), the consent page `starter connect` sends the browser to. It receives
	// no secret (the PKCE challenge and state only); adapters of fixed hosts derive it from
	// base_url instead.
	AuthorizeURL string `json:"authorize_url,omitempty"`
	// RedirectURI is the redirect URI registered with the provider, for providers that
	// accept only a registered one. Empty: `starter connect` uses a loopback URI on the
	// port it listens on (RFC 8252 section 7.3). A non-loopback URI needs `starter
	// connect -paste`: the browser lands there and the user pastes the address.
	RedirectURI string `json:"redirect_uri,omitempty"`
	// GrantType selects the generic oauth2 provider's grant: "" or "refresh_token" (the
	// default), or "client_credentials" (RFC 6749 section 4.4: no refresh token, a new
	// access token is minted with the client secret on schedule).
	GrantType string `json:"grant_type,omitempty"`
}

// Grant is the secret material an adapter presents to the provider. It lives only in the
// token store (encrypted) and in activity memory.
type Grant struct {
	RefreshToken string
	ClientSecret string
	// Username and Password are for providers that log in (Zogo, SMSBAT ChatHub).
	Username string
	Password string
	// AccessToken is the current access token, for providers that check or reuse it.
	AccessToken string
	// ParentAccessToken is the parent credential's current access token (see Config.Parent).
	ParentAccessToken string
}

// TokenSet is what a successful refresh yields.
type TokenSet struct {
	AccessToken string
	TokenType   string
	// RefreshToken is empty when the provider did not issue a new one; the caller keeps
	// the one it presented (RFC 6749 section 6).
	RefreshToken string
	// AccessExpiresAt is zero when the provider gave no lifetime.
	AccessExpiresAt time.Time
	// RefreshExpiresAt is zero when the provider gave no refresh-token lifetime.
	RefreshExpiresAt time.Time
	// RenewableAt, when set, is the earliest time a refresh yields a new token: before
	// it the provider hands back the same one (Feishu's tenant token while 30 minutes or
	// more are left). The schedule never refreshes before it.
	RenewableAt time.Time
}

// Provider is what every adapter of one kind of credential implements: the checks of
// its configuration and seed, which need no network. What else it can do it says by
// implementing the optional interfaces below (Refresher, Prober, Authorizer, ...), which
// callers find by type assertion.
type Provider interface {
	// ValidateConfig checks the non-secret configuration and returns an error naming the
	// offending field.
	ValidateConfig(cfg Config) error
	// ValidateGrant checks seed material before it is stored: that what this provider
	// needs is there (a refresh token, or a login and password). Errors name the field
	// ("refresh_token: required") and never contain a secret.
	ValidateGrant(g Grant) error
}

// Refresher is implemented by adapters with a refresh (or re-mint) endpoint. A provider
// without one (baoming) lives on liveness probes alone: its tokens are reseeded by hand.
type Refresher interface {
	// Refresh presents grant.RefreshToken (or, for a provider that logs in or mints with
	// a client secret, that material) to the provider exactly once: no retry, no
	// redirect followed, no second try with another auth style, since a rotating refresh
	// token presented twice may trip the provider's reuse detection and revoke the grant.
	// Retrying is the caller's decision, made from the error (did the provider answer?).
	// Errors are *Error values; an empty TokenSet.RefreshToken means keep the one
	// presented.
	Refresh(ctx context.Context, cfg Config, grant Grant) (TokenSet, error)
}

// RefreshTokenChecker is implemented by adapters that can ask the provider whether a
// refresh token is still live without presenting it to the token endpoint (RFC 7662
// introspection with token_type_hint=refresh_token).
type RefreshTokenChecker interface {
	// RefreshTokenActive reports whether the provider still accepts grant.RefreshToken.
	// supported is false when cfg gives no way to ask; then active means nothing.
	// Errors are *Error values classified like Refresh errors.
	RefreshTokenActive(ctx context.Context, cfg Config, grant Grant) (active, supported bool, err error)
}

// Revoker is implemented by adapters that can revoke a grant at the provider (RFC 7009),
// so that a retired credential's refresh token stops working everywhere, not only here.
type Revoker interface {
	// Revoke revokes grant.RefreshToken. supported is false when cfg gives no way to.
	Revoke(ctx context.Context, cfg Config, grant Grant) (supported bool, err error)
}

// Prober is implemented by adapters that can tell whether an access token still works
// without spending anything (a user-info call, a validate-token endpoint, RFC 7662
// introspection of the access token). A probe must never present a refresh token.
type Prober interface {
	// Probe reports whether the provider accepts grant.AccessToken. A clear "no" is
	// (false, nil); failing to find out is an *Error.
	Probe(ctx context.Context, cfg Config, grant Grant) (valid bool, err error)
}

// ConfiguredProber is implemented by probers whose probing depends on the configuration:
// the generic oauth2 adapter probes only through an introspection or a userinfo
// endpoint. A Prober without it can probe under every configuration its ValidateConfig
// accepts.
type ConfiguredProber interface {
	Prober
	// CanProbe reports whether cfg gives the adapter a way to probe. It is
	// deterministic and does no I/O: workflow code asks it before scheduling probes.
	CanProbe(cfg Config) bool
}

// ProbeResult is a probe's answer in full: the verdict, why a "no" is a no, and what
// the provider said about the token's account.
type ProbeResult struct {
	Valid bool
	// Code, when Valid is false, is a short tag of why ("token_rejected", or an adapter's
	// own such as baoming's "not_enrolled"), so a human knows whether to log in again or
	// to fix the configuration.
	Code string
	// Description is the provider's explanation of a "no", scrubbed and truncated.
	Description string
	// Labels are non-secret facts the answer carried about the account (baoming's info_id),
	// for status pages and logs. Never a token, never a secret.
	Labels map[string]string
}

// DetailedProber is implemented by probers that can say more than yes or no. Its
// verdicts and errors are those of Probe; callers that know it use it instead.
type DetailedProber interface {
	Prober
	ProbeDetail(ctx context.Context, cfg Config, grant Grant) (ProbeResult, error)
}

// CodeParentRejected is the Code of a Transient error an adapter returns when the
// provider refused the parent credential's token (Grant.ParentAccessToken) rather than
// the credential's own grant: the parent must refresh, and the child retries.
const CodeParentRejected = "parent_rejected"

// CodeCannotRefresh is the Code of the Permanent error a caller reports when asked to
// refresh a credential whose adapter is no Refresher: only a reseed helps.
const CodeCannotRefresh = "cannot_refresh"

// Kind says whether retrying can help.
type Kind int

const (
	// Transient failures (network, 5xx, 429, malformed answers) are retried.
	Transient Kind = iota
	// Permanent failures (invalid_grant, invalid_client, ...) need a human.
	Permanent
)

func (k Kind) String() string {
	if k == Permanent {
		return "permanent"
	}
	return "transient"
}

// Error is a classified provider failure. Its text never contains a secret.
type Error struct {
	Kind Kind
	// Code is the provider's error code (e.g. "invalid_grant"), or a short tag of ours
	// ("http_502", "network", "malformed_response").
	Code string
	// Description is the provider's explanation, scrubbed of secrets and truncated.
	Description string
	// HTTPStatus is 0 when no response arrived.
	HTTPStatus int
	// RetryAfter is the provider's requested delay (429/503 Retry-After), 0 if none.
	RetryAfter time.Duration
	// Err is the underlying cause, if any; it must not carry secrets either.
	Err error
}

func (e *Error) Error() string {
	msg := fmt.Sprintf("%s provider error %s", e.Kind, e.Code)
	if e.HTTPStatus != 0 {
		msg += fmt.Sprintf(" (HTTP %d)", e.HTTPStatus)
	}
	if e.Description != "" {
		msg += ": " + e.Description
	}
	if e.Err != nil {
		msg += ": " + e.Err.Error()
	}
	return msg
}

func (e *Error) Unwrap() error { return e.Err }

// IsPermanent reports whether err is, or wraps, a permanent provider error.
func IsPermanent(err error) bool {
	var pe *Error
	return errors.As(err, &pe) && pe.Kind == Permanent
}

// RetryAfter returns the provider's requested retry delay carried by err, or 0.
func RetryAfter(err error) time.Duration {
	var pe *Error
	if errors.As(err, &pe) {
		return pe.RetryAfter
	}
	return 0
}

// ConfigGrantValidator is implemented by adapters whose seed rules depend on the
// configuration (a generic oauth2 client credentials grant has no refresh token).
// Callers use ValidateGrantFor, which falls back to ValidateGrant.
type ConfigGrantValidator interface {
	ValidateGrantFor(cfg Config, g Grant) error
}

// ValidateGrantFor checks g for p configured with cfg: with p's ValidateGrantFor when
// it has one, else with its ValidateGrant.
func ValidateGrantFor(p Provider, cfg Config, g Grant) error {
	if v, ok := p.(ConfigGrantValidator); ok {
		return v.ValidateGrantFor(cfg, g)
	}
	return p.ValidateGrant(g)
}

// Authorizer is implemented by adapters whose first grant a user can hand over in a
// browser with the authorization code flow (RFC 6749 section 4.1): `starter connect`
// finds it by type assertion, as the workflow finds Prober.
type Authorizer interface {
	// CanAuthorize reports whether cfg has what the flow needs (an authorize_url, a grant
	// type that has a user); the error says what is missing.
	CanAuthorize(cfg Config) error
	// AuthCodeURL returns the consent page's URL for cfg, which sends the browser back to
	// redirectURI with code and state. challenge is the PKCE S256 challenge of the
	// verifier Exchange will present. The URL holds no secret.
	AuthCodeURL(cfg Config, redirectURI, state, challenge string) (string, error)
	// Exchange trades code for the credential's first token set, sending it exactly once
	// (codes are single-use), with grant.ClientSecret where the client has one.
	// Errors are *Error values classified like Refresh errors.
	Exchange(ctx context.Context, cfg Config, grant Grant, redirectURI, code, verifier string) (TokenSet, error)
}

// Registry maps provider names (as used in workflow input) to adapters.
type Registry map[string]Provider

// Lookup returns the named adapter or an error listing the known names, sorted (a
// mistyped name is then fixed from the message alone).
func (r Registry) Lookup(name string) (Provider, error) {
	if p, ok := r[name]; ok {
		return p, nil
	}
	known := slices.Sorted(maps.Keys(r))
	if len(known) == 0 {
		return nil, fmt.Errorf("unknown provider %q (none is known)", name)
	}
	return nil, fmt.Errorf("unknown provider %q (known: %s)", name, strings.Join(known, ", "))
}

// Binding is the part of a credential's configuration that decides where its secrets
// are sent: the provider, every endpoint, the client ID, the auth style, the parent and
// the operator, as JSON with sorted keys (so equal configurations give equal strings).
// It is recorded with the sealed secrets when the credential is seeded, and a run whose
// configuration binds differently gets no secret: pointing a stored token at a new URL
// takes a reseed by someone who holds the secrets. Scopes, the requested token
// lifetime and the grant type are left out: they change what is asked for, not who is
// asked; so are authorize_url and redirect_uri, which only `starter connect` uses and
// which never receive a stored secret. Empty fields
// are left out, so that adding a field here does not unbind credentials that never set
// it.
type Binding string

// BindingOf is the binding of a credential of the named provider with cfg.
func BindingOf(providerName string, cfg Config) Binding {
	fields := map[string]string{"provider": providerName}
	for k, v := range map[string]string{
		"token_url":         cfg.TokenURL,
		"client_id":         cfg.ClientID,
		"auth_style":        cfg.AuthStyle,
		"introspection_url": cfg.IntrospectionURL,
		"userinfo_url":      cfg.UserinfoURL,
		"revocation_url":    cfg.RevocationURL,
		"base_url":          cfg.BaseURL,
		"operator_id":       cfg.OperatorID,
		"parent":            cfg.Parent,
	} {
		if v != "" {
			fields[k] = v
		}
	}
	b, _ := json.Marshal(fields) // a map of strings always encodes, with sorted keys
	return Binding(b)
}

func (b Binding) fields() map[string]string {
	var m map[string]string
	if json.Unmarshal([]byte(b), &m) != nil {
		return map[string]string{}
	}
	return m
}

// Field returns one field of the binding ("base_url"), "" when absent.
func (b Binding) Field(name string) string { return b.fields()[name] }

// Diff names the fields whose values differ between b and other, sorted.
func (b Binding) Diff(other Binding) []string {
	x, y := b.fields(), other.fields()
	var diff []string
	for k, v := range x {
		if y[k] != v {
			diff = append(diff, k)
		}
	}
	for k := range y {
		if _, ok := x[k]; !ok {
			diff = append(diff, k)
		}
	}
	slices.Sort(diff)
	return diff
}

// Child is implemented by adapters whose tokens are minted with another credential's
// access token (Config.Parent, Grant.ParentAccessToken): a ChatHub operator token with
// its company's.
type Child interface {
	// ParentProvider names the provider the parent credential must have.
	ParentProvider() string
}
