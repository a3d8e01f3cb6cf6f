package e2e

// Fault-injection tests: the worker is killed at the worst moments, the
// provider hangs and misbehaves, the token store is locked during a commit, the Temporal
// server restarts, and refresh requests arrive in a storm. Every test checks what the
// provider saw (the fake's counters), what the store holds (read after the worker has
// stopped) and what the workflow says.
//
// Timings: provider timeout 3 s, commit retries 4 s and lease 15 s (env.vars), the
// activity's heartbeat timeout is 10 s, so an attempt on a killed worker is retried
// about 11 s after the kill, and waits for the lease taken before it;
// access tokens live 3 s unless a test says otherwise.

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/tokenwarden/tokenwarden/internal/credential"
	enumspb "go.temporal.io/api/enums/v1"

	"go.temporal.io/sdk/client"

	"github.com/tokenwarden/tokenwarden/activities"
	"github.com/tokenwarden/tokenwarden/internal/provider/oauth2/oauth2test"
	"github.com/tokenwarden/tokenwarden/workflows"
)

const faultPointsEnv = "TOKENWARDEN_FAULT_POINTS" // activities.FaultEnv, which only the faultinject build has

// counters renders the fake's view of a credential for logs and failure messages.
func counters(fake *oauth2test.Server, seed string) string {
	return fmt.Sprintf("seed presented %d / processed %d; all tokens: %d presentations, %d refreshes, max presentations %d, max processed %d, reuse detections %d, introspections %d",
		fake.Presentations(seed), fake.Processed(seed), fake.TotalPresentations(), fake.Refreshes(),
		fake.MaxPresentations(), fake.MaxProcessed(), fake.ReuseDetections(), fake.Introspections())
}

// assertStoreHoldsLatest checks, after the worker has stopped, that nothing was lost:
// the store holds the provider's live refresh token, one version per provider refresh
// on top of the seed, and no leftover lease; and the provider never processed a refresh
// token twice.
func assertStoreHoldsLatest(t *testing.T, e *env, fake *oauth2test.Server, id string) {
	t.Helper()
	rec := e.storedRecord(id)
	latest, ok := fake.Latest(id)
	if !ok {
		t.Fatalf("provider has no live refresh token for %s (family revoked: %v)", id, fake.Revoked(id))
	}
	if rec.Secrets.RefreshToken != latest {
		t.Errorf("store holds refresh token %s, the provider's live one is %s",
			oauth2test.Fingerprint(rec.Secrets.RefreshToken), oauth2test.Fingerprint(latest))
	}
	if want := int64(fake.Refreshes()) + 1; rec.Version != want {
		t.Errorf("store version %d, want %d (the seed plus one per provider refresh)", rec.Version, want)
	}
	if rec.Lease.Owner != "" {
		t.Errorf("store still holds a lease by %s", rec.Lease.Owner)
	}
	if got := fake.MaxProcessed(); got != 1 {
		t.Errorf("the provider processed some refresh token %d times, want once each", got)
	}
	if got := fake.ReuseDetections(); got != 0 {
		t.Errorf("provider detected %d refresh-token reuses, want 0", got)
	}
}

// assertStoreKeptSeed checks a credential parked before any refresh committed: the store
// still holds the seed at version 1, with the lease released for the human who reseeds.
func assertStoreKeptSeed(t *testing.T, e *env, id, seed string) {
	t.Helper()
	rec := e.storedRecord(id)
	if rec.Version != 1 || rec.Secrets.RefreshToken != seed {
		t.Errorf("store at version %d with refresh token %s, want the seed %s at version 1",
			rec.Version, oauth2test.Fingerprint(rec.Secrets.RefreshToken), oauth2test.Fingerprint(seed))
	}
	if rec.Lease.Owner != "" {
		t.Errorf("a parked credential keeps a lease by %s; a reseed would have to wait for it", rec.Lease.Owner)
	}
}

func isActive(s workflows.Status) bool {
	return s.State == credential.StateActive || s.State == credential.StateRefreshing
}

