package activities

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"

	"github.com/tokenwarden/tokenwarden/internal/leasetiming"
	"github.com/tokenwarden/tokenwarden/internal/outbox"
	"github.com/tokenwarden/tokenwarden/internal/provider"
	"github.com/tokenwarden/tokenwarden/internal/store"
)

// RefreshRequest asks for one refresh of a credential.
type RefreshRequest struct {
	CredentialID string
	Provider     string
	Config       provider.Config
	// ExpectedVersion is the store version the workflow last saw. A newer stored version
	// means an earlier attempt already committed, and this attempt must not refresh again.
	ExpectedVersion int64
	// OutboxRouted is set when the workflow sent this attempt to the queue of the worker
	// whose outbox may hold the token set (FailureDetail.OutboxQueue): it commits that
	// outbox's entry, or refreshes, but never routes again. InterruptedAt, when set, is
	// the interrupted attempt whose lease the worker that routed it found.
	OutboxRouted  bool      `json:",omitempty"`
	InterruptedAt time.Time `json:",omitzero"`
}

// RefreshResult is the metadata of the committed token set. It never carries a token.
type RefreshResult struct {
	Version          int64
	AccessExpiresAt  time.Time
	RefreshExpiresAt time.Time
	RefreshedAt      time.Time
	// AlreadyCommitted: an earlier attempt had committed; the provider was not called.
	AlreadyCommitted bool
	// Rotated: the provider issued a new refresh token.
	Rotated bool
	// RenewableAt is the provider's TokenSet.RenewableAt: no refresh before it yields a
	// new token. Zero when it gave none, or the result is an earlier attempt's.
	RenewableAt time.Time
}

// Refresh runs the refresh protocol:
//  1. read the record; if it is newer than the workflow expected, return it (an
//     earlier attempt committed), unless its access token lived below the lifetime
//     floor, which that attempt reported as a provider error: then refresh on top; if
//     it is older, the store went back, and nothing is presented;
//  2. take the refresh lease (a fresh owner, timed by the store's clock), or report
//     "in flight" without calling the provider;
//  3. commit an earlier attempt's token set left in the outbox, if any, and stop there;
//     if the lease was left by an attempt on another worker, whose outbox this worker
//     cannot see, release it and send the workflow there, presenting nothing;
//  4. present the refresh token once, with a deadline shorter than the lease;
//  5. commit the new token set as version v+1 (compare-and-swap on the version and the
//     lease owner) before anything else, retrying until the lease nears its end, then
//     into the outbox;
//  6. an access token below the lifetime floor is, once stored, a provider error.
func (a *Activities) Refresh(ctx context.Context, req RefreshRequest) (RefreshResult, error) {
	var calledAt time.Time
	res, err := a.refresh(ctx, req, &calledAt)
	a.recordRefresh(req.Provider, res, err, calledAt)
	return res, err
}

