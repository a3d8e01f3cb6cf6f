package store

// API keys for the token API (worker/tokenapi.go): which consumer may read which
// credentials' access tokens. Only a hash of each key is stored; the key itself is
// shown once, when it is created, and never again.

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"slices"
	"time"
)

// ErrAPIKeyNotFound means no API key has the ID.
var ErrAPIKeyNotFound = errors.New("API key not found")

// ErrAPIKeyExists means an API key with the name (or ID) already exists.
var ErrAPIKeyExists = errors.New("an API key with this name or ID already exists")

// APIKeyHashSize is the length of APIKey.Hash: a SHA-256 digest.
const APIKeyHashSize = sha256.Size

// APIKey is one consumer's key to the token API. It holds no secret: Hash is the
// SHA-256 digest of the key, which cannot be turned back into the key.
type APIKey struct {
	// ID is public (it is part of the key, and names it in logs and commands) and unique.
	ID string
	// Name is the human name the operator gave it, unique among all keys, revoked ones
	// included.
	Name string
	// CredentialIDs are the credentials whose tokens the key may read, sorted, no
	// duplicates, at least one.
	CredentialIDs []string
	Hash          []byte
	CreatedAt     time.Time
	RevokedAt     time.Time // zero while the key is valid
	LastUsedAt    time.Time // zero when never used
}

// Revoked reports whether the key has been revoked.
func (k APIKey) Revoked() bool { return !k.RevokedAt.IsZero() }

// Allows reports whether the key is scoped to credentialID.
func (k APIKey) Allows(credentialID string) bool {
	_, ok := slices.BinarySearch(k.CredentialIDs, credentialID)
	return ok
}

// apiKeyRow is an APIKey checked and converted for writing.
type apiKeyRow struct {
	key     APIKey
	created int64
}

// prepareAPIKey checks a new key and normalises it to what a later lookup returns:
// scopes sorted without duplicates, times in UTC, not revoked, never used.
func prepareAPIKey(k APIKey, now func() time.Time) (apiKeyRow, error) {
	switch {
	case k.ID == "":
		return apiKeyRow{}, errors.New("API key has an empty ID")
	case k.Name == "":
		return apiKeyRow{}, errors.New("API key has an empty name")
	case len(k.Hash) != APIKeyHashSize:
		return apiKeyRow{}, fmt.Errorf("API key %q: hash is %d bytes, want %d (SHA-256)", k.ID, len(k.Hash), APIKeyHashSize)
	case len(k.CredentialIDs) == 0:
		return apiKeyRow{}, fmt.Errorf("API key %q: no credential IDs", k.ID)
	}
	ids := slices.Clone(k.CredentialIDs)
	slices.Sort(ids)
	ids = slices.Compact(ids)
	if ids[0] == "" {
		return apiKeyRow{}, fmt.Errorf("API key %q: empty credential ID", k.ID)
	}
	if k.CreatedAt.IsZero() {
		k.CreatedAt = now()
	}
	created, err := toNanos(k.CreatedAt)
	if err != nil {
		return apiKeyRow{}, fmt.Errorf("API key %q: created: %w", k.ID, err)
	}
	return apiKeyRow{
		key: APIKey{
			ID: k.ID, Name: k.Name, CredentialIDs: ids, Hash: slices.Clone(k.Hash),
			CreatedAt: fromNanos(created),
		},
		created: created,
	}, nil
}

// apiKeyTimes are an API key row's times as stored.
type apiKeyTimes struct{ created, revoked, lastUsed int64 }

func (t apiKeyTimes) apply(k *APIKey) {
	k.CreatedAt, k.RevokedAt, k.LastUsedAt = fromNanos(t.created), fromNanos(t.revoked), fromNanos(t.lastUsed)
}
