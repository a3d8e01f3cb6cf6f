package feishu

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/tokenwarden/tokenwarden/internal/provider"
	"github.com/tokenwarden/tokenwarden/internal/provider/internal/wire"
	"github.com/tokenwarden/tokenwarden/internal/provider/scrub"
)

// User refreshes Feishu/Lark user_access_tokens with the OAuth v2 refresh grant. It is
// safe for concurrent use.
type User struct{ base }

var (
	_ provider.Provider  = (*User)(nil)
	_ provider.Refresher = (*User)(nil)
)

// NewUser returns the feishu-user adapter. A nil client gets DefaultTimeout and the
// default transport; a nil now means time.Now.
func NewUser(client *http.Client, now func() time.Time) *User {
	return &User{base: newBase(client, now)}
}

// ValidateConfig checks client_id (the App ID), base_url and scopes. Errors start with
// the field name.
func (u *User) ValidateConfig(cfg provider.Config) error {
	if err := validateCommon(cfg, "feishu-user"); err != nil {
		return err
	}
	for i, s := range cfg.Scopes {
		if s == "" || strings.ContainsFunc(s, func(r rune) bool { return r <= ' ' || r == '"' || r == '\\' || r > '~' }) {
			return fmt.Errorf("scopes[%d]: must be a non-empty scope name without spaces or quotes (e.g. offline_access)", i)
		}
	}
	if cfg.RedirectURI != "" {
		return wire.ValidateRedirectURI("redirect_uri", cfg.RedirectURI)
	}
	return nil
}

// ValidateGrant requires the refresh token. It sends nothing anywhere: presenting a
// single-use refresh token to "check" it would spend it. The App Secret is not required
// here because a reseed that brings only a new refresh token keeps the stored one; a
// Refresh without it fails permanently (missing_client_secret) before any request.
func (u *User) ValidateGrant(g provider.Grant) error {
	if strings.TrimSpace(g.RefreshToken) == "" {
		return fmt.Errorf("refresh_token: required (the user's latest Feishu refresh token; each one works once)")
	}
	return nil
}

type userRefreshRequest struct {
	GrantType    string `json:"grant_type"`
	ClientID     string `json:"client_id"`
	ClientSecret string `json:"client_secret"`
	RefreshToken string `json:"refresh_token"`
	Scope        string `json:"scope,omitempty"`
}

// Refresh presents grant.RefreshToken to the v2 token endpoint exactly once.
func (u *User) Refresh(ctx context.Context, cfg provider.Config, grant provider.Grant) (provider.TokenSet, error) {
	if err := u.ValidateConfig(cfg); err != nil {
		return provider.TokenSet{}, &provider.Error{Kind: provider.Permanent, Code: CodeInvalidConfig, Err: fmt.Errorf("feishu-user refresh: config.%w", err)}
	}
	if err := u.ValidateGrant(grant); err != nil {
		return provider.TokenSet{}, &provider.Error{Kind: provider.Permanent, Code: "missing_refresh_token", Err: fmt.Errorf("feishu-user refresh: seed.%w", err)}
	}
	if strings.TrimSpace(grant.ClientSecret) == "" {
		return provider.TokenSet{}, &provider.Error{Kind: provider.Permanent, Code: "missing_client_secret",
			Description: "no App Secret stored; reseed with client_secret (the Feishu/Lark App Secret)"}
	}
	sc := scrub.New(grant.RefreshToken, grant.ClientSecret, grant.AccessToken)
	res, pe := u.post(ctx, endpoint(cfg, UserTokenPath), userRefreshRequest{
		GrantType:    "refresh_token",
		ClientID:     cfg.ClientID,
		ClientSecret: grant.ClientSecret,
		RefreshToken: grant.RefreshToken,
		Scope:        strings.Join(cfg.Scopes, " "),
	}, sc)
	if pe != nil {
		return provider.TokenSet{}, pe
	}
	return u.tokenSet(res, grant.RefreshToken)
}

// tokenSet turns a v2 token answer (a refresh or a code exchange) into a TokenSet.
// presented is the refresh token sent, if any, so that an echo is not a rotation.
func (u *User) tokenSet(res result, presented string) (provider.TokenSet, error) {
	a := res.answer
	switch {
	case !a.json:
		return provider.TokenSet{}, malformed(res.status, "not a JSON object")
	case a.accessToken == "":
		return provider.TokenSet{}, malformed(res.status, "no access_token")
	}
	ts := provider.TokenSet{
		AccessToken:     a.accessToken,
		TokenType:       a.tokenType,
		AccessExpiresAt: u.after(a.expiresIn),
	}
	if ts.TokenType == "" {
		ts.TokenType = "Bearer"
	}
	// An echo of the presented token is not a rotation; the caller keeps what it has.
	if a.refreshToken != "" && a.refreshToken != presented {
		ts.RefreshToken = a.refreshToken
		ts.RefreshExpiresAt = u.after(a.refreshExpiresIn)
	}
	return ts, nil
}
