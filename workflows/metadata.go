package workflows

import (
	"fmt"
	"strings"
	"time"

	cred "github.com/tokenwarden/tokenwarden/internal/credential"

	"go.temporal.io/sdk/workflow"
)

// A credential's page in the Web UI reads as its story without decoding a payload:
// the starter gives every run a static summary (StaticSummary), the workflow keeps its
// current details up to date (workflow.SetCurrentDetails: no history event), and every
// timer and activity carries a one-line summary of why it is there. None of it holds a
// secret: states, times, versions, provider names, error codes and the commands that
// fix them.

// StaticSummary is the one-line summary the starter (and the temporal CLI recipe, with
// --static-summary) gives a credential's runs.
func StaticSummary(providerName, id string) string {
	return fmt.Sprintf("%s credential %s", providerName, id)
}

// detailsTime is how the story writes times: UTC, to the second.
func detailsTime(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05 UTC") }

// currentDetails renders the status as the Web UI's current details (Temporal markdown).
func currentDetails(st Status) string {
	var b strings.Builder
	b.WriteString(fmt.Sprintf("**%s** since %s · %s · store version %d\n\n", st.State, detailsTime(st.StateSince), st.Provider, st.Version))
	if !st.AccessExpiresAt.IsZero() {
		b.WriteString(fmt.Sprintf("- access token expires %s\n", detailsTime(st.AccessExpiresAt)))
	}
	switch {
	case st.NextAction == ActionAwaitReseed:
		b.WriteString("- next: nothing until a human reseeds\n")
	case st.NextAction != "":
		b.WriteString(fmt.Sprintf("- next: %s at %s\n", st.NextAction, detailsTime(st.NextActionAt)))
	}
	b.WriteString(fmt.Sprintf("- %d refreshes", st.Refreshes))
	if st.Probes > 0 {
		b.WriteString(fmt.Sprintf(", %d probes", st.Probes))
	}
	b.WriteString(fmt.Sprintf(", run %d\n", st.Runs))
	if st.LastError != "" {
		code := ""
		if st.LastErrorCode != "" {
			code = " (`" + st.LastErrorCode + "`)"
		}
		b.WriteString(fmt.Sprintf("- last error%s: %s\n", code, st.LastError))
	}
	if st.State == cred.StateNeedsReauth {
		b.WriteString(fmt.Sprintf("- to fix: `%s`\n", ReseedCommand(st.ID, st.Provider, st.Config)))
	}
	return b.String()
}

// describe publishes the current details; it writes no history event.
func (c *credential) describe(ctx workflow.Context) {
	workflow.SetCurrentDetails(ctx, currentDetails(c.st))
}

// timerSummary says why the workflow sleeps until at.
func timerSummary(st Status, action Action, at time.Time) string {
	switch action {
	case ActionRetry:
		if !st.RetryNotBefore.IsZero() && !at.After(st.RetryNotBefore) {
			return fmt.Sprintf("retry at %s (the provider's Retry-After)", at.UTC().Format(time.TimeOnly+" UTC"))
		}
		return fmt.Sprintf("retry %d at %s", st.ConsecutiveFailures+1, at.UTC().Format(time.TimeOnly+" UTC"))
	default:
		return fmt.Sprintf("%s at %s", action, at.UTC().Format(time.TimeOnly+" UTC"))
	}
}

// withSummary is ctx with the activity's one-line summary set.
func withSummary(ctx workflow.Context, summary string) workflow.Context {
	opts := workflow.GetActivityOptions(ctx)
	opts.Summary = summary
	return workflow.WithActivityOptions(ctx, opts)
}
