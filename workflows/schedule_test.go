package workflows

import (
	"strconv"
	"testing"
	"time"

	cred "github.com/tokenwarden/tokenwarden/internal/credential"
)

func TestNextWakeup(t *testing.T) {
	t0 := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	noJitter := Timing{RefreshMargin: Duration(5 * time.Minute), Jitter: 0, AssumedLifetime: Duration(time.Hour), RetryInitial: Duration(10 * time.Second), RetryMax: Duration(time.Hour)}
	withJitter := noJitter
	withJitter.Jitter = Duration(time.Minute)

	// jitterOf is the offset the credential "c1" gets under a jitter bound j.
	frac := JitterFraction("c1")
	jitterOf := func(j time.Duration) time.Duration { return time.Duration(frac * float64(j)) }

	tests := []struct {
		name       string
		st         Status
		timing     Timing
		now        time.Time
		wantAction Action
		wantAt     time.Time
	}{
		{
			name:       "zalo 25h token refreshes a third early, not at the 5m margin",
			st:         Status{ID: "c1", State: cred.StateActive, LastRefreshAt: t0, AccessExpiresAt: t0.Add(25 * time.Hour)},
			timing:     noJitter,
			now:        t0,
			wantAction: ActionRefresh,
			wantAt:     t0.Add(25 * time.Hour).Add(-25 * time.Hour / 3),
		},
		{
			name:       "margin wins when it exceeds a third of the lifetime",
			st:         Status{ID: "c1", State: cred.StateActive, LastRefreshAt: t0, AccessExpiresAt: t0.Add(12 * time.Minute)},
			timing:     noJitter,
			now:        t0,
			wantAction: ActionRefresh,
			wantAt:     t0.Add(7 * time.Minute),
		},
		{
			name: "feishu tenant: not before the provider issues a new token",
			st: Status{ID: "c1", State: cred.StateActive, LastRefreshAt: t0, AccessExpiresAt: t0.Add(2 * time.Hour),
				AccessRenewableAt: t0.Add(2*time.Hour - 29*time.Minute)},
			timing:     noJitter,
			now:        t0,
			wantAction: ActionRefresh,
			wantAt:     t0.Add(2*time.Hour - 29*time.Minute),
		},
		{
			name: "a renewable time after the refresh time's own is ignored once past expiry",
			st: Status{ID: "c1", State: cred.StateActive, LastRefreshAt: t0, AccessExpiresAt: t0.Add(12 * time.Minute),
				AccessRenewableAt: t0.Add(13 * time.Minute)},
			timing:     noJitter,
			now:        t0,
			wantAction: ActionRefresh,
			wantAt:     t0.Add(7 * time.Minute),
		},
		{
			name:       "margin longer than the lifetime is capped at half of it",
			st:         Status{ID: "c1", State: cred.StateActive, LastRefreshAt: t0, AccessExpiresAt: t0.Add(2 * time.Minute)},
			timing:     noJitter,
			now:        t0,
			wantAction: ActionRefresh,
			wantAt:     t0.Add(time.Minute),
		},
		{
			name:       "jitter is subtracted, deterministically per credential",
			st:         Status{ID: "c1", State: cred.StateActive, LastRefreshAt: t0, AccessExpiresAt: t0.Add(2 * time.Hour)},
			timing:     withJitter,
			now:        t0,
			wantAction: ActionRefresh,
			wantAt:     t0.Add(2*time.Hour - 40*time.Minute - jitterOf(time.Minute)),
		},
		{
			name:       "jitter is bounded by a tenth of a short lifetime",
			st:         Status{ID: "c1", State: cred.StateActive, LastRefreshAt: t0, AccessExpiresAt: t0.Add(60 * time.Second)},
			timing:     withJitter,
			now:        t0,
			wantAction: ActionRefresh,
			wantAt:     t0.Add(30*time.Second - jitterOf(6*time.Second)),
		},
		{
			name:       "unknown expiry assumes the policy lifetime",
			st:         Status{ID: "c1", State: cred.StateActive, LastRefreshAt: t0},
			timing:     noJitter,
			now:        t0,
			wantAction: ActionRefresh,
			wantAt:     t0.Add(40 * time.Minute),
		},
		{
			name:       "unknown issue time uses the margin alone",
			st:         Status{ID: "c1", State: cred.StateActive, AccessExpiresAt: t0.Add(3 * time.Hour)},
			timing:     noJitter,
			now:        t0,
			wantAction: ActionRefresh,
			wantAt:     t0.Add(3*time.Hour - 5*time.Minute),
		},
		{
			name: "refresh token lapsing before the access token forces a keep-alive",
			st: Status{ID: "c1", State: cred.StateActive, LastRefreshAt: t0,
				AccessExpiresAt: t0.Add(30 * 24 * time.Hour), RefreshExpiresAt: t0.Add(3 * 24 * time.Hour)},
			timing:     noJitter,
			now:        t0,
			wantAction: ActionKeepAlive,
			wantAt:     t0.Add(2 * 24 * time.Hour),
		},
		{
			name: "a long-lived refresh token does not pull the refresh earlier",
			st: Status{ID: "c1", State: cred.StateActive, LastRefreshAt: t0,
				AccessExpiresAt: t0.Add(2 * time.Hour), RefreshExpiresAt: t0.Add(90 * 24 * time.Hour)},
			timing:     noJitter,
			now:        t0,
			wantAction: ActionRefresh,
			wantAt:     t0.Add(80 * time.Minute),
		},
		{
			name:       "past due refreshes now",
			st:         Status{ID: "c1", State: cred.StateActive, LastRefreshAt: t0, AccessExpiresAt: t0.Add(time.Hour)},
			timing:     noJitter,
			now:        t0.Add(50 * time.Minute),
			wantAction: ActionRefresh,
			wantAt:     t0.Add(50 * time.Minute),
		},
		{
			name:       "already expired refreshes now",
			st:         Status{ID: "c1", State: cred.StateActive, LastRefreshAt: t0, AccessExpiresAt: t0.Add(time.Hour)},
			timing:     noJitter,
			now:        t0.Add(3 * time.Hour),
			wantAction: ActionRefresh,
			wantAt:     t0.Add(3 * time.Hour),
		},
		{
			name:       "refresh-now request is due immediately",
			st:         Status{ID: "c1", State: cred.StateActive, LastRefreshAt: t0, AccessExpiresAt: t0.Add(time.Hour), RefreshRequested: true},
			timing:     noJitter,
			now:        t0.Add(time.Minute),
			wantAction: ActionRefresh,
			wantAt:     t0.Add(time.Minute),
		},
		{
			name: "first failure retries after the initial backoff",
			st: Status{ID: "c1", State: cred.StateDegraded, LastRefreshAt: t0, AccessExpiresAt: t0.Add(time.Hour),
				ConsecutiveFailures: 1, LastAttemptAt: t0.Add(40 * time.Minute)},
			timing:     noJitter,
			now:        t0.Add(40 * time.Minute),
			wantAction: ActionRetry,
			wantAt:     t0.Add(40*time.Minute + 10*time.Second),
		},
		{
			name: "fourth failure doubles three times",
			st: Status{ID: "c1", State: cred.StateDegraded, ConsecutiveFailures: 4, LastAttemptAt: t0,
				AccessExpiresAt: t0.Add(time.Hour)},
			timing:     noJitter,
			now:        t0,
			wantAction: ActionRetry,
			wantAt:     t0.Add(80 * time.Second),
		},
		{
			name:       "backoff is capped",
			st:         Status{ID: "c1", State: cred.StateExpired, ConsecutiveFailures: 40, LastAttemptAt: t0},
			timing:     noJitter,
			now:        t0,
			wantAction: ActionRetry,
			wantAt:     t0.Add(time.Hour),
		},
		{
			name: "Retry-After later than the backoff wins",
			st: Status{ID: "c1", State: cred.StateDegraded, ConsecutiveFailures: 1, LastAttemptAt: t0,
				RetryNotBefore: t0.Add(2 * time.Minute)},
			timing:     noJitter,
			now:        t0,
			wantAction: ActionRetry,
			wantAt:     t0.Add(2 * time.Minute),
		},
		{
			name: "Retry-After earlier than the backoff does not shorten it",
			st: Status{ID: "c1", State: cred.StateDegraded, ConsecutiveFailures: 3, LastAttemptAt: t0,
				RetryNotBefore: t0.Add(time.Second)},
			timing:     noJitter,
			now:        t0,
			wantAction: ActionRetry,
			wantAt:     t0.Add(40 * time.Second),
		},
		{
			name:       "retry already past due happens now",
			st:         Status{ID: "c1", State: cred.StateDegraded, ConsecutiveFailures: 1, LastAttemptAt: t0},
			timing:     noJitter,
			now:        t0.Add(time.Hour),
			wantAction: ActionRetry,
			wantAt:     t0.Add(time.Hour),
		},
		{
			name:       "probe-only credential probes on its interval from the seed",
			st:         Status{ID: "c1", State: cred.StateActive, ProbeOnly: true, LastRefreshAt: t0},
			timing:     withProbes(noJitter, time.Hour),
			now:        t0,
			wantAction: ActionProbe,
			wantAt:     t0.Add(time.Hour),
		},
		{
			name:       "probe-only credential probes from its last probe",
			st:         Status{ID: "c1", State: cred.StateActive, ProbeOnly: true, LastRefreshAt: t0, LastProbeAt: t0.Add(3 * time.Hour)},
			timing:     withProbes(noJitter, time.Hour),
			now:        t0.Add(3 * time.Hour),
			wantAction: ActionProbe,
			wantAt:     t0.Add(4 * time.Hour),
		},
		{
			name:       "refresh-now on a probe-only credential probes now",
			st:         Status{ID: "c1", State: cred.StateActive, ProbeOnly: true, RefreshRequested: true},
			timing:     withProbes(noJitter, time.Hour),
			now:        t0,
			wantAction: ActionProbe,
			wantAt:     t0,
		},
		{
			name: "probe-only credential nobody used for a week is probed on the idle interval",
			st: Status{ID: "c1", State: cred.StateActive, ProbeOnly: true, SeededAt: t0, LastRefreshAt: t0,
				LastProbeAt: t0.Add(10 * 24 * time.Hour)},
			timing:     withIdleProbes(noJitter, time.Hour, 24*time.Hour),
			now:        t0.Add(10 * 24 * time.Hour),
			wantAction: ActionProbe,
			wantAt:     t0.Add(11 * 24 * time.Hour),
		},
		{
			name: "a recent token API read brings the busy interval back",
			st: Status{ID: "c1", State: cred.StateActive, ProbeOnly: true, SeededAt: t0, LastRefreshAt: t0,
				LastProbeAt: t0.Add(10 * 24 * time.Hour), LastUsedAt: t0.Add(9 * 24 * time.Hour)},
			timing:     withIdleProbes(noJitter, time.Hour, 24*time.Hour),
			now:        t0.Add(10 * 24 * time.Hour),
			wantAction: ActionProbe,
			wantAt:     t0.Add(10*24*time.Hour + time.Hour),
		},
		{
			name:       "probe-only credential with probes off waits for a human",
			st:         Status{ID: "c1", State: cred.StateActive, ProbeOnly: true},
			timing:     noJitter,
			now:        t0,
			wantAction: ActionAwaitReseed,
		},
		{
			name:       "probe earlier than the refresh comes first",
			st:         Status{ID: "c1", State: cred.StateActive, LastRefreshAt: t0, AccessExpiresAt: t0.Add(25 * time.Hour)},
			timing:     withProbes(noJitter, time.Hour),
			now:        t0,
			wantAction: ActionProbe,
			wantAt:     t0.Add(time.Hour),
		},
		{
			name:       "refresh earlier than the probe comes first",
			st:         Status{ID: "c1", State: cred.StateActive, LastRefreshAt: t0, AccessExpiresAt: t0.Add(time.Hour), LastProbeAt: t0},
			timing:     withProbes(noJitter, 24*time.Hour),
			now:        t0,
			wantAction: ActionRefresh,
			wantAt:     t0.Add(40 * time.Minute),
		},
		{
			name:       "needs re-auth waits for a human, whatever else is set",
			st:         Status{ID: "c1", State: cred.StateNeedsReauth, RefreshRequested: true, ConsecutiveFailures: 2, AccessExpiresAt: t0},
			timing:     noJitter,
			now:        t0,
			wantAction: ActionAwaitReseed,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			action, at := NextWakeup(tc.st, tc.timing, tc.now)
			if action != tc.wantAction || !at.Equal(tc.wantAt) {
				t.Fatalf("NextWakeup = (%s, %s), want (%s, %s)", action, at.Format(time.RFC3339Nano), tc.wantAction, tc.wantAt.Format(time.RFC3339Nano))
			}
		})
	}
}

