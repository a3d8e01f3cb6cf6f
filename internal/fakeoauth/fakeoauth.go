// Package fakeoauth is a fake OAuth 2.0 token endpoint (RFC 6749 section 6) for tests and
// demos that is strict where real providers are strict: refresh tokens rotate, each one
// is single-use, and presenting a used one is treated as theft (RFC 9700 section 4.14.2,
// "refresh token rotation" with reuse detection). Next to it, an RFC 7662 introspection
// endpoint tells whether a token is live without spending it.
//
// # Token families
//
// Every credential is one token family, started by Seed. A successful refresh marks the
// presented refresh token used, and mints a new access token and a new refresh token in
// the same family; the new refresh token is the family's only live one. Presenting a
// refresh token that was already used revokes the family: every refresh and access token
// in it, including the live successor, stops working, and ReuseDetections goes up. That
// is the behaviour tokenwarden must never trigger, and MaxPresentations is how tests prove
// it didn't: on the happy path every refresh token is presented exactly once.
//
// The rules, in the order they are checked for grant_type=refresh_token:
//
//	token unknown                      400 invalid_grant
//	token already used                 400 invalid_grant, family revoked, reuse counted
//	family revoked                     400 invalid_grant
//	token expired (RefreshLifetime)    400 invalid_grant
//	otherwise                          200, token marked used, new access + refresh token
//
// With Options.NoRotation the response carries no refresh_token and the presented token
// stays valid (and reusable), like providers that never rotate.
//
// Client authentication (RFC 6749 section 2.3.1) is accepted as HTTP Basic or as
// client_id/client_secret form fields, but not both at once (400 invalid_request). A
// missing or wrong client is 401 invalid_client. An empty Options.ClientID disables
// client authentication altogether.
//
// # Introspection
//
// POST /introspect (IntrospectionPath) implements RFC 7662: the form carries token and an
// optional token_type_hint (ignored, as section 2.1 allows: both token kinds are
// searched), and the client authenticates exactly as at /token. A refresh token is
// active only if it is its family's current token, unused, unexpired and unrevoked:
//
//	{"active":true,"token_type":"refresh_token","client_id":"...","exp":1893456000}
//
// (exp only when the token expires, client_id only when client authentication is on).
// An access token is active when ValidAccessToken says so, answered with token_type
// "Bearer". Everything else, unknown strings included, is {"active":false}.
//
// Introspection is a question, not a presentation. It never consumes a token, never
// triggers reuse detection, and is not counted by Requests, Presentations or Processed;
// Introspections counts it instead. That is the property tokenwarden relies on: after an
// interrupted refresh it can learn whether the provider consumed the token without
// presenting it a second time.
//
// # Faults
//
// InjectFault schedules misbehaviour, see Fault. Faults run either before the grant is
// processed (the token is not consumed; a retry with the same token is legitimate) or
// after it (the token is consumed and the new one minted, but the client never learns
// it: the crash window that tokenwarden's store-before-use protocol has to survive).
//
// # Counting presentations, processing and concurrency
//
// Two counters answer two different questions about a refresh token:
//
//   - Presentations: what the client put on the wire. Any POST /token request carrying a
//     refresh_token parameter, counted when the request arrives, before faults and
//     client authentication, whatever the server then did with it.
//   - Processed: what the provider acted on. Counted when the grant logic looks the
//     presented token up, after client authentication and grant_type checks, whatever
//     the outcome: used, or rejected as unknown, reused, revoked or expired. A request
//     that never got that far is not processed: one answered or dropped by a BeforeGrant
//     fault (including a BeforeGrant FaultLatency whose client went away during the
//     wait), one with a malformed body, failed client authentication or the wrong
//     grant_type. An AfterGrant fault strikes after processing, so its request counts.
//
// Presentations(t) > Processed(t) means some presentations never reached the grant
// logic; Processed(t) > 1 with rotation on means the provider saw the token twice, which
// is reuse. MaxProcessed is the provider-side view of MaxPresentations.
//
// InFlight, MaxConcurrent and MaxConcurrentFor measure overlap at the token endpoint: a
// request is in flight from its arrival until its handler returns, fault waits included
// (an AfterGrant latency whose client left is still in flight: the provider is still
// busy with it). A request belongs to the family of the refresh token it carries, looked
// up on arrival; requests with an unknown or no token count only towards MaxConcurrent.
// MaxConcurrentFor(family) > 1 proves that one credential had two refreshes racing.
package fakeoauth

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"time"
)

