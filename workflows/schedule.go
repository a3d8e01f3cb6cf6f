package workflows

import (
	"hash/fnv"
	"time"

	cred "github.com/tokenwarden/tokenwarden/internal/credential"
)

// NextWakeup decides what a credential does next and when. It is a pure function of
// the status, the timing policy and the current time, so the whole schedule is tested
// as a table (schedule_test.go) without a workflow in sight.
//
// The rules, in order:
//   - Retirement of an unused credential, and a reminder of an open incident, when
//     due before anything else.
//   - NEEDS_REAUTH waits for a human: ActionAwaitReseed at the zero time.
//   - A requested refresh (refresh-now) is due now.
//   - After failures, retry at LastAttemptAt + backoff(ConsecutiveFailures), but not
//     before the provider's Retry-After.
//   - Otherwise the earliest of the access-token refresh time (never before the time
//     the provider says a refresh yields a new token, AccessRenewableAt), the refresh token's
//     keep-alive time when the refresh token itself expires, and the next liveness
//     probe when probes are on. A probe-only credential (no refresh endpoint) has
//     only probes; a requested refresh probes it.
//
// A time in the past is returned as now: past-due work happens at once.
func NextWakeup(st Status, t Timing, now time.Time) (Action, time.Time) {
	action, at := nextLifecycleStep(st, t, now)
	// Retirement of an unused credential comes when it is due before anything else, and
	// wakes even a credential that waits for a human.
	if deadline, ok := UnusedDeadline(st, t); ok && (action == ActionAwaitReseed || deadline.Before(at)) {
		action, at = ActionUsageCheck, notBefore(deadline, now)
	}
	// A reminder of an open incident comes first when it is due first, and wakes even a
	// credential that otherwise waits for a human.
	if inc := st.Incident; inc != nil && !inc.NextReminderAt.IsZero() &&
		(action == ActionAwaitReseed || inc.NextReminderAt.Before(at)) {
		return ActionRemind, notBefore(inc.NextReminderAt, now)
	}
	return action, at
}

// UnusedDeadline is when a credential nobody uses is retired: the latest of its seeding,
// its last token API read and its last sink delivery, plus retire_after_unused. ok is
// false when retirement is off or the credential was never seeded in this version.
func UnusedDeadline(st Status, t Timing) (deadline time.Time, ok bool) {
	if t.RetireAfterUnused <= 0 || st.SeededAt.IsZero() {
		return time.Time{}, false
	}
	last := st.SeededAt
	for _, u := range []time.Time{st.LastUsedAt, st.LastDeliveredAt} {
		if u.After(last) {
			last = u
		}
	}
	return last.Add(t.RetireAfterUnused.D()), true
}

func nextLifecycleStep(st Status, t Timing, now time.Time) (Action, time.Time) {
	if st.State == cred.StateNeedsReauth {
		return ActionAwaitReseed, time.Time{}
	}
	if st.RefreshRequested {
		if st.ProbeOnly {
			return ActionProbe, now
		}
		return ActionRefresh, now
	}
	if st.ConsecutiveFailures > 0 {
		at := st.LastAttemptAt.Add(Backoff(st.ConsecutiveFailures, t.RetryInitial.D(), t.RetryMax.D()))
		if st.RetryNotBefore.After(at) {
			at = st.RetryNotBefore
		}
		return ActionRetry, notBefore(at, now)
	}

	frac := JitterFraction(st.ID)
	probe := func() time.Time {
		last := st.LastProbeAt
		if last.IsZero() {
			last = st.LastRefreshAt // the seed or last refresh vouched for the token then
		}
		every := t.ProbeInterval
		if t.ProbeIntervalIdle > 0 && !usedSince(st, now.Add(-RecentUse)) {
			every = t.ProbeIntervalIdle
		}
		return last.Add(every.D())
	}
	if st.ProbeOnly {
		if t.ProbeInterval <= 0 {
			return ActionAwaitReseed, time.Time{}
		}
		return ActionProbe, notBefore(probe(), now)
	}
	expiresAt := st.AccessExpiresAt
	if expiresAt.IsZero() {
		// The provider gave no lifetime: assume one rather than never refreshing.
		expiresAt = st.LastRefreshAt.Add(t.AssumedLifetime.D())
	}
	action, at := ActionRefresh, renewalTime(st.LastRefreshAt, expiresAt, t.RefreshMargin.D(), t.Jitter.D(), frac)
	if r := st.AccessRenewableAt; at.Before(r) && r.Before(expiresAt) {
		// Earlier the provider would hand back the same token: one call a cycle.
		at = r
	}

	if !st.RefreshExpiresAt.IsZero() {
		keepAlive := renewalTime(st.LastRefreshAt, st.RefreshExpiresAt, t.RefreshMargin.D(), t.Jitter.D(), frac)
		if keepAlive.Before(at) {
			action, at = ActionKeepAlive, keepAlive
		}
	}
	if t.ProbeInterval > 0 {
		if p := probe(); p.Before(at) {
			action, at = ActionProbe, p
		}
	}
	return action, notBefore(at, now)
}

// renewalTime is when a token issued at issuedAt and expiring at expiresAt should be
// replaced: expiry minus a lead of max(margin, lifetime/3) — cert-manager's two-thirds
// rule for long lifetimes, a fixed margin for short ones — minus the credential's jitter.
// The lead never exceeds half the lifetime, so a margin longer than a short-lived
// token cannot turn into a refresh loop. Jitter is at most a tenth of the lifetime.
func renewalTime(issuedAt, expiresAt time.Time, margin, jitter time.Duration, frac float64) time.Time {
	lead := margin
	lifetime := expiresAt.Sub(issuedAt)
	if issuedAt.IsZero() || lifetime <= 0 {
		// Unknown issue time: only the margin is meaningful.
		return expiresAt.Add(-lead - time.Duration(frac*float64(jitter)))
	}
	if third := lifetime / 3; third > lead {
		lead = third
	}
	if half := lifetime / 2; lead > half {
		lead = half
	}
	if tenth := lifetime / 10; jitter > tenth {
		jitter = tenth
	}
	return expiresAt.Add(-lead - time.Duration(frac*float64(jitter)))
}

// Backoff is the delay before retry round n (n >= 1): initial * 2^(n-1), capped at max.
func Backoff(n int, initial, max time.Duration) time.Duration {
	if n < 1 {
		return 0
	}
	d := initial
	for i := 1; i < n; i++ {
		d *= 2
		if d >= max || d <= 0 { // d <= 0: overflow
			return max
		}
	}
	if d > max {
		return max
	}
	return d
}

// JitterFraction maps a credential ID to a fixed number in [0, 1). Credentials minted
// together get spread-out refresh times, and the same credential always gets the same
// offset, so replays and continue-as-new see identical schedules.
func JitterFraction(id string) float64 {
	h := fnv.New64a()
	_, _ = h.Write([]byte(id))
	// FNV alone leaves IDs that differ only in their last characters close together in
	// the high bits; the splitmix64 finaliser spreads them over the whole range.
	x := h.Sum64()
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return float64(x>>11) / float64(uint64(1)<<53)
}

func notBefore(at, now time.Time) time.Time {
	if at.Before(now) {
		return now
	}
	return at
}

// usedSince reports whether the token was handed in, read or delivered after t.
func usedSince(st Status, t time.Time) bool {
	return st.SeededAt.After(t) || st.LastUsedAt.After(t) || st.LastDeliveredAt.After(t)
}
