package workflows

import (
	"context"
	"time"

	"github.com/stretchr/testify/mock"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"

	"github.com/tokenwarden/tokenwarden/activities"
)

func (s *credentialSuite) events() []string {
	var out []string
	for _, n := range s.notes {
		out = append(out, n.Event+":"+n.State)
	}
	return out
}

func (s *credentialSuite) TestDegradedIncidentRemindersAndOneRecovery() {
	s.env.SetStartTime(t0)
	s.seeded()
	recoverAt := t0.Add(5*time.Hour + 30*time.Minute)
	s.env.OnActivity(s.a.Refresh, mock.Anything, mock.Anything).Return(
		func(ctx context.Context, req activities.RefreshRequest) (activities.RefreshResult, error) {
			now := s.env.Now()
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
			return activities.SeedResult{Version: 10, SeededAt: s.env.Now(), AccessExpiresAt: req.Seed.AccessExpiresAt}, nil
		})
	rounds := 0
	s.env.OnActivity(s.a.Refresh, mock.Anything, mock.Anything).Return(
		func(ctx context.Context, req activities.RefreshRequest) (activities.RefreshResult, error) {
			rounds++
			now := s.env.Now()
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
			return activities.RetireResult{DeletedAt: s.env.Now()}, nil
		})
	s.env.RegisterDelayedCallback(func() { s.env.SignalWorkflow(SignalRetire, nil) }, 10*time.Minute)
	s.env.ExecuteWorkflow(WorkflowType, input())

	s.Require().True(s.env.IsWorkflowCompleted())
	s.Require().NoError(s.env.GetWorkflowError())
	var final Status
	s.Require().NoError(s.env.GetWorkflowResult(&final))
	s.Equal(StateRetired, final.State)
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

func (s *credentialSuite) TestReseedUpdateValidatesThenReturnsTheRefreshedStatus() {
	s.env.SetStartTime(t0)
	seeds := 0
	s.env.OnActivity(s.a.Seed, mock.Anything, mock.Anything).Return(
		func(ctx context.Context, req activities.SeedRequest) (activities.SeedResult, error) {
			seeds++
			return activities.SeedResult{Version: int64(10 * seeds), SeededAt: s.env.Now()}, nil
		})
	s.env.OnActivity(s.a.Refresh, mock.Anything, mock.Anything).Return(
		func(ctx context.Context, req activities.RefreshRequest) (activities.RefreshResult, error) {
			now := s.env.Now()
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
	s.Equal(StateActive, got.State)
}
