package workflows

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/require"
	"github.com/stretchr/testify/suite"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"

	"github.com/tokenwarden/tokenwarden/activities"
	cred "github.com/tokenwarden/tokenwarden/internal/credential"
	"github.com/tokenwarden/tokenwarden/internal/provider"
)

type credentialSuite struct {
	suite.Suite
	testsuite.WorkflowTestSuite
	env *testsuite.TestWorkflowEnvironment
	// clock is env's, for activity mocks: a mock still running when its test's workflow
	// was stopped would otherwise read s.env while the next test's SetupTest replaces it.
	clock atomic.Pointer[testsuite.TestWorkflowEnvironment]
	a     *activities.Activities
	// notes records every notification the workflow sent, in order.
	notes []cred.Notification
}

func TestCredentialWorkflow(t *testing.T) { suite.Run(t, new(credentialSuite)) }

func (s *credentialSuite) SetupTest() {
	s.env = s.NewTestWorkflowEnvironment()
	s.clock.Store(s.env)
	s.env.RegisterWorkflowWithOptions(CredentialWorkflow, workflow.RegisterOptions{Name: WorkflowType})
	s.env.RegisterActivity(s.a)
	s.env.SetStartWorkflowOptions(testStartOptions("cred-1"))
	s.notes = nil
	s.env.OnActivity(s.a.Notify, mock.Anything, mock.Anything).Return(
		func(ctx context.Context, n cred.Notification) error {
			s.notes = append(s.notes, n)
			return nil
		}).Maybe()
}

func (s *credentialSuite) AfterTest(_, _ string) { s.env.AssertExpectations(s.T()) }

var t0 = time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)

func zero() *Duration { d := Duration(0); return &d }

func dur(d time.Duration) *Duration { v := Duration(d); return &v }

func input() CredentialInput {
	return CredentialInput{
		Provider: "oauth2",
		Config:   provider.Config{TokenURL: "https://idp.example/token", ClientID: "app"},
		Policy:   Policy{Jitter: zero()},
		Seed:     &SeedEnvelope{Seed: Seed{RefreshToken: "rt-seed"}},
	}
}

// seeded makes the Seed activity succeed at the test clock's time.
func (s *credentialSuite) seeded() {
	s.env.OnActivity(s.a.Seed, mock.Anything, mock.Anything).Return(
		func(ctx context.Context, req activities.SeedRequest) (activities.SeedResult, error) {
			return activities.SeedResult{Version: 1, SeededAt: s.now()}, nil
		})
}

// refreshLog records the test-clock time of every Refresh call and answers with a
// one-hour token stamped with that time.
type refreshLog struct {
	times   []time.Time
	version int64
}

func (s *credentialSuite) refreshSucceeds(log *refreshLog, lifetime time.Duration) {
	s.env.OnActivity(s.a.Refresh, mock.Anything, mock.Anything).Return(
		func(ctx context.Context, req activities.RefreshRequest) (activities.RefreshResult, error) {
			now := s.now()
			log.times = append(log.times, now)
			s.Equal(log.version+1, req.ExpectedVersion+1, "workflow must pass the version it saw")
			log.version = req.ExpectedVersion + 1
			return activities.RefreshResult{Version: log.version, RefreshedAt: now, AccessExpiresAt: now.Add(lifetime)}, nil
		})
}

// now is the test clock's time, safe to call from activity mocks.
func (s *credentialSuite) now() time.Time { return s.clock.Load().Now() }

func (s *credentialSuite) status() Status {
	v, err := s.env.QueryWorkflow(QueryStatus)
	s.Require().NoError(err)
	var st Status
	s.Require().NoError(v.Get(&st))
	return st
}

func (s *credentialSuite) stopAt(d time.Duration) {
	s.env.RegisterDelayedCallback(s.env.CancelWorkflow, d)
}

