package providertest

// The fault machinery: a FIFO schedule of misbehaviours per endpoint, applied before or
// after the fake processes a request, and the httptest lifecycle (Start, URL, Close,
// Serve) that releases requests held by those faults.
//
// Each fake describes itself with Rules (its endpoints, the kinds it supports, how its
// error answers look) and builds the answers that only it knows (a token answer without
// its token, an error in a 200) through Exchange.Custom.

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"time"
)

// Kind says how a faulty request misbehaves.
type Kind int

const (
	// Latency waits Fault.Delay, then answers normally.
	Latency Kind = iota + 1
	// Status answers Fault.Status (default Rules.StatusCode, 503) with Fault.Body (JSON
	// if it looks like JSON, text otherwise; a short text when empty) and Retry-After
	// when Fault.RetryAfter is positive.
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
	// EmptyBody answers 200 with an empty body.
	EmptyBody
	// ErrorIn200 answers 200 with the fake's error shape, as some providers do.
	ErrorIn200
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
		return "missing_access_token"
	case EmptyBody:
		return "empty_body"
	case ErrorIn200:
		return "error_in_200"
	}
	return fmt.Sprintf("FaultKind(%d)", int(k))
}

// Phase says whether a fault strikes before or after the request is processed.
type Phase int

const (
	// BeforeGrant faults answer without processing: nothing is consumed or minted, and
	// presenting the same refresh token again is legitimate. The zero value.
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
	// Path names the endpoint; "" means Rules.DefaultPath (every endpoint when that is
	// "" too).
	Path  string
	Count int
	// Delay is waited before the fault acts (for Latency it is the fault).
	Delay      time.Duration
	Status     int
	Body       string
	RetryAfter time.Duration
}

// Rules describe one fake's faults.
type Rules struct {
	// Name prefixes panics and default bodies ("fakeoauth: injected failure").
	Name string
	// DefaultPath replaces an empty Fault.Path; when it is "", an empty Path matches
	// every endpoint.
	DefaultPath string
	// Paths are the endpoints a fault may name.
	Paths []string
	// Kinds are the kinds the fake supports.
	Kinds []Kind
	// StatusCode is Status's HTTP status when Fault.Status is 0; 0 means 503.
	StatusCode int
	// JSONType is the Content-Type of a Status body that looks like JSON; "" means
	// application/json.
	JSONType string
	// QuotedJSON makes a Status body starting with '"' look like JSON too (a JSON
	// string); otherwise only '{' does.
	QuotedJSON bool
}

// Check panics unless f names a kind, phase and path of these rules: a bug in the calling
// test. It returns f with Path defaulted.
func (r *Rules) Check(f Fault) Fault {
	if !slices.Contains(r.Kinds, f.Kind) {
		panic(fmt.Sprintf("%s: InjectFault: unknown fault kind %v", r.Name, f.Kind))
	}
	if f.Phase != BeforeGrant && f.Phase != AfterGrant {
		panic(fmt.Sprintf("%s: InjectFault: unknown phase %d", r.Name, int(f.Phase)))
	}
	if f.Path == "" {
		f.Path = r.DefaultPath
	}
	if f.Path != "" && !slices.Contains(r.Paths, f.Path) {
		panic(fmt.Sprintf("%s: InjectFault: unknown path %q (want one of %q)", r.Name, f.Path, r.Paths))
	}
	return f
}

type scheduled[F any] struct {
	fault     Fault
	full      F
	remaining int
}

// Schedule is a concurrency-safe fault schedule. Each entry is a Fault and the fake's
// own description of it, F (its exported Fault type, with fields only it knows).
type Schedule[F any] struct {
	mu     sync.Mutex
	faults []*scheduled[F]
}

// Inject appends f, checked by r (see Rules.Check), with full, the fake's own fault.
func (s *Schedule[F]) Inject(r *Rules, f Fault, full F) {
	f = r.Check(f)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = append(s.faults, &scheduled[F]{fault: f, full: full, remaining: f.Count})
}

