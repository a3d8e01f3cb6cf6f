package baoming

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/tokenwarden/tokenwarden/internal/provider"
	"github.com/tokenwarden/tokenwarden/internal/provider/internal/wire"
	"github.com/tokenwarden/tokenwarden/internal/provider/scrub"
)

// DefaultBaseURL is the production API.
const DefaultBaseURL = "https://api-xcx-qunsou.weiyoubot.cn"

// DetailPath is the enrollment-detail endpoint the probe calls.
const DetailPath = "/xcx/enroll/v3/detail"

// Query parameters of DetailPath.
const (
	ParamAccessToken = "access_token"
	ParamEnrollID    = "eid"
)

// Codes of a "no" (ProbeResult.Code) and of our own errors.
const (
	CodeTokenRejected     = "token_rejected"
	CodeNotEnrolled       = "not_enrolled"
	CodeNetwork           = wire.CodeNetwork
	CodeMalformedResponse = wire.CodeMalformedResponse
	CodeInvalidConfig     = wire.CodeInvalidConfig
)

// LabelInfoID is the label holding the answer's info_id.
const LabelInfoID = "info_id"

// maxBody bounds what is read from an answer; a detail answer is a few kilobytes.
const maxBody = 1 << 20

// maxLabelLen bounds a label value, in bytes: labels end up in status pages and logs.
const maxLabelLen = 64

// Provider probes baoming tokens. It cannot refresh them, so it is no provider.Refresher.
// It is safe for concurrent use.
type Provider struct {
	client *http.Client
}

var (
	_ provider.Provider       = (*Provider)(nil)
	_ provider.DetailedProber = (*Provider)(nil)
)

// New returns the adapter; a nil client gets a 30 s timeout.
func New(client *http.Client) *Provider {
	// A copy that refuses redirects, leaving the caller's client as it is: a redirect
	// would carry the token in the query string to another host.
	return &Provider{client: wire.NoRedirects(client)}
}

// ValidateConfig requires eid and accepts an optional base_url; every other field is
// refused (see the package documentation). Errors start with the field name.
func (p *Provider) ValidateConfig(cfg provider.Config) error {
	if cfg.BaseURL != "" {
		if err := wire.ValidateBaseURL("base_url", cfg.BaseURL); err != nil {
			return err
		}
	}
	switch {
	case cfg.EnrollID == "":
		return errors.New("eid: required (the id of an enrollment the token's account has joined, 24 hex digits): " +
			"the probe reads that enrollment's detail")
	case !isEnrollID(cfg.EnrollID):
		return errors.New("eid: must be a baoming enrollment id, 24 hex digits")
	}
	for _, f := range []struct {
		name string
		set  bool
	}{
		{"token_url", cfg.TokenURL != ""},
		{"introspection_url", cfg.IntrospectionURL != ""},
		{"userinfo_url", cfg.UserinfoURL != ""},
		{"revocation_url", cfg.RevocationURL != ""},
		{"client_id", cfg.ClientID != ""},
		{"auth_style", cfg.AuthStyle != ""},
		{"scopes", len(cfg.Scopes) > 0},
		{"operator_id", cfg.OperatorID != ""},
		{"parent", cfg.Parent != ""},
		{"token_lifetime", cfg.TokenLifetime != ""},
	} {
		if f.set {
			return fmt.Errorf("%s: not used by baoming (the probe calls base_url + %s with eid; set base_url to change the host)", f.name, DetailPath)
		}
	}
	return nil
}

func isEnrollID(s string) bool {
	if len(s) != 24 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return false
		}
	}
	return true
}

// ValidateGrant requires the access token: there is nothing else to hold.
func (p *Provider) ValidateGrant(g provider.Grant) error {
	if strings.TrimSpace(g.AccessToken) == "" {
		return errors.New("access_token: required (baoming tokens cannot be refreshed)")
	}
	return nil
}

// Probe reports whether the enrollment-detail endpoint accepts grant.AccessToken.
func (p *Provider) Probe(ctx context.Context, cfg provider.Config, grant provider.Grant) (bool, error) {
	res, err := p.ProbeDetail(ctx, cfg, grant)
	return res.Valid, err
}