// refresh is Refresh without the metrics; it sets *calledAt when it calls the provider.
func (a *Activities) refresh(ctx context.Context, req RefreshRequest, calledAt *time.Time) (RefreshResult, error) {
	log := a.logger().With("credential", req.CredentialID, "provider", req.Provider)
	p, err := a.Providers.Lookup(req.Provider)
	if err != nil {
		return RefreshResult{}, temporal.NewNonRetryableApplicationError(err.Error(), ErrTypeInvalidInput, nil)
	}
	if err := p.ValidateConfig(req.Config); err != nil {
		return RefreshResult{}, temporal.NewNonRetryableApplicationError("config."+err.Error(), ErrTypeInvalidInput, nil)
	}

	rec, err := a.Store.Get(ctx, req.CredentialID)
	if errors.Is(err, store.ErrNotFound) {
		return RefreshResult{}, temporal.NewNonRetryableApplicationError(
			"the token store has no record of this credential; reseed it", ErrTypePermanent, nil,
			FailureDetail{Code: "not_in_store"})
	}
	if err != nil {
		return RefreshResult{}, storeError("read credential", err)
	}
	if rec.Version < req.ExpectedVersion {
		// The store is behind what it already told the workflow: restored from a
		// backup, or rolled back by someone who can write the database (the sealed
		// secrets are bound to their version, so a whole older row is the only rollback
		// that opens). Its refresh token was very likely consumed since: presenting it
		// could trip the provider's reuse detection and revoke the grant.
		log.Error("the token store holds an older version than the workflow last saw; nothing is presented",
			"store_version", rec.Version, "expected_version", req.ExpectedVersion)
		return RefreshResult{}, temporal.NewNonRetryableApplicationError(
			fmt.Sprintf("the token store holds version %d of this credential, older than the version %d already committed: "+
				"the store went back (restored or rolled back); reseed the credential", rec.Version, req.ExpectedVersion),
			ErrTypePermanent, nil, FailureDetail{Code: "store_went_back"})
	}
	if rec.Version > req.ExpectedVersion && !a.tooShort(rec) {
		log.Info("refresh already committed by an earlier attempt", "version", rec.Version)
		return resultOf(rec, true, false), nil
	}
	// A newer version whose access token lived too short was reported as a provider
	// error (below): its token set is stored, and this round refreshes on top of it.
	if err := checkBinding(rec, req.Provider, req.Config); err != nil {
		return RefreshResult{}, err
	}
	// A login-based provider (Zogo with a stored password, SMSBAT ChatHub) needs no refresh
	// token: its ValidateGrant accepts the stored login instead.
	if rec.Secrets.RefreshToken == "" && provider.ValidateGrantFor(p, req.Config, provider.Grant{ClientSecret: rec.Secrets.ClientSecret,
		Username: rec.Secrets.Username, Password: rec.Secrets.Password}) != nil {
		return RefreshResult{}, temporal.NewNonRetryableApplicationError(
			"no refresh token stored; reseed the credential", ErrTypePermanent, nil,
			FailureDetail{Code: "no_refresh_token"})
	}

	owner := a.leaseOwner(ctx)
	now := a.now()
	// The lease's end as this worker can count it: from before it asked, so no later
	// than the store's own expiry. The commit retries until a margin before it.
	commitDeadline := now.Add(a.leaseDuration() - leasetiming.Margin)
	previous, err := a.Store.AcquireLease(ctx, req.CredentialID, owner, a.leaseDuration())
	if errors.Is(err, store.ErrLeaseHeld) {
		// The expiry is on the store's clock, this worker's may differ: the wait is
		// kept within what one lease can last.
		wait := min(max(previous.ExpiresAt.Sub(now), 0), a.leaseDuration()) + time.Second
		return RefreshResult{}, temporal.NewApplicationErrorWithOptions(
			fmt.Sprintf("another refresh attempt holds the lease until %s", previous.ExpiresAt.Format(time.RFC3339)),
			ErrTypeInFlight, temporal.ApplicationErrorOptions{NextRetryDelay: wait})
	}
	if err != nil {
		return RefreshResult{}, storeError("take refresh lease", err)
	}
	// An earlier attempt's token set that the store did not take is committed before
	// anything is presented: the provider has already consumed the stored refresh token.
	if res, done, err := a.commitOutbox(ctx, log, rec, owner, commitDeadline); done {
		return res, err
	}
	// A lease left behind by another attempt means that attempt may have presented the
	// token and died before committing: its outcome is uncertain.
	interrupted := previous.Owner != "" && previous.Owner != owner
	if q := outboxQueueOf(previous.Owner); interrupted && !req.OutboxRouted && q != "" && q != a.OutboxQueue && previousAttemptCommitting(ctx) == q {
		// That attempt ran on another worker and had the provider's answer (its last
		// heartbeat said so): the rotated token set may wait in its outbox, which only
		// it can read. Presenting the stored token here could spend it a second time.
		// An attempt that died before the answer left nothing in any outbox, and is
		// settled here as any interrupted one.
		a.releaseLease(ctx, req.CredentialID, owner)
		log.Warn("an interrupted attempt ran on another worker; sending the refresh to its outbox queue, presenting nothing",
			"outbox_queue", q, "interrupted_at", previous.TakenAt)
		return RefreshResult{}, temporal.NewNonRetryableApplicationError(
			fmt.Sprintf("an interrupted refresh attempt (at %s) ran on the worker of task queue %s, whose outbox may hold the rotated token set; "+
				"the refresh moves there and nothing was presented here", previous.TakenAt.Format(time.RFC3339), q),
			ErrTypeStore, nil, FailureDetail{Code: CodeOutboxElsewhere, OutboxQueue: q, InterruptedAt: previous.TakenAt})
	}
	if !interrupted && !req.InterruptedAt.IsZero() {
		// The worker that routed this attempt here found the interrupted lease and
		// released it; the interruption is this worker's own.
		interrupted, previous = true, store.Lease{TakenAt: req.InterruptedAt}
	}
	var progress atomic.Pointer[RefreshProgress]
	stopHeartbeat := heartbeat(ctx, &progress)
	defer stopHeartbeat()
	// The worker checked the lease against this bound (internal/leasetiming): whatever
	// the store calls below cost, the provider's answer arrives, or is abandoned,
	// within it, leaving the commit its retries before the lease ends.
	work, cancelWork := context.WithTimeout(ctx, leasetiming.BeforeCommit(a.providerTimeout()))
	defer cancelWork()

	grant := provider.Grant{
		RefreshToken: rec.Secrets.RefreshToken,
		ClientSecret: rec.Secrets.ClientSecret,
		Username:     rec.Secrets.Username,
		Password:     rec.Secrets.Password,
		AccessToken:  rec.Secrets.AccessToken,
	}
	if grant.ParentAccessToken, err = a.parentToken(work, p, req.Config); err != nil {
		a.releaseLease(ctx, req.CredentialID, owner)
		return RefreshResult{}, err
	}
	if interrupted {
		if err := a.settleInterrupted(work, p, req, grant, owner, previous); err != nil {
			return RefreshResult{}, err
		}
		log.Info("an interrupted attempt left a lease; presenting the refresh token once", "interrupted_at", previous.TakenAt)
	}

	*calledAt = time.Now()
	callCtx, cancel := context.WithTimeout(work, a.providerTimeout())
	tokens, err := presentOnce(callCtx, p, req.Provider, req.Config, grant)
	cancel()
	if err != nil {
		if parent := req.Config.Parent; parent != "" && providerCode(err) == provider.CodeParentRejected {
			return RefreshResult{}, a.parentRejected(ctx, req.CredentialID, parent, owner)
		}
		return RefreshResult{}, a.refreshFailure(ctx, log, req.CredentialID, owner, err, interrupted, previous)
	}
	// Test builds can kill the process here: the provider has rotated, nothing is stored.
	faultPoint(FaultAfterProviderBeforeCommit)
	if a.OutboxQueue != "" {
		// The next heartbeat (HeartbeatInterval) carries it, long before the commit's
		// retries could end in the outbox: a retry on another worker learns where the
		// token set may wait. A commit that succeeds at once costs no extra call.
		progress.Store(&RefreshProgress{CommittingOn: a.OutboxQueue})
	}

	next := rec
	if next.Secrets.Binding == "" {
		// Seeded before bindings were recorded: bind it to the configuration it has
		// been refreshed with (checkBinding).
		next.Secrets.Binding = string(provider.BindingOf(req.Provider, req.Config))
	}
	next.Secrets.AccessToken = tokens.AccessToken
	next.TokenType = tokens.TokenType
	next.AccessExpiresAt = tokens.AccessExpiresAt.UTC()
	rotated := tokens.RefreshToken != "" && tokens.RefreshToken != rec.Secrets.RefreshToken
	if tokens.RefreshToken != "" {
		next.Secrets.RefreshToken = tokens.RefreshToken
		next.RefreshExpiresAt = tokens.RefreshExpiresAt.UTC()
	} else if !tokens.RefreshExpiresAt.IsZero() {
		next.RefreshExpiresAt = tokens.RefreshExpiresAt.UTC()
	}
	saved, err := a.commit(ctx, next, rec.Version, owner, commitDeadline)
	if err != nil {
		if errors.Is(err, store.ErrVersionConflict) || errors.Is(err, store.ErrNotFound) || a.Outbox == nil {
			// Someone else committed, or the credential was deleted: the token set
			// has no place to go. Say so loudly; the lease stays, so the next attempt
			// treats the outcome as uncertain.
			log.Error("COMMIT FAILED after a successful provider refresh; the new token is lost unless the store recovers",
				"expected_version", rec.Version, "error", err)
			return RefreshResult{}, storeError("commit refreshed token", err)
		}
		entry := outbox.Entry{Record: next, Expected: rec.Version, Rotated: rotated, RenewableAt: tokens.RenewableAt.UTC()}
		if oerr := a.Outbox.Put(entry); oerr != nil {
			log.Error("COMMIT FAILED after a successful provider refresh, and the outbox did not take the token set; it is lost unless the store recovers",
				"expected_version", rec.Version, "error", err, "outbox_error", oerr)
			return RefreshResult{}, storeError("commit refreshed token", errors.Join(err, oerr))
		}
		log.Warn("the token store did not take the refreshed token set before the lease's end; it is kept in the outbox, and the next attempt commits it before presenting anything",
			"expected_version", rec.Version, "error", err, "outbox_queue", a.OutboxQueue)
		if a.OutboxQueue != "" {
			// Only this worker can read the entry: the retry must not go to the
			// fleet's queue, where another worker would find the lease expired.
			return RefreshResult{}, temporal.NewNonRetryableApplicationError(
				"token store: commit refreshed token (kept in the outbox of task queue "+a.OutboxQueue+")", ErrTypeStore, err,
				FailureDetail{Code: CodeOutboxPending, OutboxQueue: a.OutboxQueue})
		}
		return RefreshResult{}, storeError("commit refreshed token (kept in the outbox)", err)
	}
	log.Info("refresh committed", "version", saved.Version, "access_expires_at", saved.AccessExpiresAt, "rotated", rotated)
	if a.tooShort(saved) {
		// Stored first (the refresh token may have rotated), then reported: a lifetime
		// this short is the provider's error, not a schedule to follow.
		lifetime := saved.AccessExpiresAt.Sub(saved.UpdatedAt).Round(time.Millisecond)
		log.Warn("the provider issued an access token below the lifetime floor", "lifetime", lifetime, "floor", a.minAccessLifetime())
		return RefreshResult{}, temporal.NewApplicationErrorWithOptions(
			fmt.Sprintf("the provider issued an access token that lives %s, below the floor of %s (TOKENWARDEN_MIN_ACCESS_LIFETIME); "+
				"the new token set is stored, and the next refresh waits for the backoff", lifetime, a.minAccessLifetime()),
			ErrTypeTransient, temporal.ApplicationErrorOptions{
				// No quick retries within the round: each would spend another refresh.
				NonRetryable: true,
				Details:      []interface{}{FailureDetail{Code: CodeLifetimeTooShort, RetryAfter: a.minAccessLifetime()}},
			})
	}
	res := resultOf(saved, false, rotated)
	res.RenewableAt = tokens.RenewableAt.UTC()
	return res, nil
}

