package zalo_test

import (
	"context"
	"net/http"
	"testing"

	"github.com/tokenwarden/tokenwarden/internal/provider"
	"github.com/tokenwarden/tokenwarden/internal/provider/providertest/consent"
	"github.com/tokenwarden/tokenwarden/internal/provider/zalo"
	"github.com/tokenwarden/tokenwarden/internal/provider/zalo/zalotest"
)

// TestConnectAgainstFake: both permission pages accept what AuthCodeURL builds, and the
// code exchanges once with its verifier, then refreshes.
func TestConnectAgainstFake(t *testing.T) {
	const redirect, verifier = "http://127.0.0.1:5123/callback", "verifier-0123456789-0123456789-0123456789"
	fake := startFake(t, zalotest.Options{})
	cfg := provider.Config{ClientID: appID, BaseURL: fake.URL()}
	grant := provider.Grant{ClientSecret: appSecret}
	for _, p := range []*zalo.Provider{zalo.NewOA(nil, nil), zalo.NewUser(nil, nil)} {
		authURL, err := p.AuthCodeURL(cfg, redirect, "st", consent.ChallengeS256(verifier))
		if err != nil {
			t.Fatal(err)
		}
		back, err := consent.Submit(http.DefaultClient, authURL, "approve")
		if err != nil {
			t.Fatalf("%s: %v", p.Name(), err)
		}
		code := back.Query().Get("code")
		ts, err := p.Exchange(context.Background(), cfg, grant, redirect, code, verifier)
		if err != nil || !fake.ValidAccessToken(ts.AccessToken) {
			t.Fatalf("%s: Exchange: %v", p.Name(), err)
		}
		if _, err := p.Exchange(context.Background(), cfg, grant, redirect, code, verifier); !provider.IsPermanent(err) {
			t.Errorf("%s: a second exchange: %v, want permanent", p.Name(), err)
		}
		if _, err := p.Refresh(context.Background(), cfg, provider.Grant{RefreshToken: ts.RefreshToken, ClientSecret: appSecret}); err != nil {
			t.Errorf("%s: refresh: %v", p.Name(), err)
		}
		back, _ = consent.Submit(http.DefaultClient, authURL, "approve")
		if _, err := p.Exchange(context.Background(), cfg, grant, redirect, back.Query().Get("code"), "wrong-verifier-0123456789-0123456789-01"); !provider.IsPermanent(err) {
			t.Errorf("%s: wrong verifier: %v, want permanent", p.Name(), err)
		}
	}
}
