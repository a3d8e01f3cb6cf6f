// Package feishutest is a fake Feishu/Lark open platform for tests and demos: the OAuth
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
//	token already used                                         400 code 20064 invalid_grant (Options.ReuseCode;
//	                                                                reuse counted; family revoked with
//	                                                                Options.RevokeOnReuse)
//	token or family revoked                                    400 code 20064 invalid_grant
//	token expired (RefreshLifetime)                            400 code 20037 invalid_grant
//	otherwise                                                  200 {"code":0,"access_token","expires_in",
//	                                                                "refresh_token","refresh_token_expires_in",
//	                                                                "token_type":"Bearer","scope"}
//
// Errors are {"error","error_description","code"}, in that order. A spent refresh token
// presented again gets what the Feishu bug report (seed 001) shows, word for word:
//
//	HTTP 400 {"error":"invalid_grant","error_description":"The refresh token has been revoked.
//	Please note that a refresh token can only be used once.","code":20064}
//
// Feishu has a second code for the same mistake, 20073 ("already used"; package feishu
// classifies both), and the report does not say when which one comes; with
// Options.ReuseCode = CodeRefreshTokenUsed the fake answers reuse with 20073 instead, so
// clients are tested against both.
//
// # Authorization codes (GET /open-apis/authen/v1/authorize)
//
// The consent page (package consent: Approve, Deny) takes client_id (the AppID),
// response_type=code, redirect_uri (one of Options.RedirectURIs; any loopback URI when
// none is set), scope, state and an optional S256 code_challenge. The code it issues is
// exchanged at the v2 token endpoint with {"grant_type":"authorization_code",
// "client_id","client_secret","code","redirect_uri","code_verifier"}: once (every
// presentation burns it), within CodeLifetime, with the same redirect_uri and the
// verifier of the challenge. A refresh token comes only with scope offline_access.
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
package feishutest

import (
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/tokenwarden/tokenwarden/internal/provider/providertest"
	"github.com/tokenwarden/tokenwarden/internal/provider/providertest/consent"
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
	// Refusals of an authorization code. Feishu's documentation lists these numbers for
	// the v2 code exchange as integrators report them; the adapter treats every non-zero
	// code of a refused exchange alike (Permanent), so the fake's exact choice matters
	// only for its own tests.
	CodeInvalidCode      = 20003
	CodeCodeExpired      = 20004
	CodePKCEFailed       = 20049
	CodeCodeUsed         = 20065
	CodeRedirectMismatch = 20071
)

// AuthorizePath serves the consent page (on Feishu it is on the accounts host).
const AuthorizePath = "/open-apis/authen/v1/authorize"

// CodePrefix starts every authorization code.
const CodePrefix = "fcode-"

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
	// ReuseCode is the code a used refresh token presented again is answered with:
	// CodeRefreshTokenRevoked (20064, what the seed report saw; the default for 0) or
	// CodeRefreshTokenUsed (20073). New panics on any other value.
	ReuseCode int
	// Now is the clock for every lifetime (nil: time.Now).
	Now func() time.Time
	// RedirectURIs are the app's registered redirect URLs (see
	// consent.RedirectAllowed); none admits any loopback http URI.
	RedirectURIs []string
	// CodeLifetime is how long an authorization code can be exchanged (0: 5 minutes, as
	// Feishu documents).
	CodeLifetime time.Duration
}

// Server is the fake. It is an http.Handler; all methods are safe for concurrent use.
type Server struct {
	providertest.Lifecycle // Start, URL, Close, Serve
	providertest.Counters  // Presentations, Processed, Refreshes, Latest, RevokeFamily, ...

	opts    Options
	handler http.Handler
	faults  providertest.Schedule[Fault]
	ledger  *providertest.Ledger

	codes *consent.Codes

	mu             sync.Mutex
	tenant         map[string]time.Time // tenant token -> expiry
	current        string               // the current tenant token
	tenantMints    int
	tenantReissues int
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
	switch opts.ReuseCode {
	case 0:
		opts.ReuseCode = CodeRefreshTokenRevoked
	case CodeRefreshTokenRevoked, CodeRefreshTokenUsed:
	default:
		panic(fmt.Sprintf("fakefeishu: Options.ReuseCode %d: want %d or %d", opts.ReuseCode, CodeRefreshTokenRevoked, CodeRefreshTokenUsed))
	}
	s := &Server{
		opts: opts,
		ledger: providertest.New(providertest.Options{
			RefreshToken:    providertest.Prefixed(RefreshTokenPrefix),
			AccessToken:     providertest.Prefixed(UserAccessPrefix),
			RefreshLifetime: opts.RefreshLifetime,
			AccessLifetime:  opts.UserAccessLifetime,
			Now:             opts.Now,
		}),
		tenant: map[string]time.Time{},
	}
	s.Counters = s.ledger.Counters
	if opts.CodeLifetime <= 0 {
		opts.CodeLifetime = 5 * time.Minute
	}
	s.codes = consent.NewCodes(CodePrefix, opts.CodeLifetime, opts.Now)
	s.Name, s.Handler = "fakefeishu", s
	mux := http.NewServeMux()
	mux.Handle(AuthorizePath, &consent.Page{Provider: "Feishu (fake)", Codes: s.codes, Parse: s.parseAuthorization})
	mux.HandleFunc("POST "+UserTokenPath, s.serveUser)
	mux.HandleFunc("POST "+TenantTokenPath, s.serveTenant)
	mux.HandleFunc("GET "+UserInfoPath, s.serveUserInfo)
	s.handler = mux
	return s
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.handler.ServeHTTP(w, r) }

// Seed starts a user grant (an authorization) and returns its first refresh token.
// Seeding an existing family revokes its earlier tokens.
func (s *Server) Seed(familyName string) (refreshToken string) { return s.ledger.Seed(familyName, 0) }

// Requests returns how many requests reached path (UserTokenPath or TenantTokenPath).
func (s *Server) Requests(path string) int { return s.ledger.Requests(path) }

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

// ValidUserAccessToken reports whether token is an unexpired, unrevoked user token.
func (s *Server) ValidUserAccessToken(token string) bool { return s.ledger.ValidAccessToken(token) }

// ValidTenantToken reports whether token is an unexpired tenant token.
func (s *Server) ValidTenantToken(token string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	exp, ok := s.tenant[token]
	return ok && s.opts.Now().Before(exp)
}

// AuthorizeURL is the consent page's URL; after Start.
func (s *Server) AuthorizeURL() string { return s.URL() + AuthorizePath }

// Codes is the consent page's code book (Issued, Denied).
func (s *Server) Codes() *consent.Codes { return s.codes }

// Fingerprint is a short, non-reversible, loggable name for a token.
func Fingerprint(token string) string { return providertest.Fingerprint(token) }

// UserInfoPath answers who a user_access_token belongs to, as Feishu's does.
const UserInfoPath = "/open-apis/authen/v1/user_info"

// serveUserInfo answers code 0 for a live user access token and Feishu's 99991668
// ("Invalid access token", HTTP 401) otherwise. It never touches refresh tokens.
func (s *Server) serveUserInfo(w http.ResponseWriter, r *http.Request) {
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	if !ok || !s.ValidUserAccessToken(tok) {
		w.WriteHeader(http.StatusUnauthorized)
		_, _ = w.Write([]byte(`{"code":99991668,"msg":"Invalid access token for authorization."}` + "\n"))
		return
	}
	_, _ = w.Write([]byte(`{"code":0,"msg":"success","data":{"name":"fake user","open_id":"ou_fake"}}` + "\n"))
}
