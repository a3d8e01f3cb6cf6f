package zogo

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/tokenwarden/tokenwarden/internal/provider"
	"github.com/tokenwarden/tokenwarden/internal/provider/internal/wire"
	"github.com/tokenwarden/tokenwarden/internal/provider/scrub"
)

// Base URLs documented by Zogo.
const (
	DefaultBaseURL    = "https://sandbox.zogo.vn"
	ProductionBaseURL = "https://zogo.vn"
)

// Endpoint paths, relative to the base URL.
const (
	LoginPath   = "/api/v2/login"
	RefreshPath = "/api/v2/refresh_token"
)

// Error codes of this adapter (see the package documentation).
const (
	CodeRefreshRejected   = "refresh_token_rejected"
	CodeLoginRejected     = "login_rejected"
	CodeMissingGrant      = "missing_grant"
	CodeNetwork           = wire.CodeNetwork
	CodeMalformedResponse = wire.CodeMalformedResponse
	CodeInvalidConfig     = wire.CodeInvalidConfig
)

// Provider refreshes Zogo API credentials. It is safe for concurrent use.
type Provider struct {
	client *http.Client
	now    func() time.Time
}

var (
	_ provider.Provider  = (*Provider)(nil)
	_ provider.Refresher = (*Provider)(nil)
)

// New returns an adapter that talks through client (nil: a client with a 30s timeout)
// and reads time from now (nil: time.Now).
func New(client *http.Client, now func() time.Time) *Provider {
	if now == nil {
		now = time.Now
	}
	return &Provider{client: wire.Client(client), now: now}
}

// ValidateConfig requires client_id; base_url is optional (DefaultBaseURL).
func (p *Provider) ValidateConfig(cfg provider.Config) error {
	if cfg.BaseURL != "" {
		if err := wire.ValidateBaseURL("base_url", cfg.BaseURL); err != nil {
			return err
		}
	}
	if strings.TrimSpace(cfg.ClientID) == "" {
		return fmt.Errorf("client_id: required (the Client ID of the Zogo API account)")
	}
	if strings.TrimSpace(cfg.ClientID) != cfg.ClientID {
		return fmt.Errorf("client_id: has leading or trailing whitespace")
	}
	return nil
}

// ValidateGrant requires client_secret and either a refresh token or a username and
// password (both may be given: the login is then the fallback).
func (p *Provider) ValidateGrant(g provider.Grant) error {
	if g.ClientSecret == "" {
		return fmt.Errorf("client_secret: required (the Client Secret of the Zogo API account)")
	}
	switch {
	case g.Username != "" && g.Password == "":
		return fmt.Errorf("password: required with username")
	case g.Password != "" && g.Username == "":
		return fmt.Errorf("username: required with password")
	case g.RefreshToken == "" && g.Username == "":
		return fmt.Errorf("refresh_token: required, or username and password")
	}
	return nil
}

func (p *Provider) baseURL(cfg provider.Config) string {
	if cfg.BaseURL != "" {
		return cfg.BaseURL
	}
	return DefaultBaseURL
}

// Refresh presents grant.RefreshToken once; if Zogo rejects it and the grant holds a
// login, it logs in once instead. Errors are *provider.Error values classified as the
// package documentation says.
func (p *Provider) Refresh(ctx context.Context, cfg provider.Config, grant provider.Grant) (provider.TokenSet, error) {
	if err := p.ValidateConfig(cfg); err != nil {
		return provider.TokenSet{}, &provider.Error{Kind: provider.Permanent, Code: CodeInvalidConfig, Err: fmt.Errorf("zogo: config.%w", err)}
	}
	sc := scrub.New(grant.RefreshToken, grant.Password, grant.ClientSecret, grant.Username)
	canLogin := grant.Username != "" && grant.Password != ""
	if grant.RefreshToken == "" {
		if !canLogin {
			return provider.TokenSet{}, &provider.Error{Kind: provider.Permanent, Code: CodeMissingGrant,
				Description: "neither a refresh token nor a username and password is stored"}
		}
		ts, perr := p.login(ctx, cfg, grant, sc)
		if perr != nil {
			return provider.TokenSet{}, perr
		}
		return ts, nil
	}

	ts, perr := p.refresh(ctx, cfg, grant, sc)
	if perr == nil {
		return ts, nil
	}
	if perr.Code != CodeRefreshRejected || !canLogin {
		return provider.TokenSet{}, perr
	}
	ts, le := p.login(ctx, cfg, grant, sc)
	if le != nil {
		le.Description = strings.TrimSpace("refresh token rejected, then login failed: " + le.Description)
		return provider.TokenSet{}, le
	}
	return ts, nil
}

