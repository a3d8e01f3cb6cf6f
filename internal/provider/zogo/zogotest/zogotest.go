// Package zogotest is a fake Zogo API authentication server (login and refresh_token,
// JSON bodies, the documented response and 401 shapes) for tests and demos. It is strict
// where a careful provider would be: refresh tokens rotate, each is single-use, and
// presenting a used one revokes its whole family (reuse detection).
//
// # Endpoints
//
//	POST /api/v2/login          {"username","password","client_id","client_secret"}
//	POST /api/v2/refresh_token  {"refresh_token","client_id","client_secret"}
//
// client_id may be a JSON number or string. Success (both endpoints):
//
//	{"code":200,"status":"success","token_type":"Bearer","expires_in":<s>,
//	 "access_token":"zat_...","refresh_token":"def50200..."}
//
// (expires_in left out with Options.OmitExpiresIn). Failures use the documented shape,
// {"code":401,"status":"error","data":{"error":"Unauthenticated."}}, with HTTP 401 for
// client, refresh-token and login failures and 400 for malformed requests.
//
// # Rules
//
// Login: the client must match (when Options.ClientID is set), then the user must exist
// with that password; a successful login starts a new token family named after the
// username (earlier families of the user stay valid, as with Laravel Passport) and
// counts in Logins. Refresh, after the client check:
//
//	token unknown                      401
//	token already used                 401, family revoked, reuse counted
//	family revoked                     401
//	token expired (RefreshLifetime)    401
//	otherwise                          200, token used, new access + refresh token
//
// # Counters
//
// Presentations counts refresh tokens put on the wire (on arrival, before faults),
// Processed what the refresh logic looked up (after the client check, BeforeGrant faults
// excluded), as in oauth2test. Latest(name) is the live refresh token of the newest family
// named name. Faults (see providertest) target RefreshPath by default or LoginPath.
package zogotest

import (
	"bytes"
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"mime"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/tokenwarden/tokenwarden/internal/provider/providertest"
)

// Endpoint paths.
const (
	LoginPath   = "/api/v2/login"
	RefreshPath = "/api/v2/refresh_token"
)

// DefaultAccessLifetime is the documented expires_in (1296000 s = 15 days).
const DefaultAccessLifetime = 1296000 * time.Second

// Token prefixes make fake tokens recognisable.
const (
	AccessTokenPrefix  = "zat_"
	RefreshTokenPrefix = "def50200"
)

// Fault re-exports the shared fault type; Path is RefreshPath (default) or LoginPath.
type Fault = providertest.Fault

// Fault kinds and phases.
const (
	FaultLatency         = providertest.Latency
	FaultStatus          = providertest.Status
	FaultRateLimit       = providertest.RateLimit
	FaultHang            = providertest.Hang
	FaultMalformedJSON   = providertest.MalformedJSON
	FaultCloseConnection = providertest.CloseConnection
	// FaultMissingAccessToken answers 200 without access_token; AfterGrant it still
	// carries the new refresh token.
	FaultMissingAccessToken = providertest.MissingToken
	BeforeGrant             = providertest.BeforeGrant
	AfterGrant              = providertest.AfterGrant
)

