// Package workflows holds CredentialWorkflow: one durable workflow per credential that
// sleeps until its token is due, refreshes it through a retrying activity, records every
// outcome in a secret-free Status, and parks in NEEDS_REAUTH when the provider says the
// grant is dead. The schedule is the pure function NextWakeup; this file is the state
// machine around it.
package workflows

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/log"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/tokenwarden/tokenwarden/activities"
	cred "github.com/tokenwarden/tokenwarden/internal/credential"
	"github.com/tokenwarden/tokenwarden/internal/provider/catalog"
)

// Typed search attributes. They hold plaintext in the server's visibility store, so
// they carry a state, a provider name and a time — never a secret.
var (
	SearchState     = temporal.NewSearchAttributeKeyKeyword("TokenState")
	SearchProvider  = temporal.NewSearchAttributeKeyKeyword("TokenProvider")
	SearchExpiresAt = temporal.NewSearchAttributeKeyTime("TokenExpiresAt")
)

// changeInputRules versions the rules a run's input is held to (inputRules): runs
// recorded before a rule replay with the rules they started under; every new run, a
// continue-as-new included, is held to the current ones. Its ID is the one the first
// version was recorded under.
const changeInputRules = "strict-provider-config"

// changeStateSearchAttributes: the search attributes change only with the state (see
// publish); runs recorded before it upserted TokenExpiresAt on every refresh.
const changeStateSearchAttributes = "state-search-attributes"

// changeOutboxRoute: a refresh whose token set may wait in one worker's outbox goes to
// that worker's queue (Status.Outbox); runs recorded before it retried on the fleet's.
// Asked only when a failure names an outbox queue, so other histories carry no marker.
const changeOutboxRoute = "outbox-route"

// ErrTypeInvalidInput is the failure type of a workflow started with bad input: the
// activities' own, so that one name means bad input wherever it is raised.
const ErrTypeInvalidInput = activities.ErrTypeInvalidInput

// CredentialWorkflow keeps one credential alive. It returns only if its input is invalid
// or it continues as new; otherwise it runs forever.
func CredentialWorkflow(ctx workflow.Context, in CredentialInput) (Status, error) {
	info := workflow.GetInfo(ctx)
	rules := inputRules(workflow.GetVersion(ctx, changeInputRules, workflow.DefaultVersion, workflow.Version(currentRules)))
	if err := in.validate(info.WorkflowExecution.ID, rules); err != nil {
		return Status{}, temporal.NewNonRetryableApplicationError(err.Error(), ErrTypeInvalidInput, nil)
	}
	if err := checkCarried(info, in); err != nil {
		return Status{}, temporal.NewNonRetryableApplicationError(err.Error(), ErrTypeInvalidInput, nil)
	}
	c := &credential{
		in:                    in,
		rules:                 rules,
		stateSearchAttributes: workflow.GetVersion(ctx, changeStateSearchAttributes, workflow.DefaultVersion, 1) >= 1,
		log:                   workflow.GetLogger(ctx),
		refreshNow:            workflow.GetSignalChannel(ctx, SignalRefreshNow),
		reseed:                workflow.GetSignalChannel(ctx, SignalReseed),
		retire:                workflow.GetSignalChannel(ctx, SignalRetire),
		updatePolicy:          workflow.GetSignalChannel(ctx, SignalUpdatePolicy),
	}
	now := workflow.Now(ctx)
	if in.Carried != nil {
		c.st = *in.Carried
	} else {
		c.st = Status{ID: info.WorkflowExecution.ID, Provider: in.Provider, State: cred.StateSeeding, StateSince: now}
	}
	c.st.Config = in.Config
	c.st.Labels = mergeLabels(c.st.Labels, in.Labels)
	c.st.ProbeOnly = !catalog.CanRefresh(in.Provider)
	c.st.Timing = in.Policy.resolve(c.st.ProbeOnly, rules)
	c.st.Runs++

	if err := workflow.SetQueryHandler(ctx, QueryStatus, func() (Status, error) { return c.st, nil }); err != nil {
		return Status{}, fmt.Errorf("register status query: %w", err)
	}
	if err := workflow.SetUpdateHandlerWithOptions(ctx, UpdateRefresh, c.onRefreshUpdate,
		workflow.UpdateHandlerOptions{Validator: c.validateRefreshUpdate}); err != nil {
		return Status{}, fmt.Errorf("register refresh update: %w", err)
	}
	if err := workflow.SetUpdateHandlerWithOptions(ctx, UpdateReseed, c.onReseedUpdate,
		workflow.UpdateHandlerOptions{Validator: c.validateReseedUpdate}); err != nil {
		return Status{}, fmt.Errorf("register reseed update: %w", err)
	}
	workflow.Go(ctx, c.pumpSignals)

	if in.Seed != nil {
		if err := c.applySeed(ctx, *in.Seed); err != nil {
			return c.st, err
		}
	}
	return c.loop(ctx)
}

