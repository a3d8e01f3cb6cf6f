package activities_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/interceptor"
	"go.temporal.io/sdk/worker"

	"github.com/tokenwarden/tokenwarden/activities"
	"github.com/tokenwarden/tokenwarden/internal/provider/oauth2/oauth2test"
	"github.com/tokenwarden/tokenwarden/internal/store"
)

// staleLeaseOwner names the attempt that died mid-refresh in these tests.
const staleLeaseOwner = "dead-run/3#2"

// introspecting returns the request with the fake's RFC 7662 endpoint configured, so the
// activity can ask instead of presenting after an interrupted attempt. The credential
// must have been seeded with it too (harnessOptions.introspect): the stored secrets are
// bound to the configuration they were seeded for.
func (h *harness) introspecting(req activities.RefreshRequest) activities.RefreshRequest {
	req.Config.IntrospectionURL = h.fake.IntrospectionURL()
	return req
}

// takeStaleLease leaves the lease of an attempt that took it leaseDuration+1s ago and
// died: expired, so the next attempt takes it over and knows the outcome is uncertain.
func (h *harness) takeStaleLease(id string) store.Lease {
	h.t.Helper()
	d := activities.DefaultLeaseDuration
	takenAt := h.takeLeaseAgo(id, staleLeaseOwner, d+time.Second, d)
	lease := h.get(id).Lease
	if lease.Owner != staleLeaseOwner || !lease.TakenAt.Equal(takenAt) {
		h.t.Fatalf("stale lease not stored as taken: %+v", lease)
	}
	return lease
}

// assertLeaseNotTakeable proves a live lease is held by checking that another owner
// cannot take it.
func (h *harness) assertLeaseNotTakeable(id string) {
	h.t.Helper()
	_, err := h.sqlite.AcquireLease(context.Background(), id, "someone-else", time.Minute)
	if !errors.Is(err, store.ErrLeaseHeld) {
		h.t.Fatalf("another owner took (or failed to take) the lease: %v, want ErrLeaseHeld", err)
	}
}

// The dead attempt got through: the provider consumed the token. Introspection says so
// and the credential is parked without presenting the token a second time, so reuse
// detection never fires and the family (with the successor nobody stored) survives.
func TestInterruptedConsumedTokenIsNotPresentedAgain(t *testing.T) {
	h := newHarness(t, harnessOptions{introspect: true})
	rt, v := h.seed(credID, "fam", testClientSecret)
	stale := h.takeStaleLease(credID)
	spend(t, h, rt) // the dead attempt's presentation; its answer was never stored
	requests, presentations := h.fake.Requests(), h.fake.TotalPresentations()
	if presentations != 1 || h.fake.Presentations(rt) != 1 {
		t.Fatalf("setup: %d presentations", presentations)
	}

	_, err := h.refresh(h.introspecting(h.request(credID, v)))
	appErr := appError(t, err, activities.ErrTypePermanent, true)
	if !strings.Contains(err.Error(), activities.ReasonInterruptedRefresh) {
		t.Fatalf("error %q does not name the interrupted refresh", err)
	}
	d := detailOf(t, appErr)
	if d.Code != "refresh_token_consumed" || !d.InterruptedAt.Equal(stale.TakenAt) || d.RetryAfter != 0 {
		t.Fatalf("detail = %+v, want code refresh_token_consumed and InterruptedAt %s", d, stale.TakenAt)
	}
	if h.fake.Requests() != requests || h.fake.TotalPresentations() != presentations || h.fake.Presentations(rt) != 1 {
		t.Fatalf("token endpoint saw the activity: requests %d -> %d, presentations %d -> %d",
			requests, h.fake.Requests(), presentations, h.fake.TotalPresentations())
	}
	if h.fake.Introspections() != 1 || h.fake.ReuseDetections() != 0 || h.fake.MaxProcessed() != 1 {
		t.Fatalf("introspections %d, reuse detections %d, max processed %d",
			h.fake.Introspections(), h.fake.ReuseDetections(), h.fake.MaxProcessed())
	}
	if h.fake.Revoked("fam") {
		t.Fatal("family revoked")
	}
	if _, ok := h.fake.Latest("fam"); !ok {
		t.Fatal("the family's live successor is gone")
	}
	if rec := h.get(credID); rec.Version != v || rec.Secrets.RefreshToken != rt {
		t.Fatalf("a parked credential changed the store (version %d)", rec.Version)
	}
	// A human reseeds next; the lease must not make their first refresh wait.
	h.assertLeaseFree(credID)
	h.assertNoSecrets(err, h.secrets(credID, "fam", rt)...)
}

