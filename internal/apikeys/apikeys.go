// Package apikeys is the core of the token API's keys: their format, what the token
// store keeps of them, and the operations the command-line tools run on the store
// (create, revoke, list). The token API (internal/tokenapi) authenticates with Parse and
// Hash; the starter (`starter apikey`) manages keys with Create, Revoke and List and
// prints with the Write functions.
//
// # Key format
//
// A key reads twk_<id>_<secret>:
//
//   - twk_ marks it as a tokenwarden key, so that it is recognisable in a leaked file
//     and cannot be confused with a provider's token;
//   - id is 16 lower-case hex digits (8 random bytes). It is public: it names the key in
//     the store, the logs and the commands, and lets the token API find the stored key
//     with one indexed lookup instead of trying every hash;
//   - secret is 32 random bytes (256 bits) in unpadded lower-case base32, 52 characters
//     of a-z and 2-7: safe in a header, a shell variable and a URL without quoting.
//
// # Why SHA-256 and not bcrypt
//
// The store keeps only SHA-256 of the whole key string, so the ID is bound to the
// secret, and the token API compares it in constant time. A slow password hash (bcrypt,
// scrypt, Argon2) exists to make guessing a human-chosen password from its hash
// expensive; a key of 256 random bits cannot be guessed from its hash whatever the hash
// costs, so the slowness would buy nothing. It would cost every request tens of
// milliseconds of CPU, which an unauthenticated caller could spend at will.
//
// The key itself is never stored or logged: Create returns it once, as a Secret that
// does not print itself, and a lost key is revoked and replaced. Revoked keys stay in
// the store and keep their names, so a name is never reused for another consumer.
//
// The operations take the token store's store.APIKeys role, SQLite or PostgreSQL (Create
// reads its records too, see CreateStore), and are safe while workers run: a worker
// looks the key up on every request, so a revocation applies to the next one. They
// return typed errors (ErrInvalidInput, ErrNameTaken, ErrUnknownKey, ErrAmbiguous,
// matched with errors.Is) and never print; each tool maps them to its exit codes.
package apikeys

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base32"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/tokenwarden/tokenwarden/internal/credential"
	"github.com/tokenwarden/tokenwarden/internal/store"
)

// The key format (see the package documentation).
const (
	Prefix    = "twk_"
	IDLen     = 2 * idBytes // hex digits
	SecretLen = 52          // 32 bytes in unpadded base32
	KeyLen    = len(Prefix) + IDLen + 1 + SecretLen
	// MaxNameLen bounds a key's name.
	MaxNameLen = 64

	idBytes     = 8
	secretBytes = 32
)

var secretEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// Generate returns a new key, its ID and the hash to store. The caller shows the key
// once and keeps only the hash.
func Generate() (key, id string, hash []byte, err error) {
	var b [idBytes + secretBytes]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", "", nil, fmt.Errorf("generate API key: %w", err)
	}
	id = hex.EncodeToString(b[:idBytes])
	key = Prefix + id + "_" + secretEncoding.EncodeToString(b[idBytes:])
	clear(b[:])
	return key, id, Hash(key), nil
}

// Hash is what the store keeps of a key: SHA-256 of the whole key string, so that the
// ID part is bound to the secret part.
func Hash(key string) []byte {
	h := sha256.Sum256([]byte(key))
	return h[:]
}

// Parse returns the ID of a well-formed key. It says only whether the key is well
// formed, never what is wrong with it, so that no caller is tempted to echo it.
func Parse(key string) (id string, ok bool) {
	if len(key) != KeyLen || !strings.HasPrefix(key, Prefix) || key[len(Prefix)+IDLen] != '_' {
		return "", false
	}
	id = key[len(Prefix) : len(Prefix)+IDLen]
	if !IsID(id) {
		return "", false
	}
	for _, c := range key[len(Prefix)+IDLen+1:] {
		if !('a' <= c && c <= 'z' || '2' <= c && c <= '7') {
			return "", false
		}
	}
	return id, true
}

