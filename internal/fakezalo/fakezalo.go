// Package fakezalo is a fake Zalo OAuth v4 token endpoint for tests and demos. It speaks
// Zalo's wire format on both token paths and is strict where Zalo is strict.
//
// # Wire format
//
//	POST /v4/oa/access_token   Official Account tokens (SeedOA, IssueCode with OA)
//	POST /v4/access_token      user tokens (SeedUser, IssueCode with User)
//
// The body is application/x-www-form-urlencoded with app_id, grant_type and either
// refresh_token (grant_type=refresh_token) or code and an optional code_verifier
// (grant_type=authorization_code). The app secret travels in the secret_key header.
// Every answer, errors included, is HTTP 200 with a JSON body, as Zalo does:
//
//	{"access_token":"...","refresh_token":"...","expires_in":90000}
//	{"error":-14014,"error_name":"Invalid refresh token","error_description":"...","error_reason":"","ref_doc":""}
//
// expires_in is a number, or a string ("90000") with Options.ExpiresInAsString.
// refresh_token_expires_in is sent only with Options.SendRefreshTokenExpiresIn.
//
// # Token families
//
// Each credential is one token family of one kind (OA or user), started by SeedOA,
// SeedUser or a code exchange. A successful refresh marks the presented refresh token
// used and mints a new access token and a new refresh token in the family; the new
// refresh token is the family's only live one, and earlier access tokens of the family
// stop working (Zalo invalidates the previous access token when it mints a new one).
// A token of one kind is unknown on the other kind's path.
//
// The rules, in the order they are checked (all answers are HTTP 200):
//
//	body not a form, a required field missing  -14001 Invalid parameter       (not processed)
//	app_id wrong (Options.AppID set)            -14002 Invalid appId           (not processed)
//	secret_key header wrong                     -14004 Invalid secret key      (not processed)
//	grant_type not refresh_token/authorization_code
//	                                            -14018 Invalid grant type      (not processed)
//	refresh token unknown, of the other kind,
//	  used, revoked or expired                  -14014 Invalid refresh token   (processed)
//	authorization code unknown, used, expired,
//	  or its PKCE verifier does not match       -14005 Invalid code            (processed)
//	otherwise                                   tokens; the refresh token or code is consumed
//
// -14002, -14004, -14005, -14014 and -14018 are codes integrators report from Zalo;
// -14001 is this fake's choice for malformed requests (Zalo's exact code for them is not
// established).
//
// # Reuse
//
// Presenting a used refresh token is answered -14014 and counted by ReuseDetections.
// Whether Zalo revokes the family on reuse is not documented, so by default it does
// not: the live successor keeps working. Options.RevokeOnReuse turns revocation on.
// Tests prove a client never reuses with MaxPresentations and MaxProcessed staying at 1
// and ReuseDetections at 0.
//
// # Counting
//
// Presentations counts what the client put on the wire: every request carrying a
// refresh_token form field, counted on arrival, before faults and checks. Processed
// counts what the grant logic acted on: requests that passed the app, secret and
// grant_type checks and had their refresh token looked up, whatever the outcome. A
// BeforeGrant fault's request is presented but not processed; an AfterGrant fault's
// request is both.
//
// # Faults
//
// InjectFault schedules misbehaviour (see Fault): before the grant (nothing consumed) or
// after it (the token is consumed and successors minted, but the client never learns
// them: the crash window tokenwarden has to survive).
package fakezalo

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
	"strings"
	"sync"
	"time"
)

// Paths served, the same as Zalo's.
const (
	OATokenPath   = "/v4/oa/access_token"
	UserTokenPath = "/v4/access_token"
)

// SecretKeyHeader carries the app secret.
const SecretKeyHeader = "secret_key"

// Defaults for zero Options fields.
const (
	// DefaultAccessLifetime is Zalo's 25 hours (expires_in 90000).
	DefaultAccessLifetime = 90000 * time.Second
	// DefaultRefreshLifetime is Zalo's "about three months".
	DefaultRefreshLifetime = 90 * 24 * time.Hour
	// DefaultCodeLifetime is how long an authorization code can be exchanged.
	DefaultCodeLifetime = 10 * time.Minute
)

// Zalo error codes the fake answers with.
const (
	ErrInvalidParameter    = -14001
	ErrInvalidAppID        = -14002
	ErrInvalidSecretKey    = -14004
	ErrInvalidCode         = -14005
	ErrInvalidRefreshToken = -14014
	ErrInvalidGrantType    = -14018
)

// Token prefixes make fake tokens recognisable in logs and test failures.
const (
	RefreshTokenPrefix = "zrt_"
	AccessTokenPrefix  = "zat_"
	CodePrefix         = "zcode_"
)

// Kind is the kind of a token family: Official Account or user.
type Kind int

const (
	// OA tokens are refreshed at OATokenPath.
	OA Kind = iota + 1
	// User tokens are refreshed at UserTokenPath.
	User
)

