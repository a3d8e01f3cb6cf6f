package oauth2provider

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/tokenwarden/tokenwarden/internal/provider"
)

func TestRevoke(t *testing.T) {
	const rt, secret = "rt_RefreshTokenToRevoke0123456789", "cs_ClientSecretValue987"
	var got struct{ token, hint, user, pass string }
	status := http.StatusOK
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = r.ParseForm()
		got.token, got.hint = r.PostForm.Get("token"), r.PostForm.Get("token_type_hint")
		got.user, got.pass, _ = r.BasicAuth()
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		if status != http.StatusOK {
			_, _ = w.Write([]byte(`{"error":"invalid_client","error_description":"bad secret ` + secret + `"}`))
		}
	}))
	defer srv.Close()
	p := New(nil, nil)
	cfg := provider.Config{TokenURL: "https://idp.example/token", ClientID: "app", RevocationURL: srv.URL}
	grant := provider.Grant{RefreshToken: rt, ClientSecret: secret}

	supported, err := p.Revoke(context.Background(), cfg, grant)
	if !supported || err != nil {
		t.Fatalf("Revoke = %v, %v", supported, err)
	}
	if got.token != rt || got.hint != "refresh_token" || got.user != "app" || got.pass != secret {
		t.Fatalf("the revocation endpoint saw %+v", got)
	}

	status = http.StatusUnauthorized
	_, err = p.Revoke(context.Background(), cfg, grant)
	if !provider.IsPermanent(err) || strings.Contains(err.Error(), secret) || strings.Contains(err.Error(), rt) {
		t.Fatalf("401: %v (want permanent, no secret)", err)
	}

	cfg.RevocationURL = ""
	if supported, err := p.Revoke(context.Background(), cfg, grant); supported || err != nil {
		t.Fatalf("without revocation_url: %v, %v", supported, err)
	}
}
