package activities

import (
	"context"
	"errors"
	"time"

	"github.com/tokenwarden/tokenwarden/internal/store"
)

// UsageRequest names the credential whose last use is wanted.
type UsageRequest struct {
	CredentialID string
}

// UsageResult is when a consumer last read the token through the token API; zero when
// never, or when the record is gone.
type UsageResult struct {
	LastUsedAt time.Time
}

// Usage reads the credential's last-used time from the store. Only the time leaves the
// activity.
func (a *Activities) Usage(ctx context.Context, req UsageRequest) (UsageResult, error) {
	rec, err := a.Store.Get(ctx, req.CredentialID)
	if errors.Is(err, store.ErrNotFound) {
		return UsageResult{}, nil
	}
	if err != nil {
		return UsageResult{}, storeError("read credential", err)
	}
	return UsageResult{LastUsedAt: rec.LastUsedAt}, nil
}
