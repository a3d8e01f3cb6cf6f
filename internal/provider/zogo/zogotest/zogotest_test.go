package zogotest_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/tokenwarden/tokenwarden/internal/provider"
	"github.com/tokenwarden/tokenwarden/internal/provider/zogo"
	"github.com/tokenwarden/tokenwarden/internal/provider/zogo/zogotest"
)

const secret = "fake-zogo-client-secret"

func start(t *testing.T, opts zogotest.Options) (*zogotest.Server, provider.Config) {
	t.Helper()
	opts.ClientID, opts.ClientSecret = "1", secret
	s := zogotest.New(opts)
	s.AddUser("u@zogo.test", "pw")
	t.Cleanup(s.Close)
	return s, provider.Config{BaseURL: s.Start(), ClientID: "1"}
}

func post(t *testing.T, url string, body string) (int, map[string]any) {
	t.Helper()
	resp, err := http.Post(url, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var m map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&m)
	return resp.StatusCode, m
}

func TestRotationReuseAndDocumentedShapes(t *testing.T) {
	s, cfg := start(t, zogotest.Options{AccessLifetime: time.Minute})
	seed := s.Seed("u@zogo.test")
	status, m := post(t, cfg.BaseURL+zogotest.RefreshPath, `{"refresh_token":"`+seed+`","client_id":1,"client_secret":"`+secret+`"}`)
	if status != 200 || m["code"] != 200.0 || m["status"] != "success" || m["token_type"] != "Bearer" || m["expires_in"] != 60.0 {
		t.Fatalf("refresh: %d %v", status, m)
	}
	next := m["refresh_token"].(string)
	if latest, ok := s.Latest("u@zogo.test"); !ok || latest != next {
		t.Errorf("Latest = %v %v, want the rotated token", latest, ok)
	}
	if !s.ValidAccessToken(m["access_token"].(string)) {
		t.Error("issued access token is not valid")
	}
	// Presenting the used seed again: 401 in the documented shape, family revoked.
	status, m = post(t, cfg.BaseURL+zogotest.RefreshPath, `{"refresh_token":"`+seed+`","client_id":"1","client_secret":"`+secret+`"}`)
	if status != 401 || m["code"] != 401.0 || m["status"] != "error" || m["data"].(map[string]any)["error"] == "" {
		t.Errorf("reuse: %d %v", status, m)
	}
	if s.ReuseDetections() != 1 || !s.Revoked("u@zogo.test") || s.MaxPresentations() != 2 || s.MaxProcessed() != 2 || s.Refreshes() != 1 {
		t.Errorf("counters after reuse: reuse %d revoked %v maxpres %d maxproc %d refreshes %d",
			s.ReuseDetections(), s.Revoked("u@zogo.test"), s.MaxPresentations(), s.MaxProcessed(), s.Refreshes())
	}
	if status, _ := post(t, cfg.BaseURL+zogotest.RefreshPath, `{"refresh_token":"`+next+`","client_id":1,"client_secret":"`+secret+`"}`); status != 401 {
		t.Errorf("successor after reuse: %d, want 401 (family revoked)", status)
	}
	// Wrong client, bad password, malformed body.
	if status, _ := post(t, cfg.BaseURL+zogotest.LoginPath, `{"username":"u@zogo.test","password":"pw","client_id":2,"client_secret":"`+secret+`"}`); status != 401 {
		t.Errorf("wrong client: %d", status)
	}
	if status, _ := post(t, cfg.BaseURL+zogotest.LoginPath, `{"username":"u@zogo.test","password":"nope","client_id":1,"client_secret":"`+secret+`"}`); status != 401 {
		t.Errorf("bad password: %d", status)
	}
	if status, _ := post(t, cfg.BaseURL+zogotest.LoginPath, `not json`); status != 400 {
		t.Errorf("malformed: %d", status)
	}
	if s.LoginFailures() != 2 || s.Logins() != 0 {
		t.Errorf("login counters %d/%d", s.LoginFailures(), s.Logins())
	}
	// A login starts a new live family.
	status, m = post(t, cfg.BaseURL+zogotest.LoginPath, `{"username":"u@zogo.test","password":"pw","client_id":1,"client_secret":"`+secret+`"}`)
	if status != 200 || s.Logins() != 1 {
		t.Fatalf("login: %d %v", status, m)
	}
	if latest, ok := s.Latest("u@zogo.test"); !ok || latest != m["refresh_token"] {
		t.Errorf("Latest after login = %v %v", latest, ok)
	}
}