// Take assigns the first fault scheduled for path to one request, or returns nil and
// the zero F.
func (s *Schedule[F]) Take(path string) (*Fault, F) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, sf := range s.faults {
		if sf.fault.Path != "" && sf.fault.Path != path {
			continue
		}
		f := sf.fault
		if sf.fault.Count > 0 {
			sf.remaining--
			if sf.remaining <= 0 {
				s.faults = append(s.faults[:i:i], s.faults[i+1:]...)
			}
		}
		return &f, sf.full
	}
	var zero F
	return nil, zero
}

// Clear empties the schedule. Requests already assigned a fault keep it.
func (s *Schedule[F]) Clear() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = nil
}

// Pending returns how many faults are scheduled.
func (s *Schedule[F]) Pending() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.faults)
}

// Answer is what a fake decided to send.
type Answer struct {
	Status int
	Body   []byte
	// Header, when not nil, replaces the default headers (JSON, uncacheable).
	Header http.Header
}

// JSON is an Answer with v encoded as json.Encoder does (newline-terminated).
func JSON(status int, v any) Answer {
	b, _ := json.Marshal(v)
	return Answer{Status: status, Body: append(b, '\n')}
}

// Why a request was dropped without an answer (Exchange.Dropped).
const (
	ClientGone      = "client_gone"
	ServerClosed    = "server_closed"
	ConnectionReset = "connection_reset"
)

// Exchange is one request served by Serve.
type Exchange struct {
	// Fault is the request's fault; nil means none.
	Fault *Fault
	// Rules shape the built-in answers; nil means zero Rules.
	Rules *Rules
	// Done is closed when the fake shuts down; it releases waits and hangs.
	Done <-chan struct{}
	// Decide processes the request and returns its answer.
	Decide func() Answer
	// Custom builds the answer of a misbehaving request: decided is Decide's answer for
	// AfterGrant faults, nil for BeforeGrant ones. ok false keeps the built-in answer.
	// MissingToken and ErrorIn200 have no useful built-in answer (an empty JSON object).
	Custom func(decided *Answer) (a Answer, ok bool)

	// Status is the HTTP status sent, set by Serve; 0 when none was.
	Status int
	// Dropped says why no answer was sent (ClientGone, ServerClosed, ConnectionReset).
	Dropped string
}

// LogAttrs describes the exchange for a request log line: the status sent and outcome,
// the fault and its phase if any, why the request was dropped if it was, and elapsed.
func (x *Exchange) LogAttrs(outcome string, elapsed time.Duration) []slog.Attr {
	attrs := []slog.Attr{slog.Int("status", x.Status), slog.String("outcome", outcome)}
	if x.Fault != nil {
		attrs = append(attrs, slog.String("fault", x.Fault.Kind.String()), slog.String("phase", x.Fault.Phase.String()))
	}
	if x.Dropped != "" {
		attrs = append(attrs, slog.String("dropped", x.Dropped))
	}
	return append(attrs, slog.Duration("elapsed", elapsed))
}

// Serve runs x.Decide between the two phases of x.Fault and writes the answer. A
// dropped request ends in panic(http.ErrAbortHandler): net/http then closes the
// connection without an answer, and callers' defers still run.
func Serve(w http.ResponseWriter, r *http.Request, x *Exchange) {
	f := x.Fault
	if f != nil && f.Phase == BeforeGrant {
		if !x.wait(r.Context(), f.Delay) {
			panic(http.ErrAbortHandler)
		}
		if f.Kind != Latency {
			x.misbehave(w, r, nil)
			return
		}
		// The timer and the client's departure can become ready together, and select
		// picks either. A client gone before the request is processed must leave its
		// token untouched, so check once more.
		if r.Context().Err() != nil {
			x.Dropped = ClientGone
			panic(http.ErrAbortHandler)
		}
	}
	res := x.Decide()
	if f != nil && f.Phase == AfterGrant {
		// Processed already: whatever happens now, the token is consumed.
		if !x.wait(r.Context(), f.Delay) {
			panic(http.ErrAbortHandler)
		}
		if f.Kind != Latency {
			x.misbehave(w, r, &res)
			return
		}
	}
	x.write(w, res)
}

// Write sends a, with the default headers (JSON, uncacheable) unless a.Header is set.
func Write(w http.ResponseWriter, a Answer) {
	h := w.Header()
	if a.Header != nil {
		for k, v := range a.Header {
			h[k] = v
		}
	} else {
		h.Set("Content-Type", "application/json; charset=utf-8")
		h.Set("Cache-Control", "no-store")
	}
	w.WriteHeader(a.Status)
	_, _ = w.Write(a.Body)
}

