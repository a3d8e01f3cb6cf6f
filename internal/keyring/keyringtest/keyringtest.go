// Package keyringtest makes keyrings of fresh random keys for tests.
package keyringtest

import (
	"crypto/rand"
	"testing"

	"github.com/tokenwarden/tokenwarden/internal/keyring"
)

// Random returns a keyring with one fresh random key per ID, the first ID primary. With
// no ID it holds one key, "k1".
func Random(tb testing.TB, ids ...string) *keyring.Keyring {
	tb.Helper()
	if len(ids) == 0 {
		ids = []string{"k1"}
	}
	keys := make(map[string][]byte, len(ids))
	for _, id := range ids {
		key := make([]byte, keyring.KeySize)
		if _, err := rand.Read(key); err != nil {
			tb.Fatal(err)
		}
		keys[id] = key
	}
	ring, err := keyring.New(ids[0], keys)
	if err != nil {
		tb.Fatal(err)
	}
	return ring
}
