// Package oauth2test is a fake OAuth 2.0 token endpoint (RFC 6749 section 6) for tests and
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
// grant_type=authorization_code exchanges a code of the consent page (AuthorizePath, see
// package consent): once, within CodeLifetime, for its client and redirect_uri, with
// the PKCE verifier; it starts a family named client_id:account. grant_type=
// client_credentials (RFC 6749 section 4.4) answers an authenticated client with an
// access token and no refresh token; Mints counts them.
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
package oauth2test

import (
	"log/slog"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/tokenwarden/tokenwarden/internal/provider/providertest"
	"github.com/tokenwarden/tokenwarden/internal/provider/providertest/consent"
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
	// RedirectURIs are the client's registered redirect URIs (see
	// consent.RedirectAllowed); none admits any loopback http URI.
	RedirectURIs []string
	// CodeLifetime is how long an authorization code can be exchanged (0: one minute).
	CodeLifetime time.Duration
}

// Endpoint paths served by a Server.
const (
	TokenPath         = "/token"
	IntrospectionPath = "/introspect"
	// AuthorizePath serves the consent page (GET) and its decision (POST).
	AuthorizePath = "/authorize"
)

// CodePrefix starts every authorization code.
const CodePrefix = "code_"

// Server is the fake token endpoint. It is an http.Handler serving POST /token and
// POST /introspect; all methods are safe for concurrent use.
type Server struct {
	providertest.Lifecycle // Start, URL, Close, Serve
	providertest.Counters  // Presentations, Processed, Refreshes, Latest, RevokeFamily, ...

	opts    Options
	handler http.Handler
	faults  providertest.Schedule[Fault]
	ledger  *providertest.Ledger
	codes   *consent.Codes
	mints   atomic.Int64
	// accessLifetime is expires_in, in nanoseconds: Options.AccessLifetime until
	// SetAccessLifetime changes it while requests are served.
	accessLifetime atomic.Int64
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
		opts: opts,
		ledger: providertest.New(providertest.Options{
			RefreshToken:    providertest.Prefixed(RefreshTokenPrefix),
			AccessToken:     providertest.Prefixed(AccessTokenPrefix),
			RefreshLifetime: opts.RefreshLifetime,
			AccessLifetime:  opts.AccessLifetime,
			Now:             opts.Now,
		}),
	}
	s.Counters = s.ledger.Counters
	s.accessLifetime.Store(int64(opts.AccessLifetime))
	s.codes = consent.NewCodes(CodePrefix, opts.CodeLifetime, opts.Now)
	s.Name, s.Handler = "fakeoauth", s
	mux := http.NewServeMux()
	mux.Handle(AuthorizePath, &consent.Page{Provider: "fakeoauth", Codes: s.codes, Parse: s.parseAuthorization})
	mux.HandleFunc("POST "+TokenPath, s.serveToken)
	mux.HandleFunc("POST "+IntrospectionPath, s.serveIntrospect)
	s.handler = mux
	return s
}

// SetAccessLifetime changes expires_in, and the expiry introspection reports, of the
// access tokens issued from now on. The benchmark picks the lifetime that loads the
// engine as much as it asks, after measuring the engine on the running server.
func (s *Server) SetAccessLifetime(d time.Duration) {
	if d <= 0 {
		d = DefaultAccessLifetime
	}
	s.ledger.SetAccessLifetime(d)
	s.accessLifetime.Store(int64(d))
}

func (s *Server) currentAccessLifetime() time.Duration { return time.Duration(s.accessLifetime.Load()) }

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.handler.ServeHTTP(w, r) }

// Start serves on a loopback httptest listener and returns the token endpoint URL
// (".../token"). Close stops it.
func (s *Server) Start() (tokenURL string) { return s.Lifecycle.Start() + TokenPath }

// IntrospectionURL returns the RFC 7662 introspection endpoint of the listener Start
// opened, or "" before Start.
func (s *Server) IntrospectionURL() string {
	base := s.URL()
	if base == "" {
		return ""
	}
	return base + IntrospectionPath
}

// Seed starts family afresh and returns its first refresh token. Seeding an existing
// family is a re-authorization: every earlier token of the family is revoked, and the
// family is live again with only the new token.
func (s *Server) Seed(familyName string) (refreshToken string) { return s.ledger.Seed(familyName, 0) }

// Requests returns how many requests reached POST /token (introspections are not
// included; see Introspections).
func (s *Server) Requests() int { return s.ledger.Requests(TokenPath) }

// Introspections returns how many requests reached POST /introspect, counted on arrival
// like Requests.
func (s *Server) Introspections() int { return s.ledger.Requests(IntrospectionPath) }

// ValidAccessToken reports whether token was issued here, is unexpired, and its family
// was not revoked: an introspection helper for probes that "call the API".
func (s *Server) ValidAccessToken(token string) bool { return s.ledger.ValidAccessToken(token) }

// AuthorizeURL returns the consent page's URL (config.authorize_url); after Start.
func (s *Server) AuthorizeURL() string { return s.URL() + AuthorizePath }

// Mints counts client_credentials grants answered with a token.
func (s *Server) Mints() int { return int(s.mints.Load()) }

// Codes is the consent page's code book (Issued, Denied).
func (s *Server) Codes() *consent.Codes { return s.codes }

// Fingerprint is a short, non-reversible name for a token, safe to log: the first 12 hex
// digits of its SHA-256, after the token's prefix.
func Fingerprint(token string) string {
	return providertest.Fingerprint(token, RefreshTokenPrefix, AccessTokenPrefix, CodePrefix)
}
