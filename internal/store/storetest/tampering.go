package storetest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/tokenwarden/tokenwarden/internal/keyring"
	"github.com/tokenwarden/tokenwarden/internal/store"
)

// RawRow is what a database writer can change in a credential's row without the key
// file: the version, the key ID and the sealed secrets.
type RawRow struct {
	Version int64
	KeyID   string
	Sealed  []byte
}

// RowAccess reads and writes a store's rows behind its back, as someone with write
// access to the database (not the key file) would.
type RowAccess interface {
	ReadRow(t *testing.T, id string) RawRow
	// WriteRow sets the row's version, key ID and sealed secrets.
	WriteRow(t *testing.T, id string, row RawRow)
}

// withRows runs fn on one handle sealing with the suite's keyring, with raw access to
// the rows.
func withRows(fn func(t *testing.T, s store.Store, raw RowAccess, ring *keyring.Keyring)) func(*testing.T, database) {
	return func(t *testing.T, d database) { fn(t, d.open(t, d.ring, nil), d.Rows, d.ring) }
}

// tamperingTests are the contract on rows changed behind the store's back: the sealed
// secrets are bound to the credential and to the version, so a blob moved to another
// row or rolled back fails to open, loudly; rows sealed before the version was bound
// still open, and are sealed anew by the next write or Reseal.
var tamperingTests = []contractTest{
	{"RolledBackBlobRefused", withRows(testRolledBackBlobRefused)},
	{"CiphertextBoundToRow", withRows(testCiphertextBoundToRow)},
	{"LegacyRowOpensAndIsSealedAnew", withRows(testLegacyRowSealedAnew)},
	{"ConcurrentPutsSealTheirVersion", withRows(testConcurrentPutsSealTheirVersion)},
}

// The associated data of the two formats, pinned here because rows in the field hold
// them: before the version was bound, and since.
func legacyAAD(id string) []byte { return []byte("tokenwarden/credential/" + id) }
func versionedAAD(id string, version int64) []byte {
	return fmt.Appendf(nil, "tokenwarden/credential-v/%d/%s", version, id)
}

// testRolledBackBlobRefused: the version-1 blob, whose refresh token the provider has
// since consumed, is restored into the row at version 2. Get must fail, and say why,
// instead of handing out the consumed token.
func testRolledBackBlobRefused(t *testing.T, s store.Store, raw RowAccess, ring *keyring.Keyring) {
	v1 := mustPut(t, s, sample("c1"))
	old := raw.ReadRow(t, "c1")
	next := v1
	next.Secrets.RefreshToken = "refresh-rotated-s3cr3t"
	if _, err := cas(t, s, next, 1); err != nil {
		t.Fatal(err)
	}
	current := raw.ReadRow(t, "c1")
	if current.Version != 2 {
		t.Fatalf("row at version %d, want 2", current.Version)
	}
	if _, err := ring.Open(current.KeyID, current.Sealed, versionedAAD("c1", 2)); err != nil {
		t.Fatalf("the version-2 row is not sealed with the version in its associated data: %v", err)
	}

	raw.WriteRow(t, "c1", RawRow{Version: 2, KeyID: old.KeyID, Sealed: old.Sealed})
	_, err := s.Get(t.Context(), "c1")
	if err == nil {
		t.Fatal("Get opened the version-1 blob restored into the version-2 row")
	}
	if errors.Is(err, store.ErrNotFound) || !strings.Contains(err.Error(), "version 2") {
		t.Errorf("Get error = %v, want one saying the secrets were not sealed for version 2", err)
	}
	if strings.Contains(err.Error(), "s3cr3t") {
		t.Errorf("Get error contains a secret: %v", err)
	}

	// Putting the version back too makes the row consistent again: the blob is
	// genuine at version 1. That is the store going back whole, which the refresh
	// activity refuses (it expects a later version).
	raw.WriteRow(t, "c1", RawRow{Version: 1, KeyID: old.KeyID, Sealed: old.Sealed})
	if got := mustGet(t, s, "c1"); got.Version != 1 || got.Secrets != v1.Secrets {
		t.Errorf("the whole version-1 row did not read back as version 1")
	}
}

