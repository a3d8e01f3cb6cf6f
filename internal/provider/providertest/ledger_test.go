package providertest_test

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tokenwarden/tokenwarden/internal/provider/providertest"
)

const (
	refreshPrefix = "rt_"
	accessPrefix  = "at_"
)

// clock is a settable clock for one goroutine's test.
type clock struct{ now time.Time }

func newClock() *clock { return &clock{now: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)} }

func (c *clock) Now() time.Time { return c.now }

func (c *clock) advance(d time.Duration) { c.now = c.now.Add(d) }

// prefixed reports whether token is prefix and more: a minted token.
func prefixed(token, prefix string) bool {
	return strings.HasPrefix(token, prefix) && len(token) > len(prefix)
}

// newLedger is a Ledger minting prefixed tokens.
func newLedger(opts providertest.Options) *providertest.Ledger {
	opts.RefreshToken = providertest.Prefixed(refreshPrefix)
	opts.AccessToken = providertest.Prefixed(accessPrefix)
	return providertest.New(opts)
}

func TestLedgerSeedAndStart(t *testing.T) {
	c := newClock()
	l := newLedger(providertest.Options{Now: c.Now, RefreshLifetime: time.Hour, AccessLifetime: time.Minute})

	rt := l.Seed("seeded", 0)
	if !prefixed(rt, refreshPrefix) {
		t.Errorf("Seed = %q, want a minted refresh token", rt)
	}
	if got, want := l.Inspect(rt), (providertest.Token{Refresh: true, Family: "seeded", Active: true,
		ExpiresAt: c.now.Add(time.Hour)}); got != want {
		t.Errorf("Inspect(seeded) = %+v, want %+v", got, want)
	}
	if latest, ok := l.Latest("seeded"); !ok || latest != rt {
		t.Errorf("Latest = %q, %v; want the seeded token", latest, ok)
	}

	at, rt2 := l.Start("started", 0)
	if !prefixed(at, accessPrefix) || !prefixed(rt2, refreshPrefix) {
		t.Errorf("Start = %q, %q; want minted access and refresh tokens", at, rt2)
	}
	if !l.ValidAccessToken(at) {
		t.Error("Start's access token is not valid")
	}
	if got, want := l.Inspect(at), (providertest.Token{Access: true, Family: "started", Active: true,
		ExpiresAt: c.now.Add(time.Minute)}); got != want {
		t.Errorf("Inspect(access) = %+v, want %+v", got, want)
	}
	if got := l.Inspect("rt_never"); got != (providertest.Token{}) {
		t.Errorf("Inspect(unknown) = %+v, want the zero Token", got)
	}
	if got := l.Families(); len(got) != 2 || got["seeded"] != 1 || got["started"] != 1 {
		t.Errorf("Families = %v, want one of each", got)
	}
	// Seeding and starting count nothing.
	if l.TotalPresentations() != 0 || l.MaxProcessed() != 0 || l.Refreshes() != 0 || l.InFlight() != 0 {
		t.Error("Seed or Start counted something")
	}
}

