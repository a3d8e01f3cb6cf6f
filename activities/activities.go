// Package activities holds the only code of tokenwarden that touches the network or the
// token store. The credential workflow calls these methods through Temporal; they
// receive and return metadata (versions, timestamps, error codes) and never hand a
// token back to the workflow, so tokens never enter workflow history by this path.
package activities

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"go.temporal.io/sdk/temporal"

	"github.com/tokenwarden/tokenwarden/internal/leasetiming"
	"github.com/tokenwarden/tokenwarden/internal/metrics"
	"github.com/tokenwarden/tokenwarden/internal/outbox"
	"github.com/tokenwarden/tokenwarden/internal/provider"
	"github.com/tokenwarden/tokenwarden/internal/seal"
	"github.com/tokenwarden/tokenwarden/internal/store"
)

// Error types carried by Temporal application errors. The workflow switches on them.
const (
	// ErrTypePermanent: the provider rejected the grant; a human must reseed.
	ErrTypePermanent = "ProviderPermanent"
	// ErrTypeTransient: try again later.
	ErrTypeTransient = "ProviderTransient"
	// ErrTypeInFlight: another attempt holds the refresh lease.
	ErrTypeInFlight = "RefreshInFlight"
	// ErrTypeInvalidInput: the request itself is wrong; retrying cannot help.
	ErrTypeInvalidInput = "InvalidInput"
	// ErrTypeStore: the token store failed.
	ErrTypeStore = "StoreFailure"
)

// ReasonInterruptedRefresh is the NEEDS_REAUTH reason when an attempt that may have
// spent the refresh token died before committing, and the provider now rejects it.
const ReasonInterruptedRefresh = "refresh token consumed by an interrupted refresh"

// Defaults for the timeouts that make the refresh protocol safe: the provider call's
// deadline is shorter than the activity's start-to-close timeout, and the lease
// outlasts an attempt's whole life after taking it, commit retries included
// (internal/leasetiming). A zombie attempt that outlives its start-to-close timeout
// still holds the lease until its HTTP call has certainly been abandoned and its
// commit has given up.
const (
	DefaultProviderTimeout = 30 * time.Second
	DefaultLeaseDuration   = 120 * time.Second
	StartToCloseTimeout    = leasetiming.StartToClose
	// HeartbeatTimeout: the refresh activity heartbeats every HeartbeatInterval while it
	// works, so a killed worker's attempt is retried after seconds, not a minute.
	HeartbeatTimeout  = 10 * time.Second
	HeartbeatInterval = time.Second
	// DefaultMinAccessLifetime: no provider of the seeds issues tokens shorter than an
	// hour; below a minute following the provider would mean refreshing all the time.
	DefaultMinAccessLifetime = time.Minute
)

// CodeLifetimeTooShort is the failure code of a refresh whose new access token lives
// less than MinAccessLifetime.
const CodeLifetimeTooShort = "lifetime_too_short"

