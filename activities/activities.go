// Package activities holds the only code of tokenwarden that touches the network or the
// token store. The credential workflow calls these methods through Temporal; they
// receive and return metadata (versions, timestamps, error codes) and never hand a
// token back to the workflow, so tokens never enter workflow history by this path.
package activities

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"go.temporal.io/sdk/temporal"

	"github.com/tokenwarden/tokenwarden/internal/metrics"
	"github.com/tokenwarden/tokenwarden/internal/provider"
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
// deadline is shorter than the activity's start-to-close timeout, which is shorter than
// the lease. A zombie attempt that outlives its start-to-close timeout still holds the
// lease until its HTTP call has certainly been abandoned.
const (
	DefaultProviderTimeout = 30 * time.Second
	DefaultLeaseDuration   = 90 * time.Second
	StartToCloseTimeout    = 60 * time.Second
	// HeartbeatTimeout: the refresh activity heartbeats every HeartbeatInterval while it
	// works, so a killed worker's attempt is retried after seconds, not a minute.
	HeartbeatTimeout  = 10 * time.Second
	HeartbeatInterval = time.Second
)

// Activities is registered with the worker; its fields are its dependencies.
type Activities struct {
	Store     store.Store
	Providers provider.Registry
	// Now is the clock; nil means time.Now.
	Now    func() time.Time
	Logger *slog.Logger
	// ProviderTimeout bounds one provider call (default DefaultProviderTimeout).
	ProviderTimeout time.Duration
	// LeaseDuration is how long a refresh lease lives (default DefaultLeaseDuration).
	LeaseDuration time.Duration
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
}

// SeedRequest stores human-supplied grant material as the credential's next version.
type SeedRequest struct {
	CredentialID    string
	Provider        string
	RefreshToken    string
	ClientSecret    string
	Username        string
	Password        string
	AccessToken     string
	AccessExpiresAt time.Time
}

// SeedResult is the stored version.
type SeedResult struct {
	Version         int64
	AccessExpiresAt time.Time
	SeededAt        time.Time
}

// Seed writes the material as the next version of the record, whatever was there: a
// human's reseed always wins. A retried Seed writes the same material again, which is
// harmless: nothing was presented to the provider.
func (a *Activities) Seed(ctx context.Context, req SeedRequest) (SeedResult, error) {
	if req.CredentialID == "" {
		return SeedResult{}, temporal.NewNonRetryableApplicationError("seed: credential id is empty", ErrTypeInvalidInput, nil)
	}
	p, err := a.Providers.Lookup(req.Provider)
	if err != nil {
		return SeedResult{}, temporal.NewNonRetryableApplicationError(err.Error(), ErrTypeInvalidInput, nil)
	}
	if err := p.ValidateGrant(provider.Grant{RefreshToken: req.RefreshToken, ClientSecret: req.ClientSecret,
		Username: req.Username, Password: req.Password, AccessToken: req.AccessToken}); err != nil {
		return SeedResult{}, temporal.NewNonRetryableApplicationError("seed."+err.Error(), ErrTypeInvalidInput, nil)
	}
	rec := store.Record{
		ID:       req.CredentialID,
		Provider: req.Provider,
		Secrets: store.Secrets{
			RefreshToken: req.RefreshToken,
			ClientSecret: req.ClientSecret,
			Username:     req.Username,
			Password:     req.Password,
			AccessToken:  req.AccessToken,
		},
		AccessExpiresAt: req.AccessExpiresAt.UTC(),
	}
	if req.ClientSecret == "" || req.Username == "" || req.Password == "" {
		// A reseed that brings only a new refresh token keeps the client secret and the
		// login already stored.
		if old, err := a.Store.Get(ctx, req.CredentialID); err == nil {
			keep := func(field *string, old string) {
				if *field == "" {
					*field = old
				}
			}
			keep(&rec.Secrets.ClientSecret, old.Secrets.ClientSecret)
			keep(&rec.Secrets.Username, old.Secrets.Username)
			keep(&rec.Secrets.Password, old.Secrets.Password)
		} else if !errors.Is(err, store.ErrNotFound) {
			return SeedResult{}, storeError("read credential before seeding", err)
		}
	}
	if req.AccessToken == "" {
		rec.AccessExpiresAt = time.Time{}
	}
	saved, err := a.Store.Put(ctx, rec)
	if err != nil {
		return SeedResult{}, storeError("store seed", err)
	}
	a.logger().Info("credential seeded", "credential", req.CredentialID, "provider", req.Provider, "version", saved.Version)
	return SeedResult{Version: saved.Version, AccessExpiresAt: saved.AccessExpiresAt, SeededAt: saved.UpdatedAt}, nil
}

func storeError(what string, err error) error {
	return temporal.NewApplicationErrorWithCause(fmt.Sprintf("token store: %s", what), ErrTypeStore, err)
}
