package workflows

import (
	"context"
	"time"

	"github.com/stretchr/testify/mock"

	"github.com/tokenwarden/tokenwarden/activities"
	cred "github.com/tokenwarden/tokenwarden/internal/credential"
	"github.com/tokenwarden/tokenwarden/internal/provider"
)

func (s *credentialSuite) TestProbeOnlyCredentialParksWhenTheTokenDies() {
	s.env.SetStartTime(t0)
	s.env.OnActivity(s.a.Seed, mock.Anything, mock.Anything).Return(
		activities.SeedResult{Version: 1, SeededAt: t0}, nil)
	var probes []time.Time
	s.env.OnActivity(s.a.Probe, mock.Anything, mock.Anything).Return(
		func(ctx context.Context, req activities.ProbeRequest) (activities.ProbeResult, error) {
			probes = append(probes, s.now())
			return activities.ProbeResult{Valid: len(probes) < 3, CheckedAt: s.now(), Code: "token_rejected"}, nil
		})
	var active, parked Status
	s.env.RegisterDelayedCallback(func() { active = s.status() }, 90*time.Minute)
	s.env.RegisterDelayedCallback(func() { parked = s.status() }, 5*time.Hour)
	s.stopAt(6 * time.Hour)
	s.env.ExecuteWorkflow(WorkflowType, CredentialInput{
		Provider: "baoming",
		Config:   provider.Config{EnrollID: "698add7c7068f814935d6804"},
		Seed:     &SeedEnvelope{Seed: Seed{AccessToken: "bm-token"}},
	})
	// The default probe interval for a probe-only provider is one hour; no refresh ever.
	s.Require().Len(probes, 3)
	for i, at := range probes {
		s.WithinDuration(t0.Add(time.Duration(i+1)*time.Hour), at, time.Second)
	}
	s.True(active.ProbeOnly)
	s.Equal(cred.StateActive, active.State)
	s.Equal(ActionProbe, active.NextAction)
	s.Equal(int64(1), active.Probes)
	s.Equal(cred.StateNeedsReauth, parked.State)
	s.Equal("token_rejected", parked.LastErrorCode)
	s.Contains(parked.LastError, "no longer accepts")
}

func (s *credentialSuite) TestRejectedProbeTriggersARefresh() {
	s.env.SetStartTime(t0)
	s.seeded()
	log := &refreshLog{version: 1}
	s.refreshSucceeds(log, 24*time.Hour)
	probes := 0
	s.env.OnActivity(s.a.Probe, mock.Anything, mock.Anything).Return(
		func(ctx context.Context, req activities.ProbeRequest) (activities.ProbeResult, error) {
			probes++
			return activities.ProbeResult{Valid: probes != 2, CheckedAt: s.now()}, nil
		})
	s.stopAt(3*time.Hour + time.Minute)
	in := input()
	in.Config.IntrospectionURL = "https://idp.example/introspect"
	in.Policy.ProbeInterval = dur(time.Hour)
	s.env.ExecuteWorkflow(WorkflowType, in)
	// Refresh at seed time; probes at 1h (ok), 2h (rejected -> refresh at once), 3h (ok).
	s.Equal(3, probes)
	s.Require().Len(log.times, 2)
	s.WithinDuration(t0.Add(2*time.Hour), log.times[1], time.Second)
}

func (s *credentialSuite) TestProbeOnlySeedNeedsAnAccessToken() {
	s.env.ExecuteWorkflow(WorkflowType, CredentialInput{
		Provider: "baoming",
		Config:   provider.Config{BaseURL: "https://api.example", EnrollID: "698add7c7068f814935d6804"},
		Seed:     &SeedEnvelope{Seed: Seed{RefreshToken: "not-what-baoming-uses"}},
	})
	s.Require().True(s.env.IsWorkflowCompleted())
	s.Require().Error(s.env.GetWorkflowError())
	s.Contains(s.env.GetWorkflowError().Error(), "seed.access_token:")
}

func (s *credentialSuite) TestProbesNeedAProviderThatCanProbe() {
	in := input()
	in.Policy.ProbeInterval = dur(time.Hour) // oauth2 without introspection_url or userinfo_url
	s.env.ExecuteWorkflow(WorkflowType, in)
	s.Require().True(s.env.IsWorkflowCompleted())
	s.Require().Error(s.env.GetWorkflowError())
	s.Contains(s.env.GetWorkflowError().Error(), "policy.probe_interval:")
}

func (s *credentialSuite) TestDeadTokenRetiredWhenPolicySaysSo() {
	s.env.SetStartTime(t0)
	s.env.OnActivity(s.a.Seed, mock.Anything, mock.Anything).Return(
		activities.SeedResult{Version: 1, SeededAt: t0}, nil)
	s.env.OnActivity(s.a.Probe, mock.Anything, mock.Anything).Return(
		activities.ProbeResult{Valid: false, CheckedAt: t0.Add(time.Hour), Code: "token_rejected"}, nil)
	retired := 0
	s.env.OnActivity(s.a.Retire, mock.Anything, mock.Anything).Return(
		func(ctx context.Context, req activities.RetireRequest) (activities.RetireResult, error) {
			retired++
			return activities.RetireResult{DeletedAt: s.now()}, nil
		})
	s.env.ExecuteWorkflow(WorkflowType, CredentialInput{
		Provider: "baoming",
		Config:   provider.Config{EnrollID: "698add7c7068f814935d6804"},
		Policy:   Policy{OnInvalid: OnInvalidRetire},
		Seed:     &SeedEnvelope{Seed: Seed{AccessToken: "bm-token"}},
	})
	s.Require().True(s.env.IsWorkflowCompleted())
	var final Status
	s.Require().NoError(s.env.GetWorkflowResult(&final))
	s.Equal(cred.StateRetired, final.State)
	s.Equal(1, retired)
	s.Equal([]string{"retired:RETIRED"}, s.events())
	s.Equal("token_rejected", s.notes[0].Code)
}

// The input's labels and what probes learn about the token's account show in the
// status; a label that could be anything else is refused by name.
func (s *credentialSuite) TestLabelsShowInTheStatus() {
	s.env.SetStartTime(t0)
	s.env.OnActivity(s.a.Seed, mock.Anything, mock.Anything).Return(activities.SeedResult{Version: 1, SeededAt: t0, AccessToken: true}, nil)
	s.env.OnActivity(s.a.Probe, mock.Anything, mock.Anything).Return(
		func(ctx context.Context, req activities.ProbeRequest) (activities.ProbeResult, error) {
			return activities.ProbeResult{Valid: true, CheckedAt: s.now(), Labels: map[string]string{"info_id": "70ab"}}, nil
		})
	var st Status
	s.env.RegisterDelayedCallback(func() { st = s.status() }, 90*time.Minute)
	s.stopAt(2 * time.Hour)
	s.env.ExecuteWorkflow(WorkflowType, CredentialInput{
		Provider: "baoming",
		Config:   provider.Config{EnrollID: "698add7c7068f814935d6804"},
		Labels:   map[string]string{"uname": "Lan", "unionid": "oXyZ-123", "card_name": "Tran Lan"},
		Seed:     &SeedEnvelope{Seed: Seed{AccessToken: "bm-token"}},
	})
	s.Equal(map[string]string{"uname": "Lan", "unionid": "oXyZ-123", "card_name": "Tran Lan", "info_id": "70ab"}, st.Labels)

	in := input()
	in.Labels = map[string]string{"Bad Key": "x"}
	s.ErrorContains(in.Validate("cred-1"), `labels: key "Bad Key" must be 1 to 40 of [a-z0-9_]`)
}
