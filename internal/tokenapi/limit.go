package tokenapi

// Rate limits of the token API: a token bucket per API key for callers who
// authenticated, and budgets of failed authentications per address and in total for
// those who did not.

import (
	"math"
	"net/netip"
	"sync"
	"time"
)

// keyLimiter is a token bucket per API key ID: up to burst requests at once, refilled
// at rate per second.
type keyLimiter struct {
	rate, burst float64

	mu      sync.Mutex
	buckets map[string]*bucket // one per key that authenticated; bounded by the keys
}

type bucket struct {
	tokens float64
	last   time.Time
}

func newKeyLimiter(rate float64, burst int) *keyLimiter {
	return &keyLimiter{rate: rate, burst: float64(burst), buckets: map[string]*bucket{}}
}

// allow takes a token from key's bucket, or says how long until one is there.
func (l *keyLimiter) allow(key string, now time.Time) (bool, time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	b, ok := l.buckets[key]
	if !ok {
		b = &bucket{tokens: l.burst, last: now}
		l.buckets[key] = b
	}
	b.refill(l.rate, l.burst, now)
	if b.tokens >= 1 {
		b.tokens--
		return true, 0
	}
	return false, b.wait(l.rate)
}

// refill adds what rate has earned since b.last, up to burst.
func (b *bucket) refill(rate, burst float64, now time.Time) {
	if elapsed := now.Sub(b.last); elapsed > 0 {
		b.tokens = math.Min(burst, b.tokens+elapsed.Seconds()*rate)
		b.last = now
	}
}

// wait is how long until b holds a whole token again, at least a second (Retry-After
// counts whole seconds).
func (b *bucket) wait(rate float64) time.Duration {
	if b.tokens >= 1 {
		return 0
	}
	return max(time.Duration((1-b.tokens)/rate*float64(time.Second)), time.Second)
}

// failureLimits configure a failureLimiter.
type failureLimits struct {
	// perRemote is each address's budget of failed authentications: burst at once,
	// then rate per second.
	remoteRate, remoteBurst float64
	// global is the budget of all addresses together, so that many addresses (a
	// botnet, or IPv6 prefixes) cannot multiply the per-address one without bound.
	globalRate, globalBurst float64
	// maxRemotes bounds the addresses tracked at once; beyond it, idle ones are dropped
	// and new ones are held to the global budget only.
	maxRemotes int
}

// defaultFailureLimits let a misconfigured client fail a few dozen times before it is
// slowed to one failure a second, and hold the whole worker to twenty failed requests
// (and log lines) a second. A key's secret is 256 random bits, so the limits are not
// what makes guessing hopeless; they bound the store lookups and log lines that
// guessing costs.
var defaultFailureLimits = failureLimits{
	remoteRate: 1, remoteBurst: 30,
	globalRate: 20, globalBurst: 200,
	maxRemotes: 10000,
}

// failureLimiter counts failed authentications per remote address prefix and in total.
// Only failures spend its tokens, but once a budget is spent every request from that
// address (or, for the global budget, every request with no budget left) is refused
// until it refills: whether a key is valid is only known after the lookup it protects.
type failureLimiter struct {
	limits failureLimits

	mu      sync.Mutex
	global  bucket
	remotes map[netip.Prefix]*bucket
}

func newFailureLimiter(l failureLimits) *failureLimiter {
	return &failureLimiter{limits: l, global: bucket{tokens: l.globalBurst}, remotes: map[netip.Prefix]*bucket{}}
}

// allow reports whether a request from remote may be looked at, or how long until it
// may.
func (l *failureLimiter) allow(remote netip.Prefix, now time.Time) (bool, time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.global.refill(l.limits.globalRate, l.limits.globalBurst, now)
	wait := l.global.wait(l.limits.globalRate)
	if b := l.remotes[remote]; b != nil {
		b.refill(l.limits.remoteRate, l.limits.remoteBurst, now)
		wait = max(wait, b.wait(l.limits.remoteRate))
	}
	return wait == 0, wait
}

// fail spends one token of remote's budget and one of the global budget. It reports
// whether this failure used up remote's budget, so that the caller logs that once per
// episode rather than once per refused request.
func (l *failureLimiter) fail(remote netip.Prefix, now time.Time) (exhausted bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.global.refill(l.limits.globalRate, l.limits.globalBurst, now)
	l.global.tokens = max(0, l.global.tokens-1)
	b := l.remotes[remote]
	if b == nil {
		if len(l.remotes) >= l.limits.maxRemotes {
			l.dropIdle(now)
		}
		if len(l.remotes) >= l.limits.maxRemotes {
			return false // held to the global budget only
		}
		b = &bucket{tokens: l.limits.remoteBurst, last: now}
		l.remotes[remote] = b
	}
	b.refill(l.limits.remoteRate, l.limits.remoteBurst, now)
	before := b.tokens
	b.tokens = max(0, b.tokens-1)
	return before >= 1 && b.tokens < 1
}

// dropIdle forgets addresses whose budget has refilled: they are as if never seen.
func (l *failureLimiter) dropIdle(now time.Time) {
	for p, b := range l.remotes {
		b.refill(l.limits.remoteRate, l.limits.remoteBurst, now)
		if b.tokens >= l.limits.remoteBurst {
			delete(l.remotes, p)
		}
	}
}

// remoteOf is the address prefix a request's failures are counted under: the IPv4
// address, or the /64 of an IPv6 address (one host usually holds a whole /64). An
// address that does not parse (never from net/http's own server) counts under one shared
// prefix.
func remoteOf(remoteAddr string) netip.Prefix {
	addr, err := netip.ParseAddr(remoteAddr)
	if ap, perr := netip.ParseAddrPort(remoteAddr); perr == nil {
		addr, err = ap.Addr(), nil
	}
	if err != nil {
		return netip.Prefix{}
	}
	addr = addr.Unmap().WithZone("")
	bits := 32
	if addr.Is6() {
		bits = 64
	}
	p, err := addr.Prefix(bits)
	if err != nil {
		return netip.Prefix{}
	}
	return p
}
