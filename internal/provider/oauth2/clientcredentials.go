package oauth2provider

import (
	"context"
	"errors"
	"strings"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"

	"github.com/tokenwarden/tokenwarden/internal/provider"
)

var _ provider.ConfigGrantValidator = (*Provider)(nil)

// ValidateGrantFor: a client credentials seed is the client secret alone (a refresh
// token there means the credential was meant for the refresh_token grant); any other
// grant type needs the refresh token, as ValidateGrant says.
func (p *Provider) ValidateGrantFor(cfg provider.Config, g provider.Grant) error {
	if !clientCredentials(cfg) {
		return p.ValidateGrant(g)
	}
	if strings.TrimSpace(g.ClientSecret) == "" {
		return errors.New("client_secret: required (grant_type client_credentials mints with it)")
	}
	if g.RefreshToken != "" {
		return errors.New("refresh_token: not used by grant_type client_credentials")
	}
	return nil
}

// mint obtains an access token with the client credentials grant (RFC 6749 section
// 4.4), one request, classified like a refresh. There is no refresh token to rotate:
// the client secret mints again whenever the workflow's schedule says so.
func (p *Provider) mint(ctx context.Context, cfg provider.Config, grant provider.Grant) (provider.TokenSet, error) {
	if grant.ClientSecret == "" {
		return provider.TokenSet{}, &provider.Error{Kind: provider.Permanent, Code: "missing_client_secret", Description: "client_credentials needs the client secret"}
	}
	style, _ := authStyle(cfg.AuthStyle) // validated by Refresh
	conf := &clientcredentials.Config{
		ClientID:     cfg.ClientID,
		ClientSecret: grant.ClientSecret,
		TokenURL:     cfg.TokenURL,
		Scopes:       cfg.Scopes,
		AuthStyle:    style,
	}
	ex := &exchange{}
	// clientcredentials takes its HTTP client from the context: the single-shot one.
	tok, err := conf.Token(context.WithValue(ctx, oauth2.HTTPClient, p.callClient(ex)))
	if err != nil {
		return provider.TokenSet{}, p.classify(err, ex, newScrubber(grant.ClientSecret))
	}
	return p.tokenSet(tok, ""), nil
}
