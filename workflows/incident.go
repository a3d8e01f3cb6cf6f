package workflows

import (
	"fmt"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/tokenwarden/tokenwarden/activities"
	// Named cred as in types.go.
	cred "github.com/tokenwarden/tokenwarden/internal/credential"
	"github.com/tokenwarden/tokenwarden/internal/provider"
	"github.com/tokenwarden/tokenwarden/internal/provider/catalog"
)

// severity orders the states that make an incident; 0 means "healthy enough".
func severity(st Status, t Timing) int {
	switch st.State {
	case cred.StateNeedsReauth:
		return 3
	case cred.StateExpired:
		return 2
	case cred.StateDegraded:
		if st.ConsecutiveFailures >= t.NotifyAfterFailures {
			return 1
		}
	}
	return 0
}

func kindSeverity(k cred.State) int {
	switch k {
	case cred.StateNeedsReauth:
		return 3
	case cred.StateExpired:
		return 2
	case cred.StateDegraded:
		return 1
	}
	return 0
}

// reviewIncident runs after every change of state. The owners hear once when an
// incident starts, once more each time it gets worse (DEGRADED -> EXPIRED ->
// NEEDS_REAUTH), on the reminder schedule while it lasts, and once when it ends.
func (c *credential) reviewIncident(ctx workflow.Context) {
	now := workflow.Now(ctx)
	sev := severity(c.st, c.st.Timing)
	inc := c.st.Incident
	switch {
	case sev > 0 && (inc == nil || sev > kindSeverity(inc.Kind)):
		since := c.st.StateSince
		if inc != nil {
			since = inc.Since
		}
		c.st.Incident = &Incident{Kind: c.st.State, Since: since, NextReminderAt: now.Add(c.st.Timing.ReminderInterval.D())}
		c.notify(ctx, cred.EventIncident)
	case inc != nil && c.st.State == cred.StateActive:
		c.notify(ctx, cred.EventRecovered)
		c.st.Incident = nil
	}
}

// remind sends the next reminder of the open incident.
func (c *credential) remind(ctx workflow.Context) {
	inc := c.st.Incident
	inc.Reminders++
	inc.NextReminderAt = workflow.Now(ctx).Add(c.st.Timing.ReminderInterval.D())
	c.notify(ctx, cred.EventReminder)
}

// notify sends a notification without waiting for it: a slow or broken webhook must
// never hold up a refresh. Temporal retries delivery for about half an hour.
func (c *credential) notify(ctx workflow.Context, event string) {
	n := cred.Notification{
		Event:         event,
		CredentialID:  c.st.ID,
		Provider:      c.st.Provider,
		State:         c.st.State,
		Reason:        c.st.LastError,
		Code:          c.st.LastErrorCode,
		Since:         c.st.StateSince,
		Failures:      c.st.ConsecutiveFailures,
		ReseedCommand: ReseedCommand(c.st.ID, c.st.Provider, c.st.Config),
		Target:        c.st.Timing.NotifyTarget,
	}
	if inc := c.st.Incident; inc != nil {
		n.Since = inc.Since
		n.Reminder = inc.Reminders
	}
	if event == cred.EventRecovered || event == cred.EventRetired {
		n.ReseedCommand = ""
	}
	actx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: 30 * time.Second,
		RetryPolicy: &temporal.RetryPolicy{
			InitialInterval:    5 * time.Second,
			BackoffCoefficient: 2,
			MaximumInterval:    5 * time.Minute,
			MaximumAttempts:    10,
		},
	})
	c.notifying++
	workflow.Go(ctx, func(gctx workflow.Context) {
		defer func() { c.notifying-- }()
		var a *activities.Activities
		if err := workflow.ExecuteActivity(withSummary(actx, "notify "+string(event)), a.Notify, n).Get(gctx, nil); err != nil {
			c.log.Warn("notification not delivered", "event", event, "error", err)
		}
	})
}

// retireNow deletes the credential's secrets, tells its owners, and ends the workflow
// with the final status. Waiting updates are answered first.
func (c *credential) retireNow(ctx workflow.Context) (Status, error) {
	actx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: 30 * time.Second,
		RetryPolicy:         &temporal.RetryPolicy{InitialInterval: time.Second, MaximumInterval: time.Minute},
	})
	var a *activities.Activities
	var res activities.RetireResult
	// Defaults never destroy more than asked: the rules before rulesSafeDefaults
	// revoked on every retirement.
	revoke := !c.retireAutomatic || c.st.Timing.RevokeOnRetire || !c.rules.safeDefaults()
	if err := workflow.ExecuteActivity(withSummary(actx, "retire"), a.Retire, activities.RetireRequest{
		CredentialID: c.st.ID, Provider: c.st.Provider, Config: c.st.Config, Revoke: revoke,
	}).Get(ctx, &res); err != nil {
		return c.st, err
	}
	c.setState(ctx, cred.StateRetired)
	c.st.Incident = nil
	c.st.NextAction, c.st.NextActionAt = "", time.Time{}
	c.st.AccessExpiresAt = time.Time{}
	c.notify(ctx, cred.EventRetired)
	if err := c.publish(ctx); err != nil {
		return c.st, err
	}
	if err := workflow.Await(ctx, func() bool { return c.notifying == 0 && workflow.AllHandlersFinished(ctx) }); err != nil {
		return c.st, err
	}
	c.log.Info("credential retired")
	return c.st, nil
}

// ReseedCommand is the exact command that gives the credential new grant material:
// `starter connect ID` where the provider, so configured, has an authorization flow
// (the user approves in a browser again, and nothing is copied by hand), else
// `starter reseed ID -secrets -`. Deterministic: notifications and the starter's hints
// name the same command.
func ReseedCommand(id, providerName string, cfg provider.Config) string {
	if catalog.CanConnect(providerName, cfg) {
		return "starter connect " + id
	}
	return fmt.Sprintf("starter reseed %s -secrets -", id)
}