// TestLedgerRedeem pins Redeem's outcomes and the order in which the rules apply:
// unknown (or another kind), reused, revoked, expired, granted.
func TestLedgerRedeem(t *testing.T) {
	type env struct {
		l *providertest.Ledger
		c *clock
	}
	// used seeds family f and rotates its first token; it returns the used token and its
	// live successor.
	used := func(e env, p providertest.Policy) (usedToken, successor string) {
		rt := e.l.Seed("f", p.Kind)
		red := e.l.Redeem(rt, p)
		if red.Outcome != providertest.Granted {
			panic("the first redemption was not granted")
		}
		return rt, red.Refresh
	}
	for _, tc := range []struct {
		name   string
		opts   providertest.Options
		policy providertest.Policy
		// setup prepares the ledger and returns the token to present.
		setup      func(e env, p providertest.Policy) string
		want       providertest.Outcome
		wantFamily string
		wantReuse  int
		// check looks at the ledger after the redemption.
		check func(t *testing.T, e env, red providertest.Redemption, presented string)
	}{
		{
			name:  "unknown",
			setup: func(e env, _ providertest.Policy) string { e.l.Seed("f", 0); return "rt_never" },
			want:  providertest.Unknown,
		},
		{
			name:  "empty",
			setup: func(e env, _ providertest.Policy) string { e.l.Seed("f", 0); return "" },
			want:  providertest.Unknown,
		},
		{
			name: "an access token is not a refresh token",
			setup: func(e env, _ providertest.Policy) string {
				at, _ := e.l.Start("f", 0)
				return at
			},
			want: providertest.Unknown,
		},
		{
			name:   "another kind is unknown and left untouched",
			policy: providertest.Policy{Kind: 2},
			setup:  func(e env, _ providertest.Policy) string { return e.l.Seed("f", 1) },
			want:   providertest.Unknown,
			check: func(t *testing.T, e env, _ providertest.Redemption, presented string) {
				if latest, ok := e.l.Latest("f"); !ok || latest != presented {
					t.Errorf("Latest = %q, %v; want the presented token still live", latest, ok)
				}
				if red := e.l.Redeem(presented, providertest.Policy{Kind: 1}); red.Outcome != providertest.Granted {
					t.Errorf("redeemed for its own kind: %v, want granted", red.Outcome)
				}
			},
		},
		{
			name:   "another kind before reuse",
			policy: providertest.Policy{Kind: 2},
			setup: func(e env, _ providertest.Policy) string {
				rt, _ := used(e, providertest.Policy{Kind: 1})
				return rt
			},
			want: providertest.Unknown,
		},
		{
			name:       "reuse revoking the family",
			policy:     providertest.Policy{RevokeOnReuse: true},
			setup:      func(e env, p providertest.Policy) string { rt, _ := used(e, p); return rt },
			want:       providertest.Reused,
			wantFamily: "f",
			wantReuse:  1,
			check: func(t *testing.T, e env, _ providertest.Redemption, _ string) {
				if !e.l.Revoked("f") {
					t.Error("the family is not revoked")
				}
				if latest, ok := e.l.Latest("f"); ok {
					t.Errorf("Latest = %q after revocation, want none", latest)
				}
			},
		},
		{
			name:       "reuse keeping the family",
			setup:      func(e env, p providertest.Policy) string { rt, _ := used(e, p); return rt },
			want:       providertest.Reused,
			wantFamily: "f",
			wantReuse:  1,
			check: func(t *testing.T, e env, _ providertest.Redemption, _ string) {
				if e.l.Revoked("f") {
					t.Error("the family is revoked")
				}
				latest, ok := e.l.Latest("f")
				if !ok {
					t.Fatal("no live token after reuse without revocation")
				}
				if red := e.l.Redeem(latest, providertest.Policy{}); red.Outcome != providertest.Granted {
					t.Errorf("the successor: %v, want granted", red.Outcome)
				}
			},
		},
		{
			name: "reuse before revoked",
			setup: func(e env, p providertest.Policy) string {
				rt, _ := used(e, p)
				e.l.RevokeFamily("f")
				return rt
			},
			want:       providertest.Reused,
			wantFamily: "f",
			wantReuse:  1,
		},
		{
			name: "reuse before expired",
			opts: providertest.Options{RefreshLifetime: time.Hour},
			setup: func(e env, p providertest.Policy) string {
				rt, _ := used(e, p)
				e.c.advance(2 * time.Hour)
				return rt
			},
			want:       providertest.Reused,
			wantFamily: "f",
			wantReuse:  1,
		},
		{
			name: "revoked by RevokeFamily, which is not reuse",
			setup: func(e env, _ providertest.Policy) string {
				rt := e.l.Seed("f", 0)
				if !e.l.RevokeFamily("f") {
					panic("RevokeFamily found no family")
				}
				return rt
			},
			want:       providertest.Revoked,
			wantFamily: "f",
		},
		{
			name: "revoked by seeding the name again",
			setup: func(e env, _ providertest.Policy) string {
				rt := e.l.Seed("f", 0)
				e.l.Seed("f", 0)
				return rt
			},
			want:       providertest.Revoked,
			wantFamily: "f",
			check: func(t *testing.T, e env, _ providertest.Redemption, _ string) {
				// The newest family lives on.
				if e.l.Revoked("f") {
					t.Error("the newest family is revoked")
				}
				if got := e.l.Families()["f"]; got != 2 {
					t.Errorf("Families[f] = %d, want 2", got)
				}
			},
		},
		{
			name: "revoked by a successor's reuse",
			setup: func(e env, p providertest.Policy) string {
				rt, successor := used(e, p)
				e.l.Redeem(rt, providertest.Policy{RevokeOnReuse: true})
				return successor
			},
			want:       providertest.Revoked,
			wantFamily: "f",
			wantReuse:  1,
		},
		{
			name: "revoked before expired",
			opts: providertest.Options{RefreshLifetime: time.Hour},
			setup: func(e env, _ providertest.Policy) string {
				rt := e.l.Seed("f", 0)
				e.l.RevokeFamily("f")
				e.c.advance(2 * time.Hour)
				return rt
			},
			want:       providertest.Revoked,
			wantFamily: "f",
		},
		{
			name: "expired at its lifetime",
			opts: providertest.Options{RefreshLifetime: time.Hour},
			setup: func(e env, _ providertest.Policy) string {
				rt := e.l.Seed("f", 0)
				e.c.advance(time.Hour)
				return rt
			},
			want:       providertest.Expired,
			wantFamily: "f",
			check: func(t *testing.T, e env, red providertest.Redemption, _ string) {
				if want := e.c.now; !red.ExpiresAt.Equal(want) {
					t.Errorf("ExpiresAt = %v, want %v", red.ExpiresAt, want)
				}
				if latest, ok := e.l.Latest("f"); ok {
					t.Errorf("Latest = %q, want none: the live token expired", latest)
				}
				if e.l.Revoked("f") {
					t.Error("expiry revoked the family")
				}
			},
		},
		{
			name: "granted just before expiry",
			opts: providertest.Options{RefreshLifetime: time.Hour},
			setup: func(e env, _ providertest.Policy) string {
				rt := e.l.Seed("f", 0)
				e.c.advance(time.Hour - time.Nanosecond)
				return rt
			},
			want:       providertest.Granted,
			wantFamily: "f",
			check: func(t *testing.T, e env, red providertest.Redemption, _ string) {
				if want := e.c.now.Add(time.Nanosecond); !red.ExpiresAt.Equal(want) {
					t.Errorf("ExpiresAt = %v, want the presented token's %v", red.ExpiresAt, want)
				}
				if got := e.l.Inspect(red.Refresh).ExpiresAt; !got.Equal(e.c.now.Add(time.Hour)) {
					t.Errorf("the successor expires at %v, want a lifetime from now", got)
				}
			},
		},
		{
			name:       "granted: rotated",
			setup:      func(e env, _ providertest.Policy) string { return e.l.Seed("f", 0) },
			want:       providertest.Granted,
			wantFamily: "f",
			check: func(t *testing.T, e env, red providertest.Redemption, presented string) {
				if !prefixed(red.Access, accessPrefix) || !prefixed(red.Refresh, refreshPrefix) {
					t.Fatalf("minted %q, %q; want an access and a refresh token", red.Access, red.Refresh)
				}
				if !red.ExpiresAt.IsZero() {
					t.Errorf("ExpiresAt = %v, want zero (no lifetime)", red.ExpiresAt)
				}
				if latest, ok := e.l.Latest("f"); !ok || latest != red.Refresh {
					t.Errorf("Latest = %q, %v; want the successor", latest, ok)
				}
				if e.l.Inspect(presented).Active {
					t.Error("the presented token is still active")
				}
				if !e.l.Inspect(red.Refresh).Active || !e.l.ValidAccessToken(red.Access) {
					t.Error("the minted tokens are not active")
				}
				if again := e.l.Redeem(presented, providertest.Policy{}); again.Outcome != providertest.Reused {
					t.Errorf("presented again: %v, want reused", again.Outcome)
				}
			},
		},
		{
			name:       "granted: a started family",
			setup:      func(e env, _ providertest.Policy) string { _, rt := e.l.Start("f", 0); return rt },
			want:       providertest.Granted,
			wantFamily: "f",
		},
		{
			name:       "granted: an older family kept alive",
			opts:       providertest.Options{KeepFamilies: true},
			setup:      func(e env, _ providertest.Policy) string { rt := e.l.Seed("f", 0); e.l.Seed("f", 0); return rt },
			want:       providertest.Granted,
			wantFamily: "f",
			check: func(t *testing.T, e env, red providertest.Redemption, _ string) {
				// Latest looks at the newest family, not the one just rotated.
				if latest, ok := e.l.Latest("f"); !ok || latest == red.Refresh {
					t.Errorf("Latest = %q, %v; want the newest family's token", latest, ok)
				}
			},
		},
		{
			name:       "granted without rotation",
			policy:     providertest.Policy{NoRotation: true},
			opts:       providertest.Options{RefreshLifetime: time.Hour},
			setup:      func(e env, _ providertest.Policy) string { return e.l.Seed("f", 0) },
			want:       providertest.Granted,
			wantFamily: "f",
			check: func(t *testing.T, e env, red providertest.Redemption, presented string) {
				if red.Refresh != "" || !prefixed(red.Access, accessPrefix) {
					t.Errorf("minted %q, %q; want an access token only", red.Access, red.Refresh)
				}
				if want := e.c.now.Add(time.Hour); !red.ExpiresAt.Equal(want) {
					t.Errorf("ExpiresAt = %v, want %v", red.ExpiresAt, want)
				}
				if latest, ok := e.l.Latest("f"); !ok || latest != presented {
					t.Errorf("Latest = %q, %v; want the presented token", latest, ok)
				}
				if !e.l.Inspect(presented).Active {
					t.Error("the presented token is no longer active")
				}
				if again := e.l.Redeem(presented, providertest.Policy{NoRotation: true}); again.Outcome != providertest.Granted {
					t.Errorf("presented again: %v, want granted", again.Outcome)
				}
				if e.l.ReuseDetections() != 0 {
					t.Errorf("ReuseDetections = %d, want 0", e.l.ReuseDetections())
				}
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := env{c: newClock()}
			opts := tc.opts
			opts.Now = e.c.Now
			e.l = newLedger(opts)
			presented := tc.setup(e, tc.policy)
			processedBefore, refreshesBefore := e.l.Processed(presented), e.l.Refreshes()

			red := e.l.Redeem(presented, tc.policy)
			if red.Outcome != tc.want {
				t.Fatalf("Outcome = %v, want %v", red.Outcome, tc.want)
			}
			if red.Family != tc.wantFamily {
				t.Errorf("Family = %q, want %q", red.Family, tc.wantFamily)
			}
			if tc.want != providertest.Granted && (red.Access != "" || red.Refresh != "") {
				t.Errorf("minted %q, %q without a grant", red.Access, red.Refresh)
			}
			if got := e.l.ReuseDetections(); got != tc.wantReuse {
				t.Errorf("ReuseDetections = %d, want %d", got, tc.wantReuse)
			}
			// Processed counts every outcome; Refreshes only grants.
			if got := e.l.Processed(presented); got != processedBefore+1 {
				t.Errorf("Processed = %d, want %d", got, processedBefore+1)
			}
			wantRefreshes := refreshesBefore
			if tc.want == providertest.Granted {
				wantRefreshes++
			}
			if got := e.l.Refreshes(); got != wantRefreshes {
				t.Errorf("Refreshes = %d, want %d", got, wantRefreshes)
			}
			// Redeem is not a presentation: that is counted on arrival.
			if got := e.l.TotalPresentations(); got != 0 {
				t.Errorf("TotalPresentations = %d, want 0", got)
			}
			if tc.check != nil {
				tc.check(t, e, red, presented)
			}
		})
	}
}

