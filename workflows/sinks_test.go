package workflows

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"go.temporal.io/sdk/temporal"

	"github.com/tokenwarden/tokenwarden/activities"
	cred "github.com/tokenwarden/tokenwarden/internal/credential"
)

func sinkInput() CredentialInput {
	in := input()
	in.Sinks = []cred.Sink{
		// The reload fields travel with the spec, through history, to the activity.
		{Type: cred.SinkEnv, Path: "/srv/app/.env", Key: "ZALO_ACCESS_TOKEN",
			ReloadSignal: &cred.ReloadSignal{PIDFile: "/run/app.pid", Signal: "HUP"},
			ReloadURL:    "http://127.0.0.1:8080/reload"},
		{Type: cred.SinkWebhook, Target: "app"},
	}
	return in
}

func (s *credentialSuite) TestSinkRunsAfterEachRefresh() {
	s.env.SetStartTime(t0)
	s.seeded()
	log := &refreshLog{version: 1}
	s.refreshSucceeds(log, time.Hour)
	var sinks []activities.SinkRequest
	var sinkTimes []time.Time
	s.env.OnActivity(s.a.Sink, mock.Anything, mock.Anything).Return(
		func(ctx context.Context, req activities.SinkRequest) (activities.SinkResult, error) {
			sinks = append(sinks, req)
			sinkTimes = append(sinkTimes, s.now())
			return activities.SinkResult{Version: req.Version, At: s.now()}, nil
		})
	var mid Status
	s.env.RegisterDelayedCallback(func() { mid = s.status() }, 50*time.Minute)
	s.stopAt(2*time.Hour + time.Minute)
	s.env.ExecuteWorkflow(WorkflowType, sinkInput())

	s.Require().Len(log.times, 4)
	s.Require().Len(sinks, 4, "one sink run per refresh")
	for i, req := range sinks {
		s.Equal(int64(i+2), req.Version, "sink %d gets the version its refresh committed", i)
		s.Equal("cred-1", req.CredentialID)
		s.Equal(sinkInput().Sinks, req.Sinks)
		s.WithinDuration(log.times[i], sinkTimes[i], time.Second, "sink %d runs right after its refresh", i)
	}
	s.Equal(cred.StateActive, mid.State)
	s.Equal(int64(3), mid.SinkVersion)
	s.Empty(mid.LastSinkError)
	s.WithinDuration(t0.Add(40*time.Minute), mid.LastSinkAt, time.Second)
}

func (s *credentialSuite) TestFailingSinkDoesNotChangeState() {
	s.env.SetStartTime(t0)
	s.seeded()
	log := &refreshLog{version: 1}
	s.refreshSucceeds(log, time.Hour)
	attempts := 0
	s.env.OnActivity(s.a.Sink, mock.Anything, mock.Anything).Return(
		func(ctx context.Context, req activities.SinkRequest) (activities.SinkResult, error) {
			attempts++
			return activities.SinkResult{}, temporal.NewApplicationError("sink: sinks[0]: envfile: read /srv/app/.env: permission denied",
				activities.ErrTypeSinkFailed)
		})
	var mid Status
	s.env.RegisterDelayedCallback(func() { mid = s.status() }, 70*time.Minute)
	s.stopAt(2*time.Hour + time.Minute)
	s.env.ExecuteWorkflow(WorkflowType, sinkInput())

	// The refreshes went on exactly as without sinks.
	want := []time.Time{t0, t0.Add(40 * time.Minute), t0.Add(80 * time.Minute), t0.Add(120 * time.Minute)}
	s.Require().Len(log.times, len(want))
	for i := range want {
		s.WithinDuration(want[i], log.times[i], time.Second, "refresh %d", i)
	}
	s.Greater(attempts, 4, "Temporal retries a failing sink")
	s.Equal(cred.StateActive, mid.State)
	s.Equal(0, mid.ConsecutiveFailures)
	s.Empty(mid.LastError)
	s.Nil(mid.Incident)
	s.Equal(int64(3), mid.Version)
	s.Contains(mid.LastSinkError, "permission denied")
	s.False(mid.LastSinkAt.IsZero())
	s.Zero(mid.SinkVersion)
	s.Empty(s.notes, "a sink failure is not an incident")
}

