package feishutest

import (
	"net/http"
	"strconv"
	"time"

	"github.com/tokenwarden/tokenwarden/internal/provider/providertest"
)

// FaultKind says how a faulty request misbehaves (the kinds shared by the fakes, see
// providertest).
type FaultKind = providertest.Kind

const (
	// FaultLatency waits Fault.Delay, then answers normally.
	FaultLatency = providertest.Latency
	// FaultStatus answers Fault.Status (default 503) with Fault.Body (default a short
	// text; sent as JSON when it starts with "{").
	FaultStatus = providertest.Status
	// FaultErrorCode answers HTTP Fault.Status (default 200) with a Feishu error body
	// {"code": Fault.Code (default 99991400, rate limit), "msg": ...}: Feishu puts many
	// errors in 200 answers.
	FaultErrorCode = providertest.ErrorIn200
	// FaultMalformedJSON answers 200 with a body that is not JSON.
	FaultMalformedJSON = providertest.MalformedJSON
	// FaultHang never answers; the connection is dropped when the client gives up or
	// the Server closes.
	FaultHang = providertest.Hang
	// FaultCloseConnection resets the connection without an answer.
	FaultCloseConnection = providertest.CloseConnection
)

// Phase says whether a fault strikes before or after the grant is processed.
type Phase = providertest.Phase

const (
	// BeforeGrant faults act without looking at the request's grant: nothing is
	// consumed, and presenting the same refresh token again is legitimate.
	BeforeGrant = providertest.BeforeGrant
	// AfterGrant faults let the grant run first (the refresh token is consumed, a tenant
	// token may be minted) and then replace the answer.
	AfterGrant = providertest.AfterGrant
)

// Fault is one scheduled misbehaviour. Faults form a FIFO schedule: each request takes
// the first fault whose Path matches its endpoint ("" matches both). A fault with
// Count > 0 applies to that many requests, Count <= 0 to all until ClearFaults.
type Fault struct {
	Kind  FaultKind
	Phase Phase
	// Path is UserTokenPath, TenantTokenPath or "" (both).
	Path  string
	Count int
	// Delay is waited before the fault acts (for FaultLatency it is the fault).
	Delay time.Duration
	// Status overrides the HTTP status of FaultStatus (503) and FaultErrorCode (200).
	Status int
	// Body is FaultStatus's body.
	Body string
	// Code is FaultErrorCode's Feishu code (default 99991400).
	Code int
	// RetryAfter, when positive, is sent as Retry-After (whole seconds, rounded up).
	RetryAfter time.Duration
}

var faultRules = providertest.Rules{
	Name:     "fakefeishu",
	Paths:    []string{UserTokenPath, TenantTokenPath},
	JSONType: "application/json; charset=utf-8",
	Kinds: []providertest.Kind{FaultLatency, FaultStatus, FaultErrorCode, FaultMalformedJSON, FaultHang,
		FaultCloseConnection},
}

// InjectFault appends f to the schedule. It panics on an unknown kind, phase or path.
func (s *Server) InjectFault(f Fault) {
	s.faults.Inject(&faultRules, providertest.Fault{Kind: f.Kind, Phase: f.Phase, Path: f.Path, Count: f.Count,
		Delay: f.Delay, Status: f.Status, Body: f.Body, RetryAfter: f.RetryAfter}, f)
}

// ClearFaults empties the schedule.
func (s *Server) ClearFaults() { s.faults.Clear() }

// PendingFaults returns how many faults are still scheduled.
func (s *Server) PendingFaults() int { return s.faults.Pending() }

// faultAnswer builds the answers that look like Feishu's; they carry Retry-After too.
func faultAnswer(f Fault) (providertest.Answer, bool) {
	var a providertest.Answer
	switch f.Kind {
	case FaultErrorCode:
		status, code := f.Status, f.Code
		if status == 0 {
			status = http.StatusOK
		}
		if code == 0 {
			code = CodeRateLimited
		}
		a = providertest.JSON(status, map[string]any{"code": code, "msg": "fakefeishu: injected error code"})
		a.Header = http.Header{"Content-Type": {"application/json; charset=utf-8"}, "Cache-Control": {"no-store"}}
	case FaultMalformedJSON:
		a = providertest.Answer{Status: http.StatusOK, Body: []byte(`{"code":0,"access_token": <html>not json</html>`),
			Header: http.Header{"Content-Type": {"application/json; charset=utf-8"}}}
	default:
		return a, false
	}
	if f.RetryAfter > 0 {
		a.Header.Set("Retry-After", strconv.FormatInt(providertest.CeilSeconds(f.RetryAfter), 10))
	}
	return a, true
}