// DefaultAccessLifetime is the access token lifetime when Options.AccessLifetime is 0.
const DefaultAccessLifetime = time.Hour

// Token prefixes make fake tokens recognisable in logs and test failures.
const (
	RefreshTokenPrefix = "rt_"
	AccessTokenPrefix  = "at_"
)

// Options configure a Server. The zero value is a rotating server without client
// authentication, one-hour access tokens and refresh tokens that never expire.
type Options struct {
	// AccessLifetime is the access token lifetime (expires_in); 0 means
	// DefaultAccessLifetime.
	AccessLifetime time.Duration
	// RefreshLifetime is each refresh token's lifetime, counted from when it is minted
	// (refresh_token_expires_in); 0 means refresh tokens do not expire.
	RefreshLifetime time.Duration
	// ClientID and ClientSecret are the only client accepted. An empty ClientID turns
	// client authentication off.
	ClientID     string
	ClientSecret string
	// Now is the clock for expiry; nil means time.Now.
	Now func() time.Time
	// NoRotation makes the server answer without a refresh_token and keep the presented
	// one valid. The zero value rotates, which is the case tokenwarden exists for.
	NoRotation bool
	// Logger, if set, receives one record per token request. Tokens are logged only as
	// Fingerprint values.
	Logger *slog.Logger
}

// Endpoint paths served by a Server.
const (
	TokenPath         = "/token"
	IntrospectionPath = "/introspect"
)

// Server is the fake token endpoint. It is an http.Handler serving POST /token and
// POST /introspect; all methods are safe for concurrent use.
type Server struct {
	opts    Options
	handler http.Handler
	done    chan struct{} // closed by Close; releases hanging requests

	closeOnce sync.Once
	httpMu    sync.Mutex
	http      *httptest.Server

	mu       sync.Mutex
	families map[string]*family
	refresh  map[string]*refreshToken
	access   map[string]*accessToken
	faults   []*scheduledFault

	requests        int
	presentations   int
	perToken        map[string]int
	processed       map[string]int // per refresh token value, see Processed
	reuseDetections int
	refreshes       int
	introspections  int

	// Token-endpoint requests in flight, overall and per family name, with their peaks.
	inFlight          int
	maxInFlight       int
	familyInFlight    map[string]int
	familyMaxInFlight map[string]int
}

type family struct {
	name    string
	live    string // the current refresh token, "" when revoked
	revoked bool
	refresh []string
	access  []string
}

type refreshToken struct {
	family    *family
	expiresAt time.Time // zero: never
	used      bool
	revoked   bool
}

type accessToken struct {
	family    *family
	expiresAt time.Time
	revoked   bool
}

