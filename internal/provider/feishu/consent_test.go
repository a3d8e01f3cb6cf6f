package feishu_test

import (
	"context"
	"net/http"
	"testing"

	"github.com/tokenwarden/tokenwarden/internal/provider"
	"github.com/tokenwarden/tokenwarden/internal/provider/feishu"
	"github.com/tokenwarden/tokenwarden/internal/provider/feishu/feishutest"
	"github.com/tokenwarden/tokenwarden/internal/provider/providertest/consent"
)

func TestConnectAgainstFake(t *testing.T) {
	fake := feishutest.New(feishutest.Options{AppID: fakeAppID, AppSecret: fakeAppSecret})
	fake.Start()
	t.Cleanup(fake.Close)
	const redirect, verifier = "http://127.0.0.1:5123/callback", "verifier-0123456789-0123456789-0123456789"
	u := feishu.NewUser(nil, nil)
	grant := provider.Grant{ClientSecret: fakeAppSecret}
	for _, tc := range []struct {
		scopes      []string
		wantRefresh bool
	}{{[]string{"offline_access"}, true}, {nil, false}} {
		cfg := provider.Config{ClientID: fakeAppID, BaseURL: fake.URL(), Scopes: tc.scopes}
		authURL, err := u.AuthCodeURL(cfg, redirect, "st", consent.ChallengeS256(verifier))
		if err != nil {
			t.Fatal(err)
		}
		back, err := consent.Submit(http.DefaultClient, authURL, "approve")
		if err != nil {
			t.Fatal(err)
		}
		code := back.Query().Get("code")
		ts, err := u.Exchange(context.Background(), cfg, grant, redirect, code, verifier)
		if err != nil || (ts.RefreshToken != "") != tc.wantRefresh || !fake.ValidUserAccessToken(ts.AccessToken) {
			t.Fatalf("scopes %v: Exchange %+v, %v", tc.scopes, ts.RefreshExpiresAt, err)
		}
		if _, err := u.Exchange(context.Background(), cfg, grant, redirect, code, verifier); !provider.IsPermanent(err) {
			t.Errorf("a second exchange: %v, want permanent", err)
		}
		if tc.wantRefresh {
			if _, err := u.Refresh(context.Background(), cfg, provider.Grant{RefreshToken: ts.RefreshToken, ClientSecret: fakeAppSecret}); err != nil {
				t.Errorf("refresh: %v", err)
			}
		}
	}
}
