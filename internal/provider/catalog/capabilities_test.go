package catalog

import (
	"slices"
	"testing"

	"github.com/tokenwarden/tokenwarden/internal/provider"
)

// optional names each optional interface an adapter may implement, with its test.
var optional = []struct {
	name string
	is   func(provider.Provider) bool
}{
	{"Refresher", func(p provider.Provider) bool { _, ok := p.(provider.Refresher); return ok }},
	{"Prober", func(p provider.Provider) bool { _, ok := p.(provider.Prober); return ok }},
	{"DetailedProber", func(p provider.Provider) bool { _, ok := p.(provider.DetailedProber); return ok }},
	{"ConfiguredProber", func(p provider.Provider) bool { _, ok := p.(provider.ConfiguredProber); return ok }},
	{"RefreshTokenChecker", func(p provider.Provider) bool { _, ok := p.(provider.RefreshTokenChecker); return ok }},
	{"Revoker", func(p provider.Provider) bool { _, ok := p.(provider.Revoker); return ok }},
	{"Authorizer", func(p provider.Provider) bool { _, ok := p.(provider.Authorizer); return ok }},
	{"Child", func(p provider.Provider) bool { _, ok := p.(provider.Child); return ok }},
	{"ConfigGrantValidator", func(p provider.Provider) bool { _, ok := p.(provider.ConfigGrantValidator); return ok }},
}

// TestCapabilities pins what each provider can do, as the workflow and the starter ask
// it (CanRefresh, CanProbe, CanConnect), and which optional interfaces each adapter
// implements, so that a change to either is deliberate. Every name of Names() has a row,
// and every row's configuration is one its provider accepts.
func TestCapabilities(t *testing.T) {
	const base = "https://api.example.com"
	oauth2 := provider.Config{TokenURL: base + "/token", ClientID: "app"}
	with := func(c provider.Config, set func(*provider.Config)) provider.Config { set(&c); return c }
	for _, c := range []struct {
		name, label             string
		cfg                     provider.Config
		refresh, probe, connect bool
		implements              []string
	}{
		{OAuth2, "token_url only", oauth2, true, false, false,
			[]string{"Refresher", "Prober", "ConfiguredProber", "RefreshTokenChecker", "Revoker", "Authorizer", "ConfigGrantValidator"}},
		{OAuth2, "introspection_url", with(oauth2, func(c *provider.Config) { c.IntrospectionURL = base + "/introspect" }), true, true, false,
			[]string{"Refresher", "Prober", "ConfiguredProber", "RefreshTokenChecker", "Revoker", "Authorizer", "ConfigGrantValidator"}},
		{OAuth2, "userinfo_url", with(oauth2, func(c *provider.Config) { c.UserinfoURL = base + "/userinfo" }), true, true, false,
			[]string{"Refresher", "Prober", "ConfiguredProber", "RefreshTokenChecker", "Revoker", "Authorizer", "ConfigGrantValidator"}},
		{OAuth2, "authorize_url", with(oauth2, func(c *provider.Config) { c.AuthorizeURL = base + "/authorize" }), true, false, true,
			[]string{"Refresher", "Prober", "ConfiguredProber", "RefreshTokenChecker", "Revoker", "Authorizer", "ConfigGrantValidator"}},
		{OAuth2, "client_credentials with authorize_url", with(oauth2, func(c *provider.Config) {
			c.GrantType, c.AuthorizeURL = "client_credentials", base+"/authorize"
		}), true, false, false,
			[]string{"Refresher", "Prober", "ConfiguredProber", "RefreshTokenChecker", "Revoker", "Authorizer", "ConfigGrantValidator"}},
		{FeishuUser, "", provider.Config{ClientID: "cli_app"}, true, true, true,
			[]string{"Refresher", "Prober", "Authorizer"}},
		{FeishuTenant, "", provider.Config{ClientID: "cli_app"}, true, false, false,
			[]string{"Refresher"}},
		{Baoming, "", provider.Config{EnrollID: "698add7c7068f814935d6804"}, false, true, false,
			[]string{"Prober", "DetailedProber"}},
		{Zogo, "", provider.Config{ClientID: "app"}, true, false, false,
			[]string{"Refresher"}},
		{ChatHubCompany, "", provider.Config{}, true, false, false,
			[]string{"Refresher"}},
		{ChatHubOperator, "", provider.Config{OperatorID: "123", Parent: "company"}, true, true, false,
			[]string{"Refresher", "Prober", "Child"}},
		{ZaloOA, "", provider.Config{ClientID: "1234"}, true, false, true,
			[]string{"Refresher", "Authorizer"}},
		{ZaloUser, "", provider.Config{ClientID: "1234"}, true, false, true,
			[]string{"Refresher", "Authorizer"}},
	} {
		label := c.name
		if c.label != "" {
			label += " (" + c.label + ")"
		}
		if err := ValidateConfig(c.name, c.cfg); err != nil {
			t.Errorf("%s: the row's configuration is refused: %v", label, err)
		}
		if got := CanRefresh(c.name); got != c.refresh {
			t.Errorf("CanRefresh(%s) = %v, want %v", label, got, c.refresh)
		}
		if got := CanProbe(c.name, c.cfg); got != c.probe {
			t.Errorf("CanProbe(%s) = %v, want %v", label, got, c.probe)
		}
		if got := CanConnect(c.name, c.cfg); got != c.connect {
			t.Errorf("CanConnect(%s) = %v, want %v", label, got, c.connect)
		}
		p, err := Registry(nil, nil).Lookup(c.name)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, o := range optional {
			if o.is(p) {
				got = append(got, o.name)
			}
		}
		if !slices.Equal(got, c.implements) {
			t.Errorf("%s implements %v, want %v", label, got, c.implements)
		}
	}

	covered := map[string]bool{}
	for _, name := range Names() {
		covered[name] = false
	}
	for _, name := range []string{OAuth2, FeishuUser, FeishuTenant, Baoming, Zogo, ChatHubCompany, ChatHubOperator, ZaloOA, ZaloUser} {
		if _, known := covered[name]; !known {
			t.Errorf("%s has a row but is not in Names()", name)
		}
		covered[name] = true
	}
	for name, ok := range covered {
		if !ok {
			t.Errorf("%s: no row in TestCapabilities; add one", name)
		}
	}
	if len(Names()) != 9 {
		t.Errorf("Names() = %v, want the nine providers", Names())
	}
	// Only a provider known to lack a refresh endpoint is probe-only; an unknown name
	// (which ValidateConfig refuses) can do nothing else.
	for _, name := range []string{"", "unknown"} {
		if !CanRefresh(name) || CanProbe(name, provider.Config{IntrospectionURL: base}) || CanConnect(name, provider.Config{AuthorizeURL: base}) {
			t.Errorf("%q: CanRefresh %v, CanProbe %v, CanConnect %v; want true, false, false", name,
				CanRefresh(name), CanProbe(name, provider.Config{IntrospectionURL: base}), CanConnect(name, provider.Config{AuthorizeURL: base}))
		}
	}
}
