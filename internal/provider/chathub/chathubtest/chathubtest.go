// Package chathubtest is a fake SMSBAT ChatHub authentication API for tests and demos:
// company tokens by login, operator tokens minted with a company token, and operator
// token validation, with the documented bodies.
//
// # Endpoints
//
//	POST /api/company/get-token     {"login","password"}        200 "<company JWT>"
//	POST /api/operator/get-token    Bearer <company JWT>,
//	                                {"id": 123, "expiresAt": "2025-12-31T23:59:59Z"}
//	                                                             200 "<operator JWT>"
//	POST /api/operator/validate-token  Bearer <company JWT>, {"token": "..."}
//	     200 {"isValid":true,"operatorId":123,"clientId":1,"expiresAt":"...","error":null}
//	     200 {"isValid":false,"error":"Invalid token"}
//
// The company token may also come as X-Authorization-Key. Tokens are real-shaped JWTs:
// HS256 over Options.Key (random when nil), or alg "none" with Options.Unsigned. Company
// tokens carry exp only when Options.CompanyLifetime is set (the documentation names no
// expiry); operator tokens carry the requested expiresAt as exp.
//
// # Rules
//
// Company login: with Options.MinLoginInterval, a login request for a login that
// arrives less than that after the previous one for the same login is answered 429
// {"error":"Too many requests"} with Retry-After (Throttled counts them): the
// documentation asks clients to space authentication requests a second apart, and this
// makes a client that does not fail its tests. Then: malformed body 400; unknown login
// or wrong password 401 {"error":"Invalid login or password"}; otherwise a new company
// token (Logins counts). LoginArrivals lists when each login request for a login came.
// Operator token: missing, unknown, expired or revoked company token 401; unknown
// operator of that company 404; expiresAt missing, unparseable, not in the future or more
// than MaxOperatorLifetime (24 h) ahead 400.
//
// Rotation: the documentation does not say that a new company token invalidates older
// ones or the operator tokens minted with them (operator tokens have their own
// expiresAt), so by default nothing is invalidated. Options.RevokeOnRotation makes a
// login revoke the company's earlier company tokens and every operator token minted with
// them, for tests of the stricter behaviour. RevokeCompanyTokens does the same on demand.
package chathubtest

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/tokenwarden/tokenwarden/internal/provider/providertest"
)

// Endpoint paths.
const (
	CompanyTokenPath  = "/api/company/get-token"
	OperatorTokenPath = "/api/operator/get-token"
	ValidatePath      = "/api/operator/validate-token"
)

// DefaultMaxOperatorLifetime is the documented cap on operator token lifetimes.
const DefaultMaxOperatorLifetime = 24 * time.Hour

// Fault re-exports the shared fault type; Path is CompanyTokenPath (default),
// OperatorTokenPath or ValidatePath.
type Fault = providertest.Fault

// Fault kinds and phases.
const (
	FaultLatency         = providertest.Latency
	FaultStatus          = providertest.Status
	FaultRateLimit       = providertest.RateLimit
	FaultHang            = providertest.Hang
	FaultMalformedJSON   = providertest.MalformedJSON
	FaultCloseConnection = providertest.CloseConnection
	// FaultMissingToken answers 200 with an empty JSON string.
	FaultMissingToken = providertest.MissingToken
	BeforeGrant       = providertest.BeforeGrant
	AfterGrant        = providertest.AfterGrant
)