func TestOmitExpiresInAndRefreshLifetime(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	s, cfg := start(t, zogotest.Options{OmitExpiresIn: true, RefreshLifetime: time.Hour, Now: clock})
	seed := s.Seed("u@zogo.test")
	_, m := post(t, cfg.BaseURL+zogotest.RefreshPath, `{"refresh_token":"`+seed+`","client_id":1,"client_secret":"`+secret+`"}`)
	if _, ok := m["expires_in"]; ok {
		t.Errorf("expires_in present: %v", m)
	}
	now = now.Add(2 * time.Hour)
	if _, ok := s.Latest("u@zogo.test"); ok {
		t.Error("expired refresh token reported live")
	}
	if status, _ := post(t, cfg.BaseURL+zogotest.RefreshPath, `{"refresh_token":"`+m["refresh_token"].(string)+`","client_id":1,"client_secret":"`+secret+`"}`); status != 401 {
		t.Errorf("expired refresh token: %d", status)
	}
}

func TestFaults(t *testing.T) {
	s, cfg := start(t, zogotest.Options{})
	p := zogo.New(nil, nil)
	g := provider.Grant{RefreshToken: s.Seed("u@zogo.test"), ClientSecret: secret}

	s.InjectFault(zogotest.Fault{Kind: zogotest.FaultStatus, Status: 503, Count: 1})
	_, err := p.Refresh(context.Background(), cfg, g)
	if provider.IsPermanent(err) || err == nil || s.Processed(g.RefreshToken) != 0 {
		t.Fatalf("before-grant 503: %v, processed %d", err, s.Processed(g.RefreshToken))
	}
	// Not consumed: the same token may be presented again.
	ts, err := p.Refresh(context.Background(), cfg, g)
	if err != nil {
		t.Fatal(err)
	}
	g.RefreshToken = ts.RefreshToken

	s.InjectFault(zogotest.Fault{Kind: zogotest.FaultMissingAccessToken, Phase: zogotest.AfterGrant, Count: 1})
	_, err = p.Refresh(context.Background(), cfg, g)
	if err == nil || provider.IsPermanent(err) || s.Processed(g.RefreshToken) != 1 {
		t.Fatalf("after-grant fault: %v", err)
	}
	if latest, _ := s.Latest("u@zogo.test"); latest == g.RefreshToken {
		t.Error("after-grant fault did not consume the token")
	}

	s.InjectFault(zogotest.Fault{Kind: zogotest.FaultRateLimit, Path: zogotest.LoginPath, RetryAfter: 3 * time.Second, Count: 1})
	_, err = p.Refresh(context.Background(), cfg, provider.Grant{ClientSecret: secret, Username: "u@zogo.test", Password: "pw"})
	if provider.RetryAfter(err) != 3*time.Second || s.PendingFaults() != 0 {
		t.Errorf("login rate limit: %v", err)
	}
}

func TestAdapterAgainstFakeWithLoginFallback(t *testing.T) {
	s, cfg := start(t, zogotest.Options{AccessLifetime: time.Minute})
	p := zogo.New(nil, nil)
	g := provider.Grant{RefreshToken: s.Seed("u@zogo.test"), ClientSecret: secret, Username: "u@zogo.test", Password: "pw"}
	for i := 0; i < 3; i++ {
		ts, err := p.Refresh(context.Background(), cfg, g)
		if err != nil || ts.RefreshToken == "" {
			t.Fatalf("cycle %d: %v", i, err)
		}
		g.RefreshToken = ts.RefreshToken
	}
	s.RevokeFamily("u@zogo.test")
	ts, err := p.Refresh(context.Background(), cfg, g)
	if err != nil {
		t.Fatalf("fallback: %v", err)
	}
	if latest, ok := s.Latest("u@zogo.test"); !ok || latest != ts.RefreshToken || s.Logins() != 1 || !s.ValidAccessToken(ts.AccessToken) {
		t.Errorf("after fallback: latest ok=%v logins %d", ok, s.Logins())
	}
	if s.MaxPresentations() != 1 || s.ReuseDetections() != 0 {
		t.Errorf("max presentations %d, reuse %d", s.MaxPresentations(), s.ReuseDetections())
	}
	s.AddUser("u@zogo.test", "changed")
	s.RevokeFamily("u@zogo.test")
	g.RefreshToken = ts.RefreshToken
	_, err = p.Refresh(context.Background(), cfg, g)
	var pe *provider.Error
	if !provider.IsPermanent(err) || !asErr(err, &pe) || pe.Code != zogo.CodeLoginRejected {
		t.Errorf("bad password: %v", err)
	}
	if s.PasswordPresentations("u@zogo.test") != 2 {
		t.Errorf("password presented %d times, want 2 (one per fallback)", s.PasswordPresentations("u@zogo.test"))
	}
}

func asErr(err error, target **provider.Error) bool {
	pe, ok := err.(*provider.Error)
	*target = pe
	return ok
}