// 1. kill -9 while the provider holds the refresh request, then restart the worker.
func TestWorkerKilledWhileProviderHoldsRequest(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name       string
		phase      oauth2test.Phase
		introspect bool
	}{
		// The provider had not looked at the grant: the token is unspent, and after the
		// lease the retry asks the introspection endpoint, learns so, and refreshes.
		{"before grant", oauth2test.BeforeGrant, true},
		// The provider consumed the token and minted a successor whose answer died with
		// the worker. Introspection says "inactive", so the credential parks without
		// presenting the spent token again.
		{"after grant", oauth2test.AfterGrant, true},
		// Same, with a provider that offers no introspection: the only way to learn the
		// outcome is to present the token once more. The provider sees a used token,
		// its reuse detection fires and revokes the family. That second presentation is
		// the expected cost of a provider without introspection; the credential parks
		// with the same reason.
		{"after grant without introspection", oauth2test.AfterGrant, false},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			fake := startFake(t, oauth2test.Options{AccessLifetime: 3 * time.Second})
			// The first token request is held for a minute, far beyond the provider timeout:
			// the worker is killed while it waits.
			fake.InjectFault(oauth2test.Fault{Kind: oauth2test.FaultLatency, Phase: tc.phase, Delay: time.Minute, Count: 1})
			w := e.startWorker()
			id := fmt.Sprintf("kill-held-%d", i)
			seed := e.startCredential(stack.client, testCredential{id: id, fake: fake, introspect: tc.introspect})

			waitFor(t, 30*time.Second, "the first refresh request at the provider", func() (bool, string) {
				return fake.InFlight() == 1, fmt.Sprintf("%d requests in flight", fake.InFlight())
			})
			w.kill9(t)
			killedAt := time.Now()
			waitFor(t, 10*time.Second, "the provider to see the killed client go", func() (bool, string) {
				return fake.InFlight() == 0, fmt.Sprintf("%d requests in flight", fake.InFlight())
			})
			wantProcessed := 0
			if tc.phase == oauth2test.AfterGrant {
				wantProcessed = 1
			}
			if got := fake.Processed(seed); got != wantProcessed || fake.Presentations(seed) != 1 {
				t.Fatalf("after the kill: %s; want the seed processed %d times", counters(fake, seed), wantProcessed)
			}
			if rec := e.storedRecord(id); rec.Version != 1 || rec.Lease.Owner == "" {
				t.Fatalf("after the kill the store is at version %d with lease owner %q; want version 1 and the dead attempt's lease",
					rec.Version, rec.Lease.Owner)
			}

			w2 := e.startWorker()
			if tc.phase == oauth2test.BeforeGrant {
				waitForStatus(t, id, 60*time.Second, "the refresh to go through after the restart", func(s workflows.Status) bool {
					return s.Refreshes >= 1
				})
				recovered := time.Since(killedAt)
				st := waitForStatus(t, id, 30*time.Second, "two more refresh cycles", func(s workflows.Status) bool {
					return s.Refreshes >= 3 && isActive(s)
				})
				if st.ConsecutiveFailures != 0 {
					t.Errorf("ConsecutiveFailures %d, want 0", st.ConsecutiveFailures)
				}
				w2.stop(t)
				assertStoreHoldsLatest(t, e, fake, id)
				if fake.Presentations(seed) != 2 || fake.Processed(seed) != 1 || fake.Introspections() != 1 {
					t.Errorf("want the seed presented twice (once into the kill, once after the lease), processed once, one introspection: %s",
						counters(fake, seed))
				}
				t.Logf("recovered %s after the kill; %d refreshes; %s", recovered.Round(time.Millisecond), st.Refreshes, counters(fake, seed))
				return
			}

			st := waitForStatus(t, id, 60*time.Second, "NEEDS_REAUTH after the interrupted refresh", func(s workflows.Status) bool {
				return s.State == credential.StateNeedsReauth
			})
			settled := time.Since(killedAt)
			if !strings.Contains(st.LastError, activities.ReasonInterruptedRefresh) {
				t.Errorf("LastError %q does not name the interrupted refresh", st.LastError)
			}
			if st.Refreshes != 0 {
				t.Errorf("status counts %d refreshes, want 0", st.Refreshes)
			}
			w2.stop(t)
			assertStoreKeptSeed(t, e, id, seed)
			if fake.Refreshes() != 1 {
				t.Errorf("provider refreshed %d times, want 1 (the one whose answer was lost)", fake.Refreshes())
			}
			if tc.introspect {
				if st.LastErrorCode != "refresh_token_consumed" {
					t.Errorf("LastErrorCode %q, want refresh_token_consumed", st.LastErrorCode)
				}
				if fake.Presentations(seed) != 1 || fake.MaxProcessed() != 1 || fake.ReuseDetections() != 0 ||
					fake.Introspections() != 1 || fake.Revoked(id) {
					t.Errorf("want the spent seed never presented again (introspection instead), no reuse: %s, family revoked %v",
						counters(fake, seed), fake.Revoked(id))
				}
			} else {
				if st.LastErrorCode != "invalid_grant" {
					t.Errorf("LastErrorCode %q, want invalid_grant", st.LastErrorCode)
				}
				// The documented cost of no introspection: one more presentation, which the
				// provider processes as reuse and answers by revoking the family.
				if fake.Presentations(seed) != 2 || fake.Processed(seed) != 2 || fake.ReuseDetections() != 1 ||
					fake.Introspections() != 0 || !fake.Revoked(id) {
					t.Errorf("want exactly one extra presentation of the spent seed, one reuse detection and the family revoked: %s, revoked %v",
						counters(fake, seed), fake.Revoked(id))
				}
			}
			t.Logf("parked %s after the kill: %q; %s", settled.Round(time.Millisecond), st.LastError, counters(fake, seed))
		})
	}
}