// Options configure a Server.
type Options struct {
	// AccessLifetime is expires_in; 0 means DefaultAccessLifetime.
	AccessLifetime time.Duration
	// OmitExpiresIn leaves expires_in out of token answers (long-lived tokens); access
	// tokens then never expire.
	OmitExpiresIn bool
	// RefreshLifetime is each refresh token's lifetime; 0 means none.
	RefreshLifetime time.Duration
	// ClientID and ClientSecret are the only client accepted; empty ClientID turns the
	// client check off.
	ClientID     string
	ClientSecret string
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

var faultRules = providertest.Rules{
	Name:        "fake",
	DefaultPath: RefreshPath,
	Paths:       []string{RefreshPath, LoginPath},
	Kinds: []providertest.Kind{FaultLatency, FaultStatus, FaultRateLimit, FaultHang, FaultMalformedJSON,
		FaultCloseConnection, FaultMissingAccessToken},
	QuotedJSON: true,
}

// Server is the fake. All methods are safe for concurrent use.
type Server struct {
	providertest.Lifecycle // Start, URL, Close, Serve
	providertest.Counters  // Presentations, Processed, Refreshes, Latest, RevokeFamily, ...

	opts   Options
	mux    *http.ServeMux
	faults providertest.Schedule[Fault]
	ledger *providertest.Ledger

	mu                    sync.Mutex
	users                 map[string]string
	logins, loginFailures int
	passwordPresentations map[string]int
}

// New returns a Server; it does not listen until Start.
func New(opts Options) *Server {
	if opts.AccessLifetime <= 0 {
		opts.AccessLifetime = DefaultAccessLifetime
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	accessLifetime := opts.AccessLifetime
	if opts.OmitExpiresIn {
		accessLifetime = 0 // long-lived: never expires
	}
	s := &Server{
		opts: opts,
		ledger: providertest.New(providertest.Options{
			RefreshToken:    func() string { return RefreshTokenPrefix + randomHex(40) },
			AccessToken:     func() string { return AccessTokenPrefix + randomHex(32) },
			RefreshLifetime: opts.RefreshLifetime,
			AccessLifetime:  accessLifetime,
			Now:             opts.Now,
			// Each login is a new family; earlier ones stay valid (Laravel Passport).
			KeepFamilies: true,
		}),
		users: map[string]string{}, passwordPresentations: map[string]int{},
	}
	s.Counters = s.ledger.Counters
	s.Name, s.Handler = "fakezogo", s
	s.mux = http.NewServeMux()
	s.mux.HandleFunc("POST "+LoginPath, s.serveLogin)
	s.mux.HandleFunc("POST "+RefreshPath, s.serveRefresh)
	return s
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.mux.ServeHTTP(w, r) }

// AddUser registers (or replaces) a Zogo account.
func (s *Server) AddUser(username, password string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.users[username] = password
}

// Seed starts a new family named name, as a login would, without counting a login, and
// returns its refresh token. Earlier families of that name stay valid.
func (s *Server) Seed(name string) (refreshToken string) { return s.ledger.Seed(name, 0) }

// ValidAccessToken reports whether token was issued here, is unexpired and unrevoked.
func (s *Server) ValidAccessToken(token string) bool { return s.ledger.ValidAccessToken(token) }

// Requests counts refresh_token requests; LoginRequests counts login requests.
func (s *Server) Requests() int      { return s.ledger.Requests(RefreshPath) }
func (s *Server) LoginRequests() int { return s.ledger.Requests(LoginPath) }

// Logins counts successful logins; LoginFailures rejected ones (client or password).
func (s *Server) Logins() int        { return s.count(func() int { return s.logins }) }
func (s *Server) LoginFailures() int { return s.count(func() int { return s.loginFailures }) }

// PasswordPresentations counts login requests for username that reached the login logic.
func (s *Server) PasswordPresentations(username string) int {
	return s.count(func() int { return s.passwordPresentations[username] })
}

// InjectFault schedules f (Path "" = RefreshPath, or LoginPath).
func (s *Server) InjectFault(f Fault) { s.faults.Inject(&faultRules, f, f) }

// ClearFaults empties the schedule; PendingFaults counts what is left.
func (s *Server) ClearFaults()       { s.faults.Clear() }
func (s *Server) PendingFaults() int { return s.faults.Pending() }

// Fingerprint is a short non-reversible name for a token, safe to log.
func Fingerprint(token string) string { return providertest.Fingerprint(token) }

func (s *Server) count(f func() int) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return f()
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// errorAnswer is the documented error shape.
func errorAnswer(status int, msg string) providertest.Answer {
	return jsonAnswer(status, map[string]any{"code": status, "status": "error", "data": map[string]any{"error": msg}})
}

func jsonAnswer(status int, v any) providertest.Answer {
	b, _ := json.Marshal(v)
	return providertest.Answer{Status: status, Body: b}
}

// request reads a JSON object body; client_id may be a number or a string.
func readBody(r *http.Request) (map[string]string, bool) {
	mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if mt != "application/json" {
		return nil, false
	}
	var raw map[string]any
	dec := json.NewDecoder(http.MaxBytesReader(nil, r.Body, 64<<10))
	dec.UseNumber()
	if dec.Decode(&raw) != nil || raw == nil {
		return nil, false
	}
	out := map[string]string{}
	for k, v := range raw {
		switch x := v.(type) {
		case string:
			out[k] = x
		case json.Number:
			out[k] = x.String()
		}
	}
	return out, true
}

func (s *Server) clientOK(body map[string]string) bool {
	if s.opts.ClientID == "" {
		return true
	}
	return body["client_id"] == s.opts.ClientID &&
		subtle.ConstantTimeCompare([]byte(body["client_secret"]), []byte(s.opts.ClientSecret)) == 1
}

func (s *Server) tokenAnswer(access, refresh string) providertest.Answer {
	body := map[string]any{
		"code": 200, "status": "success", "token_type": "Bearer",
		"access_token": access, "refresh_token": refresh,
	}
	if !s.opts.OmitExpiresIn {
		body["expires_in"] = int64((s.opts.AccessLifetime + time.Second - 1) / time.Second)
	}
	return jsonAnswer(http.StatusOK, body)
}

// missing builds FaultMissingAccessToken's body, keeping a minted refresh token.
func missing(res *providertest.Answer) []byte {
	body := map[string]any{"code": 200, "status": "success", "token_type": "Bearer"}
	if res != nil && res.Status == http.StatusOK {
		var m map[string]any
		if json.Unmarshal(res.Body, &m) == nil && m["refresh_token"] != nil {
			body["refresh_token"] = m["refresh_token"]
		}
	}
	b, _ := json.Marshal(body)
	return b
}

func (s *Server) serveLogin(w http.ResponseWriter, r *http.Request) {
	body, ok := readBody(r)
	var fault *providertest.Fault
	leave := s.ledger.Arrive(LoginPath, "", func() { fault, _ = s.faults.Take(LoginPath) })
	defer leave()
	faultRules.Serve(w, r, fault, s.Done(), func() providertest.Answer {
		if !ok {
			return errorAnswer(http.StatusBadRequest, "The request body must be a JSON object.")
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		if !s.clientOK(body) {
			s.loginFailures++
			return errorAnswer(http.StatusUnauthorized, "Client authentication failed")
		}
		user := body["username"]
		s.passwordPresentations[user]++
		pw, known := s.users[user]
		if !known || body["password"] == "" || subtle.ConstantTimeCompare([]byte(pw), []byte(body["password"])) != 1 {
			s.loginFailures++
			return errorAnswer(http.StatusUnauthorized, "The user credentials were incorrect.")
		}
		s.logins++
		return s.tokenAnswer(s.ledger.Start(user, 0))
	}, missing)
}

func (s *Server) serveRefresh(w http.ResponseWriter, r *http.Request) {
	body, ok := readBody(r)
	presented := body["refresh_token"]
	var fault *providertest.Fault
	leave := s.ledger.Arrive(RefreshPath, presented, func() { fault, _ = s.faults.Take(RefreshPath) })
	defer leave()
	faultRules.Serve(w, r, fault, s.Done(), func() providertest.Answer {
		if !ok || presented == "" {
			return errorAnswer(http.StatusBadRequest, "The refresh token field is required.")
		}
		if !s.clientOK(body) {
			return errorAnswer(http.StatusUnauthorized, "Client authentication failed")
		}
		red := s.ledger.Redeem(presented, providertest.Policy{RevokeOnReuse: true})
		switch red.Outcome {
		case providertest.Unknown:
			return errorAnswer(http.StatusUnauthorized, "The refresh token is invalid.")
		case providertest.Reused:
			return errorAnswer(http.StatusUnauthorized, "The refresh token was already used; its token family is revoked.")
		case providertest.Revoked:
			return errorAnswer(http.StatusUnauthorized, "The refresh token has been revoked.")
		case providertest.Expired:
			return errorAnswer(http.StatusUnauthorized, "The refresh token has expired.")
		}
		return s.tokenAnswer(red.Access, red.Refresh)
	}, missing)
}

// String describes the server's state for test failures, without tokens.
func (s *Server) String() string {
	refreshes, reuse, families := s.ledger.Refreshes(), s.ledger.ReuseDetections(), s.ledger.Families()
	s.mu.Lock()
	defer s.mu.Unlock()
	var b bytes.Buffer
	fmt.Fprintf(&b, "fakezogo: %d refreshes, %d logins, %d login failures, %d reuse detections, families:", refreshes, s.logins, s.loginFailures, reuse)
	for name, n := range families {
		fmt.Fprintf(&b, " %s(%d)", name, n)
	}
	return strings.TrimSpace(b.String())
}
