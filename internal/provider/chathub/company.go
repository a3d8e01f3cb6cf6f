package chathub

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/tokenwarden/tokenwarden/internal/provider"
	"github.com/tokenwarden/tokenwarden/internal/provider/internal/wire"
	"github.com/tokenwarden/tokenwarden/internal/provider/scrub"
)

// DefaultBaseURL is the ChatHub API host the documentation names.
const DefaultBaseURL = "https://chatapi.smsbat.com"

// CompanyTokenPath is the company login endpoint, relative to the base URL.
const CompanyTokenPath = "/api/company/get-token"

// DefaultCompanyRotation is the lifetime reported for a company token when
// config.token_lifetime does not choose one. Seed 003 (the ChatHub authentication
// documentation) gives company tokens no expiry in the API and asks for them to be
// rotated every 3 to 6 months; a token said to live 6 months is replaced, by the
// scheduler's two-thirds rule, about 4 months after its login: inside that window.
const DefaultCompanyRotation = 180 * 24 * time.Hour

// MaxCompanyRotation is the longest config.token_lifetime a company credential may
// choose: the long end of seed 003's rotation window.
const MaxCompanyRotation = 183 * 24 * time.Hour

// MinLoginInterval is the least time between two logins of one company: seed 003's
// rate-limiting advice spaces authentication requests a second apart.
const MinLoginInterval = time.Second

// Error codes of this package (see the package documentation).
const (
	CodeLoginRejected     = "login_rejected"
	CodeLoginSpacing      = "login_spacing"
	CodeMissingGrant      = "missing_grant"
	CodeNetwork           = wire.CodeNetwork
	CodeMalformedResponse = wire.CodeMalformedResponse
	CodeInvalidConfig     = wire.CodeInvalidConfig
)

// Company mints SMSBAT ChatHub company tokens by logging in. It is safe for concurrent
// use.
type Company struct {
	client *http.Client
	now    func() time.Time
	logins spacer // one login a MinLoginInterval per company
}

var (
	_ provider.Provider  = (*Company)(nil)
	_ provider.Refresher = (*Company)(nil)
)

// NewCompany returns the company-token adapter, talking through client (nil: a client
// with a 30s timeout) and reading time from now (nil: time.Now).
func NewCompany(client *http.Client, now func() time.Time) *Company {
	if now == nil {
		now = time.Now
	}
	return &Company{client: wire.Client(client), now: now}
}

// ValidateConfig accepts an optional base_url (DefaultBaseURL when empty) and an
// optional token_lifetime, the rotation period (see companyRotation).
func (c *Company) ValidateConfig(cfg provider.Config) error {
	if cfg.BaseURL != "" {
		if err := wire.ValidateBaseURL("base_url", cfg.BaseURL); err != nil {
			return err
		}
	}
	_, err := companyRotation(cfg)
	return err
}

// companyRotation is config.token_lifetime, or DefaultCompanyRotation.
func companyRotation(cfg provider.Config) (time.Duration, error) {
	if cfg.TokenLifetime == "" {
		return DefaultCompanyRotation, nil
	}
	d, err := time.ParseDuration(cfg.TokenLifetime)
	if err != nil || d <= 0 || d > MaxCompanyRotation {
		return 0, fmt.Errorf("token_lifetime: must be a duration above 0 and at most %s (about six months), such as \"2160h\" for 90 days", MaxCompanyRotation)
	}
	return d, nil
}

// ValidateGrant requires the company login (username) and password.
func (c *Company) ValidateGrant(g provider.Grant) error {
	if g.Username == "" {
		return fmt.Errorf("username: required (the ChatHub company login)")
	}
	if g.Password == "" {
		return fmt.Errorf("password: required")
	}
	return nil
}

func baseURL(cfg provider.Config) string {
	if cfg.BaseURL != "" {
		return cfg.BaseURL
	}
	return DefaultBaseURL
}