// 2. The faultinject worker kills itself after the provider answered and before the
// commit: the rotated token existed only in that process's memory.
func TestKilledAfterProviderBeforeCommit(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	fake := startFake(t, oauth2test.Options{AccessLifetime: 3 * time.Second})
	// Armed for this process only: the restarted worker is a normal build.
	w := e.startWorkerBin(stack.faultWorkerBin, faultPointsEnv+"="+activities.FaultAfterProviderBeforeCommit)
	const id = "kill-before-commit"
	seed := e.startCredential(stack.client, testCredential{id: id, fake: fake, introspect: true})

	if sig := w.waitExit(t, 30*time.Second); sig != syscall.SIGKILL {
		t.Fatalf("the faultinject worker ended with signal %v, want SIGKILL at %s\n%s", sig, activities.FaultAfterProviderBeforeCommit, w.output.String())
	}
	killedAt := time.Now()
	if fake.Refreshes() != 1 || fake.Processed(seed) != 1 {
		t.Fatalf("the worker died before the provider refreshed: %s", counters(fake, seed))
	}
	if rec := e.storedRecord(id); rec.Version != 1 || rec.Lease.Owner == "" {
		t.Fatalf("after the kill the store is at version %d with lease owner %q; want version 1 and the dead attempt's lease",
			rec.Version, rec.Lease.Owner)
	}

	w2 := e.startWorker()
	st := waitForStatus(t, id, 60*time.Second, "NEEDS_REAUTH after the interrupted refresh", func(s workflows.Status) bool {
		return s.State == credential.StateNeedsReauth
	})
	settled := time.Since(killedAt)
	if !strings.Contains(st.LastError, activities.ReasonInterruptedRefresh) || st.LastErrorCode != "refresh_token_consumed" {
		t.Errorf("LastError %q (code %q), want the interrupted-refresh reason with code refresh_token_consumed", st.LastError, st.LastErrorCode)
	}
	w2.stop(t)
	assertStoreKeptSeed(t, e, id, seed)
	if fake.MaxProcessed() != 1 || fake.Presentations(seed) != 1 || fake.ReuseDetections() != 0 || fake.Introspections() != 1 {
		t.Errorf("want the spent seed presented once and settled by one introspection: %s", counters(fake, seed))
	}
	t.Logf("parked %s after the kill; %s", settled.Round(time.Millisecond), counters(fake, seed))
}

// 3. The provider hangs beyond the provider timeout. The attempt gives up but keeps the
// lease (the provider may have processed the grant); Temporal's retry must not present
// while the lease lives. After it expires, the retry asks the introspection endpoint
// ("active": the hang never reached the grant) and refreshes.
func TestHangingProviderRetryWaitsForLease(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	fake := startFake(t, oauth2test.Options{AccessLifetime: 3 * time.Second})
	fake.InjectFault(oauth2test.Fault{Kind: oauth2test.FaultHang, Count: 1})
	w := e.startWorker()
	const id = "hang-zombie"
	seed := e.startCredential(stack.client, testCredential{id: id, fake: fake, introspect: true})

	waitFor(t, 30*time.Second, "the first presentation", func() (bool, string) {
		return fake.Presentations(seed) >= 1, counters(fake, seed)
	})
	presentedAt := time.Now()
	lease := e.storedRecord(id).Lease
	if lease.Owner == "" || !lease.ExpiresAt.After(time.Now()) {
		t.Fatalf("no live lease while the provider holds the request: %+v", lease)
	}
	// Sample until the lease expires: the timed-out attempt and its retries stay away
	// from the token endpoint.
	samples := 0
	for time.Now().Before(lease.ExpiresAt) {
		if n := fake.Presentations(seed); n != 1 {
			t.Fatalf("the seed was presented %d times %s before the lease expired", n, time.Until(lease.ExpiresAt).Round(time.Millisecond))
		}
		samples++
		time.Sleep(25 * time.Millisecond)
	}
	if fake.Processed(seed) != 0 || fake.InFlight() != 0 {
		t.Fatalf("at lease expiry the hung request should be abandoned and unprocessed: %s, %d in flight", counters(fake, seed), fake.InFlight())
	}
	waitFor(t, 30*time.Second, "the presentation after the lease", func() (bool, string) {
		return fake.Presentations(seed) >= 2, counters(fake, seed)
	})
	secondAt := time.Now()
	st := waitForStatus(t, id, 30*time.Second, "the refresh and two more cycles", func(s workflows.Status) bool {
		return s.Refreshes >= 3 && isActive(s)
	})
	if st.ConsecutiveFailures != 0 {
		t.Errorf("ConsecutiveFailures %d: the round should have absorbed the hang", st.ConsecutiveFailures)
	}
	w.stop(t)
	assertStoreHoldsLatest(t, e, fake, id)
	if fake.Presentations(seed) != 2 || fake.Processed(seed) != 1 || fake.Introspections() != 1 {
		t.Errorf("want the seed presented twice, processed once, one introspection: %s", counters(fake, seed))
	}
	// The retry inside the lease really ran and was turned away without presenting.
	if !strings.Contains(w.output.String(), "another refresh attempt holds the lease") {
		t.Errorf("no attempt was told the lease was held; the retry inside the lease did not happen as expected")
	}
	t.Logf("%d samples over %s saw 1 presentation; second presentation %s after the first (lease %s); %s",
		samples, lease.ExpiresAt.Sub(presentedAt).Round(time.Millisecond), secondAt.Sub(presentedAt).Round(time.Millisecond),
		lease.ExpiresAt.Sub(lease.TakenAt), counters(fake, seed))
}

