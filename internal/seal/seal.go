// Package seal carries seeds — the grant material a human hands in: refresh token,
// client secret, login — through Temporal so that nothing but the worker's
// seed-storing activity can read them.
//
// Every Temporal payload is already encrypted by the payload codec (internal/codec),
// but the codec endpoint decrypts payloads for whoever it lets in: the Web UI's users,
// the temporal CLI, any process that reaches it. A seed is therefore sealed once more,
// under keys derived from the key file for seeds only (keyring.Derive with Label), which
// the codec endpoint never holds. Decoded anywhere else, a seed reads as its envelope:
//
//	{"sealed":"tw1:<key ID>:<base64url of nonce || ciphertext || tag>"}
//
// The associated data binds the sealed seed to one credential ID and to the
// configuration it was sealed for (provider, endpoint URLs, client ID, auth style,
// parent: provider.BindingOf), so a sealed seed copied from one workflow's history into
// another workflow, or into a run of the same credential pointed at another token URL,
// fails to open. Inside, each seal carries a fresh ID and its sealing time, so that the
// store can tell a seed it already applied, or an older one replayed, from a new one.
package seal

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/tokenwarden/tokenwarden/internal/keyring"
)

// Label is the HKDF info that derives the seed keys from the key file's keys.
const Label = "tokenwarden/seed/v1"

// Prefix starts every sealed seed; the key ID and the ciphertext follow.
const Prefix = "tw1:"

// Seed is grant material in plaintext. It exists only in the starter, in the Seed
// activity and, for a moment, in the worker's sealing endpoint.
type Seed struct {
	RefreshToken string `json:"refresh_token,omitempty"`
	ClientSecret string `json:"client_secret,omitempty"`
	// Username and Password are for providers that log in (Zogo, SMSBAT ChatHub).
	Username string `json:"username,omitempty"`
	Password string `json:"password,omitempty"`
	// AccessToken and AccessExpiresAt may be given when a fresh token is at hand, so
	// the first refresh waits for the normal time instead of happening at once.
	AccessToken     string    `json:"access_token,omitempty"`
	AccessExpiresAt time.Time `json:"access_expires_at,omitzero"`
}

// IsZero reports whether the seed carries nothing at all.
func (s Seed) IsZero() bool { return s == Seed{} }

// Envelope is a seed as it travels in a workflow input, a reseed signal or update and
// the Seed activity's input: sealed, or (refused unless the worker allows it for local
// development) in plaintext, which is how histories written before sealing carry it.
type Envelope struct {
	Sealed string `json:"sealed,omitempty"`
	Seed
}

// Plaintext reports whether the envelope carries grant material in the clear.
func (e Envelope) Plaintext() bool { return !e.Seed.IsZero() }

// Check validates the envelope's shape without opening it: exactly one of a sealed
// seed and a plaintext one. Its errors never contain a secret.
func (e Envelope) Check() error {
	switch {
	case e.Sealed != "" && e.Plaintext():
		return errors.New("seed: has both \"sealed\" and plaintext fields; send only the sealed form")
	case e.Sealed != "":
		if _, _, err := split(e.Sealed); err != nil {
			return fmt.Errorf("seed.sealed: %w", err)
		}
		return nil
	case e.Plaintext():
		return nil
	default:
		return errors.New(`seed: required (a sealed seed, {"sealed":"tw1:..."}, made by "starter seal")`)
	}
}

// Opened is a seed taken out of its envelope.
type Opened struct {
	// ID is unique per seal; SealedAt is when it was sealed.
	ID       string
	SealedAt time.Time
	Seed     Seed
}

// content is the sealed plaintext.
type content struct {
	ID       string    `json:"id"`
	SealedAt time.Time `json:"sealed_at"`
	Seed     Seed      `json:"seed"`
}

// Sealer seals and opens seeds with the seed keys derived from a key file's ring.
type Sealer struct {
	ring *keyring.Keyring
	now  func() time.Time
}

// NewSealer derives the seed keys from ring. now is the clock for SealedAt (nil:
// time.Now).
func NewSealer(ring *keyring.Keyring, now func() time.Time) (*Sealer, error) {
	if ring == nil {
		return nil, errors.New("seal: nil keyring")
	}
	derived, err := ring.Derive(Label)
	if err != nil {
		return nil, fmt.Errorf("seal: %w", err)
	}
	if now == nil {
		now = time.Now
	}
	return &Sealer{ring: derived, now: now}, nil
}

// Seal seals seed for the credential id with the configuration binding (see
// provider.BindingOf).
func (s *Sealer) Seal(seed Seed, id string, binding string) (Envelope, error) {
	if id == "" {
		return Envelope{}, errors.New("seal: empty credential ID")
	}
	plain, err := json.Marshal(content{ID: uuid.NewString(), SealedAt: s.now().UTC(), Seed: seed})
	if err != nil {
		return Envelope{}, fmt.Errorf("seal: encode seed: %w", err) // names types, not values
	}
	defer clear(plain)
	keyID, sealed, err := s.ring.Seal(plain, aad(id, binding))
	if err != nil {
		return Envelope{}, fmt.Errorf("seal: %w", err)
	}
	return Envelope{Sealed: Prefix + keyID + ":" + base64.RawURLEncoding.EncodeToString(sealed)}, nil
}

// Open opens a sealed envelope for the credential id with the binding of the run that
// presents it. A seed sealed for another credential or another configuration fails to
// open. Its errors never contain plaintext.
func (s *Sealer) Open(env Envelope, id string, binding string) (Opened, error) {
	keyID, sealed, err := split(env.Sealed)
	if err != nil {
		return Opened{}, err
	}
	plain, err := s.ring.Open(keyID, sealed, aad(id, binding))
	if err != nil {
		return Opened{}, fmt.Errorf("the sealed seed does not open for credential %q with this configuration "+
			"(it was sealed for another credential, provider or endpoint, or with a key this worker lacks): %w", id, err)
	}
	defer clear(plain)
	var c content
	if err := json.Unmarshal(plain, &c); err != nil {
		// Do not wrap: a syntax error could quote fragments of the plaintext.
		return Opened{}, errors.New("the sealed seed opened but is not a seed document")
	}
	if c.ID == "" || c.SealedAt.IsZero() {
		return Opened{}, errors.New("the sealed seed lacks its ID or sealing time")
	}
	return Opened(c), nil
}

// split parses "tw1:<key ID>:<base64url>".
func split(sealed string) (keyID string, ciphertext []byte, err error) {
	rest, ok := strings.CutPrefix(sealed, Prefix)
	if !ok {
		return "", nil, fmt.Errorf("not a sealed seed: it must start with %q", Prefix)
	}
	i := strings.LastIndexByte(rest, ':')
	if i <= 0 || i == len(rest)-1 {
		return "", nil, errors.New("not a sealed seed: want tw1:<key ID>:<ciphertext>")
	}
	ciphertext, err = base64.RawURLEncoding.DecodeString(rest[i+1:])
	if err != nil {
		return "", nil, errors.New("not a sealed seed: the ciphertext is not base64url")
	}
	return rest[:i], ciphertext, nil
}

// aad is the associated data of a seal: the label, the credential ID and the binding.
func aad(id string, binding string) []byte {
	return []byte(Label + "\x00" + id + "\x00" + binding)
}
