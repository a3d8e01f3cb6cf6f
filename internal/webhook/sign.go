package webhook

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// The Standard Webhooks headers every delivery carries.
const (
	HeaderID        = "webhook-id"
	HeaderTimestamp = "webhook-timestamp"
	HeaderSignature = "webhook-signature"
)

// SecretPrefix starts every signing secret; the rest is the key in standard base64.
const SecretPrefix = "whsec_"

// Bounds of a signing key, in bytes after decoding. Fewer than 24 bytes is too easy to
// guess; more than 64 adds nothing to HMAC-SHA256, whose block is 64 bytes.
const (
	MinSecretBytes = 24
	MaxSecretBytes = 64
)

// DefaultTolerance is how far a delivery's timestamp may be from the receiver's clock
// before Verify refuses it: it bounds how long a captured delivery can be replayed.
const DefaultTolerance = 5 * time.Minute

// signatureVersion names the scheme of a signature: HMAC-SHA256.
const signatureVersion = "v1"

// Verification failures. Verify wraps one of them, so errors.Is tells them apart.
var (
	ErrNoSignature  = errors.New("webhook: the delivery is not signed")
	ErrBadSignature = errors.New("webhook: no signature matches")
	ErrTimestamp    = errors.New("webhook: timestamp missing, malformed or outside the tolerance")
)

// ParseSecret returns the key of a "whsec_<base64>" secret. Its errors never quote the
// secret.
func ParseSecret(secret string) ([]byte, error) {
	rest, ok := strings.CutPrefix(secret, SecretPrefix)
	if !ok {
		return nil, fmt.Errorf("a signing secret must start with %q (the secret is not shown)", SecretPrefix)
	}
	key, err := base64.StdEncoding.DecodeString(rest)
	if err != nil {
		return nil, fmt.Errorf("a signing secret is %q followed by standard base64 (the secret is not shown)", SecretPrefix)
	}
	if len(key) < MinSecretBytes || len(key) > MaxSecretBytes {
		return nil, fmt.Errorf("a signing secret's key must be %d-%d bytes, got %d (the secret is not shown)",
			MinSecretBytes, MaxSecretBytes, len(key))
	}
	return key, nil
}

// Sign returns the webhook-signature value of one delivery: "v1," and the base64
// HMAC-SHA256, under the secret's key, of id "." unix-seconds "." body.
func Sign(secret, id string, ts time.Time, body []byte) (string, error) {
	key, err := ParseSecret(secret)
	if err != nil {
		return "", err
	}
	return signatureVersion + "," + base64.StdEncoding.EncodeToString(mac(key, id, ts.Unix(), body)), nil
}

func mac(key []byte, id string, unix int64, body []byte) []byte {
	h := hmac.New(sha256.New, key)
	h.Write([]byte(id))
	h.Write([]byte{'.'})
	h.Write([]byte(strconv.FormatInt(unix, 10)))
	h.Write([]byte{'.'})
	h.Write(body)
	return h.Sum(nil)
}

// Verify checks a delivery as its receiver would: header holds the three webhook-*
// headers, body is the raw request body, now the receiver's clock and tolerance the
// largest accepted distance of the timestamp from it (DefaultTolerance if zero). The
// signature header may list several space-separated signatures (a sender rotating its
// secret signs with both); one matching v1 signature suffices.
func Verify(secret string, header http.Header, body []byte, now time.Time, tolerance time.Duration) error {
	key, err := ParseSecret(secret)
	if err != nil {
		return fmt.Errorf("webhook: verify: %w", err)
	}
	if tolerance <= 0 {
		tolerance = DefaultTolerance
	}
	id := header.Get(HeaderID)
	sigs := header.Get(HeaderSignature)
	if id == "" || sigs == "" {
		return ErrNoSignature
	}
	unix, err := strconv.ParseInt(header.Get(HeaderTimestamp), 10, 64)
	if err != nil {
		return fmt.Errorf("%w: not unix seconds", ErrTimestamp)
	}
	if d := now.Sub(time.Unix(unix, 0)); d > tolerance || d < -tolerance {
		return fmt.Errorf("%w: %s from the receiver's clock", ErrTimestamp, d.Round(time.Second))
	}
	want := mac(key, id, unix, body)
	for _, s := range strings.Fields(sigs) {
		version, b64, ok := strings.Cut(s, ",")
		if !ok || version != signatureVersion {
			continue
		}
		got, err := base64.StdEncoding.DecodeString(b64)
		if err != nil {
			continue
		}
		if hmac.Equal(got, want) {
			return nil
		}
	}
	return ErrBadSignature
}