func (p *Provider) refresh(ctx context.Context, cfg provider.Config, grant provider.Grant, sc scrub.Scrubber) (provider.TokenSet, *provider.Error) {
	body := map[string]any{
		"refresh_token": grant.RefreshToken,
		"client_id":     clientIDValue(cfg.ClientID),
		"client_secret": grant.ClientSecret,
	}
	res, perr := wire.PostJSON(ctx, p.client, wire.JoinURL(p.baseURL(cfg), RefreshPath), body, nil, sc)
	if perr != nil {
		return provider.TokenSet{}, perr
	}
	return p.answer(res, CodeRefreshRejected, grant.RefreshToken, sc)
}

func (p *Provider) login(ctx context.Context, cfg provider.Config, grant provider.Grant, sc scrub.Scrubber) (provider.TokenSet, *provider.Error) {
	body := map[string]any{
		"username":      grant.Username,
		"password":      grant.Password,
		"client_id":     clientIDValue(cfg.ClientID),
		"client_secret": grant.ClientSecret,
	}
	res, perr := wire.PostJSON(ctx, p.client, wire.JoinURL(p.baseURL(cfg), LoginPath), body, nil, sc)
	if perr != nil {
		return provider.TokenSet{}, perr
	}
	return p.answer(res, CodeLoginRejected, grant.RefreshToken, sc)
}

// clientIDValue sends a decimal client ID as a JSON number, as Zogo documents it.
func clientIDValue(id string) any {
	if n, err := strconv.ParseInt(id, 10, 64); err == nil && n >= 0 && strconv.FormatInt(n, 10) == id {
		return n
	}
	return id
}

// answer classifies one response. rejected is the code for a 400/401/403/422; presented
// is the refresh token the call holds (an echo of it is "not rotated").
func (p *Provider) answer(res *wire.Response, rejected, presented string, sc scrub.Scrubber) (provider.TokenSet, *provider.Error) {
	var obj map[string]any
	dec := json.NewDecoder(bytes.NewReader(res.Body))
	dec.UseNumber()
	isObject := dec.Decode(&obj) == nil && obj != nil

	status := res.Status
	if status >= 200 && status < 300 && isObject {
		code := int(wire.Seconds(obj["code"])) // a JSON number or numeric string; 0 when absent
		if s, _ := obj["status"].(string); strings.EqualFold(s, "error") || code >= 400 {
			status = http.StatusBadRequest
			if code >= 300 && code <= 599 {
				status = code
			}
		}
	}
	if status >= 200 && status < 300 {
		ts, ok := p.tokenSet(obj, presented)
		if !ok {
			return provider.TokenSet{}, &provider.Error{Kind: provider.Transient, Code: CodeMalformedResponse, HTTPStatus: res.Status,
				Description: "Zogo answered without a usable token response"}
		}
		return ts, nil
	}

	e := &provider.Error{HTTPStatus: res.Status, Code: fmt.Sprintf("http_%d", status),
		Description: wire.Message(res.Body, sc, "data.error", "error_description", "message", "data.message", "error")}
	switch {
	case wire.IsTransientStatus(status):
		e.Kind = provider.Transient
		e.RetryAfter = wire.ParseRetryAfter(res.Header.Get("Retry-After"), p.now())
	case status >= 300 && status < 400:
		e.Kind = provider.Permanent
		e.Description = "base_url answered with a redirect, which is not followed"
	case status == http.StatusBadRequest || status == http.StatusUnauthorized || status == http.StatusForbidden || status == http.StatusUnprocessableEntity:
		e.Kind = provider.Permanent
		e.Code = rejected
	default:
		e.Kind = provider.Permanent
	}
	return provider.TokenSet{}, e
}

func (p *Provider) tokenSet(obj map[string]any, presented string) (provider.TokenSet, bool) {
	if obj == nil {
		return provider.TokenSet{}, false
	}
	if _, ok := obj["access_token"]; !ok {
		if data, ok := obj["data"].(map[string]any); ok {
			obj = data
		}
	}
	at, _ := obj["access_token"].(string)
	if at == "" {
		return provider.TokenSet{}, false
	}
	ts := provider.TokenSet{AccessToken: at, TokenType: "Bearer"}
	if tt, _ := obj["token_type"].(string); tt != "" {
		ts.TokenType = tt
	}
	if rt, _ := obj["refresh_token"].(string); rt != presented {
		ts.RefreshToken = rt
	}
	now := p.now()
	if secs := wire.Seconds(obj["expires_in"]); secs > 0 {
		ts.AccessExpiresAt = now.Add(time.Duration(secs) * time.Second)
	}
	if secs := wire.Seconds(obj["refresh_token_expires_in"]); secs > 0 && ts.RefreshToken != "" {
		ts.RefreshExpiresAt = now.Add(time.Duration(secs) * time.Second)
	}
	return ts, true
}