// commitOutbox commits the outbox's entry for the credential, if it has one, under
// the lease owner just took: done reports that the attempt ends here, with the
// committed result or an error, and nothing is presented. An entry the store has moved
// past (a reseed, or one committed whose removal failed) is dropped, and the attempt
// goes on.
func (a *Activities) commitOutbox(ctx context.Context, log *slog.Logger, rec store.Record, owner string,
	deadline time.Time) (res RefreshResult, done bool, err error) {
	if a.Outbox == nil {
		return RefreshResult{}, false, nil
	}
	entry, ok, err := a.Outbox.Get(rec.ID)
	if err != nil {
		// It may hold the only live refresh token: present nothing until someone looks.
		a.releaseLease(ctx, rec.ID, owner)
		log.Error("the outbox holds an entry for this credential that cannot be read; nothing is presented until it is fixed", "error", err)
		return RefreshResult{}, true, storeError("read the outbox", err)
	}
	if !ok {
		return RefreshResult{}, false, nil
	}
	switch {
	case entry.Expected < rec.Version:
		log.Warn("dropping an outbox entry the store has moved past", "entry_version", entry.Expected+1, "store_version", rec.Version)
		if err := a.Outbox.Remove(rec.ID); err != nil {
			log.Warn("could not remove the outbox entry", "error", err)
		}
		return RefreshResult{}, false, nil
	case entry.Expected > rec.Version:
		// The store went back (restored from a backup?): the entry's token set is newer
		// than anything stored, and presenting the stored token would spend a dead one.
		a.releaseLease(ctx, rec.ID, owner)
		log.Error("the outbox holds a token set newer than the store's; nothing is presented", "entry_version", entry.Expected+1, "store_version", rec.Version)
		return RefreshResult{}, true, temporal.NewNonRetryableApplicationError(
			fmt.Sprintf("the local outbox holds version %d of this credential but the token store is at version %d: the store went back; restore it or reseed",
				entry.Expected+1, rec.Version), ErrTypePermanent, nil, FailureDetail{Code: "store_behind_outbox"})
	}
	next := entry.Record
	next.LastUsedAt = rec.LastUsedAt // the store keeps the later of the two anyway
	saved, err := a.commit(ctx, next, entry.Expected, owner, deadline)
	if err != nil {
		// Nothing was presented: the lease can go, and the entry stays for the next attempt.
		a.releaseLease(ctx, rec.ID, owner)
		log.Warn("could not commit the outbox entry yet; nothing was presented", "entry_version", entry.Expected+1, "error", err)
		return RefreshResult{}, true, storeError("commit the outbox entry", err)
	}
	if err := a.Outbox.Remove(rec.ID); err != nil {
		// Harmless: the next attempt finds the store past it and drops it.
		log.Warn("committed the outbox entry but could not remove it", "error", err)
	}
	log.Info("committed the token set an earlier attempt left in the outbox", "version", saved.Version, "rotated", entry.Rotated)
	res = resultOf(saved, false, entry.Rotated)
	res.RenewableAt = entry.RenewableAt
	return res, true, nil
}

