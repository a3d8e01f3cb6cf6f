package oauth2provider

import (
	"context"
	"fmt"
	"io"

	"github.com/tokenwarden/tokenwarden/internal/provider"
	"github.com/tokenwarden/tokenwarden/internal/provider/internal/wire"
)

var _ provider.Revoker = (*Provider)(nil)

// Revoke asks cfg.RevocationURL (RFC 7009) to revoke grant.RefreshToken, authenticating
// the client as at the token endpoint. RFC 7009 section 2.2 answers 200 for a token that
// was already invalid, so a retried revocation is harmless. Without a RevocationURL it
// returns (false, nil).
func (p *Provider) Revoke(ctx context.Context, cfg provider.Config, grant provider.Grant) (bool, error) {
	if cfg.RevocationURL == "" || grant.RefreshToken == "" {
		return cfg.RevocationURL != "", nil
	}
	if err := p.ValidateConfig(cfg); err != nil {
		return true, &provider.Error{Kind: provider.Permanent, Code: "invalid_config", Err: fmt.Errorf("oauth2 revocation: %w", err)}
	}
	req, sc, err := tokenRequest(ctx, cfg.RevocationURL, cfg, grant, grant.RefreshToken, "refresh_token")
	if err != nil {
		return true, &provider.Error{Kind: provider.Permanent, Code: "invalid_config", Err: err}
	}
	resp, err := p.callClient(&exchange{}).Do(req)
	if err != nil {
		return true, &provider.Error{Kind: provider.Transient, Code: CodeNetwork,
			Description: "no response from revocation endpoint", Err: wire.ScrubbedError(err, sc)}
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, maxIntrospectionBody))
	if resp.StatusCode >= 200 && resp.StatusCode <= 299 {
		return true, nil
	}
	code, desc := parseErrorBody(resp.Header.Get("Content-Type"), body)
	return true, p.classifyResponse(resp.StatusCode, resp.Header, code, desc, body, sc)
}