// The dead attempt never got through: introspection says the token is live and the
// refresh goes ahead, presenting it exactly once.
func TestInterruptedLiveTokenRefreshes(t *testing.T) {
	h := newHarness(t, harnessOptions{introspect: true})
	rt, v := h.seed(credID, "fam", testClientSecret)
	h.takeStaleLease(credID)

	res := h.mustRefresh(h.introspecting(h.request(credID, v)))
	if res.Version != v+1 || !res.Rotated || res.AlreadyCommitted {
		t.Fatalf("result %+v", res)
	}
	rec := h.get(credID)
	latest, ok := h.fake.Latest("fam")
	if !ok || rec.Version != v+1 || rec.Secrets.RefreshToken != latest || latest == rt {
		t.Fatalf("store (version %d) does not hold the live token", rec.Version)
	}
	if rec.Lease != (store.Lease{}) {
		t.Fatalf("commit left a lease behind: %+v", rec.Lease)
	}
	if h.fake.Introspections() != 1 || h.fake.MaxProcessed() != 1 || h.fake.Presentations(rt) != 1 || h.fake.ReuseDetections() != 0 {
		t.Fatalf("introspections %d, max processed %d, presentations %d, reuse %d",
			h.fake.Introspections(), h.fake.MaxProcessed(), h.fake.Presentations(rt), h.fake.ReuseDetections())
	}
	h.assertNoSecretsInLogs(rt, latest, rec.Secrets.AccessToken)
}

// An introspection that fails transiently settles nothing: the token endpoint is not
// called, and the lease stays (now the failed attempt's), so a retry inside it is told
// "in flight" and the attempt after it expires asks again.
func TestInterruptedIntrospectionTransientKeepsLease(t *testing.T) {
	cases := []struct {
		name       string
		fault      oauth2test.Fault
		code       string
		retryAfter time.Duration
	}{
		{"503", oauth2test.Fault{Kind: oauth2test.FaultStatus}, "http_503", 0},
		{"429 with Retry-After", oauth2test.Fault{Kind: oauth2test.FaultRateLimit, RetryAfter: 9 * time.Second}, "http_429", 9 * time.Second},
		{"answer without active", oauth2test.Fault{Kind: oauth2test.FaultMissingAccessToken}, "malformed_response", 0},
		{"connection reset", oauth2test.Fault{Kind: oauth2test.FaultCloseConnection}, "network", 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, harnessOptions{introspect: true})
			rt, v := h.seed(credID, "fam", testClientSecret)
			h.takeStaleLease(credID)
			f := tc.fault
			f.Path, f.Count = oauth2test.IntrospectionPath, 1
			h.fake.InjectFault(f)
			req := h.introspecting(h.request(credID, v))

			_, err := h.refresh(req)
			appErr := appError(t, err, activities.ErrTypeTransient, false)
			d := detailOf(t, appErr)
			if d.Code != tc.code || d.RetryAfter != tc.retryAfter || appErr.NextRetryDelay() != tc.retryAfter {
				t.Fatalf("detail = %+v, NextRetryDelay %s; want code %s, retry after %s", d, appErr.NextRetryDelay(), tc.code, tc.retryAfter)
			}
			if strings.Contains(err.Error(), activities.ReasonInterruptedRefresh) {
				t.Fatalf("a transient error %q claims the token was consumed", err)
			}
			if h.fake.Requests() != 0 || h.fake.Introspections() != 1 {
				t.Fatalf("token endpoint requests %d, introspections %d", h.fake.Requests(), h.fake.Introspections())
			}
			if rec := h.get(credID); rec.Version != v || rec.Secrets.RefreshToken != rt {
				t.Fatal("store changed after a failed introspection")
			}
			lease := h.assertLeaseHeld(credID)
			if lease.Owner == staleLeaseOwner {
				t.Fatalf("lease still the dead attempt's, the failed attempt never took it over: %+v", lease)
			}
			h.assertLeaseNotTakeable(credID)
			h.assertNoSecrets(err, h.secrets(credID, "fam", rt)...)

			// A retry inside the lease touches neither endpoint.
			_, err = h.refresh(req)
			appError(t, err, activities.ErrTypeInFlight, false)
			if h.fake.Requests() != 0 || h.fake.Introspections() != 1 {
				t.Fatalf("retry inside the lease: token requests %d, introspections %d", h.fake.Requests(), h.fake.Introspections())
			}

			// After it expires, the next attempt sees an interrupted refresh, asks again,
			// learns the token is live, and refreshes.
			h.clock.Advance(activities.DefaultLeaseDuration)
			res := h.mustRefresh(req)
			if res.Version != v+1 || !res.Rotated {
				t.Fatalf("after expiry: %+v", res)
			}
			if h.fake.Introspections() != 2 || h.fake.Presentations(rt) != 1 || h.fake.MaxProcessed() != 1 || h.fake.ReuseDetections() != 0 {
				t.Fatalf("after expiry: introspections %d, presentations %d, max processed %d, reuse %d",
					h.fake.Introspections(), h.fake.Presentations(rt), h.fake.MaxProcessed(), h.fake.ReuseDetections())
			}
			if rec := h.get(credID); rec.Lease != (store.Lease{}) {
				t.Fatalf("commit left a lease behind: %+v", rec.Lease)
			}
		})
	}
}

