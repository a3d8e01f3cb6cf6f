package feishu

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/tokenwarden/tokenwarden/internal/provider"
	"github.com/tokenwarden/tokenwarden/internal/provider/internal/wire"
	"github.com/tokenwarden/tokenwarden/internal/provider/scrub"
)

// Hosts and paths of the Feishu and Lark open platforms.
const (
	// DefaultBaseURL is used when Config.BaseURL is empty.
	DefaultBaseURL = "https://open.feishu.cn"
	// LarkBaseURL is the international Lark platform; set it as config.base_url.
	LarkBaseURL = "https://open.larksuite.com"
	// UserTokenPath is the OAuth v2 token endpoint (user_access_token refresh).
	UserTokenPath = "/open-apis/authen/v2/oauth/token"
	// TenantTokenPath mints an internal (custom) app's tenant_access_token.
	TenantTokenPath = "/open-apis/auth/v3/tenant_access_token/internal"
)

// DefaultTimeout bounds one request when a constructor is given no client.
const DefaultTimeout = wire.DefaultTimeout

// maxBodyBytes bounds what is read of an answer; token responses are small.
const maxBodyBytes = 1 << 20

// errSecondRequest should be unreachable: one call sends one request.
var errSecondRequest = errors.New("feishu: refused a second request in one call (a refresh token may be presented only once)")

// base holds what both adapters share: the HTTP client and the clock.
type base struct {
	client *http.Client
	now    func() time.Time
}

func newBase(client *http.Client, now func() time.Time) base {
	if now == nil {
		now = time.Now
	}
	return base{client: wire.Client(client), now: now}
}

// validateBaseURL checks config.base_url; empty means DefaultBaseURL. The base receives
// the app secret (and the refresh token), so it obeys the rules of a token endpoint.
func validateBaseURL(raw string) error {
	if raw == "" {
		return nil
	}
	err := wire.ValidateBaseURL("base_url", raw)
	if errors.Is(err, wire.ErrNotAbsoluteURL) {
		return fmt.Errorf("%w such as %s or %s", err, DefaultBaseURL, LarkBaseURL)
	}
	return err
}

// endpoint joins the configured base and path.
func endpoint(cfg provider.Config, path string) string {
	b := cfg.BaseURL
	if b == "" {
		b = DefaultBaseURL
	}
	return strings.TrimRight(b, "/") + path
}

// validateCommon rejects the provider.Config fields no Feishu adapter uses, so that a
// credential copied from an oauth2 one fails loudly instead of being half-applied.
func validateCommon(cfg provider.Config, name string) error {
	if strings.TrimSpace(cfg.ClientID) == "" {
		return fmt.Errorf("client_id: required (the Feishu/Lark App ID, cli_...)")
	}
	if strings.TrimSpace(cfg.ClientID) != cfg.ClientID {
		return fmt.Errorf("client_id: has leading or trailing whitespace")
	}
	if err := validateBaseURL(cfg.BaseURL); err != nil {
		return err
	}
	unused := []struct{ field, value string }{
		{"token_url", cfg.TokenURL},
		{"auth_style", cfg.AuthStyle},
		{"introspection_url", cfg.IntrospectionURL},
		{"operator_id", cfg.OperatorID},
		{"parent", cfg.Parent},
		{"authorize_url", cfg.AuthorizeURL},
		{"grant_type", cfg.GrantType},
	}
	for _, u := range unused {
		if u.value != "" {
			if u.field == "authorize_url" {
				return fmt.Errorf("authorize_url: not used by %s; the authorization page follows base_url", name)
			}
			if u.field == "token_url" {
				return fmt.Errorf("token_url: not used by %s; set base_url to change the host (e.g. %s)", name, LarkBaseURL)
			}
			return fmt.Errorf("%s: not used by %s", u.field, name)
		}
	}
	return nil
}

// result is one exchange's decoded 2xx success candidate.
type result struct {
	status int
	answer answer
}

// post sends body as JSON to url exactly once and classifies the answer. A nil error
// means a 2xx answer without an error code; the caller checks the token fields.
func (b base) post(ctx context.Context, target string, body any, sc scrub.Scrubber) (result, *provider.Error) {
	raw, err := json.Marshal(body)
	if err != nil {
		return result{}, &provider.Error{Kind: provider.Permanent, Code: CodeInvalidConfig, Description: "request could not be encoded"}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, bytes.NewReader(raw))
	if err != nil {
		return result{}, &provider.Error{Kind: provider.Permanent, Code: CodeInvalidConfig, Err: wire.ScrubbedError(err, sc)}
	}
	req.Header.Set("Content-Type", "application/json; charset=utf-8")
	req.Header.Set("Accept", "application/json")

	resp, err := wire.SingleShot(b.client, errSecondRequest).Do(req)
	if err != nil {
		if errors.Is(err, errSecondRequest) {
			return result{}, &provider.Error{Kind: provider.Transient, Code: CodeNetwork, Description: "a second request was refused", Err: errSecondRequest}
		}
		return result{}, &provider.Error{Kind: provider.Transient, Code: CodeNetwork, Description: "no response from Feishu", Err: wire.ScrubbedError(err, sc)}
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxBodyBytes))
	if err != nil {
		return result{}, &provider.Error{Kind: provider.Transient, Code: CodeNetwork, HTTPStatus: resp.StatusCode,
			Description: "response body could not be read", Err: wire.ScrubbedError(err, sc)}
	}
	a := decode(data)
	if pe := classify(resp.StatusCode, resp.Header, data, a, b.now(), sc); pe != nil {
		return result{}, pe
	}
	return result{status: resp.StatusCode, answer: a}, nil
}

// malformed reports a 2xx answer that yields no token. The body is never quoted: an
// almost-successful answer is exactly where fresh tokens would be.
func malformed(status int, what string) *provider.Error {
	return &provider.Error{Kind: provider.Transient, Code: CodeMalformedResponse, HTTPStatus: status,
		Description: "Feishu answered without a usable token response (" + what + ")"}
}

func (b base) after(secs int64) time.Time {
	if secs <= 0 {
		return time.Time{}
	}
	return b.now().Add(time.Duration(min(secs, wire.MaxLifetimeSeconds)) * time.Second)
}