// Options configure a Server.
type Options struct {
	// CompanyLifetime sets exp on company tokens; 0 leaves exp out (no expiry).
	CompanyLifetime time.Duration
	// MaxOperatorLifetime caps expiresAt; 0 means DefaultMaxOperatorLifetime.
	MaxOperatorLifetime time.Duration
	// Key signs tokens with HS256; nil means a random key. Unsigned uses alg "none".
	Key      []byte
	Unsigned bool
	// RevokeOnRotation: a company login revokes the company's earlier tokens.
	RevokeOnRotation bool
	// MinLoginInterval, when positive, throttles login requests for one login that come
	// closer together than this (429); 0 accepts them at any rate.
	MinLoginInterval time.Duration
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

var faultRules = providertest.Rules{
	Name:        "fake",
	DefaultPath: CompanyTokenPath,
	Paths:       []string{CompanyTokenPath, OperatorTokenPath, ValidatePath},
	Kinds: []providertest.Kind{FaultLatency, FaultStatus, FaultRateLimit, FaultHang, FaultMalformedJSON,
		FaultCloseConnection, FaultMissingToken},
	QuotedJSON: true,
}

// Server is the fake. All methods are safe for concurrent use.
type Server struct {
	providertest.Lifecycle // Start, URL, Close, Serve
	opts                   Options
	mux                    *http.ServeMux
	faults                 providertest.Schedule[Fault]

	mu        sync.Mutex
	companies map[string]*company // by login
	companyTk map[string]*companyToken
	operatorT map[string]*operatorToken
	nextID    int

	arrivals map[string][]time.Time // login requests by login, on opts.Now

	loginRequests, logins, loginFailures, throttled int
	operatorRequests, operatorTokens                int
	validations                                     int
}

type company struct {
	id        int
	login     string
	password  string
	operators map[int]bool
	tokens    []string // company tokens, oldest first
}

type companyToken struct {
	company   *company
	expiresAt time.Time
	revoked   bool
	operators []string
}

type operatorToken struct {
	company    *company
	operatorID int
	expiresAt  time.Time
	revoked    bool
}

// New returns a Server; it does not listen until Start.
func New(opts Options) *Server {
	if opts.MaxOperatorLifetime <= 0 {
		opts.MaxOperatorLifetime = DefaultMaxOperatorLifetime
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Key == nil {
		opts.Key = make([]byte, 32)
		rand.Read(opts.Key)
	}
	s := &Server{opts: opts, companies: map[string]*company{}, arrivals: map[string][]time.Time{},
		companyTk: map[string]*companyToken{}, operatorT: map[string]*operatorToken{}}
	s.Name, s.Handler = "fakechathub", s
	s.mux = http.NewServeMux()
	s.mux.HandleFunc("POST "+CompanyTokenPath, s.serveCompany)
	s.mux.HandleFunc("POST "+OperatorTokenPath, s.serveOperator)
	s.mux.HandleFunc("POST "+ValidatePath, s.serveValidate)
	return s
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.mux.ServeHTTP(w, r) }

// Key returns the HMAC key tokens are signed with.
func (s *Server) Key() []byte { return s.opts.Key }

// AddCompany registers a company and returns its id (clientId). Adding an existing
// login changes its password and keeps the id.
func (s *Server) AddCompany(login, password string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if c, ok := s.companies[login]; ok {
		c.password = password
		return c.id
	}
	s.nextID++
	s.companies[login] = &company{id: s.nextID, login: login, password: password, operators: map[int]bool{}}
	return s.nextID
}

// AddOperator lets the company mint tokens for operatorID.
func (s *Server) AddOperator(login string, operatorID int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if c, ok := s.companies[login]; ok {
		c.operators[operatorID] = true
	}
}

// RevokeCompanyTokens revokes every company token of login and every operator token
// minted with them. It reports whether the company exists.
func (s *Server) RevokeCompanyTokens(login string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.companies[login]
	if ok {
		for _, t := range c.tokens {
			s.revokeCompanyTokenLocked(t)
		}
	}
	return ok
}

func (s *Server) revokeCompanyTokenLocked(t string) {
	ct := s.companyTk[t]
	ct.revoked = true
	for _, o := range ct.operators {
		s.operatorT[o].revoked = true
	}
}

// LatestCompanyToken returns the company's newest company token if it is still valid.
func (s *Server) LatestCompanyToken(login string) (string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.companies[login]
	if !ok || len(c.tokens) == 0 {
		return "", false
	}
	t := c.tokens[len(c.tokens)-1]
	if s.companyValidLocked(t) == nil {
		return "", false
	}
	return t, true
}

// NewestCompanyToken returns the company's most recently issued company token, valid or
// not, or "".
func (s *Server) NewestCompanyToken(login string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.companies[login]
	if !ok || len(c.tokens) == 0 {
		return ""
	}
	return c.tokens[len(c.tokens)-1]
}

// ValidCompanyToken reports whether token is a live company token issued here.
func (s *Server) ValidCompanyToken(token string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.companyValidLocked(token) != nil
}

// ValidOperatorToken reports whether token is a live operator token issued here.
func (s *Server) ValidOperatorToken(token string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	ot, ok := s.operatorT[token]
	return ok && !ot.revoked && s.opts.Now().Before(ot.expiresAt)
}

// Counters.
func (s *Server) LoginRequests() int    { return s.count(func() int { return s.loginRequests }) }
func (s *Server) Logins() int           { return s.count(func() int { return s.logins }) }
func (s *Server) LoginFailures() int    { return s.count(func() int { return s.loginFailures }) }
func (s *Server) Throttled() int        { return s.count(func() int { return s.throttled }) }
func (s *Server) OperatorRequests() int { return s.count(func() int { return s.operatorRequests }) }
func (s *Server) OperatorTokens() int   { return s.count(func() int { return s.operatorTokens }) }
func (s *Server) Validations() int      { return s.count(func() int { return s.validations }) }

// LoginArrivals returns when each login request naming login arrived, oldest first.
func (s *Server) LoginArrivals(login string) []time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]time.Time(nil), s.arrivals[login]...)
}

