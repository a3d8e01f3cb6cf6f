// Package providers is the catalogue of provider adapters tokenwarden knows by name.
//
// The names are what a credential's "provider" field says. The worker builds the
// registry with a real HTTP client; the workflow and the starter only validate
// configuration, which needs no network and is safe inside workflow code.
package providers

import (
	"fmt"
	"net/http"
	"sort"
	"strings"
	"time"

	"github.com/tokenwarden/tokenwarden/internal/provider"
	"github.com/tokenwarden/tokenwarden/internal/provider/baoming"
	"github.com/tokenwarden/tokenwarden/internal/provider/chathub"
	"github.com/tokenwarden/tokenwarden/internal/provider/feishu"
	oauth2provider "github.com/tokenwarden/tokenwarden/internal/provider/oauth2"
	"github.com/tokenwarden/tokenwarden/internal/provider/zalo"
	"github.com/tokenwarden/tokenwarden/internal/provider/zogo"
)

// OAuth2 is the generic RFC 6749 refresh-token grant.
const OAuth2 = "oauth2"

// FeishuUser is the Feishu/Lark user_access_token (OAuth v2, single-use refresh tokens).
const FeishuUser = "feishu-user"

// FeishuTenant is the Feishu/Lark tenant_access_token of an internal app (app_id/app_secret).
const FeishuTenant = "feishu-tenant"

// Baoming is 报名工具: no refresh endpoint, liveness probes only.
const Baoming = "baoming"

// Zogo is the Zogo API (login, rotating refresh token, login fallback).
const Zogo = "zogo"

// ChatHubCompany is the SMSBAT ChatHub company token (login with login/password).
const ChatHubCompany = chathub.NameCompany

// ChatHubOperator is an SMSBAT ChatHub operator token, minted with its parent
// chathub-company credential's token.
const ChatHubOperator = "chathub-operator"

// ZaloOA and ZaloUser are Zalo OAuth v4 Official Account and user tokens (single-use
// refresh tokens, app secret in the secret_key header).
const (
	ZaloOA   = zalo.NameOA
	ZaloUser = zalo.NameUser
)

// Names lists the known provider names, sorted.
func Names() []string {
	names := []string{Baoming, Zogo, ChatHubCompany, ChatHubOperator, OAuth2}
	names = append(names, FeishuUser, FeishuTenant)
	names = append(names, ZaloOA, ZaloUser)
	sort.Strings(names)
	return names
}

// Registry builds every adapter around one HTTP client and clock (nil: time.Now).
func Registry(client *http.Client, now func() time.Time) provider.Registry {
	return provider.Registry{
		OAuth2:          oauth2provider.New(client, now),
		FeishuUser:      feishu.NewUser(client, now),
		FeishuTenant:    feishu.NewTenant(client, now),
		Baoming:         baoming.New(client),
		Zogo:            zogo.New(client, now),
		ChatHubCompany:  chathub.NewCompany(client, now),
		ChatHubOperator: chathub.NewOperator(client, now),
		ZaloOA:          zalo.NewOA(client, now),
		ZaloUser:        zalo.NewUser(client, now),
	}
}

// CanRefresh reports whether the named provider has a refresh (or re-mint) endpoint.
// Providers without one (baoming) live on liveness probes alone.
func CanRefresh(name string) bool {
	return name != Baoming
}

// CanProbe reports whether the named provider, so configured, can check an access
// token's liveness (policy.probe_interval needs it). Deterministic, no I/O.
func CanProbe(name string, cfg provider.Config) bool {
	switch name {
	case Baoming, ChatHubOperator, FeishuUser:
		return true
	case OAuth2:
		return oauth2provider.CanProbe(cfg)
	}
	return false
}

// CanConnect reports whether a credential of the named provider, so configured, can be
// connected (or reconnected) with `starter connect`: its adapter is a
// provider.Authorizer that accepts cfg. Deterministic, no I/O, so the workflow may name
// the command in its notifications.
func CanConnect(name string, cfg provider.Config) bool {
	p, err := validator(name)
	if err != nil {
		return false
	}
	a, ok := p.(provider.Authorizer)
	return ok && a.CanAuthorize(cfg) == nil
}

// ValidateGrant checks seed material for the named provider configured with cfg (the
// rules may depend on it: see provider.ConfigGrantValidator). Errors name the field
// ("seed.refresh_token: required") and never contain a secret.
func ValidateGrant(name string, cfg provider.Config, g provider.Grant) error {
	p, err := validator(name)
	if err != nil {
		return err
	}
	if err := provider.ValidateGrantFor(p, cfg, g); err != nil {
		return fmt.Errorf("seed.%w", err)
	}
	return nil
}

// validator returns an adapter fit for validation only: no client, no clock.
func validator(name string) (provider.Provider, error) {
	switch name {
	case OAuth2:
		return &oauth2provider.Provider{}, nil
	case FeishuUser:
		return &feishu.User{}, nil
	case FeishuTenant:
		return &feishu.Tenant{}, nil
	case Baoming:
		return &baoming.Provider{}, nil
	case Zogo:
		return &zogo.Provider{}, nil
	case ChatHubCompany:
		return &chathub.Company{}, nil
	case ChatHubOperator:
		return &chathub.Operator{}, nil
	case ZaloOA:
		return zalo.NewOA(nil, nil), nil // construction does no I/O
	case ZaloUser:
		return zalo.NewUser(nil, nil), nil
	}
	return nil, fmt.Errorf("provider: unknown provider %q (known: %s)", name, strings.Join(Names(), ", "))
}

// ValidateConfig checks cfg for the named provider. It is deterministic and does no I/O,
// so workflow code may call it. Errors name the field ("config.token_url: ...").
func ValidateConfig(name string, cfg provider.Config) error {
	p, err := validator(name)
	if err != nil {
		return err
	}
	if err := p.ValidateConfig(cfg); err != nil {
		return fmt.Errorf("config.%w", err)
	}
	return nil
}
