package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"strings"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"

	"github.com/tokenwarden/tokenwarden/internal/credential"
	"github.com/tokenwarden/tokenwarden/workflows"
)

// defaultUpdateTimeout bounds how long refresh and reseed wait for the workflow's
// answer. A refresh round is at most four attempts of a minute each, plus backoff.
const defaultUpdateTimeout = 5 * time.Minute

// retireWait is how long retire waits for the workflow to complete after the signal.
const retireWait = 30 * time.Second

// idArg parses a command's flags and returns its one credential ID.
func idArg(fs *flag.FlagSet, pos []string) (string, error) {
	if len(pos) != 1 {
		fs.Usage()
		return "", fail(exitBadInput, "expected one credential ID, got %d arguments", len(pos))
	}
	if err := credential.ValidateID(pos[0]); err != nil {
		return "", fail(exitBadInput, "%v", err)
	}
	return pos[0], nil
}

func checkTimeout(d time.Duration) error {
	if d <= 0 {
		return fail(exitBadInput, "-timeout: must be positive, got %s", d)
	}
	return nil
}

func (a *app) refresh(ctx context.Context, args []string) error {
	fs := a.newFlags("refresh", "refresh ID [-timeout D]")
	timeout := fs.Duration("timeout", defaultUpdateTimeout, "how long to wait for the refresh round to finish")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	id, err := idArg(fs, pos)
	if err != nil {
		return err
	}
	if err := checkTimeout(*timeout); err != nil {
		return err
	}
	c, err := a.dial(ctx)
	if err != nil {
		return err
	}
	defer c.Close()
	st, err := executeUpdate(ctx, c, id, workflows.UpdateRefresh, *timeout)
	if err != nil {
		return err
	}
	return a.reportRound(st, "refreshed")
}

func (a *app) reseed(ctx context.Context, args []string) error {
	fs := a.newFlags("reseed", "reseed ID -secrets FILE|- [-timeout D]")
	secretsPath := fs.String("secrets", "", "JSON file with the new grant material (refresh_token, client_secret, ...); - reads standard input")
	timeout := fs.Duration("timeout", defaultUpdateTimeout, "how long to wait for the seed to be stored and the refresh that follows")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	id, err := idArg(fs, pos)
	if err != nil {
		return err
	}
	if *secretsPath == "" {
		return fail(exitBadInput, "-secrets is required: a JSON file with at least refresh_token, or - for standard input")
	}
	if err := checkTimeout(*timeout); err != nil {
		return err
	}
	var seed workflows.Seed
	if err := readJSON(*secretsPath, a.stdin, &seed); err != nil {
		// Never echo the content: it is secret.
		return fail(exitBadInput, "secrets %s: %v", displayPath(*secretsPath), err)
	}

	c, err := a.dial(ctx)
	if err != nil {
		return err
	}
	defer c.Close()
	// The seed's rules depend on the provider, which only the workflow knows.
	cur, err := queryStatus(ctx, c, id)
	if err != nil {
		return err
	}
	if err := workflows.ValidateSeed(cur.Provider, cur.Config, seed); err != nil {
		return fail(exitBadInput, "invalid seed for provider %s:\n  %s", cur.Provider, strings.ReplaceAll(err.Error(), "\n", "\n  "))
	}
	return a.reseedWith(ctx, c, id, cur, seed, *timeout)
}

// reseedWith seals a checked seed for the credential's running configuration and hands
// it in with the reseed update (reseed, connect ID).
func (a *app) reseedWith(ctx context.Context, c client.Client, id string, cur workflows.Status, seed workflows.Seed, timeout time.Duration) error {
	// Sealed for the configuration the credential runs with: the reseed confirms it.
	env, err := sealSeed(ctx, id, cur.Provider, cur.Config, seed)
	if err != nil {
		return err
	}
	st, err := executeUpdate(ctx, c, id, workflows.UpdateReseed, timeout, env)
	if err != nil {
		return err
	}
	return a.reportRound(st, "reseeded")
}

// reportRound prints the status an update returned; a credential that is not ACTIVE
// afterwards means the round failed, which is exit code 1 with the workflow's reason.
func (a *app) reportRound(st workflows.Status, verb string) error {
	now := time.Now()
	fmt.Fprintf(a.stdout, "credential %s %s: state %s, store version %d, access token expires %s\n",
		st.ID, verb, st.State, st.Version, when(st.AccessExpiresAt, now))
	if st.State == credential.StateActive {
		return nil
	}
	why := st.LastError
	if why == "" {
		why = "no error recorded"
	}
	if st.LastErrorCode != "" {
		why += " (" + st.LastErrorCode + ")"
	}
	hint := ""
	if st.State == credential.StateNeedsReauth {
		hint = "; hand in new grant material with `" + workflows.ReseedCommand(st.ID, st.Provider, st.Config) + "`"
	}
	return fail(exitFailure, "credential %s is %s: %s%s", st.ID, st.State, why, hint)
}

