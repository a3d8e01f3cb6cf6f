package workflows

import (
	"fmt"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/tokenwarden/tokenwarden/activities"
)

// unused asks the store when a consumer last read the token and reports whether the
// credential has gone unused past its retire_after_unused deadline. A read since the
// last check moves the deadline on, and the workflow sleeps again.
func (c *credential) unused(ctx workflow.Context) bool {
	actx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: 30 * time.Second,
		// The store is the only thing asked; while it is down nothing else works either.
		RetryPolicy: &temporal.RetryPolicy{InitialInterval: time.Second, MaximumInterval: time.Minute},
	})
	var a *activities.Activities
	var res activities.UsageResult
	if err := workflow.ExecuteActivity(withSummary(actx, "usage check"), a.Usage, activities.UsageRequest{CredentialID: c.st.ID}).Get(ctx, &res); err != nil {
		c.log.Warn("usage check failed", "error", err)
		return false
	}
	if res.LastUsedAt.After(c.st.LastUsedAt) {
		c.st.LastUsedAt = res.LastUsedAt
	}
	deadline, ok := UnusedDeadline(c.st, c.st.Timing)
	if !ok || workflow.Now(ctx).Before(deadline) {
		return false
	}
	c.st.LastError = fmt.Sprintf("retired: unused for %s (policy.retire_after_unused)", c.st.Timing.RetireAfterUnused.D())
	c.st.LastErrorCode = "unused"
	c.log.Info("retiring an unused credential", "deadline", deadline)
	return true
}