// TestLedgerReuseRevokesSuccessor: with RevokeOnReuse, reuse takes the live successor
// and the family's access tokens down too.
func TestLedgerReuseRevokesSuccessor(t *testing.T) {
	l := newLedger(providertest.Options{})
	first := l.Seed("f", 0)
	granted := l.Redeem(first, providertest.Policy{RevokeOnReuse: true})
	if red := l.Redeem(first, providertest.Policy{RevokeOnReuse: true}); red.Outcome != providertest.Reused {
		t.Fatalf("reuse: %v", red.Outcome)
	}
	if l.Inspect(granted.Refresh).Active {
		t.Error("the successor is still active")
	}
	if l.ValidAccessToken(granted.Access) {
		t.Error("the family's access token is still valid")
	}
	if red := l.Redeem(granted.Refresh, providertest.Policy{RevokeOnReuse: true}); red.Outcome != providertest.Revoked {
		t.Errorf("the successor: %v, want revoked", red.Outcome)
	}
	// Re-authorization revives the name with a new family.
	fresh := l.Seed("f", 0)
	if l.Revoked("f") {
		t.Error("the new family is revoked")
	}
	if red := l.Redeem(fresh, providertest.Policy{RevokeOnReuse: true}); red.Outcome != providertest.Granted {
		t.Errorf("the new family's token: %v, want granted", red.Outcome)
	}
}