func (s *credentialSuite) TestRefreshesAtTheComputedTime() {
	s.env.SetStartTime(t0)
	s.seeded()
	log := &refreshLog{version: 1}
	s.refreshSucceeds(log, time.Hour)
	var mid Status
	s.env.RegisterDelayedCallback(func() { mid = s.status() }, 30*time.Minute)
	s.stopAt(2*time.Hour + time.Minute)
	s.env.ExecuteWorkflow(WorkflowType, input())

	s.Require().True(s.env.IsWorkflowCompleted())
	// Seeded without an access token: refresh at once, then every 40 minutes
	// (1h lifetime, lead max(5m, 20m) = 20m, no jitter).
	want := []time.Time{t0, t0.Add(40 * time.Minute), t0.Add(80 * time.Minute), t0.Add(120 * time.Minute)}
	s.Require().Len(log.times, len(want))
	for i := range want {
		s.WithinDuration(want[i], log.times[i], time.Second, "refresh %d", i)
	}
	s.Equal(cred.StateActive, mid.State)
	s.Equal(int64(2), mid.Version)
	s.Equal(ActionRefresh, mid.NextAction)
	s.WithinDuration(t0.Add(40*time.Minute), mid.NextActionAt, time.Second)
	s.WithinDuration(t0.Add(time.Hour), mid.AccessExpiresAt, time.Second)
}

func (s *credentialSuite) TestSeedWithAccessTokenWaitsForTheSchedule() {
	s.env.SetStartTime(t0)
	s.env.OnActivity(s.a.Seed, mock.Anything, mock.Anything).Return(
		activities.SeedResult{Version: 1, SeededAt: t0, AccessExpiresAt: t0.Add(2 * time.Hour)}, nil)
	log := &refreshLog{version: 1}
	s.refreshSucceeds(log, 2*time.Hour)
	s.stopAt(90 * time.Minute)
	in := input()
	in.Seed.AccessToken, in.Seed.AccessExpiresAt = "at-seed", t0.Add(2*time.Hour)
	s.env.ExecuteWorkflow(WorkflowType, in)
	s.Require().Len(log.times, 1)
	s.WithinDuration(t0.Add(80*time.Minute), log.times[0], time.Second)
}

func (s *credentialSuite) TestTransientFailuresDegradeThenRecover() {
	s.env.SetStartTime(t0)
	s.seeded()
	calls := 0
	s.env.OnActivity(s.a.Refresh, mock.Anything, mock.Anything).Return(
		func(ctx context.Context, req activities.RefreshRequest) (activities.RefreshResult, error) {
			calls++
			if calls <= 6 { // the first round (4 attempts) fails, and 2 attempts of the second
				return activities.RefreshResult{}, temporal.NewApplicationError("provider 502", activities.ErrTypeTransient,
					activities.FailureDetail{Code: "http_502"})
			}
			return activities.RefreshResult{Version: req.ExpectedVersion + 1, RefreshedAt: s.now(), AccessExpiresAt: s.now().Add(time.Hour)}, nil
		})
	var degraded, recovered Status
	// Round 1 (attempts at 0, 1, 3, 7s) fails; the workflow then backs off 10s.
	s.env.RegisterDelayedCallback(func() { degraded = s.status() }, 12*time.Second)
	s.env.RegisterDelayedCallback(func() { recovered = s.status() }, 10*time.Minute)
	s.stopAt(11 * time.Minute)
	s.env.ExecuteWorkflow(WorkflowType, input())

	s.Equal(7, calls)
	s.Equal(cred.StateDegraded, degraded.State)
	s.Equal(1, degraded.ConsecutiveFailures)
	s.Equal("http_502", degraded.LastErrorCode)
	s.Contains(degraded.LastError, "provider 502")
	s.Equal(ActionRetry, degraded.NextAction)
	s.WithinDuration(t0.Add(17*time.Second), degraded.NextActionAt, time.Second)

	s.Equal(cred.StateActive, recovered.State)
	s.Equal(0, recovered.ConsecutiveFailures)
	s.Empty(recovered.LastError)
	s.Equal(int64(2), recovered.Version)
}

