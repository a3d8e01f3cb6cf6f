package fakeoauth

import (
	"fmt"
	"time"
)

// FaultKind says how a faulty request misbehaves.
type FaultKind int

const (
	// FaultLatency only waits Fault.Delay, then answers normally. In BeforeGrant phase a
	// client that gives up during the wait leaves its token unconsumed; in AfterGrant
	// phase the token is already consumed when it gives up.
	FaultLatency FaultKind = iota + 1
	// FaultStatus answers Fault.Status (default 503) with Fault.Body.
	FaultStatus
	// FaultRateLimit answers 429 with Retry-After set to Fault.RetryAfter (whole seconds,
	// rounded up; omitted when 0).
	FaultRateLimit
	// FaultHang never answers: the request blocks until the client gives up or the Server
	// is closed, then the connection is dropped without a response.
	FaultHang
	// FaultMalformedJSON answers 200 with a body that is not JSON.
	FaultMalformedJSON
	// FaultErrorIn200 answers 200 with {"error": Fault.ErrorCode} (default
	// "server_error"), as some unorthodox servers do.
	FaultErrorIn200
	// FaultCloseConnection hijacks the connection and resets it (TCP RST where
	// possible): the client sees a network error and no response at all.
	FaultCloseConnection
	// FaultMissingAccessToken answers 200 with a token response lacking access_token (at
	// the introspection endpoint: an answer lacking "active").
	// In AfterGrant phase it still carries the newly minted refresh_token, so a client
	// that rejects the answer (as it must) loses the rotated token.
	FaultMissingAccessToken
)

func (k FaultKind) String() string {
	switch k {
	case FaultLatency:
		return "latency"
	case FaultStatus:
		return "status"
	case FaultRateLimit:
		return "rate_limit"
	case FaultHang:
		return "hang"
	case FaultMalformedJSON:
		return "malformed_json"
	case FaultErrorIn200:
		return "error_in_200"
	case FaultCloseConnection:
		return "close_connection"
	case FaultMissingAccessToken:
		return "missing_access_token"
	default:
		return fmt.Sprintf("FaultKind(%d)", int(k))
	}
}

// Phase says whether a fault strikes before or after the grant is processed.
type Phase int

const (
	// BeforeGrant faults answer (or fail) without looking at the grant: the refresh
	// token is not consumed and may legitimately be presented again. The zero value.
	BeforeGrant Phase = iota
	// AfterGrant faults let the grant be processed first (the presented token is
	// consumed and successors are minted) and then replace the answer: the client never
	// sees the new tokens. This is the crash window between "provider rotated" and
	// "client stored the result".
	AfterGrant
)

func (p Phase) String() string {
	if p == AfterGrant {
		return "after_grant"
	}
	return "before_grant"
}

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

type scheduledFault struct {
	Fault
	remaining int
}

// InjectFault appends f to the fault schedule. It panics on an unknown Kind or Phase,
// which is a bug in the calling test.
func (s *Server) InjectFault(f Fault) {
	if f.Kind < FaultLatency || f.Kind > FaultMissingAccessToken {
		panic(fmt.Sprintf("fakeoauth: InjectFault: unknown fault kind %v", f.Kind))
	}
	if f.Phase != BeforeGrant && f.Phase != AfterGrant {
		panic(fmt.Sprintf("fakeoauth: InjectFault: unknown phase %d", int(f.Phase)))
	}
	switch f.Path {
	case "", TokenPath:
		f.Path = TokenPath
	case IntrospectionPath:
	default:
		panic(fmt.Sprintf("fakeoauth: InjectFault: unknown path %q (want %q, %q or empty)", f.Path, TokenPath, IntrospectionPath))
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = append(s.faults, &scheduledFault{Fault: f, remaining: f.Count})
}

// ClearFaults empties the fault schedule. Requests already assigned a fault keep it.
func (s *Server) ClearFaults() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = nil
}

// PendingFaults returns how many faults are still scheduled.
func (s *Server) PendingFaults() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.faults)
}

// takeFaultLocked assigns the first fault scheduled for path to one request.
func (s *Server) takeFaultLocked(path string) *Fault {
	for i, sf := range s.faults {
		if sf.Path != path {
			continue
		}
		f := sf.Fault
		if sf.Count > 0 {
			sf.remaining--
			if sf.remaining <= 0 {
				s.faults = append(s.faults[:i:i], s.faults[i+1:]...)
			}
		}
		return &f
	}
	return nil
}