// InjectFault schedules f (Path "" = CompanyTokenPath).
func (s *Server) InjectFault(f Fault) {
	s.faults.Inject(&faultRules, f, f)
}

// ClearFaults empties the schedule; PendingFaults counts what is left.
func (s *Server) ClearFaults()       { s.faults.Clear() }
func (s *Server) PendingFaults() int { return s.faults.Pending() }

func (s *Server) count(f func() int) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return f()
}

func (s *Server) companyValidLocked(token string) *companyToken {
	ct, ok := s.companyTk[token]
	if !ok || ct.revoked || (!ct.expiresAt.IsZero() && !s.opts.Now().Before(ct.expiresAt)) {
		return nil
	}
	return ct
}

// mintLocked makes a JWT with the given claims plus iat and a random jti.
func (s *Server) mintLocked(claims map[string]any) string {
	// The jti makes two tokens minted with the same claims in the same second differ;
	// it identifies the token and guards nothing, so a random UUID is all it needs.
	claims["jti"] = uuid.NewString()
	claims["iat"] = s.opts.Now().Unix()
	alg := "HS256"
	if s.opts.Unsigned {
		alg = "none"
	}
	h, _ := json.Marshal(map[string]string{"alg": alg, "typ": "JWT"})
	p, _ := json.Marshal(claims)
	enc := base64.RawURLEncoding
	signing := enc.EncodeToString(h) + "." + enc.EncodeToString(p)
	if s.opts.Unsigned {
		return signing + "."
	}
	mac := hmac.New(sha256.New, s.opts.Key)
	mac.Write([]byte(signing))
	return signing + "." + enc.EncodeToString(mac.Sum(nil))
}

func answer(status int, v any) providertest.Answer {
	b, _ := json.Marshal(v)
	return providertest.Answer{Status: status, Body: b}
}

func errorAnswer(status int, msg string) providertest.Answer {
	return answer(status, map[string]any{"error": msg})
}

func missing(*providertest.Answer) []byte { return []byte(`""`) }

func decode(r *http.Request, v any) bool {
	mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if mt != "application/json" {
		return false
	}
	return json.NewDecoder(http.MaxBytesReader(nil, r.Body, 64<<10)).Decode(v) == nil
}

// companyAuth returns the company token of the request.
func companyAuth(r *http.Request) string {
	if h := r.Header.Get("Authorization"); len(h) > 7 && strings.EqualFold(h[:7], "Bearer ") {
		return strings.TrimSpace(h[7:])
	}
	return strings.TrimSpace(r.Header.Get("X-Authorization-Key"))
}

