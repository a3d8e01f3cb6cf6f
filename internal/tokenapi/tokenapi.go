// Package tokenapi is the token API: GET /v1/credentials/{id}/token on the worker's
// HTTP endpoint gives an application the credential's current access token, read from
// the token store.
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
//
// The handler needs no key of the key file: the store checks each API key row's
// authenticator when it is looked up (store.ErrAPIKeyUnauthenticated).
package tokenapi

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/tokenwarden/tokenwarden/internal/apikeys"
	"github.com/tokenwarden/tokenwarden/internal/credential"
	"github.com/tokenwarden/tokenwarden/internal/store"
)

// Pattern is the token API's route on the worker's HTTP endpoint; the handler reads its
// {id} wildcard, so it must be served under this pattern. It takes every method, so
// that others get the API's own 405 rather than the next handler's answer.
const Pattern = "/v1/credentials/{id}/token"

const (
	// touchInterval is how often a credential's (and a key's) last-used time is
	// written at most, per worker: reads are frequent, the time is for humans.
	touchInterval = time.Minute
	// touchTimeout bounds the last-used write on the request path.
	touchTimeout = 2 * time.Second
	// retryUnavailable is the Retry-After of a 503: a refresh is under way or due.
	retryUnavailable = 5 * time.Second
)

// Store is the part of the token store the token API uses.
type Store interface {
	Get(ctx context.Context, id string) (store.Record, error)
	TouchLastUsed(ctx context.Context, id string, at time.Time) error
	LookupAPIKey(ctx context.Context, id string) (store.APIKey, error)
	TouchAPIKey(ctx context.Context, id string, at time.Time) error
}

// RateLimit is each API key's budget of requests: Burst at once, refilled at Rate per
// second (the worker's TOKENWARDEN_TOKEN_API_RATE and _BURST).
type RateLimit struct {
	Rate  float64
	Burst int
}

// Handler serves Pattern.
type Handler struct {
	store         Store
	logger        *slog.Logger
	now           func() time.Time
	limiter       *keyLimiter
	failures      *failureLimiter
	touchInterval time.Duration

	mu          sync.Mutex
	credTouched map[string]time.Time // credential ID -> last write of last_used_at
	keyTouched  map[string]time.Time // key ID -> last write of its last_used_at
}

// NewHandler serves the tokens of st to callers with an API key, each key held to
// perKey. now is the clock that decides expiry, rate limits and last-used times; nil
// is the real one.
func NewHandler(st Store, perKey RateLimit, logger *slog.Logger, now func() time.Time) *Handler {
	if now == nil {
		now = time.Now
	}
	return &Handler{
		store:         st,
		logger:        logger,
		now:           now,
		limiter:       newKeyLimiter(perKey.Rate, perKey.Burst),
		failures:      newFailureLimiter(defaultFailureLimits),
		touchInterval: touchInterval,
		credTouched:   map[string]time.Time{},
		keyTouched:    map[string]time.Time{},
	}
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

func (a *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		writeJSON(w, http.StatusMethodNotAllowed, errorResponse{Error: "method_not_allowed", Message: "use GET"})
		return
	}
	credID := r.PathValue("id")
	log := a.logger.With("credential", loggableID(credID, credential.ValidateID(credID) == nil), "remote", r.RemoteAddr)

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
func (a *Handler) authenticate(r *http.Request) (key store.APIKey, status int, code, msg string) {
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
func (a *Handler) refuse(w http.ResponseWriter, log *slog.Logger, status int, code, msg string, retryAfter time.Duration) {
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
func (a *Handler) touch(ctx context.Context, log *slog.Logger, last map[string]time.Time, id string, now time.Time,
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