// New returns a Server with the given options. It does not listen; use Start, Serve, or
// mount it on any http.Server.
func New(opts Options) *Server {
	if opts.AccessLifetime <= 0 {
		opts.AccessLifetime = DefaultAccessLifetime
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	s := &Server{
		opts:     opts,
		done:     make(chan struct{}),
		families: map[string]*family{},
		refresh:  map[string]*refreshToken{},
		access:   map[string]*accessToken{},
		perToken: map[string]int{},

		processed:         map[string]int{},
		familyInFlight:    map[string]int{},
		familyMaxInFlight: map[string]int{},
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST "+TokenPath, s.serveToken)
	mux.HandleFunc("POST "+IntrospectionPath, s.serveIntrospect)
	s.handler = mux
	return s
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.handler.ServeHTTP(w, r) }

// Start serves on a loopback httptest listener and returns the token endpoint URL
// (".../token"). Close stops it.
func (s *Server) Start() (tokenURL string) {
	s.httpMu.Lock()
	defer s.httpMu.Unlock()
	if s.http == nil {
		s.http = httptest.NewServer(s)
	}
	return s.http.URL + TokenPath
}

// URL returns the base URL of the listener Start opened ("http://127.0.0.1:port"), or ""
// before Start. Endpoints are at URL()+TokenPath and URL()+IntrospectionPath.
func (s *Server) URL() string {
	s.httpMu.Lock()
	defer s.httpMu.Unlock()
	if s.http == nil {
		return ""
	}
	return s.http.URL
}

// IntrospectionURL returns the RFC 7662 introspection endpoint of the listener Start
// opened, or "" before Start.
func (s *Server) IntrospectionURL() string {
	base := s.URL()
	if base == "" {
		return ""
	}
	return base + IntrospectionPath
}

// Close releases every request held by a Hang or Latency fault and, if Start was used,
// shuts the listener down and waits for in-flight requests. It is idempotent.
func (s *Server) Close() {
	s.closeOnce.Do(func() { close(s.done) })
	s.httpMu.Lock()
	hs := s.http
	s.httpMu.Unlock()
	if hs != nil {
		hs.Close()
	}
}

// Serve answers requests on ln until ctx is done, then releases hanging requests and
// shuts down gracefully (at most 5 seconds). It returns nil after a ctx-initiated stop.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	hs := &http.Server{Handler: s, ReadHeaderTimeout: 10 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("fakeoauth: serving %s: %w", ln.Addr(), err)
	case <-ctx.Done():
	}
	s.closeOnce.Do(func() { close(s.done) })
	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := hs.Shutdown(shutdownCtx); err != nil {
		return fmt.Errorf("fakeoauth: shutting down %s: %w", ln.Addr(), err)
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("fakeoauth: serving %s: %w", ln.Addr(), err)
	}
	return nil
}

// Seed starts family afresh and returns its first refresh token. Seeding an existing
// family is a re-authorization: every earlier token of the family is revoked, and the
// family is live again with only the new token.
func (s *Server) Seed(familyName string) (refreshToken string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if old, ok := s.families[familyName]; ok {
		s.revokeLocked(old)
	}
	f := &family{name: familyName}
	s.families[familyName] = f
	return s.mintRefreshLocked(f)
}

// RevokeFamily revokes every token of the family, as when a user withdraws consent at
// the provider. It reports whether the family existed. It does not count as reuse.
func (s *Server) RevokeFamily(familyName string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	f, ok := s.families[familyName]
	if ok {
		s.revokeLocked(f)
	}
	return ok
}

// Requests returns how many requests reached POST /token (introspections are not
// included; see Introspections).
func (s *Server) Requests() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.requests
}

// TotalPresentations returns how many requests carried a refresh token, any token.
func (s *Server) TotalPresentations() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.presentations
}

// Presentations returns how many requests carried this refresh token value.
func (s *Server) Presentations(refreshToken string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.perToken[refreshToken]
}

// MaxPresentations returns the highest Presentations over all refresh token values ever
// presented, or 0 if none was. With rotation and no before-faults, a correct client keeps
// it at 1.
func (s *Server) MaxPresentations() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := 0
	for _, n := range s.perToken {
		m = max(m, n)
	}
	return m
}

// Processed returns how many times the grant logic acted on this refresh token value
// (see the package documentation for what counts). Presentations minus Processed is
// what was put on the wire but never reached the grant logic.
func (s *Server) Processed(refreshToken string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.processed[refreshToken]
}

// MaxProcessed returns the highest Processed over all refresh token values, or 0. With
// rotation, anything above 1 means the provider saw a token twice, which is reuse.
func (s *Server) MaxProcessed() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := 0
	for _, n := range s.processed {
		m = max(m, n)
	}
	return m
}

// Introspections returns how many requests reached POST /introspect, counted on arrival
// like Requests.
func (s *Server) Introspections() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.introspections
}

// InFlight returns how many token-endpoint requests are being handled right now. Tests
// wait for 0 to know that a handler has finished, for instance that a request whose
// client left really gave up without processing the grant.
func (s *Server) InFlight() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.inFlight
}

// MaxConcurrent returns the most token-endpoint requests ever in flight at once, over
// all families.
func (s *Server) MaxConcurrent() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.maxInFlight
}