func (s *credentialSuite) TestRetryAfterDelaysTheNextRound() {
	s.env.SetStartTime(t0)
	s.seeded()
	var times []time.Time
	s.env.OnActivity(s.a.Refresh, mock.Anything, mock.Anything).Return(
		func(ctx context.Context, req activities.RefreshRequest) (activities.RefreshResult, error) {
			times = append(times, s.now())
			return activities.RefreshResult{}, temporal.NewNonRetryableApplicationError("429", activities.ErrTypeTransient, nil,
				activities.FailureDetail{Code: "http_429", RetryAfter: 5 * time.Minute})
		})
	s.stopAt(6 * time.Minute)
	s.env.ExecuteWorkflow(WorkflowType, input())
	// Non-retryable in the activity's own policy (so one attempt per round): the second
	// round waits for Retry-After (5m), not the 10s backoff.
	s.Require().Len(times, 2)
	s.WithinDuration(times[0].Add(5*time.Minute), times[1], time.Second)
}

func (s *credentialSuite) TestExpiredWhenTheAccessTokenRunsOutWhileFailing() {
	s.env.SetStartTime(t0)
	s.env.OnActivity(s.a.Seed, mock.Anything, mock.Anything).Return(
		activities.SeedResult{Version: 1, SeededAt: t0, AccessExpiresAt: t0.Add(10 * time.Minute)}, nil)
	s.env.OnActivity(s.a.Refresh, mock.Anything, mock.Anything).Return(
		activities.RefreshResult{}, temporal.NewApplicationError("connection reset", activities.ErrTypeTransient, activities.FailureDetail{Code: "network"}))
	var st Status
	s.env.RegisterDelayedCallback(func() { st = s.status() }, 3*time.Hour)
	s.stopAt(3*time.Hour + time.Minute)
	in := input()
	in.Seed.AccessToken, in.Seed.AccessExpiresAt = "at", t0.Add(10*time.Minute)
	s.env.ExecuteWorkflow(WorkflowType, in)
	s.Equal(cred.StateExpired, st.State)
	s.Greater(st.ConsecutiveFailures, 5)
	// The backoff is capped at the 1h default, so rounds keep coming.
	s.True(st.NextActionAt.Sub(st.LastAttemptAt) <= time.Hour)
}

