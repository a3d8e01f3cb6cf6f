package chathub

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/tokenwarden/tokenwarden/internal/provider"
	"github.com/tokenwarden/tokenwarden/internal/provider/chathub/chathubtest"
)

// TestLoginsOfOneCompanyAreSpacedAtTheFake: three logins of one company asked for at
// once reach a ChatHub that throttles logins closer than a second (as seed 003 asks
// clients to space them) one by one, a second or more apart, and none is throttled.
// Another company's login does not wait for them.
func TestLoginsOfOneCompanyAreSpacedAtTheFake(t *testing.T) {
	if testing.Short() {
		t.Skip("waits about two seconds of real time")
	}
	fake := chathubtest.New(chathubtest.Options{MinLoginInterval: MinLoginInterval})
	base := fake.Start()
	t.Cleanup(fake.Close)
	fake.AddCompany(testLogin, testPassword)
	fake.AddCompany("other-company", testPassword)
	c := NewCompany(nil, nil)
	cfg := provider.Config{BaseURL: base}

	start := time.Now()
	var wg sync.WaitGroup
	errs := make([]error, 3)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = c.Refresh(context.Background(), cfg, grant())
		}()
	}
	time.Sleep(100 * time.Millisecond) // the three are queued by now
	other := time.Now()
	if _, err := c.Refresh(context.Background(), cfg, provider.Grant{Username: "other-company", Password: testPassword}); err != nil {
		t.Fatalf("other company: %v", err)
	}
	if waited := time.Since(other); waited > 500*time.Millisecond {
		t.Errorf("another company's login waited %s behind this one's", waited)
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("login %d: %v", i, err)
		}
	}
	arrivals := fake.LoginArrivals(testLogin)
	slices.SortFunc(arrivals, func(a, b time.Time) int { return a.Compare(b) })
	if len(arrivals) != 3 || fake.Throttled() != 0 || fake.Logins() != 4 {
		t.Fatalf("%d login requests, %d throttled, %d logins; want 3 requests of this company, none throttled",
			len(arrivals), fake.Throttled(), fake.Logins())
	}
	for i := 1; i < len(arrivals); i++ {
		if gap := arrivals[i].Sub(arrivals[i-1]); gap < MinLoginInterval {
			t.Errorf("logins %d and %d reached ChatHub %s apart, want at least %s", i-1, i, gap, MinLoginInterval)
		}
	}
	if took := time.Since(start); took < 2*MinLoginInterval {
		t.Errorf("three spaced logins took %s, want at least %s", took, 2*MinLoginInterval)
	}
}

// TestTheFakeThrottlesAnUnspacedClient: the fake really enforces the spacing the test
// above relies on, so a client that did not space its logins would fail it.
func TestTheFakeThrottlesAnUnspacedClient(t *testing.T) {
	fake := chathubtest.New(chathubtest.Options{MinLoginInterval: MinLoginInterval})
	base := fake.Start()
	t.Cleanup(fake.Close)
	fake.AddCompany(testLogin, testPassword)
	cfg := provider.Config{BaseURL: base}
	// A new adapter per login: nothing spaces them.
	if _, err := NewCompany(nil, nil).Refresh(context.Background(), cfg, grant()); err != nil {
		t.Fatal(err)
	}
	_, err := NewCompany(nil, nil).Refresh(context.Background(), cfg, grant())
	if pe := asError(t, err); pe.Kind != provider.Transient || pe.Code != "http_429" || pe.RetryAfter != time.Second {
		t.Fatalf("unspaced second login: %v (retry after %s), want a transient 429 asking for a second", err, pe.RetryAfter)
	}
	if fake.Throttled() != 1 || fake.Logins() != 1 {
		t.Fatalf("throttled %d logins %d", fake.Throttled(), fake.Logins())
	}
}

// manualTime is a clock that only sleep moves.
type manualTime struct {
	mu     sync.Mutex
	now    time.Time
	slept  []time.Duration
	failAt int // sleep number (1-based) that fails as if ctx ended; 0: none
}

func (m *manualTime) clock() time.Time {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.now
}

func (m *manualTime) sleep(_ context.Context, d time.Duration) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.slept = append(m.slept, d)
	if len(m.slept) == m.failAt {
		return context.Canceled
	}
	m.now = m.now.Add(d)
	return nil
}

func (m *manualTime) advance(d time.Duration) {
	m.mu.Lock()
	m.now = m.now.Add(d)
	m.mu.Unlock()
}

func TestSpacerTurns(t *testing.T) {
	gap := MinLoginInterval + loginSlack
	mt := &manualTime{now: fixedNow}
	s := &spacer{clock: mt.clock, sleep: mt.sleep}
	a, b := companyKey("https://x/api/company/get-token", "a"), companyKey("https://x/api/company/get-token", "b")
	ctx := context.Background()

	for i := 0; i < 3; i++ {
		if err := s.wait(ctx, a); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.wait(ctx, b); err != nil {
		t.Fatal(err)
	}
	// The first login of a goes at once, each next one a gap after the one before; b's
	// first login does not wait for a.
	if want := []time.Duration{gap, gap}; !slices.Equal(mt.slept, want) {
		t.Fatalf("slept %v, want %v", mt.slept, want)
	}

	// After a quiet spell, no wait, and the finished turns are forgotten.
	mt.advance(time.Minute)
	if err := s.wait(ctx, a); err != nil || len(mt.slept) != 2 {
		t.Fatalf("after a minute: err %v, slept %v", err, mt.slept)
	}
	if len(s.next) != 1 {
		t.Fatalf("%d companies remembered, want 1 (only a, whose turn is still running)", len(s.next))
	}

	// A deadline before the turn: fail at once with a retryable error, keep no turn.
	dctx, cancel := context.WithDeadline(ctx, mt.clock().Add(gap/2))
	defer cancel()
	err := s.wait(dctx, a)
	var pe *provider.Error
	if !errors.As(err, &pe) || pe.Kind != provider.Transient || pe.Code != CodeLoginSpacing || pe.RetryAfter != gap {
		t.Fatalf("deadline before the turn: %v", err)
	}
	if len(mt.slept) != 2 || !s.next[a].Equal(mt.clock().Add(gap)) {
		t.Fatalf("the refused login slept %v or kept a turn (next %s)", mt.slept, s.next[a])
	}

	// A wait cut short gives its turn back.
	mt.failAt = 3
	err = s.wait(ctx, a)
	if !errors.As(err, &pe) || pe.Code != CodeLoginSpacing || !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled wait: %v", err)
	}
	if !s.next[a].Equal(mt.clock().Add(gap)) {
		t.Fatalf("the cancelled login kept its turn: next %s", s.next[a])
	}
}