// Refresh logs in once with grant.Username and grant.Password and returns the company
// token. RefreshToken is always empty: ChatHub issues none.
func (c *Company) Refresh(ctx context.Context, cfg provider.Config, grant provider.Grant) (provider.TokenSet, error) {
	if err := c.ValidateConfig(cfg); err != nil {
		return provider.TokenSet{}, &provider.Error{Kind: provider.Permanent, Code: CodeInvalidConfig, Err: fmt.Errorf("chathub: config.%w", err)}
	}
	if err := c.ValidateGrant(grant); err != nil {
		return provider.TokenSet{}, &provider.Error{Kind: provider.Permanent, Code: CodeMissingGrant, Description: err.Error()}
	}
	rotation, _ := companyRotation(cfg) // checked by ValidateConfig above
	endpoint := wire.JoinURL(baseURL(cfg), CompanyTokenPath)
	if err := c.logins.wait(ctx, companyKey(endpoint, grant.Username)); err != nil {
		return provider.TokenSet{}, err
	}
	sc := scrub.New(grant.Password, grant.Username, grant.ClientSecret, grant.AccessToken)
	body := map[string]string{"login": grant.Username, "password": grant.Password}
	res, perr := wire.PostJSON(ctx, c.client, endpoint, body, nil, sc)
	if perr != nil {
		return provider.TokenSet{}, perr
	}
	if res.Status >= 200 && res.Status < 300 {
		return c.tokenSet(res, rotation)
	}
	e := &provider.Error{Kind: provider.Permanent, HTTPStatus: res.Status, Code: fmt.Sprintf("http_%d", res.Status),
		Description: wire.Message(res.Body, sc, "message", "error", "error_description", "title", "detail")}
	switch {
	case wire.IsTransientStatus(res.Status):
		e.Kind = provider.Transient
		e.RetryAfter = wire.ParseRetryAfter(res.Header.Get("Retry-After"), c.now())
	case res.Status == http.StatusUnauthorized || res.Status == http.StatusForbidden:
		e.Code = CodeLoginRejected
	case res.Status >= 300 && res.Status < 400:
		e.Description = "base_url answered with a redirect, which is not followed"
	}
	return provider.TokenSet{}, e
}

// tokenSet reads the bare JSON string (or an unquoted JWT) and reports the token as
// living until the end of its rotation period, or until its exp claim if that comes
// first: the token may well work for longer, but seed 003 wants it replaced by then, and
// the workflow replaces a token ahead of the expiry it is given.
func (c *Company) tokenSet(res *wire.Response, rotation time.Duration) (provider.TokenSet, error) {
	now := c.now()
	ts, err := bareJWT(res, now, "company token")
	if err != nil {
		return provider.TokenSet{}, err
	}
	if rotateBy := now.Add(rotation); ts.AccessExpiresAt.IsZero() || rotateBy.Before(ts.AccessExpiresAt) {
		ts.AccessExpiresAt = rotateBy
	}
	return ts, nil
}

// bareJWT reads an answer that is a bare JSON string holding a JWT (or the JWT
// unquoted), as both ChatHub token endpoints give, with the expiry of its exp claim.
func bareJWT(res *wire.Response, now time.Time, what string) (provider.TokenSet, error) {
	malformed := func(why string) error {
		return &provider.Error{Kind: provider.Transient, Code: CodeMalformedResponse, HTTPStatus: res.Status,
			Description: what + " answer " + why}
	}
	var token string
	body := strings.TrimSpace(string(res.Body))
	if strings.HasPrefix(body, `"`) {
		if err := json.Unmarshal([]byte(body), &token); err != nil {
			return provider.TokenSet{}, malformed("is not a JSON string")
		}
		token = strings.TrimSpace(token)
	} else {
		token = body
	}
	if token == "" {
		return provider.TokenSet{}, malformed("is empty")
	}
	exp, err := TokenExpiry(token)
	if err != nil {
		return provider.TokenSet{}, malformed("is not a well-formed JWT")
	}
	if !exp.IsZero() && !exp.After(now) {
		return provider.TokenSet{}, malformed(fmt.Sprintf("holds a token that expired at %s", exp.Format(time.RFC3339)))
	}
	return provider.TokenSet{AccessToken: token, TokenType: "Bearer", AccessExpiresAt: exp}, nil
}
