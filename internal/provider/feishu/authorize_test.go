package feishu

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/tokenwarden/tokenwarden/internal/provider"
)

func TestUserAuthCodeURL(t *testing.T) {
	for base, want := range map[string]string{
		"":                       "https://accounts.feishu.cn/open-apis/authen/v1/authorize",
		LarkBaseURL:              "https://accounts.larksuite.com/open-apis/authen/v1/authorize",
		"http://127.0.0.1:7000/": "http://127.0.0.1:7000/open-apis/authen/v1/authorize",
	} {
		cfg := provider.Config{ClientID: "cli_a", BaseURL: base, Scopes: []string{"offline_access", "contact:user.base:readonly"}}
		raw, err := NewUser(nil, nil).AuthCodeURL(cfg, "http://127.0.0.1:5000/callback", "st", "ch")
		if err != nil {
			t.Fatal(err)
		}
		u, _ := url.Parse(raw)
		q := u.Query()
		if got := u.Scheme + "://" + u.Host + u.Path; got != want {
			t.Errorf("base %q: page %s, want %s", base, got, want)
		}
		for k, v := range map[string]string{"client_id": "cli_a", "response_type": "code", "redirect_uri": "http://127.0.0.1:5000/callback",
			"state": "st", "code_challenge": "ch", "code_challenge_method": "S256", "scope": "offline_access contact:user.base:readonly"} {
			if q.Get(k) != v {
				t.Errorf("base %q: %s = %q, want %q", base, k, q.Get(k), v)
			}
		}
	}
	if err := NewTenant(nil, nil).ValidateConfig(provider.Config{ClientID: "cli_a", RedirectURI: "http://127.0.0.1/cb"}); err == nil {
		t.Error("feishu-tenant accepted a redirect_uri")
	}
}

func TestUserExchangeRequest(t *testing.T) {
	var requests int
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests++
		var body map[string]string
		_ = json.NewDecoder(r.Body).Decode(&body)
		want := map[string]string{"grant_type": "authorization_code", "client_id": "cli_a", "client_secret": "app-secret",
			"code": "the-code", "redirect_uri": "http://127.0.0.1:5000/callback", "code_verifier": "the-verifier"}
		for k, v := range want {
			if body[k] != v {
				t.Errorf("%s = %q, want %q", k, body[k], v)
			}
		}
		if r.URL.Path != UserTokenPath {
			t.Errorf("path %s", r.URL.Path)
		}
		if body["code"] == "the-code" && requests == 1 {
			_, _ = w.Write([]byte(`{"code":0,"access_token":"u-at","expires_in":7200,"refresh_token":"ur-rt","refresh_token_expires_in":604800,"token_type":"Bearer"}`))
		}
	}))
	defer srv.Close()
	cfg := provider.Config{ClientID: "cli_a", BaseURL: srv.URL}
	ts, err := NewUser(srv.Client(), nil).Exchange(context.Background(), cfg, provider.Grant{ClientSecret: "app-secret"},
		"http://127.0.0.1:5000/callback", "the-code", "the-verifier")
	if err != nil || ts.RefreshToken != "ur-rt" || ts.AccessToken != "u-at" || ts.RefreshExpiresAt.IsZero() || requests != 1 {
		t.Fatalf("Exchange = %+v, %v after %d requests", ts, err, requests)
	}
	_, err = NewUser(srv.Client(), nil).Exchange(context.Background(), cfg, provider.Grant{}, "r", "the-code", "v")
	if !provider.IsPermanent(err) || !strings.Contains(err.Error(), "missing_client_secret") || requests != 1 {
		t.Errorf("without the App Secret: %v after %d requests", err, requests)
	}
}
