package providertest_test

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/tokenwarden/tokenwarden/internal/provider/providertest"
)

// holdingFake is a fake whose every request carries one fault; it reports each request's
// Exchange when its handler has returned.
type holdingFake struct {
	providertest.Lifecycle
	fault     providertest.Fault
	arrived   chan struct{}
	exchanges chan *providertest.Exchange
}

func newHoldingFake(f providertest.Fault) *holdingFake {
	h := &holdingFake{fault: f, arrived: make(chan struct{}, 8), exchanges: make(chan *providertest.Exchange, 8)}
	h.Name = "holding"
	h.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fault := h.fault
		x := &providertest.Exchange{Fault: &fault, Rules: &testRules, Done: h.Done(),
			Decide: func() providertest.Answer { return decidedAnswer }}
		defer func() { h.exchanges <- x }()
		h.arrived <- struct{}{}
		providertest.Serve(w, r, x)
	})
	return h
}

// get requests url in the background and returns the error the client ends with.
func get(ctx context.Context, url string) <-chan error {
	errc := make(chan error, 1)
	go func() {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			errc <- err
			return
		}
		res, err := http.DefaultClient.Do(req)
		if err == nil {
			_, err = io.ReadAll(res.Body)
			res.Body.Close()
			if err == nil {
				err = errors.New("answered " + res.Status)
			}
		}
		errc <- err
	}()
	return errc
}

// within waits for c or fails the test after a while.
func within[T any](t *testing.T, c <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-c:
		return v
	case <-time.After(10 * time.Second):
		t.Fatalf("timed out waiting for %s", what)
		panic("unreachable")
	}
}

func isClosed(c <-chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}

func TestLifecycleDone(t *testing.T) {
	var l providertest.Lifecycle
	done := l.Done()
	if isClosed(done) {
		t.Fatal("Done is closed before Close")
	}
	if l.Done() != done {
		t.Error("Done returned another channel")
	}
	l.Close() // without Start: only releases
	if !isClosed(done) {
		t.Fatal("Done is open after Close")
	}
	l.Close() // idempotent
	if !isClosed(l.Done()) {
		t.Error("Done is open after a second Close")
	}
	if l.URL() != "" {
		t.Errorf("URL after Close without Start = %q, want \"\"", l.URL())
	}
}

func TestLifecycleStart(t *testing.T) {
	l := &providertest.Lifecycle{Name: "fake", Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		providertest.Write(w, providertest.JSON(http.StatusOK, map[string]string{"path": r.URL.Path}))
	})}
	defer l.Close()
	if got := l.URL(); got != "" {
		t.Errorf("URL before Start = %q, want \"\"", got)
	}
	base := l.Start()
	if !strings.HasPrefix(base, "http://127.0.0.1:") {
		t.Errorf("Start = %q, want a loopback base URL", base)
	}
	if got := l.URL(); got != base {
		t.Errorf("URL = %q, want Start's %q", got, base)
	}
	if again := l.Start(); again != base {
		t.Errorf("second Start = %q, want the same listener %q", again, base)
	}
	res, err := http.Get(base + "/token")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusOK || string(body) != `{"path":"/token"}`+"\n" {
		t.Errorf("answer %d %q, want the Handler's", res.StatusCode, body)
	}
}

// TestLifecycleCloseReleases: Close ends requests held by Hang and Latency faults (they
// are dropped as server_closed) and returns once they are done.
func TestLifecycleCloseReleases(t *testing.T) {
	for _, f := range []providertest.Fault{
		{Kind: providertest.Hang},
		{Kind: providertest.Hang, Phase: providertest.AfterGrant},
		{Kind: providertest.Latency, Delay: time.Hour},
		{Kind: providertest.Status, Phase: providertest.AfterGrant, Delay: time.Hour},
	} {
		t.Run(f.Kind.String()+"/"+f.Phase.String(), func(t *testing.T) {
			h := newHoldingFake(f)
			errc := get(t.Context(), h.Start()+"/token")
			within(t, h.arrived, "the request to arrive")
			closed := make(chan struct{})
			go func() { h.Close(); close(closed) }()
			within(t, closed, "Close")
			if !isClosed(h.Done()) {
				t.Error("Done is open after Close")
			}
			// Close waits for in-flight requests: the handler has returned already.
			select {
			case x := <-h.exchanges:
				if x.Dropped != providertest.ServerClosed {
					t.Errorf("Dropped = %q, want %q", x.Dropped, providertest.ServerClosed)
				}
			default:
				t.Error("Close returned before the held request was done")
			}
			if err := within(t, errc, "the client"); err == nil {
				t.Error("the held request was answered")
			}
		})
	}
}

func TestLifecycleServe(t *testing.T) {
	h := newHoldingFake(providertest.Fault{Kind: providertest.Hang})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, stop := context.WithCancel(t.Context())
	defer stop()
	served := make(chan error, 1)
	go func() { served <- h.Serve(ctx, ln) }()

	errc := get(t.Context(), "http://"+ln.Addr().String()+"/token")
	within(t, h.arrived, "the request to arrive")
	if isClosed(h.Done()) {
		t.Fatal("Done is closed while serving")
	}
	if h.URL() != "" {
		t.Errorf("URL = %q while Serve runs, want \"\" (only Start opens a URL)", h.URL())
	}
	stop()
	if err := within(t, served, "Serve to return"); err != nil {
		t.Errorf("Serve after its context ended = %v, want nil", err)
	}
	if !isClosed(h.Done()) {
		t.Error("Done is open after Serve returned")
	}
	if x := within(t, h.exchanges, "the held request"); x.Dropped != providertest.ServerClosed {
		t.Errorf("Dropped = %q, want %q", x.Dropped, providertest.ServerClosed)
	}
	if err := within(t, errc, "the client"); err == nil {
		t.Error("the held request was answered")
	}
	if _, err := net.Dial("tcp", ln.Addr().String()); err == nil {
		t.Error("the listener still accepts after Serve returned")
	}
}

func TestLifecycleServeListenerError(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln.Close()
	l := &providertest.Lifecycle{Name: "fake", Handler: http.NotFoundHandler()}
	err = l.Serve(t.Context(), ln)
	if err == nil || !errors.Is(err, net.ErrClosed) || !strings.HasPrefix(err.Error(), "fake: serving ") {
		t.Errorf("Serve on a closed listener = %v, want a wrapped net.ErrClosed naming the fake", err)
	}
	if isClosed(l.Done()) {
		t.Error("Done closed although the context did not end")
	}
}
