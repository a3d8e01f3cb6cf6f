package workflows

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"

	"github.com/tokenwarden/tokenwarden/activities"
	cred "github.com/tokenwarden/tokenwarden/internal/credential"
)

func (s *credentialSuite) events() []string {
	var out []string
	for _, n := range s.notes {
		out = append(out, n.Event+":"+string(n.State))
	}
	return out
}

func (s *credentialSuite) TestDegradedIncidentRemindersAndOneRecovery() {
	s.env.SetStartTime(t0)
	s.seeded()
	recoverAt := t0.Add(5*time.Hour + 30*time.Minute)
	s.env.OnActivity(s.a.Refresh, mock.Anything, mock.Anything).Return(
		func(ctx context.Context, req activities.RefreshRequest) (activities.RefreshResult, error) {
			now := s.now()
			if now.Before(recoverAt) {
				return activities.RefreshResult{}, temporal.NewNonRetryableApplicationError("provider down", activities.ErrTypeTransient,
					nil, activities.FailureDetail{Code: "http_503"})
			}
			return activities.RefreshResult{Version: req.ExpectedVersion + 1, RefreshedAt: now, AccessExpiresAt: now.Add(24 * time.Hour)}, nil
		})
	s.stopAt(6 * time.Hour)
	in := input()
	in.Policy.ReminderInterval = dur(time.Hour)
	in.Policy.RetryMax = dur(10 * time.Minute)
	s.env.ExecuteWorkflow(WorkflowType, in)

	s.Equal([]string{
		"incident:DEGRADED",
		"reminder:DEGRADED", "reminder:DEGRADED", "reminder:DEGRADED", "reminder:DEGRADED", "reminder:DEGRADED",
		"recovered:ACTIVE",
	}, s.events())
	incident := s.notes[0]
	s.Equal(3, incident.Failures, "an incident starts at the third failed round, not before")
	s.Equal("http_503", incident.Code)
	s.Equal("starter reseed cred-1 -secrets -", incident.ReseedCommand)
	for i, n := range s.notes[1:6] {
		s.Equal(i+1, n.Reminder)
		s.Equal(incident.Since, n.Since, "a reminder tells when the incident began")
	}
	s.Empty(s.notes[6].ReseedCommand)
}

func (s *credentialSuite) TestIncidentEscalatesThenRecoversAfterReseed() {
	s.env.SetStartTime(t0)
	s.env.OnActivity(s.a.Seed, mock.Anything, mock.Anything).Return(
		func(ctx context.Context, req activities.SeedRequest) (activities.SeedResult, error) {
			return activities.SeedResult{Version: 10, SeededAt: s.now(), AccessExpiresAt: req.Seed.AccessExpiresAt}, nil
		})
	rounds := 0
	s.env.OnActivity(s.a.Refresh, mock.Anything, mock.Anything).Return(
		func(ctx context.Context, req activities.RefreshRequest) (activities.RefreshResult, error) {
			rounds++
			now := s.now()
			switch {
			case req.ExpectedVersion == 10 && rounds > 1 && now.After(t0.Add(2*time.Hour)):
				return activities.RefreshResult{Version: 11, RefreshedAt: now, AccessExpiresAt: now.Add(time.Hour)}, nil
			case now.Before(t0.Add(time.Hour)):
				return activities.RefreshResult{}, temporal.NewNonRetryableApplicationError("502", activities.ErrTypeTransient, nil,
					activities.FailureDetail{Code: "http_502"})
			default:
				return activities.RefreshResult{}, temporal.NewNonRetryableApplicationError("invalid_grant", activities.ErrTypePermanent, nil,
					activities.FailureDetail{Code: "invalid_grant"})
			}
		})
	s.env.RegisterDelayedCallback(func() { s.env.SignalWorkflow(SignalReseed, Seed{RefreshToken: "rt-fresh"}) }, 3*time.Hour)
	s.stopAt(3*time.Hour + time.Minute)
	in := input()
	in.Seed.AccessToken, in.Seed.AccessExpiresAt = "at", t0.Add(30*time.Minute)
	in.Policy.RetryMax = dur(5 * time.Minute)
	s.env.ExecuteWorkflow(WorkflowType, in)

	// DEGRADED after three failed rounds, EXPIRED when the access token ran out, then
	// NEEDS_REAUTH when the grant was rejected: each escalation is news; the reseed ends it.
	s.Equal([]string{"incident:DEGRADED", "incident:EXPIRED", "incident:NEEDS_REAUTH", "recovered:ACTIVE"}, s.events())
	s.Equal("invalid_grant", s.notes[2].Code)
	s.Equal(s.notes[0].Since, s.notes[2].Since, "escalations belong to the same incident")
}

