package workflows

import (
	"context"
	"time"

	"github.com/stretchr/testify/mock"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"

	"github.com/tokenwarden/tokenwarden/activities"
	cred "github.com/tokenwarden/tokenwarden/internal/credential"
)

// refreshCall is what one Refresh attempt saw: where it ran and what it was asked.
type refreshCall struct {
	queue         string
	routed        bool
	interruptedAt time.Time
}

// refreshesFailing makes the Refresh attempts fail with errs, one each in order, and
// succeed after them; it records where and how each attempt was asked.
func (s *credentialSuite) refreshesFailing(errs ...error) *[]refreshCall {
	calls := new([]refreshCall)
	s.env.OnActivity(s.a.Refresh, mock.Anything, mock.Anything).Return(
		func(ctx context.Context, req activities.RefreshRequest) (activities.RefreshResult, error) {
			*calls = append(*calls, refreshCall{activity.GetInfo(ctx).TaskQueue, req.OutboxRouted, req.InterruptedAt})
			if n := len(*calls); n <= len(errs) {
				return activities.RefreshResult{}, errs[n-1]
			}
			return activities.RefreshResult{Version: req.ExpectedVersion + 1, RefreshedAt: s.now(), AccessExpiresAt: s.now().Add(time.Hour), Rotated: true}, nil
		})
	return calls
}

// A worker whose outbox holds the rotated token set says so: every later round runs on
// that worker's queue until it commits, however long it takes, and the fleet's queue
// (where another worker would present the consumed token) sees no attempt meanwhile.
func (s *credentialSuite) TestOutboxHeldRoutesEveryRoundToItsWorker() {
	s.env.SetStartTime(t0)
	s.seeded()
	calls := s.refreshesFailing(
		temporal.NewNonRetryableApplicationError("token store: commit refreshed token (kept in the outbox of task queue q-a)",
			activities.ErrTypeStore, nil, activities.FailureDetail{Code: activities.CodeOutboxPending, OutboxQueue: "q-a"}),
		// That worker is down: nobody takes the routed attempt.
		temporal.NewTimeoutError(enumspb.TIMEOUT_TYPE_SCHEDULE_TO_START, nil))
	var waiting Status
	s.env.RegisterDelayedCallback(func() { waiting = s.status() }, 20*time.Second)
	s.stopAt(10 * time.Minute)
	s.env.ExecuteWorkflow(WorkflowType, input())

	s.Require().GreaterOrEqual(len(*calls), 3)
	s.Equal(TaskQueue, (*calls)[0].queue)
	s.False((*calls)[0].routed)
	for i := 1; i <= 2; i++ {
		s.Equal("q-a", (*calls)[i].queue, "round %d must run on the outbox's worker", i+1)
		s.True((*calls)[i].routed)
	}
	s.Require().NotNil(waiting.Outbox)
	s.True(waiting.Outbox.Held)
	s.Equal("outbox_unreachable", waiting.LastErrorCode)
	s.Contains(waiting.LastError, "start that worker again on the same data directory")
	// Committed from the outbox: the route ends, and the next round is the fleet's.
	st := s.status()
	s.Nil(st.Outbox)
	s.Equal(cred.StateActive, st.State)
	if len(*calls) > 3 {
		s.Equal(TaskQueue, (*calls)[3].queue)
		s.False((*calls)[3].routed)
	}
}

// A worker that finds a lease left by an attempt on another worker sends the refresh
// there with the interruption's time. If that worker never comes back within
// OutboxWait, the fleet refreshes, told that the last attempt was interrupted (so it
// settles the outcome, and never routes again).
func (s *credentialSuite) TestSuspectedOutboxGivesUpAfterTheWait() {
	s.env.SetStartTime(t0)
	s.seeded()
	interrupted := t0.Add(-time.Minute)
	calls := s.refreshesFailing(
		temporal.NewNonRetryableApplicationError("an interrupted refresh attempt ran on another worker",
			activities.ErrTypeStore, nil, activities.FailureDetail{Code: activities.CodeOutboxElsewhere, OutboxQueue: "q-a", InterruptedAt: interrupted}),
		temporal.NewTimeoutError(enumspb.TIMEOUT_TYPE_SCHEDULE_TO_START, nil))
	s.stopAt(10 * time.Minute)
	s.env.ExecuteWorkflow(WorkflowType, input())

	s.Require().GreaterOrEqual(len(*calls), 3)
	s.Equal("q-a", (*calls)[1].queue)
	s.True((*calls)[1].routed)
	s.True((*calls)[1].interruptedAt.Equal(interrupted))
	s.Equal(TaskQueue, (*calls)[2].queue, "after the wait the fleet refreshes")
	s.True((*calls)[2].routed, "and does not route again")
	s.True((*calls)[2].interruptedAt.Equal(interrupted), "and knows the last attempt was interrupted")
	st := s.status()
	s.Nil(st.Outbox)
	s.Equal(cred.StateActive, st.State)
}