// parentRejected handles a child whose parent's token the provider refused: the child's
// own grant is fine, so instead of failing it asks the parent to refresh now and retries
// shortly with the parent's new token.
func (a *Activities) parentRejected(ctx context.Context, id, parent, owner string) error {
	a.releaseLease(ctx, id, owner)
	if a.Parents != nil {
		if err := a.Parents.RefreshNow(ctx, parent); err != nil {
			a.logger().Warn("could not ask the parent credential to refresh", "credential", id, "parent", parent, "error", err)
		}
	}
	a.logger().Info("parent token rejected; asked the parent to refresh", "credential", id, "parent", parent)
	return temporal.NewApplicationErrorWithOptions(
		fmt.Sprintf("the provider rejected parent credential %q's token; asked it to refresh", parent), ErrTypeTransient,
		temporal.ApplicationErrorOptions{NextRetryDelay: ParentRetryDelay,
			Details: []interface{}{FailureDetail{Code: provider.CodeParentRejected}}})
}

// parentToken reads the parent credential's current access token from the store, for
// a credential that is minted with it (config.parent); "" when there is no parent. The
// token is read at this moment and never carried through workflow history, and only
// for a parent the child's adapter accepts (checkParent).
func (a *Activities) parentToken(ctx context.Context, p provider.Provider, cfg provider.Config) (string, error) {
	if cfg.Parent == "" {
		return "", nil
	}
	prec, err := a.Store.Get(ctx, cfg.Parent)
	if err == nil {
		if err := checkParent(p, cfg, prec); err != nil {
			return "", err
		}
	}
	if err == nil && prec.Secrets.AccessToken != "" {
		// A child minted with the parent's token uses the parent: its use keeps the
		// parent from being retired as unused (policy.retire_after_unused).
		if terr := a.Store.TouchLastUsed(ctx, cfg.Parent, a.now()); terr != nil {
			a.logger().Warn("could not record the child's use of its parent", "parent", cfg.Parent, "error", terr)
		}
	}
	if err != nil || prec.Secrets.AccessToken == "" {
		return "", temporal.NewApplicationErrorWithOptions(
			fmt.Sprintf("parent credential %q has no access token in the store yet", cfg.Parent), ErrTypeTransient,
			temporal.ApplicationErrorOptions{NextRetryDelay: ParentRetryDelay, Details: []interface{}{FailureDetail{Code: "parent_missing"}}})
	}
	return prec.Secrets.AccessToken, nil
}

