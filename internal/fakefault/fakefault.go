// Package fakefault is the fault machinery shared by the login-based fake providers
// (fakezogo, fakechathub): a FIFO schedule of misbehaviours per endpoint, applied before
// or after the fake processes a request.
package fakefault

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"
)

// Kind says how a faulty request misbehaves.
type Kind int

const (
	// Latency waits Fault.Delay, then answers normally.
	Latency Kind = iota + 1
	// Status answers Fault.Status (default 503) with Fault.Body (JSON if it starts with
	// "{" or "\"", text otherwise).
	Status
	// RateLimit answers 429 with Retry-After from Fault.RetryAfter.
	RateLimit
	// Hang never answers; the connection is dropped when the client gives up or the
	// server closes.
	Hang
	// MalformedJSON answers 200 with a body that is not JSON.
	MalformedJSON
	// CloseConnection resets the connection without an answer.
	CloseConnection
	// MissingToken answers 200 with a well-formed JSON body that lacks the token (each
	// fake says what that body is).
	MissingToken
)

func (k Kind) String() string {
	switch k {
	case Latency:
		return "latency"
	case Status:
		return "status"
	case RateLimit:
		return "rate_limit"
	case Hang:
		return "hang"
	case MalformedJSON:
		return "malformed_json"
	case CloseConnection:
		return "close_connection"
	case MissingToken:
		return "missing_token"
	}
	return fmt.Sprintf("Kind(%d)", int(k))
}

// Phase says whether a fault strikes before or after the request is processed.
type Phase int

const (
	// BeforeGrant faults answer without processing: nothing is consumed or minted.
	BeforeGrant Phase = iota
	// AfterGrant faults let the request be processed (a refresh token consumed, new
	// tokens minted, a login counted) and then replace the answer: the client never
	// sees the new tokens.
	AfterGrant
)

func (p Phase) String() string {
	if p == AfterGrant {
		return "after_grant"
	}
	return "before_grant"
}

// Fault is one scheduled misbehaviour of one endpoint.
//
// Each request takes the first scheduled fault for its endpoint. A fault with Count > 0
// applies to that many requests; Count <= 0 applies to every request until cleared.
type Fault struct {
	Kind  Kind
	Phase Phase
	// Path names the endpoint; "" means the fake's main endpoint.
	Path  string
	Count int
	// Delay is waited before the fault acts (for Latency it is the fault).
	Delay      time.Duration
	Status     int
	Body       string
	RetryAfter time.Duration
}

type scheduled struct {
	Fault
	remaining int
}

// Schedule is a concurrency-safe fault schedule.
type Schedule struct {
	mu     sync.Mutex
	faults []*scheduled
}

// Inject appends f. defaultPath replaces an empty Path; valid lists the endpoints. It
// panics on an unknown kind, phase or path: a bug in the calling test.
func (s *Schedule) Inject(f Fault, defaultPath string, valid ...string) {
	if f.Kind < Latency || f.Kind > MissingToken {
		panic(fmt.Sprintf("fakefault: unknown fault kind %v", f.Kind))
	}
	if f.Phase != BeforeGrant && f.Phase != AfterGrant {
		panic(fmt.Sprintf("fakefault: unknown phase %d", int(f.Phase)))
	}
	if f.Path == "" {
		f.Path = defaultPath
	}
	ok := false
	for _, v := range valid {
		ok = ok || v == f.Path
	}
	if !ok {
		panic(fmt.Sprintf("fakefault: unknown path %q (want one of %q)", f.Path, valid))
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = append(s.faults, &scheduled{Fault: f, remaining: f.Count})
}

// Take assigns the first fault scheduled for path to one request, or returns nil.
func (s *Schedule) Take(path string) *Fault {
	s.mu.Lock()
	defer s.mu.Unlock()
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

// Clear empties the schedule.
func (s *Schedule) Clear() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = nil
}

// Pending returns how many faults are scheduled.
func (s *Schedule) Pending() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.faults)
}

// Answer is what a fake decided to send.
type Answer struct {
	Status int
	Body   []byte // sent as application/json
}

// Serve runs decide between the two phases of fault f (nil: none) and writes the answer.
// missing builds MissingToken's body from the decided answer (nil for BeforeGrant). A
// dropped request ends in panic(http.ErrAbortHandler), so callers' defers still run.
// done is closed when the fake shuts down.
func Serve(w http.ResponseWriter, r *http.Request, f *Fault, done <-chan struct{}, decide func() Answer, missing func(*Answer) []byte) {
	if f != nil && f.Phase == BeforeGrant {
		if !wait(r.Context(), f.Delay, done) {
			panic(http.ErrAbortHandler)
		}
		if f.Kind != Latency {
			misbehave(w, r, *f, done, missing(nil))
			return
		}
		if r.Context().Err() != nil {
			panic(http.ErrAbortHandler)
		}
	}
	res := decide()
	if f != nil && f.Phase == AfterGrant {
		if !wait(r.Context(), f.Delay, done) {
			panic(http.ErrAbortHandler)
		}
		if f.Kind != Latency {
			misbehave(w, r, *f, done, missing(&res))
			return
		}
	}
	Write(w, res)
}

// Write sends a JSON answer, uncacheable.
func Write(w http.ResponseWriter, a Answer) {
	h := w.Header()
	h.Set("Content-Type", "application/json; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(a.Status)
	_, _ = w.Write(a.Body)
}

func wait(ctx context.Context, d time.Duration, done <-chan struct{}) bool {
	if d <= 0 {
		return true
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	case <-done:
		return false
	}
}

func misbehave(w http.ResponseWriter, r *http.Request, f Fault, done <-chan struct{}, missingBody []byte) {
	retryAfter := func() {
		if f.RetryAfter > 0 {
			w.Header().Set("Retry-After", strconv.FormatInt(int64((f.RetryAfter+time.Second-1)/time.Second), 10))
		}
	}
	switch f.Kind {
	case Status:
		status := f.Status
		if status == 0 {
			status = http.StatusServiceUnavailable
		}
		retryAfter()
		body := f.Body
		if body == "" {
			body = "fake: injected failure"
		}
		if body[0] == '{' || body[0] == '"' {
			w.Header().Set("Content-Type", "application/json")
		} else {
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		}
		w.WriteHeader(status)
		_, _ = w.Write([]byte(body))
	case RateLimit:
		retryAfter()
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.WriteHeader(http.StatusTooManyRequests)
		_, _ = w.Write([]byte("fake: rate limited"))
	case Hang:
		select {
		case <-r.Context().Done():
		case <-done:
		}
		panic(http.ErrAbortHandler)
	case MalformedJSON:
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write([]byte(`{"access_token": <html>not json</html>`))
	case MissingToken:
		Write(w, Answer{Status: http.StatusOK, Body: missingBody})
	case CloseConnection:
		hj, ok := w.(http.Hijacker)
		if !ok {
			panic(http.ErrAbortHandler)
		}
		conn, _, err := hj.Hijack()
		if err != nil {
			panic(http.ErrAbortHandler)
		}
		if tc, ok := conn.(*net.TCPConn); ok {
			_ = tc.SetLinger(0)
		}
		_ = conn.Close()
	}
}
