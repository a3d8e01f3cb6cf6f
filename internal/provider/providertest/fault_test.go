package providertest_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/tokenwarden/tokenwarden/internal/provider/providertest"
)

var allKinds = []providertest.Kind{providertest.Latency, providertest.Status, providertest.RateLimit,
	providertest.Hang, providertest.MalformedJSON, providertest.CloseConnection, providertest.MissingToken,
	providertest.EmptyBody, providertest.ErrorIn200}

// testRules are the rules of a fake with two endpoints, the first the default.
var testRules = providertest.Rules{
	Name:        "fake",
	DefaultPath: "/token",
	Paths:       []string{"/token", "/other"},
	Kinds:       allKinds,
}

// anyPathRules have no default path: a fault without a path strikes every endpoint.
var anyPathRules = providertest.Rules{Name: "fake", Paths: []string{"/token", "/other"}, Kinds: allKinds}

// panicOf runs f and returns what it panicked with, or nil.
func panicOf(f func()) (recovered any) {
	defer func() { recovered = recover() }()
	f()
	return nil
}

func TestKindAndPhaseNames(t *testing.T) {
	for _, tc := range []struct {
		got, want string
	}{
		{providertest.Latency.String(), "latency"},
		{providertest.Status.String(), "status"},
		{providertest.RateLimit.String(), "rate_limit"},
		{providertest.Hang.String(), "hang"},
		{providertest.MalformedJSON.String(), "malformed_json"},
		{providertest.CloseConnection.String(), "close_connection"},
		{providertest.MissingToken.String(), "missing_access_token"},
		{providertest.EmptyBody.String(), "empty_body"},
		{providertest.ErrorIn200.String(), "error_in_200"},
		{providertest.Kind(0).String(), "FaultKind(0)"},
		{providertest.Kind(42).String(), "FaultKind(42)"},
		{providertest.BeforeGrant.String(), "before_grant"},
		{providertest.AfterGrant.String(), "after_grant"},
	} {
		if tc.got != tc.want {
			t.Errorf("got %q, want %q", tc.got, tc.want)
		}
	}
	var zero providertest.Phase
	if zero != providertest.BeforeGrant {
		t.Errorf("the zero Phase is %v, want before_grant", zero)
	}
}