func TestJitterSpreadsCredentials(t *testing.T) {
	// Ten thousand credentials minted in the same second must not refresh in the same
	// second: with a one-minute jitter bound they should fill most of the 60 seconds.
	seconds := map[int]int{}
	for i := 0; i < 10000; i++ {
		f := JitterFraction("cred-" + strconv.Itoa(i))
		if f < 0 || f >= 1 {
			t.Fatalf("fraction %v out of [0,1)", f)
		}
		seconds[int(f*60)]++
	}
	if len(seconds) < 60 {
		t.Fatalf("jitter used only %d of 60 seconds", len(seconds))
	}
	for s, n := range seconds {
		if n > 300 { // expected ~167 per second
			t.Fatalf("second %d holds %d of 10000 credentials", s, n)
		}
	}
	if JitterFraction("zalo-oa-main") != JitterFraction("zalo-oa-main") {
		t.Fatal("jitter is not deterministic")
	}
}

func TestBackoff(t *testing.T) {
	for _, tc := range []struct {
		n    int
		want time.Duration
	}{{0, 0}, {1, 10 * time.Second}, {2, 20 * time.Second}, {9, 2560 * time.Second}, {10, time.Hour}, {1000, time.Hour}} {
		if got := Backoff(tc.n, 10*time.Second, time.Hour); got != tc.want {
			t.Errorf("Backoff(%d) = %s, want %s", tc.n, got, tc.want)
		}
	}
}

func withProbes(t Timing, every time.Duration) Timing {
	t.ProbeInterval = Duration(every)
	return t
}

func withIdleProbes(t Timing, busy, idle time.Duration) Timing {
	t.ProbeInterval, t.ProbeIntervalIdle = Duration(busy), Duration(idle)
	return t
}
