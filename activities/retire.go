package activities

import (
	"context"
	"time"

	"github.com/tokenwarden/tokenwarden/internal/provider"
)

// RetireRequest names the credential whose secrets go.
type RetireRequest struct {
	CredentialID string
	Provider     string
	Config       provider.Config
	// Revoke: revoke the grant at the provider first, where the adapter can. The
	// workflow asks for it on a human's retirement, and on an automatic one only when
	// policy.revoke_on_retire says so.
	Revoke bool
}

// RetireResult says when the secrets were deleted.
type RetireResult struct {
	DeletedAt time.Time
}

// Retire revokes the grant at the provider where it can (RFC 7009) when asked to, then
// deletes the credential's record, secrets included, from the token store. A revocation
// that fails is logged and does not keep the secrets: they were asked to go. Deleting a
// record that is already gone succeeds, so a retried Retire is harmless.
func (a *Activities) Retire(ctx context.Context, req RetireRequest) (RetireResult, error) {
	if req.Revoke {
		a.revoke(ctx, req)
	}
	if err := a.Store.Delete(ctx, req.CredentialID); err != nil {
		return RetireResult{}, storeError("delete retired credential", err)
	}
	a.logger().Info("credential retired; secrets deleted", "credential", req.CredentialID, "provider", req.Provider)
	return RetireResult{DeletedAt: a.now()}, nil
}

// revoke revokes the stored refresh token at the provider, best effort.
func (a *Activities) revoke(ctx context.Context, req RetireRequest) {
	p, err := a.Providers.Lookup(req.Provider)
	if err != nil {
		return
	}
	r, ok := p.(provider.Revoker)
	if !ok {
		return
	}
	rec, err := a.Store.Get(ctx, req.CredentialID)
	if err != nil {
		return // already gone, or unreadable: nothing to revoke with
	}
	if err := checkBinding(rec, req.Provider, req.Config); err != nil {
		a.logger().Warn("not revoking at the provider: the configuration differs from the one the credential was seeded for",
			"credential", req.CredentialID)
		return
	}
	callCtx, cancel := context.WithTimeout(ctx, a.providerTimeout())
	defer cancel()
	supported, err := r.Revoke(callCtx, req.Config, provider.Grant{
		RefreshToken: rec.Secrets.RefreshToken, ClientSecret: rec.Secrets.ClientSecret})
	switch {
	case !supported:
	case err != nil:
		a.logger().Warn("could not revoke the retired credential's grant at the provider", "credential", req.CredentialID, "error", err)
	default:
		a.logger().Info("grant revoked at the provider", "credential", req.CredentialID)
	}
}
