package activities_test

import (
	"context"
	"io"
	"net"
	"net/url"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/tokenwarden/tokenwarden/activities"
	"github.com/tokenwarden/tokenwarden/internal/store"
	"github.com/tokenwarden/tokenwarden/internal/store/storetest"
)

// tcpProxy stands between the worker and PostgreSQL. Cutting it closes every
// connection and stops listening, as a network partition or a failover would look
// from the worker; restoring it listens on the same address again. The server itself
// keeps running, with the worker's sessions gone.
type tcpProxy struct {
	t      *testing.T
	addr   string
	target string
	mu     sync.Mutex
	ln     net.Listener
	conns  map[net.Conn]struct{}
	wg     sync.WaitGroup
}

func startProxy(t *testing.T, target string) *tcpProxy {
	t.Helper()
	p := &tcpProxy{t: t, target: target, conns: map[net.Conn]struct{}{}}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p.addr = ln.Addr().String()
	p.serve(ln)
	t.Cleanup(func() { p.cut(); p.wg.Wait() })
	return p
}

func (p *tcpProxy) serve(ln net.Listener) {
	p.mu.Lock()
	p.ln = ln
	p.mu.Unlock()
	p.wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			up, err := net.Dial("tcp", p.target)
			if err != nil {
				c.Close()
				continue
			}
			p.mu.Lock()
			p.conns[c], p.conns[up] = struct{}{}, struct{}{}
			p.mu.Unlock()
			pipe := func(dst, src net.Conn) {
				io.Copy(dst, src)
				dst.Close()
				src.Close()
			}
			p.wg.Go(func() { pipe(up, c) })
			p.wg.Go(func() { pipe(c, up) })
		}
	})
}

func (p *tcpProxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ln != nil {
		p.ln.Close()
		p.ln = nil
	}
	for c := range p.conns {
		c.Close()
	}
	clear(p.conns)
}

func (p *tcpProxy) restore() {
	p.t.Helper()
	ln, err := net.Listen("tcp", p.addr)
	if err != nil {
		p.t.Fatalf("restore the proxy on %s: %v", p.addr, err)
	}
	p.serve(ln)
}

// cutAtFirstCommit cuts the proxy when the refresh first tries to commit: right after
// the provider rotated, before anything is stored.
type cutAtFirstCommit struct {
	store.Records
	once sync.Once
	cut  func()
}

func (s *cutAtFirstCommit) CompareAndSwap(ctx context.Context, rec store.Record, expected int64, owner string) (store.Record, error) {
	s.once.Do(s.cut)
	return s.Records.CompareAndSwap(ctx, rec, expected, owner)
}

// The outage of TestStoreOutageAfterRotationKeepsTheTokenInTheOutbox on PostgreSQL:
// the connection to the server is cut right after the provider rotated and restored
// later. PostgreSQL times leases by its own clock, which no test can step, so this runs
// on the wall clock, scaled down: a 4 s lease and a 10 s outage, the same sequence.
func TestPostgresOutageAfterRotationKeepsTheTokenInTheOutbox(t *testing.T) {
	_, dsn := storetest.PostgresSchema(t)
	u, err := url.Parse(dsn)
	if err != nil || u.Host == "" {
		t.Skip("the test PostgreSQL DSN is not a URL with a host; the proxy needs one")
	}
	proxy := startProxy(t, u.Host)
	u.Host = proxy.addr
	q := u.Query()
	q.Set("connect_timeout", "2")
	u.RawQuery = q.Encode()

	var cutAt time.Time
	h := newHarness(t, harnessOptions{outbox: true, postgresDSN: u.String(), wrapStore: func(s store.Records) store.Records {
		return &cutAtFirstCommit{Records: s, cut: func() { cutAt = time.Now(); proxy.cut() }}
	}})
	const lease, outageLength = 4 * time.Second, 10 * time.Second
	h.acts.LeaseDuration = lease
	rt, v := h.seed(credID, "fam", testClientSecret)

	_, err = h.refresh(h.request(credID, v))
	appErr := appError(t, err, activities.ErrTypeStore, false)
	if cutAt.IsZero() {
		t.Fatal("the proxy was never cut")
	}
	gaveUp := time.Since(cutAt)
	latest, ok := h.fake.Latest("fam")
	if !ok || latest == rt || h.fake.Processed(rt) != 1 {
		t.Fatalf("the provider did not rotate: processed %d", h.fake.Processed(rt))
	}
	if entries, _ := filepath.Glob(filepath.Join(h.outboxDir, "*.json")); len(entries) != 1 {
		t.Fatalf("outbox entries %v after %q, want 1", entries, appErr.Error())
	}

	presented := h.fake.TotalPresentations()
	attempts := 0
	for time.Since(cutAt) < outageLength {
		if _, err := h.refresh(h.request(credID, v)); err == nil {
			t.Fatal("a refresh succeeded while the store was cut off")
		}
		attempts++
		if h.fake.TotalPresentations() != presented {
			t.Fatal("an attempt during the outage presented a token")
		}
		time.Sleep(time.Second)
	}
	proxy.restore()
	down := time.Since(cutAt)

	// The pool may hand out a connection that died with the cut before a fresh one: a
	// few quick attempts, as Temporal's retries would make.
	var res activities.RefreshResult
	for i := range 5 {
		if res, err = h.refresh(h.request(credID, v)); err == nil {
			break
		}
		t.Logf("attempt %d after the outage: %v", i+1, err)
		time.Sleep(500 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("no attempt after the outage committed: %v", err)
	}
	if res.Version != v+1 || !res.Rotated || h.fake.TotalPresentations() != presented {
		t.Fatalf("first commit after the outage: %+v, presentations %d (want version %d from the outbox, none presented)",
			res, h.fake.TotalPresentations(), v+1)
	}
	rec, err := h.primary.Get(context.Background(), credID)
	if err != nil || rec.Version != v+1 || rec.Secrets.RefreshToken != latest {
		t.Fatalf("store after the outage: version %d, err %v; want %d with the rotated token", rec.Version, err, v+1)
	}
	if entries, _ := filepath.Glob(filepath.Join(h.outboxDir, "*.json")); len(entries) != 0 {
		t.Fatalf("outbox still holds %v", entries)
	}
	next := h.mustRefresh(h.request(credID, v+1))
	if next.Version != v+2 || h.fake.MaxPresentations() != 1 || h.fake.ReuseDetections() != 0 {
		t.Fatalf("refresh with the rotated token: %+v; max presentations %d, reuse detections %d",
			next, h.fake.MaxPresentations(), h.fake.ReuseDetections())
	}
	t.Logf("PostgreSQL cut off for %s right after the rotation (lease %s): the commit gave up after %s, outbox; "+
		"%d attempts during the outage presented nothing; then version %d committed from the outbox; "+
		"0 lost, max presentations per token %d, reuse detections %d",
		down.Round(time.Millisecond), lease, gaveUp.Round(time.Millisecond), attempts, res.Version,
		h.fake.MaxPresentations(), h.fake.ReuseDetections())
}
