package fakefeishu

import (
	"fmt"
	"time"
)

// FaultKind says how a faulty request misbehaves.
type FaultKind int

const (
	// FaultLatency waits Fault.Delay, then answers normally.
	FaultLatency FaultKind = iota + 1
	// FaultStatus answers Fault.Status (default 503) with Fault.Body (default a short
	// text; sent as JSON when it starts with "{").
	FaultStatus
	// FaultErrorCode answers HTTP Fault.Status (default 200) with a Feishu error body
	// {"code": Fault.Code (default 99991400, rate limit), "msg": ...}: Feishu puts many
	// errors in 200 answers.
	FaultErrorCode
	// FaultMalformedJSON answers 200 with a body that is not JSON.
	FaultMalformedJSON
	// FaultHang never answers; the connection is dropped when the client gives up or
	// the Server closes.
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
	case FaultErrorCode:
		return "error_code"
	case FaultMalformedJSON:
		return "malformed_json"
	case FaultHang:
		return "hang"
	case FaultCloseConnection:
		return "close_connection"
	default:
		return fmt.Sprintf("FaultKind(%d)", int(k))
	}
}

// Phase says whether a fault strikes before or after the grant is processed.
type Phase int

const (
	// BeforeGrant faults act without looking at the request's grant: nothing is
	// consumed, and presenting the same refresh token again is legitimate.
	BeforeGrant Phase = iota
	// AfterGrant faults let the grant run first (the refresh token is consumed, a tenant
	// token may be minted) and then replace the answer.
	AfterGrant
)

func (p Phase) String() string {
	if p == AfterGrant {
		return "after_grant"
	}
	return "before_grant"
}

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

type scheduledFault struct {
	Fault
	remaining int
}

// InjectFault appends f to the schedule. It panics on an unknown kind, phase or path.
func (s *Server) InjectFault(f Fault) {
	if f.Kind < FaultLatency || f.Kind > FaultCloseConnection {
		panic(fmt.Sprintf("fakefeishu: InjectFault: unknown fault kind %v", f.Kind))
	}
	if f.Phase != BeforeGrant && f.Phase != AfterGrant {
		panic(fmt.Sprintf("fakefeishu: InjectFault: unknown phase %d", int(f.Phase)))
	}
	if f.Path != "" && f.Path != UserTokenPath && f.Path != TenantTokenPath {
		panic(fmt.Sprintf("fakefeishu: InjectFault: unknown path %q", f.Path))
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = append(s.faults, &scheduledFault{Fault: f, remaining: f.Count})
}

// ClearFaults empties the schedule.
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
