// Package zalotest is a fake Zalo OAuth v4 token endpoint for tests and demos. It speaks
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
// # Permission pages
//
//	GET  /v4/oa/permission?app_id=..&redirect_uri=..&code_challenge=..&state=..   OA admin consent
//	GET  /v4/permission?app_id=..&redirect_uri=..&code_challenge=..&state=..      user consent
//
// show an Approve / Deny page (package consent); Approve redirects to redirect_uri
// with code and state, Deny with error=access_denied. redirect_uri must be one of
// Options.RedirectURIs (any loopback URI when none is set), code_challenge is required
// on the user page. The code then follows the exchange rules above: single-use (a failed
// verifier check burns it too), CodeLifetime, S256 verifier. Zalo's exchange carries no
// redirect_uri, so it is checked on the page only.
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
package zalotest

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/tokenwarden/tokenwarden/internal/provider/providertest"
	"github.com/tokenwarden/tokenwarden/internal/provider/providertest/consent"
)

// Paths served, the same as Zalo's.
const (
	OATokenPath        = "/v4/oa/access_token"
	UserTokenPath      = "/v4/access_token"
	OAPermissionPath   = "/v4/oa/permission"
	UserPermissionPath = "/v4/permission"
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
	// RedirectURIs are the app's registered callback URLs (see
	// consent.RedirectAllowed); none admits any loopback http URI.
	RedirectURIs []string
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
	providertest.Lifecycle // Start, URL, Close, Serve
	providertest.Counters  // Presentations, Processed, Refreshes, Latest, RevokeFamily, ...

	opts    Options
	handler http.Handler
	faults  providertest.Schedule[Fault]
	ledger  *providertest.Ledger

	codes *consent.Codes

	mu        sync.Mutex
	exchanges int
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
		opts: opts,
		ledger: providertest.New(providertest.Options{
			RefreshToken:    providertest.Prefixed(RefreshTokenPrefix),
			AccessToken:     providertest.Prefixed(AccessTokenPrefix),
			RefreshLifetime: opts.RefreshLifetime,
			AccessLifetime:  opts.AccessLifetime,
			Now:             opts.Now,
			// Zalo invalidates the previous access token when it mints a new one.
			RetireAccess: true,
		}),
		codes: consent.NewCodes(CodePrefix, opts.CodeLifetime, opts.Now),
	}
	s.Counters = s.ledger.Counters
	s.Name, s.Handler = "fakezalo", s
	mux := http.NewServeMux()
	mux.HandleFunc("POST "+OATokenPath, func(w http.ResponseWriter, r *http.Request) { s.serveToken(w, r, OA) })
	mux.HandleFunc("POST "+UserTokenPath, func(w http.ResponseWriter, r *http.Request) { s.serveToken(w, r, User) })
	mux.Handle(OAPermissionPath, &consent.Page{Provider: "Zalo Official Account (fake)", Codes: s.codes,
		Parse: func(q url.Values, account string) (consent.Request, error) {
			return s.parsePermission(q, account, OA)
		}})
	mux.Handle(UserPermissionPath, &consent.Page{Provider: "Zalo (fake)", Codes: s.codes,
		Parse: func(q url.Values, account string) (consent.Request, error) {
			return s.parsePermission(q, account, User)
		}})
	s.handler = mux
	return s
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.handler.ServeHTTP(w, r) }

// SeedOA starts an Official Account family afresh and returns its first refresh token.
// Seeding an existing family is a re-authorization: its earlier tokens are revoked.
func (s *Server) SeedOA(familyName string) (refreshToken string) {
	return s.ledger.Seed(familyName, int(OA))
}

// SeedUser is SeedOA for a user-token family.
func (s *Server) SeedUser(familyName string) (refreshToken string) {
	return s.ledger.Seed(familyName, int(User))
}

// IssueCode returns an authorization code, as Zalo's permission page would after the
// user (or OA admin) consents. Exchanging it starts familyName afresh with the given
// kind. codeChallenge is CodeChallenge(verifier) when the authorization used PKCE, or
// "" when it did not; the exchange must then present the matching code_verifier.
func (s *Server) IssueCode(kind Kind, familyName, codeChallenge string) (code string) {
	return s.codes.Issue(consent.Grant{Family: familyName, Kind: int(kind), ClientID: s.opts.AppID, Challenge: codeChallenge})
}

// CodeChallenge returns the S256 PKCE challenge of verifier: base64url(sha256(verifier))
// without padding.
func CodeChallenge(verifier string) string { return consent.ChallengeS256(verifier) }

// Codes is the permission pages' code book (Issued, Denied).
func (s *Server) Codes() *consent.Codes { return s.codes }

// parsePermission reads a permission page request: app_id, redirect_uri (one of
// Options.RedirectURIs), state, and code_challenge, which the user flow requires and the
// OA flow takes when given. A wrong app or callback is an error page, never a redirect.
func (s *Server) parsePermission(q url.Values, account string, kind Kind) (consent.Request, error) {
	appID, redirect := q.Get("app_id"), q.Get("redirect_uri")
	switch {
	case appID == "" || (s.opts.AppID != "" && appID != s.opts.AppID):
		return consent.Request{}, errors.New("invalid appId: the app does not exist")
	case !consent.RedirectAllowed(s.opts.RedirectURIs, redirect):
		return consent.Request{}, errors.New("redirect_uri does not match the app's registered callback URL")
	case kind == User && q.Get("code_challenge") == "":
		return consent.Request{}, errors.New("code_challenge is required")
	}
	return consent.Request{
		Grant:    consent.Grant{Family: kind.String() + ":" + account, Kind: int(kind), ClientID: appID, RedirectURI: redirect, Challenge: q.Get("code_challenge")},
		State:    q.Get("state"),
		Describe: []string{"app " + appID, "kind " + kind.String()},
	}, nil
}

// Requests returns how many requests reached a token path.
func (s *Server) Requests() int {
	return s.ledger.Requests(OATokenPath) + s.ledger.Requests(UserTokenPath)
}

// Exchanges returns how many authorization codes were successfully exchanged.
func (s *Server) Exchanges() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.exchanges
}

// ValidAccessToken reports whether token was issued here, is its family's newest,
// unexpired, and not revoked.
func (s *Server) ValidAccessToken(token string) bool { return s.ledger.ValidAccessToken(token) }

// Fingerprint is a short, non-reversible name for a token, safe to log.
func Fingerprint(token string) string {
	return providertest.Fingerprint(token, RefreshTokenPrefix, AccessTokenPrefix, CodePrefix)
}
