package main

import (
	"fmt"
	"math"
	"testing"
	"time"

	"github.com/tokenwarden/tokenwarden/internal/credential"
	"github.com/tokenwarden/tokenwarden/workflows"
)

// The staggered seeds must make each workflow wake when the bench means it to: check
// the inversion against the workflow's own schedule function over the whole phase range,
// for short and long lifetimes.
func TestStaggeredExpiryWakesAtPhase(t *testing.T) {
	now := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	for _, lifetime := range []time.Duration{time.Minute, 5 * time.Minute, time.Hour} {
		b := &bench{opts: options{jitter: 5 * time.Second}}
		b.setLifetime(lifetime)
		for i := range 200 {
			id := fmt.Sprintf("bench-%05d", i+1)
			phase := goldenPhase(i)
			expiry := b.staggeredExpiry(id, now, now, phase)
			_, wake := workflows.NextWakeup(workflows.Status{
				ID: id, State: credential.StateActive, LastRefreshAt: now, AccessExpiresAt: expiry,
			}, b.timing, now)
			jitter := time.Duration(workflows.JitterFraction(id) * float64(min(5*time.Second, lifetime/10)))
			period := lifetime - lifetime/3 - jitter
			want := now.Add(time.Duration(phase * float64(period)))
			// For the earliest phases the seeded token is short, and the workflow caps its
			// jitter at a tenth of that: the wake moves, by less than the jitter itself.
			if d := wake.Sub(want); d < -time.Millisecond || d > jitter+time.Millisecond {
				t.Errorf("lifetime %s, %s, phase %.3f: wakes at +%s, want +%s", lifetime, id, phase, wake.Sub(now), want.Sub(now))
			}
		}
	}
}

// With the origin after the seed, the wake is origin plus phase of a period, whatever
// the seed time.
func TestStaggeredExpiryFromAnOrigin(t *testing.T) {
	seeded := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	origin := seeded.Add(3 * time.Minute)
	b := &bench{opts: options{jitter: 5 * time.Second}}
	b.setLifetime(4 * time.Minute)
	for i := range 100 {
		id := fmt.Sprintf("bench-%05d", i+1)
		phase := goldenPhase(i)
		_, wake := workflows.NextWakeup(workflows.Status{
			ID: id, State: credential.StateActive, LastRefreshAt: seeded, AccessExpiresAt: b.staggeredExpiry(id, seeded, origin, phase),
		}, b.timing, seeded)
		jitter := time.Duration(workflows.JitterFraction(id) * float64(5*time.Second))
		want := origin.Add(time.Duration(phase * float64(4*time.Minute-80*time.Second-jitter)))
		if d := wake.Sub(want); d < -time.Millisecond || d > time.Millisecond {
			t.Errorf("%s, phase %.3f: wakes at origin%+v, want origin%+v", id, phase, wake.Sub(origin), want.Sub(origin))
		}
	}
}

func TestLifetimeForAsksTheRate(t *testing.T) {
	ids := make([]string, 10000)
	for i := range ids {
		ids[i] = fmt.Sprintf("bench-%05d", i+1)
	}
	for _, rate := range []float64{5, 50, 300} {
		lifetime := lifetimeFor(ids, rate, 5*time.Second)
		if lifetime%time.Second != 0 {
			t.Errorf("rate %.0f: lifetime %s is not whole seconds (expires_in)", rate, lifetime)
		}
		b := &bench{opts: options{jitter: 5 * time.Second}}
		b.setLifetime(lifetime)
		got := offeredRate(ids, lifetime, b.timing)
		// Whole seconds: within the rate of one second's difference in lifetime.
		if math.Abs(got-rate)/rate > 0.02 {
			t.Errorf("rate %.0f: lifetime %s asks for %.2f/s", rate, lifetime, got)
		}
	}
}

func TestGoldenPhaseSpreadsEveryPrefix(t *testing.T) {
	for _, n := range []int{10, 100, 1000} {
		var buckets [10]int
		for i := range n {
			p := goldenPhase(i)
			if p < 0 || p >= 1 {
				t.Fatalf("phase %d = %f, outside [0, 1)", i, p)
			}
			buckets[int(p*10)]++
		}
		for k, c := range buckets {
			if c < n/10-2 || c > n/10+2 {
				t.Errorf("first %d phases: bucket %d holds %d, want about %d", n, k, c, n/10)
			}
		}
	}
}
