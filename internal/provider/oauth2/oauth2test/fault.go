package oauth2test

import (
	"time"

	"github.com/tokenwarden/tokenwarden/internal/provider/providertest"
)

// FaultKind says how a faulty request misbehaves (the kinds shared by the fakes, see
// providertest).
type FaultKind = providertest.Kind

const (
	// FaultLatency only waits Fault.Delay, then answers normally. In BeforeGrant phase a
	// client that gives up during the wait leaves its token unconsumed; in AfterGrant
	// phase the token is already consumed when it gives up.
	FaultLatency = providertest.Latency
	// FaultStatus answers Fault.Status (default 503) with Fault.Body.
	FaultStatus = providertest.Status
	// FaultRateLimit answers 429 with Retry-After set to Fault.RetryAfter (whole seconds,
	// rounded up; omitted when 0).
	FaultRateLimit = providertest.RateLimit
	// FaultHang never answers: the request blocks until the client gives up or the Server
	// is closed, then the connection is dropped without a response.
	FaultHang = providertest.Hang
	// FaultMalformedJSON answers 200 with a body that is not JSON.
	FaultMalformedJSON = providertest.MalformedJSON
	// FaultErrorIn200 answers 200 with {"error": Fault.ErrorCode} (default
	// "server_error"), as some unorthodox servers do.
	FaultErrorIn200 = providertest.ErrorIn200
	// FaultCloseConnection hijacks the connection and resets it (TCP RST where
	// possible): the client sees a network error and no response at all.
	FaultCloseConnection = providertest.CloseConnection
	// FaultMissingAccessToken answers 200 with a token response lacking access_token (at
	// the introspection endpoint: an answer lacking "active").
	// In AfterGrant phase it still carries the newly minted refresh_token, so a client
	// that rejects the answer (as it must) loses the rotated token.
	FaultMissingAccessToken = providertest.MissingToken
)

// Phase says whether a fault strikes before or after the grant is processed.
type Phase = providertest.Phase

const (
	// BeforeGrant faults answer (or fail) without looking at the grant: the refresh
	// token is not consumed and may legitimately be presented again. The zero value.
	BeforeGrant = providertest.BeforeGrant
	// AfterGrant faults let the grant be processed first (the presented token is
	// consumed and successors are minted) and then replace the answer: the client never
	// sees the new tokens. This is the crash window between "provider rotated" and
	// "client stored the result".
	AfterGrant = providertest.AfterGrant
)

// Fault is one scheduled misbehaviour of the token endpoint or, with Path set to
// IntrospectionPath, of the introspection endpoint.
//
// Faults form a FIFO schedule per endpoint: each request, when it arrives, is assigned
// the first scheduled fault whose Path names its endpoint (if any). A fault with Count > 0
// is assigned to that many requests and then leaves the schedule, making room for the
// next one for that endpoint; a fault with Count <= 0 stays, applying to every request
// to its endpoint, until ClearFaults. Faults for one endpoint never delay or block faults
// for the other.
//
// At the introspection endpoint the kinds mean the same as at the token endpoint, with
// "the grant" read as "looking the token up": a BeforeGrant fault answers without
// looking, an AfterGrant fault looks first (so a delayed answer reflects the state at
// arrival). FaultMissingAccessToken answers 200 with a JSON object that lacks the
// required "active" member. Introspection never changes state, so the phase matters
// only for timing.
type Fault struct {
	Kind  FaultKind
	Phase Phase
	// Path selects the endpoint: "" or TokenPath (the token endpoint, as before Path
	// existed) or IntrospectionPath. Making it explicit keeps a test that injects a
	// token-endpoint fault from having it swallowed by an introspection it did not think
	// of, and the other way round.
	Path string
	// Count is how many requests the fault applies to; <= 0 means all, until cleared.
	Count int
	// Delay is waited before the fault acts (for FaultLatency it is the fault). The wait
	// ends early if the client goes away (the request is then dropped; in BeforeGrant
	// phase nothing is consumed) or the Server is closed.
	Delay time.Duration
	// Status is FaultStatus's HTTP status; 0 means 503.
	Status int
	// Body is FaultStatus's response body, sent as JSON if it starts with "{" and as
	// text otherwise; empty means a short text message.
	Body string
	// RetryAfter is sent as Retry-After (whole seconds, rounded up) by FaultRateLimit, and
	// by FaultStatus when positive.
	RetryAfter time.Duration
	// ErrorCode is FaultErrorIn200's error; empty means "server_error".
	ErrorCode string
}

var faultRules = providertest.Rules{
	Name:        "fakeoauth",
	DefaultPath: TokenPath,
	Paths:       []string{TokenPath, IntrospectionPath},
	Kinds: []providertest.Kind{FaultLatency, FaultStatus, FaultRateLimit, FaultHang, FaultMalformedJSON,
		FaultErrorIn200, FaultCloseConnection, FaultMissingAccessToken},
}

// InjectFault appends f to the fault schedule. It panics on an unknown Kind, Phase or
// Path, which is a bug in the calling test.
func (s *Server) InjectFault(f Fault) {
	s.faults.Inject(&faultRules, providertest.Fault{Kind: f.Kind, Phase: f.Phase, Path: f.Path, Count: f.Count,
		Delay: f.Delay, Status: f.Status, Body: f.Body, RetryAfter: f.RetryAfter}, f)
}

// ClearFaults empties the fault schedule. Requests already assigned a fault keep it.
func (s *Server) ClearFaults() { s.faults.Clear() }

// PendingFaults returns how many faults are still scheduled.
func (s *Server) PendingFaults() int { return s.faults.Pending() }