func providerCode(err error) string {
	var pe *provider.Error
	if errors.As(err, &pe) {
		return pe.Code
	}
	return ""
}

// settleInterrupted decides what to do after an interrupted attempt, before anything is
// presented. When the provider can say whether the stored refresh token is still live
// (RFC 7662 introspection), it is asked: a consumed token parks the credential at once,
// without the second presentation that would trip the provider's reuse detection. A
// live token means the dead attempt never got through, and the refresh goes ahead. A
// provider that cannot tell gets the token presented once more (nil).
func (a *Activities) settleInterrupted(ctx context.Context, p provider.Provider, req RefreshRequest,
	grant provider.Grant, owner string, previous store.Lease) error {
	checker, ok := p.(provider.RefreshTokenChecker)
	if !ok {
		return nil
	}
	callCtx, cancel := context.WithTimeout(ctx, a.providerTimeout())
	active, supported, err := checker.RefreshTokenActive(callCtx, req.Config, grant)
	cancel()
	if err != nil {
		return a.refreshFailure(ctx, a.logger().With("credential", req.CredentialID), req.CredentialID, owner, err, true, previous)
	}
	if !supported || active {
		return nil
	}
	a.releaseLease(ctx, req.CredentialID, owner)
	a.logger().Warn("interrupted refresh consumed the refresh token", "credential", req.CredentialID, "interrupted_at", previous.TakenAt)
	return temporal.NewNonRetryableApplicationError(
		fmt.Sprintf("%s (interrupted attempt at %s): the provider reports the stored refresh token inactive",
			ReasonInterruptedRefresh, previous.TakenAt.Format(time.RFC3339)),
		ErrTypePermanent, nil,
		FailureDetail{Code: "refresh_token_consumed", InterruptedAt: previous.TakenAt})
}