// 4. The store is locked while the provider answers: the commit of the rotated token
// fails with SQLITE_BUSY until the lock goes away, and must keep trying.
func TestStoreLockedDuringCommit(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	fake := startFake(t, oauth2test.Options{AccessLifetime: 3 * time.Second})
	// The first answer takes 1.5 s: time for the test to take the lock after the lease
	// was written and before the commit.
	fake.InjectFault(oauth2test.Fault{Kind: oauth2test.FaultLatency, Delay: 1500 * time.Millisecond, Count: 1})
	w := e.startWorker()
	const id = "store-locked"
	seed := e.startCredential(stack.client, testCredential{id: id, fake: fake, introspect: true})

	waitFor(t, 30*time.Second, "the first refresh request at the provider", func() (bool, string) {
		return fake.InFlight() == 1, counters(fake, seed)
	})
	version, release := e.lockStore()
	lockedAt := time.Now()
	waitFor(t, 5*time.Second, "the provider to refresh", func() (bool, string) {
		return fake.Refreshes() == 1, counters(fake, seed)
	})
	// Hold the lock well past the worker's 5 s busy timeout: at least one commit attempt
	// fails with SQLITE_BUSY. Meanwhile the rotated token exists only in the worker.
	for time.Since(lockedAt) < 8*time.Second {
		if v := version(id); v != 1 {
			t.Fatalf("store at version %d while locked", v)
		}
		if st, err := queryStatus(t, id); err == nil && st.Refreshes != 0 {
			t.Fatalf("workflow reports %d refreshes while the store is locked", st.Refreshes)
		}
		time.Sleep(250 * time.Millisecond)
	}
	release()
	releasedAt := time.Now()
	waitForStatus(t, id, 20*time.Second, "the commit after the lock was released", func(s workflows.Status) bool {
		return s.Refreshes >= 1
	})
	committedAfter := time.Since(releasedAt)
	st := waitForStatus(t, id, 30*time.Second, "two more refresh cycles", func(s workflows.Status) bool {
		return s.Refreshes >= 3 && isActive(s)
	})
	if st.ConsecutiveFailures != 0 {
		t.Errorf("ConsecutiveFailures %d, want 0", st.ConsecutiveFailures)
	}
	w.stop(t)
	assertStoreHoldsLatest(t, e, fake, id)
	if fake.MaxPresentations() != 1 {
		t.Errorf("a token was presented more than once: %s", counters(fake, seed))
	}
	if out := w.output.String(); strings.Contains(out, "COMMIT FAILED") {
		t.Errorf("the worker gave up a commit:\n%s", out)
	}
	t.Logf("store locked %s; refresh committed %s after release; %s", releasedAt.Sub(lockedAt).Round(time.Millisecond),
		committedAfter.Round(time.Millisecond), counters(fake, seed))
}

