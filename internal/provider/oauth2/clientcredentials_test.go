package oauth2provider

import (
	"context"
	"testing"
	"time"

	"github.com/tokenwarden/tokenwarden/internal/provider"
	"github.com/tokenwarden/tokenwarden/internal/provider/oauth2/oauth2test"
)

// TestClientCredentialsMintsWithTheSecret: each Refresh is one client_credentials
// request; there is no refresh token to keep, nothing to introspect, and a wrong secret
// is a permanent failure.
func TestClientCredentialsMintsWithTheSecret(t *testing.T) {
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	srv := oauth2test.New(oauth2test.Options{ClientID: testClientID, ClientSecret: testClientSecret, AccessLifetime: 15 * time.Minute,
		Now: func() time.Time { return now }})
	tokenURL := srv.Start()
	t.Cleanup(srv.Close)
	p := New(nil, func() time.Time { return now })
	cfg := provider.Config{TokenURL: tokenURL, ClientID: testClientID, GrantType: GrantClientCredentials, Scopes: []string{"api.read"},
		IntrospectionURL: srv.IntrospectionURL()}
	grant := provider.Grant{ClientSecret: testClientSecret}
	if err := p.ValidateGrantFor(cfg, grant); err != nil {
		t.Fatalf("a seed of the client secret alone: %v", err)
	}
	if err := p.ValidateGrantFor(cfg, provider.Grant{ClientSecret: testClientSecret, RefreshToken: "rt"}); err == nil {
		t.Error("a refresh token in a client credentials seed was accepted")
	}
	if err := p.ValidateGrantFor(provider.Config{}, grant); err == nil {
		t.Error("the refresh_token grant accepted a seed without a refresh token")
	}
	var last string
	for i := range 3 {
		ts, err := p.Refresh(context.Background(), cfg, grant)
		if err != nil {
			t.Fatalf("mint %d: %v", i, err)
		}
		if ts.RefreshToken != "" || ts.AccessToken == last || !srv.ValidAccessToken(ts.AccessToken) || !ts.AccessExpiresAt.Equal(now.Add(15*time.Minute)) {
			t.Fatalf("mint %d: %+v", i, ts)
		}
		last = ts.AccessToken
	}
	if srv.Mints() != 3 || srv.Requests() != 3 {
		t.Errorf("%d mints in %d requests, want 3 in 3", srv.Mints(), srv.Requests())
	}
	if _, supported, err := p.RefreshTokenActive(context.Background(), cfg, grant); supported || err != nil {
		t.Errorf("RefreshTokenActive on a client credentials grant: supported %v, %v", supported, err)
	}
	_, err := p.Refresh(context.Background(), cfg, provider.Grant{ClientSecret: "wrong"})
	if !provider.IsPermanent(err) {
		t.Errorf("a wrong secret: %v, want permanent", err)
	}
	if _, err := p.Refresh(context.Background(), cfg, provider.Grant{}); !provider.IsPermanent(err) {
		t.Errorf("no secret: %v, want permanent", err)
	}
	if err := p.CanAuthorize(cfg); err == nil {
		t.Error("a client credentials grant offers the authorization flow")
	}
}
