// Package keyring seals small secrets with AES-256-GCM under named keys so that keys
// can rotate without a flag day.
//
// A Keyring holds one or more 32-byte keys, each under a key ID, and names one of them
// primary. Seal always uses the primary key and returns its ID; the caller stores that ID
// next to the ciphertext. Open looks the key up by the stored ID, so a ring that holds
// both the old and the new key reads everything written before a rotation while every
// new write already uses the new key. Once all records have been rewritten, the old key
// can be dropped from the ring.
//
// The associated data (aad) passed to Seal must be passed unchanged to Open. Binding the
// ciphertext to where it lives (for example a database row ID) means a ciphertext copied
// to another place fails to open instead of silently becoming that place's secret.
//
// Errors name key IDs (which are not secret) but never contain plaintext or key bytes.
package keyring

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/sha256"
	"errors"
	"fmt"
	"slices"
	"strings"
	"unicode"
)

// KeySize is the length in bytes of every key: AES-256.
const KeySize = 32

// Keyring seals with its primary key and opens with any key it holds. It is immutable
// after New and safe for concurrent use.
type Keyring struct {
	primary string
	ids     []string               // sorted, for error messages
	aeads   map[string]cipher.AEAD // key ID -> GCM with random nonces
	// raw holds copies of the keys, for Derive only, behind a pointer so that printing
	// a Keyring value (not only *Keyring, whose String hides everything) shows an
	// address rather than key bytes.
	raw *rawKeys
}

type rawKeys struct{ keys map[string][]byte }

// New builds a Keyring from raw keys. Every key must be exactly KeySize bytes, every key
// ID must be non-empty and free of whitespace and control characters (IDs end up in key
// files, database columns and log lines), and primaryID must be one of the IDs.
//
// New does not keep references to the caller's key slices, so the caller may zero them
// afterwards.
func New(primaryID string, keys map[string][]byte) (*Keyring, error) {
	if len(keys) == 0 {
		return nil, errors.New("keyring: no keys given")
	}
	k := &Keyring{
		primary: primaryID,
		aeads:   make(map[string]cipher.AEAD, len(keys)),
		raw:     &rawKeys{keys: make(map[string][]byte, len(keys))},
	}
	for id, key := range keys {
		if err := validateID(id); err != nil {
			return nil, err
		}
		if len(key) != KeySize {
			// Only the length is reported, never the bytes.
			return nil, fmt.Errorf("keyring: key %q is %d bytes, want %d (AES-256)", id, len(key), KeySize)
		}
		block, err := aes.NewCipher(key)
		if err != nil {
			return nil, fmt.Errorf("keyring: key %q: %w", id, err)
		}
		// NewGCMWithRandomNonce draws a fresh 12-byte nonce from crypto/rand for every
		// Seal and prepends it to the ciphertext, which is exactly our wire format. With
		// random nonces one key is good for about 2^32 messages, far beyond what a token
		// store writes between rotations.
		aead, err := cipher.NewGCMWithRandomNonce(block)
		if err != nil {
			return nil, fmt.Errorf("keyring: key %q: %w", id, err)
		}
		k.aeads[id] = aead
		k.raw.keys[id] = slices.Clone(key)
		k.ids = append(k.ids, id)
	}
	slices.Sort(k.ids)
	if primaryID == "" {
		return nil, errors.New("keyring: primary key ID is empty")
	}
	if _, ok := k.aeads[primaryID]; !ok {
		return nil, fmt.Errorf("keyring: primary key %q is not among the keys (%s)", primaryID, strings.Join(k.ids, ", "))
	}
	return k, nil
}

// validateID rejects IDs that would be ambiguous or unsafe to print.
func validateID(id string) error {
	if id == "" {
		return errors.New("keyring: empty key ID")
	}
	for _, r := range id {
		if unicode.IsSpace(r) || unicode.IsControl(r) || r == unicode.ReplacementChar {
			return fmt.Errorf("keyring: key ID %q contains whitespace or a control character", id)
		}
	}
	return nil
}

// Derive returns a keyring with the same key IDs and primary whose every key is derived
// from this ring's key of that ID by HKDF-SHA256 with label as its info. A ciphertext
// sealed by one ring never opens with the other, so one key file can serve uses that
// must not be able to read each other's data: the payload codec, which the codec
// endpoint opens for anyone it lets in, and sealed seeds, which only the worker's
// seed-storing activity opens (internal/seal).
func (k *Keyring) Derive(label string) (*Keyring, error) {
	if label == "" {
		return nil, errors.New("keyring: derive: empty label")
	}
	derived := make(map[string][]byte, len(k.raw.keys))
	defer func() {
		for _, key := range derived {
			clear(key)
		}
	}()
	for id, key := range k.raw.keys {
		d, err := hkdf.Key(sha256.New, key, nil, label, KeySize)
		if err != nil {
			return nil, fmt.Errorf("keyring: derive key %q: %w", id, err)
		}
		derived[id] = d
	}
	return New(k.primary, derived)
}

// PrimaryID returns the ID of the key Seal uses.
func (k *Keyring) PrimaryID() string { return k.primary }

// IDs returns the IDs of all keys in the ring, sorted.
func (k *Keyring) IDs() []string { return slices.Clone(k.ids) }

// String lists key IDs only, so that printing a Keyring by accident never shows key
// material.
func (k *Keyring) String() string {
	return fmt.Sprintf("keyring(primary=%s, keys=[%s])", k.primary, strings.Join(k.ids, " "))
}

// Seal encrypts plaintext with the primary key. The returned ciphertext is
// nonce (12 bytes) || AES-GCM ciphertext || tag (16 bytes); store keyID next to it.
func (k *Keyring) Seal(plaintext, aad []byte) (keyID string, ciphertext []byte, err error) {
	aead := k.aeads[k.primary]
	// The random-nonce AEAD panics only if crypto/rand fails, which the Go runtime treats
	// as fatal anyway; there is no error to return here.
	return k.primary, aead.Seal(nil, nil, plaintext, aad), nil
}

// Open decrypts a ciphertext produced by Seal under keyID with the same aad. It fails if
// the ring does not hold keyID, or if the ciphertext, the aad or the key do not match.
func (k *Keyring) Open(keyID string, ciphertext, aad []byte) ([]byte, error) {
	aead, ok := k.aeads[keyID]
	if !ok {
		return nil, fmt.Errorf("keyring: ciphertext was sealed with key %q, which this keyring does not hold (it holds %s); add that key to the key file to read it",
			keyID, strings.Join(k.ids, ", "))
	}
	if len(ciphertext) < aead.Overhead() {
		return nil, fmt.Errorf("keyring: ciphertext for key %q is %d bytes, shorter than the %d-byte nonce and tag; it is truncated or corrupt",
			keyID, len(ciphertext), aead.Overhead())
	}
	plaintext, err := aead.Open(nil, nil, ciphertext, aad)
	if err != nil {
		// GCM cannot tell these causes apart, so name them all.
		return nil, fmt.Errorf("keyring: cannot open ciphertext with key %q: authentication failed (the key with this ID differs from the one that sealed it, the associated data differs, or the ciphertext was altered): %w",
			keyID, err)
	}
	return plaintext, nil
}