func (s *credentialSuite) TestNoSinksNoSinkActivity() {
	s.env.SetStartTime(t0)
	s.seeded()
	s.refreshSucceeds(&refreshLog{version: 1}, time.Hour)
	s.stopAt(90 * time.Minute)
	s.env.ExecuteWorkflow(WorkflowType, input())
	// AfterTest asserts expectations; an unexpected Sink call would have failed the
	// activity and been logged, so check the status instead.
	st := s.status()
	s.Zero(st.SinkVersion)
	s.True(st.LastSinkAt.IsZero())
}

func TestValidateSinks(t *testing.T) {
	for _, tc := range []struct {
		sinks []cred.Sink
		want  string
	}{
		{[]cred.Sink{{Type: "env", Path: "srv/.env", Key: "K"}}, `sinks[0].path: must be absolute`},
		{[]cred.Sink{{Type: "env", Path: "/srv/../etc/.env", Key: "K"}}, `sinks[0].path: must be clean`},
		{[]cred.Sink{{Type: "env", Key: "K"}}, `sinks[0].path: required`},
		{[]cred.Sink{{Type: "env", Path: "/srv/.env", Key: "1K"}}, `sinks[0].key: must be a variable name`},
		{[]cred.Sink{{Type: "env", Path: "/srv/.env", Key: "K", Value: "client_secret"}}, `sinks[0].value: must be access_token (default)`},
		{[]cred.Sink{{Type: "env", Path: "/srv/.env", Key: "K", Target: "x"}}, `sinks[0].target: only for webhook sinks`},
		{[]cred.Sink{{Type: "webhook"}}, `sinks[0].target: must name a target`},
		{[]cred.Sink{{Type: "webhook", Target: "https://hooks.example/abc"}}, `sinks[0].target: must name a target`},
		{[]cred.Sink{{Type: "webhook", Target: "app", Key: "K"}}, `sinks[0].path, key, value: only for env sinks`},
		{[]cred.Sink{{Type: "file"}}, `sinks[0].type: must be env or webhook`},
		{[]cred.Sink{{Type: "webhook", Target: "a"}, {Type: "webhook", Target: "a"}}, `sinks[1]: the same destination as sinks[0]`},
		{[]cred.Sink{{Type: "env", Path: "/a/.env", Key: "K"}, {Type: "env", Path: "/a/.env", Key: "K", Value: "expires_at"}},
			`sinks[1]: the same destination as sinks[0]`},
		{[]cred.Sink{{Type: "env", Path: "/srv/.env", Key: "K", ReloadSignal: &cred.ReloadSignal{PIDFile: "/run/app.pid", Signal: "KILL"}}},
			`sinks[0].reload_signal.signal: must be HUP, USR1, USR2 or TERM`},
		{[]cred.Sink{{Type: "env", Path: "/srv/.env", Key: "K", ReloadSignal: &cred.ReloadSignal{PIDFile: "/run/app", Signal: "HUP"}}},
			`sinks[0].reload_signal.pid_file: must be a file named *.pid`},
		{[]cred.Sink{{Type: "env", Path: "/srv/.env", Key: "K", ReloadURL: "http://app.example.com/reload"}},
			`sinks[0].reload_url: plain http only to a loopback address`},
		{[]cred.Sink{{Type: "env", Path: "/srv/.env", Key: "K", ReloadURL: "https://app.example.com/reload?token=x"}},
			`sinks[0].reload_url: must not carry a query`},
		{[]cred.Sink{{Type: "webhook", Target: "app", ReloadURL: "http://127.0.0.1/reload"}}, `sinks[0].reload_signal, reload_url: only for env sinks`},
	} {
		in := input()
		in.Sinks = tc.sinks
		err := in.Validate("cred-1")
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Validate(%+v) = %v, want %q", tc.sinks, err, tc.want)
		}
	}
	in := input()
	in.Sinks = []cred.Sink{
		{Type: "env", Path: "/srv/app/.env", Key: "ZALO_ACCESS_TOKEN",
			ReloadSignal: &cred.ReloadSignal{PIDFile: "/run/app.pid", Signal: "USR1"}},
		{Type: "env", Path: "/srv/app/.env", Key: "ZALO_TOKEN_EXPIRES_AT", Value: "expires_at", ReloadURL: "https://app.example.com/reload"},
		{Type: "env", Path: "/srv/app/.env", Key: "ZALO_REFRESH_TOKEN", Value: "refresh_token"},
		{Type: "webhook", Target: "app-hook"},
	}
	if err := in.Validate("cred-1"); err != nil {
		t.Fatalf("valid sinks refused: %v", err)
	}
}
