package oauth2test

import (
	"context"
	"net/http"
	"net/url"
	"testing"
	"time"
)

func TestProcessedCountsWhatTheGrantLogicActedOn(t *testing.T) {
	s, u := startServer(t, Options{})
	rt0 := s.Seed("fam")
	ctx := context.Background()

	// On the wire but never looked at: a before-grant fault, failed client
	// authentication, a wrong grant_type.
	s.InjectFault(Fault{Kind: FaultStatus, Count: 1})
	post(t, u, rt0)
	send(ctx, u, refreshForm(rt0), false)
	send(ctx, u, url.Values{"grant_type": {"password"}, "refresh_token": {rt0}}, true)
	if s.Presentations(rt0) != 3 || s.Processed(rt0) != 0 || s.MaxProcessed() != 0 {
		t.Fatalf("presentations=%d processed=%d max=%d", s.Presentations(rt0), s.Processed(rt0), s.MaxProcessed())
	}

	// Processed, with an answer the client never sees.
	s.InjectFault(Fault{Kind: FaultStatus, Phase: AfterGrant, Count: 1})
	post(t, u, rt0)
	if s.Presentations(rt0) != 4 || s.Processed(rt0) != 1 || s.Refreshes() != 1 {
		t.Fatalf("after-grant: presentations=%d processed=%d", s.Presentations(rt0), s.Processed(rt0))
	}

	// Rejections count too: reuse and unknown tokens were acted on.
	wantError(t, post(t, u, rt0), http.StatusBadRequest, "invalid_grant")
	wantError(t, post(t, u, "rt_unknown"), http.StatusBadRequest, "invalid_grant")
	if s.Processed(rt0) != 2 || s.MaxProcessed() != 2 || s.Processed("rt_unknown") != 1 || s.ReuseDetections() != 1 {
		t.Fatalf("processed rt0=%d max=%d unknown=%d reuse=%d", s.Processed(rt0), s.MaxProcessed(), s.Processed("rt_unknown"), s.ReuseDetections())
	}
}

// TestBeforeGrantLatencyClientCancelsNothingProcessed: a client that gives up during a
// before-grant delay leaves its token untouched, so presenting it again is legitimate.
func TestBeforeGrantLatencyClientCancelsNothingProcessed(t *testing.T) {
	s, u := startServer(t, Options{})
	rt0 := s.Seed("fam")
	s.InjectFault(Fault{Kind: FaultLatency, Phase: BeforeGrant, Delay: time.Hour, Count: 1})

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := send(ctx, u, refreshForm(rt0), true)
		done <- err
	}()
	waitFor(t, func() bool { return s.InFlight() == 1 })
	cancel()
	if err := <-done; err == nil {
		t.Fatal("cancelled request got an answer")
	}
	// The handler must notice and finish, without ever reaching the grant logic.
	waitFor(t, func() bool { return s.InFlight() == 0 })
	if s.Presentations(rt0) != 1 || s.Processed(rt0) != 0 || s.Refreshes() != 0 {
		t.Fatalf("presentations=%d processed=%d refreshes=%d", s.Presentations(rt0), s.Processed(rt0), s.Refreshes())
	}
	if latest, ok := s.Latest("fam"); !ok || latest != rt0 {
		t.Fatal("live token changed")
	}
	wantActive(t, ask(t, s, rt0), true)
	if r := post(t, u, rt0); r.status != http.StatusOK {
		t.Fatalf("retry: %d %s", r.status, r.raw)
	}
	if s.ReuseDetections() != 0 || s.Processed(rt0) != 1 || s.MaxProcessed() != 1 {
		t.Fatal("legitimate retry was not the first processing")
	}
}

// TestAfterGrantLatencyProcessesFirst: the grant is processed on arrival and the delay
// comes after, so a client that gives up has lost a consumed token, which introspection
// reveals without a second presentation.
func TestAfterGrantLatencyProcessesFirst(t *testing.T) {
	s, u := startServer(t, Options{})
	rt0 := s.Seed("fam")
	s.InjectFault(Fault{Kind: FaultLatency, Phase: AfterGrant, Delay: time.Hour, Count: 1})

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := send(ctx, u, refreshForm(rt0), true)
		done <- err
	}()
	waitFor(t, func() bool { return s.Processed(rt0) == 1 })
	if s.InFlight() != 1 || s.Refreshes() != 1 {
		t.Fatalf("grant not processed before the wait: in flight %d, refreshes %d", s.InFlight(), s.Refreshes())
	}
	cancel()
	if err := <-done; err == nil {
		t.Fatal("cancelled request got an answer")
	}
	waitFor(t, func() bool { return s.InFlight() == 0 })

	latest, ok := s.Latest("fam")
	if !ok || latest == rt0 {
		t.Fatal("token not consumed")
	}
	wantActive(t, ask(t, s, rt0), false)
	wantActive(t, ask(t, s, latest), true)
	if s.Presentations(rt0) != 1 || s.Processed(rt0) != 1 || s.ReuseDetections() != 0 || s.Revoked("fam") {
		t.Fatal("introspection after an after-grant loss must not count as a presentation")
	}
}

func TestMaxConcurrentFor(t *testing.T) {
	s, u := startServer(t, Options{})
	a, b := s.Seed("a"), s.Seed("b")

	// Sequential refreshes never overlap.
	for range 3 {
		r := post(t, u, a)
		a = r.str("refresh_token")
	}
	if s.MaxConcurrentFor("a") != 1 || s.MaxConcurrent() != 1 {
		t.Fatalf("sequential: a=%d all=%d", s.MaxConcurrentFor("a"), s.MaxConcurrent())
	}

	// Hold one request for a; a request for b overlaps overall but not per family.
	s.InjectFault(Fault{Kind: FaultHang, Count: 1})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan struct{})
	go func() {
		send(ctx, u, refreshForm(a), true)
		close(done)
	}()
	waitFor(t, func() bool { return s.InFlight() == 1 })
	if r := post(t, u, b); r.status != http.StatusOK {
		t.Fatalf("b: %d %s", r.status, r.raw)
	}
	if s.MaxConcurrent() != 2 || s.MaxConcurrentFor("a") != 1 || s.MaxConcurrentFor("b") != 1 {
		t.Fatalf("a and b: all=%d a=%d b=%d", s.MaxConcurrent(), s.MaxConcurrentFor("a"), s.MaxConcurrentFor("b"))
	}
	// A second refresh for a while the first is in flight: the gauge catches it.
	if r := post(t, u, a); r.status != http.StatusOK {
		t.Fatalf("a again: %d %s", r.status, r.raw)
	}
	if s.MaxConcurrentFor("a") != 2 {
		t.Fatalf("overlap for a not seen: %d", s.MaxConcurrentFor("a"))
	}
	cancel()
	<-done
	waitFor(t, func() bool { return s.InFlight() == 0 })

	// Unknown tokens belong to no family; introspections are not token requests.
	post(t, u, "rt_unknown")
	ask(t, s, b)
	if s.MaxConcurrentFor("") != 0 || s.MaxConcurrentFor("nope") != 0 || s.MaxConcurrent() != 2 {
		t.Fatalf("unknown family: %d %d %d", s.MaxConcurrentFor(""), s.MaxConcurrentFor("nope"), s.MaxConcurrent())
	}
}