// checkCarried accepts carried state only in a run that a continue-as-new of this very
// credential started: the server sets ContinuedExecutionRunID, and no client can. Any
// other input that carries state (a workflow started by hand to take over a
// credential's stored secrets with its own configuration) is refused.
func checkCarried(info *workflow.Info, in CredentialInput) error {
	if in.Carried == nil {
		return nil
	}
	if info.ContinuedExecutionRunID == "" || info.Attempt > 1 || info.CronSchedule != "" {
		return errors.New("carried: accepted only from a continue-as-new of this credential's own workflow; " +
			"start a credential with a sealed seed instead (starter start, or starter seal for the temporal CLI)")
	}
	if in.Carried.ID != info.WorkflowExecution.ID {
		return fmt.Errorf("carried.id: %q is not this workflow's ID %q", in.Carried.ID, info.WorkflowExecution.ID)
	}
	if in.Carried.Provider != in.Provider {
		return fmt.Errorf("carried.provider: %q differs from provider %q", in.Carried.Provider, in.Provider)
	}
	return nil
}

// credential is the workflow's in-memory state between events.
type credential struct {
	in    CredentialInput
	rules inputRules
	// stateSearchAttributes: upsert the search attributes only on state changes
	// (changeStateSearchAttributes).
	stateSearchAttributes bool
	st                    Status
	log                   log.Logger
	refreshNow            workflow.ReceiveChannel
	reseed                workflow.ReceiveChannel
	retire                workflow.ReceiveChannel
	updatePolicy          workflow.ReceiveChannel
	// retireRequested is set by the retire signal; the main loop retires at its next turn.
	retireRequested bool
	// retireAutomatic: the retirement is the policy's (unused, on_invalid: retire), not a
	// human's; it revokes at the provider only with policy.revoke_on_retire.
	retireAutomatic bool
	// seedsQueued and seedsApplied count reseeds, so a reseed update can wait for its own.
	seedsQueued, seedsApplied int
	// notifying counts notification activities still running; continue-as-new waits.
	notifying int
	// rescheduled is set when a new policy arrives, so the sleep ends and the next
	// wake-up is computed again.
	rescheduled bool
	// pendingSeeds are validated reseeds waiting for the main loop, which alone runs
	// activities, so a reseed never races a refresh in the store.
	pendingSeeds []SeedEnvelope
	// refreshing is true while a refresh round runs; rounds counts finished rounds.
	// Requests that arrive during a round are coalesced into it.
	refreshing bool
	rounds     int
	// published is what the search attributes last said, to upsert only on change.
	published struct {
		state     cred.State
		expiresAt time.Time
		set       bool
	}
}