func (x *Exchange) write(w http.ResponseWriter, a Answer) {
	Write(w, a)
	x.Status = a.Status
}

// wait sleeps d unless the client leaves or the fake closes; it reports whether the
// request should go on.
func (x *Exchange) wait(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return true
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		x.Dropped = ClientGone
		return false
	case <-x.Done:
		x.Dropped = ServerClosed
		return false
	}
}

func (x *Exchange) misbehave(w http.ResponseWriter, r *http.Request, decided *Answer) {
	f := *x.Fault
	switch f.Kind {
	case Hang:
		select {
		case <-r.Context().Done():
			x.Dropped = ClientGone
		case <-x.Done:
			x.Dropped = ServerClosed
		}
		// Returning normally would make net/http send an empty 200; drop the connection.
		panic(http.ErrAbortHandler)
	case CloseConnection:
		x.Dropped = ConnectionReset
		resetConnection(w)
		return
	}
	if x.Custom != nil {
		if a, ok := x.Custom(decided); ok {
			x.write(w, a)
			return
		}
	}
	var rules Rules
	if x.Rules != nil {
		rules = *x.Rules
	}
	header := http.Header{}
	if f.RetryAfter > 0 && (f.Kind == Status || f.Kind == RateLimit) {
		header.Set("Retry-After", strconv.FormatInt(CeilSeconds(f.RetryAfter), 10))
	}
	switch f.Kind {
	case Status:
		status := f.Status
		if status == 0 {
			status = rules.StatusCode
		}
		if status == 0 {
			status = http.StatusServiceUnavailable
		}
		body := f.Body
		if body == "" {
			body = rules.Name + ": injected failure"
		}
		if body[0] == '{' || (rules.QuotedJSON && body[0] == '"') {
			ct := rules.JSONType
			if ct == "" {
				ct = "application/json"
			}
			header.Set("Content-Type", ct)
		} else {
			header.Set("Content-Type", "text/plain; charset=utf-8")
		}
		x.write(w, Answer{Status: status, Body: []byte(body), Header: header})
	case RateLimit:
		header.Set("Content-Type", "text/plain; charset=utf-8")
		x.write(w, Answer{Status: http.StatusTooManyRequests, Body: []byte(rules.Name + ": rate limited"), Header: header})
	case MalformedJSON:
		header.Set("Content-Type", "application/json")
		x.write(w, Answer{Status: http.StatusOK, Body: []byte(`{"access_token": <html>not json</html>`), Header: header})
	case EmptyBody:
		header.Set("Content-Type", "application/json")
		x.write(w, Answer{Status: http.StatusOK, Header: header})
	default: // MissingToken, ErrorIn200 without a Custom answer
		x.write(w, Answer{Status: http.StatusOK, Body: []byte("{}\n")})
	}
}

// resetConnection drops the client's connection without a response, with a TCP RST when
// the connection allows it, so the client sees "connection reset by peer".
func resetConnection(w http.ResponseWriter) {
	hj, ok := w.(http.Hijacker)
	if !ok {
		panic(http.ErrAbortHandler) // HTTP/2: resets the stream
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

// CeilSeconds renders d as whole seconds, rounded up (so any positive duration is at
// least 1); 0 for d <= 0.
func CeilSeconds(d time.Duration) int64 {
	if d <= 0 {
		return 0
	}
	// Rounding up by adding a second first would overflow for the longest durations.
	s := int64(d / time.Second)
	if d%time.Second != 0 {
		s++
	}
	return s
}

// Serve serves a request whose fault needs nothing fake-specific but MissingToken's
// body, built by missing from the decided answer (nil for BeforeGrant faults).
func (r *Rules) Serve(w http.ResponseWriter, req *http.Request, f *Fault, done <-chan struct{}, decide func() Answer, missing func(*Answer) []byte) {
	Serve(w, req, &Exchange{Fault: f, Rules: r, Done: done, Decide: decide,
		Custom: func(decided *Answer) (Answer, bool) {
			if f.Kind != MissingToken {
				return Answer{}, false
			}
			return Answer{Status: http.StatusOK, Body: missing(decided)}, true
		}})
}
