package oauth2provider

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/tokenwarden/tokenwarden/internal/provider"
	"github.com/tokenwarden/tokenwarden/internal/provider/oauth2/oauth2test"
)

func TestProbeByIntrospectionSpendsNothing(t *testing.T) {
	fake := oauth2test.New(oauth2test.Options{AccessLifetime: time.Hour, ClientID: "app", ClientSecret: "s3cret-Client-9"})
	tokenURL := fake.Start()
	defer fake.Close()
	cfg := provider.Config{TokenURL: tokenURL, IntrospectionURL: fake.IntrospectionURL(), ClientID: "app"}
	p := New(nil, nil)
	rt := fake.Seed("fam")
	ts, err := p.Refresh(context.Background(), cfg, provider.Grant{RefreshToken: rt, ClientSecret: "s3cret-Client-9"})
	if err != nil {
		t.Fatal(err)
	}
	grant := provider.Grant{AccessToken: ts.AccessToken, RefreshToken: ts.RefreshToken, ClientSecret: "s3cret-Client-9"}
	presented := fake.TotalPresentations()
	valid, err := p.Probe(context.Background(), cfg, grant)
	if err != nil || !valid {
		t.Fatalf("live access token: valid=%v err=%v", valid, err)
	}
	valid, err = p.Probe(context.Background(), cfg, provider.Grant{AccessToken: "at_never_issued", ClientSecret: "s3cret-Client-9"})
	if err != nil || valid {
		t.Fatalf("unknown access token: valid=%v err=%v", valid, err)
	}
	if fake.TotalPresentations() != presented {
		t.Fatalf("a probe reached the token endpoint")
	}
	if latest, ok := fake.Latest("fam"); !ok || latest != ts.RefreshToken {
		t.Fatalf("probing disturbed the token family")
	}
}

func TestProbeByUserinfo(t *testing.T) {
	const live = "at_LiveAccessToken0123456789"
	for _, tc := range []struct {
		name      string
		status    int
		token     string
		wantValid bool
		wantKind  provider.Kind
		wantErr   bool
	}{
		{"live", 200, live, true, 0, false},
		{"dead", 401, "at_DeadAccessToken0123456789", false, 0, false},
		{"forbidden", 403, live, false, 0, false},
		{"server error", 503, live, false, provider.Transient, true},
		{"odd 4xx is not a verdict on the token", 400, live, false, provider.Transient, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.Header.Get("Authorization") != "Bearer "+tc.token {
					t.Errorf("Authorization %q", r.Header.Get("Authorization"))
				}
				w.WriteHeader(tc.status)
				_, _ = w.Write([]byte(`{"error":"bad","error_description":"token ` + tc.token + `"}`))
			}))
			defer srv.Close()
			cfg := provider.Config{TokenURL: "https://idp.example/token", UserinfoURL: srv.URL, ClientID: "app"}
			valid, err := New(nil, nil).Probe(context.Background(), cfg, provider.Grant{AccessToken: tc.token})
			if valid != tc.wantValid || (err != nil) != tc.wantErr {
				t.Fatalf("valid=%v err=%v", valid, err)
			}
			if err != nil {
				var pe *provider.Error
				if !errors.As(err, &pe) || pe.Kind != tc.wantKind {
					t.Fatalf("err %v, want kind %s", err, tc.wantKind)
				}
				if strings.Contains(err.Error(), tc.token) {
					t.Fatalf("error leaks the access token: %v", err)
				}
			}
		})
	}
}

func TestProbeConfiguration(t *testing.T) {
	p := New(nil, nil)
	if p.CanProbe(provider.Config{}) {
		t.Fatal("no endpoint, yet CanProbe")
	}
	if !p.CanProbe(provider.Config{UserinfoURL: "https://idp.example/userinfo"}) {
		t.Fatal("userinfo_url not enough for CanProbe")
	}
	if !p.CanProbe(provider.Config{IntrospectionURL: "https://idp.example/introspect"}) {
		t.Fatal("introspection_url not enough for CanProbe")
	}
	err := New(nil, nil).ValidateConfig(provider.Config{TokenURL: "https://idp.example/token", ClientID: "app", UserinfoURL: "ftp://x"})
	if err == nil || !strings.HasPrefix(err.Error(), "userinfo_url:") {
		t.Fatalf("ftp userinfo_url: %v", err)
	}
}