func TestRulesCheck(t *testing.T) {
	narrow := providertest.Rules{Name: "narrow", DefaultPath: "/token", Paths: []string{"/token"},
		Kinds: []providertest.Kind{providertest.Status}}
	for _, tc := range []struct {
		name     string
		rules    providertest.Rules
		fault    providertest.Fault
		wantPath string
		// wantPanic, when set, is a substring of the panic message.
		wantPanic string
	}{
		{name: "empty path takes the default", rules: testRules,
			fault: providertest.Fault{Kind: providertest.Status}, wantPath: "/token"},
		{name: "named path kept", rules: testRules,
			fault: providertest.Fault{Kind: providertest.Hang, Phase: providertest.AfterGrant, Path: "/other"}, wantPath: "/other"},
		{name: "empty path without a default stays empty", rules: anyPathRules,
			fault: providertest.Fault{Kind: providertest.Status}, wantPath: ""},
		{name: "zero kind", rules: testRules,
			fault: providertest.Fault{}, wantPanic: "fake: InjectFault: unknown fault kind FaultKind(0)"},
		{name: "kind the fake does not support", rules: narrow,
			fault: providertest.Fault{Kind: providertest.Hang}, wantPanic: "narrow: InjectFault: unknown fault kind hang"},
		{name: "unknown phase", rules: testRules,
			fault: providertest.Fault{Kind: providertest.Status, Phase: 2}, wantPanic: "fake: InjectFault: unknown phase 2"},
		{name: "unknown path", rules: testRules,
			fault: providertest.Fault{Kind: providertest.Status, Path: "/nope"}, wantPanic: `fake: InjectFault: unknown path "/nope"`},
		{name: "unknown path without a default", rules: anyPathRules,
			fault: providertest.Fault{Kind: providertest.Status, Path: "/nope"}, wantPanic: `unknown path "/nope"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.fault.Count, tc.fault.Delay, tc.fault.Status, tc.fault.Body, tc.fault.RetryAfter = 3, time.Second, 500, "b", time.Minute
			var got providertest.Fault
			p := panicOf(func() { got = tc.rules.Check(tc.fault) })
			if tc.wantPanic != "" {
				if msg, _ := p.(string); !strings.Contains(msg, tc.wantPanic) {
					t.Fatalf("panic %v, want one containing %q", p, tc.wantPanic)
				}
				return
			}
			if p != nil {
				t.Fatalf("unexpected panic: %v", p)
			}
			want := tc.fault
			want.Path = tc.wantPath
			if got != want {
				t.Errorf("Check = %+v, want %+v", got, want)
			}
		})
	}
}

// TestScheduleTake pins the order in which requests take faults: per path, first
// scheduled first; a counted fault leaves after Count requests, an uncounted one stays.
func TestScheduleTake(t *testing.T) {
	type inject struct {
		id    string
		path  string
		count int
	}
	type take struct {
		path string
		want string // the id of the fault taken, "" for none
	}
	for _, tc := range []struct {
		name        string
		rules       *providertest.Rules
		inject      []inject
		takes       []take
		wantPending int
	}{
		{
			name:   "FIFO per path",
			rules:  &testRules,
			inject: []inject{{"a", "/token", 1}, {"b", "/other", 1}, {"c", "/token", 2}},
			takes: []take{{"/token", "a"}, {"/other", "b"}, {"/token", "c"}, {"/other", ""}, {"/token", "c"},
				{"/token", ""}},
		},
		{
			name:   "a fault of another path does not hold up this one's",
			rules:  &testRules,
			inject: []inject{{"a", "/other", 0}, {"b", "/token", 1}},
			takes:  []take{{"/token", "b"}, {"/token", ""}, {"/other", "a"}, {"/other", "a"}},
			// a is uncounted: it stays.
			wantPending: 1,
		},
		{
			name:        "count zero applies until cleared and shadows later faults",
			rules:       &testRules,
			inject:      []inject{{"a", "/token", 0}, {"b", "/token", 1}},
			takes:       []take{{"/token", "a"}, {"/token", "a"}, {"/token", "a"}, {"/other", ""}},
			wantPending: 2,
		},
		{
			name:        "negative count is uncounted too",
			rules:       &testRules,
			inject:      []inject{{"a", "/token", -1}},
			takes:       []take{{"/token", "a"}, {"/token", "a"}},
			wantPending: 1,
		},
		{
			name:   "empty path is the default path",
			rules:  &testRules,
			inject: []inject{{"a", "", 1}},
			takes:  []take{{"/other", ""}, {"/token", "a"}, {"/token", ""}},
		},
		{
			name:   "empty path without a default strikes every endpoint",
			rules:  &anyPathRules,
			inject: []inject{{"a", "", 2}, {"b", "/other", 1}},
			takes:  []take{{"/other", "a"}, {"/token", "a"}, {"/other", "b"}, {"/token", ""}},
		},
		{
			name:  "nothing scheduled",
			rules: &testRules,
			takes: []take{{"/token", ""}, {"/unknown", ""}},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var s providertest.Schedule[string]
			want := map[string]providertest.Fault{}
			for _, in := range tc.inject {
				f := providertest.Fault{Kind: providertest.Status, Path: in.path, Count: in.count, Body: in.id}
				s.Inject(tc.rules, f, in.id)
				want[in.id] = tc.rules.Check(f)
			}
			if got := s.Pending(); got != len(tc.inject) {
				t.Errorf("Pending after injecting = %d, want %d", got, len(tc.inject))
			}
			for i, tk := range tc.takes {
				f, full := s.Take(tk.path)
				switch {
				case tk.want == "" && (f != nil || full != ""):
					t.Errorf("take %d (%s): got %+v, %q, want none", i, tk.path, f, full)
				case tk.want == "":
				case f == nil:
					t.Errorf("take %d (%s): none, want %s", i, tk.path, tk.want)
				case full != tk.want || *f != want[tk.want]:
					t.Errorf("take %d (%s): got %+v, %q, want %+v, %q", i, tk.path, *f, full, want[tk.want], tk.want)
				}
			}
			if got := s.Pending(); got != tc.wantPending {
				t.Errorf("Pending at the end = %d, want %d", got, tc.wantPending)
			}
		})
	}
}

func TestScheduleInjectChecks(t *testing.T) {
	var s providertest.Schedule[int]
	if p := panicOf(func() { s.Inject(&testRules, providertest.Fault{Kind: providertest.Status, Path: "/nope"}, 1) }); p == nil {
		t.Fatal("Inject of an unknown path did not panic")
	}
	if got := s.Pending(); got != 0 {
		t.Errorf("Pending after a rejected Inject = %d, want 0", got)
	}
}

// TestScheduleTakeReturnsACopy: what a request took is its own; changing it changes
// neither the schedule nor what the next request takes.
func TestScheduleTakeReturnsACopy(t *testing.T) {
	var s providertest.Schedule[string]
	s.Inject(&testRules, providertest.Fault{Kind: providertest.Status, Count: 2, Status: 502}, "x")
	first, _ := s.Take("/token")
	first.Status = 599
	second, _ := s.Take("/token")
	if second == nil || second.Status != 502 || second.Count != 2 {
		t.Fatalf("second take = %+v, want the fault as injected", second)
	}
}

func TestScheduleClear(t *testing.T) {
	var s providertest.Schedule[string]
	s.Inject(&testRules, providertest.Fault{Kind: providertest.Hang, Count: 3}, "hang")
	s.Inject(&testRules, providertest.Fault{Kind: providertest.Status, Path: "/other"}, "status")
	taken, full := s.Take("/token")
	s.Clear()
	if got := s.Pending(); got != 0 {
		t.Errorf("Pending after Clear = %d, want 0", got)
	}
	if f, _ := s.Take("/token"); f != nil {
		t.Errorf("Take after Clear = %+v, want none", f)
	}
	if f, _ := s.Take("/other"); f != nil {
		t.Errorf("Take after Clear = %+v, want none", f)
	}
	// A request already assigned a fault keeps it.
	if taken == nil || taken.Kind != providertest.Hang || full != "hang" {
		t.Errorf("fault taken before Clear = %+v, %q, want the hang", taken, full)
	}
	s.Inject(&testRules, providertest.Fault{Kind: providertest.Status, Count: 1}, "again")
	if f, full := s.Take("/token"); f == nil || full != "again" {
		t.Errorf("Take after Clear and Inject = %+v, %q, want the new fault", f, full)
	}
}

// TestScheduleConcurrentTakes: a fault counted for n requests is taken by exactly n of
// many concurrent ones.
func TestScheduleConcurrentTakes(t *testing.T) {
	const count, requests = 25, 200
	var s providertest.Schedule[int]
	s.Inject(&testRules, providertest.Fault{Kind: providertest.Status, Count: count}, 7)
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		taken int
	)
	for range requests {
		wg.Go(func() {
			if f, full := s.Take("/token"); f != nil {
				if full != 7 {
					t.Errorf("took %d, want 7", full)
				}
				mu.Lock()
				taken++
				mu.Unlock()
			}
			_ = s.Pending()
		})
	}
	wg.Wait()
	if taken != count {
		t.Errorf("%d requests took the fault, want %d", taken, count)
	}
	if got := s.Pending(); got != 0 {
		t.Errorf("Pending = %d, want 0", got)
	}
}

func TestJSON(t *testing.T) {
	v := map[string]any{"access_token": "a<b>&c", "expires_in": 3600, "nested": []int{1, 2}}
	var want bytes.Buffer
	if err := json.NewEncoder(&want).Encode(v); err != nil {
		t.Fatal(err)
	}
	a := providertest.JSON(http.StatusCreated, v)
	if a.Status != http.StatusCreated || a.Header != nil {
		t.Errorf("JSON = status %d, header %v; want 201 and no header", a.Status, a.Header)
	}
	if !bytes.Equal(a.Body, want.Bytes()) {
		t.Errorf("JSON body = %q, want json.Encoder's %q", a.Body, want.Bytes())
	}
}

func TestWrite(t *testing.T) {
	for _, tc := range []struct {
		name       string
		answer     providertest.Answer
		wantHeader http.Header
	}{
		{
			name:   "default headers",
			answer: providertest.Answer{Status: http.StatusOK, Body: []byte("{}\n")},
			wantHeader: http.Header{"Content-Type": {"application/json; charset=utf-8"},
				"Cache-Control": {"no-store"}},
		},
		{
			name: "header replaces the defaults",
			answer: providertest.Answer{Status: http.StatusTeapot, Body: []byte("short and stout"),
				Header: http.Header{"Content-Type": {"text/plain"}, "X-Extra": {"1", "2"}}},
			wantHeader: http.Header{"Content-Type": {"text/plain"}, "X-Extra": {"1", "2"}},
		},
		{
			name:       "an empty header sends none of the defaults",
			answer:     providertest.Answer{Status: http.StatusNoContent, Header: http.Header{}},
			wantHeader: http.Header{},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			providertest.Write(rec, tc.answer)
			if rec.Code != tc.answer.Status {
				t.Errorf("status %d, want %d", rec.Code, tc.answer.Status)
			}
			if !bytes.Equal(rec.Body.Bytes(), tc.answer.Body) {
				t.Errorf("body %q, want %q", rec.Body.Bytes(), tc.answer.Body)
			}
			if got := fmt.Sprint(rec.Header()); got != fmt.Sprint(tc.wantHeader) {
				t.Errorf("header %s, want %s", got, fmt.Sprint(tc.wantHeader))
			}
		})
	}
}

func TestCeilSeconds(t *testing.T) {
	for _, tc := range []struct {
		d    time.Duration
		want int64
	}{
		{-time.Hour, 0},
		{-1, 0},
		{0, 0},
		{1, 1},
		{time.Millisecond, 1},
		{time.Second, 1},
		{time.Second + 1, 2},
		{1500 * time.Millisecond, 2},
		{time.Minute - time.Millisecond, 60},
		{time.Hour, 3600},
		{1<<63 - 1, 9223372037}, // the longest duration: still rounded up, not wrapped
	} {
		if got := providertest.CeilSeconds(tc.d); got != tc.want {
			t.Errorf("CeilSeconds(%v) = %d, want %d", tc.d, got, tc.want)
		}
	}
}

// served is what one call of Serve did.
type served struct {
	rec *httptest.ResponseRecorder
	// aborted: Serve ended in panic(http.ErrAbortHandler), dropping the request.
	aborted bool
	// decided: Decide ran.
	decided bool
	// custom: Custom ran; customDecided is the answer it was given.
	custom        bool
	customDecided *providertest.Answer
}

// decidedAnswer is what Decide returns in these tests.
var decidedAnswer = providertest.Answer{Status: http.StatusOK, Body: []byte(`{"access_token":"at_1"}` + "\n")}

// serveDirect runs Serve on a recorder with a request whose context is ctx, and with
// Done closed when closed is true.
func serveDirect(ctx context.Context, x *providertest.Exchange, closed bool) (s served) {
	s.rec = httptest.NewRecorder()
	req := httptest.NewRequestWithContext(ctx, http.MethodPost, "/token", nil)
	done := make(chan struct{})
	if closed {
		close(done)
	}
	x.Done = done
	x.Decide = func() providertest.Answer {
		s.decided = true
		return decidedAnswer
	}
	if custom := x.Custom; custom != nil {
		x.Custom = func(decided *providertest.Answer) (providertest.Answer, bool) {
			s.custom, s.customDecided = true, decided
			return custom(decided)
		}
	}
	defer func() {
		if p := recover(); p != nil {
			if p != http.ErrAbortHandler {
				panic(p)
			}
			s.aborted = true
		}
	}()
	providertest.Serve(s.rec, req, x)
	return s
}

func TestServe(t *testing.T) {
	before := func(k providertest.Kind) *providertest.Fault { return &providertest.Fault{Kind: k} }
	after := func(k providertest.Kind) *providertest.Fault {
		return &providertest.Fault{Kind: k, Phase: providertest.AfterGrant}
	}
	with := func(f *providertest.Fault, change func(*providertest.Fault)) *providertest.Fault { change(f); return f }
	customAnswer := providertest.Answer{Status: http.StatusOK, Body: []byte(`{"custom":true}`)}
	customOK := func(*providertest.Answer) (providertest.Answer, bool) { return customAnswer, true }
	customDeclines := func(*providertest.Answer) (providertest.Answer, bool) { return providertest.Answer{}, false }
	const jsonDefault = "application/json; charset=utf-8"

	for _, tc := range []struct {
		name   string
		fault  *providertest.Fault
		rules  *providertest.Rules
		custom func(*providertest.Answer) (providertest.Answer, bool)
		// cancelled: the client is gone before Serve starts; closed: Done is closed.
		cancelled, closed bool

		wantDecided bool
		wantAborted bool
		wantDropped string
		wantStatus  int // also the Exchange's Status; 0 when nothing was sent
		wantBody    string
		wantType    string
		wantRetry   string
		wantCustom  bool
		// wantCustomDecided: Custom was given Decide's answer (AfterGrant), not nil.
		wantCustomDecided bool
	}{
		{name: "no fault: the decided answer", fault: nil, rules: &testRules,
			wantDecided: true, wantStatus: 200, wantBody: string(decidedAnswer.Body), wantType: jsonDefault},
		{name: "no fault, no rules", fault: nil,
			wantDecided: true, wantStatus: 200, wantBody: string(decidedAnswer.Body), wantType: jsonDefault},
		{name: "latency before grant answers normally",
			fault: with(before(providertest.Latency), func(f *providertest.Fault) { f.Delay = 5 * time.Millisecond }),
			rules: &testRules, custom: customOK,
			wantDecided: true, wantStatus: 200, wantBody: string(decidedAnswer.Body), wantType: jsonDefault},
		{name: "latency after grant answers normally",
			fault: with(after(providertest.Latency), func(f *providertest.Fault) { f.Delay = 5 * time.Millisecond }),
			rules: &testRules, custom: customOK,
			wantDecided: true, wantStatus: 200, wantBody: string(decidedAnswer.Body), wantType: jsonDefault},

		{name: "status: 503 and a short text by default", fault: before(providertest.Status), rules: &testRules,
			wantStatus: 503, wantBody: "fake: injected failure", wantType: "text/plain; charset=utf-8"},
		{name: "status: no rules", fault: before(providertest.Status),
			wantStatus: 503, wantBody: ": injected failure", wantType: "text/plain; charset=utf-8"},
		{name: "status: the rules' status code",
			fault: before(providertest.Status), rules: &providertest.Rules{Name: "fake", StatusCode: 500},
			wantStatus: 500, wantBody: "fake: injected failure", wantType: "text/plain; charset=utf-8"},
		{name: "status: the fault's status wins",
			fault:      with(before(providertest.Status), func(f *providertest.Fault) { f.Status = 502 }),
			rules:      &providertest.Rules{Name: "fake", StatusCode: 500},
			wantStatus: 502, wantBody: "fake: injected failure", wantType: "text/plain; charset=utf-8"},
		{name: "status: an object body is JSON",
			fault:      with(before(providertest.Status), func(f *providertest.Fault) { f.Body = `{"error":"x"}` }),
			rules:      &testRules,
			wantStatus: 503, wantBody: `{"error":"x"}`, wantType: "application/json"},
		{name: "status: the rules' JSON type",
			fault:      with(before(providertest.Status), func(f *providertest.Fault) { f.Body = `{"error":"x"}` }),
			rules:      &providertest.Rules{Name: "fake", JSONType: "application/problem+json"},
			wantStatus: 503, wantBody: `{"error":"x"}`, wantType: "application/problem+json"},
		{name: "status: a quoted body is text",
			fault:      with(before(providertest.Status), func(f *providertest.Fault) { f.Body = `"busy"` }),
			rules:      &testRules,
			wantStatus: 503, wantBody: `"busy"`, wantType: "text/plain; charset=utf-8"},
		{name: "status: a quoted body is JSON under QuotedJSON",
			fault:      with(before(providertest.Status), func(f *providertest.Fault) { f.Body = `"busy"` }),
			rules:      &providertest.Rules{Name: "fake", QuotedJSON: true},
			wantStatus: 503, wantBody: `"busy"`, wantType: "application/json"},
		{name: "status: Retry-After in whole seconds, rounded up",
			fault:      with(before(providertest.Status), func(f *providertest.Fault) { f.RetryAfter = 1500 * time.Millisecond }),
			rules:      &testRules,
			wantStatus: 503, wantBody: "fake: injected failure", wantType: "text/plain; charset=utf-8", wantRetry: "2"},
		{name: "status after grant: processed, then replaced", fault: after(providertest.Status), rules: &testRules,
			wantDecided: true, wantStatus: 503, wantBody: "fake: injected failure", wantType: "text/plain; charset=utf-8"},

		{name: "rate limit", fault: with(before(providertest.RateLimit), func(f *providertest.Fault) { f.RetryAfter = 2100 * time.Millisecond }),
			rules:      &testRules,
			wantStatus: 429, wantBody: "fake: rate limited", wantType: "text/plain; charset=utf-8", wantRetry: "3"},
		{name: "rate limit without Retry-After", fault: before(providertest.RateLimit), rules: &testRules,
			wantStatus: 429, wantBody: "fake: rate limited", wantType: "text/plain; charset=utf-8"},
		{name: "Retry-After only for status and rate limit",
			fault:      with(before(providertest.EmptyBody), func(f *providertest.Fault) { f.RetryAfter = time.Minute }),
			rules:      &testRules,
			wantStatus: 200, wantType: "application/json"},
		{name: "malformed JSON", fault: before(providertest.MalformedJSON), rules: &testRules,
			wantStatus: 200, wantBody: `{"access_token": <html>not json</html>`, wantType: "application/json"},
		{name: "malformed JSON after grant", fault: after(providertest.MalformedJSON), rules: &testRules,
			wantDecided: true, wantStatus: 200, wantBody: `{"access_token": <html>not json</html>`, wantType: "application/json"},
		{name: "empty body", fault: before(providertest.EmptyBody), rules: &testRules,
			wantStatus: 200, wantType: "application/json"},
		{name: "missing token without Custom: an empty object", fault: before(providertest.MissingToken), rules: &testRules,
			wantStatus: 200, wantBody: "{}\n", wantType: jsonDefault},
		{name: "error in 200 without Custom: an empty object", fault: before(providertest.ErrorIn200), rules: &testRules,
			wantStatus: 200, wantBody: "{}\n", wantType: jsonDefault},

		{name: "custom before grant is given nil", fault: before(providertest.MissingToken), rules: &testRules, custom: customOK,
			wantStatus: 200, wantBody: `{"custom":true}`, wantType: jsonDefault, wantCustom: true},
		{name: "custom after grant is given the decided answer", fault: after(providertest.ErrorIn200), rules: &testRules,
			custom: customOK, wantDecided: true,
			wantStatus: 200, wantBody: `{"custom":true}`, wantType: jsonDefault, wantCustom: true, wantCustomDecided: true},
		{name: "custom overrides built-in kinds too", fault: before(providertest.Status), rules: &testRules, custom: customOK,
			wantStatus: 200, wantBody: `{"custom":true}`, wantType: jsonDefault, wantCustom: true},
		{name: "custom declining keeps the built-in answer", fault: before(providertest.Status), rules: &testRules,
			custom:     customDeclines,
			wantStatus: 503, wantBody: "fake: injected failure", wantType: "text/plain; charset=utf-8", wantCustom: true},

		{name: "hang until the server closes", fault: before(providertest.Hang), rules: &testRules, custom: customOK,
			closed: true, wantAborted: true, wantDropped: providertest.ServerClosed},
		{name: "hang until the client leaves", fault: before(providertest.Hang), rules: &testRules, custom: customOK,
			cancelled: true, wantAborted: true, wantDropped: providertest.ClientGone},
		{name: "hang after grant: processed, then no answer", fault: after(providertest.Hang), rules: &testRules,
			closed: true, wantDecided: true, wantAborted: true, wantDropped: providertest.ServerClosed},
		{name: "close connection (no hijacker: the stream is reset)", fault: before(providertest.CloseConnection),
			rules: &testRules, custom: customOK, wantAborted: true, wantDropped: providertest.ConnectionReset},
		{name: "close connection after grant", fault: after(providertest.CloseConnection), rules: &testRules,
			wantDecided: true, wantAborted: true, wantDropped: providertest.ConnectionReset},

		{name: "client gone during the delay before grant: nothing processed",
			fault:     with(before(providertest.Status), func(f *providertest.Fault) { f.Delay = time.Hour }),
			rules:     &testRules,
			cancelled: true, wantAborted: true, wantDropped: providertest.ClientGone},
		{name: "server closed during the delay before grant",
			fault:  with(before(providertest.Latency), func(f *providertest.Fault) { f.Delay = time.Hour }),
			rules:  &testRules,
			closed: true, wantAborted: true, wantDropped: providertest.ServerClosed},
		{name: "server closed during the delay after grant: processed already",
			fault:  with(after(providertest.Latency), func(f *providertest.Fault) { f.Delay = time.Hour }),
			rules:  &testRules,
			closed: true, wantDecided: true, wantAborted: true, wantDropped: providertest.ServerClosed},
		{name: "client gone during the delay after grant: processed already",
			fault:     with(after(providertest.Status), func(f *providertest.Fault) { f.Delay = time.Hour }),
			rules:     &testRules,
			cancelled: true, wantDecided: true, wantAborted: true, wantDropped: providertest.ClientGone},
		{name: "latency before grant with the client already gone: nothing processed",
			fault: before(providertest.Latency), rules: &testRules,
			cancelled: true, wantAborted: true, wantDropped: providertest.ClientGone},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			if tc.cancelled {
				cancel()
			}
			x := &providertest.Exchange{Fault: tc.fault, Rules: tc.rules, Custom: tc.custom}
			s := serveDirect(ctx, x, tc.closed)
			if s.decided != tc.wantDecided {
				t.Errorf("Decide ran: %v, want %v", s.decided, tc.wantDecided)
			}
			if s.aborted != tc.wantAborted {
				t.Errorf("aborted: %v, want %v", s.aborted, tc.wantAborted)
			}
			if x.Dropped != tc.wantDropped {
				t.Errorf("Dropped = %q, want %q", x.Dropped, tc.wantDropped)
			}
			if x.Status != tc.wantStatus {
				t.Errorf("Exchange.Status = %d, want %d", x.Status, tc.wantStatus)
			}
			if s.custom != tc.wantCustom {
				t.Errorf("Custom ran: %v, want %v", s.custom, tc.wantCustom)
			}
			if tc.wantCustomDecided {
				if s.customDecided == nil || !bytes.Equal(s.customDecided.Body, decidedAnswer.Body) {
					t.Errorf("Custom was given %+v, want the decided answer", s.customDecided)
				}
			} else if s.customDecided != nil {
				t.Errorf("Custom was given %+v, want nil", s.customDecided)
			}
			if tc.wantAborted {
				if s.rec.Body.Len() != 0 {
					t.Errorf("a dropped request wrote %q", s.rec.Body.String())
				}
				return
			}
			if s.rec.Code != tc.wantStatus {
				t.Errorf("status %d, want %d", s.rec.Code, tc.wantStatus)
			}
			if got := s.rec.Body.String(); got != tc.wantBody {
				t.Errorf("body %q, want %q", got, tc.wantBody)
			}
			if got := s.rec.Header().Get("Content-Type"); got != tc.wantType {
				t.Errorf("Content-Type %q, want %q", got, tc.wantType)
			}
			if got := s.rec.Header().Get("Retry-After"); got != tc.wantRetry {
				t.Errorf("Retry-After %q, want %q", got, tc.wantRetry)
			}
		})
	}
}

func TestServeLatencyWaits(t *testing.T) {
	const delay = 30 * time.Millisecond
	for _, phase := range []providertest.Phase{providertest.BeforeGrant, providertest.AfterGrant} {
		x := &providertest.Exchange{Fault: &providertest.Fault{Kind: providertest.Latency, Phase: phase, Delay: delay}}
		started := time.Now()
		s := serveDirect(t.Context(), x, false)
		if elapsed := time.Since(started); elapsed < delay {
			t.Errorf("%v: answered after %v, want at least %v", phase, elapsed, delay)
		}
		if !s.decided || s.rec.Code != 200 {
			t.Errorf("%v: decided %v, status %d; want the decided answer", phase, s.decided, s.rec.Code)
		}
	}
}

// TestServeCloseConnectionOverTCP: on a real connection the client sees a reset, not
// an answer.
func TestServeCloseConnectionOverTCP(t *testing.T) {
	exchanges := make(chan *providertest.Exchange, 1)
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		x := &providertest.Exchange{Fault: &providertest.Fault{Kind: providertest.CloseConnection}, Rules: &testRules,
			Done:   make(chan struct{}),
			Decide: func() providertest.Answer { t.Error("Decide ran"); return decidedAnswer }}
		defer func() { exchanges <- x }()
		providertest.Serve(w, r, x)
	}))
	defer hs.Close()
	res, err := hs.Client().Post(hs.URL, "application/x-www-form-urlencoded", strings.NewReader("refresh_token=rt"))
	if err == nil {
		res.Body.Close()
		t.Fatalf("got an answer (%s), want the connection reset", res.Status)
	}
	if !errors.Is(err, syscall.ECONNRESET) {
		t.Errorf("error %v, want connection reset by peer", err)
	}
	if x := <-exchanges; x.Dropped != providertest.ConnectionReset || x.Status != 0 {
		t.Errorf("Dropped %q, Status %d; want %q, 0", x.Dropped, x.Status, providertest.ConnectionReset)
	}
}

func TestRulesServe(t *testing.T) {
	missing := func(decided *providertest.Answer) []byte {
		if decided == nil {
			return []byte(`{"token_type":"Bearer"}`)
		}
		return []byte(`{"token_type":"Bearer","after":true}`)
	}
	for _, tc := range []struct {
		name       string
		fault      *providertest.Fault
		wantStatus int
		wantBody   string
	}{
		{"no fault", nil, 200, string(decidedAnswer.Body)},
		{"missing token before grant", &providertest.Fault{Kind: providertest.MissingToken}, 200, `{"token_type":"Bearer"}`},
		{"missing token after grant", &providertest.Fault{Kind: providertest.MissingToken, Phase: providertest.AfterGrant},
			200, `{"token_type":"Bearer","after":true}`},
		{"other kinds are built in", &providertest.Fault{Kind: providertest.Status}, 503, "fake: injected failure"},
		{"error in 200 is built in", &providertest.Fault{Kind: providertest.ErrorIn200}, 200, "{}\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			req := httptest.NewRequest(http.MethodPost, "/token", nil)
			decided := false
			testRules.Serve(rec, req, tc.fault, make(chan struct{}), func() providertest.Answer {
				decided = true
				return decidedAnswer
			}, missing)
			wantDecided := tc.fault == nil || tc.fault.Phase == providertest.AfterGrant
			if decided != wantDecided {
				t.Errorf("Decide ran: %v, want %v", decided, wantDecided)
			}
			if rec.Code != tc.wantStatus || rec.Body.String() != tc.wantBody {
				t.Errorf("answer %d %q, want %d %q", rec.Code, rec.Body.String(), tc.wantStatus, tc.wantBody)
			}
		})
	}
}

func TestExchangeLogAttrs(t *testing.T) {
	render := func(attrs []slog.Attr) string {
		var parts []string
		for _, a := range attrs {
			parts = append(parts, a.String())
		}
		return strings.Join(parts, " ")
	}
	for _, tc := range []struct {
		name string
		x    providertest.Exchange
		want string
	}{
		{"answered", providertest.Exchange{Status: 200},
			"status=200 outcome=refreshed elapsed=1.5s"},
		{"faulty and dropped", providertest.Exchange{
			Fault:   &providertest.Fault{Kind: providertest.Hang, Phase: providertest.AfterGrant},
			Dropped: providertest.ServerClosed},
			"status=0 outcome=refreshed fault=hang phase=after_grant dropped=server_closed elapsed=1.5s"},
		{"faulty and answered", providertest.Exchange{Fault: &providertest.Fault{Kind: providertest.Status}, Status: 503},
			"status=503 outcome=refreshed fault=status phase=before_grant elapsed=1.5s"},
	} {
		if got := render(tc.x.LogAttrs("refreshed", 1500*time.Millisecond)); got != tc.want {
			t.Errorf("%s: %s, want %s", tc.name, got, tc.want)
		}
	}
}