// 5. Provider misbehaviour, one credential (and one fake provider) per case, all on one
// worker.
func TestProviderMisbehaviour(t *testing.T) {
	t.Parallel()
	type tcase struct {
		name       string
		fault      *oauth2test.Fault
		noRotation bool
		// reauth: the case ends in NEEDS_REAUTH with this code; otherwise it recovers to
		// ACTIVE with ConsecutiveFailures back to 0.
		reauth string
		// failCode: a whole refresh round fails (four attempts) with this code, so the
		// workflow shows DEGRADED on the way; "" when the round absorbs the fault.
		failCode   string
		retryAfter bool
		// What the provider saw of the seed token, and how many introspections.
		seedPresented, seedProcessed, introspections int
	}
	cases := []tcase{
		// Error answers: the provider did not rotate, the lease is released, the next
		// attempt presents the same token at once. All four attempts of the first round
		// fail, then the workflow's backoff retries and succeeds.
		{name: "500", fault: &oauth2test.Fault{Kind: oauth2test.FaultStatus, Status: 500, Count: 4},
			failCode: "http_500", seedPresented: 5, seedProcessed: 1},
		{name: "502", fault: &oauth2test.Fault{Kind: oauth2test.FaultStatus, Status: 502, Count: 4},
			failCode: "http_502", seedPresented: 5, seedProcessed: 1},
		{name: "429 with Retry-After 2s", fault: &oauth2test.Fault{Kind: oauth2test.FaultRateLimit, RetryAfter: 2 * time.Second, Count: 4},
			failCode: "http_429", retryAfter: true, seedPresented: 5, seedProcessed: 1},
		// No answer: the provider may have consumed the token, so the lease stays; the
		// retry waits for it, introspects ("active") and refreshes, inside one round.
		{name: "connection reset", fault: &oauth2test.Fault{Kind: oauth2test.FaultCloseConnection, Count: 1},
			seedPresented: 2, seedProcessed: 1, introspections: 1},
		// Slow but within the 3 s provider timeout: nothing fails.
		{name: "slow answer", fault: &oauth2test.Fault{Kind: oauth2test.FaultLatency, Delay: time.Second, Count: 3},
			seedPresented: 1, seedProcessed: 1},
		// Unusable 2xx: the provider may have rotated, so the lease stays as for no
		// answer: recovery takes a lease period and an introspection.
		{name: "malformed JSON", fault: &oauth2test.Fault{Kind: oauth2test.FaultMalformedJSON, Count: 1},
			seedPresented: 2, seedProcessed: 1, introspections: 1},
		{name: "200 with temporarily_unavailable", fault: &oauth2test.Fault{Kind: oauth2test.FaultErrorIn200, ErrorCode: "temporarily_unavailable", Count: 1},
			seedPresented: 2, seedProcessed: 1, introspections: 1},
		// A permanent code, even in a 200: the grant is dead, a human must reseed.
		{name: "200 with invalid_grant", fault: &oauth2test.Fault{Kind: oauth2test.FaultErrorIn200, ErrorCode: "invalid_grant", Count: 1},
			reauth: "invalid_grant", seedPresented: 1, seedProcessed: 0},
		// No new refresh token in the answer: the old one is kept and used again.
		{name: "no rotation", noRotation: true},
	}
	e := newEnv(t)
	w := e.startWorker()

	// All credentials run at once on the one worker. A watcher per credential polls its
	// status from the start, so that a short DEGRADED spell is seen whatever case the
	// test is checking at the time.
	type outcome struct {
		tc           tcase
		id, seed     string
		fake         *oauth2test.Server
		done         chan struct{}
		final        workflows.Status
		firstFailure *workflows.Status
		elapsed      time.Duration
		timedOut     string
	}
	outcomes := make([]*outcome, len(cases))
	for i, tc := range cases {
		o := &outcome{tc: tc, id: fmt.Sprintf("misbehave-%d", i), done: make(chan struct{})}
		o.fake = startFake(t, oauth2test.Options{AccessLifetime: 3 * time.Second, NoRotation: tc.noRotation})
		if tc.fault != nil {
			o.fake.InjectFault(*tc.fault)
		}
		started := time.Now()
		o.seed = e.startCredential(stack.client, testCredential{id: o.id, fake: o.fake, introspect: true})
		outcomes[i] = o
		go func() {
			defer close(o.done)
			for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
				st, err := queryStatusOn(stack.client, o.id)
				if err != nil {
					o.timedOut = err.Error()
					continue
				}
				o.final = st
				if st.ConsecutiveFailures > 0 && o.firstFailure == nil {
					o.firstFailure = &st
				}
				if tc.reauth != "" && st.State == credential.StateNeedsReauth ||
					tc.reauth == "" && st.Refreshes >= 3 && isActive(st) && st.ConsecutiveFailures == 0 {
					o.elapsed, o.timedOut = time.Since(started), ""
					return
				}
				o.timedOut = fmt.Sprintf("%+v", st)
			}
		}()
	}
	for _, o := range outcomes {
		tc, st := o.tc, &o.final
		t.Run(tc.name, func(t *testing.T) {
			<-o.done
			if o.timedOut != "" {
				t.Fatalf("no outcome within 60s; last seen: %s; %s", o.timedOut, counters(o.fake, o.seed))
			}
			switch {
			case tc.reauth != "":
				if st.LastErrorCode != tc.reauth {
					t.Errorf("NEEDS_REAUTH with code %q, want %q (%s)", st.LastErrorCode, tc.reauth, st.LastError)
				}
			case tc.failCode != "":
				if f := o.firstFailure; f == nil {
					// A DEGRADED state that lasted less than a status poll (a loaded
					// machine answers queries slowly) is still in the history.
					if !failedRoundInHistory(t, o.id, tc.failCode) {
						t.Errorf("never saw the failed round (want code %s), neither in a status nor in the history", tc.failCode)
					}
				} else {
					if f.State != credential.StateDegraded || f.LastErrorCode != tc.failCode {
						t.Errorf("failed round: state %s, code %q; want DEGRADED with %s", f.State, f.LastErrorCode, tc.failCode)
					}
					if tc.retryAfter && f.RetryNotBefore.IsZero() {
						t.Errorf("the failed round did not carry the provider's Retry-After")
					}
				}
			default:
				if f := o.firstFailure; f != nil {
					t.Errorf("a round failed (%s, %q): the fault should have been absorbed within the round", f.LastErrorCode, f.LastError)
				}
			}
			failed := "no failed round"
			if o.firstFailure != nil {
				failed = fmt.Sprintf("failed round: %s %s", o.firstFailure.State, o.firstFailure.LastErrorCode)
			}
			t.Logf("%s after %s (%d refreshes, %s); %s", st.State, o.elapsed.Round(time.Millisecond), st.Refreshes, failed, counters(o.fake, o.seed))
		})
	}
	// The store is read after the worker has stopped, so no refresh is half-way.
	w.stop(t)
	for _, o := range outcomes {
		tc, fake, seed := o.tc, o.fake, o.seed
		if o.timedOut != "" {
			continue
		}
		t.Run("store/"+tc.name, func(t *testing.T) {
			switch {
			case tc.noRotation:
				rec := e.storedRecord(o.id)
				if latest, ok := fake.Latest(o.id); !ok || latest != seed || rec.Secrets.RefreshToken != seed {
					t.Errorf("without rotation the seed must stay the stored and live refresh token")
				}
				if want := int64(fake.Refreshes()) + 1; rec.Version != want || fake.Refreshes() < 3 {
					t.Errorf("store version %d, want %d after %d refreshes", rec.Version, want, fake.Refreshes())
				}
				if fake.Presentations(seed) != fake.Refreshes() || fake.Processed(seed) != fake.Refreshes() || fake.ReuseDetections() != 0 {
					t.Errorf("want the seed presented once per refresh and no reuse detection: %s", counters(fake, seed))
				}
			case tc.reauth != "":
				assertStoreKeptSeed(t, e, o.id, seed)
				if latest, ok := fake.Latest(o.id); !ok || latest != seed || fake.Refreshes() != 0 {
					t.Errorf("the provider should still have the unspent seed live: %s", counters(fake, seed))
				}
			default:
				assertStoreHoldsLatest(t, e, fake, o.id)
			}
			if fake.Presentations(seed) != tc.seedPresented && !tc.noRotation {
				t.Errorf("seed presented %d times, want %d", fake.Presentations(seed), tc.seedPresented)
			}
			if fake.Processed(seed) != tc.seedProcessed && !tc.noRotation {
				t.Errorf("seed processed %d times, want %d", fake.Processed(seed), tc.seedProcessed)
			}
			if fake.Introspections() != tc.introspections {
				t.Errorf("%d introspections, want %d", fake.Introspections(), tc.introspections)
			}
		})
	}
}

