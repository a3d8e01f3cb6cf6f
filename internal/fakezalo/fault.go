package fakezalo

import (
	"fmt"
	"time"
)

// FaultKind says how a faulty request misbehaves.
type FaultKind int

const (
	// FaultLatency waits Fault.Delay, then answers normally.
	FaultLatency FaultKind = iota + 1
	// FaultStatus answers HTTP Fault.Status (default 502) with Fault.Body (default a
	// short text) and Retry-After when Fault.RetryAfter is positive.
	FaultStatus
	// FaultErrorIn200 answers HTTP 200 with Zalo's error shape: Fault.ErrorCode (default
	// -32, Zalo's request-limit code) and Fault.ErrorName.
	FaultErrorIn200
	// FaultMalformedJSON answers 200 with a body that is not JSON.
	FaultMalformedJSON
	// FaultEmptyBody answers 200 with an empty body.
	FaultEmptyBody
	// FaultMissingAccessToken answers 200 with a token answer lacking access_token. In
	// AfterGrant phase it still carries the newly minted refresh_token.
	FaultMissingAccessToken
	// FaultHang never answers: the request blocks until the client gives up or the
	// Server closes, then the connection is dropped.
	FaultHang
	// FaultCloseConnection resets the connection without an answer.
	FaultCloseConnection
)

func (k FaultKind) String() string {
	switch k {
	case FaultLatency:
		return "latency"
	case FaultStatus:
		return "status"
	case FaultErrorIn200:
		return "error_in_200"
	case FaultMalformedJSON:
		return "malformed_json"
	case FaultEmptyBody:
		return "empty_body"
	case FaultMissingAccessToken:
		return "missing_access_token"
	case FaultHang:
		return "hang"
	case FaultCloseConnection:
		return "close_connection"
	}
	return fmt.Sprintf("FaultKind(%d)", int(k))
}

// Phase says whether a fault strikes before or after the grant is processed.
type Phase int

const (
	// BeforeGrant faults act without looking at the grant: nothing is consumed, and the
	// request is not Processed. The zero value.
	BeforeGrant Phase = iota
	// AfterGrant faults let the grant be processed (the token or code is consumed and
	// successors minted) and then replace the answer.
	AfterGrant
)

func (p Phase) String() string {
	if p == AfterGrant {
		return "after_grant"
	}
	return "before_grant"
}

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

type scheduledFault struct {
	Fault
	remaining int
}

// InjectFault appends f to the schedule. It panics on an unknown Kind, Phase or Path,
// which is a bug in the calling test.
func (s *Server) InjectFault(f Fault) {
	if f.Kind < FaultLatency || f.Kind > FaultCloseConnection {
		panic(fmt.Sprintf("fakezalo: InjectFault: unknown fault kind %v", f.Kind))
	}
	if f.Phase != BeforeGrant && f.Phase != AfterGrant {
		panic(fmt.Sprintf("fakezalo: InjectFault: unknown phase %d", int(f.Phase)))
	}
	if f.Path != "" && f.Path != OATokenPath && f.Path != UserTokenPath {
		panic(fmt.Sprintf("fakezalo: InjectFault: unknown path %q", f.Path))
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = append(s.faults, &scheduledFault{Fault: f, remaining: f.Count})
}

// ClearFaults empties the schedule. Requests already assigned a fault keep it.
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

func (s *Server) takeFaultLocked(path string) *Fault {
	for i, sf := range s.faults {
		if sf.Path != "" && sf.Path != path {
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