func (s *credentialSuite) TestPermanentFailureParksUntilReseed() {
	s.env.SetStartTime(t0)
	seeds := 0
	s.env.OnActivity(s.a.Seed, mock.Anything, mock.Anything).Return(
		func(ctx context.Context, req activities.SeedRequest) (activities.SeedResult, error) {
			seeds++
			return activities.SeedResult{Version: int64(seeds * 10), SeededAt: s.now()}, nil
		})
	refreshes := 0
	s.env.OnActivity(s.a.Refresh, mock.Anything, mock.Anything).Return(
		func(ctx context.Context, req activities.RefreshRequest) (activities.RefreshResult, error) {
			refreshes++
			if req.ExpectedVersion < 20 { // before the reseed
				return activities.RefreshResult{}, temporal.NewNonRetryableApplicationError("invalid_grant: token revoked",
					activities.ErrTypePermanent, nil, activities.FailureDetail{Code: "invalid_grant"})
			}
			return activities.RefreshResult{Version: req.ExpectedVersion + 1, RefreshedAt: s.now(), AccessExpiresAt: s.now().Add(time.Hour)}, nil
		})
	var parked, afterRefreshNow, afterBadReseed, recovered Status
	s.env.RegisterDelayedCallback(func() { parked = s.status() }, time.Hour)
	s.env.RegisterDelayedCallback(func() { s.env.SignalWorkflow(SignalRefreshNow, nil) }, 2*time.Hour)
	s.env.RegisterDelayedCallback(func() { afterRefreshNow = s.status() }, 3*time.Hour)
	s.env.RegisterDelayedCallback(func() { s.env.SignalWorkflow(SignalReseed, map[string]any{"refresh_token": 42}) }, 4*time.Hour)
	s.env.RegisterDelayedCallback(func() { afterBadReseed = s.status() }, 5*time.Hour)
	s.env.RegisterDelayedCallback(func() { s.env.SignalWorkflow(SignalReseed, Seed{RefreshToken: "rt-new"}) }, 6*time.Hour)
	s.env.RegisterDelayedCallback(func() { recovered = s.status() }, 6*time.Hour+time.Minute)
	s.stopAt(6*time.Hour + 10*time.Minute)
	s.env.ExecuteWorkflow(WorkflowType, input())

	s.Equal(cred.StateNeedsReauth, parked.State)
	s.Equal("invalid_grant", parked.LastErrorCode)
	// Parked: nothing happens but the daily reminder of the incident.
	s.Equal(ActionRemind, parked.NextAction)
	s.Require().NotNil(parked.Incident)
	s.Equal(cred.StateNeedsReauth, parked.Incident.Kind)
	s.WithinDuration(parked.Incident.Since.Add(24*time.Hour), parked.NextActionAt, time.Second)
	s.Equal(cred.StateNeedsReauth, afterRefreshNow.State, "refresh-now must not present a dead grant")
	s.Equal(cred.StateNeedsReauth, afterBadReseed.State)
	s.Contains(afterBadReseed.LastError, "reseed signal rejected")
	s.Equal(cred.StateActive, recovered.State)
	s.Equal(int64(21), recovered.Version)
	s.Equal(2, seeds)
	s.Equal(2, refreshes, "one rejected refresh, one after the reseed; none while parked")
}

func (s *credentialSuite) TestContinueAsNewServesPendingSignalsFirst() {
	s.env.SetStartTime(t0)
	seeds := 0
	s.env.OnActivity(s.a.Seed, mock.Anything, mock.Anything).Return(
		func(ctx context.Context, req activities.SeedRequest) (activities.SeedResult, error) {
			seeds++
			return activities.SeedResult{Version: int64(100 * seeds), SeededAt: s.now()}, nil
		})
	refreshes := 0
	s.env.OnActivity(s.a.Refresh, mock.Anything, mock.Anything).Return(
		func(ctx context.Context, req activities.RefreshRequest) (activities.RefreshResult, error) {
			refreshes++
			now := s.now()
			if refreshes == 2 {
				// Arrive while the refresh runs; the server then suggests continue-as-new.
				s.env.SignalWorkflow(SignalRefreshNow, nil)
				s.env.SignalWorkflow(SignalReseed, Seed{RefreshToken: "rt-reseeded"})
				s.env.SetContinueAsNewSuggested(true)
			}
			return activities.RefreshResult{Version: req.ExpectedVersion + 1, RefreshedAt: now, AccessExpiresAt: now.Add(time.Hour)}, nil
		})
	s.env.ExecuteWorkflow(WorkflowType, input())

	s.Require().True(s.env.IsWorkflowCompleted())
	var can *workflow.ContinueAsNewError
	s.Require().ErrorAs(s.env.GetWorkflowError(), &can)
	var next CredentialInput
	s.Require().NoError(converter.GetDefaultDataConverter().FromPayloads(can.Input, &next))
	s.Nil(next.Seed, "secrets must not be carried into the next run")
	s.Require().NotNil(next.Carried)
	s.Equal(2, seeds, "the reseed that arrived before continue-as-new must be applied in this run")
	s.Equal(2, refreshes, "the refresh-now that arrived during a refresh is coalesced into it")
	s.Equal(int64(200), next.Carried.Version)
	s.True(next.Carried.RefreshRequested, "the reseed's follow-up refresh travels to the next run")
	s.Equal(int64(2), next.Carried.Refreshes)
	s.Equal(cred.StateActive, next.Carried.State)
	s.Equal(1, next.Carried.Runs)
	s.Equal("cred-1", next.Carried.ID)
}