// Activities is registered with the worker; its fields are its dependencies.
type Activities struct {
	// Store holds the credential records; the activities touch no other part of the
	// token store (API keys, key rotation).
	Store     store.Records
	Providers provider.Registry
	// Now is the clock; nil means time.Now.
	Now    func() time.Time
	Logger *slog.Logger
	// ProviderTimeout bounds one provider call (default DefaultProviderTimeout).
	ProviderTimeout time.Duration
	// LeaseDuration is how long a refresh lease lives (default DefaultLeaseDuration).
	// A commit retries a failing store until the lease nears its end; the worker
	// refuses a lease that leaves it less than TOKENWARDEN_COMMIT_RETRY.
	LeaseDuration time.Duration
	// Outbox keeps a refreshed token set that the store did not take before the lease's
	// end, and every later attempt commits it before presenting anything (refresh.go).
	// Nil keeps nothing: such a token set is lost.
	Outbox *outbox.Outbox
	// OutboxQueue is the task queue only the worker owning Outbox polls
	// (outbox.Outbox.TaskQueue). Workers that share a store cannot see each other's
	// outboxes, so a refresh whose token set may wait in one is sent there: the attempt
	// that filled the outbox, and any attempt that finds a lease left by this worker,
	// stop with FailureDetail.OutboxQueue and the workflow routes the next round to it
	// (refresh.go). Empty: one worker, no routing (an entry waits for the next attempt).
	OutboxQueue string
	// Sleep waits between commit retries; nil waits on a timer. Tests that run on a
	// fake clock advance it here, so that a long store outage costs no real time.
	Sleep func(ctx context.Context, d time.Duration) error
	// MinAccessLifetime is the shortest access-token lifetime accepted from a provider
	// (default DefaultMinAccessLifetime; see refresh.go).
	MinAccessLifetime time.Duration
	// Parents asks a parent credential's workflow to refresh (a ChatHub company token
	// that an operator credential found rejected). Nil disables the request; the child
	// then just retries.
	Parents ParentRefresher
	// Notifier delivers incident, reminder and recovery notifications; nil logs them.
	Notifier Notifier
	// Metrics counts refreshes, probes and notifications (see metrics.go); nil counts
	// nothing.
	Metrics *metrics.Activity
	// SinkWebhooks delivers webhook sinks (sink.go); nil refuses them.
	SinkWebhooks SinkDeliverer
	// EnvSinkDirs are the absolute directories env sinks may write in
	// (TOKENWARDEN_SINK_DIRS); none refuses every env sink (sinkpath.go).
	EnvSinkDirs []string
	// EnvSinkProtected are absolute directories no env sink may write in, even inside
	// EnvSinkDirs: the data directory and those of the key file and SQLite store
	// (config.TokenStore.ProtectedDirs).
	EnvSinkProtected []string
	// ReloadTimeout bounds one POST to an env sink's reload_url (default
	// DefaultReloadTimeout).
	ReloadTimeout time.Duration
	// Seeds opens sealed seeds (seed.go); nil refuses them.
	Seeds *seal.Sealer
	// AllowPlaintextSeeds accepts seeds sent in plaintext: for local development only,
	// since such a seed is readable in the workflow's history.
	AllowPlaintextSeeds bool
}

// ParentRefresher asks another credential's workflow to refresh now. The worker
// implements it with a refresh-now signal through its Temporal client.
type ParentRefresher interface {
	RefreshNow(ctx context.Context, credentialID string) error
}

// ParentRetryDelay is how long a child credential waits after asking its parent to
// refresh before it tries again with the parent's new token.
const ParentRetryDelay = 5 * time.Second

func (a *Activities) now() time.Time {
	if a.Now != nil {
		return a.Now().UTC()
	}
	return time.Now().UTC()
}

func (a *Activities) logger() *slog.Logger {
	if a.Logger != nil {
		return a.Logger
	}
	return slog.Default()
}

// FailureDetail travels as the details of an application error, so the workflow can
// show the provider's code and honour Retry-After without parsing messages.
type FailureDetail struct {
	Code        string        `json:"code,omitempty"`
	Description string        `json:"description,omitempty"`
	RetryAfter  time.Duration `json:"retry_after,omitempty"`
	// InterruptedAt is set when the failure follows an attempt that died mid-refresh.
	InterruptedAt time.Time `json:"interrupted_at,omitempty"`
	// OutboxQueue, with CodeOutboxPending or CodeOutboxElsewhere, is the task queue of
	// the worker whose outbox holds, or may hold, the credential's newest token set:
	// the next attempts must run there.
	OutboxQueue string `json:"outbox_queue,omitempty"`
}

// Codes of the failures that send a refresh to another worker's outbox queue.
const (
	// CodeOutboxPending: the store did not take the rotated token set, which waits in
	// this worker's outbox.
	CodeOutboxPending = "outbox_pending"
	// CodeOutboxElsewhere: an interrupted attempt ran on the worker of OutboxQueue, whose
	// outbox may hold the rotated token set; nothing was presented here.
	CodeOutboxElsewhere = "outbox_elsewhere"
)

func storeError(what string, err error) error {
	return temporal.NewApplicationErrorWithCause(fmt.Sprintf("token store: %s", what), ErrTypeStore, err)
}
