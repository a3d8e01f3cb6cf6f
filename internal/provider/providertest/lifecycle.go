package providertest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"time"
)

// Lifecycle runs a fake's Handler on an httptest listener (Start, URL, Close) or any
// listener (Serve), and owns the Done channel that releases requests held by Hang and
// Latency faults when the fake shuts down. Fakes embed it, setting Name and Handler
// before first use.
type Lifecycle struct {
	// Name prefixes Serve's errors.
	Name string
	// Handler serves the fake's endpoints.
	Handler http.Handler

	mu   sync.Mutex
	done chan struct{}
	http *httptest.Server
}

// Done is closed by Close, or when Serve's context ends.
func (l *Lifecycle) Done() <-chan struct{} {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.doneLocked()
}

func (l *Lifecycle) doneLocked() chan struct{} {
	if l.done == nil {
		l.done = make(chan struct{})
	}
	return l.done
}

// release closes Done once.
func (l *Lifecycle) release() {
	l.mu.Lock()
	defer l.mu.Unlock()
	d := l.doneLocked()
	select {
	case <-d:
	default:
		close(d)
	}
}

// Start serves on a loopback listener (opened once) and returns its base URL
// ("http://127.0.0.1:port"), what a credential's config.base_url names. Close stops it.
func (l *Lifecycle) Start() (baseURL string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.http == nil {
		l.http = httptest.NewServer(l.Handler)
	}
	return l.http.URL
}

// URL returns the base URL Start opened, or "" before Start.
func (l *Lifecycle) URL() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.http == nil {
		return ""
	}
	return l.http.URL
}

// Close releases requests held by Hang or Latency faults and, if Start was used, shuts
// the listener down and waits for in-flight requests. It is idempotent.
func (l *Lifecycle) Close() {
	l.release()
	l.mu.Lock()
	hs := l.http
	l.mu.Unlock()
	if hs != nil {
		hs.Close()
	}
}

// Serve answers requests on ln until ctx is done, then releases held requests and shuts
// down gracefully (at most 5 seconds). It returns nil after a ctx-initiated stop.
func (l *Lifecycle) Serve(ctx context.Context, ln net.Listener) error {
	hs := &http.Server{Handler: l.Handler, ReadHeaderTimeout: 10 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("%s: serving %s: %w", l.Name, ln.Addr(), err)
	case <-ctx.Done():
	}
	l.release()
	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := hs.Shutdown(shutdownCtx); err != nil {
		return fmt.Errorf("%s: shutting down %s: %w", l.Name, ln.Addr(), err)
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("%s: serving %s: %w", l.Name, ln.Addr(), err)
	}
	return nil
}
