package main

// The token API: GET /v1/credentials/{id}/token on the worker's HTTP endpoint gives an
// application the credential's current access token, read from the token store.
//
// Callers authenticate with Authorization: Bearer <API key> (internal/apikeys). Every request
// looks its key up in the store, so a revocation by any process applies to the next
// request. Answers, in the order they are decided:
//
//	429 the caller's address (or every caller together) failed authentication too often
//	    lately (too_many_failures, Retry-After): decided before the key is looked up
//	401 no key, a malformed or unknown key, a wrong secret, a revoked key, a key whose
//	    stored row fails its authenticator (logged as an error: the row was tampered with)
//	429 the key's token bucket is empty (Retry-After)
//	403 the key is not scoped to the credential (whether or not it exists)
//	404 the key is scoped to the credential but the store has no such record
//	503 the record has no access token yet, or it has expired (Retry-After)
//	200 {"access_token", "token_type", "expires_at"}
//
// Errors are {"error": code, "message": text}. Every answer carries Cache-Control:
// no-store. No log line or error carries a token or an API key: requests are logged by
// key ID (public, and only once it is well formed) and credential ID (as sent only if it
// is a valid one; otherwise escaped and cut short, see loggableID).

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/tokenwarden/tokenwarden/internal/apikeys"
	"github.com/tokenwarden/tokenwarden/internal/config"
	"github.com/tokenwarden/tokenwarden/internal/store"
	"github.com/tokenwarden/tokenwarden/workflows"
)

// TokenAPIPattern is the token API's route on the worker's HTTP endpoint. It takes
// every method, so that others get the API's own 405 rather than the next handler's
// answer.
const TokenAPIPattern = "/v1/credentials/{id}/token"

const (
	// touchInterval is how often a credential's (and a key's) last-used time is
	// written at most, per worker: reads are frequent, the time is for humans.
	touchInterval = time.Minute
	// touchTimeout bounds the last-used write on the request path.
	touchTimeout = 2 * time.Second
	// retryUnavailable is the Retry-After of a 503: a refresh is under way or due.
	retryUnavailable = 5 * time.Second
)

// tokenStore is the part of the token store the token API uses.
type tokenStore interface {
	Get(ctx context.Context, id string) (store.Record, error)
	TouchLastUsed(ctx context.Context, id string, at time.Time) error
	LookupAPIKey(ctx context.Context, id string) (store.APIKey, error)
	TouchAPIKey(ctx context.Context, id string, at time.Time) error
}

// tokenAPI serves TokenAPIPattern.
type tokenAPI struct {
	store         tokenStore
	logger        *slog.Logger
	now           func() time.Time
	limiter       *keyLimiter
	failures      *failureLimiter
	touchInterval time.Duration

	mu          sync.Mutex
	credTouched map[string]time.Time // credential ID -> last write of last_used_at
	keyTouched  map[string]time.Time // key ID -> last write of its last_used_at
}

func newTokenAPI(st tokenStore, rate float64, burst int, logger *slog.Logger) *tokenAPI {
	return &tokenAPI{
		store:         st,
		logger:        logger,
		now:           time.Now,
		limiter:       newKeyLimiter(rate, burst),
		failures:      newFailureLimiter(defaultFailureLimits),
		touchInterval: touchInterval,
		credTouched:   map[string]time.Time{},
		keyTouched:    map[string]time.Time{},
	}
}

// handler routes TokenAPIPattern to a and everything else to next.
func (a *tokenAPI) handler(next http.Handler) http.Handler {
	mux := http.NewServeMux()
	mux.Handle(TokenAPIPattern, a)
	if next != nil {
		mux.Handle("/", next)
	}
	return mux
}

// mountTokenAPI adds the token API to the worker's HTTP endpoint before it serves.
func mountTokenAPI(srv *codecServer, st tokenStore, cfg config.Worker, logger *slog.Logger) {
	if srv == nil {
		return
	}
	srv.srv.Handler = newTokenAPI(st, cfg.TokenAPIRate, cfg.TokenAPIBurst, logger).handler(srv.srv.Handler)
}