// 6. The Temporal server restarts mid-cycle. The worker rides out the outage on its own
// (its polls retry), and the workflow resumes from the server's persisted state.
func TestTemporalServerRestart(t *testing.T) {
	t.Parallel()
	srv := startPrivateServer(t)
	e := newEnv(t)
	e.address = srv.hostPort
	fake := startFake(t, oauth2test.Options{AccessLifetime: 3 * time.Second})
	w := e.startWorker()
	const id = "server-restart"
	seed := e.startCredential(srv.client(), testCredential{id: id, fake: fake, introspect: true})

	waitForStatusOn(t, srv.client(), id, 30*time.Second, "two refreshes", func(s workflows.Status) bool { return s.Refreshes >= 2 })
	// Stop the server mid-cycle, while the next refresh is at the provider (held 2 s):
	// the worker gets the answer and commits during the outage, and cannot report the
	// activity's completion until the server is back, if at all.
	fake.InjectFault(oauth2test.Fault{Kind: oauth2test.FaultLatency, Delay: 2 * time.Second, Count: 1})
	waitFor(t, 30*time.Second, "the third refresh at the provider", func() (bool, string) {
		return fake.InFlight() == 1, counters(fake, seed)
	})
	stoppedAt := time.Now()
	srv.stop()
	stopTook := time.Since(stoppedAt)
	time.Sleep(3 * time.Second)
	atRestart := fake.Refreshes()
	srv.start()
	restartedAt := time.Now()

	waitForStatusOn(t, srv.client(), id, 60*time.Second, "the workflow to learn of the refresh made during the outage", func(s workflows.Status) bool {
		return s.Refreshes >= int64(atRestart)
	})
	caughtUp := time.Since(restartedAt)
	st := waitForStatusOn(t, srv.client(), id, 60*time.Second, "three refreshes after the restart", func(s workflows.Status) bool {
		return s.Refreshes >= int64(atRestart)+3 && isActive(s)
	})
	if st.ConsecutiveFailures != 0 {
		t.Errorf("ConsecutiveFailures %d after the restart, want 0", st.ConsecutiveFailures)
	}
	w.stop(t) // fails the test if the worker died during the outage
	assertStoreHoldsLatest(t, e, fake, id)
	if fake.MaxPresentations() != 1 {
		t.Errorf("a token was presented more than once: %s", counters(fake, seed))
	}
	t.Logf("server stop took %s, down %s; %d provider refreshes before the restart; status caught up %s after the restart; %d refreshes in all; %s",
		stopTook.Round(time.Millisecond), restartedAt.Sub(stoppedAt).Round(time.Millisecond), atRestart, caughtUp.Round(time.Millisecond),
		st.Refreshes, counters(fake, seed))
}

