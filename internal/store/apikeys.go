package store

// API keys for the token API (internal/tokenapi): which consumer may read which
// credentials' access tokens. Only a hash of each key is stored; the key itself is
// shown once, when it is created, and never again.

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/tokenwarden/tokenwarden/internal/keyring"
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

// ErrAPIKeyUnauthenticated means an API key row does not carry a valid authenticator:
// it was inserted or altered by something other than tokenwarden (a database writer
// without the key file), or it was written before rows were authenticated. Such a key
// grants nothing.
var ErrAPIKeyUnauthenticated = errors.New("API key row is not authenticated")

// apiKeyLabel is the HKDF label of the ring that authenticates API key rows. A ring of
// its own means an authenticator can never be confused with a sealed credential or a
// payload, whose rings are derived under other labels from the same key file.
const apiKeyLabel = "tokenwarden/apikeys/v1"

// apiKeyMACDomain starts the authenticated data of every API key row, so that the same
// bytes could not be taken for anything else sealed under the derived ring.
const apiKeyMACDomain = "tokenwarden/apikey-row/v1\x00"

// apiKeyAuth authenticates API key rows with a ring derived from the store's keyring.
//
// The authenticator is an AES-GCM seal of an empty plaintext whose associated data is
// the row's canonical encoding (apiKeyMACData): nonce and tag, 28 bytes, under a key
// ID stored beside it. It goes through keyring.Seal and Open rather than a separate HMAC
// so that rows follow key rotation like every sealed credential: a ring that holds the
// old key still verifies them, and RemacAPIKeys moves them to the primary key.
//
// The authenticator covers what decides access: ID, name, hash, scopes, creation and
// revocation time. It does not cover last_used_at, which the token API writes on reads
// and which grants nothing.
type apiKeyAuth struct{ ring *keyring.Keyring }

// newAPIKeyAuth derives the API key ring. Deriving costs one HKDF and one AES key
// schedule per key in the ring, microseconds next to the database round trip, so the
// stores derive per operation rather than keep a second ring beside their own.
func newAPIKeyAuth(ring *keyring.Keyring) (apiKeyAuth, error) {
	d, err := ring.Derive(apiKeyLabel)
	if err != nil {
		return apiKeyAuth{}, fmt.Errorf("derive the API key ring: %w", err)
	}
	return apiKeyAuth{ring: d}, nil
}

// apiKeyMACData is the canonical encoding of the authenticated fields: every field
// length-prefixed, so that no two different rows encode alike (moving bytes between
// name and ID, or between two scopes, changes the encoding).
func apiKeyMACData(k APIKey) ([]byte, error) {
	created, err := toNanos(k.CreatedAt)
	if err != nil {
		return nil, fmt.Errorf("created: %w", err)
	}
	revoked, err := toNanos(k.RevokedAt)
	if err != nil {
		return nil, fmt.Errorf("revoked: %w", err)
	}
	b := []byte(apiKeyMACDomain)
	field := func(v []byte) {
		b = binary.BigEndian.AppendUint32(b, uint32(len(v)))
		b = append(b, v...)
	}
	field([]byte(k.ID))
	field([]byte(k.Name))
	field(k.Hash)
	b = binary.BigEndian.AppendUint64(b, uint64(created))
	b = binary.BigEndian.AppendUint64(b, uint64(revoked))
	b = binary.BigEndian.AppendUint32(b, uint32(len(k.CredentialIDs)))
	for _, cid := range k.CredentialIDs {
		field([]byte(cid))
	}
	return b, nil
}

// sign returns the authenticator of k and the key ID to store beside it.
func (a apiKeyAuth) sign(k APIKey) (keyID string, mac []byte, err error) {
	data, err := apiKeyMACData(k)
	if err != nil {
		return "", nil, fmt.Errorf("API key %s: %w", quoteID(k.ID), err)
	}
	keyID, mac, err = a.ring.Seal(nil, data)
	if err != nil {
		return "", nil, fmt.Errorf("API key %s: authenticate: %w", quoteID(k.ID), err)
	}
	return keyID, mac, nil
}

// verify checks a row as read (scopes sorted as the stores select them) against its
// stored authenticator. The error matches ErrAPIKeyUnauthenticated, names the key ID and
// says what to do; it never quotes the hash or the authenticator.
func (a apiKeyAuth) verify(k APIKey, keyID string, mac []byte) error {
	if keyID == "" && len(mac) == 0 {
		return fmt.Errorf("API key %s: %w: it has no authenticator (written before API key rows were authenticated, or inserted directly into the database); it grants nothing. Revoke it (starter apikey revoke %s) and create a new key with starter apikey create",
			quoteID(k.ID), ErrAPIKeyUnauthenticated, quoteID(k.ID))
	}
	data, err := apiKeyMACData(k)
	if err == nil {
		var plain []byte
		plain, err = a.ring.Open(keyID, mac, data)
		if err == nil && len(plain) != 0 {
			err = errors.New("authenticator carries data")
		}
	}
	if err != nil {
		return fmt.Errorf("API key %s: %w: its row was altered or inserted outside tokenwarden, or the key file lacks the key it was authenticated under (%v); it grants nothing. Revoke it (starter apikey revoke %s) and create a new key",
			quoteID(k.ID), ErrAPIKeyUnauthenticated, err, quoteID(k.ID))
	}
	return nil
}