type tokenResponse struct {
	AccessToken string     `json:"access_token"`
	TokenType   string     `json:"token_type"`
	ExpiresAt   *time.Time `json:"expires_at"` // null when the provider did not say
}

type errorResponse struct {
	Error   string `json:"error"`
	Message string `json:"message"`
}

// dummyHash is compared against when the presented key's ID is unknown, so that an
// unknown ID costs about what a wrong secret does.
var dummyHash = apikeys.Hash("twk_0000000000000000_unknown")

func (a *tokenAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		writeJSON(w, http.StatusMethodNotAllowed, errorResponse{Error: "method_not_allowed", Message: "use GET"})
		return
	}
	credID := r.PathValue("id")
	log := a.logger.With("credential", loggableID(credID, workflows.ValidateID(credID) == nil), "remote", r.RemoteAddr)

	// Callers that keep failing authentication are stopped here, before their key is
	// looked up or their request logged: that bounds both what guessing costs the store
	// and how fast anyone can write to the log.
	remote := remoteOf(r.RemoteAddr)
	now := a.now()
	if ok, wait := a.failures.allow(remote, now); !ok {
		a.refuse(w, log, http.StatusTooManyRequests, "too_many_failures", "too many requests with a missing or invalid API key from this address; retry after the number of seconds in Retry-After", wait)
		return
	}
	key, status, code, msg := a.authenticate(r)
	if status != 0 {
		if status == http.StatusUnauthorized {
			w.Header().Set("WWW-Authenticate", `Bearer realm="tokenwarden"`)
			if a.failures.fail(remote, now) {
				log.Warn("token API: refusing further requests from this address for a while: too many failed authentications", "remote_prefix", remote.String())
			}
		}
		a.refuse(w, log, status, code, msg, 0)
		return
	}
	log = log.With("key_id", key.ID, "key_name", key.Name)
	if ok, wait := a.limiter.allow(key.ID, now); !ok {
		a.refuse(w, log, http.StatusTooManyRequests, "rate_limited", "too many requests for this API key; retry after the number of seconds in Retry-After", wait)
		return
	}
	if !key.Allows(credID) {
		a.refuse(w, log, http.StatusForbidden, "forbidden", "this API key may not read this credential's token", 0)
		return
	}
	rec, err := a.store.Get(r.Context(), credID)
	if errors.Is(err, store.ErrNotFound) {
		a.refuse(w, log, http.StatusNotFound, "not_found", "no such credential in the token store", 0)
		return
	}
	if err != nil {
		// Store errors name credentials and keys IDs, never secrets.
		log.Error("token API: read the token store", "error", err)
		a.refuse(w, nil, http.StatusInternalServerError, "internal_error", "the token store could not be read; see the worker's log", 0)
		return
	}
	if rec.Secrets.AccessToken == "" || (!rec.AccessExpiresAt.IsZero() && !now.Before(rec.AccessExpiresAt)) {
		msg := "the credential has no access token yet"
		if rec.Secrets.AccessToken != "" {
			msg = "the credential's access token has expired and no fresh one is stored yet"
		}
		a.refuse(w, log, http.StatusServiceUnavailable, "token_unavailable", msg+"; check the credential's state (starter status)", retryUnavailable)
		return
	}

	a.touch(r.Context(), log, a.credTouched, credID, now, a.store.TouchLastUsed)
	a.touch(r.Context(), log, a.keyTouched, key.ID, now, a.store.TouchAPIKey)

	resp := tokenResponse{AccessToken: rec.Secrets.AccessToken, TokenType: rec.TokenType}
	if !rec.AccessExpiresAt.IsZero() {
		exp := rec.AccessExpiresAt.UTC()
		resp.ExpiresAt = &exp
	}
	writeJSON(w, http.StatusOK, resp)
	log.Debug("token API: served", "version", rec.Version)
}