// TestLedgerConcurrentRedeem: of many concurrent redemptions of one token exactly one
// is granted; every other one is reuse.
func TestLedgerConcurrentRedeem(t *testing.T) {
	const n = 32
	l := newLedger(providertest.Options{})
	rt := l.Seed("f", 0)
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		outcomes = map[providertest.Outcome]int{}
	)
	for range n {
		wg.Go(func() {
			leave := l.Arrive("/token", rt, nil)
			defer leave()
			red := l.Redeem(rt, providertest.Policy{})
			mu.Lock()
			outcomes[red.Outcome]++
			mu.Unlock()
		})
	}
	wg.Wait()
	if outcomes[providertest.Granted] != 1 || outcomes[providertest.Reused] != n-1 {
		t.Errorf("outcomes %v, want 1 granted and %d reused", outcomes, n-1)
	}
	if l.Refreshes() != 1 || l.ReuseDetections() != n-1 || l.Processed(rt) != n || l.Presentations(rt) != n {
		t.Errorf("Refreshes %d, ReuseDetections %d, Processed %d, Presentations %d; want 1, %d, %d, %d",
			l.Refreshes(), l.ReuseDetections(), l.Processed(rt), l.Presentations(rt), n-1, n, n)
	}
	if l.InFlight() != 0 {
		t.Errorf("InFlight = %d after every request left", l.InFlight())
	}
}

