// Package baoming is the adapter for 报名工具 (baoming), a WeChat mini-program for event
// enrolment whose API tokens cannot be refreshed: the tool's users log in again in
// WeChat when a token dies. tokenwarden's whole lifecycle for such a credential is
// liveness: probe the token on a schedule, and tell a human when it stops working.
//
// Probe: GET {base}/xcx/enroll/v1/userinfo?access_token=TOKEN. The API answers HTTP 200
// with {"sta": 0, "data": {...}} for a live token and a non-zero "sta" (with "msg") for
// a token it no longer accepts.
//
//	answer                               outcome
//	HTTP 200, sta == 0                   valid
//	HTTP 200, sta != 0                   invalid (the credential needs a new login)
//	HTTP 401 or 403                      invalid
//	HTTP 5xx, 429, network, timeout      Transient error (probed again later)
//	HTTP 200 that is not JSON or no sta  Transient error "malformed_response"
//
// A delta-seconds Retry-After on a 5xx or 429 becomes the error's RetryAfter, capped at
// an hour. The token travels in the query string, so every error is scrubbed: Go's HTTP
// client quotes the whole URL in its errors.
package baoming

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/tokenwarden/tokenwarden/internal/provider"
	"github.com/tokenwarden/tokenwarden/internal/provider/internal/wire"
	"github.com/tokenwarden/tokenwarden/internal/provider/scrub"
)

// DefaultBaseURL is the production API.
const DefaultBaseURL = "https://api-xcx-qunsou.weiyoubot.cn"

// UserInfoPath is the endpoint the probe calls.
const UserInfoPath = "/xcx/enroll/v1/userinfo"

// maxBody bounds what is read from an answer.
const maxBody = 1 << 20

// Provider probes baoming tokens. It cannot refresh them.
type Provider struct {
	client *http.Client
}

var (
	_ provider.Provider = (*Provider)(nil)
	_ provider.Prober   = (*Provider)(nil)
)

// New returns the adapter; a nil client gets a 30 s timeout.
func New(client *http.Client) *Provider {
	// A copy that refuses redirects, leaving the caller's client as it is: a redirect
	// would carry the token in the query string to another host.
	return &Provider{client: wire.NoRedirects(client)}
}

// ValidateConfig accepts an optional base_url (absolute http or https, no user info).
func (p *Provider) ValidateConfig(cfg provider.Config) error {
	if cfg.BaseURL == "" {
		return nil
	}
	return wire.ValidateEndpointURL("base_url", cfg.BaseURL)
}

// ValidateGrant requires the access token: there is nothing else to hold.
func (p *Provider) ValidateGrant(g provider.Grant) error {
	if strings.TrimSpace(g.AccessToken) == "" {
		return errors.New("access_token: required (baoming tokens cannot be refreshed)")
	}
	return nil
}

// Refresh always fails: baoming has no refresh endpoint. The workflow never calls it for
// a probe-only provider; this answer is for anyone who does.
func (p *Provider) Refresh(context.Context, provider.Config, provider.Grant) (provider.TokenSet, error) {
	return provider.TokenSet{}, &provider.Error{Kind: provider.Permanent, Code: "cannot_refresh",
		Description: "baoming tokens cannot be refreshed; log in again and reseed the access token"}
}

// Probe asks the user-info endpoint whether grant.AccessToken is still accepted.
func (p *Provider) Probe(ctx context.Context, cfg provider.Config, grant provider.Grant) (bool, error) {
	sc := scrub.New(grant.AccessToken)
	base := cfg.BaseURL
	if base == "" {
		base = DefaultBaseURL
	}
	u, err := url.Parse(strings.TrimRight(base, "/") + UserInfoPath)
	if err != nil {
		return false, &provider.Error{Kind: provider.Permanent, Code: "invalid_config", Err: sc.Error(err, 400)}
	}
	u.RawQuery = url.Values{"access_token": {grant.AccessToken}}.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return false, &provider.Error{Kind: provider.Permanent, Code: "invalid_config", Err: sc.Error(err, 400)}
	}
	req.Header.Set("Accept", "application/json")
	resp, err := p.client.Do(req)
	if err != nil {
		return false, &provider.Error{Kind: provider.Transient, Code: "network", Err: sc.Error(err, 400)}
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	if err != nil {
		return false, &provider.Error{Kind: provider.Transient, Code: "network", HTTPStatus: resp.StatusCode, Err: sc.Error(err, 400)}
	}
	switch {
	case resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden:
		return false, nil
	case resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode >= 500:
		return false, &provider.Error{Kind: provider.Transient, Code: fmt.Sprintf("http_%d", resp.StatusCode),
			HTTPStatus: resp.StatusCode, RetryAfter: wire.ParseDelaySeconds(resp.Header.Get("Retry-After")),
			Description: sc.Scrub(string(body), scrub.MaxDescriptionLen)}
	case resp.StatusCode < 200 || resp.StatusCode > 299:
		return false, &provider.Error{Kind: provider.Transient, Code: fmt.Sprintf("http_%d", resp.StatusCode),
			HTTPStatus: resp.StatusCode, Description: sc.Scrub(string(body), scrub.MaxDescriptionLen)}
	}
	var answer struct {
		Sta *int   `json:"sta"`
		Msg string `json:"msg"`
	}
	if err := json.Unmarshal(body, &answer); err != nil || answer.Sta == nil {
		// Never quote the body: it may carry the user's data.
		return false, &provider.Error{Kind: provider.Transient, Code: "malformed_response", HTTPStatus: resp.StatusCode,
			Description: "the user-info answer is not JSON with a sta field"}
	}
	return *answer.Sta == 0, nil
}
