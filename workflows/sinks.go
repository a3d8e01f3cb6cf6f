package workflows

import (
	"fmt"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/tokenwarden/tokenwarden/activities"
)

// sinkActivityOptions: a sink is retried for about a quarter of an hour; the next
// refresh runs the sinks again in any case, with the token of that day.
func sinkActivityOptions(ctx workflow.Context) workflow.Context {
	return workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: 30 * time.Second,
		RetryPolicy: &temporal.RetryPolicy{
			InitialInterval:        2 * time.Second,
			BackoffCoefficient:     2,
			MaximumInterval:        2 * time.Minute,
			MaximumAttempts:        10,
			NonRetryableErrorTypes: []string{activities.ErrTypeInvalidInput, activities.ErrTypeSinkRefused},
		},
	})
}

// runSinks delivers the committed token to the credential's sinks without waiting, as
// notify does: a slow or broken sink must never hold up, undo or change a refresh. It
// is counted in c.notifying, so continue-as-new and retirement wait for it. Its outcome
// lands in the status (SinkVersion, LastSinkAt, LastSinkError) and the log only; the
// credential's state is untouched. The activity reads the token from the store, so
// nothing secret enters history, and a late sink writes the newest token.
func (c *credential) runSinks(ctx workflow.Context) {
	if len(c.in.Sinks) == 0 {
		return
	}
	req := activities.SinkRequest{CredentialID: c.st.ID, Provider: c.st.Provider, Version: c.st.Version, Sinks: c.in.Sinks}
	actx := sinkActivityOptions(ctx)
	c.notifying++
	workflow.Go(ctx, func(gctx workflow.Context) {
		defer func() { c.notifying-- }()
		var a *activities.Activities
		var res activities.SinkResult
		err := workflow.ExecuteActivity(withSummary(actx, fmt.Sprintf("deliver v%d to %d sinks", req.Version, len(req.Sinks))), a.Sink, req).Get(gctx, &res)
		if err != nil {
			c.log.Warn("sink failed", "version", req.Version, "error", err)
			// A failure of an older refresh's sink says nothing about a newer one's.
			if req.Version >= c.st.SinkVersion {
				c.st.LastSinkAt = workflow.Now(gctx)
				c.st.LastSinkError = errorMessage(err)
			}
			return
		}
		if res.Version >= c.st.SinkVersion {
			c.st.SinkVersion = res.Version
			c.st.LastSinkAt = workflow.Now(gctx)
			c.st.LastSinkError = ""
		}
		// A delivered token is a used token: it keeps the credential from retirement.
		c.st.LastDeliveredAt = workflow.Now(gctx)
	})
}