func (c *credential) loop(ctx workflow.Context) (Status, error) {
	for {
		if ctx.Err() != nil {
			// Cancelled by an operator: stop without touching the store.
			return c.st, temporal.NewCanceledError("credential workflow cancelled")
		}
		if c.retireRequested {
			return c.retireNow(ctx)
		}
		if len(c.pendingSeeds) > 0 {
			seed := c.pendingSeeds[0]
			c.pendingSeeds = c.pendingSeeds[1:]
			_ = c.applySeed(ctx, seed) // a failure is recorded in the status
			c.seedsApplied++
			continue
		}
		if c.shouldContinueAsNew(ctx) && c.drainedForContinueAsNew(ctx) {
			return c.continueAsNew(ctx)
		}
		now := workflow.Now(ctx)
		c.rescheduled = false
		action, at := NextWakeup(c.st, c.st.Timing, now)
		c.st.NextAction, c.st.NextActionAt = action, at
		if err := c.publish(ctx); err != nil {
			return c.st, err
		}
		wake := func() bool { return len(c.pendingSeeds) > 0 || c.retireRequested || c.rescheduled }
		if action == ActionAwaitReseed {
			// Only a human can help; refresh requests are refused while parked.
			_ = workflow.Await(ctx, wake)
			continue
		}
		if action == ActionRemind && !at.After(now) {
			c.remind(ctx)
			continue
		}
		if action == ActionUsageCheck && !at.After(now) {
			if c.unused(ctx) {
				c.retireAutomatic = true
				return c.retireNow(ctx)
			}
			continue
		}
		if !at.After(now) {
			if action == ActionProbe || (action == ActionRetry && c.st.ProbeOnly) {
				c.probe(ctx)
			} else {
				c.refresh(ctx, action)
			}
			continue
		}
		// Sleep until the due time, or until a signal or update asks for something.
		_, _ = workflow.AwaitWithOptions(ctx, workflow.AwaitOptions{
			Timeout:      at.Sub(now),
			TimerOptions: workflow.TimerOptions{Summary: timerSummary(c.st, action, at)},
		}, func() bool {
			return c.st.RefreshRequested || wake()
		})
	}
}

// applySeed stores human-supplied grant material and makes the credential ACTIVE again.
// Without an access token in the seed, a refresh follows at once.
func (c *credential) applySeed(ctx workflow.Context, seed SeedEnvelope) error {
	actx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: 30 * time.Second,
		RetryPolicy: &temporal.RetryPolicy{
			InitialInterval:        time.Second,
			BackoffCoefficient:     2,
			MaximumInterval:        time.Minute,
			NonRetryableErrorTypes: []string{activities.ErrTypeInvalidInput},
		},
	})
	var a *activities.Activities
	var res activities.SeedResult
	err := workflow.ExecuteActivity(withSummary(actx, "seed: store the sealed grant material"), a.Seed, activities.SeedRequest{
		CredentialID: c.st.ID,
		Provider:     c.st.Provider,
		Config:       c.st.Config,
		Seed:         seed,
	}).Get(ctx, &res)
	if err != nil {
		c.st.LastError = "seed failed: " + errorMessage(err)
		return err
	}
	c.st.Version = res.Version
	c.st.AccessExpiresAt = res.AccessExpiresAt
	c.st.AccessRenewableAt = time.Time{}
	c.st.RefreshExpiresAt = time.Time{}
	c.st.LastRefreshAt = res.SeededAt
	c.st.ConsecutiveFailures = 0
	c.st.RetryNotBefore = time.Time{}
	c.st.LastError, c.st.LastErrorCode = "", ""
	// Without an access token in the seed, refresh at once. A sealed seed's content only
	// the activity sees; a plaintext one (histories from before sealing) says it here.
	c.st.RefreshRequested = c.st.RefreshRequested || (seed.AccessToken == "" && !res.AccessToken)
	c.st.SeededAt = res.SeededAt
	// New grant material replaces whatever an outbox may hold (its entry is dropped as
	// older than the store when that worker next runs).
	c.st.Outbox = nil
	c.setState(ctx, cred.StateActive)
	c.reviewIncident(ctx)
	return nil
}

// round brackets one refresh or probe: while it runs, refresh requests coalesce into
// it and the state reads REFRESHING; settle ends it, and a state that did not change
// keeps its "since".
type round struct {
	c             *credential
	ctx           workflow.Context
	previous      cred.State
	previousSince time.Time
}

func (c *credential) beginRound(ctx workflow.Context) *round {
	c.refreshing = true
	c.st.RefreshRequested = false
	c.st.LastAttemptAt = workflow.Now(ctx)
	r := &round{c: c, ctx: ctx, previous: c.st.State, previousSince: c.st.StateSince}
	c.setState(ctx, cred.StateRefreshing)
	return r
}

func (r *round) settle(s cred.State) {
	c := r.c
	if s == r.previous {
		c.st.State, c.st.StateSince = s, r.previousSince
	} else {
		c.setState(r.ctx, s)
	}
	c.refreshing = false
	c.rounds++
	c.reviewIncident(r.ctx)
}

