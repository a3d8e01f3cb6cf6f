package providertest

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"strings"
	"sync"
	"time"
)

// Options configure a Ledger.
type Options struct {
	// RefreshToken and AccessToken mint new token values (prefix included).
	RefreshToken, AccessToken func() string
	// RefreshLifetime and AccessLifetime count from minting; <= 0 means never expires.
	RefreshLifetime, AccessLifetime time.Duration
	// Now is the clock for expiry; nil means time.Now.
	Now func() time.Time
	// RetireAccess makes minting an access token revoke the family's earlier ones.
	RetireAccess bool
	// KeepFamilies makes Seed and Start leave earlier families of the same name valid
	// (each login is a new family); otherwise a new family revokes the earlier ones, as
	// a re-authorization does. Latest and Revoked look at the newest family of a name.
	KeepFamilies bool
}

// Ledger is a concurrency-safe token ledger. Its embedded Counters answer tests'
// questions; fakes embed the same Counters in their Servers.
type Ledger struct {
	Counters
	opts Options

	mu       sync.Mutex
	families map[string][]*family // by name, oldest first
	refresh  map[string]*refreshToken
	access   map[string]*accessToken

	requests        map[string]int // per path
	presentations   int
	perToken        map[string]int
	processed       map[string]int
	refreshes       int
	reuseDetections int

	inFlight          int
	maxInFlight       int
	familyInFlight    map[string]int
	familyMaxInFlight map[string]int
}

// Counters is the read side of a Ledger (plus RevokeFamily, a test's action), for
// embedding in a fake's Server.
type Counters struct{ l *Ledger }

type family struct {
	name    string
	kind    int
	live    string // the current refresh token, "" when revoked
	revoked bool
	access  []string
}

type refreshToken struct {
	family    *family
	expiresAt time.Time // zero: never
	used      bool
}

type accessToken struct {
	family    *family
	expiresAt time.Time // zero: never
	retired   bool
}

// New returns an empty Ledger.
func New(opts Options) *Ledger {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	l := &Ledger{
		opts:              opts,
		families:          map[string][]*family{},
		refresh:           map[string]*refreshToken{},
		access:            map[string]*accessToken{},
		requests:          map[string]int{},
		perToken:          map[string]int{},
		processed:         map[string]int{},
		familyInFlight:    map[string]int{},
		familyMaxInFlight: map[string]int{},
	}
	l.Counters = Counters{l}
	return l
}

// Arrive counts a request to path carrying refresh token presented ("" for none) and
// puts it in flight; also, if not nil, runs under the same lock (to take a fault
// atomically with the counting). The request stays in flight until leave is called.
func (l *Ledger) Arrive(path, presented string, also func()) (leave func()) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.requests[path]++
	if presented != "" {
		l.presentations++
		l.perToken[presented]++
	}
	name := ""
	if rt := l.refresh[presented]; rt != nil {
		name = rt.family.name
	}
	l.inFlight++
	l.maxInFlight = max(l.maxInFlight, l.inFlight)
	if name != "" {
		l.familyInFlight[name]++
		l.familyMaxInFlight[name] = max(l.familyMaxInFlight[name], l.familyInFlight[name])
	}
	if also != nil {
		also()
	}
	return func() {
		l.mu.Lock()
		defer l.mu.Unlock()
		l.inFlight--
		if name != "" {
			l.familyInFlight[name]--
			if l.familyInFlight[name] == 0 {
				delete(l.familyInFlight, name)
			}
		}
	}
}

// Count counts a request to path that is neither a presentation nor in flight (a
// question such as an introspection); also, if not nil, runs under the same lock.
func (l *Ledger) Count(path string, also func()) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.requests[path]++
	if also != nil {
		also()
	}
}

// Seed starts a family named name of the given kind (0 when the fake has one kind) and
// returns its first refresh token.
func (l *Ledger) Seed(name string, kind int) (refreshToken string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.mintRefreshLocked(l.newFamilyLocked(name, kind))
}

// Start starts a family as a login or code exchange does and returns its first access
// and refresh tokens.
func (l *Ledger) Start(name string, kind int) (access, refresh string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	f := l.newFamilyLocked(name, kind)
	return l.mintAccessLocked(f), l.mintRefreshLocked(f)
}

func (l *Ledger) newFamilyLocked(name string, kind int) *family {
	if !l.opts.KeepFamilies {
		for _, old := range l.families[name] {
			l.revokeLocked(old)
		}
	}
	f := &family{name: name, kind: kind}
	l.families[name] = append(l.families[name], f)
	return f
}

// RevokeFamily revokes every token of every family named name, as when a user
// withdraws consent. It reports whether one existed. It is not reuse.
func (c Counters) RevokeFamily(name string) bool {
	c.l.mu.Lock()
	defer c.l.mu.Unlock()
	for _, f := range c.l.families[name] {
		c.l.revokeLocked(f)
	}
	return len(c.l.families[name]) > 0
}