// RefreshProgress is the refresh activity's heartbeat detail, which Temporal hands to the
// next attempt of the same activity.
type RefreshProgress struct {
	// CommittingOn is the outbox queue of the worker that had the provider's answer and
	// was committing it: its outbox may hold the token set.
	CommittingOn string `json:"committing_on,omitempty"`
}

// previousAttemptCommitting is the outbox queue the previous attempt's last heartbeat
// named, "" when it named none (or this is the first attempt).
func previousAttemptCommitting(ctx context.Context) string {
	if !activity.IsActivity(ctx) || !activity.HasHeartbeatDetails(ctx) {
		return ""
	}
	var p RefreshProgress
	if activity.GetHeartbeatDetails(ctx, &p) != nil {
		return ""
	}
	return p.CommittingOn
}

// heartbeat records activity heartbeats until the returned function is called, so the
// server notices within HeartbeatTimeout when the worker running this attempt dies;
// with progress's detail once it has one (nil: never any).
func heartbeat(ctx context.Context, progress *atomic.Pointer[RefreshProgress]) (stop func()) {
	if !activity.IsActivity(ctx) {
		return func() {}
	}
	done := make(chan struct{})
	go func() {
		t := time.NewTicker(HeartbeatInterval)
		defer t.Stop()
		// The first heartbeat waits for the first tick: most refreshes end within
		// milliseconds, and a heartbeat sent at the start would be cut off by the
		// activity's completion, leaving the server a cancelled write for nothing.
		for {
			select {
			case <-done:
				return
			case <-ctx.Done():
				return
			case <-t.C:
			}
			var p *RefreshProgress
			if progress != nil {
				p = progress.Load()
			}
			if p != nil {
				activity.RecordHeartbeat(ctx, *p)
			} else {
				activity.RecordHeartbeat(ctx)
			}
		}
	}()
	return func() { close(done) }
}