func (s *credentialSuite) TestRefreshNowStormIsCoalesced() {
	s.env.SetStartTime(t0)
	s.seeded()
	inFlight, maxInFlight := 0, 0
	var times []time.Time
	s.env.OnActivity(s.a.Refresh, mock.Anything, mock.Anything).Return(
		func(ctx context.Context, req activities.RefreshRequest) (activities.RefreshResult, error) {
			inFlight++
			maxInFlight = max(maxInFlight, inFlight)
			defer func() { inFlight-- }()
			times = append(times, s.now())
			if len(times) == 2 {
				for i := 0; i < 100; i++ {
					s.env.SignalWorkflow(SignalRefreshNow, nil)
				}
			}
			return activities.RefreshResult{Version: req.ExpectedVersion + 1, RefreshedAt: s.now(), AccessExpiresAt: s.now().Add(time.Hour)}, nil
		})
	// Another storm while the credential sleeps: one refresh serves it.
	s.env.RegisterDelayedCallback(func() {
		for i := 0; i < 100; i++ {
			s.env.SignalWorkflow(SignalRefreshNow, nil)
		}
	}, 10*time.Minute)
	var st Status
	s.env.RegisterDelayedCallback(func() { st = s.status() }, 15*time.Minute)
	s.stopAt(16 * time.Minute)
	s.env.ExecuteWorkflow(WorkflowType, input())
	// The storm at 10m causes one refresh; the second storm, raised while that refresh
	// runs, is coalesced into it.
	s.Equal(1, maxInFlight)
	s.Require().Len(times, 2, "the seed's refresh and one for both storms; got %v", times)
	s.WithinDuration(t0.Add(10*time.Minute), times[1], time.Second)
	s.Equal(int64(2), st.Refreshes)
	s.False(st.RefreshRequested)
}

func (s *credentialSuite) TestRefreshUpdateReturnsTheNewStatus() {
	s.env.SetStartTime(t0)
	s.seeded()
	log := &refreshLog{version: 1}
	s.refreshSucceeds(log, time.Hour)
	var got Status
	var updateErr error
	s.env.RegisterDelayedCallback(func() {
		s.env.UpdateWorkflow(UpdateRefresh, "u1", &testsuite.TestUpdateCallback{
			OnReject:   func(err error) { updateErr = err },
			OnComplete: func(v any, err error) { got, _ = v.(Status); updateErr = err },
		})
	}, 10*time.Minute)
	s.stopAt(11 * time.Minute)
	s.env.ExecuteWorkflow(WorkflowType, input())
	s.Require().NoError(updateErr)
	s.Require().Len(log.times, 2, "the seed refresh and the one the update asked for")
	s.WithinDuration(t0.Add(10*time.Minute), log.times[1], time.Second)
	s.Equal(int64(3), got.Version)
	s.Equal(cred.StateActive, got.State)
	s.WithinDuration(t0.Add(70*time.Minute), got.AccessExpiresAt, time.Second)
}

func (s *credentialSuite) TestRefreshUpdateRejectedWhileParked() {
	s.env.SetStartTime(t0)
	s.seeded()
	calls := 0
	s.env.OnActivity(s.a.Refresh, mock.Anything, mock.Anything).Return(
		func(ctx context.Context, req activities.RefreshRequest) (activities.RefreshResult, error) {
			calls++
			return activities.RefreshResult{}, temporal.NewNonRetryableApplicationError("invalid_grant", activities.ErrTypePermanent, nil)
		})
	var rejected error
	s.env.RegisterDelayedCallback(func() {
		s.env.UpdateWorkflow(UpdateRefresh, "u1", &testsuite.TestUpdateCallback{
			OnReject:   func(err error) { rejected = err },
			OnComplete: func(any, error) {},
		})
	}, time.Hour)
	s.stopAt(2 * time.Hour)
	s.env.ExecuteWorkflow(WorkflowType, input())
	s.Require().Error(rejected)
	s.Contains(rejected.Error(), "needs a reseed")
	s.Equal(1, calls)
}