// testCiphertextBoundToRow: someone with write access to the database copies the
// victim's sealed secrets into the attacker's row, hoping the store will hand them out
// under the attacker's ID. The credential ID is in the associated data: Get fails,
// saying why, and the victim's row is unharmed.
func testCiphertextBoundToRow(t *testing.T, s store.Store, raw RowAccess, ring *keyring.Keyring) {
	ctx := t.Context()
	for _, id := range []string{"victim", "attacker"} {
		mustPut(t, s, sample(id))
	}
	victim, attacker := raw.ReadRow(t, "victim"), raw.ReadRow(t, "attacker")
	raw.WriteRow(t, "attacker", RawRow{Version: attacker.Version, KeyID: victim.KeyID, Sealed: victim.Sealed})
	if got := raw.ReadRow(t, "attacker"); !bytes.Equal(got.Sealed, victim.Sealed) {
		t.Fatal("the victim's sealed secrets were not copied into the attacker's row")
	}

	_, err := s.Get(ctx, "attacker")
	if err == nil {
		t.Fatal("Get returned another row's secrets")
	}
	if key := strconv.Quote(ring.PrimaryID()); !strings.Contains(err.Error(), "authentication failed") || !strings.Contains(err.Error(), key) {
		t.Fatalf("Get error = %v, want an authentication failure naming key %s", err, key)
	}
	if _, err := s.Get(ctx, "victim"); err != nil {
		t.Fatalf("victim row damaged: %v", err)
	}
}

// testLegacyRowSealedAnew: a row written before the version was bound (its secrets
// sealed with the credential ID alone) still opens; a CompareAndSwap or a Reseal seals
// it anew, with the version.
func testLegacyRowSealedAnew(t *testing.T, s store.Store, raw RowAccess, ring *keyring.Keyring) {
	for _, id := range []string{"by-write", "by-reseal"} {
		rec := sample(id)
		mustPut(t, s, rec)
		mustPut(t, s, rec) // version 2
		plain, err := json.Marshal(rec.Secrets)
		if err != nil {
			t.Fatal(err)
		}
		keyID, sealed, err := ring.Seal(plain, legacyAAD(id))
		if err != nil {
			t.Fatal(err)
		}
		raw.WriteRow(t, id, RawRow{Version: 2, KeyID: keyID, Sealed: sealed})
		got := mustGet(t, s, id)
		if got.Secrets != rec.Secrets || got.Version != 2 {
			t.Fatalf("%s: the legacy row did not open with its secrets at version 2", id)
		}
	}

	next := mustGet(t, s, "by-write")
	if _, err := cas(t, s, next, 2); err != nil {
		t.Fatal(err)
	}
	changed, err := s.Reseal(t.Context(), "by-reseal")
	if err != nil {
		t.Fatal(err)
	}
	if !changed {
		t.Error("Reseal left a legacy row under the primary key as it was")
	}
	if changed, err := s.Reseal(t.Context(), "by-reseal"); err != nil || changed {
		t.Errorf("second Reseal: changed %v, err %v; want nothing to do", changed, err)
	}
	for id, version := range map[string]int64{"by-write": 3, "by-reseal": 2} {
		row := raw.ReadRow(t, id)
		if row.Version != version {
			t.Errorf("%s: row at version %d, want %d", id, row.Version, version)
		}
		if _, err := ring.Open(row.KeyID, row.Sealed, versionedAAD(id, version)); err != nil {
			t.Errorf("%s: not sealed anew with its version: %v", id, err)
		}
		if _, err := ring.Open(row.KeyID, row.Sealed, legacyAAD(id)); err == nil {
			t.Errorf("%s: still opens under the legacy associated data", id)
		}
		if got := mustGet(t, s, id); got.Secrets != sample(id).Secrets {
			t.Errorf("%s: secrets changed on the way", id)
		}
	}
}

// testConcurrentPutsSealTheirVersion: Puts racing on one new ID each write a distinct
// version, and the row at the end opens at its version (each Put sealed for the version
// it wrote).
func testConcurrentPutsSealTheirVersion(t *testing.T, s store.Store, raw RowAccess, ring *keyring.Keyring) {
	const n = 12
	var (
		wg       sync.WaitGroup
		start    = make(chan struct{})
		versions = make([]int64, n)
		errs     = make([]error, n)
	)
	for i := range n {
		wg.Go(func() {
			<-start
			got, err := s.Put(t.Context(), sample("fresh"))
			versions[i], errs[i] = got.Version, err
		})
	}
	close(start)
	wg.Wait()
	seen := map[int64]bool{}
	for i, err := range errs {
		if err != nil {
			t.Fatalf("Put %d: %v", i, err)
		}
		if seen[versions[i]] {
			t.Fatalf("two Puts wrote version %d", versions[i])
		}
		seen[versions[i]] = true
	}
	got := mustGet(t, s, "fresh")
	if got.Version != n {
		t.Fatalf("Version after %d Puts = %d", n, got.Version)
	}
	row := raw.ReadRow(t, "fresh")
	if _, err := ring.Open(row.KeyID, row.Sealed, versionedAAD("fresh", n)); err != nil {
		t.Fatalf("the final row is not sealed for version %d: %v", n, err)
	}
}