// TestLedgerCounting: presentations are counted on arrival, processing by Redeem; the
// difference is what never reached the grant logic.
func TestLedgerCounting(t *testing.T) {
	l := newLedger(providertest.Options{})
	rt := l.Seed("f", 0)

	alsoRan := 0
	also := func() { alsoRan++ }
	// A request turned away before the grant (a BeforeGrant fault).
	l.Arrive("/token", rt, also)()
	// The retry, processed.
	leave := l.Arrive("/token", rt, also)
	next := l.Redeem(rt, providertest.Policy{}).Refresh
	leave()
	// A request without a refresh token (a login), one with the successor, a question.
	l.Arrive("/login", "", also)()
	l.Arrive("/token", next, also)()
	l.Count("/introspect", also)
	// A token Redeem acts on without its arrival being counted.
	l.Redeem("rt_never", providertest.Policy{})

	for _, c := range []struct {
		what      string
		got, want int
	}{
		{"also ran", alsoRan, 5},
		{"Requests(/token)", l.Requests("/token"), 3},
		{"Requests(/login)", l.Requests("/login"), 1},
		{"Requests(/introspect)", l.Requests("/introspect"), 1},
		{"Requests(/none)", l.Requests("/none"), 0},
		{"TotalPresentations", l.TotalPresentations(), 3},
		{"Presentations(seeded)", l.Presentations(rt), 2},
		{"Presentations(successor)", l.Presentations(next), 1},
		{"Presentations(never)", l.Presentations("rt_never"), 0},
		{"Presentations(\"\")", l.Presentations(""), 0},
		{"MaxPresentations", l.MaxPresentations(), 2},
		{"Processed(seeded)", l.Processed(rt), 1},
		{"Processed(successor)", l.Processed(next), 0},
		{"Processed(never)", l.Processed("rt_never"), 1},
		{"MaxProcessed", l.MaxProcessed(), 1},
		{"Refreshes", l.Refreshes(), 1},
		{"ReuseDetections", l.ReuseDetections(), 0},
		{"InFlight", l.InFlight(), 0},
		// Count puts nothing in flight; the Arrives never overlapped.
		{"MaxConcurrent", l.MaxConcurrent(), 1},
		{"MaxConcurrentFor(f)", l.MaxConcurrentFor("f"), 1},
	} {
		if c.got != c.want {
			t.Errorf("%s = %d, want %d", c.what, c.got, c.want)
		}
	}

	// Presenting the used token again is reuse: Processed above 1.
	l.Redeem(rt, providertest.Policy{})
	if l.MaxProcessed() != 2 || l.ReuseDetections() != 1 {
		t.Errorf("after reuse MaxProcessed %d, ReuseDetections %d; want 2, 1", l.MaxProcessed(), l.ReuseDetections())
	}
}

func TestLedgerEmptyCounters(t *testing.T) {
	l := newLedger(providertest.Options{})
	for _, got := range []int{l.TotalPresentations(), l.MaxPresentations(), l.MaxProcessed(), l.Refreshes(),
		l.ReuseDetections(), l.InFlight(), l.MaxConcurrent(), l.MaxConcurrentFor("f"), l.Requests("/token")} {
		if got != 0 {
			t.Errorf("a new ledger counts %d, want 0", got)
		}
	}
	if len(l.Families()) != 0 || l.Revoked("f") || l.RevokeFamily("f") {
		t.Error("a new ledger has a family")
	}
	if rt, ok := l.Latest("f"); ok {
		t.Errorf("Latest = %q on a new ledger", rt)
	}
}