// authenticate finds the request's API key. On refusal status is 401 (500 if the store
// failed) with an error code and message for the caller; they never quote what the
// caller sent.
func (a *tokenAPI) authenticate(r *http.Request) (key store.APIKey, status int, code, msg string) {
	const unauthorized = http.StatusUnauthorized
	h := r.Header.Get("Authorization")
	if h == "" {
		return key, unauthorized, "missing_api_key", "send the API key as Authorization: Bearer <key>"
	}
	scheme, presented, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return key, unauthorized, "invalid_api_key", "the Authorization header is not Bearer <key>"
	}
	presented = strings.TrimSpace(presented)
	id, wellFormed := apikeys.Parse(presented)
	if !wellFormed {
		subtle.ConstantTimeCompare(apikeys.Hash(presented), dummyHash)
		return key, unauthorized, "invalid_api_key", "the API key is not valid"
	}
	k, err := a.store.LookupAPIKey(r.Context(), id)
	if errors.Is(err, store.ErrAPIKeyUnauthenticated) {
		// Someone wrote this key's row without the key file (or before rows were
		// authenticated). The caller learns only that the key is not valid; the
		// operator learns which row to retire.
		a.logger.Error("token API: refused an API key whose stored row is not authenticated", "key_id", id, "remote", r.RemoteAddr, "error", err)
		subtle.ConstantTimeCompare(apikeys.Hash(presented), dummyHash)
		return key, unauthorized, "invalid_api_key", "the API key is not valid"
	}
	if err != nil && !errors.Is(err, store.ErrAPIKeyNotFound) {
		a.logger.Error("token API: look up API key", "key_id", id, "error", err)
		return key, http.StatusInternalServerError, "internal_error", "the token store could not be read; see the worker's log"
	}
	stored := dummyHash
	if err == nil {
		stored = k.Hash
	}
	if subtle.ConstantTimeCompare(apikeys.Hash(presented), stored) != 1 || err != nil {
		return key, unauthorized, "invalid_api_key", "the API key is not valid"
	}
	if k.Revoked() {
		return key, unauthorized, "revoked_api_key", "the API key has been revoked"
	}
	return k, 0, "", ""
}

// refuse answers with a JSON error, logging it unless log is nil.
func (a *tokenAPI) refuse(w http.ResponseWriter, log *slog.Logger, status int, code, msg string, retryAfter time.Duration) {
	if retryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(retryAfter.Seconds()))))
	}
	writeJSON(w, status, errorResponse{Error: code, Message: msg})
	if log != nil {
		level := slog.LevelInfo
		if status == http.StatusTooManyRequests {
			level = slog.LevelDebug // one line per refused request would flood the log
		}
		log.Log(context.Background(), level, "token API: refused", "status", status, "error", code)
	}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	h.Set("Pragma", "no-cache")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// touch writes a last-used time through write unless this worker wrote one for id less
// than touchInterval ago. The slot is claimed before the write, so concurrent requests
// do not all write; a failed write gives it back, and is logged, not fatal.
func (a *tokenAPI) touch(ctx context.Context, log *slog.Logger, last map[string]time.Time, id string, now time.Time,
	write func(ctx context.Context, id string, at time.Time) error) {
	a.mu.Lock()
	if t, ok := last[id]; ok && now.Sub(t) < a.touchInterval && !now.Before(t) {
		a.mu.Unlock()
		return
	}
	last[id] = now
	a.mu.Unlock()

	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), touchTimeout)
	defer cancel()
	if err := write(ctx, id, now); err != nil {
		a.mu.Lock()
		if last[id].Equal(now) {
			delete(last, id)
		}
		a.mu.Unlock()
		log.Warn("token API: record last use", "error", err)
	}
}

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

// maxLoggedID caps how many bytes of an invalid ID a log line quotes.
const maxLoggedID = 64

// loggableID is how an ID from a request appears in the log: as sent if it is valid
// (then it is made of safe characters only), otherwise marked invalid, cut to
// maxLoggedID bytes and quoted as printable ASCII, so that a caller cannot forge log
// lines, terminal escapes or megabytes of log through the URL.
func loggableID(id string, valid bool) string {
	if valid {
		return id
	}
	n := len(id)
	if n > maxLoggedID {
		return fmt.Sprintf("invalid:%s...(%d bytes)", strconv.QuoteToASCII(id[:maxLoggedID]), n)
	}
	return "invalid:" + strconv.QuoteToASCII(id)
}