func (s *Server) serveCompany(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Login    *string `json:"login"`
		Password *string `json:"password"`
	}
	ok := decode(r, &body)
	s.mu.Lock()
	s.loginRequests++
	var wait time.Duration // how much sooner than allowed this login came
	if ok && body.Login != nil {
		now := s.opts.Now()
		if prev := s.arrivals[*body.Login]; len(prev) > 0 && s.opts.MinLoginInterval > 0 {
			wait = prev[len(prev)-1].Add(s.opts.MinLoginInterval).Sub(now)
		}
		s.arrivals[*body.Login] = append(s.arrivals[*body.Login], now)
	}
	s.mu.Unlock()
	fault, _ := s.faults.Take(CompanyTokenPath)
	faultRules.Serve(w, r, fault, s.Done(), func() providertest.Answer {
		if wait > 0 {
			s.mu.Lock()
			s.throttled++
			s.mu.Unlock()
			a := errorAnswer(http.StatusTooManyRequests, "Too many requests")
			a.Header = http.Header{"Content-Type": {"application/json"}, "Cache-Control": {"no-store"},
				"Retry-After": {strconv.FormatInt(providertest.CeilSeconds(wait), 10)}}
			return a
		}
		if !ok || body.Login == nil || body.Password == nil {
			return errorAnswer(http.StatusBadRequest, "login and password are required")
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		c, known := s.companies[*body.Login]
		if !known || subtle.ConstantTimeCompare([]byte(c.password), []byte(*body.Password)) != 1 {
			s.loginFailures++
			return errorAnswer(http.StatusUnauthorized, "Invalid login or password")
		}
		if s.opts.RevokeOnRotation {
			for _, t := range c.tokens {
				s.revokeCompanyTokenLocked(t)
			}
		}
		claims := map[string]any{"sub": c.id, "company_id": c.id, "typ": "company"}
		ct := &companyToken{company: c}
		if s.opts.CompanyLifetime > 0 {
			ct.expiresAt = s.opts.Now().Add(s.opts.CompanyLifetime).Truncate(time.Second)
			claims["exp"] = ct.expiresAt.Unix()
		}
		tok := s.mintLocked(claims)
		s.companyTk[tok] = ct
		c.tokens = append(c.tokens, tok)
		s.logins++
		return answer(http.StatusOK, tok)
	}, missing)
}

func (s *Server) serveOperator(w http.ResponseWriter, r *http.Request) {
	auth := companyAuth(r)
	var body struct {
		ID        *int   `json:"id"`
		ExpiresAt string `json:"expiresAt"`
	}
	ok := decode(r, &body)
	s.mu.Lock()
	s.operatorRequests++
	s.mu.Unlock()
	fault, _ := s.faults.Take(OperatorTokenPath)
	faultRules.Serve(w, r, fault, s.Done(), func() providertest.Answer {
		s.mu.Lock()
		defer s.mu.Unlock()
		ct := s.companyValidLocked(auth)
		if ct == nil {
			return errorAnswer(http.StatusUnauthorized, "Unauthorized")
		}
		if !ok || body.ID == nil {
			return errorAnswer(http.StatusBadRequest, "id is required")
		}
		if !ct.company.operators[*body.ID] {
			return errorAnswer(http.StatusNotFound, "Operator not found")
		}
		exp, err := time.Parse(time.RFC3339Nano, body.ExpiresAt)
		now := s.opts.Now()
		if err != nil || !exp.After(now) || exp.After(now.Add(s.opts.MaxOperatorLifetime)) {
			return errorAnswer(http.StatusBadRequest, "expiresAt must be an ISO 8601 time in the future, at most 24 hours from now")
		}
		exp = exp.Truncate(time.Second)
		tok := s.mintLocked(map[string]any{"operator_id": *body.ID, "company_id": ct.company.id, "exp": exp.Unix(), "typ": "operator"})
		s.operatorT[tok] = &operatorToken{company: ct.company, operatorID: *body.ID, expiresAt: exp}
		ct.operators = append(ct.operators, tok)
		s.operatorTokens++
		return answer(http.StatusOK, tok)
	}, missing)
}

func (s *Server) serveValidate(w http.ResponseWriter, r *http.Request) {
	auth := companyAuth(r)
	var body struct {
		Token string `json:"token"`
	}
	ok := decode(r, &body)
	s.mu.Lock()
	s.validations++
	s.mu.Unlock()
	fault, _ := s.faults.Take(ValidatePath)
	faultRules.Serve(w, r, fault, s.Done(), func() providertest.Answer {
		s.mu.Lock()
		defer s.mu.Unlock()
		ct := s.companyValidLocked(auth)
		if ct == nil {
			return errorAnswer(http.StatusUnauthorized, "Unauthorized")
		}
		if !ok {
			return errorAnswer(http.StatusBadRequest, "token is required")
		}
		invalid := func(msg string) providertest.Answer {
			return answer(http.StatusOK, map[string]any{"isValid": false, "error": msg})
		}
		ot, known := s.operatorT[body.Token]
		switch {
		case !known || ot.company != ct.company:
			return invalid("Invalid token")
		case ot.revoked:
			return invalid("Token revoked")
		case !s.opts.Now().Before(ot.expiresAt):
			return invalid("Token expired")
		}
		return answer(http.StatusOK, map[string]any{"isValid": true, "operatorId": ot.operatorID,
			"clientId": ot.company.id, "expiresAt": ot.expiresAt.UTC().Format(time.RFC3339), "error": nil})
	}, missing)
}
