package oauth2provider

import (
	"context"
	"fmt"
	"io"
	"net/http"

	"github.com/tokenwarden/tokenwarden/internal/provider"
	"github.com/tokenwarden/tokenwarden/internal/provider/internal/wire"
)

var (
	_ provider.Prober           = (*Provider)(nil)
	_ provider.ConfiguredProber = (*Provider)(nil)
)

// CanProbe reports whether cfg gives a way to check an access token: an RFC 7662
// introspection endpoint or a userinfo endpoint. It uses no field of p, so a zero
// Provider answers as well as any.
func (p *Provider) CanProbe(cfg provider.Config) bool {
	return cfg.IntrospectionURL != "" || cfg.UserinfoURL != ""
}

// Probe checks whether grant.AccessToken still works without spending anything: by RFC
// 7662 introspection (token_type_hint=access_token) when introspection_url is set,
// otherwise by a GET of userinfo_url with the token as a Bearer credential (OpenID
// Connect UserInfo, or any endpoint that answers 401 for a dead token). A 2xx is valid,
// 401 and 403 are a clear "no"; everything else is classified like a Refresh error.
func (p *Provider) Probe(ctx context.Context, cfg provider.Config, grant provider.Grant) (bool, error) {
	if grant.AccessToken == "" {
		return false, nil
	}
	if cfg.IntrospectionURL != "" {
		return p.introspect(ctx, cfg, grant, grant.AccessToken, "access_token")
	}
	if cfg.UserinfoURL == "" {
		return false, &provider.Error{Kind: provider.Permanent, Code: "invalid_config",
			Description: "probing needs config.introspection_url or config.userinfo_url"}
	}
	if err := p.ValidateConfig(cfg); err != nil {
		return false, &provider.Error{Kind: provider.Permanent, Code: "invalid_config", Err: fmt.Errorf("oauth2 probe: %w", err)}
	}
	sc := newScrubber(grant.AccessToken, grant.RefreshToken, grant.ClientSecret)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, cfg.UserinfoURL, nil)
	if err != nil {
		return false, &provider.Error{Kind: provider.Permanent, Code: "invalid_config", Err: wire.ScrubbedError(err, sc)}
	}
	req.Header.Set("Authorization", "Bearer "+grant.AccessToken)
	req.Header.Set("Accept", "application/json")
	resp, err := p.callClient(&exchange{}).Do(req)
	if err != nil {
		return false, &provider.Error{Kind: provider.Transient, Code: CodeNetwork,
			Description: "no response from userinfo endpoint", Err: wire.ScrubbedError(err, sc)}
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, maxIntrospectionBody))
	switch {
	case resp.StatusCode >= 200 && resp.StatusCode <= 299:
		return true, nil
	case resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden:
		return false, nil
	}
	code, desc := parseErrorBody(resp.Header.Get("Content-Type"), body)
	perr := p.classifyResponse(resp.StatusCode, resp.Header, code, desc, body, sc)
	// Only the token can be judged here, and a 4xx other than 401/403 says nothing
	// about it: keep asking rather than park a credential over a misbehaving endpoint.
	perr.Kind = provider.Transient
	return false, perr
}
