// Package catalog is the one table of the provider adapters tokenwarden knows by name,
// and what is derived from it: the names, the registry the worker runs with, and the
// questions the workflow and the starter ask of a provider by name (is this
// configuration or seed acceptable; can it refresh, probe, connect).
//
// The names are what a credential's "provider" field says. Each entry holds a name and
// the adapter's constructor, nothing else: what a provider can do is what its adapter
// implements of package provider's optional interfaces, found by type assertion, so it
// is declared once, by the adapter. The worker builds the registry with a real HTTP
// client; every other question is put to an adapter that the same constructor builds
// with a nil client and clock. Constructors only fill in fields and these questions send
// nothing, so the answers need no network and are safe inside workflow code.
package catalog

import (
	"fmt"
	"net/http"
	"slices"
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

// entry is one provider of the table.
type entry struct {
	name string
	// build constructs the adapter around client and now (nil: the adapter's defaults).
	// It must do no I/O and read no clock: the workflow builds a validation-only adapter
	// with build(nil, nil) (see adapter).
	build func(client *http.Client, now func() time.Time) provider.Provider
}

// entries is the catalogue, one entry per provider name.
var entries = []entry{
	{OAuth2, func(c *http.Client, now func() time.Time) provider.Provider { return oauth2provider.New(c, now) }},
	{FeishuUser, func(c *http.Client, now func() time.Time) provider.Provider { return feishu.NewUser(c, now) }},
	{FeishuTenant, func(c *http.Client, now func() time.Time) provider.Provider { return feishu.NewTenant(c, now) }},
	{Baoming, func(c *http.Client, _ func() time.Time) provider.Provider { return baoming.New(c) }},
	{Zogo, func(c *http.Client, now func() time.Time) provider.Provider { return zogo.New(c, now) }},
	{ChatHubCompany, func(c *http.Client, now func() time.Time) provider.Provider { return chathub.NewCompany(c, now) }},
	{ChatHubOperator, func(c *http.Client, now func() time.Time) provider.Provider { return chathub.NewOperator(c, now) }},
	{ZaloOA, func(c *http.Client, now func() time.Time) provider.Provider { return zalo.NewOA(c, now) }},
	{ZaloUser, func(c *http.Client, now func() time.Time) provider.Provider { return zalo.NewUser(c, now) }},
}

// Names lists the known provider names, sorted.
func Names() []string {
	names := make([]string, 0, len(entries))
	for _, e := range entries {
		names = append(names, e.name)
	}
	slices.Sort(names)
	return names
}

// Registry builds every adapter around one HTTP client and clock (nil: time.Now).
func Registry(client *http.Client, now func() time.Time) provider.Registry {
	reg := make(provider.Registry, len(entries))
	for _, e := range entries {
		reg[e.name] = e.build(client, now)
	}
	return reg
}

// adapter returns the named adapter built with a nil client and clock, fit only for
// the questions of this package, which send nothing. Every constructor of the table
// only fills in fields, so this is deterministic and does no I/O, and workflow code may
// call it.
func adapter(name string) (provider.Provider, error) {
	for _, e := range entries {
		if e.name == name {
			return e.build(nil, nil), nil
		}
	}
	return nil, fmt.Errorf("provider: unknown provider %q (known: %s)", name, strings.Join(Names(), ", "))
}

// CanRefresh reports whether the named provider has a refresh (or re-mint) endpoint: its
// adapter is a provider.Refresher. Providers without one (baoming) live on liveness
// probes alone. Only a known provider can lack one: an unknown name, which
// ValidateConfig refuses, answers true. Deterministic, no I/O.
func CanRefresh(name string) bool {
	p, err := adapter(name)
	if err != nil {
		return true
	}
	_, ok := p.(provider.Refresher)
	return ok
}

// CanProbe reports whether the named provider, so configured, can check an access
// token's liveness (policy.probe_interval needs it): its adapter is a provider.Prober,
// and, when probing depends on the configuration (provider.ConfiguredProber), cfg gives
// it a way. Deterministic, no I/O.
func CanProbe(name string, cfg provider.Config) bool {
	p, err := adapter(name)
	if err != nil {
		return false
	}
	if c, ok := p.(provider.ConfiguredProber); ok {
		return c.CanProbe(cfg)
	}
	_, ok := p.(provider.Prober)
	return ok
}

// CanConnect reports whether a credential of the named provider, so configured, can be
// connected (or reconnected) with `starter connect`: its adapter is a
// provider.Authorizer that accepts cfg. Deterministic, no I/O, so the workflow may name
// the command in its notifications.
func CanConnect(name string, cfg provider.Config) bool {
	p, err := adapter(name)
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
	p, err := adapter(name)
	if err != nil {
		return err
	}
	if err := provider.ValidateGrantFor(p, cfg, g); err != nil {
		return fmt.Errorf("seed.%w", err)
	}
	return nil
}

// ValidateConfig checks cfg for the named provider. It is deterministic and does no I/O,
// so workflow code may call it. Errors name the field ("config.token_url: ...").
func ValidateConfig(name string, cfg provider.Config) error {
	p, err := adapter(name)
	if err != nil {
		return err
	}
	if err := p.ValidateConfig(cfg); err != nil {
		return fmt.Errorf("config.%w", err)
	}
	return nil
}