// The introspection endpoint rejects the client: permanent, nothing presented, lease
// released for the human who fixes the secret.
func TestInterruptedIntrospectionRejectsClient(t *testing.T) {
	h := newHarness(t, harnessOptions{introspect: true})
	const wrongSecret = "cs_WrongClientSecretValue_0123456789"
	rt, v := h.seed(credID, "fam", wrongSecret)
	stale := h.takeStaleLease(credID)

	_, err := h.refresh(h.introspecting(h.request(credID, v)))
	appErr := appError(t, err, activities.ErrTypePermanent, true)
	d := detailOf(t, appErr)
	if d.Code != "invalid_client" || !d.InterruptedAt.Equal(stale.TakenAt) {
		t.Fatalf("detail = %+v, want code invalid_client and InterruptedAt %s", d, stale.TakenAt)
	}
	if h.fake.Introspections() != 1 || h.fake.Requests() != 0 || h.fake.Presentations(rt) != 0 {
		t.Fatalf("introspections %d, token requests %d, presentations %d",
			h.fake.Introspections(), h.fake.Requests(), h.fake.Presentations(rt))
	}
	if _, ok := h.fake.Latest("fam"); !ok || h.fake.Revoked("fam") {
		t.Fatal("the family was harmed by an introspection")
	}
	h.assertLeaseFree(credID)
	h.assertNoSecrets(err, h.secrets(credID, "fam", rt, wrongSecret)...)
}

// Introspection is only for settling an interrupted attempt: without a stale lease the
// activity presents straight away, even when it could ask.
func TestNoStaleLeaseNoIntrospection(t *testing.T) {
	t.Run("live token", func(t *testing.T) {
		h := newHarness(t, harnessOptions{introspect: true})
		rt, v := h.seed(credID, "fam", testClientSecret)
		res := h.mustRefresh(h.introspecting(h.request(credID, v)))
		if res.Version != v+1 || h.fake.Introspections() != 0 || h.fake.Presentations(rt) != 1 {
			t.Fatalf("result %+v, introspections %d, presentations %d", res, h.fake.Introspections(), h.fake.Presentations(rt))
		}
	})
	t.Run("spent token", func(t *testing.T) {
		h := newHarness(t, harnessOptions{introspect: true})
		rt, v := h.seed(credID, "fam", testClientSecret)
		spend(t, h, rt)
		_, err := h.refresh(h.introspecting(h.request(credID, v)))
		appErr := appError(t, err, activities.ErrTypePermanent, true)
		if d := detailOf(t, appErr); d.Code != "invalid_grant" || !d.InterruptedAt.IsZero() {
			t.Fatalf("detail = %+v", d)
		}
		if strings.Contains(err.Error(), activities.ReasonInterruptedRefresh) {
			t.Fatalf("error %q claims an interrupted refresh", err)
		}
		if h.fake.Introspections() != 0 || h.fake.Presentations(rt) != 2 {
			t.Fatalf("introspections %d, presentations %d", h.fake.Introspections(), h.fake.Presentations(rt))
		}
	})
}