func (l *Ledger) revokeLocked(f *family) {
	f.revoked = true
	f.live = ""
}

// Outcome is what Redeem did with a presented refresh token.
type Outcome int

const (
	// Unknown: never issued, or issued for another kind.
	Unknown Outcome = iota
	// Reused: already used; counted as a reuse detection.
	Reused
	// Revoked: its family is revoked.
	Revoked
	// Expired: older than RefreshLifetime.
	Expired
	// Granted: consumed (unless NoRotation) and successors minted.
	Granted
)

// Policy is a fake's rules for one Redeem.
type Policy struct {
	// Kind is the kind of family the endpoint serves; a token of another kind is
	// Unknown.
	Kind int
	// RevokeOnReuse revokes the family, live successor included, on reuse.
	RevokeOnReuse bool
	// NoRotation keeps the presented token valid and mints no successor.
	NoRotation bool
}

// Redemption is Redeem's result.
type Redemption struct {
	Outcome Outcome
	// Family is the token's family name; "" when Unknown.
	Family string
	// Access and Refresh are the tokens minted when Granted (Refresh "" with NoRotation).
	Access, Refresh string
	// ExpiresAt is the presented token's expiry (zero: never).
	ExpiresAt time.Time
}

// Redeem counts presented as processed and applies the refresh rules (see the package
// documentation).
func (l *Ledger) Redeem(presented string, p Policy) Redemption {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.processed[presented]++
	rt := l.refresh[presented]
	if rt == nil || rt.family.kind != p.Kind {
		return Redemption{Outcome: Unknown}
	}
	f := rt.family
	res := Redemption{Family: f.name, ExpiresAt: rt.expiresAt}
	switch {
	case rt.used:
		l.reuseDetections++
		if p.RevokeOnReuse {
			l.revokeLocked(f)
		}
		res.Outcome = Reused
		return res
	case f.revoked:
		res.Outcome = Revoked
		return res
	case l.expiredLocked(rt.expiresAt):
		res.Outcome = Expired
		return res
	}
	res.Outcome = Granted
	res.Access = l.mintAccessLocked(f)
	if !p.NoRotation {
		rt.used = true
		res.Refresh = l.mintRefreshLocked(f)
	}
	l.refreshes++
	return res
}

// Token describes an issued token for introspection.
type Token struct {
	// Refresh says it is a refresh token; Access an access token; neither: unknown.
	Refresh, Access bool
	Family          string
	// Active: a refresh grant would accept it (refresh), or it may be used (access).
	Active    bool
	ExpiresAt time.Time
}

// Inspect looks token up without changing or counting anything.
func (l *Ledger) Inspect(token string) Token {
	l.mu.Lock()
	defer l.mu.Unlock()
	if rt := l.refresh[token]; rt != nil {
		f := rt.family
		return Token{Refresh: true, Family: f.name, ExpiresAt: rt.expiresAt,
			Active: !rt.used && !f.revoked && f.live == token && !l.expiredLocked(rt.expiresAt)}
	}
	if at := l.access[token]; at != nil {
		return Token{Access: true, Family: at.family.name, ExpiresAt: at.expiresAt, Active: l.accessValidLocked(at)}
	}
	return Token{}
}

// ValidAccessToken reports whether token was issued here, is unexpired, not retired,
// and its family is not revoked.
func (l *Ledger) ValidAccessToken(token string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	at, ok := l.access[token]
	return ok && l.accessValidLocked(at)
}

func (l *Ledger) accessValidLocked(at *accessToken) bool {
	return !at.retired && !at.family.revoked && !l.expiredLocked(at.expiresAt)
}

// Latest returns the live refresh token of the newest family named name. ok is false if
// there is none, it is revoked, or its live token has expired.
func (c Counters) Latest(name string) (refreshToken string, ok bool) {
	c.l.mu.Lock()
	defer c.l.mu.Unlock()
	f := c.l.newestLocked(name)
	if f == nil || f.revoked || f.live == "" {
		return "", false
	}
	if rt := c.l.refresh[f.live]; rt == nil || c.l.expiredLocked(rt.expiresAt) {
		return "", false
	}
	return f.live, true
}

// Revoked reports whether the newest family named name is revoked (reuse detected with
// revocation, or RevokeFamily).
func (c Counters) Revoked(name string) bool {
	c.l.mu.Lock()
	defer c.l.mu.Unlock()
	f := c.l.newestLocked(name)
	return f != nil && f.revoked
}

func (l *Ledger) newestLocked(name string) *family {
	fs := l.families[name]
	if len(fs) == 0 {
		return nil
	}
	return fs[len(fs)-1]
}

// Families returns how many families each name has had.
func (l *Ledger) Families() map[string]int {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make(map[string]int, len(l.families))
	for name, fs := range l.families {
		out[name] = len(fs)
	}
	return out
}