// TestLedgerInFlight: a request is in flight from Arrive until leave, for its family
// when the token it carried on arrival belongs to one.
func TestLedgerInFlight(t *testing.T) {
	l := newLedger(providertest.Options{})
	a, b := l.Seed("a", 0), l.Seed("b", 0)

	leaveA1 := l.Arrive("/token", a, nil)
	leaveA2 := l.Arrive("/token", a, nil)
	leaveB := l.Arrive("/token", b, nil)
	leaveNone := l.Arrive("/login", "", nil)
	leaveUnknown := l.Arrive("/token", "rt_never", nil)
	if l.InFlight() != 5 || l.MaxConcurrent() != 5 {
		t.Errorf("InFlight %d, MaxConcurrent %d; want 5, 5", l.InFlight(), l.MaxConcurrent())
	}
	leaveA1()
	leaveA2()
	leaveB()
	leaveNone()
	leaveUnknown()
	if l.InFlight() != 0 {
		t.Errorf("InFlight = %d after every request left", l.InFlight())
	}

	// A rotated family: a request carrying the used token still counts for it.
	next := l.Redeem(a, providertest.Policy{}).Refresh
	leaveOld := l.Arrive("/token", a, nil)
	leaveNext := l.Arrive("/token", next, nil)
	leaveNext2 := l.Arrive("/token", next, nil)
	leaveOld()
	leaveNext()
	leaveNext2()
	// A lone request later leaves the maximum as it was.
	l.Arrive("/token", next, nil)()

	for _, c := range []struct {
		what      string
		got, want int
	}{
		{"MaxConcurrent", l.MaxConcurrent(), 5},
		{"MaxConcurrentFor(a)", l.MaxConcurrentFor("a"), 3},
		{"MaxConcurrentFor(b)", l.MaxConcurrentFor("b"), 1},
		{"MaxConcurrentFor(none)", l.MaxConcurrentFor("none"), 0},
		{"MaxConcurrentFor(\"\")", l.MaxConcurrentFor(""), 0},
		{"InFlight", l.InFlight(), 0},
	} {
		if c.got != c.want {
			t.Errorf("%s = %d, want %d", c.what, c.got, c.want)
		}
	}
}

// TestLedgerConcurrentArrivals: n requests of one family that are all in flight at once
// are counted as n concurrent, from any number of goroutines.
func TestLedgerConcurrentArrivals(t *testing.T) {
	const n = 16
	l := newLedger(providertest.Options{})
	rt := l.Seed("f", 0)
	var arrived, wg sync.WaitGroup
	arrived.Add(n)
	for range n {
		wg.Go(func() {
			leave := l.Arrive("/token", rt, nil)
			arrived.Done()
			arrived.Wait() // every request is in flight now
			leave()
		})
	}
	wg.Wait()
	if l.MaxConcurrentFor("f") != n || l.MaxConcurrent() != n || l.InFlight() != 0 {
		t.Errorf("MaxConcurrentFor %d, MaxConcurrent %d, InFlight %d; want %d, %d, 0",
			l.MaxConcurrentFor("f"), l.MaxConcurrent(), l.InFlight(), n, n)
	}
	if l.Requests("/token") != n || l.Presentations(rt) != n || l.MaxPresentations() != n {
		t.Errorf("Requests %d, Presentations %d, MaxPresentations %d; want %d each",
			l.Requests("/token"), l.Presentations(rt), l.MaxPresentations(), n)
	}
}

func TestLedgerInspectCountsNothing(t *testing.T) {
	l := newLedger(providertest.Options{})
	at, rt := l.Start("f", 0)
	for _, token := range []string{at, rt, "rt_never", ""} {
		l.Inspect(token)
		l.ValidAccessToken(token)
	}
	if l.TotalPresentations() != 0 || l.MaxProcessed() != 0 || l.Requests("") != 0 || l.InFlight() != 0 {
		t.Error("Inspect or ValidAccessToken counted something")
	}
	if !l.Inspect(rt).Active || !l.ValidAccessToken(at) {
		t.Error("Inspect or ValidAccessToken changed a token")
	}
}

func TestLedgerInspectRefresh(t *testing.T) {
	for _, tc := range []struct {
		name string
		// token prepares the ledger and clock and returns the token inspected.
		token  func(l *providertest.Ledger, c *clock) string
		active bool
	}{
		{"seeded", func(l *providertest.Ledger, _ *clock) string { return l.Seed("f", 0) }, true},
		{"used", func(l *providertest.Ledger, _ *clock) string {
			rt := l.Seed("f", 0)
			l.Redeem(rt, providertest.Policy{})
			return rt
		}, false},
		{"the successor", func(l *providertest.Ledger, _ *clock) string {
			return l.Redeem(l.Seed("f", 0), providertest.Policy{}).Refresh
		}, true},
		{"expired", func(l *providertest.Ledger, c *clock) string {
			rt := l.Seed("f", 0)
			c.advance(time.Hour)
			return rt
		}, false},
		{"revoked", func(l *providertest.Ledger, _ *clock) string {
			rt := l.Seed("f", 0)
			l.RevokeFamily("f")
			return rt
		}, false},
	} {
		c := newClock()
		l := newLedger(providertest.Options{Now: c.Now, RefreshLifetime: time.Hour})
		minted := c.now
		token := tc.token(l, c)
		want := providertest.Token{Refresh: true, Family: "f", Active: tc.active, ExpiresAt: minted.Add(time.Hour)}
		if got := l.Inspect(token); got != want {
			t.Errorf("%s: Inspect = %+v, want %+v", tc.name, got, want)
		}
	}
}