// commit writes the new token set, retrying store failures until deadline, when the
// lease nears its end: once the provider has answered, the new refresh token exists
// nowhere else. It runs on a context detached from the activity's, so that a worker
// shutting down does not throw away a token the provider has already rotated. Each
// store call is bounded by the time left, so a hanging store cannot carry the commit
// past the lease.
func (a *Activities) commit(ctx context.Context, next store.Record, expected int64, owner string, deadline time.Time) (store.Record, error) {
	detached := context.WithoutCancel(ctx)
	delay := 50 * time.Millisecond
	for {
		left := deadline.Sub(a.now())
		if left <= 0 {
			return store.Record{}, fmt.Errorf("%w: the lease nears its end", context.DeadlineExceeded)
		}
		cctx, cancel := context.WithTimeout(detached, left)
		saved, err := a.Store.CompareAndSwap(cctx, next, expected, owner)
		cancel()
		if err == nil {
			return saved, nil
		}
		if errors.Is(err, store.ErrVersionConflict) || errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrLeaseLost) {
			// Retrying cannot help: someone else wrote, the credential was deleted, or
			// the lease expired and another attempt may be presenting the token.
			return store.Record{}, err
		}
		if left = deadline.Sub(a.now()); left <= 0 {
			return store.Record{}, fmt.Errorf("%w: the lease nears its end (last store error: %v)", context.DeadlineExceeded, err)
		}
		if err := a.sleep(detached, min(delay, left)); err != nil {
			return store.Record{}, err
		}
		if delay < 2*time.Second {
			delay *= 2
		}
	}
}

