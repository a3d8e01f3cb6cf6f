package storetest

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/tokenwarden/tokenwarden/internal/store"
)

// clockOpener opens a handle on the test's database for a worker whose clock is now,
// closed when the test ends. Every call opens the same database.
type clockOpener func(t *testing.T, now func() time.Time) store.Store

// withClocks runs fn with a clockOpener on the test's database; the handles seal with
// the suite's keyring.
func withClocks(fn func(t *testing.T, open clockOpener)) func(*testing.T, database) {
	return func(t *testing.T, d database) {
		fn(t, func(t *testing.T, now func() time.Time) store.Store {
			t.Helper()
			return d.open(t, d.ring, now)
		})
	}
}

// clockTests run on every backend: the store stamps its writes with the clock it was
// opened with.
var clockTests = []contractTest{
	{"UpdatedAtOnInjectedClock", withClocks(testUpdatedAtOnInjectedClock)},
}

// serverClockTests are the contract of a store shared by many hosts, whose leases are
// timed by the database server's clock (Backend.ServerClock): workers whose clocks
// disagree with it (and with each other) still agree on who holds a lease.
var serverClockTests = []contractTest{
	{"SkewedWorkerCannotTakeLiveLease", withClocks(testSkewedCannotTakeLive)},
	{"SkewedWorkerLeaseOnServerClock", withClocks(testSkewedLeaseOnServerClock)},
}

// testUpdatedAtOnInjectedClock: UpdatedAt is the time of the clock the handle was opened
// with, in UTC and to the nanosecond, as the result of the write and as read back.
func testUpdatedAtOnInjectedClock(t *testing.T, open clockOpener) {
	at := time.Date(2026, 11, 26, 18, 30, 0, 987654321, time.FixedZone("x", -7*3600))
	s := open(t, func() time.Time { return at })
	put := mustPut(t, s, sample("c1"))
	got := mustGet(t, s, "c1")
	for name, u := range map[string]time.Time{"Put": put.UpdatedAt, "Get": got.UpdatedAt} {
		if !u.Equal(at) || u.Location() != time.UTC {
			t.Errorf("%s UpdatedAt = %v, want %v in UTC", name, u, at.UTC())
		}
	}
}

// skews are worker clocks off by more than any lease: ahead, so that a caller-timed
// lease would look expired, and behind.
var skews = []time.Duration{30 * time.Second, 10 * time.Minute, -30 * time.Second, -10 * time.Minute}

func skewed(d time.Duration) func() time.Time {
	return func() time.Time { return time.Now().Add(d) }
}

// testSkewedCannotTakeLive: a worker whose clock runs ahead of the lease's expiry
// cannot take a live lease, nor commit under an owner that does not hold it; the
// holder commits.
func testSkewedCannotTakeLive(t *testing.T, open clockOpener) {
	ctx := t.Context()
	honest := open(t, time.Now)
	for _, skew := range skews {
		t.Run(fmt.Sprintf("skew %s", skew), func(t *testing.T) {
			other := open(t, skewed(skew))
			id := fmt.Sprintf("skew-%d", skew/time.Second)
			v1 := mustPut(t, honest, sample(id))
			if _, err := honest.AcquireLease(ctx, id, "honest", 10*time.Second); err != nil {
				t.Fatal(err)
			}
			held := mustGet(t, honest, id).Lease
			prev, err := other.AcquireLease(ctx, id, "skewed", 10*time.Second)
			if !errors.Is(err, store.ErrLeaseHeld) {
				t.Fatalf("worker %s off took the live lease: error = %v, want ErrLeaseHeld", skew, err)
			}
			checkLease(t, "lease returned with ErrLeaseHeld", held, prev)
			next := v1
			next.Secrets.AccessToken = "from-skewed"
			if _, err := other.CompareAndSwap(ctx, next, 1, "skewed"); !errors.Is(err, store.ErrLeaseLost) {
				t.Fatalf("skewed worker's commit without the lease: error = %v, want ErrLeaseLost", err)
			}
			next.Secrets.AccessToken = "from-honest"
			if _, err := honest.CompareAndSwap(ctx, next, 1, "honest"); err != nil {
				t.Fatalf("lease holder's commit: %v", err)
			}
			if got := mustGet(t, other, id); got.Secrets.AccessToken != "from-honest" {
				t.Errorf("stored token set is not the lease holder's")
			}
		})
	}
}

// testSkewedLeaseOnServerClock: a lease taken by a skewed worker is stamped with the
// server's time, so it is live for its whole length for everyone, and its holder (the
// skewed worker) can commit under it.
func testSkewedLeaseOnServerClock(t *testing.T, open clockOpener) {
	ctx := t.Context()
	honest := open(t, time.Now)
	for _, skew := range skews {
		t.Run(fmt.Sprintf("skew %s", skew), func(t *testing.T) {
			other := open(t, skewed(skew))
			id := fmt.Sprintf("stamp-%d", skew/time.Second)
			v1 := mustPut(t, honest, sample(id))
			if _, err := other.AcquireLease(ctx, id, "skewed", 10*time.Second); err != nil {
				t.Fatal(err)
			}
			checkTakenNow(t, "lease taken by a skewed worker", mustGet(t, honest, id).Lease, "skewed", 10*time.Second)
			if _, err := honest.AcquireLease(ctx, id, "honest", 10*time.Second); !errors.Is(err, store.ErrLeaseHeld) {
				t.Fatalf("the skewed worker's live lease was taken: error = %v, want ErrLeaseHeld", err)
			}
			if _, err := other.CompareAndSwap(ctx, v1, 1, "skewed"); err != nil {
				t.Fatalf("skewed worker's commit under its live lease: %v", err)
			}
		})
	}
}
