package zalo_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/tokenwarden/tokenwarden/internal/provider"
	"github.com/tokenwarden/tokenwarden/internal/provider/zalo"
	"github.com/tokenwarden/tokenwarden/internal/provider/zalo/zalotest"
)

const (
	appID     = "1234567890123456789"
	appSecret = "Fake-App-Secret-0123456789"
)

func startFake(t *testing.T, opts zalotest.Options) *zalotest.Server {
	t.Helper()
	opts.AppID, opts.AppSecret = appID, appSecret
	f := zalotest.New(opts)
	f.Start()
	t.Cleanup(f.Close)
	return f
}

func cfgFor(f *zalotest.Server) provider.Config {
	return provider.Config{ClientID: appID, BaseURL: f.URL()}
}

func refresh(t *testing.T, p *zalo.Provider, f *zalotest.Server, rt string) (provider.TokenSet, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return p.Refresh(ctx, cfgFor(f), provider.Grant{RefreshToken: rt, ClientSecret: appSecret})
}

func wantCode(t *testing.T, err error, kind provider.Kind, code string) {
	t.Helper()
	var pe *provider.Error
	if !errors.As(err, &pe) {
		t.Fatalf("err %v, want *provider.Error %s %s", err, kind, code)
	}
	if pe.Kind != kind || pe.Code != code {
		t.Fatalf("got %s %q (%v), want %s %q", pe.Kind, pe.Code, err, kind, code)
	}
	for _, s := range []string{appSecret} {
		if strings.Contains(err.Error(), s) {
			t.Errorf("error leaks a secret: %v", err)
		}
	}
}

func TestRotationAgainstTheFake(t *testing.T) {
	for _, tc := range []struct {
		name   string
		p      *zalo.Provider
		seed   func(*zalotest.Server, string) string
		asText bool
	}{
		{"oa", zalo.NewOA(nil, nil), (*zalotest.Server).SeedOA, false},
		{"oa expires_in string", zalo.NewOA(nil, nil), (*zalotest.Server).SeedOA, true},
		{"user", zalo.NewUser(nil, nil), (*zalotest.Server).SeedUser, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			now := time.Now()
			f := startFake(t, zalotest.Options{ExpiresInAsString: tc.asText})
			rt := tc.seed(f, "fam")
			var last provider.TokenSet
			for i := 0; i < 4; i++ {
				ts, err := refresh(t, tc.p, f, rt)
				if err != nil {
					t.Fatalf("refresh %d: %v", i, err)
				}
				if ts.RefreshToken == "" || ts.RefreshToken == rt {
					t.Fatalf("refresh %d did not rotate", i)
				}
				if d := ts.AccessExpiresAt.Sub(now); d < 90000*time.Second-time.Minute || d > 90000*time.Second+time.Minute {
					t.Errorf("access lifetime %v, want ~25h", d)
				}
				if d := ts.RefreshExpiresAt.Sub(now); d < zalo.DefaultRefreshLifetime-time.Minute || d > zalo.DefaultRefreshLifetime+time.Minute {
					t.Errorf("refresh lifetime %v, want ~90 days", d)
				}
				rt, last = ts.RefreshToken, ts
			}
			if latest, ok := f.Latest("fam"); !ok || latest != rt {
				t.Errorf("fake's latest token is not the last one returned")
			}
			if !f.ValidAccessToken(last.AccessToken) {
				t.Errorf("last access token not valid at the fake")
			}
			if f.MaxPresentations() != 1 || f.MaxProcessed() != 1 || f.ReuseDetections() != 0 || f.Refreshes() != 4 {
				t.Errorf("presentations %d processed %d reuse %d refreshes %d",
					f.MaxPresentations(), f.MaxProcessed(), f.ReuseDetections(), f.Refreshes())
			}
		})
	}
}

func TestFakeRulesSeenByTheAdapter(t *testing.T) {
	f := startFake(t, zalotest.Options{})
	oa := zalo.NewOA(nil, nil)

	used := f.SeedOA("reuse")
	if _, err := refresh(t, oa, f, used); err != nil {
		t.Fatal(err)
	}
	_, err := refresh(t, oa, f, used)
	wantCode(t, err, provider.Permanent, "-14014")
	if f.ReuseDetections() != 1 {
		t.Errorf("reuse detections %d, want 1", f.ReuseDetections())
	}
	if _, ok := f.Latest("reuse"); !ok {
		t.Errorf("reuse revoked the family; the fake should not by default")
	}

	// An OA token on the user path is unknown there.
	_, err = refresh(t, zalo.NewUser(nil, nil), f, f.SeedOA("kind"))
	wantCode(t, err, provider.Permanent, "-14014")

	// Wrong secret and wrong app id: nothing is processed.
	rt := f.SeedOA("app")
	_, err = oa.Refresh(context.Background(), cfgFor(f), provider.Grant{RefreshToken: rt, ClientSecret: "Wrong-Secret-000000000000"})
	wantCode(t, err, provider.Permanent, "-14004")
	cfg := cfgFor(f)
	cfg.ClientID = "999"
	_, err = oa.Refresh(context.Background(), cfg, provider.Grant{RefreshToken: rt, ClientSecret: appSecret})
	wantCode(t, err, provider.Permanent, "-14002")
	if f.Processed(rt) != 0 {
		t.Errorf("a request with a bad app was processed")
	}
	if _, err := refresh(t, oa, f, rt); err != nil {
		t.Errorf("the token should have survived the rejected requests: %v", err)
	}

	// Revocation (the OA admin removed the app).
	rt = f.SeedOA("revoked")
	f.RevokeFamily("revoked")
	_, err = refresh(t, oa, f, rt)
	wantCode(t, err, provider.Permanent, "-14014")
}

