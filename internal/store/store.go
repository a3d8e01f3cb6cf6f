// Package store is tokenwarden's source of truth for secrets.
//
// Every credential is one versioned record. Writes are compare-and-swap on the version,
// so two refreshes can never both commit on top of the same token; a refresh lease lets
// one attempt at a time talk to the provider. Secret fields are sealed with AES-256-GCM
// under a key ID (see package keyring) before they reach the database, so the database
// file alone reveals no token.
//
// The store's methods come in roles, one interface each, so that each consumer names
// the part it uses: Reader and Records (credential records; the activities take
// Records), APIKeys (the token API's keys), KeyInventory and KeyRotation (rows counted
// and moved by key ID, for the key checks and commands). Store is every role at once:
// what the SQLite and PostgreSQL backends implement and Open returns. Every
// implementation is safe for concurrent use by many goroutines and, for shared
// databases, many processes.
package store

import (
	"context"
	"errors"
	"time"
)

// ErrNotFound means no record exists for the credential ID.
var ErrNotFound = errors.New("credential not found in token store")

// ErrVersionConflict means the record is no longer at the version the writer expected.
var ErrVersionConflict = errors.New("token store version conflict")

// ErrLeaseHeld means another owner holds a live refresh lease.
var ErrLeaseHeld = errors.New("refresh lease held by another attempt")

// ErrLeaseLost means a CompareAndSwap's lease owner no longer holds a live lease: it
// expired by the store's clock, another attempt took it, or it was never taken. The
// write is refused, because another attempt may already be presenting the token set
// it was based on.
var ErrLeaseLost = errors.New("refresh lease lost: the writer no longer holds it")

// Secrets are the fields sealed at rest.
type Secrets struct {
	AccessToken  string `json:"access_token,omitempty"`
	RefreshToken string `json:"refresh_token,omitempty"`
	ClientSecret string `json:"client_secret,omitempty"`
	Username     string `json:"username,omitempty"`
	Password     string `json:"password,omitempty"`

	// Binding is the configuration the secrets were seeded for (provider.Binding):
	// sealed with them, so that a database writer cannot point them elsewhere either.
	// Empty in records seeded before bindings were recorded; the next refresh records it.
	Binding string `json:"binding,omitempty"`
	// SeedID and SeedSealedAt identify the sealed seed these secrets came from
	// (internal/seal), so that the seed activity recognises a seed it already applied
	// and refuses an older one replayed from a workflow's history.
	SeedID       string    `json:"seed_id,omitempty"`
	SeedSealedAt time.Time `json:"seed_sealed_at,omitzero"`
}

// Lease records who may currently present the refresh token to the provider.
type Lease struct {
	Owner     string    // empty when no lease was ever taken or it was released
	ExpiresAt time.Time // the lease is live while now < ExpiresAt
	TakenAt   time.Time
}

// Record is one credential's current token set.
type Record struct {
	ID       string
	Provider string
	// Version starts at 1 and grows by one with every committed write.
	Version          int64
	Secrets          Secrets
	TokenType        string
	AccessExpiresAt  time.Time // zero when unknown
	RefreshExpiresAt time.Time // zero when unknown or never
	UpdatedAt        time.Time
	LastUsedAt       time.Time // zero when never read by a consumer
	Lease            Lease
}

// Reader reads credential records and writes nothing: what a check of the store needs
// (the worker's readiness and key checks, its metrics).
type Reader interface {
	// Get returns the record, ErrNotFound, or an error (a record that cannot be
	// decrypted is an error, never a record with empty secrets).
	Get(ctx context.Context, id string) (Record, error)
	// List returns all records' non-secret fields (Secrets left empty), ordered by ID.
	// It decrypts nothing, so it works whatever keys the records are sealed under.
	List(ctx context.Context) ([]Record, error)
}

// Records is a credential record's life: seeded by Put, refreshed one attempt at a time
// under a lease and committed by CompareAndSwap, read by consumers (TouchLastUsed), and
// deleted when the credential is retired. Every write of a token set is versioned, and
// every refresh commit is fenced by its writer's lease.
type Records interface {
	Reader
	// Put writes rec as the next version: Version 1 when no record exists, otherwise
	// the current version + 1, whatever rec.Version says. It clears any lease. It is
	// used for seeding, where the human-supplied material always wins.
	Put(ctx context.Context, rec Record) (Record, error)
	// CompareAndSwap writes rec as version expectedVersion+1 only if the stored version
	// is expectedVersion and leaseOwner holds a live lease on the record (by the
	// store's clock), deciding both in the transaction that writes; otherwise
	// ErrNotFound, ErrVersionConflict (checked first: someone else committed) or
	// ErrLeaseLost. An empty leaseOwner is an error: every commit is fenced. It clears
	// the lease.
	CompareAndSwap(ctx context.Context, rec Record, expectedVersion int64, leaseOwner string) (Record, error)
	// AcquireLease takes the refresh lease for owner for ttl if it is free, expired, or
	// already held by owner, and returns the lease that was there before. It returns
	// ErrLeaseHeld (and the live lease) when another owner holds it. The lease is timed
	// by the store's clock, not the caller's: PostgreSQL's server clock; for SQLite, a
	// file on this host, the clock the store was opened with. A caller whose clock is
	// skewed therefore cannot see another worker's live lease as expired.
	AcquireLease(ctx context.Context, id, owner string, ttl time.Duration) (previous Lease, err error)
	// ReleaseLease drops the lease if owner holds it; otherwise it does nothing.
	ReleaseLease(ctx context.Context, id, owner string) error
	// TouchLastUsed records that a consumer read the credential's token at `at`: it
	// sets LastUsedAt to at if that is later than the stored value, and changes nothing
	// else (not the version, UpdatedAt, the secrets or the lease). ErrNotFound if the
	// record does not exist. LastUsedAt never goes backwards: Put and CompareAndSwap
	// also keep the later of the stored and the written value, so a refresh that read
	// the record before a touch does not undo it.
	TouchLastUsed(ctx context.Context, id string, at time.Time) error
	// Delete removes the record and its secrets. Deleting a missing record is not an error.
	Delete(ctx context.Context, id string) error
}

