package oauth2test

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"testing"
	"time"
)

func refreshForm(rt string) url.Values {
	return url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}}
}

// TestFaultKindsAndPhases checks, for every fault kind in both phases, what the client
// sees and whether the presented token was consumed.
func TestFaultKindsAndPhases(t *testing.T) {
	type observe func(t *testing.T, r reply, err error)
	cases := []struct {
		name  string
		fault Fault
		// answersNormally: the fault only delays, so the grant is processed either way.
		answersNormally bool
		check           observe
	}{
		{"latency", Fault{Kind: FaultLatency, Delay: 30 * time.Millisecond}, true, func(t *testing.T, r reply, err error) {
			if err != nil || r.status != http.StatusOK || r.str("access_token") == "" {
				t.Fatalf("latency: %v %d %s", err, r.status, r.raw)
			}
		}},
		{"status", Fault{Kind: FaultStatus, Status: http.StatusBadGateway, Body: `{"error":"temporarily_unavailable"}`, RetryAfter: 2 * time.Second}, false, func(t *testing.T, r reply, err error) {
			if err != nil || r.status != http.StatusBadGateway || r.header.Get("Retry-After") != "2" || r.str("error") != "temporarily_unavailable" {
				t.Fatalf("status: %v %d %v %s", err, r.status, r.header, r.raw)
			}
		}},
		{"status default", Fault{Kind: FaultStatus}, false, func(t *testing.T, r reply, err error) {
			if err != nil || r.status != http.StatusServiceUnavailable || r.body != nil || r.header.Get("Retry-After") != "" {
				t.Fatalf("status default: %v %d %s", err, r.status, r.raw)
			}
		}},
		{"rate limit", Fault{Kind: FaultRateLimit, RetryAfter: 1500 * time.Millisecond}, false, func(t *testing.T, r reply, err error) {
			if err != nil || r.status != http.StatusTooManyRequests || r.header.Get("Retry-After") != "2" {
				t.Fatalf("rate limit: %v %d %v", err, r.status, r.header)
			}
		}},
		{"hang", Fault{Kind: FaultHang}, false, func(t *testing.T, r reply, err error) {
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("hang: want client deadline, got %v %d %s", err, r.status, r.raw)
			}
		}},
		{"malformed json", Fault{Kind: FaultMalformedJSON}, false, func(t *testing.T, r reply, err error) {
			if err != nil || r.status != http.StatusOK || r.body != nil || r.raw == "" {
				t.Fatalf("malformed: %v %d %s", err, r.status, r.raw)
			}
		}},
		{"error in 200", Fault{Kind: FaultErrorIn200, ErrorCode: "invalid_grant"}, false, func(t *testing.T, r reply, err error) {
			if err != nil || r.status != http.StatusOK || r.str("error") != "invalid_grant" || r.str("access_token") != "" {
				t.Fatalf("error in 200: %v %d %s", err, r.status, r.raw)
			}
		}},
		{"error in 200 default", Fault{Kind: FaultErrorIn200}, false, func(t *testing.T, r reply, err error) {
			if err != nil || r.status != http.StatusOK || r.str("error") != "server_error" {
				t.Fatalf("error in 200: %v %d %s", err, r.status, r.raw)
			}
		}},
		{"close connection", Fault{Kind: FaultCloseConnection}, false, func(t *testing.T, r reply, err error) {
			if err == nil {
				t.Fatalf("close connection: got an answer %d %s", r.status, r.raw)
			}
		}},
		{"missing access token", Fault{Kind: FaultMissingAccessToken}, false, func(t *testing.T, r reply, err error) {
			if err != nil || r.status != http.StatusOK || r.str("access_token") != "" || r.str("token_type") == "" {
				t.Fatalf("missing access token: %v %d %s", err, r.status, r.raw)
			}
		}},
	}
	for _, tc := range cases {
		for _, phase := range []Phase{BeforeGrant, AfterGrant} {
			t.Run(tc.name+"/"+phase.String(), func(t *testing.T) {
				t.Parallel()
				s, u := startServer(t, Options{})
				rt0 := s.Seed("fam")
				f := tc.fault
				f.Phase, f.Count = phase, 1
				s.InjectFault(f)

				ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
				defer cancel()
				r, err := send(ctx, u, refreshForm(rt0), true)
				tc.check(t, r, err)
				if s.PendingFaults() != 0 {
					t.Fatal("fault with Count 1 still scheduled")
				}
				if s.Presentations(rt0) != 1 {
					t.Fatalf("presentations = %d", s.Presentations(rt0))
				}

				consumed := phase == AfterGrant || tc.answersNormally
				// Hang after grant: the grant was processed before the hang.
				waitFor(t, func() bool { return s.Requests() == 1 })
				if consumed {
					waitFor(t, func() bool { return s.Refreshes() == 1 })
					latest, ok := s.Latest("fam")
					if !ok || latest == rt0 {
						t.Fatal("token not rotated by a processed grant")
					}
					if tc.fault.Kind == FaultMissingAccessToken && r.str("refresh_token") != latest {
						t.Fatalf("after-grant missing access token should carry the successor: %s", r.raw)
					}
					// The client never saw (or could not use) the answer; retrying with the
					// old token is exactly the reuse that kills the family.
					if tc.answersNormally {
						return
					}
					wantError(t, post(t, u, rt0), http.StatusBadRequest, "invalid_grant")
					if s.ReuseDetections() != 1 || !s.Revoked("fam") {
						t.Fatal("retry after an after-grant fault was not detected as reuse")
					}
					return
				}
				if s.Refreshes() != 0 {
					t.Fatal("before-grant fault consumed the token")
				}
				if latest, ok := s.Latest("fam"); !ok || latest != rt0 {
					t.Fatal("before-grant fault changed the live token")
				}
				if r.str("refresh_token") != "" {
					t.Fatalf("before-grant fault leaked a refresh token: %s", r.raw)
				}
				// A retry with the same token is legitimate and succeeds.
				if r := post(t, u, rt0); r.status != http.StatusOK {
					t.Fatalf("retry after before-grant fault: %d %s", r.status, r.raw)
				}
				if s.ReuseDetections() != 0 || s.Presentations(rt0) != 2 {
					t.Fatal("legitimate retry miscounted")
				}
			})
		}
	}
}

