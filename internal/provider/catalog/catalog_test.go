package catalog

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/tokenwarden/tokenwarden/internal/provider"
)

// TestEveryURLRefusesPlainHTTPToARemoteHost runs the https rule through every adapter's
// ValidateConfig, for every field that names a host secrets are sent to, so that an
// adapter with its own URL handling cannot slip past it.
func TestEveryURLRefusesPlainHTTPToARemoteHost(t *testing.T) {
	const remote, loopback = "http://api.example.com", "http://127.0.0.1:8080"
	// ok is a configuration each provider accepts, every URL on loopback.
	ok := map[string]provider.Config{
		OAuth2: {TokenURL: loopback + "/token", ClientID: "app", IntrospectionURL: loopback + "/introspect",
			UserinfoURL: loopback + "/userinfo", RevocationURL: loopback + "/revoke",
			AuthorizeURL: loopback + "/authorize", RedirectURI: loopback + "/callback"},
		FeishuUser:      {ClientID: "cli_app", BaseURL: loopback, RedirectURI: loopback + "/callback"},
		FeishuTenant:    {ClientID: "cli_app", BaseURL: loopback},
		Baoming:         {BaseURL: loopback, EnrollID: "698add7c7068f814935d6804"},
		Zogo:            {ClientID: "app", BaseURL: loopback},
		ChatHubCompany:  {BaseURL: loopback},
		ChatHubOperator: {BaseURL: loopback, OperatorID: "123", Parent: "company"},
		ZaloOA:          {ClientID: "1234", BaseURL: loopback, RedirectURI: loopback + "/callback"},
		ZaloUser:        {ClientID: "1234", BaseURL: loopback, RedirectURI: loopback + "/callback"},
	}
	for _, name := range Names() {
		cfg, found := ok[name]
		if !found {
			t.Errorf("%s: no test configuration; add one", name)
			continue
		}
		if err := ValidateConfig(name, cfg); err != nil {
			t.Errorf("%s on loopback: %v", name, err)
		}
		for field, set := range map[string]func(*provider.Config){
			"base_url":          func(c *provider.Config) { c.BaseURL = remote },
			"token_url":         func(c *provider.Config) { c.TokenURL = remote + "/token" },
			"introspection_url": func(c *provider.Config) { c.IntrospectionURL = remote + "/introspect" },
			"userinfo_url":      func(c *provider.Config) { c.UserinfoURL = remote + "/userinfo" },
			"revocation_url":    func(c *provider.Config) { c.RevocationURL = remote + "/revoke" },
			"authorize_url":     func(c *provider.Config) { c.AuthorizeURL = remote + "/authorize" },
			"redirect_uri":      func(c *provider.Config) { c.RedirectURI = remote + "/callback" },
		} {
			if !used(cfg, field) {
				continue // not sent anything by this adapter
			}
			c := cfg
			set(&c)
			err := ValidateConfig(name, c)
			if err == nil || !strings.Contains(err.Error(), "config."+field+": must use https") {
				t.Errorf("%s with a plain-http %s to a remote host: %v, want the https rule naming the field", name, field, err)
			}
		}
	}
}

func used(cfg provider.Config, field string) bool {
	switch field {
	case "base_url":
		return cfg.BaseURL != ""
	case "token_url":
		return cfg.TokenURL != ""
	case "introspection_url":
		return cfg.IntrospectionURL != ""
	case "userinfo_url":
		return cfg.UserinfoURL != ""
	case "revocation_url":
		return cfg.RevocationURL != ""
	case "authorize_url":
		return cfg.AuthorizeURL != ""
	case "redirect_uri":
		return cfg.RedirectURI != ""
	}
	return false
}

type refuseAll struct{ t *testing.T }

func (r refuseAll) RoundTrip(req *http.Request) (*http.Response, error) {
	r.t.Errorf("a request went out to %s", req.URL.Host)
	return nil, errors.New("no network in this test")
}

// TestProbesRefusePlainHTTPToARemoteHost: a probe sends the access token (and a
// ChatHub operator probe the parent's too), so each prober applies the https rule itself
// rather than trusting that the workflow checked the configuration first.
func TestProbesRefusePlainHTTPToARemoteHost(t *testing.T) {
	const remote, loopback = "http://api.example.com", "http://127.0.0.1:8080"
	reg := Registry(&http.Client{Transport: refuseAll{t}}, nil)
	for name, cfg := range map[string]provider.Config{
		OAuth2:          {TokenURL: loopback + "/token", ClientID: "app", UserinfoURL: remote + "/userinfo"},
		FeishuUser:      {ClientID: "cli_app", BaseURL: remote},
		Baoming:         {BaseURL: remote, EnrollID: "698add7c7068f814935d6804"},
		ChatHubOperator: {BaseURL: remote, OperatorID: "123", Parent: "company"},
	} {
		p, err := reg.Lookup(name)
		if err != nil {
			t.Fatal(err)
		}
		prober, ok := p.(provider.Prober)
		if !ok || !CanProbe(name, cfg) {
			t.Errorf("%s cannot probe", name)
			continue
		}
		_, err = prober.Probe(context.Background(), cfg, provider.Grant{AccessToken: "tok", ParentAccessToken: "parent-tok", ClientSecret: "s"})
		if !provider.IsPermanent(err) || !strings.Contains(err.Error(), "must use https") {
			t.Errorf("%s: %v, want a permanent configuration error naming the https rule", name, err)
		}
	}
}

// TestCanConnect: the providers with an authorization flow, so configured.
func TestCanConnect(t *testing.T) {
	for name, want := range map[string]bool{OAuth2: false, ZaloOA: true, ZaloUser: true, FeishuUser: true, FeishuTenant: false,
		Zogo: false, Baoming: false, ChatHubCompany: false, ChatHubOperator: false} {
		if got := CanConnect(name, provider.Config{}); got != want {
			t.Errorf("CanConnect(%s) = %v, want %v", name, got, want)
		}
	}
	if !CanConnect(OAuth2, provider.Config{AuthorizeURL: "https://idp.example/authorize"}) {
		t.Error("oauth2 with authorize_url cannot connect")
	}
	if CanConnect(OAuth2, provider.Config{AuthorizeURL: "https://idp.example/authorize", GrantType: "client_credentials"}) {
		t.Error("a client credentials grant can connect")
	}
}