func (k Kind) String() string {
	switch k {
	case OA:
		return "oa"
	case User:
		return "user"
	}
	return fmt.Sprintf("Kind(%d)", int(k))
}

// Path returns the token path of the kind.
func (k Kind) Path() string {
	if k == User {
		return UserTokenPath
	}
	return OATokenPath
}

// Options configure a Server. The zero value checks no app, sends expires_in 90000 as a
// number, and lets refresh tokens live 90 days.
type Options struct {
	// AppID and AppSecret are the only app accepted. An empty AppID turns the app_id
	// and secret_key checks off.
	AppID     string
	AppSecret string
	// AccessLifetime is expires_in; 0 means DefaultAccessLifetime.
	AccessLifetime time.Duration
	// ExpiresInAsString sends expires_in (and refresh_token_expires_in) as JSON strings,
	// as Zalo sometimes does.
	ExpiresInAsString bool
	// RefreshLifetime is each refresh token's lifetime from minting; 0 means
	// DefaultRefreshLifetime, negative means never.
	RefreshLifetime time.Duration
	// SendRefreshTokenExpiresIn adds refresh_token_expires_in to token answers.
	SendRefreshTokenExpiresIn bool
	// CodeLifetime is how long an authorization code is valid; 0 means
	// DefaultCodeLifetime.
	CodeLifetime time.Duration
	// RevokeOnReuse revokes a family when one of its used refresh tokens is presented
	// again. Off by default: Zalo does not document doing so.
	RevokeOnReuse bool
	// Now is the clock for expiry; nil means time.Now.
	Now func() time.Time
	// Logger, if set, receives one record per request, tokens only as Fingerprints.
	Logger *slog.Logger
}

// Server is the fake. It is an http.Handler; all methods are safe for concurrent use.
type Server struct {
	opts    Options
	handler http.Handler
	done    chan struct{}

	closeOnce sync.Once
	httpMu    sync.Mutex
	http      *httptest.Server

	mu       sync.Mutex
	families map[string]*family
	refresh  map[string]*refreshToken
	access   map[string]*accessToken
	codes    map[string]*authCode
	faults   []*scheduledFault

	requests        int
	presentations   int
	perToken        map[string]int
	processed       map[string]int
	reuseDetections int
	refreshes       int
	exchanges       int
	inFlight        int
	maxInFlight     int
}