func TestLedgerAccessTokens(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts providertest.Options
		// run acts on the ledger and returns the access token checked, and whether it
		// should be valid.
		run func(l *providertest.Ledger, c *clock) (token string, valid bool)
	}{
		{
			name: "minted by Start",
			run:  func(l *providertest.Ledger, _ *clock) (string, bool) { at, _ := l.Start("f", 0); return at, true },
		},
		{
			name: "minted by Redeem",
			run: func(l *providertest.Ledger, _ *clock) (string, bool) {
				return l.Redeem(l.Seed("f", 0), providertest.Policy{}).Access, true
			},
		},
		{
			name: "a refresh token is not an access token",
			run:  func(l *providertest.Ledger, _ *clock) (string, bool) { _, rt := l.Start("f", 0); return rt, false },
		},
		{
			name: "never issued",
			run:  func(*providertest.Ledger, *clock) (string, bool) { return "at_never", false },
		},
		{
			name: "never expires without a lifetime",
			run: func(l *providertest.Ledger, c *clock) (string, bool) {
				at, _ := l.Start("f", 0)
				c.advance(100 * 365 * 24 * time.Hour)
				return at, true
			},
		},
		{
			name: "valid until its lifetime",
			opts: providertest.Options{AccessLifetime: time.Minute},
			run: func(l *providertest.Ledger, c *clock) (string, bool) {
				at, _ := l.Start("f", 0)
				c.advance(time.Minute - time.Nanosecond)
				return at, true
			},
		},
		{
			name: "expired at its lifetime",
			opts: providertest.Options{AccessLifetime: time.Minute},
			run: func(l *providertest.Ledger, c *clock) (string, bool) {
				at, _ := l.Start("f", 0)
				c.advance(time.Minute)
				return at, false
			},
		},
		{
			name: "its family revoked",
			run: func(l *providertest.Ledger, _ *clock) (string, bool) {
				at, _ := l.Start("f", 0)
				l.RevokeFamily("f")
				return at, false
			},
		},
		{
			name: "its family replaced by a new one",
			run: func(l *providertest.Ledger, _ *clock) (string, bool) {
				at, _ := l.Start("f", 0)
				l.Start("f", 0)
				return at, false
			},
		},
		{
			name: "its family kept beside a new one",
			opts: providertest.Options{KeepFamilies: true},
			run: func(l *providertest.Ledger, _ *clock) (string, bool) {
				at, _ := l.Start("f", 0)
				l.Start("f", 0)
				return at, true
			},
		},
		{
			name: "an earlier one stays valid after a refresh",
			run: func(l *providertest.Ledger, _ *clock) (string, bool) {
				at, rt := l.Start("f", 0)
				l.Redeem(rt, providertest.Policy{})
				return at, true
			},
		},
		{
			name: "an earlier one is retired by a refresh under RetireAccess",
			opts: providertest.Options{RetireAccess: true},
			run: func(l *providertest.Ledger, _ *clock) (string, bool) {
				at, rt := l.Start("f", 0)
				l.Redeem(rt, providertest.Policy{})
				return at, false
			},
		},
		{
			name: "the newest one is valid under RetireAccess",
			opts: providertest.Options{RetireAccess: true},
			run: func(l *providertest.Ledger, _ *clock) (string, bool) {
				_, rt := l.Start("f", 0)
				return l.Redeem(rt, providertest.Policy{}).Access, true
			},
		},
		{
			name: "RetireAccess retires only its own family's",
			opts: providertest.Options{RetireAccess: true},
			run: func(l *providertest.Ledger, _ *clock) (string, bool) {
				at, _ := l.Start("f", 0)
				_, rt := l.Start("g", 0)
				l.Redeem(rt, providertest.Policy{})
				return at, true
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newClock()
			opts := tc.opts
			opts.Now = c.Now
			l := newLedger(opts)
			token, valid := tc.run(l, c)
			if got := l.ValidAccessToken(token); got != valid {
				t.Errorf("ValidAccessToken = %v, want %v", got, valid)
			}
			if info := l.Inspect(token); info.Access && info.Active != valid {
				t.Errorf("Inspect.Active = %v, want %v", info.Active, valid)
			}
		})
	}
}

