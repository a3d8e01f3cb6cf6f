package e2e

// Many workers: two worker processes on one task queue share one PostgreSQL
// token store and one key file. One of them is killed with SIGKILL while the provider
// holds one of its refresh requests; the survivor must take every credential over
// (including the one whose attempt died at the provider), and nothing may be refreshed
// twice or lost.

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"

	"github.com/tokenwarden/tokenwarden/activities"
	"github.com/tokenwarden/tokenwarden/internal/credential"
	"github.com/tokenwarden/tokenwarden/internal/provider"
	"github.com/tokenwarden/tokenwarden/internal/provider/oauth2/oauth2test"
	"github.com/tokenwarden/tokenwarden/internal/store"
	"github.com/tokenwarden/tokenwarden/internal/store/storetest"
	"github.com/tokenwarden/tokenwarden/workflows"
)

// startMultiCredential is startCredential with the policy of the many-workers test
// (retry_max 3s) and introspection on.
func (e *env) startMultiCredential(fake *oauth2test.Server, id string) (seed string) {
	e.t.Helper()
	seed = fake.Seed(id)
	dur := func(d time.Duration) *workflows.Duration { v := workflows.Duration(d); return &v }
	in := workflows.CredentialInput{
		Provider: "oauth2",
		Config: provider.Config{TokenURL: fake.URL() + oauth2test.TokenPath, ClientID: clientID,
			IntrospectionURL: fake.IntrospectionURL()},
		Policy: workflows.Policy{
			RefreshMargin: dur(time.Second),
			Jitter:        dur(200 * time.Millisecond),
			RetryInitial:  dur(time.Second),
			RetryMax:      dur(3 * time.Second),
		},
	}
	in.Seed = sealedSeed(e.t, id, in, workflows.Seed{RefreshToken: seed, ClientSecret: clientSecret})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := stack.client.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: id, TaskQueue: e.taskQueue},
		workflows.WorkflowType, in); err != nil {
		e.t.Fatalf("start credential %s: %v", id, err)
	}
	e.t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = stack.client.TerminateWorkflow(ctx, id, "", "test finished")
	})
	return seed
}

// commits counts the "refresh committed" lines in a worker's log.
func commits(w *worker) int {
	return strings.Count(w.output.String(), `msg="refresh committed"`)
}