// maxQuotedID caps how much of a stored key ID an error quotes: an inserted row's ID is
// whatever its writer chose, and errors end up in logs.
const maxQuotedID = 64

// quoteID quotes a key ID for an error, escaping control bytes and cutting it short.
func quoteID(id string) string {
	if len(id) > maxQuotedID {
		return fmt.Sprintf("%q...", id[:maxQuotedID])
	}
	return fmt.Sprintf("%q", id)
}

// refusedAPIKeys joins the errors of refused rows found while listing into one error
// that matches ErrAPIKeyUnauthenticated and names every refused key.
func refusedAPIKeys(errs []error) error {
	if len(errs) == 0 {
		return nil
	}
	return fmt.Errorf("%d API key rows refused: %w", len(errs), errors.Join(errs...))
}

// apiKeyRow is an APIKey checked and converted for writing, with its authenticator.
type apiKeyRow struct {
	key     APIKey
	created int64
	macKey  string
	mac     []byte
}

// prepareAPIKey checks a new key and normalises it to what a later lookup returns:
// scopes sorted without duplicates, times in UTC, not revoked, never used.
func prepareAPIKey(k APIKey, ring *keyring.Keyring, now func() time.Time) (apiKeyRow, error) {
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
	row := apiKeyRow{
		key: APIKey{
			ID: k.ID, Name: k.Name, CredentialIDs: ids, Hash: slices.Clone(k.Hash),
			CreatedAt: fromNanos(created),
		},
		created: created,
	}
	auth, err := newAPIKeyAuth(ring)
	if err != nil {
		return apiKeyRow{}, err
	}
	if row.macKey, row.mac, err = auth.sign(row.key); err != nil {
		return apiKeyRow{}, err
	}
	return row, nil
}

// apiKeyTimes are an API key row's times as stored.
type apiKeyTimes struct{ created, revoked, lastUsed int64 }

func (t apiKeyTimes) apply(k *APIKey) {
	k.CreatedAt, k.RevokedAt, k.LastUsedAt = fromNanos(t.created), fromNanos(t.revoked), fromNanos(t.lastUsed)
}

// revokedRow is what RevokeAPIKey writes: the revocation time and the authenticator of
// the row with it.
type revokedRow struct {
	key     APIKey
	revoked int64
	macKey  string
	mac     []byte
}

// prepareRevocation authenticates k (as read, not yet revoked) revoked at `at`. It does
// not require k's stored authenticator to be valid: a revoked key grants nothing, so
// authenticating a refused row as revoked gives nothing away, and it is how an operator
// retires a refused row (apikeys.Revoke). Un-revoking it again needs the key file.
func prepareRevocation(k APIKey, at time.Time, ring *keyring.Keyring) (revokedRow, error) {
	ns, err := toNanos(at)
	if err == nil && ns == 0 {
		err = errors.New("zero revocation time")
	}
	if err != nil {
		return revokedRow{}, err
	}
	k.RevokedAt = fromNanos(ns)
	auth, err := newAPIKeyAuth(ring)
	if err != nil {
		return revokedRow{}, err
	}
	r := revokedRow{key: k, revoked: ns}
	if r.macKey, r.mac, err = auth.sign(k); err != nil {
		return revokedRow{}, err
	}
	return r, nil
}

// storedAPIKey is an API key row as read, before its authenticator is checked.
type storedAPIKey struct {
	key    APIKey
	macKey string
	mac    []byte
}

// verified returns the key if its row is authenticated.
func (r storedAPIKey) verified(auth apiKeyAuth) (APIKey, error) {
	if err := auth.verify(r.key, r.macKey, r.mac); err != nil {
		return APIKey{}, err
	}
	return r.key, nil
}

// remac authenticates a verified row again under the primary key of auth's ring. It
// returns ok == false, and nothing else, when the row already is under the primary key.
// A row that fails verification is not re-authenticated: that would launder it.
func (a apiKeyAuth) remac(r storedAPIKey) (macKey string, mac []byte, ok bool, err error) {
	if r.macKey == a.ring.PrimaryID() {
		return "", nil, false, nil
	}
	if err := a.verify(r.key, r.macKey, r.mac); err != nil {
		return "", nil, false, err
	}
	macKey, mac, err = a.sign(r.key)
	if err != nil {
		return "", nil, false, err
	}
	return macKey, mac, true, nil
}