func TestLatencyRespectsClientContext(t *testing.T) {
	for _, phase := range []Phase{BeforeGrant, AfterGrant} {
		t.Run(phase.String(), func(t *testing.T) {
			s, u := startServer(t, Options{})
			rt0 := s.Seed("fam")
			s.InjectFault(Fault{Kind: FaultLatency, Phase: phase, Delay: time.Hour, Count: 1})
			ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
			defer cancel()
			start := time.Now()
			if _, err := send(ctx, u, refreshForm(rt0), true); !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("want deadline, got %v", err)
			}
			if time.Since(start) > 5*time.Second {
				t.Fatal("latency ignored the client context")
			}
			if phase == BeforeGrant {
				// The handler gives up without touching the grant.
				time.Sleep(50 * time.Millisecond)
				if s.Refreshes() != 0 {
					t.Fatal("before-grant latency consumed the token after the client left")
				}
				if r := post(t, u, rt0); r.status != http.StatusOK {
					t.Fatalf("retry: %d %s", r.status, r.raw)
				}
				return
			}
			if s.Refreshes() != 1 {
				t.Fatal("after-grant latency did not consume the token")
			}
		})
	}
}

func TestHangReleasedByClose(t *testing.T) {
	s := New(Options{})
	u := s.Start()
	rt := s.Seed("fam")
	s.InjectFault(Fault{Kind: FaultHang, Phase: AfterGrant})
	errc := make(chan error, 1)
	go func() {
		_, err := send(context.Background(), u, refreshForm(rt), false)
		errc <- err
	}()
	waitFor(t, func() bool { return s.Refreshes() == 1 })
	closed := make(chan struct{})
	go func() { s.Close(); close(closed) }()
	select {
	case <-closed:
	case <-time.After(5 * time.Second):
		t.Fatal("Close blocked on a hanging request")
	}
	if err := <-errc; err == nil {
		t.Fatal("hanging request got an answer")
	}
	s.Close() // idempotent
}

func TestFaultSchedule(t *testing.T) {
	s, u := startServer(t, Options{})
	rt := s.Seed("fam")

	// FIFO: two 503s, then one 429, then normal service.
	s.InjectFault(Fault{Kind: FaultStatus, Count: 2})
	s.InjectFault(Fault{Kind: FaultRateLimit, Count: 1})
	if s.PendingFaults() != 2 {
		t.Fatal("PendingFaults")
	}
	for i, want := range []int{503, 503, 429, 200} {
		r := post(t, u, rt)
		if r.status != want {
			t.Fatalf("request %d: got %d want %d", i, r.status, want)
		}
		if want == 200 {
			rt = r.str("refresh_token")
		}
	}

	// Count 0 sticks until cleared, and blocks faults queued behind it.
	s.InjectFault(Fault{Kind: FaultStatus, Status: 500})
	s.InjectFault(Fault{Kind: FaultRateLimit, Count: 1})
	for range 3 {
		if r := post(t, u, rt); r.status != 500 {
			t.Fatalf("sticky fault: %d", r.status)
		}
	}
	s.ClearFaults()
	if s.PendingFaults() != 0 {
		t.Fatal("ClearFaults left faults")
	}
	if r := post(t, u, rt); r.status != 200 {
		t.Fatalf("after ClearFaults: %d %s", r.status, r.raw)
	}
	// Faults strike requests regardless of whether they would succeed.
	s.InjectFault(Fault{Kind: FaultStatus, Count: 1})
	if r := post(t, u, "rt_unknown"); r.status != 503 {
		t.Fatalf("fault on unknown token: %d", r.status)
	}
}

func TestInjectFaultRejectsUnknownKind(t *testing.T) {
	s := New(Options{})
	for _, f := range []Fault{{}, {Kind: FaultMissingAccessToken + 1}, {Kind: FaultHang, Phase: 7}} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("InjectFault(%+v) did not panic", f)
				}
			}()
			s.InjectFault(f)
		}()
	}
}
