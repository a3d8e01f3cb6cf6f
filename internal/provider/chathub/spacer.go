package chathub

import (
	"context"
	"crypto/sha256"
	"fmt"
	"sync"
	"time"

	"github.com/tokenwarden/tokenwarden/internal/provider"
)

// loginSlack is added to MinLoginInterval between two logins: the interval is what
// ChatHub must see between arrivals, and a first request slowed on the way would
// otherwise land less than a second before a second one that was not.
const loginSlack = 50 * time.Millisecond

// spacer keeps the logins of one company at least MinLoginInterval apart, however many
// credentials, retries or refresh-now signals ask for them: each login reserves the
// first free moment for its company and waits for it. The zero value is ready for use.
//
// It reads real time, not the adapter's injected clock: the spacing is what ChatHub sees
// on the wire, while the injected clock stands still in tests that check expiries.
type spacer struct {
	mu   sync.Mutex
	next map[[sha256.Size]byte]time.Time // company -> earliest moment for its next login

	// clock and sleep are replaced by tests; nil means time.Now and a context-aware timer.
	clock func() time.Time
	sleep func(ctx context.Context, d time.Duration) error
}

// companyKey names a company without keeping its login in memory in the clear: the
// endpoint tells two ChatHub installations apart, the login two companies.
func companyKey(endpoint, login string) [sha256.Size]byte {
	return sha256.Sum256([]byte(endpoint + "\x00" + login))
}

// wait returns when a login for company may go. When ctx ends first, or will end before
// the login's turn comes, it returns a Transient error that asks to retry after the wait,
// and the turn is given back.
func (s *spacer) wait(ctx context.Context, company [sha256.Size]byte) error {
	now := s.now()
	s.mu.Lock()
	if s.next == nil {
		s.next = map[[sha256.Size]byte]time.Time{}
	}
	for k, at := range s.next {
		// A company whose last turn is over needs no entry: the map stays as small as
		// the number of companies logging in right now.
		if !at.After(now) {
			delete(s.next, k)
		}
	}
	turn := now
	if at, ok := s.next[company]; ok && at.After(turn) {
		turn = at
	}
	delay := turn.Sub(now)
	if deadline, ok := ctx.Deadline(); ok && delay > 0 && deadline.Before(turn) {
		s.mu.Unlock()
		return spacingError(delay, nil)
	}
	s.next[company] = turn.Add(MinLoginInterval + loginSlack)
	s.mu.Unlock()
	if delay <= 0 {
		return nil
	}
	if err := s.pause(ctx, delay); err != nil {
		s.giveBack(company, turn)
		return spacingError(delay, err)
	}
	return nil
}

// giveBack releases the turn taken at turn, if no later login has queued behind it.
func (s *spacer) giveBack(company [sha256.Size]byte, turn time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.next[company].Equal(turn.Add(MinLoginInterval + loginSlack)) {
		s.next[company] = turn
	}
}

func spacingError(delay time.Duration, cause error) error {
	return &provider.Error{Kind: provider.Transient, Code: CodeLoginSpacing, RetryAfter: delay,
		Description: fmt.Sprintf("the login waits its turn: logins of one company are sent at least %s apart", MinLoginInterval),
		Err:         cause}
}

func (s *spacer) now() time.Time {
	if s.clock != nil {
		return s.clock()
	}
	return time.Now()
}

func (s *spacer) pause(ctx context.Context, d time.Duration) error {
	if s.sleep != nil {
		return s.sleep(ctx, d)
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
