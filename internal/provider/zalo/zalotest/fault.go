package zalotest

import (
	"time"

	"github.com/tokenwarden/tokenwarden/internal/provider/providertest"
)

// FaultKind says how a faulty request misbehaves (the kinds shared by the fakes, see
// providertest).
type FaultKind = providertest.Kind

const (
	// FaultLatency waits Fault.Delay, then answers normally.
	FaultLatency = providertest.Latency
	// FaultStatus answers HTTP Fault.Status (default 502) with Fault.Body (default a
	// short text) and Retry-After when Fault.RetryAfter is positive.
	FaultStatus = providertest.Status
	// FaultErrorIn200 answers HTTP 200 with Zalo's error shape: Fault.ErrorCode (default
	// -32, Zalo's request-limit code) and Fault.ErrorName.
	FaultErrorIn200 = providertest.ErrorIn200
	// FaultMalformedJSON answers 200 with a body that is not JSON.
	FaultMalformedJSON = providertest.MalformedJSON
	// FaultEmptyBody answers 200 with an empty body.
	FaultEmptyBody = providertest.EmptyBody
	// FaultMissingAccessToken answers 200 with a token answer lacking access_token. In
	// AfterGrant phase it still carries the newly minted refresh_token.
	FaultMissingAccessToken = providertest.MissingToken
	// FaultHang never answers: the request blocks until the client gives up or the
	// Server closes, then the connection is dropped.
	FaultHang = providertest.Hang
	// FaultCloseConnection resets the connection without an answer.
	FaultCloseConnection = providertest.CloseConnection
)

// Phase says whether a fault strikes before or after the grant is processed.
type Phase = providertest.Phase

const (
	// BeforeGrant faults act without looking at the grant: nothing is consumed, and the
	// request is not Processed. The zero value.
	BeforeGrant = providertest.BeforeGrant
	// AfterGrant faults let the grant be processed (the token or code is consumed and
	// successors minted) and then replace the answer.
	AfterGrant = providertest.AfterGrant
)

// DefaultFaultErrorCode is FaultErrorIn200's code when Fault.ErrorCode is 0.
const DefaultFaultErrorCode = -32

// Fault is one scheduled misbehaviour. Faults form a FIFO schedule: each arriving
// request takes the first fault whose Path matches it. A fault with Count > 0 applies to
// that many requests and then leaves the schedule; Count <= 0 applies until ClearFaults.
type Fault struct {
	Kind  FaultKind
	Phase Phase
	// Path restricts the fault to OATokenPath or UserTokenPath; "" matches both.
	Path  string
	Count int
	// Delay is waited before the fault acts (for FaultLatency it is the fault). The wait
	// ends early if the client leaves (the request is dropped) or the Server closes.
	Delay time.Duration
	// Status and Body are FaultStatus's answer.
	Status int
	Body   string
	// RetryAfter is sent as Retry-After (whole seconds, rounded up) by FaultStatus.
	RetryAfter time.Duration
	// ErrorCode and ErrorName are FaultErrorIn200's error and error_name.
	ErrorCode int
	ErrorName string
}

var faultRules = providertest.Rules{
	Name:       "fakezalo",
	Paths:      []string{OATokenPath, UserTokenPath},
	StatusCode: 502,
	Kinds: []providertest.Kind{FaultLatency, FaultStatus, FaultErrorIn200, FaultMalformedJSON, FaultEmptyBody,
		FaultMissingAccessToken, FaultHang, FaultCloseConnection},
}

// InjectFault appends f to the schedule. It panics on an unknown Kind, Phase or Path,
// which is a bug in the calling test.
func (s *Server) InjectFault(f Fault) {
	s.faults.Inject(&faultRules, providertest.Fault{Kind: f.Kind, Phase: f.Phase, Path: f.Path, Count: f.Count,
		Delay: f.Delay, Status: f.Status, Body: f.Body, RetryAfter: f.RetryAfter}, f)
}

// ClearFaults empties the schedule. Requests already assigned a fault keep it.
func (s *Server) ClearFaults() { s.faults.Clear() }

// PendingFaults returns how many faults are still scheduled.
func (s *Server) PendingFaults() int { return s.faults.Pending() }