func (s *credentialSuite) TestCarriedStatusResumes() {
	s.env.SetStartTime(t0)
	log := &refreshLog{version: 7}
	s.refreshSucceeds(log, time.Hour)
	s.stopAt(time.Minute)
	in := input()
	in.Seed = nil
	in.Carried = &Status{ID: "cred-1", Provider: "oauth2", State: cred.StateActive, Version: 7, Runs: 3,
		LastRefreshAt: t0.Add(-time.Hour), AccessExpiresAt: t0.Add(10 * time.Minute), RefreshRequested: true}
	var st Status
	s.env.RegisterDelayedCallback(func() { st = s.status() }, 30*time.Second)
	s.env.SetContinuedExecutionRunID("previous-run")
	s.env.ExecuteWorkflow(WorkflowType, in)
	s.Require().Len(log.times, 1, "the carried refresh request is served at once")
	s.Equal(int64(8), st.Version)
	s.Equal(4, st.Runs)
}

func (s *credentialSuite) TestStatusAnswersWhileRefreshing() {
	s.env.SetStartTime(t0)
	s.seeded()
	var during Status
	s.env.OnActivity(s.a.Refresh, mock.Anything, mock.Anything).Return(
		func(ctx context.Context, req activities.RefreshRequest) (activities.RefreshResult, error) {
			during = s.status()
			return activities.RefreshResult{Version: 2, RefreshedAt: s.now(), AccessExpiresAt: s.now().Add(time.Hour)}, nil
		}).Once()
	s.stopAt(time.Minute)
	s.env.ExecuteWorkflow(WorkflowType, input())
	s.Equal(cred.StateRefreshing, during.State)
}

func (s *credentialSuite) TestInvalidInputFailsFastNamingTheField() {
	for _, tc := range []struct {
		name  string
		edit  func(*CredentialInput)
		field string
	}{
		{"unknown provider", func(in *CredentialInput) { in.Provider = "myspace" }, "provider"},
		{"missing refresh token", func(in *CredentialInput) { in.Seed.RefreshToken, in.Seed.ClientSecret = "", "cs" }, "seed.refresh_token"},
		{"malformed sealed seed", func(in *CredentialInput) { in.Seed = &SeedEnvelope{Sealed: "tw2:k:AAAA"} }, "seed.sealed"},
		{"sealed and plaintext", func(in *CredentialInput) { in.Seed.Sealed = "tw1:k:AAAA" }, "seed"},
		{"missing seed", func(in *CredentialInput) { in.Seed = nil }, "seed"},
		{"zero margin", func(in *CredentialInput) { in.Policy.RefreshMargin = zero() }, "policy.refresh_margin"},
		{"negative retry", func(in *CredentialInput) { in.Policy.RetryInitial = dur(-time.Second) }, "policy.retry_initial"},
		{"ftp token url", func(in *CredentialInput) { in.Config.TokenURL = "ftp://idp.example/token" }, "config.token_url"},
		{"relative token url", func(in *CredentialInput) { in.Config.TokenURL = "/token" }, "config.token_url"},
		{"id mismatch", func(in *CredentialInput) { in.ID = "other" }, "id"},
	} {
		s.Run(tc.name, func() {
			env := s.NewTestWorkflowEnvironment()
			env.RegisterWorkflowWithOptions(CredentialWorkflow, workflow.RegisterOptions{Name: WorkflowType})
			env.SetStartWorkflowOptions(testStartOptions("cred-1"))
			in := input()
			tc.edit(&in)
			env.ExecuteWorkflow(WorkflowType, in)
			s.Require().True(env.IsWorkflowCompleted())
			err := env.GetWorkflowError()
			var appErr *temporal.ApplicationError
			s.Require().ErrorAs(err, &appErr)
			s.Equal(ErrTypeInvalidInput, appErr.Type())
			s.True(appErr.NonRetryable())
			s.Contains(appErr.Error(), tc.field+":")
		})
	}
}