// 7. A storm of refresh-now signals while the credential sleeps is coalesced into a few
// refreshes, never two at once; a refresh update returns the new status.
func TestRefreshNowStorm(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	// Access tokens live a minute, so the credential sleeps ~40 s between scheduled
	// refreshes; each refresh takes a second at the provider, longer than the storm
	// lasts, so the storm overlaps a refresh in flight.
	fake := startFake(t, oauth2test.Options{AccessLifetime: time.Minute})
	fake.InjectFault(oauth2test.Fault{Kind: oauth2test.FaultLatency, Delay: time.Second})
	w := e.startWorker()
	const id = "signal-storm"
	seed := e.startCredential(stack.client, testCredential{id: id, fake: fake, introspect: true})
	before := waitForStatus(t, id, 30*time.Second, "the first refresh", func(s workflows.Status) bool {
		return s.Refreshes == 1 && s.State == credential.StateActive
	})
	providerBefore := fake.Refreshes()

	const senders, perSender = 20, 5
	var wg sync.WaitGroup
	errs := make(chan error, senders*perSender)
	stormStart := time.Now()
	for range senders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range perSender {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				errs <- stack.client.SignalWorkflow(ctx, id, "", workflows.SignalRefreshNow, nil)
				cancel()
			}
		}()
	}
	wg.Wait()
	stormTook := time.Since(stormStart)
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("signal: %v", err)
		}
	}
	// Settled: no refresh requested or running, and the provider quiet for 2 s.
	var st workflows.Status
	last, quietSince := -1, time.Now()
	waitFor(t, 30*time.Second, "the storm to settle", func() (bool, string) {
		if n := fake.Refreshes(); n != last {
			last, quietSince = n, time.Now()
		}
		var err error
		st, err = queryStatus(t, id)
		if err != nil {
			return false, err.Error()
		}
		return st.State == credential.StateActive && !st.RefreshRequested && time.Since(quietSince) > 2*time.Second,
			fmt.Sprintf("%+v", st)
	})
	caused := fake.Refreshes() - providerBefore
	if caused < 1 || caused > 3 {
		t.Errorf("%d refresh-now signals caused %d refreshes, want 1 to 3", senders*perSender, caused)
	}
	if int(st.Refreshes-before.Refreshes) != caused {
		t.Errorf("workflow counted %d refreshes, provider %d", st.Refreshes-before.Refreshes, caused)
	}
	if got := fake.MaxConcurrentFor(id); got != 1 {
		t.Errorf("MaxConcurrentFor = %d, want 1: refreshes overlapped", got)
	}

	// A refresh update waits for its round and returns the status it produced.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	handle, err := stack.client.UpdateWorkflow(ctx, client.UpdateWorkflowOptions{
		WorkflowID:   id,
		UpdateName:   workflows.UpdateRefresh,
		WaitForStage: client.WorkflowUpdateStageCompleted,
	})
	if err != nil {
		t.Fatalf("refresh update: %v", err)
	}
	var updated workflows.Status
	if err := handle.Get(ctx, &updated); err != nil {
		t.Fatalf("refresh update result: %v", err)
	}
	if updated.Refreshes != st.Refreshes+1 || !updated.AccessExpiresAt.After(st.AccessExpiresAt) || updated.State != credential.StateActive {
		t.Errorf("update returned refreshes %d, state %s, access expiry %s; want %d, ACTIVE, later than %s",
			updated.Refreshes, updated.State, updated.AccessExpiresAt, st.Refreshes+1, st.AccessExpiresAt)
	}
	if fake.Refreshes() != providerBefore+caused+1 {
		t.Errorf("the update caused %d provider refreshes, want 1", fake.Refreshes()-providerBefore-caused)
	}
	w.stop(t)
	assertStoreHoldsLatest(t, e, fake, id)
	if fake.MaxConcurrentFor(id) != 1 || fake.MaxPresentations() != 1 {
		t.Errorf("overlap or repeated presentation: max concurrent %d; %s", fake.MaxConcurrentFor(id), counters(fake, seed))
	}
	t.Logf("%d signals in %s caused %d refreshes; update: access expiry %s -> %s; max concurrent %d; %s",
		senders*perSender, stormTook.Round(time.Millisecond), caused, st.AccessExpiresAt.Format(time.RFC3339Nano),
		updated.AccessExpiresAt.Format(time.RFC3339Nano), fake.MaxConcurrentFor(id), counters(fake, seed))
}

