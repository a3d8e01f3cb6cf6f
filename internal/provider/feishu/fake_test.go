package feishu_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tokenwarden/tokenwarden/internal/provider"
	"github.com/tokenwarden/tokenwarden/internal/provider/feishu"
	"github.com/tokenwarden/tokenwarden/internal/provider/feishu/feishutest"
)

const (
	fakeAppID     = "cli_fake_e2e"
	fakeAppSecret = "fake-app-secret-0123456789"
)

type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time      { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *clock) Add(d time.Duration) { c.mu.Lock(); c.now = c.now.Add(d); c.mu.Unlock() }

func TestUserAgainstFake(t *testing.T) {
	fake := feishutest.New(feishutest.Options{AppID: fakeAppID, AppSecret: fakeAppSecret})
	base := fake.Start()
	defer fake.Close()
	p := feishu.NewUser(nil, nil)
	cfg := provider.Config{ClientID: fakeAppID, BaseURL: base}
	seed := fake.Seed("u")
	grant := provider.Grant{RefreshToken: seed, ClientSecret: fakeAppSecret}
	for i := 0; i < 3; i++ {
		ts, err := p.Refresh(context.Background(), cfg, grant)
		if err != nil {
			t.Fatal(err)
		}
		if latest, _ := fake.Latest("u"); ts.RefreshToken != latest || !fake.ValidUserAccessToken(ts.AccessToken) {
			t.Fatalf("cycle %d: adapter got a different token than the fake's latest", i)
		}
		grant.RefreshToken, grant.AccessToken = ts.RefreshToken, ts.AccessToken
	}
	if fake.MaxPresentations() != 1 || fake.MaxProcessed() != 1 || fake.Refreshes() != 3 {
		t.Fatalf("presentations %d processed %d refreshes %d", fake.MaxPresentations(), fake.MaxProcessed(), fake.Refreshes())
	}
	// The seed report's mistake, made on purpose: the spent seed presented again. The
	// fake answers as Feishu did there (HTTP 400, invalid_grant, 20064).
	_, err := p.Refresh(context.Background(), cfg, provider.Grant{RefreshToken: seed, ClientSecret: fakeAppSecret})
	var pe *provider.Error
	if !errors.As(err, &pe) || pe.Kind != provider.Permanent || pe.Code != "20064" || pe.HTTPStatus != 400 ||
		!strings.Contains(pe.Description, "revoked") {
		t.Fatalf("reused token: %v", err)
	}
	// A rate limit in a 200 answer is retried later, and consumed nothing.
	fake.InjectFault(feishutest.Fault{Kind: feishutest.FaultErrorCode, Count: 1, RetryAfter: 5 * time.Second})
	_, err = p.Refresh(context.Background(), cfg, grant)
	if !errors.As(err, &pe) || pe.Kind != provider.Transient || pe.Code != "99991400" || pe.RetryAfter != 5*time.Second {
		t.Fatalf("rate limit: %v", err)
	}
	if latest, _ := fake.Latest("u"); latest != grant.RefreshToken {
		t.Fatal("a before-grant fault consumed the token")
	}
	// A wrong app secret is a configuration error.
	_, err = p.Refresh(context.Background(), cfg, provider.Grant{RefreshToken: grant.RefreshToken, ClientSecret: "wrong-secret"})
	if !errors.As(err, &pe) || pe.Code != "config_20002" {
		t.Fatalf("wrong secret: %v", err)
	}
}

// TestBothReuseAnswersArePermanent: whichever of its two codes Feishu answers a reused
// refresh token with, the credential goes to NEEDS_REAUTH rather than retrying a token
// that can never work again.
func TestBothReuseAnswersArePermanent(t *testing.T) {
	for _, tc := range []struct {
		reuseCode int
		want      string
	}{
		{0, "20064"},
		{feishutest.CodeRefreshTokenRevoked, "20064"},
		{feishutest.CodeRefreshTokenUsed, "20073"},
	} {
		fake := feishutest.New(feishutest.Options{AppID: fakeAppID, AppSecret: fakeAppSecret, ReuseCode: tc.reuseCode})
		base := fake.Start()
		p := feishu.NewUser(nil, nil)
		cfg := provider.Config{ClientID: fakeAppID, BaseURL: base}
		seed := fake.Seed("u")
		if _, err := p.Refresh(context.Background(), cfg, provider.Grant{RefreshToken: seed, ClientSecret: fakeAppSecret}); err != nil {
			t.Fatal(err)
		}
		_, err := p.Refresh(context.Background(), cfg, provider.Grant{RefreshToken: seed, ClientSecret: fakeAppSecret})
		fake.Close()
		var pe *provider.Error
		if !errors.As(err, &pe) || pe.Kind != provider.Permanent || pe.Code != tc.want || !provider.IsPermanent(err) {
			t.Errorf("ReuseCode %d: %v, want permanent %s", tc.reuseCode, err, tc.want)
		}
		if strings.Contains(err.Error(), seed) || strings.Contains(err.Error(), fakeAppSecret) {
			t.Errorf("ReuseCode %d: the error leaks a secret: %v", tc.reuseCode, err)
		}
	}
}

func TestTenantAgainstFakeAcrossTheThirtyMinuteLine(t *testing.T) {
	clk := &clock{now: time.Date(2026, 1, 19, 0, 0, 0, 0, time.UTC)}
	fake := feishutest.New(feishutest.Options{AppID: fakeAppID, AppSecret: fakeAppSecret, Now: clk.Now})
	base := fake.Start()
	defer fake.Close()
	p := feishu.NewTenant(nil, clk.Now)
	cfg := provider.Config{ClientID: fakeAppID, BaseURL: base}
	grant := provider.Grant{ClientSecret: fakeAppSecret}

	first, err := p.Refresh(context.Background(), cfg, grant)
	if err != nil || !first.AccessExpiresAt.Equal(clk.Now().Add(2*time.Hour)) {
		t.Fatalf("first mint: %+v %v", first, err)
	}
	grant.AccessToken = first.AccessToken

	// 40 minutes left (where the scheduler's one-third rule lands): the same token,
	// the same expiry, reported.
	clk.Add(80 * time.Minute)
	same, err := p.Refresh(context.Background(), cfg, grant)
	if err != nil || same.AccessToken != first.AccessToken || !same.AccessExpiresAt.Equal(first.AccessExpiresAt) {
		t.Fatalf("re-mint outside the window: %+v %v", same, err)
	}
	if p.UnchangedRemints() != 1 || fake.TenantReissues() != 1 {
		t.Fatalf("unchanged %d reissues %d", p.UnchangedRemints(), fake.TenantReissues())
	}

	// 20 minutes left (policy.refresh_margin 20m): a new token.
	clk.Add(20 * time.Minute)
	next, err := p.Refresh(context.Background(), cfg, grant)
	if err != nil || next.AccessToken == first.AccessToken || !next.AccessExpiresAt.Equal(clk.Now().Add(2*time.Hour)) {
		t.Fatalf("re-mint inside the window: %+v %v", next, err)
	}
	if p.UnchangedRemints() != 1 || fake.TenantMints() != 2 || !fake.ValidTenantToken(first.AccessToken) {
		t.Fatalf("unchanged %d mints %d", p.UnchangedRemints(), fake.TenantMints())
	}

	_, err = p.Refresh(context.Background(), cfg, provider.Grant{ClientSecret: "wrong-secret"})
	var pe *provider.Error
	if !errors.As(err, &pe) || pe.Kind != provider.Permanent || pe.Code != "config_10014" {
		t.Fatalf("wrong secret: %v", err)
	}
}