func (s *credentialSuite) TestRetireDeletesSecretsAndCompletes() {
	s.env.SetStartTime(t0)
	s.seeded()
	s.refreshSucceeds(&refreshLog{version: 1}, time.Hour)
	retired := 0
	s.env.OnActivity(s.a.Retire, mock.Anything, mock.Anything).Return(
		func(ctx context.Context, req activities.RetireRequest) (activities.RetireResult, error) {
			retired++
			s.Equal("cred-1", req.CredentialID)
			return activities.RetireResult{DeletedAt: s.now()}, nil
		})
	s.env.RegisterDelayedCallback(func() { s.env.SignalWorkflow(SignalRetire, nil) }, 10*time.Minute)
	s.env.ExecuteWorkflow(WorkflowType, input())

	s.Require().True(s.env.IsWorkflowCompleted())
	s.Require().NoError(s.env.GetWorkflowError())
	var final Status
	s.Require().NoError(s.env.GetWorkflowResult(&final))
	s.Equal(cred.StateRetired, final.State)
	s.Equal(1, retired)
	s.Equal([]string{"retired:RETIRED"}, s.events())
}

func (s *credentialSuite) TestUpdatePolicySignal() {
	s.env.SetStartTime(t0)
	s.seeded()
	s.refreshSucceeds(&refreshLog{version: 1}, 10*time.Hour)
	var rejected, applied Status
	s.env.RegisterDelayedCallback(func() {
		s.env.SignalWorkflow(SignalUpdatePolicy, map[string]any{"refresh_margin": "-1m"})
	}, time.Minute)
	s.env.RegisterDelayedCallback(func() { rejected = s.status() }, 2*time.Minute)
	s.env.RegisterDelayedCallback(func() {
		s.env.SignalWorkflow(SignalUpdatePolicy, map[string]any{"refresh_margin": "9h", "jitter": "0s"})
	}, 3*time.Minute)
	s.env.RegisterDelayedCallback(func() { applied = s.status() }, 4*time.Minute)
	s.stopAt(5 * time.Minute)
	s.env.ExecuteWorkflow(WorkflowType, input())

	s.Contains(rejected.LastError, "update-policy signal rejected: policy.refresh_margin")
	s.WithinDuration(t0.Add(10*time.Hour-10*time.Hour/3), rejected.NextActionAt, time.Minute, "a rejected policy changes nothing")
	s.Equal(Duration(9*time.Hour), applied.Timing.RefreshMargin)
	// Lifetime 10h: lead = max(9h, 3h20m) capped at half the lifetime = 5h.
	s.WithinDuration(t0.Add(5*time.Hour), applied.NextActionAt, time.Second)
}

// update-policy changes the fields it names and keeps the others; a field a policy does
// not have (a typo) is refused by name, and nothing changes; null restores a default.
func (s *credentialSuite) TestUpdatePolicyMergesAndRefusesUnknownFields() {
	s.env.SetStartTime(t0)
	s.seeded()
	s.refreshSucceeds(&refreshLog{version: 1}, 10*time.Hour)
	var typo, merged, restored Status
	signal := func(at time.Duration, p map[string]any) {
		s.env.RegisterDelayedCallback(func() { s.env.SignalWorkflow(SignalUpdatePolicy, p) }, at)
	}
	signal(time.Minute, map[string]any{"retire_after_unsued": "1h"})
	s.env.RegisterDelayedCallback(func() { typo = s.status() }, 2*time.Minute)
	signal(3*time.Minute, map[string]any{"reminder_interval": "2h"})
	s.env.RegisterDelayedCallback(func() { merged = s.status() }, 4*time.Minute)
	signal(5*time.Minute, map[string]any{"retire_after_unused": nil})
	s.env.RegisterDelayedCallback(func() { restored = s.status() }, 6*time.Minute)
	s.stopAt(7 * time.Minute)
	in := input()
	in.Policy.RetireAfterUnused = dur(90 * 24 * time.Hour)
	s.env.ExecuteWorkflow(WorkflowType, in)

	s.Contains(typo.LastError, `policy has no field "retire_after_unsued"`)
	s.Contains(typo.LastError, "retire_after_unused")
	s.Equal(Duration(90*24*time.Hour), typo.Timing.RetireAfterUnused, "a refused update changes nothing")
	s.Equal(Duration(2*time.Hour), merged.Timing.ReminderInterval)
	s.Equal(Duration(90*24*time.Hour), merged.Timing.RetireAfterUnused, "fields the update leaves out stay")
	s.Equal(Duration(0), restored.Timing.RetireAfterUnused, "null returns to the default (never, for a credential that refreshes)")
	s.Equal(Duration(2*time.Hour), restored.Timing.ReminderInterval)
}

