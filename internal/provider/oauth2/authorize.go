package oauth2provider

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"golang.org/x/oauth2"

	"github.com/tokenwarden/tokenwarden/internal/provider"
	"github.com/tokenwarden/tokenwarden/internal/provider/internal/wire"
)

// Grant types accepted in provider.Config.GrantType.
const (
	// GrantRefreshToken is the default: a user authorizes once, tokenwarden refreshes.
	GrantRefreshToken = "refresh_token"
	// GrantClientCredentials mints access tokens with the client secret alone (RFC 6749
	// section 4.4); there is no user and no refresh token.
	GrantClientCredentials = "client_credentials"
)

var _ provider.Authorizer = (*Provider)(nil)

// clientCredentials reports whether cfg uses the client credentials grant.
func clientCredentials(cfg provider.Config) bool { return cfg.GrantType == GrantClientCredentials }

// CanAuthorize says whether `starter connect` can run the authorization code flow for
// cfg: it needs authorize_url, and a grant that has a user.
func (p *Provider) CanAuthorize(cfg provider.Config) error {
	if clientCredentials(cfg) {
		return errors.New("grant_type: client_credentials has no user to authorize; start it with `starter start` and a secrets file holding client_secret")
	}
	if cfg.AuthorizeURL == "" {
		return errors.New("authorize_url: required to connect (the provider's authorization endpoint)")
	}
	return nil
}

// AuthCodeURL builds the authorization request of RFC 6749 section 4.1.1 with the PKCE
// S256 challenge (RFC 7636; RFC 9700 section 2.1.1 asks every client to send one, and
// servers that do not know PKCE ignore the parameters).
func (p *Provider) AuthCodeURL(cfg provider.Config, redirectURI, state, challenge string) (string, error) {
	if err := p.ValidateConfig(cfg); err != nil {
		return "", err
	}
	if err := p.CanAuthorize(cfg); err != nil {
		return "", err
	}
	conf := p.authConfig(cfg, "", redirectURI)
	return conf.AuthCodeURL(state,
		oauth2.SetAuthURLParam("code_challenge", challenge),
		oauth2.SetAuthURLParam("code_challenge_method", "S256")), nil
}

// Exchange presents code (with its PKCE verifier) at token_url exactly once: the same
// single-shot client as Refresh, the same classification and scrubbing.
func (p *Provider) Exchange(ctx context.Context, cfg provider.Config, grant provider.Grant, redirectURI, code, verifier string) (provider.TokenSet, error) {
	if err := p.ValidateConfig(cfg); err != nil {
		return provider.TokenSet{}, &provider.Error{Kind: provider.Permanent, Code: "invalid_config", Err: fmt.Errorf("oauth2 code exchange: %w", err)}
	}
	if strings.TrimSpace(code) == "" {
		return provider.TokenSet{}, &provider.Error{Kind: provider.Permanent, Code: "missing_code", Description: "no authorization code to exchange"}
	}
	conf := p.authConfig(cfg, grant.ClientSecret, redirectURI)
	// Scopes went to the authorization request; RFC 6749 section 4.1.3 has none here.
	ex := &exchange{}
	ctx = context.WithValue(ctx, oauth2.HTTPClient, p.callClient(ex))
	tok, err := conf.Exchange(ctx, code, oauth2.VerifierOption(verifier))
	if err != nil {
		return provider.TokenSet{}, p.classify(err, ex, newScrubber(code, verifier, grant.ClientSecret))
	}
	return p.tokenSet(tok, ""), nil
}

func (p *Provider) authConfig(cfg provider.Config, secret, redirectURI string) *oauth2.Config {
	style, _ := authStyle(cfg.AuthStyle) // validated by the callers
	return &oauth2.Config{
		ClientID:     cfg.ClientID,
		ClientSecret: secret,
		Endpoint:     oauth2.Endpoint{AuthURL: cfg.AuthorizeURL, TokenURL: cfg.TokenURL, AuthStyle: style},
		RedirectURL:  redirectURI,
		Scopes:       cfg.Scopes,
	}
}

// validateFlowFields checks the configuration only the authorization flows read.
func validateFlowFields(cfg provider.Config) error {
	switch cfg.GrantType {
	case "", GrantRefreshToken, GrantClientCredentials:
	default:
		return fmt.Errorf("grant_type: must be %q (the default) or %q, got %q", GrantRefreshToken, GrantClientCredentials, cfg.GrantType)
	}
	// The user types a password on the authorization page: the same https rule as an
	// endpoint that receives secrets.
	if cfg.AuthorizeURL != "" {
		if err := wire.ValidateEndpointURL("authorize_url", cfg.AuthorizeURL); err != nil {
			return err
		}
	}
	if cfg.RedirectURI != "" {
		if err := wire.ValidateRedirectURI("redirect_uri", cfg.RedirectURI); err != nil {
			return err
		}
	}
	return nil
}