func TestRefreshTokenLifetimeFromTheFake(t *testing.T) {
	f := startFake(t, zalotest.Options{RefreshLifetime: 30 * 24 * time.Hour, SendRefreshTokenExpiresIn: true, ExpiresInAsString: true, AccessLifetime: time.Hour})
	now := time.Now()
	ts, err := refresh(t, zalo.NewUser(nil, nil), f, f.SeedUser("u"))
	if err != nil {
		t.Fatal(err)
	}
	if d := ts.RefreshExpiresAt.Sub(now); d < 30*24*time.Hour-time.Minute || d > 30*24*time.Hour+time.Minute {
		t.Errorf("refresh lifetime %v, want 30 days from refresh_token_expires_in", d)
	}
	if d := ts.AccessExpiresAt.Sub(now); d < time.Hour-time.Minute || d > time.Hour+time.Minute {
		t.Errorf("access lifetime %v, want 1h", d)
	}
}

func TestFaultsSeenByTheAdapter(t *testing.T) {
	for _, tc := range []struct {
		name     string
		fault    zalotest.Fault
		kind     provider.Kind
		code     string
		consumed bool
	}{
		{"502", zalotest.Fault{Kind: zalotest.FaultStatus}, provider.Transient, "http_502", false},
		{"503 retry-after", zalotest.Fault{Kind: zalotest.FaultStatus, Status: 503, RetryAfter: 7 * time.Second}, provider.Transient, "http_503", false},
		{"rate limit in 200", zalotest.Fault{Kind: zalotest.FaultErrorIn200}, provider.Transient, "-32", false},
		{"invalid refresh token in 200", zalotest.Fault{Kind: zalotest.FaultErrorIn200, ErrorCode: -14014, ErrorName: "Invalid refresh token"}, provider.Permanent, "-14014", false},
		{"malformed", zalotest.Fault{Kind: zalotest.FaultMalformedJSON}, provider.Transient, zalo.CodeMalformedResponse, false},
		{"empty body", zalotest.Fault{Kind: zalotest.FaultEmptyBody}, provider.Transient, zalo.CodeMalformedResponse, false},
		{"close connection", zalotest.Fault{Kind: zalotest.FaultCloseConnection}, provider.Transient, zalo.CodeNetwork, false},
		{"hang", zalotest.Fault{Kind: zalotest.FaultHang}, provider.Transient, zalo.CodeNetwork, false},
		{"missing access token after grant", zalotest.Fault{Kind: zalotest.FaultMissingAccessToken, Phase: zalotest.AfterGrant}, provider.Transient, zalo.CodeMalformedResponse, true},
		{"close after grant", zalotest.Fault{Kind: zalotest.FaultCloseConnection, Phase: zalotest.AfterGrant}, provider.Transient, zalo.CodeNetwork, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := startFake(t, zalotest.Options{})
			rt := f.SeedOA("fam")
			tc.fault.Count = 1
			f.InjectFault(tc.fault)
			ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
			defer cancel()
			_, err := zalo.NewOA(nil, nil).Refresh(ctx, cfgFor(f), provider.Grant{RefreshToken: rt, ClientSecret: appSecret})
			wantCode(t, err, tc.kind, tc.code)
			if tc.fault.RetryAfter > 0 && provider.RetryAfter(err) != tc.fault.RetryAfter {
				t.Errorf("RetryAfter %v, want %v", provider.RetryAfter(err), tc.fault.RetryAfter)
			}
			if f.Presentations(rt) != 1 {
				t.Errorf("presented %d times, want 1", f.Presentations(rt))
			}
			latest, _ := f.Latest("fam")
			if consumed := latest != rt; consumed != tc.consumed {
				t.Errorf("token consumed = %v, want %v", consumed, tc.consumed)
			}
		})
	}
}

func TestExchangeCodeAgainstTheFake(t *testing.T) {
	f := startFake(t, zalotest.Options{})
	const verifier = "Verifier-0123456789-abcdefghijklmnopqrstuvwxyz"
	user := zalo.NewUser(nil, nil)

	code := f.IssueCode(zalotest.User, "u", zalotest.CodeChallenge(verifier))
	ts, err := user.ExchangeCode(context.Background(), cfgFor(f), appSecret, code, verifier)
	if err != nil {
		t.Fatalf("ExchangeCode: %v", err)
	}
	if latest, ok := f.Latest("u"); !ok || latest != ts.RefreshToken {
		t.Fatalf("the exchange's refresh token is not the family's live one")
	}
	// The seeded credential refreshes.
	if _, err := refresh(t, user, f, ts.RefreshToken); err != nil {
		t.Fatalf("refresh after exchange: %v", err)
	}
	// Codes are single-use.
	_, err = user.ExchangeCode(context.Background(), cfgFor(f), appSecret, code, verifier)
	wantCode(t, err, provider.Permanent, "-14005")
	// A wrong verifier burns the code.
	code = f.IssueCode(zalotest.User, "u2", zalotest.CodeChallenge(verifier))
	_, err = user.ExchangeCode(context.Background(), cfgFor(f), appSecret, code, "Wrong-Verifier-0123456789abcdefghijklmnop")
	wantCode(t, err, provider.Permanent, "-14005")
	if strings.Contains(err.Error(), code) {
		t.Errorf("error leaks the code: %v", err)
	}
	// OA without PKCE.
	code = f.IssueCode(zalotest.OA, "oa", "")
	if _, err := zalo.NewOA(nil, nil).ExchangeCode(context.Background(), cfgFor(f), appSecret, code, ""); err != nil {
		t.Fatalf("OA exchange: %v", err)
	}
	if f.Exchanges() != 2 {
		t.Errorf("exchanges %d, want 2", f.Exchanges())
	}
}
