package activities

import (
	"context"
	"time"
)

// RetireRequest names the credential whose secrets go.
type RetireRequest struct {
	CredentialID string
	Provider     string
}

// RetireResult says when the secrets were deleted.
type RetireResult struct {
	DeletedAt time.Time
}

// Retire deletes the credential's record, secrets included, from the token store.
// Deleting a record that is already gone succeeds, so a retried Retire is harmless.
func (a *Activities) Retire(ctx context.Context, req RetireRequest) (RetireResult, error) {
	if err := a.Store.Delete(ctx, req.CredentialID); err != nil {
		return RetireResult{}, storeError("delete retired credential", err)
	}
	a.logger().Info("credential retired; secrets deleted", "credential", req.CredentialID, "provider", req.Provider)
	return RetireResult{DeletedAt: a.now()}, nil
}
