package workflows

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"go.temporal.io/sdk/workflow"

	"github.com/tokenwarden/tokenwarden/activities"
	cred "github.com/tokenwarden/tokenwarden/internal/credential"
)

func TestUnusedDeadline(t *testing.T) {
	t0 := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	month := Timing{RetireAfterUnused: Duration(30 * 24 * time.Hour)}
	for _, tc := range []struct {
		name   string
		st     Status
		timing Timing
		want   time.Time
		ok     bool
	}{
		{"from the seed", Status{SeededAt: t0}, month, t0.Add(30 * 24 * time.Hour), true},
		{"a token API read moves it", Status{SeededAt: t0, LastUsedAt: t0.Add(48 * time.Hour)}, month, t0.Add(32 * 24 * time.Hour), true},
		{"a sink delivery moves it", Status{SeededAt: t0, LastUsedAt: t0.Add(time.Hour), LastDeliveredAt: t0.Add(72 * time.Hour)}, month, t0.Add(33 * 24 * time.Hour), true},
		{"a reseed moves it", Status{SeededAt: t0.Add(96 * time.Hour), LastUsedAt: t0}, month, t0.Add(34 * 24 * time.Hour), true},
		{"0 means never", Status{SeededAt: t0}, Timing{}, time.Time{}, false},
		{"never seeded in this version", Status{LastUsedAt: t0}, month, time.Time{}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := UnusedDeadline(tc.st, tc.timing)
			if ok != tc.ok || !got.Equal(tc.want) {
				t.Fatalf("UnusedDeadline = %s, %v; want %s, %v", got, ok, tc.want, tc.ok)
			}
		})
	}
	// In the schedule: the usage check comes when it is due first, even while parked.
	st := Status{ID: "c1", State: cred.StateNeedsReauth, SeededAt: t0}
	if a, at := NextWakeup(st, month, t0); a != ActionUsageCheck || !at.Equal(t0.Add(30*24*time.Hour)) {
		t.Fatalf("parked, unused: NextWakeup = %s %s", a, at)
	}
	st = Status{ID: "c1", State: cred.StateActive, SeededAt: t0, LastRefreshAt: t0, AccessExpiresAt: t0.Add(time.Hour)}
	withMargins := month
	withMargins.RefreshMargin = Duration(5 * time.Minute)
	if a, _ := NextWakeup(st, withMargins, t0); a != ActionRefresh {
		t.Fatalf("a refresh due first must come first, got %s", a)
	}
}

func (s *credentialSuite) TestUnusedCredentialIsRetired() {
	s.env.SetStartTime(t0)
	s.seeded()
	s.env.OnActivity(s.a.Refresh, mock.Anything, mock.Anything).Return(
		func(ctx context.Context, req activities.RefreshRequest) (activities.RefreshResult, error) {
			now := s.now()
			return activities.RefreshResult{Version: req.ExpectedVersion + 1, RefreshedAt: now, AccessExpiresAt: now.Add(365 * 24 * time.Hour)}, nil
		})
	var checks []time.Time
	s.env.OnActivity(s.a.Usage, mock.Anything, mock.Anything).Return(
		func(ctx context.Context, req activities.UsageRequest) (activities.UsageResult, error) {
			checks = append(checks, s.now())
			// A consumer read the token on day 10, and never again.
			return activities.UsageResult{LastUsedAt: t0.Add(10 * 24 * time.Hour)}, nil
		})
	retired := 0
	var revoke bool
	s.env.OnActivity(s.a.Retire, mock.Anything, mock.Anything).Return(
		func(ctx context.Context, req activities.RetireRequest) (activities.RetireResult, error) {
			retired++
			revoke = req.Revoke
			return activities.RetireResult{DeletedAt: s.now()}, nil
		})
	in := input()
	in.Policy.RetireAfterUnused = dur(30 * 24 * time.Hour) // a credential that refreshes is never retired by default
	s.env.ExecuteWorkflow(WorkflowType, in)

	s.Require().True(s.env.IsWorkflowCompleted())
	s.Require().NoError(s.env.GetWorkflowError())
	var final Status
	s.Require().NoError(s.env.GetWorkflowResult(&final))
	s.Equal(cred.StateRetired, final.State)
	s.Equal(1, retired)
	// Checked at day 30 (the read on day 10 moves the deadline), retired at day 40.
	s.Require().Len(checks, 2)
	s.WithinDuration(t0.Add(30*24*time.Hour), checks[0], time.Minute)
	s.WithinDuration(t0.Add(40*24*time.Hour), checks[1], time.Minute)
	s.Equal([]string{"retired:RETIRED"}, s.events())
	s.Equal("unused", s.notes[0].Code)
	s.False(revoke, "an automatic retirement revokes at the provider only with policy.revoke_on_retire")
}