// APIKeys keeps the token API's keys (see APIKey). Every API key row is authenticated
// under a key derived from the keyring, so that a database writer without the key
// file can neither add a key nor widen, re-key or un-revoke one.
type APIKeys interface {
	// CreateAPIKey stores a new API key (see APIKey; RevokedAt and LastUsedAt are
	// ignored, a zero CreatedAt means now) and returns it as LookupAPIKey will.
	// ErrAPIKeyExists if its name or ID is taken, by a revoked key too.
	CreateAPIKey(ctx context.Context, key APIKey) (APIKey, error)
	// LookupAPIKey returns the API key with the ID, revoked or not, or
	// ErrAPIKeyNotFound. A row inserted or altered without the key file (or written
	// before rows were authenticated) is ErrAPIKeyUnauthenticated, an error naming the
	// key ID.
	LookupAPIKey(ctx context.Context, id string) (APIKey, error)
	// ListAPIKeys returns every API key, revoked ones included, ordered by name; if any
	// row fails its authenticator, none and an error naming each refused key
	// (ErrAPIKeyUnauthenticated).
	ListAPIKeys(ctx context.Context) ([]APIKey, error)
	// RevokeAPIKey marks the key revoked at `at` and returns it. Revoking a revoked key
	// keeps the first RevokedAt and is not an error. ErrAPIKeyNotFound if it does not
	// exist. A revoked key stays listed (and its name taken) for the record. It revokes
	// a row that fails its authenticator too, and authenticates it as revoked: a revoked
	// key grants nothing, and that is how an operator retires such a row.
	RevokeAPIKey(ctx context.Context, id string, at time.Time) (APIKey, error)
	// TouchAPIKey sets the key's LastUsedAt to at if that is later than the stored
	// value. ErrAPIKeyNotFound if it does not exist.
	TouchAPIKey(ctx context.Context, id string, at time.Time) error
}

// KeyInventory counts the rows under each key ID of the keyring: what a key file must
// hold for the store to be read, and what is left to move in a rotation. It reads the
// key IDs alone, neither decrypting nor verifying anything, so it answers with a key
// file that lacks keys, too.
type KeyInventory interface {
	// KeyIDs counts the credential records sealed under each key ID.
	KeyIDs(ctx context.Context) (map[string]int, error)
	// APIKeyKeyIDs counts the API key rows authenticated under each key ID, as KeyIDs
	// counts credential records.
	APIKeyKeyIDs(ctx context.Context) (map[string]int, error)
}

// KeyRotation moves rows onto the keyring's primary key, so that an older key can leave
// the key file. Neither method changes what a row says, only the key it is under, and
// neither ever moves a row it cannot verify.
type KeyRotation interface {
	// Reseal re-encrypts the record's secrets under the primary key if they are sealed
	// under another key, and reports whether it rewrote them. It changes nothing else:
	// not the version (a new key is not a new token set, so a writer holding the record
	// still commits with CompareAndSwap at the version it read), not UpdatedAt, not the
	// lease. It reads and writes in one transaction and writes only if version, key ID
	// and ciphertext are still those it decrypted, so it never puts an older token set
	// back over a newer one; a record that changed under it is read again. ErrNotFound
	// if the record does not exist.
	Reseal(ctx context.Context, id string) (changed bool, err error)
	// RemacAPIKeys authenticates every API key row that is under another key again
	// under the primary key, and returns how many it moved. A row that fails its
	// authenticator is not moved (that would launder it): the error names it, matching
	// ErrAPIKeyUnauthenticated.
	RemacAPIKeys(ctx context.Context) (int, error)
}

// Store is every role, and Close: what each backend (SQLite, Postgres) implements and
// Open returns. The program that opens the store holds it and closes it; the code it
// hands the store to takes the narrowest role that serves.
type Store interface {
	Records
	APIKeys
	KeyInventory
	KeyRotation
	Close() error
}