type family struct {
	name    string
	kind    Kind
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

type authCode struct {
	family    string
	kind      Kind
	challenge string // base64url(sha256(verifier)); "" when PKCE was not used
	expiresAt time.Time
	used      bool
}

// New returns a Server. It does not listen; use Start or mount it on any http.Server.
func New(opts Options) *Server {
	if opts.AccessLifetime <= 0 {
		opts.AccessLifetime = DefaultAccessLifetime
	}
	if opts.RefreshLifetime == 0 {
		opts.RefreshLifetime = DefaultRefreshLifetime
	}
	if opts.CodeLifetime <= 0 {
		opts.CodeLifetime = DefaultCodeLifetime
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	s := &Server{
		opts:      opts,
		done:      make(chan struct{}),
		families:  map[string]*family{},
		refresh:   map[string]*refreshToken{},
		access:    map[string]*accessToken{},
		codes:     map[string]*authCode{},
		perToken:  map[string]int{},
		processed: map[string]int{},
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST "+OATokenPath, func(w http.ResponseWriter, r *http.Request) { s.serveToken(w, r, OA) })
	mux.HandleFunc("POST "+UserTokenPath, func(w http.ResponseWriter, r *http.Request) { s.serveToken(w, r, User) })
	s.handler = mux
	return s
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.handler.ServeHTTP(w, r) }

// Start serves on a loopback listener and returns its base URL ("http://127.0.0.1:port"),
// which is what provider.Config.BaseURL takes. Close stops it.
func (s *Server) Start() (baseURL string) {
	s.httpMu.Lock()
	defer s.httpMu.Unlock()
	if s.http == nil {
		s.http = httptest.NewServer(s)
	}
	return s.http.URL
}

// URL returns the base URL Start opened, or "" before Start.
func (s *Server) URL() string {
	s.httpMu.Lock()
	defer s.httpMu.Unlock()
	if s.http == nil {
		return ""
	}
	return s.http.URL
}

// Close releases requests held by Hang or Latency faults and, if Start was used, shuts
// the listener down. It is idempotent.
func (s *Server) Close() {
	s.closeOnce.Do(func() { close(s.done) })
	s.httpMu.Lock()
	hs := s.http
	s.httpMu.Unlock()
	if hs != nil {
		hs.Close()
	}
}

// Serve answers requests on ln until ctx is done, then shuts down (at most 5 seconds).
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	hs := &http.Server{Handler: s, ReadHeaderTimeout: 10 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("fakezalo: serving %s: %w", ln.Addr(), err)
	case <-ctx.Done():
	}
	s.closeOnce.Do(func() { close(s.done) })
	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := hs.Shutdown(shutdownCtx); err != nil {
		return fmt.Errorf("fakezalo: shutting down %s: %w", ln.Addr(), err)
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("fakezalo: serving %s: %w", ln.Addr(), err)
	}
	return nil
}

// SeedOA starts an Official Account family afresh and returns its first refresh token.
// Seeding an existing family is a re-authorization: its earlier tokens are revoked.
func (s *Server) SeedOA(familyName string) (refreshToken string) { return s.seed(OA, familyName) }

// SeedUser is SeedOA for a user-token family.
func (s *Server) SeedUser(familyName string) (refreshToken string) { return s.seed(User, familyName) }

func (s *Server) seed(kind Kind, familyName string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.mintRefreshLocked(s.newFamilyLocked(kind, familyName))
}

func (s *Server) newFamilyLocked(kind Kind, familyName string) *family {
	if old, ok := s.families[familyName]; ok {
		s.revokeLocked(old)
	}
	f := &family{name: familyName, kind: kind}
	s.families[familyName] = f
	return f
}

// IssueCode returns an authorization code, as Zalo's permission page would after the
// user (or OA admin) consents. Exchanging it starts familyName afresh with the given
// kind. codeChallenge is CodeChallenge(verifier) when the authorization used PKCE, or
// "" when it did not; the exchange must then present the matching code_verifier.
func (s *Server) IssueCode(kind Kind, familyName, codeChallenge string) (code string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	code = CodePrefix + randomString()
	s.codes[code] = &authCode{family: familyName, kind: kind, challenge: codeChallenge,
		expiresAt: s.opts.Now().Add(s.opts.CodeLifetime)}
	return code
}

// CodeChallenge returns the S256 PKCE challenge of verifier: base64url(sha256(verifier))
// without padding.
func CodeChallenge(verifier string) string {
	sum := sha256.Sum256([]byte(verifier))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// RevokeFamily revokes every token of the family, as when the OA admin or user removes
// the app's authorization. It reports whether the family existed. It is not reuse.
func (s *Server) RevokeFamily(familyName string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	f, ok := s.families[familyName]
	if ok {
		s.revokeLocked(f)
	}
	return ok
}

// Requests returns how many requests reached a token path.
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

// MaxPresentations returns the highest Presentations over all refresh tokens ever
// presented, or 0. A correct client without before-faults keeps it at 1.
func (s *Server) MaxPresentations() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := 0
	for _, n := range s.perToken {
		m = max(m, n)
	}
	return m
}

// Processed returns how many times the grant logic acted on this refresh token value.
func (s *Server) Processed(refreshToken string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.processed[refreshToken]
}

// MaxProcessed returns the highest Processed over all refresh tokens, or 0. Above 1
// means Zalo saw a token twice, which is reuse.
func (s *Server) MaxProcessed() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := 0
	for _, n := range s.processed {
		m = max(m, n)
	}
	return m
}

// Refreshes returns how many refresh grants succeeded (the token was consumed),
// including those whose answer an AfterGrant fault replaced.
func (s *Server) Refreshes() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.refreshes
}

// Exchanges returns how many authorization codes were successfully exchanged.
func (s *Server) Exchanges() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.exchanges
}

// ReuseDetections returns how many times a used refresh token was presented.
func (s *Server) ReuseDetections() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.reuseDetections
}

// InFlight returns how many requests are being handled right now.
func (s *Server) InFlight() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.inFlight
}

// MaxConcurrent returns the most requests ever in flight at once.
func (s *Server) MaxConcurrent() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.maxInFlight
}

// Latest returns the family's live refresh token. ok is false if the family is
// unknown or revoked, or its live token has expired.
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

// Revoked reports whether the family is revoked.
func (s *Server) Revoked(familyName string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	f, ok := s.families[familyName]
	return ok && f.revoked
}

// ValidAccessToken reports whether token was issued here, is its family's newest,
// unexpired, and not revoked.
func (s *Server) ValidAccessToken(token string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	at, ok := s.access[token]
	return ok && !at.revoked && !s.expiredLocked(at.expiresAt)
}

// Fingerprint is a short, non-reversible name for a token, safe to log.
func Fingerprint(token string) string {
	if token == "" {
		return "-"
	}
	sum := sha256.Sum256([]byte(token))
	prefix := ""
	for _, p := range []string{RefreshTokenPrefix, AccessTokenPrefix, CodePrefix} {
		if strings.HasPrefix(token, p) && len(token) > len(p) {
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

// mintAccessLocked issues a new access token and retires the family's earlier ones.
func (s *Server) mintAccessLocked(f *family) string {
	for _, old := range f.access {
		s.access[old].revoked = true
	}
	t := AccessTokenPrefix + randomString()
	s.access[t] = &accessToken{family: f, expiresAt: s.opts.Now().Add(s.opts.AccessLifetime)}
	f.access = append(f.access, t)
	return t
}

// randomString returns 256 bits from crypto/rand, base64url without padding, the
// alphabet Zalo tokens use.
func randomString() string {
	var b [32]byte
	rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}