// Without an IntrospectionURL the provider cannot be asked: the old behaviour, the
// token is presented once more and a rejection is reported as an interrupted refresh.
func TestInterruptedWithoutIntrospectionPresentsOnce(t *testing.T) {
	t.Run("spent", func(t *testing.T) {
		h := newHarness(t, harnessOptions{})
		rt, v := h.seed(credID, "fam", testClientSecret)
		stale := h.takeStaleLease(credID)
		spend(t, h, rt)

		_, err := h.refresh(h.request(credID, v))
		appErr := appError(t, err, activities.ErrTypePermanent, true)
		if !strings.Contains(err.Error(), activities.ReasonInterruptedRefresh) {
			t.Fatalf("error %q does not name the interrupted refresh", err)
		}
		if d := detailOf(t, appErr); d.Code != "invalid_grant" || !d.InterruptedAt.Equal(stale.TakenAt) {
			t.Fatalf("detail = %+v", d)
		}
		if h.fake.Introspections() != 0 || h.fake.Presentations(rt) != 2 {
			t.Fatalf("introspections %d, presentations %d", h.fake.Introspections(), h.fake.Presentations(rt))
		}
		h.assertLeaseFree(credID)
	})
	t.Run("live", func(t *testing.T) {
		h := newHarness(t, harnessOptions{})
		rt, v := h.seed(credID, "fam", testClientSecret)
		h.takeStaleLease(credID)

		res := h.mustRefresh(h.request(credID, v))
		if res.Version != v+1 || h.fake.Introspections() != 0 || h.fake.Presentations(rt) != 1 || h.fake.ReuseDetections() != 0 {
			t.Fatalf("result %+v, introspections %d, presentations %d, reuse %d",
				res, h.fake.Introspections(), h.fake.Presentations(rt), h.fake.ReuseDetections())
		}
	})
}

// The token endpoint answering 503 proves the token was not consumed by this attempt,
// which is why the lease is normally released. After an interrupted attempt it is kept:
// it is the only record that an earlier outcome is unknown.
func TestInterruptedTransientAnswerKeepsLease(t *testing.T) {
	cases := []struct {
		name        string
		staleLease  bool
		introspect  bool
		wantLease   bool
		wantIntros  int
		afterExpiry int // introspections after the retry that follows lease expiry
	}{
		{name: "interrupted, with introspection", staleLease: true, introspect: true, wantLease: true, wantIntros: 1, afterExpiry: 2},
		{name: "interrupted, without introspection", staleLease: true, wantLease: true},
		{name: "not interrupted (control)", introspect: true, wantLease: false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, harnessOptions{introspect: tc.introspect})
			rt, v := h.seed(credID, "fam", testClientSecret)
			if tc.staleLease {
				h.takeStaleLease(credID)
			}
			h.fake.InjectFault(oauth2test.Fault{Kind: oauth2test.FaultStatus, Path: oauth2test.TokenPath, Count: 1})
			req := h.request(credID, v)
			if tc.introspect {
				req = h.introspecting(req)
			}

			_, err := h.refresh(req)
			d := detailOf(t, appError(t, err, activities.ErrTypeTransient, false))
			if d.Code != "http_503" {
				t.Fatalf("detail = %+v", d)
			}
			if h.fake.Presentations(rt) != 1 || h.fake.Introspections() != tc.wantIntros {
				t.Fatalf("presentations %d, introspections %d", h.fake.Presentations(rt), h.fake.Introspections())
			}
			if !tc.wantLease {
				h.assertLeaseFree(credID)
				return
			}
			lease := h.assertLeaseHeld(credID)
			if lease.Owner == staleLeaseOwner {
				t.Fatalf("lease is still the dead attempt's: %+v", lease)
			}
			h.assertLeaseNotTakeable(credID)
			_, err = h.refresh(req)
			appError(t, err, activities.ErrTypeInFlight, false)
			if h.fake.Presentations(rt) != 1 {
				t.Fatalf("retry inside the lease presented the token")
			}

			h.clock.Advance(activities.DefaultLeaseDuration)
			res := h.mustRefresh(req)
			if res.Version != v+1 || h.fake.Presentations(rt) != 2 || h.fake.ReuseDetections() != 0 || h.fake.Introspections() != tc.afterExpiry {
				t.Fatalf("after expiry: %+v, presentations %d, reuse %d, introspections %d",
					res, h.fake.Presentations(rt), h.fake.ReuseDetections(), h.fake.Introspections())
			}
		})
	}
}

// heartbeatCounter is a worker interceptor that counts every activity.RecordHeartbeat
// call. The activity environment's heartbeat listener only sees heartbeats that would be
// sent to the server, and with no HeartbeatTimeout those are throttled to one per 30s, so
// the listener alone cannot show the ticker working.
type heartbeatCounter struct {
	interceptor.WorkerInterceptorBase
	mu    sync.Mutex
	count int
}