// succeed ends a round that worked.
func (r *round) succeed() {
	r.c.st.ConsecutiveFailures = 0
	r.c.st.RetryNotBefore = time.Time{}
	r.c.st.LastError, r.c.st.LastErrorCode = "", ""
	r.settle(cred.StateActive)
}

// park ends a round in NEEDS_REAUTH: only a human can help now.
func (r *round) park(reason, code string) {
	c := r.c
	c.st.LastError, c.st.LastErrorCode = reason, code
	c.st.ConsecutiveFailures = 0
	c.st.RefreshRequested = false
	r.settle(cred.StateNeedsReauth)
	c.log.Warn("credential needs re-authorisation", "code", code)
}

// fail ends a round whose activity failed: permanent errors park the credential,
// anything else counts towards the backoff.
func (r *round) fail(err error) {
	c := r.c
	now := workflow.Now(r.ctx)
	var detail activities.FailureDetail
	var appErr *temporal.ApplicationError
	errType := ""
	if errors.As(err, &appErr) {
		errType = appErr.Type()
		if appErr.HasDetails() {
			_ = appErr.Details(&detail)
		}
	}
	if errType == activities.ErrTypePermanent || errType == activities.ErrTypeInvalidInput {
		r.park(errorMessage(err), detail.Code)
		return
	}
	c.st.LastError, c.st.LastErrorCode = errorMessage(err), detail.Code
	c.routeToOutbox(r.ctx, err, detail)
	// Back off from the end of the failed round, not its start: a round of slow
	// attempts must not eat into the pause that follows it.
	c.st.LastAttemptAt = now
	c.st.ConsecutiveFailures++
	c.st.RetryNotBefore = time.Time{}
	if detail.RetryAfter > 0 {
		c.st.RetryNotBefore = now.Add(detail.RetryAfter)
	}
	next := cred.StateDegraded
	if !c.st.AccessExpiresAt.IsZero() && !now.Before(c.st.AccessExpiresAt) {
		next = cred.StateExpired
	}
	r.settle(next)
	c.log.Warn("round failed", "failures", c.st.ConsecutiveFailures, "code", detail.Code)
}

// providerActivityOptions: a few quick attempts per round; the workflow's own backoff
// (NextWakeup) spaces out the rounds forever. The activity heartbeats while it waits for
// the provider, so a worker that dies mid-call is noticed in seconds rather than at the
// start-to-close timeout.
func providerActivityOptions(ctx workflow.Context) workflow.Context {
	return workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: activities.StartToCloseTimeout,
		HeartbeatTimeout:    activities.HeartbeatTimeout,
		RetryPolicy: &temporal.RetryPolicy{
			InitialInterval:        time.Second,
			BackoffCoefficient:     2,
			MaximumInterval:        30 * time.Second,
			MaximumAttempts:        4,
			NonRetryableErrorTypes: []string{activities.ErrTypePermanent, activities.ErrTypeInvalidInput},
		},
	})
}

// routeToOutbox follows a failure that names a worker's outbox queue
// (activities.FailureDetail.OutboxQueue): the next rounds run on that queue. A routed
// round that no worker took within OutboxWait gives up on a queue whose outbox was only
// suspected, and says what to do about one that holds the token set.
func (c *credential) routeToOutbox(ctx workflow.Context, err error, detail activities.FailureDetail) {
	if detail.OutboxQueue != "" && (detail.Code == activities.CodeOutboxPending || detail.Code == activities.CodeOutboxElsewhere) {
		if workflow.GetVersion(ctx, changeOutboxRoute, workflow.DefaultVersion, 1) < 1 {
			return
		}
		c.st.Outbox = &OutboxRoute{Queue: detail.OutboxQueue, Held: detail.Code == activities.CodeOutboxPending, InterruptedAt: detail.InterruptedAt}
		return
	}
	var timeout *temporal.TimeoutError
	if c.st.Outbox == nil || c.st.Outbox.GaveUp || !errors.As(err, &timeout) || timeout.TimeoutType() != enumspb.TIMEOUT_TYPE_SCHEDULE_TO_START {
		return
	}
	if c.st.Outbox.Held {
		c.st.LastError = fmt.Sprintf("the rotated token set waits in the outbox of the worker on task queue %s, which did not take the refresh within %s: "+
			"start that worker again on the same data directory (no other worker presents anything meanwhile), or reseed the credential",
			c.st.Outbox.Queue, OutboxWait)
		c.st.LastErrorCode = "outbox_unreachable"
		return
	}
	c.st.Outbox.GaveUp = true
	c.st.LastError = fmt.Sprintf("the worker on task queue %s, whose outbox might hold the rotated token set, did not take the refresh within %s; "+
		"the fleet refreshes now, treating the interrupted attempt's outcome as uncertain", c.st.Outbox.Queue, OutboxWait)
	c.st.LastErrorCode = "outbox_unreachable"
}