// executeUpdate runs a workflow update to completion and decodes the Status it returns.
func executeUpdate(ctx context.Context, c client.Client, id, name string, timeout time.Duration, args ...any) (workflows.Status, error) {
	uctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var st workflows.Status
	h, err := c.UpdateWorkflow(uctx, client.UpdateWorkflowOptions{
		WorkflowID:   id,
		UpdateName:   name,
		Args:         args,
		WaitForStage: client.WorkflowUpdateStageCompleted,
	})
	if err == nil {
		err = h.Get(uctx, &st)
	}
	if err == nil {
		return st, nil
	}
	what := fmt.Sprintf("%s update of credential %q", name, id)
	return workflows.Status{}, classifyUpdateError(ctx, c, err, id, what, uctx.Err() != nil, timeout)
}

// classifyUpdateError tells a rejected update (exit 6) from an unknown or completed
// credential (4), a server that is away (3) and a workflow that never answered (1).
func classifyUpdateError(ctx context.Context, c client.Client, err error, id, what string, timedOut bool, timeout time.Duration) error {
	var timeoutErr *client.WorkflowUpdateServiceTimeoutOrCanceledError
	if timedOut || errors.As(err, &timeoutErr) {
		return fail(exitFailure, "%s: no answer within %s; is a worker polling the credential's task queue?", what, timeout)
	}
	var notFound *serviceerror.NotFound
	if errors.As(err, &notFound) {
		return notRunning(ctx, c, err, id, what)
	}
	// The handlers themselves fail only when the workflow is cancelled (or an activity
	// error surfaces); a plain application error is the validator's refusal.
	var appErr *temporal.ApplicationError
	var actErr *temporal.ActivityError
	var canceled *temporal.CanceledError
	var wfTimeout *temporal.TimeoutError
	if errors.As(err, &appErr) && !errors.As(err, &actErr) && !errors.As(err, &canceled) && !errors.As(err, &wfTimeout) {
		return fail(exitRejected, "%s rejected by the workflow: %s", what, appErr.Message())
	}
	return classifyServerError(err, "%s", what)
}

// notRunning explains a NotFound answer: the credential may exist but be closed
// (retired, terminated), which deserves a better message than "no such credential".
func notRunning(ctx context.Context, c client.Client, err error, id, what string) error {
	dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	d, derr := c.DescribeWorkflow(dctx, id, "")
	if derr == nil {
		if s := d.RawResponse.GetWorkflowExecutionInfo().GetStatus(); s != enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING {
			return fail(exitUnknown, "%s: credential %q is not running (its workflow is %s)", what, id, statusName(s))
		}
	}
	return classifyServerError(err, "%s", what)
}

// statusName renders WORKFLOW_EXECUTION_STATUS_COMPLETED as "completed".
func statusName(s enumspb.WorkflowExecutionStatus) string {
	return strings.ToLower(s.String())
}

func (a *app) retire(ctx context.Context, args []string) error {
	fs := a.newFlags("retire", "retire ID -yes")
	yes := fs.Bool("yes", false, "confirm: delete the credential's secrets from the token store and complete its workflow")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	id, err := idArg(fs, pos)
	if err != nil {
		return err
	}
	if !*yes {
		return fail(exitBadInput, "retiring %s deletes its secrets (refresh and access token) from the token store "+
			"and completes its workflow; it cannot be undone (start it again with new grant material).\n"+
			"Run `starter retire %s -yes` to go ahead.", id, id)
	}
	c, err := a.dial(ctx)
	if err != nil {
		return err
	}
	defer c.Close()
	if err := c.SignalWorkflow(ctx, id, "", workflows.SignalRetire, nil); err != nil {
		var notFound *serviceerror.NotFound
		if errors.As(err, &notFound) {
			return notRunning(ctx, c, err, id, "retire "+id)
		}
		return classifyServerError(err, "retire credential %q", id)
	}
	fmt.Fprintf(a.stdout, "sent retire to credential %s; waiting for its workflow to complete\n", id)
	return a.awaitClosed(ctx, c, id, retireWait)
}

// awaitClosed polls DescribeWorkflow until the workflow has closed.
func (a *app) awaitClosed(ctx context.Context, c client.Client, id string, wait time.Duration) error {
	deadline := time.Now().Add(wait)
	for {
		dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		d, err := c.DescribeWorkflow(dctx, id, "")
		cancel()
		if err != nil {
			return classifyServerError(err, "describe credential %q", id)
		}
		info := d.RawResponse.GetWorkflowExecutionInfo()
		switch s := info.GetStatus(); s {
		case enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING:
		case enumspb.WORKFLOW_EXECUTION_STATUS_COMPLETED:
			state := a.finalState(ctx, c, id, info.GetExecution().GetRunId())
			fmt.Fprintf(a.stdout, "credential %s retired: workflow completed at %s, final state %s; its secrets are deleted\n",
				id, info.GetCloseTime().AsTime().UTC().Format(time.RFC3339), state)
			return nil
		default:
			return fail(exitFailure, "credential %s: workflow ended %s instead of completing; its secrets may still be in the store", id, statusName(s))
		}
		if time.Now().After(deadline) {
			return fail(exitFailure, "credential %s still running %s after the retire signal; is a worker polling its task queue? "+
				"check with `starter status %s`", id, wait, id)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// finalState reads the completed workflow's result: its last Status.
func (a *app) finalState(ctx context.Context, c client.Client, id, runID string) string {
	gctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	var st workflows.Status
	if err := c.GetWorkflow(gctx, id, runID).Get(gctx, &st); err != nil || st.State == "" {
		return "unknown"
	}
	return string(st.State)
}
