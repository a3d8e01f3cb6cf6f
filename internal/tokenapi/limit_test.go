package tokenapi

import (
	"fmt"
	"testing"
	"time"
)

func TestKeyLimiterRetryAfter(t *testing.T) {
	l := newKeyLimiter(0.1, 1) // one request per 10 s
	if ok, _ := l.allow("k", apiEpoch); !ok {
		t.Fatal("first request refused")
	}
	ok, wait := l.allow("k", apiEpoch.Add(time.Second))
	if ok || wait != 9*time.Second {
		t.Fatalf("allow = %v, wait %v; want refused, 9s", ok, wait)
	}
}

// Many addresses together are held to the global budget; an IPv6 /64 is one address;
// the addresses tracked are bounded.
func TestFailureLimiter(t *testing.T) {
	now := apiEpoch
	l := newFailureLimiter(failureLimits{remoteRate: 1, remoteBurst: 2, globalRate: 1, globalBurst: 5, maxRemotes: 3})
	for i := range 5 {
		r := remoteOf(fmt.Sprintf("203.0.113.%d:1", i))
		if ok, _ := l.allow(r, now); !ok {
			t.Fatalf("address %d refused before the global budget was spent", i)
		}
		l.fail(r, now)
	}
	fresh := remoteOf("203.0.113.200:1")
	if ok, wait := l.allow(fresh, now); ok || wait != time.Second {
		t.Errorf("a new address once the global budget is spent: allowed %v, wait %v; want refused for 1s", ok, wait)
	}
	if n := len(l.remotes); n > 3 {
		t.Errorf("%d addresses tracked, want at most 3", n)
	}
	now = now.Add(time.Hour) // everything refilled: idle addresses make room
	l.fail(fresh, now)
	if _, ok := l.remotes[fresh]; !ok || len(l.remotes) > 3 {
		t.Errorf("after an hour a new address is not tracked (%d tracked)", len(l.remotes))
	}

	a, b := remoteOf("[2001:db8:1:2::10]:443"), remoteOf("[2001:db8:1:2:ffff::1]:80")
	if a != b || a.Bits() != 64 {
		t.Errorf("two hosts of one /64 count as %v and %v, want the same /64", a, b)
	}
	if got := remoteOf("[::ffff:192.0.2.1]:80"); got != remoteOf("192.0.2.1:80") {
		t.Errorf("an IPv4-mapped address counts as %v, want as its IPv4 address", got)
	}
	if got := remoteOf("not an address"); got.IsValid() {
		t.Errorf("an unparsable address counts as %v, want the shared invalid prefix", got)
	}
}
