package baoming

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/tokenwarden/tokenwarden/internal/fakebaoming"
	"github.com/tokenwarden/tokenwarden/internal/provider"
)

func TestProbeAgainstTheFake(t *testing.T) {
	fake := fakebaoming.New()
	base := fake.Start()
	defer fake.Close()
	p := New(nil)
	cfg := provider.Config{BaseURL: base}
	tok := fake.Issue()

	valid, err := p.Probe(context.Background(), cfg, provider.Grant{AccessToken: tok})
	if err != nil || !valid {
		t.Fatalf("live token: valid=%v err=%v", valid, err)
	}
	fake.Invalidate(tok)
	valid, err = p.Probe(context.Background(), cfg, provider.Grant{AccessToken: tok})
	if err != nil || valid {
		t.Fatalf("invalidated token: valid=%v err=%v, want a clear no", valid, err)
	}
	valid, err = p.Probe(context.Background(), cfg, provider.Grant{AccessToken: "bm_never_issued"})
	if err != nil || valid {
		t.Fatalf("unknown token: valid=%v err=%v", valid, err)
	}
	if got := fake.Probes(tok); got != 2 {
		t.Fatalf("fake saw %d probes of the token, want 2", got)
	}

	fake.FailNext(1)
	_, err = p.Probe(context.Background(), cfg, provider.Grant{AccessToken: fake.Issue()})
	var pe *provider.Error
	if !errors.As(err, &pe) || pe.Kind != provider.Transient || pe.Code != "http_503" {
		t.Fatalf("503: got %v, want a transient http_503", err)
	}
}

func TestProbeClassification(t *testing.T) {
	const tok = "bm_0123456789abcdefABCDEF0123456789"
	for _, tc := range []struct {
		name      string
		status    int
		body      string
		wantValid bool
		wantKind  provider.Kind
		wantCode  string
	}{
		{"live", 200, `{"sta":0,"data":{}}`, true, 0, ""},
		{"rejected", 200, `{"sta":-1,"msg":"登录已失效"}`, false, 0, ""},
		{"unauthorized", 401, ``, false, 0, ""},
		{"rate limited", 429, `slow down`, false, provider.Transient, "http_429"},
		{"server error echoing the token", 502, `bad gateway for access_token=` + tok, false, provider.Transient, "http_502"},
		{"not json", 200, `<html>` + tok + `</html>`, false, provider.Transient, "malformed_response"},
		{"json without sta", 200, `{"data":{}}`, false, provider.Transient, "malformed_response"},
		{"redirect", 302, ``, false, provider.Transient, "http_302"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path != UserInfoPath || r.URL.Query().Get("access_token") != tok {
					t.Errorf("request %s", r.URL.Path)
				}
				if tc.status == 302 {
					w.Header().Set("Location", "https://elsewhere.example/steal")
				}
				w.WriteHeader(tc.status)
				_, _ = w.Write([]byte(tc.body))
			}))
			defer srv.Close()
			valid, err := New(nil).Probe(context.Background(), provider.Config{BaseURL: srv.URL}, provider.Grant{AccessToken: tok})
			if tc.wantCode == "" {
				if err != nil || valid != tc.wantValid {
					t.Fatalf("valid=%v err=%v, want valid=%v", valid, err, tc.wantValid)
				}
				return
			}
			var pe *provider.Error
			if !errors.As(err, &pe) || pe.Kind != tc.wantKind || pe.Code != tc.wantCode {
				t.Fatalf("got %v, want %s %s", err, tc.wantKind, tc.wantCode)
			}
			if strings.Contains(err.Error(), tok) {
				t.Fatalf("error leaks the token: %v", err)
			}
		})
	}
}

func TestNetworkErrorDoesNotLeakTheTokenInTheURL(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	const tok = "bm_secretsecret0123456789SECRET"
	_, err = New(nil).Probe(context.Background(), provider.Config{BaseURL: "http://" + addr}, provider.Grant{AccessToken: tok})
	var pe *provider.Error
	if !errors.As(err, &pe) || pe.Kind != provider.Transient || pe.Code != "network" {
		t.Fatalf("got %v, want transient network", err)
	}
	if strings.Contains(err.Error(), tok) || strings.Contains(err.Error(), "secretsecret") {
		t.Fatalf("error leaks the token: %v", err)
	}
}

func TestValidation(t *testing.T) {
	p := &Provider{}
	if err := p.ValidateGrant(provider.Grant{}); err == nil || !strings.HasPrefix(err.Error(), "access_token:") {
		t.Fatalf("empty grant: %v", err)
	}
	if err := p.ValidateConfig(provider.Config{BaseURL: "ftp://x"}); err == nil || !strings.HasPrefix(err.Error(), "base_url:") {
		t.Fatalf("ftp base: %v", err)
	}
	if err := p.ValidateConfig(provider.Config{}); err != nil {
		t.Fatalf("default base: %v", err)
	}
	_, err := p.Refresh(context.Background(), provider.Config{}, provider.Grant{AccessToken: "x"})
	if !provider.IsPermanent(err) {
		t.Fatalf("Refresh: %v, want permanent cannot_refresh", err)
	}
}