// Requests returns how many requests arrived at path.
func (l *Ledger) Requests(path string) int { return l.read(func() int { return l.requests[path] }) }

// TotalPresentations returns how many requests carried a refresh token, any token,
// counted on arrival, before faults and checks.
func (c Counters) TotalPresentations() int { return c.l.read(func() int { return c.l.presentations }) }

// Presentations returns how many requests carried this refresh token value.
func (c Counters) Presentations(token string) int {
	return c.l.read(func() int { return c.l.perToken[token] })
}

// MaxPresentations returns the highest Presentations over all refresh token values ever
// presented, or 0. With rotation and no BeforeGrant faults, a correct client keeps it
// at 1.
func (c Counters) MaxPresentations() int { return c.l.read(func() int { return maxOf(c.l.perToken) }) }

// Processed returns how many times the grant logic acted on this refresh token value,
// whatever the outcome. Presentations minus Processed is what was put on the wire but
// never reached the grant logic (BeforeGrant faults, malformed requests, failed client
// checks).
func (c Counters) Processed(token string) int {
	return c.l.read(func() int { return c.l.processed[token] })
}

// MaxProcessed returns the highest Processed over all refresh token values, or 0. With
// rotation, anything above 1 means the provider saw a token twice, which is reuse.
func (c Counters) MaxProcessed() int { return c.l.read(func() int { return maxOf(c.l.processed) }) }

// Refreshes returns how many refresh grants succeeded (the token was consumed),
// including those whose answer an AfterGrant fault then replaced.
func (c Counters) Refreshes() int { return c.l.read(func() int { return c.l.refreshes }) }

// ReuseDetections returns how many times a used refresh token was presented to the
// grant logic.
func (c Counters) ReuseDetections() int { return c.l.read(func() int { return c.l.reuseDetections }) }

// InFlight returns how many requests are being handled right now (from arrival until
// the handler returns, fault waits included). Tests wait for 0 to know that a handler
// has finished.
func (c Counters) InFlight() int { return c.l.read(func() int { return c.l.inFlight }) }

// MaxConcurrent returns the most requests ever in flight at once, over all families.
func (c Counters) MaxConcurrent() int { return c.l.read(func() int { return c.l.maxInFlight }) }

// MaxConcurrentFor returns the most requests ever in flight at once for the named
// family (by the refresh token they carried on arrival), or 0 if it had none. Anything
// above 1 means one credential had overlapping refreshes.
func (c Counters) MaxConcurrentFor(name string) int {
	return c.l.read(func() int { return c.l.familyMaxInFlight[name] })
}

func (l *Ledger) read(f func() int) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return f()
}

func maxOf(m map[string]int) int {
	n := 0
	for _, v := range m {
		n = max(n, v)
	}
	return n
}

func (l *Ledger) expiredLocked(expiresAt time.Time) bool {
	return !expiresAt.IsZero() && !l.opts.Now().Before(expiresAt)
}

func (l *Ledger) mintRefreshLocked(f *family) string {
	t := l.opts.RefreshToken()
	rt := &refreshToken{family: f}
	if l.opts.RefreshLifetime > 0 {
		rt.expiresAt = l.opts.Now().Add(l.opts.RefreshLifetime)
	}
	l.refresh[t] = rt
	f.live = t
	return t
}

// SetAccessLifetime changes the lifetime of access tokens minted from now on (a load
// program picks it after measuring the engine it loads).
func (l *Ledger) SetAccessLifetime(d time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.opts.AccessLifetime = d
}

func (l *Ledger) mintAccessLocked(f *family) string {
	if l.opts.RetireAccess {
		for _, old := range f.access {
			l.access[old].retired = true
		}
	}
	t := l.opts.AccessToken()
	at := &accessToken{family: f}
	if l.opts.AccessLifetime > 0 {
		at.expiresAt = l.opts.Now().Add(l.opts.AccessLifetime)
	}
	l.access[t] = at
	f.access = append(f.access, t)
	return t
}

// RandomString returns 256 bits from crypto/rand, base64url without padding.
func RandomString() string {
	var b [32]byte
	rand.Read(b[:]) // never fails (crypto/rand panics rather than return an error)
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// Prefixed returns a minter of prefix+RandomString().
func Prefixed(prefix string) func() string {
	return func() string { return prefix + RandomString() }
}

// Fingerprint is a short, non-reversible name for a token, safe to log: the first 12 hex
// digits of its SHA-256, after the last of prefixes the token starts with (and is longer
// than). "-" for "".
func Fingerprint(token string, prefixes ...string) string {
	if token == "" {
		return "-"
	}
	sum := sha256.Sum256([]byte(token))
	prefix := ""
	for _, p := range prefixes {
		if len(token) > len(p) && strings.HasPrefix(token, p) {
			prefix = p
		}
	}
	return prefix + hex.EncodeToString(sum[:6])
}
