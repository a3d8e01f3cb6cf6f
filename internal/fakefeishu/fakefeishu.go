// Package fakefeishu is a fake Feishu/Lark open platform for tests and demos: the OAuth
// v2 token endpoint that refreshes user_access_tokens and the v3 endpoint that mints an
// internal app's tenant_access_token, with Feishu's rules.
//
// # User tokens (POST /open-apis/authen/v2/oauth/token)
//
// The request is JSON: {"grant_type":"refresh_token","client_id","client_secret",
// "refresh_token","scope"?}. Every user grant is one token family, started by Seed.
// Refresh tokens are single-use and rotate: a successful refresh marks the presented
// token used and mints a new access token and a new refresh token. The rules, in order:
//
//	body not JSON / grant_type wrong / refresh_token missing   400 code 20001 invalid_request / unsupported_grant_type
//	client_id or client_secret wrong                           400 code 20002 invalid_client
//	token unknown                                              400 code 20026 invalid_grant
//	token already used                                         400 code 20073 invalid_grant (reuse counted;
//	                                                                family revoked with Options.RevokeOnReuse)
//	token or family revoked                                    400 code 20064 invalid_grant
//	token expired (RefreshLifetime)                            400 code 20037 invalid_grant
//	otherwise                                                  200 {"code":0,"access_token","expires_in",
//	                                                                "refresh_token","refresh_token_expires_in",
//	                                                                "token_type":"Bearer","scope"}
//
// # Tenant tokens (POST /open-apis/auth/v3/tenant_access_token/internal)
//
// The request is JSON {"app_id","app_secret"}; a missing field is code 10003 "invalid
// param", a wrong one code 10014 "app secret invalid" (HTTP 400). While the current
// tenant token has ReissueWindow (default 30 minutes) or more left, the answer is that
// same token with its remaining lifetime as "expire"; inside the window a new token is
// minted for TenantLifetime, and the old one stays valid until it expires, as on Feishu.
// Options.Now makes both sides of the line testable.
//
// # Counters and faults
//
// Presentations counts what the client put on the wire (every user-endpoint request
// carrying a refresh_token, on arrival); Processed counts what the grant logic acted on
// (after the JSON, grant_type and client checks, whatever the outcome). On the happy
// path MaxPresentations and MaxProcessed stay at 1. InjectFault schedules misbehaviour
// before the grant is processed (nothing consumed) or after it (the token is consumed,
// the client never learns its successor).
package fakefeishu

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"net/http"
	"net/http/httptest"
	"sync"
	"time"
)

// Endpoint paths, as on open.feishu.cn.
const (
	UserTokenPath   = "/open-apis/authen/v2/oauth/token"
	TenantTokenPath = "/open-apis/auth/v3/tenant_access_token/internal"
)

// Defaults for zero Options fields, Feishu's values.
const (
	DefaultUserAccessLifetime = 2 * time.Hour
	DefaultRefreshLifetime    = 7 * 24 * time.Hour
	DefaultTenantLifetime     = 2 * time.Hour
	DefaultReissueWindow      = 30 * time.Minute
)

// Token prefixes, as Feishu's (u- user, ur- refresh, t- tenant).
const (
	UserAccessPrefix   = "u-"
	RefreshTokenPrefix = "ur-"
	TenantTokenPrefix  = "t-"
)

// Feishu codes the fake answers with.
const (
	CodeInvalidRequest      = 20001
	CodeInvalidClient       = 20002
	CodeRefreshTokenInvalid = 20026
	CodeRefreshTokenExpired = 20037
	CodeServerError         = 20050
	CodeRefreshTokenRevoked = 20064
	CodeRefreshTokenUsed    = 20073
	CodeInvalidParam        = 10003
	CodeAppSecretInvalid    = 10014
	CodeRateLimited         = 99991400
)

// Options configure a Server.
type Options struct {
	// AppID and AppSecret are the one app accepted by both endpoints. Required.
	AppID, AppSecret string
	// UserAccessLifetime is expires_in of user access tokens (0: 2h).
	UserAccessLifetime time.Duration
	// RefreshLifetime is refresh_token_expires_in, counted from minting (0: 7 days;
	// negative: refresh tokens never expire and the field is omitted).
	RefreshLifetime time.Duration
	// TenantLifetime is the "expire" of a newly minted tenant token (0: 2h).
	TenantLifetime time.Duration
	// ReissueWindow: a tenant mint re-issues the current token while at least this much
	// of it is left (0: 30m; negative: always mint a new one).
	ReissueWindow time.Duration
	// RevokeOnReuse revokes the whole family when a used refresh token is presented.
	RevokeOnReuse bool
	// Now is the clock for every lifetime (nil: time.Now).
	Now func() time.Time
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
	access   map[string]*expiring
	tenant   map[string]*expiring
	current  string // the current tenant token
	faults   []*scheduledFault

	requests        map[string]int // per path
	presentations   int
	perToken        map[string]int
	processed       map[string]int
	refreshes       int
	reuseDetections int
	tenantMints     int
	tenantReissues  int
	inFlight        int
}

