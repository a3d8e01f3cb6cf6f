package oauth2provider

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/tokenwarden/tokenwarden/internal/provider"
)

func TestAuthCodeURLCarriesPKCEAndNoSecret(t *testing.T) {
	p := New(nil, nil)
	cfg := provider.Config{TokenURL: "https://idp.example/token", ClientID: "app", AuthorizeURL: "https://idp.example/authorize?tenant=x", Scopes: []string{"openid", "offline_access"}}
	raw, err := p.AuthCodeURL(cfg, "http://127.0.0.1:5000/callback", "st", "ch")
	if err != nil {
		t.Fatal(err)
	}
	u, _ := url.Parse(raw)
	q := u.Query()
	for k, v := range map[string]string{"response_type": "code", "client_id": "app", "redirect_uri": "http://127.0.0.1:5000/callback",
		"scope": "openid offline_access", "state": "st", "code_challenge": "ch", "code_challenge_method": "S256", "tenant": "x"} {
		if q.Get(k) != v {
			t.Errorf("%s = %q, want %q", k, q.Get(k), v)
		}
	}
	if q.Has("client_secret") {
		t.Error("the authorization URL holds a client secret")
	}
	if err := p.CanAuthorize(provider.Config{}); err == nil || !strings.Contains(err.Error(), "authorize_url: required") {
		t.Errorf("CanAuthorize without authorize_url: %v", err)
	}
	if err := p.ValidateConfig(provider.Config{TokenURL: "https://idp.example/token", ClientID: "app", AuthorizeURL: "http://idp.example/authorize"}); err == nil || !strings.Contains(err.Error(), "authorize_url: must use https") {
		t.Errorf("plain-http authorize_url: %v", err)
	}
	if err := p.ValidateConfig(provider.Config{TokenURL: "https://idp.example/token", ClientID: "app", GrantType: "password"}); err == nil || !strings.Contains(err.Error(), "grant_type") {
		t.Errorf("grant_type password: %v", err)
	}
}

func TestExchangeSendsCodeVerifierOnce(t *testing.T) {
	var requests int
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests++
		_ = r.ParseForm()
		user, pass, _ := r.BasicAuth()
		if r.PostForm.Get("grant_type") != "authorization_code" || r.PostForm.Get("code") != "the-code" ||
			r.PostForm.Get("code_verifier") != "the-verifier" || r.PostForm.Get("redirect_uri") != "http://127.0.0.1:5000/callback" ||
			user != "app" || pass != "s3cret" {
			t.Errorf("form %v, basic %q", r.PostForm, user)
		}
		w.Header().Set("Content-Type", "application/json")
		if requests > 1 {
			w.WriteHeader(http.StatusBadRequest)
			_, _ = w.Write([]byte(`{"error":"invalid_grant"}`))
			return
		}
		_, _ = w.Write([]byte(`{"access_token":"at","refresh_token":"rt","expires_in":3600,"token_type":"Bearer"}`))
	}))
	defer srv.Close()
	p := New(srv.Client(), nil)
	cfg := provider.Config{TokenURL: srv.URL + "/token", ClientID: "app", AuthorizeURL: srv.URL + "/authorize"}
	ts, err := p.Exchange(context.Background(), cfg, provider.Grant{ClientSecret: "s3cret"}, "http://127.0.0.1:5000/callback", "the-code", "the-verifier")
	if err != nil || ts.RefreshToken != "rt" || ts.AccessExpiresAt.IsZero() || requests != 1 {
		t.Fatalf("Exchange = %+v, %v after %d requests", ts, err, requests)
	}
	_, err = p.Exchange(context.Background(), cfg, provider.Grant{ClientSecret: "s3cret"}, "http://127.0.0.1:5000/callback", "the-code", "the-verifier")
	if !provider.IsPermanent(err) || strings.Contains(err.Error(), "the-code") || strings.Contains(err.Error(), "s3cret") {
		t.Errorf("a refused code: %v", err)
	}
}