// MaxConcurrentFor returns the most token-endpoint requests ever in flight at once for
// the named family (by the token they carried on arrival), or 0 if it had none.
// Anything above 1 means one credential had overlapping refreshes.
func (s *Server) MaxConcurrentFor(familyName string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.familyMaxInFlight[familyName]
}

// ReuseDetections returns how many times a used refresh token was presented.
func (s *Server) ReuseDetections() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.reuseDetections
}

// Refreshes returns how many refresh grants succeeded (the token was consumed), including
// those whose answer an after-fault then replaced.
func (s *Server) Refreshes() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.refreshes
}

// Latest returns the family's currently valid refresh token. ok is false if the family
// is unknown or revoked, or its live token has expired.
func (s *Server) Latest(familyName string) (refreshToken string, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f, found := s.families[familyName]
	if !found || f.revoked || f.live == "" {
		return "", false
	}
	if rt := s.refresh[f.live]; rt == nil || s.expiredLocked(rt.expiresAt) {
		return "", false
	}
	return f.live, true
}

// Revoked reports whether the family is revoked (reuse detected or RevokeFamily).
func (s *Server) Revoked(familyName string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	f, ok := s.families[familyName]
	return ok && f.revoked
}

// ValidAccessToken reports whether token was issued here, is unexpired, and its family
// was not revoked: an introspection helper for probes that "call the API".
func (s *Server) ValidAccessToken(token string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	at, ok := s.access[token]
	return ok && !at.revoked && !s.expiredLocked(at.expiresAt)
}

// Fingerprint is a short, non-reversible name for a token, safe to log: the first 12 hex
// digits of its SHA-256, after the token's prefix.
func Fingerprint(token string) string {
	if token == "" {
		return "-"
	}
	sum := sha256.Sum256([]byte(token))
	prefix := ""
	for _, p := range []string{RefreshTokenPrefix, AccessTokenPrefix} {
		if len(token) > len(p) && token[:len(p)] == p {
			prefix = p
		}
	}
	return prefix + hex.EncodeToString(sum[:6])
}

// enterLocked records a token-endpoint request arriving for familyName ("" = unknown).
func (s *Server) enterLocked(familyName string) {
	s.inFlight++
	s.maxInFlight = max(s.maxInFlight, s.inFlight)
	if familyName != "" {
		s.familyInFlight[familyName]++
		s.familyMaxInFlight[familyName] = max(s.familyMaxInFlight[familyName], s.familyInFlight[familyName])
	}
}

// leave records the end of a request counted by enterLocked.
func (s *Server) leave(familyName string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.inFlight--
	if familyName != "" {
		s.familyInFlight[familyName]--
		if s.familyInFlight[familyName] == 0 {
			delete(s.familyInFlight, familyName)
		}
	}
}

func (s *Server) expiredLocked(expiresAt time.Time) bool {
	return !expiresAt.IsZero() && !s.opts.Now().Before(expiresAt)
}

func (s *Server) revokeLocked(f *family) {
	f.revoked = true
	f.live = ""
	for _, t := range f.refresh {
		s.refresh[t].revoked = true
	}
	for _, t := range f.access {
		s.access[t].revoked = true
	}
}

func (s *Server) mintRefreshLocked(f *family) string {
	t := RefreshTokenPrefix + randomString()
	rt := &refreshToken{family: f}
	if s.opts.RefreshLifetime > 0 {
		rt.expiresAt = s.opts.Now().Add(s.opts.RefreshLifetime)
	}
	s.refresh[t] = rt
	f.refresh = append(f.refresh, t)
	f.live = t
	return t
}

func (s *Server) mintAccessLocked(f *family) string {
	t := AccessTokenPrefix + randomString()
	s.access[t] = &accessToken{family: f, expiresAt: s.opts.Now().Add(s.opts.AccessLifetime)}
	f.access = append(f.access, t)
	return t
}

// randomString returns 256 bits from crypto/rand, base64url without padding.
func randomString() string {
	var b [32]byte
	rand.Read(b[:]) // never fails (crypto/rand panics rather than return an error)
	return base64.RawURLEncoding.EncodeToString(b[:])
}
