package oauth2provider

import (
	"context"
	"testing"
	"time"

	"github.com/tokenwarden/tokenwarden/internal/provider"
	"github.com/tokenwarden/tokenwarden/internal/provider/oauth2/oauth2test"
)

// TestAgainstStrictFake runs the adapter against the rotating, reuse-detecting fake: a
// chain of refreshes must present every refresh token exactly once.
func TestAgainstStrictFake(t *testing.T) {
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	srv := oauth2test.New(oauth2test.Options{
		AccessLifetime: 10 * time.Minute, RefreshLifetime: 24 * time.Hour,
		ClientID: testClientID, ClientSecret: testClientSecret,
		Now: func() time.Time { return now },
	})
	tokenURL := srv.Start()
	t.Cleanup(srv.Close)
	p := New(nil, func() time.Time { return now })

	for _, style := range []string{"", "header", "body"} {
		family := "fam-" + style
		rt := srv.Seed(family)
		cfg := provider.Config{TokenURL: tokenURL, ClientID: testClientID, AuthStyle: style}
		for i := range 5 {
			ts, err := p.Refresh(context.Background(), cfg, provider.Grant{RefreshToken: rt, ClientSecret: testClientSecret})
			if err != nil {
				t.Fatalf("%s refresh %d: %v", family, i, err)
			}
			if ts.RefreshToken == "" || ts.RefreshToken == rt || !srv.ValidAccessToken(ts.AccessToken) {
				t.Fatalf("%s refresh %d: bad token set", family, i)
			}
			if !ts.AccessExpiresAt.Equal(now.Add(10*time.Minute)) || !ts.RefreshExpiresAt.Equal(now.Add(24*time.Hour)) {
				t.Fatalf("expiry: %v %v", ts.AccessExpiresAt, ts.RefreshExpiresAt)
			}
			rt = ts.RefreshToken
		}
		if latest, ok := srv.Latest(family); !ok || latest != rt {
			t.Fatalf("%s: adapter and server disagree on the live token", family)
		}
	}
	if srv.MaxPresentations() != 1 || srv.ReuseDetections() != 0 || srv.Refreshes() != 15 {
		t.Fatalf("max=%d reuse=%d refreshes=%d", srv.MaxPresentations(), srv.ReuseDetections(), srv.Refreshes())
	}
}

// TestAgainstStrictFakeFaults checks the adapter's classification of the fake's faults,
// and that a fault never makes it present the token twice or return a token set.
func TestAgainstStrictFakeFaults(t *testing.T) {
	cases := []struct {
		fault    oauth2test.Fault
		kind     provider.Kind
		code     string
		consumed bool
	}{
		{oauth2test.Fault{Kind: oauth2test.FaultStatus, Status: 502}, provider.Transient, "http_502", false},
		{oauth2test.Fault{Kind: oauth2test.FaultRateLimit, RetryAfter: 3 * time.Second}, provider.Transient, "http_429", false},
		{oauth2test.Fault{Kind: oauth2test.FaultMalformedJSON, Phase: oauth2test.AfterGrant}, provider.Transient, CodeMalformedResponse, true},
		{oauth2test.Fault{Kind: oauth2test.FaultMissingAccessToken, Phase: oauth2test.AfterGrant}, provider.Transient, CodeMalformedResponse, true},
		{oauth2test.Fault{Kind: oauth2test.FaultErrorIn200, ErrorCode: "invalid_grant"}, provider.Permanent, "invalid_grant", false},
		{oauth2test.Fault{Kind: oauth2test.FaultCloseConnection, Phase: oauth2test.AfterGrant}, provider.Transient, CodeNetwork, true},
		{oauth2test.Fault{Kind: oauth2test.FaultHang}, provider.Transient, CodeNetwork, false},
	}
	for _, tc := range cases {
		t.Run(tc.fault.Kind.String()+"/"+tc.fault.Phase.String(), func(t *testing.T) {
			srv := oauth2test.New(oauth2test.Options{ClientID: testClientID, ClientSecret: testClientSecret})
			tokenURL := srv.Start()
			t.Cleanup(srv.Close)
			rt := srv.Seed("fam")
			f := tc.fault
			f.Count = 1
			srv.InjectFault(f)

			ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
			defer cancel()
			cfg := provider.Config{TokenURL: tokenURL, ClientID: testClientID}
			ts, err := New(nil, nil).Refresh(ctx, cfg, provider.Grant{RefreshToken: rt, ClientSecret: testClientSecret})
			var perr *provider.Error
			if err == nil || ts != (provider.TokenSet{}) {
				t.Fatalf("got token set %+v, err %v", ts, err)
			}
			if !asProviderError(err, &perr) || perr.Kind != tc.kind || perr.Code != tc.code {
				t.Fatalf("got %v", err)
			}
			if srv.Presentations(rt) != 1 {
				t.Fatalf("presented %d times", srv.Presentations(rt))
			}
			if consumed := srv.Refreshes() == 1; consumed != tc.consumed {
				t.Fatalf("consumed = %v, want %v", consumed, tc.consumed)
			}
		})
	}
}

func asProviderError(err error, target **provider.Error) bool {
	pe, ok := err.(*provider.Error)
	if ok {
		*target = pe
	}
	return ok
}