// Carried state taken from a workflow input that no continue-as-new of this credential
// produced is how a namespace writer would hijack a credential's stored secrets (its
// ID is what the store is read by): refused, whatever else the input says.
func (s *credentialSuite) TestCarriedStatusRefusedOutsideContinueAsNew() {
	carried := func(id string) *Status {
		return &Status{ID: id, Provider: "oauth2", State: cred.StateActive, Version: 1000000}
	}
	for _, tc := range []struct {
		name, continuedFrom string
		carried             *Status
		field               string
	}{
		{"started by hand", "", carried("cred-1"), "carried:"},
		{"started by hand with another credential's ID", "", carried("victim"), "carried:"},
		{"continued, but carrying another credential", "previous-run", carried("victim"), "carried.id:"},
	} {
		s.Run(tc.name, func() {
			env := s.NewTestWorkflowEnvironment()
			env.RegisterWorkflowWithOptions(CredentialWorkflow, workflow.RegisterOptions{Name: WorkflowType})
			var a *activities.Activities
			env.RegisterActivity(a)
			env.SetStartWorkflowOptions(testStartOptions("cred-1"))
			if tc.continuedFrom != "" {
				env.SetContinuedExecutionRunID(tc.continuedFrom)
			}
			called := false
			env.SetOnActivityStartedListener(func(*activity.Info, context.Context, converter.EncodedValues) { called = true })
			in := input()
			in.Seed = nil
			in.Config.TokenURL = "http://127.0.0.1:9600/token"
			in.Carried = tc.carried
			env.ExecuteWorkflow(WorkflowType, in)
			s.Require().True(env.IsWorkflowCompleted())
			var appErr *temporal.ApplicationError
			s.Require().ErrorAs(env.GetWorkflowError(), &appErr)
			s.Equal(ErrTypeInvalidInput, appErr.Type())
			s.True(appErr.NonRetryable())
			s.Contains(appErr.Error(), tc.field)
			s.False(called, "no activity may run for a refused input")
		})
	}
}

// A sealed seed passes the workflow untouched: only the Seed activity can open it.
func (s *credentialSuite) TestSealedSeedGoesToTheActivityAsIs() {
	s.env.SetStartTime(t0)
	sealed := SeedEnvelope{Sealed: "tw1:key-1:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8"}
	var got activities.SeedRequest
	s.env.OnActivity(s.a.Seed, mock.Anything, mock.Anything).Return(
		func(ctx context.Context, req activities.SeedRequest) (activities.SeedResult, error) {
			got = req
			return activities.SeedResult{Version: 1, SeededAt: s.now(), AccessToken: true, AccessExpiresAt: s.now().Add(time.Hour)}, nil
		}).Once()
	var st Status
	s.env.RegisterDelayedCallback(func() { st = s.status() }, 30*time.Second)
	s.stopAt(time.Minute)
	in := input()
	in.Seed = &sealed
	s.env.ExecuteWorkflow(WorkflowType, in)
	s.Equal(sealed, got.Seed)
	s.Equal(in.Config, got.Config)
	s.Equal(cred.StateActive, st.State)
	s.False(st.RefreshRequested, "a seed that brought an access token needs no refresh at once")
}

func TestSeedValidateNeverEchoesTheSecret(t *testing.T) {
	err := ValidateSeed("oauth2", provider.Config{}, Seed{RefreshToken: " secret-value "})
	require.Error(t, err)
	require.NotContains(t, err.Error(), "secret-value")
}
