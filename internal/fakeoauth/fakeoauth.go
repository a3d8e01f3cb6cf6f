// Package fakeoauth is a fake OAuth 2.0 token endpoint (RFC 6749 section 6) for tests and
// demos that is strict where real providers are strict: refresh tokens rotate, each one
// is single-use, and presenting a used one is treated as theft (RFC 9700 section 4.14.2,
// "refresh token rotation" with reuse detection).
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
// # Faults
//
// InjectFault schedules misbehaviour, see Fault. Faults run either before the grant is
// processed (the token is not consumed; a retry with the same token is legitimate) or
// after it (the token is consumed and the new one minted, but the client never learns
// it: the crash window that tokenwarden's store-before-use protocol has to survive).
//
// # Counting presentations
//
// A presentation is any POST /token request carrying a refresh_token parameter, counted
// when the request arrives, before faults and client authentication. It measures what the
// client put on the wire, whatever the server did with it.
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

// Server is the fake token endpoint. It is an http.Handler serving POST /token; all
// methods are safe for concurrent use.
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
	reuseDetections int
	refreshes       int
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
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /token", s.serveToken)
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
	return s.http.URL + "/token"
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

// Requests returns how many requests reached POST /token.
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