// Defaults never destroy: only probe-only credentials (seed 004's cleanup) retire when
// unused unless a policy says so; runs recorded before the rule keep the old default.
func TestRetireAfterUnusedDefaults(t *testing.T) {
	month := Duration(DefaultRetireAfterUnused)
	for _, tc := range []struct {
		name      string
		probeOnly bool
		rules     inputRules
		want      Duration
	}{
		{"refreshes", false, currentRules, 0},
		{"probe-only", true, currentRules, month},
		{"refreshes, run started before the rule", false, rulesStrictConfig, month},
		{"refreshes, run started before versioning", false, rulesOriginal, month},
	} {
		if got := (Policy{}).resolve(tc.probeOnly, tc.rules).RetireAfterUnused; got != tc.want {
			t.Errorf("%s: retire_after_unused default %s, want %s", tc.name, got.D(), tc.want.D())
		}
	}
	yes := true
	if !(Policy{RevokeOnRetire: &yes}).Resolve(false).RevokeOnRetire || (Policy{}).Resolve(true).RevokeOnRetire {
		t.Error("revoke_on_retire must be off unless set")
	}
}

// With revoke_on_retire an automatic retirement revokes; a retire signal always does.
func (s *credentialSuite) TestRetirementRevokesWhenAsked() {
	for _, tc := range []struct {
		name   string
		policy func(*Policy)
		signal bool
		want   bool
	}{
		{"unused, revoke_on_retire", func(p *Policy) { yes := true; p.RevokeOnRetire = &yes }, false, true},
		{"retire signal", func(*Policy) {}, true, true},
	} {
		s.Run(tc.name, func() {
			env := s.NewTestWorkflowEnvironment()
			env.RegisterWorkflowWithOptions(CredentialWorkflow, workflow.RegisterOptions{Name: WorkflowType})
			var a *activities.Activities
			env.RegisterActivity(a)
			env.SetStartWorkflowOptions(testStartOptions("cred-1"))
			env.SetStartTime(t0)
			env.OnActivity(a.Seed, mock.Anything, mock.Anything).Return(activities.SeedResult{Version: 1, SeededAt: t0}, nil)
			env.OnActivity(a.Refresh, mock.Anything, mock.Anything).Return(
				func(ctx context.Context, req activities.RefreshRequest) (activities.RefreshResult, error) {
					now := env.Now()
					return activities.RefreshResult{Version: req.ExpectedVersion + 1, RefreshedAt: now, AccessExpiresAt: now.Add(365 * 24 * time.Hour)}, nil
				})
			env.OnActivity(a.Usage, mock.Anything, mock.Anything).Return(activities.UsageResult{}, nil)
			env.OnActivity(a.Notify, mock.Anything, mock.Anything).Return(nil).Maybe()
			var got *bool
			env.OnActivity(a.Retire, mock.Anything, mock.Anything).Return(
				func(ctx context.Context, req activities.RetireRequest) (activities.RetireResult, error) {
					got = &req.Revoke
					return activities.RetireResult{DeletedAt: env.Now()}, nil
				})
			in := input()
			in.Policy.RetireAfterUnused = dur(24 * time.Hour)
			tc.policy(&in.Policy)
			if tc.signal {
				env.RegisterDelayedCallback(func() { env.SignalWorkflow(SignalRetire, nil) }, time.Hour)
			}
			env.ExecuteWorkflow(WorkflowType, in)
			s.Require().True(env.IsWorkflowCompleted())
			s.Require().NotNil(got, "Retire never ran")
			s.Equal(tc.want, *got)
		})
	}
}

func (s *credentialSuite) TestRetireAfterUnusedZeroMeansNever() {
	s.env.SetStartTime(t0)
	s.seeded()
	s.env.OnActivity(s.a.Refresh, mock.Anything, mock.Anything).Return(
		func(ctx context.Context, req activities.RefreshRequest) (activities.RefreshResult, error) {
			now := s.now()
			return activities.RefreshResult{Version: req.ExpectedVersion + 1, RefreshedAt: now, AccessExpiresAt: now.Add(365 * 24 * time.Hour)}, nil
		})
	var st Status
	s.env.RegisterDelayedCallback(func() { st = s.status() }, 100*24*time.Hour)
	s.stopAt(100*24*time.Hour + time.Hour)
	in := input()
	in.Policy.RetireAfterUnused = zero()
	s.env.ExecuteWorkflow(WorkflowType, in)
	s.Equal(cred.StateActive, st.State)
	s.Equal(ActionRefresh, st.NextAction)
}
