// Package baomingtest is a fake 报名工具 (baoming) API for tests and demos: the
// enrollment-detail endpoint that tokenwarden's baoming adapter probes, with the answers
// the setup it replaces relied on (seed 004).
//
// # Endpoint
//
//	GET /xcx/enroll/v3/detail?access_token=<token>&eid=<enrollment id>
//
// The rules, in order:
//
//	access_token missing, never issued or invalidated   200 {"sta":-500,"msg":"invalid access_token"}
//	eid missing                                         200 {"sta":-1,"msg":"eid is required"}
//	the token's account has not joined eid              200 {"sta":0,"msg":"ok","data":{"eid":<eid>,"info_id":""}}
//	otherwise                                           200 {"sta":0,"msg":"ok","data":{"eid":<eid>,"info_id":<id>}}
//
// so a live token of an account that never joined the enrollment answers sta 0 without
// an info_id, the case seed 004's rule (valid when sta == 0 and info_id is present) does
// not count as valid. Every answer is HTTP 200, as the API's are; only faults answer
// otherwise. Other methods and paths are 404.
//
// # Accounts and tokens
//
// Tokens cannot be refreshed. Issue is a WeChat login of a new account and returns its
// token; Reissue is the same account logging in again (its enrollments stay; the old
// token is left as it was); Invalidate kills a token; Enroll makes a token's account
// join an enrollment and returns the info_id of its record. Probes counts the detail
// requests that carried a token, on arrival, faults or not.
//
// # Faults
//
// InjectFault schedules misbehaviour (see providertest): latency, an HTTP status (503 by
// default), a rate limit, a hang, a malformed or empty body, a reset connection.
// FailNext(n) is n × HTTP 503.
package baomingtest

import (
	"crypto/rand"
	"encoding/hex"
	"net/http"
	"sync"

	"github.com/tokenwarden/tokenwarden/internal/provider/providertest"
)

// DetailPath is the enrollment-detail endpoint.
const DetailPath = "/xcx/enroll/v3/detail"

// The sta values of the fake's refusals; any non-zero sta is a refusal.
const (
	StaInvalidToken = -500
	StaBadRequest   = -1
)

// Fault is one scheduled misbehaviour of DetailPath (see providertest.Fault).
type Fault = providertest.Fault

// Fault kinds.
const (
	FaultLatency         = providertest.Latency
	FaultStatus          = providertest.Status
	FaultRateLimit       = providertest.RateLimit
	FaultHang            = providertest.Hang
	FaultMalformedJSON   = providertest.MalformedJSON
	FaultEmptyBody       = providertest.EmptyBody
	FaultCloseConnection = providertest.CloseConnection
)

var faultRules = providertest.Rules{
	Name:        "fakebaoming",
	DefaultPath: DetailPath,
	Paths:       []string{DetailPath},
	Kinds: []providertest.Kind{FaultLatency, FaultStatus, FaultRateLimit, FaultHang, FaultMalformedJSON,
		FaultEmptyBody, FaultCloseConnection},
}

// Server is the fake. The zero value is not usable; call New. All methods are safe for
// concurrent use.
type Server struct {
	providertest.Lifecycle // Start, URL, Close, Serve
	faults                 providertest.Schedule[Fault]
	mux                    *http.ServeMux

	mu     sync.Mutex
	tokens map[string]*token
	probes map[string]int
}

type account struct {
	enrolled map[string]string // eid -> info_id of the account's record
}

type token struct {
	account *account
	live    bool
}

// New returns a fake with no accounts; it does not listen until Start.
func New() *Server {
	s := &Server{tokens: map[string]*token{}, probes: map[string]int{}}
	s.Name, s.Handler = "fakebaoming", s
	s.mux = http.NewServeMux()
	s.mux.HandleFunc("GET "+DetailPath, s.serveDetail)
	return s
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.mux.ServeHTTP(w, r) }

// NewEnrollID returns a fresh enrollment id, in the API's form (24 hex digits).
func NewEnrollID() string { return randomHex(12) }

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// Issue logs a new account in and returns its live token.
func (s *Server) Issue() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.mintLocked(&account{enrolled: map[string]string{}})
}

func (s *Server) mintLocked(a *account) string {
	tok := "bm_" + randomHex(24)
	s.tokens[tok] = &token{account: a, live: true}
	return tok
}

// Reissue logs the account of tok in again and returns the new token; it panics if tok
// was never issued (a bug in the calling test).
func (s *Server) Reissue(tok string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok := s.tokens[tok]
	if !ok {
		panic("fakebaoming: Reissue of a token never issued")
	}
	return s.mintLocked(t.account)
}

// Enroll makes the account of tok join the enrollment eid (again: the same record) and
// returns the info_id of its record; it panics if tok was never issued.
func (s *Server) Enroll(tok, eid string) (infoID string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok := s.tokens[tok]
	if !ok {
		panic("fakebaoming: Enroll with a token never issued")
	}
	if id, ok := t.account.enrolled[eid]; ok {
		return id
	}
	id := randomHex(12)
	t.account.enrolled[eid] = id
	return id
}

// Invalidate makes the API reject the token from now on.
func (s *Server) Invalidate(tok string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if t, ok := s.tokens[tok]; ok {
		t.live = false
	}
}

// Probes reports how many detail requests carried the token.
func (s *Server) Probes(tok string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.probes[tok]
}

// InjectFault appends f to the schedule; it panics on an unknown kind or path.
func (s *Server) InjectFault(f Fault) { s.faults.Inject(&faultRules, f, f) }

// FailNext makes the next n detail requests answer HTTP 503.
func (s *Server) FailNext(n int) {
	if n > 0 {
		s.InjectFault(Fault{Kind: FaultStatus, Status: http.StatusServiceUnavailable, Count: n})
	}
}

// ClearFaults empties the schedule; PendingFaults counts what is left.
func (s *Server) ClearFaults()       { s.faults.Clear() }
func (s *Server) PendingFaults() int { return s.faults.Pending() }

func (s *Server) serveDetail(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	tok, eid := q.Get("access_token"), q.Get("eid")
	s.mu.Lock()
	if tok != "" {
		s.probes[tok]++
	}
	s.mu.Unlock()
	fault, _ := s.faults.Take(DetailPath)
	providertest.Serve(w, r, &providertest.Exchange{Fault: fault, Rules: &faultRules, Done: s.Done(),
		Decide: func() providertest.Answer { return s.detail(tok, eid) }})
}

func (s *Server) detail(tok, eid string) providertest.Answer {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok := s.tokens[tok]
	switch {
	case !ok || !t.live:
		return providertest.JSON(http.StatusOK, map[string]any{"sta": StaInvalidToken, "msg": "invalid access_token"})
	case eid == "":
		return providertest.JSON(http.StatusOK, map[string]any{"sta": StaBadRequest, "msg": "eid is required"})
	}
	// The real detail carries the enrollment's own fields too (title, times, ...); the
	// liveness check reads only these.
	return providertest.JSON(http.StatusOK, map[string]any{"sta": 0, "msg": "ok",
		"data": map[string]any{"eid": eid, "info_id": t.account.enrolled[eid]}})
}