// refreshCounts queries every credential's status; a query that fails is retried until
// timeout.
func refreshCounts(t *testing.T, ids []string, timeout time.Duration) map[string]workflows.Status {
	t.Helper()
	out := make(map[string]workflows.Status, len(ids))
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, id := range ids {
		wg.Add(1)
		go func() {
			defer wg.Done()
			deadline := time.Now().Add(timeout)
			for {
				st, err := queryStatus(t, id)
				if err == nil {
					mu.Lock()
					out[id] = st
					mu.Unlock()
					return
				}
				if time.Now().After(deadline) {
					t.Errorf("query %s: %v", id, err)
					return
				}
				time.Sleep(200 * time.Millisecond)
			}
		}()
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	return out
}

func interruptedParked(s workflows.Status) bool {
	return s.State == credential.StateNeedsReauth && strings.Contains(s.LastError, activities.ReasonInterruptedRefresh)
}

// pendingRefreshWorkerPID returns the PID of the worker running the credential's
// started activity (from its SDK identity, "pid@host@queue"), or 0.
func pendingRefreshWorkerPID(t *testing.T, id string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	d, err := stack.client.DescribeWorkflow(ctx, id, "")
	if err != nil {
		return 0, err.Error()
	}
	for _, pa := range d.RawResponse.GetPendingActivities() {
		if pa.GetState() != enumspb.PENDING_ACTIVITY_STATE_STARTED {
			continue
		}
		ident := pa.GetLastWorkerIdentity()
		pidText, _, _ := strings.Cut(ident, "@")
		pid, err := strconv.Atoi(pidText)
		if err != nil {
			return 0, "unparsable worker identity " + ident
		}
		return pid, fmt.Sprintf("%s attempt %d on %s", pa.GetActivityType().GetName(), pa.GetAttempt(), ident)
	}
	return 0, fmt.Sprintf("no started activity among %d pending", len(d.RawResponse.GetPendingActivities()))
}

func TestMultiWorkerPostgresKill9(t *testing.T) {
	t.Parallel()
	const numCreds = 12
	schema, dsn := storetest.PostgresSchema(t)
	e := newEnv(t)
	fake := startFake(t, oauth2test.Options{AccessLifetime: 3 * time.Second})
	pgEnv := []string{"TOKENWARDEN_STORE=postgres", "TOKENWARDEN_POSTGRES_DSN=" + dsn}

	workers := [2]*worker{e.startWorkerBin(stack.workerBin, pgEnv...), e.startWorkerBin(stack.workerBin, pgEnv...)}
	// Both poll before the first credential starts, so that neither gets all the work.
	waitFor(t, 60*time.Second, "both workers to start", func() (bool, string) {
		a, b := workers[0].output.String(), workers[1].output.String()
		return strings.Contains(a, "worker started") && strings.Contains(b, "worker started"), a + "\n" + b
	})

	ids := make([]string, numCreds)
	for i := range ids {
		ids[i] = fmt.Sprintf("mw-%02d", i)
		e.startMultiCredential(fake, ids[i])
	}
	started := time.Now()

	// Several cycles on both workers.
	waitFor(t, 90*time.Second, "three refreshes of every credential, and commits on both workers", func() (bool, string) {
		sts := refreshCounts(t, ids, 30*time.Second)
		minR := int64(1 << 62)
		for _, st := range sts {
			minR = min(minR, st.Refreshes)
		}
		a, b := commits(workers[0]), commits(workers[1])
		return minR >= 3 && a > 0 && b > 0, fmt.Sprintf("fewest refreshes %d; commits %d / %d", minR, a, b)
	})
	t.Logf("warm-up: %s for 3 cycles of %d credentials; commits per worker %d / %d",
		time.Since(started).Round(time.Millisecond), numCreds, commits(workers[0]), commits(workers[1]))

	// Hold the next refresh request at the provider, before the grant, far beyond the
	// provider timeout; find whose request it is and which worker sent it.
	fake.InjectFault(oauth2test.Fault{Kind: oauth2test.FaultLatency, Phase: oauth2test.BeforeGrant, Delay: time.Minute, Count: 1})
	var held string
	waitFor(t, 30*time.Second, "a refresh request held by the provider", func() (bool, string) {
		if fake.PendingFaults() != 0 || fake.InFlight() == 0 {
			return false, fmt.Sprintf("%d faults pending, %d requests in flight", fake.PendingFaults(), fake.InFlight())
		}
		for _, id := range ids {
			if latest, ok := fake.Latest(id); ok && fake.Presentations(latest) >= 1 && fake.Processed(latest) == 0 {
				held = id
				return true, ""
			}
		}
		return false, "the held token not identified yet"
	})
	heldAt := time.Now() // within waitFor's 200 ms poll of the request's arrival
	victim := -1
	var where string
	waitFor(t, 2*time.Second, "the worker running "+held+"'s refresh", func() (bool, string) {
		var pid int
		pid, where = pendingRefreshWorkerPID(t, held)
		for i, w := range workers {
			if pid != 0 && w.cmd.Process.Pid == pid {
				victim = i
			}
		}
		return victim >= 0, where
	})
	survivor := 1 - victim
	// The baseline, taken just before the kill (afterwards, queries may wait on the dead
	// worker's sticky queue).
	before := refreshCounts(t, ids, 30*time.Second)
	heldToken, _ := fake.Latest(held)
	victimCommits := commits(workers[victim])
	survivorCommitsAtKill := commits(workers[survivor])
	// Watch the provider for each credential's first refresh after the kill: a new
	// latest token. Cheaper and more precise than status queries, which may wait on the
	// dead worker's sticky queue. takeover is read once the watcher has stopped.
	latestAtKill := map[string]string{}
	for _, id := range ids {
		latestAtKill[id], _ = fake.Latest(id)
	}
	takeover := make(map[string]time.Duration, len(ids))
	watchDone := make(chan struct{})
	watchStopped := make(chan struct{})
	workers[victim].kill9(t)
	killedAt := time.Now()
	go func() {
		defer close(watchStopped)
		for {
			select {
			case <-watchDone:
				return
			case <-time.After(20 * time.Millisecond):
			}
			for _, id := range ids {
				if _, seen := takeover[id]; !seen {
					if l, _ := fake.Latest(id); l != latestAtKill[id] {
						takeover[id] = time.Since(killedAt)
					}
				}
			}
		}
	}()
	t.Logf("killed worker %d (pid %d) %s after the test saw the provider holding %s's request (%s); %s",
		victim, workers[victim].cmd.Process.Pid, killedAt.Sub(heldAt).Round(time.Millisecond), held, where, counters(fake, heldToken))

	// The survivor takes over: every credential refreshes at least twice more, the held
	// one after its attempt's heartbeat timeout and lease.
	waitFor(t, 120*time.Second, "two refreshes of every credential after the kill", func() (bool, string) {
		sts := refreshCounts(t, ids, 30*time.Second)
		done := true
		var lag []string
		for _, id := range ids {
			st := sts[id]
			if interruptedParked(st) {
				continue
			}
			if st.State == credential.StateNeedsReauth {
				t.Fatalf("%s parked for another reason than an interrupted refresh: %q (code %s)", id, st.LastError, st.LastErrorCode)
			}
			if st.Refreshes < before[id].Refreshes+2 {
				done = false
				lag = append(lag, fmt.Sprintf("%s %d->%d %s", id, before[id].Refreshes, st.Refreshes, st.State))
			}
		}
		return done, strings.Join(lag, ", ")
	})
	survivalPhase := time.Since(killedAt)
	close(watchDone)
	<-watchStopped
	var firstAll time.Duration
	var fastest []string
	for _, id := range ids {
		d, ok := takeover[id]
		if !ok {
			continue // parked: no new token
		}
		firstAll = max(firstAll, d)
		fastest = append(fastest, fmt.Sprintf("%s %s", id, d.Round(10*time.Millisecond)))
	}
	survivorCommits := commits(workers[survivor])
	if commits(workers[victim]) != victimCommits {
		t.Errorf("the killed worker's log grew after the kill")
	}
	if survivorCommits <= survivorCommitsAtKill {
		t.Errorf("the survivor committed nothing after the kill")
	}
	t.Logf("survivor (worker %d) alone for %s: %d commits (%d before the kill); the survivor refreshed %s (the held one) %s after the kill, "+
		"every credential by %s; first refresh after the kill per credential: %s",
		survivor, survivalPhase.Round(time.Millisecond), survivorCommits-survivorCommitsAtKill, survivorCommitsAtKill,
		held, takeover[held].Round(time.Millisecond), firstAll.Round(time.Millisecond), strings.Join(fastest, ", "))

	// Restart the killed worker; it must take work again.
	restarted := e.startWorkerBin(stack.workerBin, pgEnv...)
	restartedAt := time.Now()
	waitFor(t, 60*time.Second, "the restarted worker to commit a refresh", func() (bool, string) {
		return commits(restarted) > 0, fmt.Sprintf("%d commits", commits(restarted))
	})
	firstCommit := time.Since(restartedAt)
	beforeEnd := refreshCounts(t, ids, 30*time.Second)
	waitFor(t, 60*time.Second, "one more refresh of every credential with both workers", func() (bool, string) {
		sts := refreshCounts(t, ids, 30*time.Second)
		for _, id := range ids {
			if st := sts[id]; !interruptedParked(st) && st.Refreshes <= beforeEnd[id].Refreshes {
				return false, fmt.Sprintf("%s at %d", id, st.Refreshes)
			}
		}
		return true, ""
	})

	final := refreshCounts(t, ids, 30*time.Second)
	parked := map[string]bool{}
	var total int64
	for _, id := range ids {
		st := final[id]
		total += st.Refreshes
		switch {
		case isActive(st):
		case interruptedParked(st):
			parked[id] = true
			if st.LastErrorCode != "refresh_token_consumed" {
				t.Errorf("%s parked with code %q, want refresh_token_consumed", id, st.LastErrorCode)
			}
			t.Logf("%s parked (the documented interrupted case): %q", id, st.LastError)
		default:
			t.Errorf("%s is %s: %q (code %s)", id, st.State, st.LastError, st.LastErrorCode)
		}
	}
	workers[survivor].stop(t)
	restarted.stop(t)
	stoppedAt := time.Now()

	// The store, read after both workers stopped, against the provider.
	recs := postgresRecords(t, dsn, schema, ids)
	var storedRefreshes int64
	for _, id := range ids {
		rec, found := recs[id]
		if !found {
			continue
		}
		storedRefreshes += rec.Version - 1
		if rec.Lease.Owner != "" {
			t.Errorf("%s: the store still holds a lease by %s after both workers stopped", id, rec.Lease.Owner)
		}
		latest, ok := fake.Latest(id)
		if parked[id] {
			// The provider consumed the stored token and its successor died with the worker.
			if ok && rec.Secrets.RefreshToken == latest || fake.Processed(rec.Secrets.RefreshToken) != 1 {
				t.Errorf("%s parked, but the stored token %s is not the one consumed once by the interrupted refresh (processed %d, latest %s)",
					id, oauth2test.Fingerprint(rec.Secrets.RefreshToken), fake.Processed(rec.Secrets.RefreshToken), oauth2test.Fingerprint(latest))
			}
			continue
		}
		if !ok {
			t.Errorf("the provider has no live refresh token for %s (family revoked: %v)", id, fake.Revoked(id))
			continue
		}
		if rec.Secrets.RefreshToken != latest {
			t.Errorf("%s: store holds refresh token %s, the provider's live one is %s",
				id, oauth2test.Fingerprint(rec.Secrets.RefreshToken), oauth2test.Fingerprint(latest))
		}
		if rec.Version < final[id].Version {
			t.Errorf("%s: store version %d, older than the %d the workflow reported", id, rec.Version, final[id].Version)
		}
	}
	if got, want := int64(fake.Refreshes()), storedRefreshes+int64(len(parked)); got != want {
		t.Errorf("the provider refreshed %d times, the store holds %d refreshes plus %d lost to interrupted refreshes", got, storedRefreshes, len(parked))
	}
	if got := fake.MaxProcessed(); got != 1 {
		t.Errorf("the provider processed some refresh token %d times, want once each", got)
	}
	if got := fake.ReuseDetections(); got != 0 {
		t.Errorf("the provider detected %d refresh-token reuses, want 0", got)
	}
	if fake.Presentations(heldToken) != 2 || fake.Processed(heldToken) != 1 {
		t.Errorf("the held token of %s: want presented twice (into the kill, then by the survivor) and processed once: %s",
			held, counters(fake, heldToken))
	}

	perWorker := []int{victimCommits, commits(workers[survivor]), commits(restarted)}
	if perWorker[0] == 0 || perWorker[1] == 0 {
		t.Errorf("refresh commits per worker %v: both workers should have refreshed", perWorker)
	}
	if logged := int64(perWorker[0] + perWorker[1] + perWorker[2]); logged > storedRefreshes || storedRefreshes-logged > 1 {
		// A kill between a commit and its log line would explain one missing line.
		t.Errorf("%d \"refresh committed\" lines in the workers' logs, %d refreshes in the store", logged, storedRefreshes)
	}
	t.Logf("refresh commits: killed worker %d before the kill, survivor %d (%d alone after the kill), restarted %d (first %s after its start); "+
		"%d credentials, %d refreshes in workflow status, %d in the store, %d at the provider, %d parked; run %s; %s",
		perWorker[0], perWorker[1], survivorCommits-survivorCommitsAtKill, perWorker[2], firstCommit.Round(time.Millisecond),
		numCreds, total, storedRefreshes, fake.Refreshes(), len(parked), stoppedAt.Sub(started).Round(time.Second),
		fmt.Sprintf("presentations %d, introspections %d, max processed %d, reuse %d",
			fake.TotalPresentations(), fake.Introspections(), fake.MaxProcessed(), fake.ReuseDetections()))
}

// postgresRecords reads the credentials' records from the test's PostgreSQL schema, once
// the workers have stopped; a record that cannot be read is an error of the test.
func postgresRecords(t *testing.T, dsn, schema string, ids []string) map[string]store.Record {
	t.Helper()
	s, err := store.OpenPostgres(context.Background(), dsn, stack.ring, nil)
	if err != nil {
		t.Fatalf("open the PostgreSQL store (schema %s): %v", schema, err)
	}
	defer s.Close()
	recs := make(map[string]store.Record, len(ids))
	for _, id := range ids {
		rec, err := s.Get(context.Background(), id)
		if err != nil {
			t.Errorf("read %s from the store: %v", id, err)
			continue
		}
		recs[id] = rec
	}
	return recs
}
