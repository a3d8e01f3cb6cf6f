package activities

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.temporal.io/sdk/temporal"

	"github.com/tokenwarden/tokenwarden/internal/provider"
	"github.com/tokenwarden/tokenwarden/internal/seal"
	"github.com/tokenwarden/tokenwarden/internal/store"
)

// SeedRequest stores human-supplied grant material as the credential's next version.
type SeedRequest struct {
	CredentialID string
	Provider     string
	// Config is the run's configuration. The seed opens only if it was sealed for it,
	// and the stored secrets are bound to it (provider.BindingOf).
	Config provider.Config
	// Seed is the grant material, sealed (internal/seal); plaintext only where the
	// worker allows it for local development.
	Seed seal.Envelope
}

// SeedResult is the stored version.
type SeedResult struct {
	Version         int64
	AccessExpiresAt time.Time
	SeededAt        time.Time
	// AccessToken: the seed brought an access token (so no refresh is needed at once).
	AccessToken bool
	// AlreadyApplied: the store already held this very seal; nothing was written.
	AlreadyApplied bool
}

// ReasonPlaintextSeed is the refusal of a plaintext seed: what happened, and what to do.
const ReasonPlaintextSeed = "seed refused: the grant material arrived in plaintext, so it is now in this workflow's " +
	"history, where anyone who can read the namespace (Web UI, temporal CLI) can see it. Revoke or rotate it at " +
	"the provider, then seed the credential with `starter start` or `starter reseed`, or seal it with `starter seal` " +
	"for the temporal CLI. (A worker may accept plaintext seeds for local development only: TOKENWARDEN_ALLOW_PLAINTEXT_SEEDS=true.)"

// Seed opens the sealed seed and writes it as the next version of the record, bound to
// the run's configuration: a human's reseed always wins over what was stored. Three
// seeds are refused rather than stored: a plaintext one (unless the worker allows it),
// one sealed for another credential or configuration, and one sealed before the seed
// the store already holds (an old seed replayed from a history). The seed the store
// already holds is not written again: its retry, or its replay by a new run of the
// same credential, changes nothing.
func (a *Activities) Seed(ctx context.Context, req SeedRequest) (SeedResult, error) {
	if req.CredentialID == "" {
		return SeedResult{}, invalidInput("seed: credential id is empty")
	}
	p, err := a.Providers.Lookup(req.Provider)
	if err != nil {
		return SeedResult{}, invalidInput(err.Error())
	}
	if err := p.ValidateConfig(req.Config); err != nil {
		return SeedResult{}, invalidInput("config." + err.Error())
	}
	binding := provider.BindingOf(req.Provider, req.Config)
	opened, err := a.openSeed(req, binding)
	if err != nil {
		return SeedResult{}, err
	}
	seed := opened.Seed
	if err := provider.ValidateGrantFor(p, req.Config, provider.Grant{RefreshToken: seed.RefreshToken, ClientSecret: seed.ClientSecret,
		Username: seed.Username, Password: seed.Password, AccessToken: seed.AccessToken}); err != nil {
		return SeedResult{}, invalidInput("seed." + err.Error())
	}
	old, err := a.Store.Get(ctx, req.CredentialID)
	found := err == nil
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return SeedResult{}, storeError("read credential before seeding", err)
	}
	if found && opened.ID != "" {
		if old.Secrets.SeedID == opened.ID {
			a.logger().Info("seed already applied", "credential", req.CredentialID, "version", old.Version)
			return SeedResult{Version: old.Version, AccessExpiresAt: old.AccessExpiresAt, SeededAt: old.UpdatedAt,
				AccessToken: old.Secrets.AccessToken != "", AlreadyApplied: true}, nil
		}
		if opened.SealedAt.Before(old.Secrets.SeedSealedAt) {
			return SeedResult{}, invalidInput(fmt.Sprintf("seed refused: it was sealed at %s, before the seed the store holds "+
				"(sealed at %s); an old seed replayed from a history is never stored again. Seal a new one",
				opened.SealedAt.Format(time.RFC3339), old.Secrets.SeedSealedAt.Format(time.RFC3339)))
		}
	}
	rec := store.Record{
		ID:       req.CredentialID,
		Provider: req.Provider,
		Secrets: store.Secrets{
			RefreshToken: seed.RefreshToken,
			ClientSecret: seed.ClientSecret,
			Username:     seed.Username,
			Password:     seed.Password,
			AccessToken:  seed.AccessToken,
			Binding:      string(binding),
			SeedID:       opened.ID,
			SeedSealedAt: opened.SealedAt,
		},
		AccessExpiresAt: seed.AccessExpiresAt.UTC(),
	}
	if found {
		// A reseed that brings only a new refresh token keeps the client secret and the
		// login already stored.
		keep := func(field *string, old string) {
			if *field == "" {
				*field = old
			}
		}
		keep(&rec.Secrets.ClientSecret, old.Secrets.ClientSecret)
		keep(&rec.Secrets.Username, old.Secrets.Username)
		keep(&rec.Secrets.Password, old.Secrets.Password)
	}
	if seed.AccessToken == "" {
		rec.AccessExpiresAt = time.Time{}
	}
	saved, err := a.Store.Put(ctx, rec)
	if err != nil {
		return SeedResult{}, storeError("store seed", err)
	}
	a.logger().Info("credential seeded", "credential", req.CredentialID, "provider", req.Provider, "version", saved.Version)
	return SeedResult{Version: saved.Version, AccessExpiresAt: saved.AccessExpiresAt, SeededAt: saved.UpdatedAt,
		AccessToken: seed.AccessToken != ""}, nil
}

// openSeed takes the grant material out of its envelope. A plaintext seed has no ID: it
// is stored as given, where the worker allows it at all.
func (a *Activities) openSeed(req SeedRequest, binding provider.Binding) (seal.Opened, error) {
	env := req.Seed
	if err := env.Check(); err != nil {
		return seal.Opened{}, invalidInput(err.Error())
	}
	if env.Sealed == "" {
		if !a.AllowPlaintextSeeds {
			return seal.Opened{}, invalidInput(ReasonPlaintextSeed)
		}
		a.logger().Warn("plaintext seed accepted (TOKENWARDEN_ALLOW_PLAINTEXT_SEEDS): it is readable in the workflow's history",
			"credential", req.CredentialID)
		return seal.Opened{Seed: env.Seed}, nil
	}
	if a.Seeds == nil {
		return seal.Opened{}, invalidInput("seed refused: this worker has no key to open sealed seeds")
	}
	opened, err := a.Seeds.Open(env, req.CredentialID, string(binding))
	if err != nil {
		return seal.Opened{}, invalidInput("seed refused: " + err.Error())
	}
	return opened, nil
}

func invalidInput(msg string) error {
	return temporal.NewNonRetryableApplicationError(msg, ErrTypeInvalidInput, nil)
}