// refresh runs one refresh round.
func (c *credential) refresh(ctx workflow.Context, why Action) {
	r := c.beginRound(ctx)
	var a *activities.Activities
	var res activities.RefreshResult
	summary := fmt.Sprintf("refresh v%d→v%d (%s)", c.st.Version, c.st.Version+1, why)
	actx := providerActivityOptions(ctx)
	req := activities.RefreshRequest{
		CredentialID:    c.st.ID,
		Provider:        c.st.Provider,
		Config:          c.st.Config,
		ExpectedVersion: c.st.Version,
	}
	if route := c.st.Outbox; route != nil {
		req.OutboxRouted, req.InterruptedAt = true, route.InterruptedAt
		if !route.GaveUp {
			opts := workflow.GetActivityOptions(actx)
			opts.TaskQueue = route.Queue
			opts.ScheduleToStartTimeout = OutboxWait
			actx = workflow.WithActivityOptions(actx, opts)
			summary += " on the worker holding its outbox"
		}
	}
	err := workflow.ExecuteActivity(withSummary(actx, summary), a.Refresh, req).Get(ctx, &res)
	if err != nil {
		r.fail(err)
		return
	}
	c.st.Outbox = nil
	c.st.Version = res.Version
	c.st.AccessExpiresAt = res.AccessExpiresAt
	c.st.AccessRenewableAt = res.RenewableAt
	c.st.RefreshExpiresAt = res.RefreshExpiresAt
	c.st.LastRefreshAt = res.RefreshedAt
	c.st.Refreshes++
	r.succeed()
	c.log.Info("credential refreshed", "reason", string(why), "version", res.Version, "access_expires_at", res.AccessExpiresAt)
	c.runSinks(ctx) // workflows/sinks.go: fire-and-forget, never changes the state
}

// probe asks the provider whether the access token still works, spending nothing.
// A rejected token is refreshed at once when the credential can refresh; otherwise
// only a human can help.
func (c *credential) probe(ctx workflow.Context) {
	r := c.beginRound(ctx)
	var a *activities.Activities
	var res activities.ProbeResult
	err := workflow.ExecuteActivity(withSummary(providerActivityOptions(ctx), "probe"), a.Probe, activities.ProbeRequest{
		CredentialID: c.st.ID,
		Provider:     c.st.Provider,
		Config:       c.st.Config,
	}).Get(ctx, &res)
	if err != nil {
		r.fail(err)
		return
	}
	c.st.LastProbeAt = res.CheckedAt
	c.st.Probes++
	c.st.Labels = mergeLabels(c.st.Labels, res.Labels)
	if res.LastUsedAt.After(c.st.LastUsedAt) {
		c.st.LastUsedAt = res.LastUsedAt
	}
	if res.Valid {
		r.succeed()
		return
	}
	if !c.st.ProbeOnly {
		r.succeed()
		c.st.RefreshRequested = true
		c.log.Warn("probe: the provider rejected the access token; refreshing", "code", res.Code)
		return
	}
	if c.st.Timing.OnInvalid == OnInvalidRetire {
		r.succeed()
		c.st.LastError, c.st.LastErrorCode = "retired: the provider no longer accepts the access token", res.Code
		c.retireRequested, c.retireAutomatic = true, true
		return
	}
	r.park("probe: the provider no longer accepts the access token", res.Code)
}

func (c *credential) setState(ctx workflow.Context, s cred.State) {
	if c.st.State != s {
		c.st.StateSince = workflow.Now(ctx)
	}
	c.st.State = s
}

