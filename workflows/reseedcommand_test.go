package workflows

import (
	"testing"

	"github.com/tokenwarden/tokenwarden/internal/provider"
)

// TestReseedCommandNamesConnectWhereTheProviderHasAFlow: the notification and the
// starter's hints send a human to `starter connect ID` when a browser round trip can
// re-authorize the credential, and to `starter reseed` otherwise.
func TestReseedCommandNamesConnectWhereTheProviderHasAFlow(t *testing.T) {
	for _, tc := range []struct {
		provider string
		cfg      provider.Config
		want     string
	}{
		{"zalo-oa", provider.Config{ClientID: "1234"}, "starter connect c1"},
		{"zalo-user", provider.Config{ClientID: "1234"}, "starter connect c1"},
		{"feishu-user", provider.Config{ClientID: "cli_a"}, "starter connect c1"},
		{"oauth2", provider.Config{TokenURL: "https://idp.example/token", ClientID: "a", AuthorizeURL: "https://idp.example/authorize"}, "starter connect c1"},
		{"oauth2", provider.Config{TokenURL: "https://idp.example/token", ClientID: "a"}, "starter reseed c1 -secrets -"},
		{"oauth2", provider.Config{TokenURL: "https://idp.example/token", ClientID: "a", AuthorizeURL: "https://idp.example/authorize", GrantType: "client_credentials"}, "starter reseed c1 -secrets -"},
		{"feishu-tenant", provider.Config{ClientID: "cli_a"}, "starter reseed c1 -secrets -"},
		{"zogo", provider.Config{ClientID: "a"}, "starter reseed c1 -secrets -"},
	} {
		if got := ReseedCommand("c1", tc.provider, tc.cfg); got != tc.want {
			t.Errorf("%s %+v: %q, want %q", tc.provider, tc.cfg, got, tc.want)
		}
	}
}