// Every duration and limit taken from input has a floor with a clear error.
func TestInputFloors(t *testing.T) {
	ns := Duration(time.Nanosecond)
	for _, tc := range []struct {
		name string
		edit func(*CredentialInput)
		want string
	}{
		{"history_event_limit 1", func(in *CredentialInput) { in.HistoryEventLimit = 1 }, "history_event_limit: 1 is below the floor of 25"},
		{"probe_interval 1ns", func(in *CredentialInput) {
			in.Config.IntrospectionURL = "https://idp.example/introspect"
			in.Policy.ProbeInterval = &ns
		}, "policy.probe_interval: 1ns is below the floor of 1s"},
		{"reminder_interval 1ns", func(in *CredentialInput) { in.Policy.ReminderInterval = &ns }, "policy.reminder_interval: 1ns is below the floor"},
		{"retry_initial 1ns", func(in *CredentialInput) { in.Policy.RetryInitial = &ns }, "policy.retry_initial: 1ns is below the floor"},
		{"retire_after_unused 1ns", func(in *CredentialInput) { in.Policy.RetireAfterUnused = &ns }, "policy.retire_after_unused: 1ns is below the floor"},
	} {
		in := input()
		tc.edit(&in)
		err := in.Validate("cred-1")
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", tc.name, err, tc.want)
		}
		// A run that started before the floors replays as it ran.
		if err := in.validate("cred-1", rulesStrictConfig); err != nil {
			t.Errorf("%s under the earlier rules: %v", tc.name, err)
		}
	}
	in := input()
	in.HistoryEventLimit = MinEventLimit
	if err := in.Validate("cred-1"); err != nil {
		t.Errorf("history_event_limit at the floor: %v", err)
	}
}

func (s *credentialSuite) TestReseedUpdateValidatesThenReturnsTheRefreshedStatus() {
	s.env.SetStartTime(t0)
	seeds := 0
	s.env.OnActivity(s.a.Seed, mock.Anything, mock.Anything).Return(
		func(ctx context.Context, req activities.SeedRequest) (activities.SeedResult, error) {
			seeds++
			return activities.SeedResult{Version: int64(10 * seeds), SeededAt: s.now()}, nil
		})
	s.env.OnActivity(s.a.Refresh, mock.Anything, mock.Anything).Return(
		func(ctx context.Context, req activities.RefreshRequest) (activities.RefreshResult, error) {
			now := s.now()
			return activities.RefreshResult{Version: req.ExpectedVersion + 1, RefreshedAt: now, AccessExpiresAt: now.Add(time.Hour)}, nil
		})
	var rejectErr, doneErr error
	var got Status
	s.env.RegisterDelayedCallback(func() {
		s.env.UpdateWorkflow(UpdateReseed, "bad", &testsuite.TestUpdateCallback{
			OnReject:   func(err error) { rejectErr = err },
			OnAccept:   func() { s.Fail("a seed without a refresh token must be rejected") },
			OnComplete: func(any, error) {},
		}, Seed{ClientSecret: "only-a-secret"})
	}, time.Minute)
	s.env.RegisterDelayedCallback(func() {
		s.env.UpdateWorkflow(UpdateReseed, "good", &testsuite.TestUpdateCallback{
			OnReject:   func(err error) { doneErr = err },
			OnComplete: func(v any, err error) { got, _ = v.(Status); doneErr = err },
		}, Seed{RefreshToken: "rt-2"})
	}, 2*time.Minute)
	s.stopAt(3 * time.Minute)
	s.env.ExecuteWorkflow(WorkflowType, input())

	s.Require().Error(rejectErr)
	s.Contains(rejectErr.Error(), "seed.refresh_token: required")
	s.NotContains(rejectErr.Error(), "only-a-secret")
	s.Require().NoError(doneErr)
	s.Equal(2, seeds)
	s.Equal(int64(21), got.Version, "the update answers after the seed and the refresh that follows it")
	s.Equal(cred.StateActive, got.State)
}