type family struct {
	name    string
	live    string
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

type expiring struct {
	family    *family // nil for tenant tokens
	expiresAt time.Time
	revoked   bool
}

// New returns a Server; it does not listen (see Start).
func New(opts Options) *Server {
	if opts.UserAccessLifetime <= 0 {
		opts.UserAccessLifetime = DefaultUserAccessLifetime
	}
	if opts.RefreshLifetime == 0 {
		opts.RefreshLifetime = DefaultRefreshLifetime
	}
	if opts.TenantLifetime <= 0 {
		opts.TenantLifetime = DefaultTenantLifetime
	}
	if opts.ReissueWindow == 0 {
		opts.ReissueWindow = DefaultReissueWindow
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	s := &Server{
		opts:     opts,
		done:     make(chan struct{}),
		families: map[string]*family{},
		refresh:  map[string]*refreshToken{},
		access:   map[string]*expiring{},
		tenant:   map[string]*expiring{},
		requests: map[string]int{},
		perToken: map[string]int{},

		processed: map[string]int{},
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST "+UserTokenPath, s.serveUser)
	mux.HandleFunc("POST "+TenantTokenPath, s.serveTenant)
	s.handler = mux
	return s
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.handler.ServeHTTP(w, r) }

// Start serves on a loopback listener and returns its base URL ("http://127.0.0.1:port"),
// what a credential's config.base_url names.
func (s *Server) Start() (baseURL string) {
	s.httpMu.Lock()
	defer s.httpMu.Unlock()
	if s.http == nil {
		s.http = httptest.NewServer(s)
	}
	return s.http.URL
}

// URL returns the base URL after Start, or "".
func (s *Server) URL() string {
	s.httpMu.Lock()
	defer s.httpMu.Unlock()
	if s.http == nil {
		return ""
	}
	return s.http.URL
}

// Close releases hanging requests and stops the listener. It is idempotent.
func (s *Server) Close() {
	s.closeOnce.Do(func() { close(s.done) })
	s.httpMu.Lock()
	hs := s.http
	s.httpMu.Unlock()
	if hs != nil {
		hs.Close()
	}
}

// Seed starts a user grant (an authorization) and returns its first refresh token.
// Seeding an existing family revokes its earlier tokens.
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

// RevokeFamily revokes every token of the family (the user withdrew consent). It
// reports whether the family existed.
func (s *Server) RevokeFamily(familyName string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	f, ok := s.families[familyName]
	if ok {
		s.revokeLocked(f)
	}
	return ok
}

// Requests returns how many requests reached path (UserTokenPath or TenantTokenPath).
func (s *Server) Requests(path string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.requests[path]
}

// TotalPresentations returns how many user-endpoint requests carried a refresh token.
func (s *Server) TotalPresentations() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.presentations
}

// Presentations returns how many requests carried this refresh token.
func (s *Server) Presentations(refreshToken string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.perToken[refreshToken]
}

// MaxPresentations returns the highest Presentations over all refresh tokens, or 0.
func (s *Server) MaxPresentations() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return maxOf(s.perToken)
}

// Processed returns how many times the grant logic acted on this refresh token.
func (s *Server) Processed(refreshToken string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.processed[refreshToken]
}

// MaxProcessed returns the highest Processed over all refresh tokens, or 0. Above 1
// means Feishu saw a token twice.
func (s *Server) MaxProcessed() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return maxOf(s.processed)
}

// Refreshes returns how many user refreshes succeeded (the token was consumed),
// including those whose answer an after-fault replaced.
func (s *Server) Refreshes() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.refreshes
}

// ReuseDetections returns how many times a used refresh token was presented.
func (s *Server) ReuseDetections() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.reuseDetections
}

// TenantMints returns how many new tenant tokens were minted.
func (s *Server) TenantMints() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.tenantMints
}

// TenantReissues returns how many tenant requests got the current token back.
func (s *Server) TenantReissues() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.tenantReissues
}

// CurrentTenantToken returns the newest tenant token, or "" before the first mint.
func (s *Server) CurrentTenantToken() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.current
}

// InFlight returns how many requests are being handled right now.
func (s *Server) InFlight() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.inFlight
}

// Latest returns the family's live refresh token; ok is false if the family is
// unknown, revoked, or its live token expired.
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

// ValidUserAccessToken reports whether token is an unexpired, unrevoked user token.
func (s *Server) ValidUserAccessToken(token string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	at, ok := s.access[token]
	return ok && !at.revoked && !s.expiredLocked(at.expiresAt)
}

// ValidTenantToken reports whether token is an unexpired tenant token.
func (s *Server) ValidTenantToken(token string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	tt, ok := s.tenant[token]
	return ok && !s.expiredLocked(tt.expiresAt)
}

// Fingerprint is a short, non-reversible, loggable name for a token.
func Fingerprint(token string) string {
	if token == "" {
		return "-"
	}
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:6])
}

func maxOf(m map[string]int) int {
	n := 0
	for _, v := range m {
		n = max(n, v)
	}
	return n
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
	t := UserAccessPrefix + randomString()
	s.access[t] = &expiring{family: f, expiresAt: s.opts.Now().Add(s.opts.UserAccessLifetime)}
	f.access = append(f.access, t)
	return t
}

func randomString() string {
	var b [32]byte
	rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}
