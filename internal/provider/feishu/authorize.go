package feishu

import (
	"context"
	"net/url"
	"strings"

	"github.com/tokenwarden/tokenwarden/internal/provider"
	"github.com/tokenwarden/tokenwarden/internal/provider/scrub"
)

// Authorization hosts and path of the v2 authorization code flow. The consent page is
// on the accounts host, not on the API host base_url names.
const (
	DefaultAuthorizeBase = "https://accounts.feishu.cn"
	LarkAuthorizeBase    = "https://accounts.larksuite.com"
	AuthorizePath        = "/open-apis/authen/v1/authorize"
)

var _ provider.Authorizer = (*User)(nil)

// authorizeURL is the consent page cfg leads to: the accounts host of Feishu or Lark for
// their API hosts, otherwise base_url itself (a fake, a proxy) plus AuthorizePath.
func authorizeURL(cfg provider.Config) string {
	switch strings.TrimRight(cfg.BaseURL, "/") {
	case "", DefaultBaseURL:
		return DefaultAuthorizeBase + AuthorizePath
	case LarkBaseURL:
		return LarkAuthorizeBase + AuthorizePath
	}
	return strings.TrimRight(cfg.BaseURL, "/") + AuthorizePath
}

// CanAuthorize: every feishu-user app has the consent page. Without offline_access in
// the scopes Feishu issues no refresh token, and the exchange says so.
func (u *User) CanAuthorize(provider.Config) error { return nil }

// AuthCodeURL builds the v2 authorization request: client_id, response_type=code,
// redirect_uri, scope (space-separated), state, and the PKCE S256 challenge.
func (u *User) AuthCodeURL(cfg provider.Config, redirectURI, state, challenge string) (string, error) {
	if err := u.ValidateConfig(cfg); err != nil {
		return "", err
	}
	q := url.Values{
		"client_id":     {cfg.ClientID},
		"response_type": {"code"},
		"redirect_uri":  {redirectURI},
		"state":         {state},
	}
	if len(cfg.Scopes) > 0 {
		q.Set("scope", strings.Join(cfg.Scopes, " "))
	}
	if challenge != "" {
		q.Set("code_challenge", challenge)
		q.Set("code_challenge_method", "S256")
	}
	return authorizeURL(cfg) + "?" + q.Encode(), nil
}

type userCodeRequest struct {
	GrantType    string `json:"grant_type"`
	ClientID     string `json:"client_id"`
	ClientSecret string `json:"client_secret"`
	Code         string `json:"code"`
	RedirectURI  string `json:"redirect_uri,omitempty"`
	CodeVerifier string `json:"code_verifier,omitempty"`
}

// Exchange trades the code at the v2 token endpoint, once, with the redirect URI the
// authorization request carried and the PKCE verifier. Answers and errors are those of
// Refresh (a refused code is a Permanent error with Feishu's code).
func (u *User) Exchange(ctx context.Context, cfg provider.Config, grant provider.Grant, redirectURI, code, verifier string) (provider.TokenSet, error) {
	if err := u.ValidateConfig(cfg); err != nil {
		return provider.TokenSet{}, &provider.Error{Kind: provider.Permanent, Code: CodeInvalidConfig, Err: err}
	}
	switch {
	case strings.TrimSpace(code) == "":
		return provider.TokenSet{}, &provider.Error{Kind: provider.Permanent, Code: "missing_code", Description: "no authorization code to exchange"}
	case strings.TrimSpace(grant.ClientSecret) == "":
		return provider.TokenSet{}, &provider.Error{Kind: provider.Permanent, Code: "missing_client_secret",
			Description: "the code exchange needs client_secret (the Feishu/Lark App Secret)"}
	}
	sc := scrub.New(code, verifier, grant.ClientSecret)
	res, pe := u.post(ctx, endpoint(cfg, UserTokenPath), userCodeRequest{
		GrantType:    "authorization_code",
		ClientID:     cfg.ClientID,
		ClientSecret: grant.ClientSecret,
		Code:         code,
		RedirectURI:  redirectURI,
		CodeVerifier: verifier,
	}, sc)
	if pe != nil {
		return provider.TokenSet{}, pe
	}
	return u.tokenSet(res, "")
}