func TestLedgerSetAccessLifetime(t *testing.T) {
	c := newClock()
	l := newLedger(providertest.Options{Now: c.Now, AccessLifetime: time.Minute})
	before, _ := l.Start("f", 0)
	l.SetAccessLifetime(time.Hour)
	after, _ := l.Start("g", 0)
	l.SetAccessLifetime(0)
	forever, _ := l.Start("h", 0)

	for _, tc := range []struct {
		token string
		want  time.Time
	}{
		{before, c.now.Add(time.Minute)}, // minted earlier: keeps its lifetime
		{after, c.now.Add(time.Hour)},
		{forever, time.Time{}}, // <= 0: never expires
	} {
		if got := l.Inspect(tc.token).ExpiresAt; !got.Equal(tc.want) {
			t.Errorf("%s expires at %v, want %v", l.Inspect(tc.token).Family, got, tc.want)
		}
	}
	c.advance(2 * time.Minute)
	if l.ValidAccessToken(before) || !l.ValidAccessToken(after) || !l.ValidAccessToken(forever) {
		t.Error("validity does not follow each token's own lifetime")
	}
}

func TestLedgerLatestAndRevoked(t *testing.T) {
	c := newClock()
	l := newLedger(providertest.Options{Now: c.Now, RefreshLifetime: time.Hour, KeepFamilies: true})
	old := l.Seed("f", 0)
	newest := l.Seed("f", 0)
	if latest, ok := l.Latest("f"); !ok || latest != newest {
		t.Errorf("Latest = %q, %v; want the newest family's token", latest, ok)
	}
	if got := l.Families()["f"]; got != 2 {
		t.Errorf("Families[f] = %d, want 2", got)
	}
	// Revoked and Latest look at the newest family only: revoking every family of the
	// name shows, an older family's state does not.
	l.Redeem(old, providertest.Policy{})
	l.Redeem(old, providertest.Policy{RevokeOnReuse: true})
	if l.Revoked("f") {
		t.Error("an older family's revocation shows as the name's")
	}
	if !l.RevokeFamily("f") || !l.Revoked("f") {
		t.Error("RevokeFamily did not revoke the newest family")
	}
	if latest, ok := l.Latest("f"); ok {
		t.Errorf("Latest = %q after RevokeFamily, want none", latest)
	}
	if red := l.Redeem(newest, providertest.Policy{}); red.Outcome != providertest.Revoked {
		t.Errorf("after RevokeFamily: %v, want revoked", red.Outcome)
	}
	if l.ReuseDetections() != 1 {
		t.Errorf("ReuseDetections = %d, want 1 (RevokeFamily is not reuse)", l.ReuseDetections())
	}
	if l.RevokeFamily("g") {
		t.Error("RevokeFamily reported a family that never existed")
	}
}

func TestFingerprint(t *testing.T) {
	hash := func(s string) string { sum := sha256.Sum256([]byte(s)); return hex.EncodeToString(sum[:])[:12] }
	for _, tc := range []struct {
		token    string
		prefixes []string
		want     string
	}{
		{"", nil, "-"},
		{"", []string{"rt_"}, "-"},
		{"secret", nil, hash("secret")},
		{"rt_secret", []string{"at_"}, hash("rt_secret")},
		// The prefix is kept, the hash is of the whole token.
		{"rt_secret", []string{"at_", "rt_"}, "rt_" + hash("rt_secret")},
		// A token that is only the prefix is hashed as it is.
		{"rt_", []string{"rt_"}, hash("rt_")},
		// The last matching prefix wins.
		{"rt_x_secret", []string{"rt_", "rt_x_"}, "rt_x_" + hash("rt_x_secret")},
		{"rt_x_secret", []string{"rt_x_", "rt_"}, "rt_" + hash("rt_x_secret")},
	} {
		if got := providertest.Fingerprint(tc.token, tc.prefixes...); got != tc.want {
			t.Errorf("Fingerprint(%q, %q) = %q, want %q", tc.token, tc.prefixes, got, tc.want)
		}
	}
	if providertest.Fingerprint("rt_a", "rt_") == providertest.Fingerprint("rt_b", "rt_") {
		t.Error("two tokens share a fingerprint")
	}
}

func TestRandomStringAndPrefixed(t *testing.T) {
	seen := map[string]bool{}
	for range 100 {
		s := providertest.RandomString()
		raw, err := base64.RawURLEncoding.DecodeString(s)
		if err != nil || len(raw) != 32 {
			t.Fatalf("RandomString = %q: %d bytes, %v; want 32 bytes of unpadded base64url", s, len(raw), err)
		}
		if seen[s] {
			t.Fatalf("RandomString repeated %q", s)
		}
		seen[s] = true
	}
	mint := providertest.Prefixed("rt_")
	a, b := mint(), mint()
	if !strings.HasPrefix(a, "rt_") || len(a) != len("rt_")+43 || a == b {
		t.Errorf("Prefixed minted %q, %q; want distinct rt_ tokens of 43 random characters", a, b)
	}
}