func (c *heartbeatCounter) InterceptActivity(ctx context.Context, next interceptor.ActivityInboundInterceptor) interceptor.ActivityInboundInterceptor {
	return &heartbeatInbound{ActivityInboundInterceptorBase: interceptor.ActivityInboundInterceptorBase{Next: next}, c: c}
}

func (c *heartbeatCounter) calls() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.count
}

type heartbeatInbound struct {
	interceptor.ActivityInboundInterceptorBase
	c *heartbeatCounter
}

func (i *heartbeatInbound) Init(outbound interceptor.ActivityOutboundInterceptor) error {
	return i.Next.Init(&heartbeatOutbound{ActivityOutboundInterceptorBase: interceptor.ActivityOutboundInterceptorBase{Next: outbound}, c: i.c})
}

type heartbeatOutbound struct {
	interceptor.ActivityOutboundInterceptorBase
	c *heartbeatCounter
}

func (o *heartbeatOutbound) RecordHeartbeat(ctx context.Context, details ...any) {
	o.c.mu.Lock()
	o.c.count++
	o.c.mu.Unlock()
	o.Next.RecordHeartbeat(ctx, details...)
}

// A slow provider call must not look like a dead worker: the activity heartbeats every
// HeartbeatInterval while it waits, and stops when it returns.
func TestRefreshHeartbeatsWhileProviderIsSlow(t *testing.T) {
	if testing.Short() {
		t.Skip("waits for several heartbeat intervals")
	}
	delay := 2*activities.HeartbeatInterval + activities.HeartbeatInterval/2
	for _, tc := range []struct {
		name  string
		fault oauth2test.Fault
		stale bool
	}{
		{"slow token endpoint", oauth2test.Fault{Kind: oauth2test.FaultLatency, Path: oauth2test.TokenPath, Count: 1, Delay: delay}, false},
		{"slow introspection", oauth2test.Fault{Kind: oauth2test.FaultLatency, Path: oauth2test.IntrospectionPath, Count: 1, Delay: delay}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, harnessOptions{introspect: true})
			_, v := h.seed(credID, "fam", testClientSecret)
			if tc.stale {
				h.takeStaleLease(credID)
			}
			h.fake.InjectFault(tc.fault)

			counter := &heartbeatCounter{}
			var listenerMu sync.Mutex
			var listened []activity.Info
			suite := quietSuite()
			env := suite.NewTestActivityEnvironment()
			env.SetWorkerOptions(worker.Options{Interceptors: []interceptor.WorkerInterceptor{counter}})
			env.SetOnActivityHeartbeatListener(func(info *activity.Info, _ converter.EncodedValues) {
				listenerMu.Lock()
				defer listenerMu.Unlock()
				listened = append(listened, *info)
			})
			env.RegisterActivity(h.acts)

			start := time.Now()
			val, err := env.ExecuteActivity(h.acts.Refresh, h.introspecting(h.request(credID, v)))
			elapsed := time.Since(start)
			if err != nil {
				t.Fatalf("Refresh: %v", err)
			}
			var res activities.RefreshResult
			if err := val.Get(&res); err != nil || res.Version != v+1 {
				t.Fatalf("result %+v, %v", res, err)
			}
			if elapsed < delay {
				t.Fatalf("activity took %s, the fault should have delayed it %s", elapsed, delay)
			}

			// One heartbeat per tick while the call is slow (none at the start): at least
			// floor(delay/HeartbeatInterval).
			want := int(delay / activities.HeartbeatInterval)
			if got := counter.calls(); got < want {
				t.Fatalf("RecordHeartbeat called %d times during a %s activity, want >= %d", got, elapsed, want)
			}
			listenerMu.Lock()
			n := len(listened)
			var typ string
			if n > 0 {
				typ = listened[0].ActivityType.Name
			}
			listenerMu.Unlock()
			t.Logf("%s activity: %d RecordHeartbeat calls, %d reached the heartbeat listener", elapsed.Round(time.Millisecond), counter.calls(), n)
			if n == 0 || typ != "Refresh" {
				t.Fatalf("heartbeat listener saw %d heartbeats (first for activity %q), want at least one for Refresh", n, typ)
			}

			// No heartbeat outlives the activity (its stop function and its context both end
			// the ticker; either alone passes this). Allow one already under way.
			time.Sleep(50 * time.Millisecond)
			after := counter.calls()
			time.Sleep(activities.HeartbeatInterval + activities.HeartbeatInterval/2)
			if got := counter.calls(); got != after {
				t.Fatalf("heartbeats went on after the activity returned: %d -> %d", after, got)
			}
		})
	}
}
