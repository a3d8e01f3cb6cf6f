package feishu

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"github.com/tokenwarden/tokenwarden/internal/provider"
	"github.com/tokenwarden/tokenwarden/internal/provider/scrub"
)

// TenantReissueWindow is Feishu's rule for tenant_access_token: a mint while the current
// token has at least this long left returns the same token.
const TenantReissueWindow = 30 * time.Minute

// tenantRenewalLead is how far inside the re-issue window a tenant token is renewable
// (TokenSet.RenewableAt): a minute, for clocks that differ from Feishu's.
const tenantRenewalLead = time.Minute

// Tenant mints tenant_access_tokens for internal (custom) apps. It is safe for
// concurrent use.
type Tenant struct {
	base
	logger    atomic.Pointer[slog.Logger]
	unchanged atomic.Int64
}

var (
	_ provider.Provider  = (*Tenant)(nil)
	_ provider.Refresher = (*Tenant)(nil)
)

// NewTenant returns the feishu-tenant adapter. A nil client gets DefaultTimeout and the
// default transport; a nil now means time.Now.
func NewTenant(client *http.Client, now func() time.Time) *Tenant {
	return &Tenant{base: newBase(client, now)}
}

// SetLogger sets where unchanged re-mints are reported (nil: slog.Default()).
func (t *Tenant) SetLogger(l *slog.Logger) { t.logger.Store(l) }

// UnchangedRemints returns how many mints returned the token the grant already held:
// Feishu re-issues the current token while TenantReissueWindow or more of it is left.
func (t *Tenant) UnchangedRemints() int64 { return t.unchanged.Load() }

// ValidateConfig checks client_id (the App ID) and base_url. Errors start with the field
// name.
func (t *Tenant) ValidateConfig(cfg provider.Config) error {
	if err := validateCommon(cfg, "feishu-tenant"); err != nil {
		return err
	}
	if len(cfg.Scopes) > 0 {
		return fmt.Errorf("scopes: not used by feishu-tenant (a tenant token carries the app's permissions)")
	}
	if cfg.RedirectURI != "" {
		return fmt.Errorf("redirect_uri: not used by feishu-tenant (no user authorizes it)")
	}
	return nil
}

// ValidateGrant requires the App Secret and refuses a refresh token: a tenant token is
// minted from app_id and app_secret alone, and a refresh token here means the credential
// was meant to be feishu-user.
func (t *Tenant) ValidateGrant(g provider.Grant) error {
	if strings.TrimSpace(g.ClientSecret) == "" {
		return fmt.Errorf("client_secret: required (the Feishu/Lark App Secret)")
	}
	if g.RefreshToken != "" {
		return fmt.Errorf("refresh_token: not used by feishu-tenant (it mints with the App ID and App Secret); use feishu-user for user tokens")
	}
	return nil
}

type tenantRequest struct {
	AppID     string `json:"app_id"`
	AppSecret string `json:"app_secret"`
}

// Refresh mints a tenant_access_token with one request. When Feishu answers with the
// token the grant already holds (more than 30 minutes were left), the TokenSet carries
// it with its unchanged expiry, and the event is counted and logged.
func (t *Tenant) Refresh(ctx context.Context, cfg provider.Config, grant provider.Grant) (provider.TokenSet, error) {
	if err := t.ValidateConfig(cfg); err != nil {
		return provider.TokenSet{}, &provider.Error{Kind: provider.Permanent, Code: CodeInvalidConfig, Err: fmt.Errorf("feishu-tenant mint: config.%w", err)}
	}
	if strings.TrimSpace(grant.ClientSecret) == "" {
		return provider.TokenSet{}, &provider.Error{Kind: provider.Permanent, Code: "missing_client_secret",
			Description: "no App Secret stored; reseed with client_secret (the Feishu/Lark App Secret)"}
	}
	sc := scrub.New(grant.ClientSecret, grant.AccessToken, grant.RefreshToken)
	res, pe := t.post(ctx, endpoint(cfg, TenantTokenPath), tenantRequest{AppID: cfg.ClientID, AppSecret: grant.ClientSecret}, sc)
	if pe != nil {
		return provider.TokenSet{}, pe
	}
	a := res.answer
	switch {
	case !a.json:
		return provider.TokenSet{}, malformed(res.status, "not a JSON object")
	case a.accessToken == "":
		return provider.TokenSet{}, malformed(res.status, "no tenant_access_token")
	}
	ts := provider.TokenSet{AccessToken: a.accessToken, TokenType: "Bearer", AccessExpiresAt: t.after(a.expiresIn)}
	// Only a mint inside the last TenantReissueWindow yields a new token, so the schedule
	// waits for it: one mint a cycle, each one new.
	if renewable := ts.AccessExpiresAt.Add(-TenantReissueWindow + tenantRenewalLead); renewable.Before(ts.AccessExpiresAt) {
		ts.RenewableAt = renewable
	}
	if grant.AccessToken != "" && a.accessToken == grant.AccessToken {
		t.unchanged.Add(1)
		l := t.logger.Load()
		if l == nil {
			l = slog.Default()
		}
		l.LogAttrs(ctx, slog.LevelInfo, "feishu-tenant: Feishu returned the unchanged tenant_access_token (it re-issues the current token while 30 minutes or more are left); the schedule waits for that window, so this follows only a refresh asked for by hand or a clock that differs from Feishu's",
			slog.Int64("expire_seconds", a.expiresIn), slog.Time("access_expires_at", ts.AccessExpiresAt))
	}
	return ts, nil
}