// publish upserts the search attributes when they changed, and the current details.
// REFRESHING is not published: it lasts seconds, and skipping it saves one history
// event per cycle. Runs that started with changeStateSearchAttributes upsert only when
// the state changes: TokenExpiresAt is set while the credential is not ACTIVE (when its
// access token runs or ran out, what incidents sort by) and unset when it is ACTIVE
// again, because each upsert is a visibility write that costs the engine as much as
// the rest of a cycle. Older runs published the expiry on every refresh.
func (c *credential) publish(ctx workflow.Context) error {
	c.describe(ctx)
	p := &c.published
	expiresAt := c.st.AccessExpiresAt
	if c.stateSearchAttributes && c.st.State == cred.StateActive {
		expiresAt = time.Time{}
	}
	if p.set && p.state == c.st.State && p.expiresAt.Equal(expiresAt) {
		return nil
	}
	updates := []temporal.SearchAttributeUpdate{
		SearchState.ValueSet(string(c.st.State)),
		SearchProvider.ValueSet(c.st.Provider),
	}
	if expiresAt.IsZero() {
		updates = append(updates, SearchExpiresAt.ValueUnset())
	} else {
		updates = append(updates, SearchExpiresAt.ValueSet(expiresAt))
	}
	if err := workflow.UpsertTypedSearchAttributes(ctx, updates...); err != nil {
		return fmt.Errorf("upsert search attributes: %w", err)
	}
	p.state, p.expiresAt, p.set = c.st.State, expiresAt, true
	return nil
}

func (c *credential) historyLimit() int {
	if c.in.HistoryEventLimit > 0 {
		return c.in.HistoryEventLimit
	}
	return DefaultEventLimit
}

func (c *credential) shouldContinueAsNew(ctx workflow.Context) bool {
	info := workflow.GetInfo(ctx)
	return info.GetContinueAsNewSuggested() || info.GetCurrentHistoryLength() >= c.historyLimit()
}

// drainedForContinueAsNew serves signals still buffered in their channels and reports
// whether the run may end now: no reseed waiting, no update handler running.
func (c *credential) drainedForContinueAsNew(ctx workflow.Context) bool {
	for {
		if c.refreshNow.ReceiveAsync(nil) {
			c.onRefreshNow()
			continue
		}
		var raw json.RawMessage
		if c.reseed.ReceiveAsync(&raw) {
			c.onReseed(raw)
			continue
		}
		if c.updatePolicy.ReceiveAsync(&raw) {
			c.onUpdatePolicy(raw)
			continue
		}
		if c.retire.ReceiveAsync(nil) {
			c.retireRequested = true
			continue
		}
		break
	}
	// A waiting refresh update has set RefreshRequested; the loop serves it first.
	// Notifications still running finish in this run rather than being abandoned.
	return len(c.pendingSeeds) == 0 && !c.retireRequested && c.notifying == 0 && workflow.AllHandlersFinished(ctx)
}

// continueAsNew hands the secret-free status to a fresh run. A pending refresh request
// travels in it; reseeds and updates were served before (drainedForContinueAsNew).
func (c *credential) continueAsNew(ctx workflow.Context) (Status, error) {
	next := c.in
	next.Seed = nil
	carried := c.st
	next.Carried = &carried
	c.log.Info("continuing as new", "runs", c.st.Runs, "history_length", workflow.GetInfo(ctx).GetCurrentHistoryLength())
	return c.st, workflow.NewContinueAsNewError(ctx, CredentialWorkflow, next)
}

// mergeLabels returns labels with more's entries added or replaced, as a new map (the
// status is handed out by the query handler while the workflow runs).
func mergeLabels(labels, more map[string]string) map[string]string {
	if len(more) == 0 {
		return labels
	}
	merged := maps.Clone(labels)
	if merged == nil {
		merged = make(map[string]string, len(more))
	}
	maps.Copy(merged, more)
	return merged
}

// errorMessage is the innermost message of a Temporal error chain: the activity's
// own words, without the "activity error (type: ...)" wrapping.
func errorMessage(err error) string {
	var appErr *temporal.ApplicationError
	if errors.As(err, &appErr) {
		return appErr.Message()
	}
	var timeoutErr *temporal.TimeoutError
	if errors.As(err, &timeoutErr) {
		return "activity timed out: " + timeoutErr.Error()
	}
	return err.Error()
}