// ProbeDetail asks the enrollment-detail endpoint about config.eid with
// grant.AccessToken, once, and applies the package documentation's table.
func (p *Provider) ProbeDetail(ctx context.Context, cfg provider.Config, grant provider.Grant) (provider.ProbeResult, error) {
	if err := p.ValidateConfig(cfg); err != nil {
		return provider.ProbeResult{}, &provider.Error{Kind: provider.Permanent, Code: CodeInvalidConfig,
			Err: fmt.Errorf("baoming: config.%w", err)}
	}
	if grant.AccessToken == "" {
		return provider.ProbeResult{}, &provider.Error{Kind: provider.Permanent, Code: CodeInvalidConfig,
			Description: "no access token to probe"}
	}
	sc := scrub.New(grant.AccessToken)
	base := cfg.BaseURL
	if base == "" {
		base = DefaultBaseURL
	}
	u, err := url.Parse(wire.JoinURL(base, DetailPath))
	if err != nil {
		return provider.ProbeResult{}, &provider.Error{Kind: provider.Permanent, Code: CodeInvalidConfig, Err: wire.ScrubbedError(err, sc)}
	}
	u.RawQuery = url.Values{ParamAccessToken: {grant.AccessToken}, ParamEnrollID: {cfg.EnrollID}}.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return provider.ProbeResult{}, &provider.Error{Kind: provider.Permanent, Code: CodeInvalidConfig, Err: wire.ScrubbedError(err, sc)}
	}
	req.Header.Set("Accept", "application/json")
	resp, err := p.client.Do(req)
	if err != nil {
		return provider.ProbeResult{}, &provider.Error{Kind: provider.Transient, Code: CodeNetwork,
			Description: "no response from baoming", Err: wire.ScrubbedError(err, sc)}
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	if err != nil {
		return provider.ProbeResult{}, &provider.Error{Kind: provider.Transient, Code: CodeNetwork, HTTPStatus: resp.StatusCode,
			Description: "response body could not be read", Err: wire.ScrubbedError(err, sc)}
	}
	switch status := resp.StatusCode; {
	case status == http.StatusUnauthorized || status == http.StatusForbidden:
		return provider.ProbeResult{Code: CodeTokenRejected,
			Description: fmt.Sprintf("HTTP %d: %s", status, sc.Scrub(string(body), wire.MaxDescriptionLen))}, nil
	case wire.IsTransientStatus(status):
		return provider.ProbeResult{}, &provider.Error{Kind: provider.Transient, Code: fmt.Sprintf("http_%d", status),
			HTTPStatus: status, RetryAfter: wire.ParseDelaySeconds(resp.Header.Get("Retry-After")),
			Description: sc.Scrub(string(body), wire.MaxDescriptionLen)}
	case status < 200 || status > 299:
		return provider.ProbeResult{}, &provider.Error{Kind: provider.Transient, Code: fmt.Sprintf("http_%d", status),
			HTTPStatus: status, Description: sc.Scrub(string(body), wire.MaxDescriptionLen)}
	}
	return judge(resp.StatusCode, body, grant.AccessToken, sc)
}

// judge reads a 2xx answer to a probe of token.
func judge(status int, body []byte, token string, sc scrub.Scrubber) (provider.ProbeResult, error) {
	malformed := &provider.Error{Kind: provider.Transient, Code: CodeMalformedResponse, HTTPStatus: status,
		Description: "the enrollment-detail answer is not JSON with an integer sta"} // never quote the body
	var answer struct {
		Sta  json.RawMessage `json:"sta"`
		Msg  json.RawMessage `json:"msg"`
		Data json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(body, &answer); err != nil {
		return provider.ProbeResult{}, malformed
	}
	sta, ok := integer(answer.Sta)
	if !ok {
		return provider.ProbeResult{}, malformed
	}
	msg := sc.Scrub(text(answer.Msg), wire.MaxDescriptionLen)
	if sta != 0 {
		return provider.ProbeResult{Code: CodeTokenRejected, Description: fmt.Sprintf("sta %d: %s", sta, msg)}, nil
	}
	var data struct {
		InfoID json.RawMessage `json:"info_id"`
	}
	// data may be null or not an object; then there is no info_id.
	_ = json.Unmarshal(answer.Data, &data)
	infoID := text(data.InfoID)
	if infoID == "" {
		return provider.ProbeResult{Code: CodeNotEnrolled, Description: "sta 0 but no info_id: the token's account has " +
			"not joined enrollment eid, or the token is not accepted (" + msg + ")"}, nil
	}
	res := provider.ProbeResult{Valid: true}
	if isLabel(infoID, token) {
		res.Labels = map[string]string{LabelInfoID: infoID}
	}
	return res, nil
}

// isLabel keeps a label value that is plainly an id: short, [A-Za-z0-9_-] only, and
// neither holding the token nor a long piece of it. The scrubber is no use here: ids
// look like tokens to it, so it would redact every one; anything that is not plainly an
// id is dropped instead.
func isLabel(v, token string) bool {
	if v == "" || len(v) > maxLabelLen || strings.Contains(v, token) || (len(v) >= 8 && strings.Contains(token, v)) {
		return false
	}
	for i := 0; i < len(v); i++ {
		c := v[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// integer reads a JSON number or numeric string holding an integer.
func integer(raw json.RawMessage) (int64, bool) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return 0, false
	}
	var s string
	if raw[0] == '"' {
		if json.Unmarshal(raw, &s) != nil {
			return 0, false
		}
		s = strings.TrimSpace(s)
	} else {
		s = string(raw)
	}
	n, err := strconv.ParseInt(s, 10, 64)
	return n, err == nil
}

// text reads a JSON string, or a number as its digits; anything else is "".
func text(raw json.RawMessage) string {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 {
		return ""
	}
	var s string
	if raw[0] == '"' {
		if json.Unmarshal(raw, &s) != nil {
			return ""
		}
		return strings.TrimSpace(s)
	}
	var n json.Number
	if json.Unmarshal(raw, &n) != nil {
		return ""
	}
	return n.String()
}