// IsID reports whether s has the form of a key ID: 16 lower-case hex digits.
func IsID(s string) bool {
	if len(s) != IDLen {
		return false
	}
	for _, c := range s {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// ValidName accepts 1-64 letters, digits, '.', '_', '-', starting with a letter or
// digit, and not of a key ID's form, so that "revoke NAME|ID" is never ambiguous. The
// error matches ErrInvalidInput.
func ValidName(name string) error {
	if name == "" || len(name) > MaxNameLen {
		return invalid("API key name must be 1-%d characters", MaxNameLen)
	}
	for i, r := range name {
		alnum := 'a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9'
		if !alnum && (i == 0 || (r != '.' && r != '_' && r != '-')) {
			return invalid("API key name %q: use letters, digits, '.', '_' and '-', starting with a letter or digit", name)
		}
	}
	if IsID(name) {
		return invalid("API key name %q looks like a key ID (16 hex digits); choose another", name)
	}
	return nil
}

// CheckRef accepts what may name a key in "revoke NAME|ID": a valid name or a key ID.
// The error matches ErrInvalidInput.
func CheckRef(ref string) error {
	if !IsID(ref) && ValidName(ref) != nil {
		return invalid("%q is neither an API key name nor an ID (16 hex digits)", ref)
	}
	return nil
}

// ParseCredentialIDs splits a command line's ID[,ID...] (blanks around IDs allowed,
// empty items skipped) and checks each ID. No IDs at all is an error: a key must be
// scoped to something. Errors match ErrInvalidInput.
func ParseCredentialIDs(list string) ([]string, error) {
	var ids []string
	for id := range strings.SplitSeq(list, ",") {
		if id = strings.TrimSpace(id); id != "" {
			ids = append(ids, id)
		}
	}
	return ids, checkCredentialIDs(ids)
}

func checkCredentialIDs(ids []string) error {
	if len(ids) == 0 {
		return invalid("no credential IDs: an API key needs -credential ID[,ID...], the credentials it may read")
	}
	for _, id := range ids {
		if err := credential.ValidateID(id); err != nil {
			return invalid("credential %v", err)
		}
	}
	return nil
}

// Errors the operations return, matched with errors.Is. Their messages are written for
// the operator; none quotes a key or a hash.
var (
	// ErrInvalidInput: a name, credential ID or key reference is malformed; nothing was
	// written.
	ErrInvalidInput = errors.New("invalid input")
	// ErrNameTaken: an API key with the name exists, possibly revoked (revoked keys keep
	// their names). It also matches store.ErrAPIKeyExists.
	ErrNameTaken = errors.New("API key name taken")
	// ErrUnknownKey: no API key has the name or ID.
	ErrUnknownKey = errors.New("unknown API key")
	// ErrAmbiguous: the reference is one key's name and another key's ID.
	ErrAmbiguous = errors.New("ambiguous API key reference")
)

// refusal is an error of one of the kinds above with its own message; it may also wrap
// the store error behind it.
type refusal struct {
	kind  error
	cause error
	msg   string
}

func (e *refusal) Error() string { return e.msg }

func (e *refusal) Unwrap() []error {
	if e.cause == nil {
		return []error{e.kind}
	}
	return []error{e.kind, e.cause}
}

func invalid(format string, args ...any) error {
	return &refusal{kind: ErrInvalidInput, msg: fmt.Sprintf(format, args...)}
}

// Secret is a whole API key. It does not print itself (fmt, JSON and slog show a
// placeholder), so that a result logged or printed by mistake does not leak it; call
// Reveal where the key is meant to be shown, once.
type Secret string

const redacted = "[API key not shown]"

// Reveal returns the key.
func (s Secret) Reveal() string { return string(s) }

// String hides the key.
func (Secret) String() string { return redacted }

// GoString hides the key from %#v.
func (Secret) GoString() string { return redacted }

// Format hides the key from every fmt verb: String covers only %v, %s, %q, %x and %X,
// and fmt shows the raw value in its complaint about any other (%d, say).
func (Secret) Format(f fmt.State, _ rune) { _, _ = f.Write([]byte(redacted)) }

// MarshalJSON hides the key from encoding/json.
func (Secret) MarshalJSON() ([]byte, error) { return []byte(`"` + redacted + `"`), nil }

// Info is what may be shown of a stored API key: everything but its hash. The key
// itself is not stored at all.
type Info struct {
	Name          string    `json:"name"`
	ID            string    `json:"id"`
	CredentialIDs []string  `json:"credentials"`
	CreatedAt     time.Time `json:"created_at"`
	RevokedAt     time.Time `json:"revoked_at,omitzero"`
	LastUsedAt    time.Time `json:"last_used_at,omitzero"`
}

// Revoked reports whether the key has been revoked.
func (i Info) Revoked() bool { return !i.RevokedAt.IsZero() }

func infoOf(k store.APIKey) Info {
	return Info{
		Name: k.Name, ID: k.ID, CredentialIDs: k.CredentialIDs,
		CreatedAt: k.CreatedAt, RevokedAt: k.RevokedAt, LastUsedAt: k.LastUsedAt,
	}
}

// Created is the outcome of Create.
type Created struct {
	// Key is the new key: shown once, then gone (the store keeps only its hash).
	Key  Secret
	Info Info
	// Missing are the scoped credentials the token store does not hold (yet). A key may
	// be created before its credential is seeded; it gets 404 for it until then.
	Missing []string
	// CheckErr is why Missing could not be worked out, if it could not; the key was
	// created regardless.
	CheckErr error
}

// CreateStore is what Create needs of the token store: somewhere to keep the key, and
// the records, to tell which of the key's credentials it holds none for.
type CreateStore interface {
	store.APIKeys
	store.Reader
}

// Create generates a key named name, scoped to credIDs, and stores its hash. Errors:
// ErrInvalidInput (name or IDs), ErrNameTaken, or the store's.
func Create(ctx context.Context, st CreateStore, name string, credIDs []string) (Created, error) {
	if err := ValidName(name); err != nil {
		return Created{}, err
	}
	if err := checkCredentialIDs(credIDs); err != nil {
		return Created{}, err
	}
	key, id, hash, err := Generate()
	if err != nil {
		return Created{}, err
	}
	k, err := st.CreateAPIKey(ctx, store.APIKey{ID: id, Name: name, CredentialIDs: credIDs, Hash: hash})
	if errors.Is(err, store.ErrAPIKeyExists) {
		// Only the name can clash in practice: IDs are 64 random bits.
		return Created{}, &refusal{kind: ErrNameTaken, cause: err,
			msg: fmt.Sprintf("an API key named %q already exists (revoked keys keep their names); choose another name", name)}
	}
	if err != nil {
		return Created{}, fmt.Errorf("create API key %q: %w", name, err)
	}
	c := Created{Key: Secret(key), Info: infoOf(k)}
	c.Missing, c.CheckErr = missing(ctx, st, c.Info.CredentialIDs)
	return c, nil
}

// missing returns those of ids the store holds no record for. List reads no secrets, so
// this works whatever keys the records are sealed under.
func missing(ctx context.Context, st store.Reader, ids []string) ([]string, error) {
	recs, err := st.List(ctx)
	if err != nil {
		return nil, fmt.Errorf("check the scoped credentials: %w", err)
	}
	known := make(map[string]bool, len(recs))
	for _, r := range recs {
		known[r.ID] = true
	}
	var out []string
	for _, id := range ids {
		if !known[id] {
			out = append(out, id)
		}
	}
	return out, nil
}

// Revoked is the outcome of Revoke.
type Revoked struct {
	Info Info
	// Already: the key was revoked before; Info.RevokedAt is the first revocation.
	Already bool
}

// Revoke revokes the key whose name or ID is ref, at now. Revoking a revoked key is not
// an error (Already is set), so that a retried revocation succeeds. Errors:
// ErrInvalidInput (ref can be neither), ErrUnknownKey, ErrAmbiguous, or the store's.
func Revoke(ctx context.Context, st store.APIKeys, ref string, now time.Time) (Revoked, error) {
	if err := CheckRef(ref); err != nil {
		return Revoked{}, err
	}
	keys, err := st.ListAPIKeys(ctx)
	if errors.Is(err, store.ErrAPIKeyUnauthenticated) && IsID(ref) {
		// The listing is refused because some row fails its authenticator. Revoking by
		// ID needs no listing, and it is how such a row is retired: a revoked key grants
		// nothing, whoever wrote its row.
		return revokeByID(ctx, st, ref, now)
	}
	if err != nil {
		return Revoked{}, fmt.Errorf("revoke API key %q: %w", ref, err)
	}
	var match *store.APIKey
	for i := range keys {
		if keys[i].ID != ref && keys[i].Name != ref {
			continue
		}
		// ValidName keeps names out of the ID form; a key stored by other means could
		// still have one, and guessing which key was meant would revoke the wrong one.
		if match != nil && match.ID != keys[i].ID {
			return Revoked{}, &refusal{kind: ErrAmbiguous,
				msg: fmt.Sprintf("%q names key %s and is the ID of key %s; give the ID", ref, nameOwner(ref, *match, keys[i]).ID, idOwner(ref, *match, keys[i]).ID)}
		}
		match = &keys[i]
	}
	if match == nil {
		return Revoked{}, &refusal{kind: ErrUnknownKey, msg: fmt.Sprintf("no API key is named %q or has that ID", ref)}
	}
	if match.Revoked() {
		return Revoked{Info: infoOf(*match), Already: true}, nil
	}
	k, err := st.RevokeAPIKey(ctx, match.ID, now)
	if errors.Is(err, store.ErrAPIKeyNotFound) {
		return Revoked{}, &refusal{kind: ErrUnknownKey, cause: err, msg: fmt.Sprintf("API key %q (id %s) is gone from the token store", match.Name, match.ID)}
	}
	if err != nil {
		return Revoked{}, fmt.Errorf("revoke API key %q (id %s): %w", match.Name, match.ID, err)
	}
	return Revoked{Info: infoOf(k)}, nil
}

// revokeByID revokes the key with the ID without listing the others first.
func revokeByID(ctx context.Context, st store.APIKeys, id string, now time.Time) (Revoked, error) {
	k, err := st.RevokeAPIKey(ctx, id, now)
	if errors.Is(err, store.ErrAPIKeyNotFound) {
		return Revoked{}, &refusal{kind: ErrUnknownKey, cause: err, msg: fmt.Sprintf("no API key has the ID %s", id)}
	}
	if err != nil {
		return Revoked{}, fmt.Errorf("revoke API key %s: %w", id, err)
	}
	// The store keeps the first revocation time, so another one means it was revoked.
	return Revoked{Info: infoOf(k), Already: !k.RevokedAt.Equal(now)}, nil
}

// nameOwner and idOwner tell apart, of two keys that ref matches, the one it names and
// the one whose ID it is.
func nameOwner(ref string, a, b store.APIKey) store.APIKey {
	if a.Name == ref {
		return a
	}
	return b
}

func idOwner(ref string, a, b store.APIKey) store.APIKey {
	if a.ID == ref {
		return a
	}
	return b
}

// List returns every API key, revoked ones included, ordered by name.
func List(ctx context.Context, st store.APIKeys) ([]Info, error) {
	keys, err := st.ListAPIKeys(ctx)
	if err != nil {
		return nil, fmt.Errorf("list API keys: %w", err)
	}
	out := make([]Info, len(keys))
	for i, k := range keys {
		out[i] = infoOf(k)
	}
	return out, nil
}
