package oauth2provider

import (
	"context"
	"net/http"
	"testing"

	"github.com/tokenwarden/tokenwarden/internal/provider"
	"github.com/tokenwarden/tokenwarden/internal/provider/oauth2/oauth2test"
	"github.com/tokenwarden/tokenwarden/internal/provider/providertest/consent"
)

// TestConnectAgainstStrictFake: the authorization request the adapter builds passes the
// fake's consent page, the code exchanges once with its verifier, and the token set
// refreshes; a second exchange of the same code and a wrong verifier are refused.
func TestConnectAgainstStrictFake(t *testing.T) {
	srv := oauth2test.New(oauth2test.Options{ClientID: testClientID, ClientSecret: testClientSecret})
	tokenURL := srv.Start()
	t.Cleanup(srv.Close)
	p := New(nil, nil)
	cfg := provider.Config{TokenURL: tokenURL, ClientID: testClientID, AuthorizeURL: srv.AuthorizeURL(), Scopes: []string{"offline_access"}}
	const redirect, verifier = "http://127.0.0.1:5123/callback", "verifier-0123456789-0123456789-0123456789"
	grant := provider.Grant{ClientSecret: testClientSecret}
	authURL, err := p.AuthCodeURL(cfg, redirect, "st", consent.ChallengeS256(verifier))
	if err != nil {
		t.Fatal(err)
	}
	back, err := consent.Submit(http.DefaultClient, authURL, "approve")
	if err != nil {
		t.Fatal(err)
	}
	code := back.Query().Get("code")
	if back.Query().Get("state") != "st" || code == "" {
		t.Fatalf("redirect %s", back.Redacted())
	}
	ts, err := p.Exchange(context.Background(), cfg, grant, redirect, code, verifier)
	if err != nil || ts.RefreshToken == "" || !srv.ValidAccessToken(ts.AccessToken) {
		t.Fatalf("Exchange: %v", err)
	}
	if _, err := p.Exchange(context.Background(), cfg, grant, redirect, code, verifier); !provider.IsPermanent(err) {
		t.Errorf("a second exchange of the code: %v, want permanent", err)
	}
	if _, err := p.Refresh(context.Background(), cfg, provider.Grant{RefreshToken: ts.RefreshToken, ClientSecret: testClientSecret}); err != nil {
		t.Errorf("refresh of the connected grant: %v", err)
	}

	back, _ = consent.Submit(http.DefaultClient, authURL, "approve")
	if _, err := p.Exchange(context.Background(), cfg, grant, redirect, back.Query().Get("code"), "another-verifier-0123456789-0123456789"); !provider.IsPermanent(err) {
		t.Errorf("a wrong verifier: %v, want permanent", err)
	}
	back, _ = consent.Submit(http.DefaultClient, authURL, "approve")
	if _, err := p.Exchange(context.Background(), cfg, grant, "http://127.0.0.1:5124/callback", back.Query().Get("code"), verifier); !provider.IsPermanent(err) {
		t.Errorf("another redirect_uri: %v, want permanent", err)
	}
	back, _ = consent.Submit(http.DefaultClient, authURL, "deny")
	if back.Query().Get("error") != "access_denied" || back.Query().Get("code") != "" {
		t.Errorf("deny redirected to %s", back.Redacted())
	}
}
