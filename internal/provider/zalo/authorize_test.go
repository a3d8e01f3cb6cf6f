package zalo

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/tokenwarden/tokenwarden/internal/provider"
)

func TestAuthCodeURL(t *testing.T) {
	for _, tc := range []struct {
		p    *Provider
		base string
		want string
	}{
		{NewOA(nil, nil), "", "https://oauth.zaloapp.com/v4/oa/permission"},
		{NewUser(nil, nil), "", "https://oauth.zaloapp.com/v4/permission"},
		{NewOA(nil, nil), "http://127.0.0.1:9000/", "http://127.0.0.1:9000/v4/oa/permission"},
	} {
		raw, err := tc.p.AuthCodeURL(provider.Config{ClientID: "1234", BaseURL: tc.base}, "http://127.0.0.1:5000/callback", "st", "ch")
		if err != nil {
			t.Fatal(err)
		}
		u, _ := url.Parse(raw)
		q := u.Query()
		if got := u.Scheme + "://" + u.Host + u.Path; got != tc.want {
			t.Errorf("%s: page %s, want %s", tc.p.Name(), got, tc.want)
		}
		if q.Get("app_id") != "1234" || q.Get("redirect_uri") != "http://127.0.0.1:5000/callback" || q.Get("state") != "st" || q.Get("code_challenge") != "ch" {
			t.Errorf("%s: query %v", tc.p.Name(), q)
		}
	}
	if _, err := NewOA(nil, nil).AuthCodeURL(provider.Config{ClientID: "1234", AuthorizeURL: "https://elsewhere.example/auth"}, "r", "s", "c"); err == nil || !strings.Contains(err.Error(), "authorize_url: not used") {
		t.Errorf("authorize_url accepted: %v", err)
	}
	if err := NewOA(nil, nil).ValidateConfig(provider.Config{ClientID: "1234", RedirectURI: "http://app.example.com/cb"}); err == nil || !strings.Contains(err.Error(), "redirect_uri: must use https") {
		t.Errorf("a plain-http remote redirect_uri: %v", err)
	}
}

// TestExchangeSendsVerifierAndSecretOnce: Exchange is ExchangeCode with the grant's
// app secret; no redirect_uri travels (Zalo's token endpoint takes none).
func TestExchangeSendsVerifierAndSecretOnce(t *testing.T) {
	var requests int
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests++
		body, _ := io.ReadAll(r.Body)
		form, _ := url.ParseQuery(string(body))
		if r.Header.Get(SecretKeyHeader) != "app-secret" || form.Get("code") != "the-code" || form.Get("code_verifier") != "the-verifier" ||
			form.Get("grant_type") != "authorization_code" || form.Has("redirect_uri") {
			t.Errorf("request %v, secret_key %q", form, r.Header.Get(SecretKeyHeader))
		}
		_, _ = io.WriteString(w, `{"access_token":"at","refresh_token":"rt","expires_in":90000}`)
	}))
	defer srv.Close()
	ts, err := NewUser(srv.Client(), nil).Exchange(context.Background(), provider.Config{ClientID: "1234", BaseURL: srv.URL},
		provider.Grant{ClientSecret: "app-secret"}, "http://127.0.0.1:1/callback", "the-code", "the-verifier")
	if err != nil || ts.RefreshToken != "rt" || requests != 1 {
		t.Fatalf("Exchange = %+v, %v after %d requests", ts, err, requests)
	}
}