// 8. A graceful stop (SIGTERM, as at every deploy) while the provider works on a refresh:
// the provider has already rotated when the worker is told to stop, so the attempt must
// be allowed to finish and commit, not be cancelled with the new token in flight.
func TestGracefulStopFinishesRefresh(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	fake := startFake(t, oauth2test.Options{AccessLifetime: 3 * time.Second})
	// The grant is processed at once; the answer takes 2 s, inside the provider timeout.
	fake.InjectFault(oauth2test.Fault{Kind: oauth2test.FaultLatency, Phase: oauth2test.AfterGrant, Delay: 2 * time.Second, Count: 1})
	w := e.startWorker()
	const id = "graceful-stop"
	seed := e.startCredential(stack.client, testCredential{id: id, fake: fake, introspect: true})

	waitFor(t, 30*time.Second, "the provider to process the first refresh", func() (bool, string) {
		return fake.Processed(seed) == 1 && fake.InFlight() == 1, counters(fake, seed)
	})
	stopAt := time.Now()
	w.stop(t)
	stopTook := time.Since(stopAt)
	rec := e.storedRecord(id)
	latest, _ := fake.Latest(id)
	if rec.Version != 2 || rec.Secrets.RefreshToken != latest {
		t.Fatalf("after a graceful stop mid-refresh the store is at version %d holding %s, the provider's live token is %s: the rotated token was dropped (lease owner %q)",
			rec.Version, oauth2test.Fingerprint(rec.Secrets.RefreshToken), oauth2test.Fingerprint(latest), rec.Lease.Owner)
	}

	// The next worker carries on from the committed version.
	w2 := e.startWorker()
	st := waitForStatus(t, id, 60*time.Second, "refreshes after the restart", func(s workflows.Status) bool {
		return s.Refreshes >= 3 && isActive(s)
	})
	w2.stop(t)
	assertStoreHoldsLatest(t, e, fake, id)
	if fake.MaxPresentations() != 1 {
		t.Errorf("a token was presented more than once: %s", counters(fake, seed))
	}
	t.Logf("stop took %s; %d refreshes; %s", stopTook.Round(time.Millisecond), st.Refreshes, counters(fake, seed))
}

// failedRoundInHistory reports whether a Refresh activity of the credential's runs
// failed, after its retries, with code in its failure message.
func failedRoundInHistory(t *testing.T, id, code string) bool {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, r := range runsOf(t, id) {
		iter := stack.client.GetWorkflowHistory(ctx, id, r.runID, false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
		for iter.HasNext() {
			ev, err := iter.Next()
			if err != nil {
				t.Fatalf("history of %s: %v", id, err)
			}
			if f := ev.GetActivityTaskFailedEventAttributes().GetFailure(); f != nil && strings.Contains(f.GetMessage(), code) {
				return true
			}
		}
	}
	return false
}