// sleep waits for d, by the Sleep hook when one is set.
func (a *Activities) sleep(ctx context.Context, d time.Duration) error {
	if a.Sleep != nil {
		return a.Sleep(ctx, d)
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// refreshFailure turns a provider error into the Temporal error the workflow expects,
// and decides what happens to the lease.
func (a *Activities) refreshFailure(ctx context.Context, log interface {
	Warn(string, ...any)
}, id, owner string, err error, interrupted bool, previous store.Lease) error {
	var pe *provider.Error
	if !errors.As(err, &pe) {
		pe = &provider.Error{Kind: provider.Transient, Code: "unclassified", Err: err}
	}
	detail := FailureDetail{Code: pe.Code, Description: pe.Description, RetryAfter: pe.RetryAfter}

	if pe.Kind == provider.Permanent {
		a.releaseLease(ctx, id, owner)
		msg := pe.Error()
		if interrupted {
			detail.InterruptedAt = previous.TakenAt
			msg = fmt.Sprintf("%s (interrupted attempt at %s): %s", ReasonInterruptedRefresh,
				previous.TakenAt.Format(time.RFC3339), pe.Error())
		}
		log.Warn("provider rejected the grant", "code", pe.Code, "http_status", pe.HTTPStatus, "interrupted", interrupted)
		return temporal.NewNonRetryableApplicationError(msg, ErrTypePermanent, nil, detail)
	}

	if !interrupted && pe.HTTPStatus != 0 && (pe.HTTPStatus < 200 || pe.HTTPStatus > 299) {
		// The provider answered with an error: it did not rotate the token, so the next
		// attempt may present it again at once. After an interrupted attempt the lease
		// stays regardless: it is the only record that an earlier outcome is unknown.
		a.releaseLease(ctx, id, owner)
	}
	// Without an answer (network error, timeout) the provider may or may not have
	// consumed the token, and a 2xx we could not use (malformed, no access_token) may
	// well have rotated it. The lease stays until it expires; the next attempt then sees
	// an interrupted refresh and presents the token once more, knowing what a rejection means.
	log.Warn("refresh failed, will retry", "code", pe.Code, "http_status", pe.HTTPStatus, "retry_after", pe.RetryAfter)
	return temporal.NewApplicationErrorWithOptions(pe.Error(), ErrTypeTransient, temporal.ApplicationErrorOptions{
		NextRetryDelay: pe.RetryAfter,
		Details:        []interface{}{detail},
	})
}

// presentOnce presents grant once with p's Refresh. An adapter that is no
// provider.Refresher (a probe-only provider, which the workflow never asks to refresh)
// answers as a provider would that rejects the grant for good, so that a refresh asked
// for anyway parks the credential for a reseed, like any other Permanent failure.
func presentOnce(ctx context.Context, p provider.Provider, name string, cfg provider.Config, grant provider.Grant) (provider.TokenSet, error) {
	r, ok := p.(provider.Refresher)
	if !ok {
		return provider.TokenSet{}, &provider.Error{Kind: provider.Permanent, Code: provider.CodeCannotRefresh,
			Description: name + " tokens cannot be refreshed; log in again and reseed the access token"}
	}
	return r.Refresh(ctx, cfg, grant)
}

func (a *Activities) releaseLease(ctx context.Context, id, owner string) {
	if err := a.Store.ReleaseLease(context.WithoutCancel(ctx), id, owner); err != nil {
		a.logger().Warn("could not release refresh lease; it will expire", "credential", id, "error", err)
	}
}

// leaseOwner names this attempt: workflow run, activity and attempt number for the
// logs, and a random ID that makes it unique. Run, activity and attempt alone can
// repeat (a reset workflow, a test environment, an attempt started twice), and two
// attempts sharing an owner would each take the other's lease as their own, which the
// fencing of CompareAndSwap exists to prevent.
func (a *Activities) leaseOwner(ctx context.Context) string {
	id := uuid.NewString()
	if !activity.IsActivity(ctx) {
		return a.withOutboxQueue("local/" + id)
	}
	info := activity.GetInfo(ctx)
	return a.withOutboxQueue(fmt.Sprintf("%s/%s#%d/%s", info.WorkflowExecution.RunID, info.ActivityID, info.Attempt, id))
}

// withOutboxQueue prefixes a lease owner with this worker's outbox queue ("queue@owner"),
// so an attempt that finds the lease left behind knows whose outbox to look in. The
// rest of an owner (run ID, activity ID, UUID) holds no "@".
func (a *Activities) withOutboxQueue(owner string) string {
	if a.OutboxQueue == "" {
		return owner
	}
	return a.OutboxQueue + "@" + owner
}

// outboxQueueOf is the outbox queue a lease owner names, "" for none.
func outboxQueueOf(owner string) string {
	if i := strings.LastIndex(owner, "@"); i > 0 {
		return owner[:i]
	}
	return ""
}

func resultOf(rec store.Record, already, rotated bool) RefreshResult {
	return RefreshResult{
		Version:          rec.Version,
		AccessExpiresAt:  rec.AccessExpiresAt,
		RefreshExpiresAt: rec.RefreshExpiresAt,
		RefreshedAt:      rec.UpdatedAt,
		AlreadyCommitted: already,
		Rotated:          rotated,
	}
}

func (a *Activities) providerTimeout() time.Duration {
	if a.ProviderTimeout > 0 {
		return a.ProviderTimeout
	}
	return DefaultProviderTimeout
}

func (a *Activities) minAccessLifetime() time.Duration {
	if a.MinAccessLifetime > 0 {
		return a.MinAccessLifetime
	}
	return DefaultMinAccessLifetime
}

// tooShort reports whether rec's access token was issued with less than the lifetime
// floor; a record without an expiry is not.
func (a *Activities) tooShort(rec store.Record) bool {
	return !rec.AccessExpiresAt.IsZero() && rec.AccessExpiresAt.Sub(rec.UpdatedAt) < a.minAccessLifetime()
}

func (a *Activities) leaseDuration() time.Duration {
	if a.LeaseDuration > 0 {
		return a.LeaseDuration
	}
	return DefaultLeaseDuration
}