// TestIntrospectionSettlesInterruptedRefresh is the reason RefreshTokenActive exists:
// after a refresh whose outcome is unknown, asking the strict fake tells "consumed" from
// "not consumed" without a second presentation, so reuse detection never fires.
func TestIntrospectionSettlesInterruptedRefresh(t *testing.T) {
	cases := []struct {
		name     string
		fault    oauth2test.Fault
		consumed bool
	}{
		{"reset before grant", oauth2test.Fault{Kind: oauth2test.FaultCloseConnection}, false},
		{"reset after grant", oauth2test.Fault{Kind: oauth2test.FaultCloseConnection, Phase: oauth2test.AfterGrant}, true},
		{"hang before grant", oauth2test.Fault{Kind: oauth2test.FaultHang}, false},
		{"hang after grant", oauth2test.Fault{Kind: oauth2test.FaultHang, Phase: oauth2test.AfterGrant}, true},
	}
	for _, style := range []string{"header", "body"} {
		for _, tc := range cases {
			t.Run(style+"/"+tc.name, func(t *testing.T) {
				srv := oauth2test.New(oauth2test.Options{ClientID: testClientID, ClientSecret: testClientSecret})
				tokenURL := srv.Start()
				t.Cleanup(srv.Close)
				rt := srv.Seed("fam")
				f := tc.fault
				f.Count = 1
				srv.InjectFault(f)
				cfg := provider.Config{TokenURL: tokenURL, ClientID: testClientID, AuthStyle: style, IntrospectionURL: srv.IntrospectionURL()}
				g := provider.Grant{RefreshToken: rt, ClientSecret: testClientSecret}
				p := New(nil, nil)

				ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
				_, err := p.Refresh(ctx, cfg, g)
				cancel()
				if err == nil {
					t.Fatal("faulty refresh succeeded")
				}
				act, supported, err := p.RefreshTokenActive(context.Background(), cfg, g)
				if err != nil || !supported {
					t.Fatalf("introspection: %v %v", supported, err)
				}
				if act == tc.consumed {
					t.Fatalf("active = %v, but consumed = %v", act, tc.consumed)
				}
				if srv.Presentations(rt) != 1 || srv.ReuseDetections() != 0 || srv.Introspections() != 1 {
					t.Fatalf("presentations=%d reuse=%d introspections=%d", srv.Presentations(rt), srv.ReuseDetections(), srv.Introspections())
				}
				if !act {
					return
				}
				// Not consumed: presenting again is legitimate and works.
				if _, err := p.Refresh(context.Background(), cfg, g); err != nil {
					t.Fatalf("retry after a before-grant fault: %v", err)
				}
				if srv.MaxProcessed() != 1 || srv.ReuseDetections() != 0 {
					t.Fatalf("retry processed %d times, reuse %d", srv.MaxProcessed(), srv.ReuseDetections())
				}
			})
		}
	}
}

func TestIntrospectionFaultsFromStrictFake(t *testing.T) {
	srv := oauth2test.New(oauth2test.Options{ClientID: testClientID, ClientSecret: testClientSecret})
	tokenURL := srv.Start()
	t.Cleanup(srv.Close)
	rt := srv.Seed("fam")
	cfg := provider.Config{TokenURL: tokenURL, ClientID: testClientID, IntrospectionURL: srv.IntrospectionURL()}
	g := provider.Grant{RefreshToken: rt, ClientSecret: testClientSecret}
	p := New(nil, nil)
	cases := []struct {
		fault oauth2test.Fault
		kind  provider.Kind
		code  string
	}{
		{oauth2test.Fault{Kind: oauth2test.FaultStatus, Status: 502}, provider.Transient, "http_502"},
		{oauth2test.Fault{Kind: oauth2test.FaultRateLimit, RetryAfter: 3 * time.Second}, provider.Transient, "http_429"},
		{oauth2test.Fault{Kind: oauth2test.FaultMalformedJSON}, provider.Transient, CodeMalformedResponse},
		{oauth2test.Fault{Kind: oauth2test.FaultMissingAccessToken}, provider.Transient, CodeMalformedResponse},
		{oauth2test.Fault{Kind: oauth2test.FaultErrorIn200}, provider.Transient, "server_error"},
		{oauth2test.Fault{Kind: oauth2test.FaultCloseConnection}, provider.Transient, CodeNetwork},
	}
	for _, tc := range cases {
		f := tc.fault
		f.Count, f.Path = 1, oauth2test.IntrospectionPath
		srv.InjectFault(f)
		_, _, err := p.RefreshTokenActive(context.Background(), cfg, g)
		var perr *provider.Error
		if !asProviderError(err, &perr) || perr.Kind != tc.kind || perr.Code != tc.code {
			t.Fatalf("%v: got %v", tc.fault.Kind, err)
		}
	}
	// Wrong client secret: the fake's 401 invalid_client.
	if _, _, err := p.RefreshTokenActive(context.Background(), cfg, provider.Grant{RefreshToken: rt, ClientSecret: "wrong"}); !provider.IsPermanent(err) {
		t.Fatalf("wrong secret: %v", err)
	}
	if act, _, err := p.RefreshTokenActive(context.Background(), cfg, g); err != nil || !act {
		t.Fatalf("after faults: %v %v", act, err)
	}
	if srv.Requests() != 0 || srv.Refreshes() != 0 {
		t.Fatal("introspection touched the token endpoint")
	}
}
