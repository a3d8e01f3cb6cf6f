package storetest

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/tokenwarden/tokenwarden/internal/store"
)

// RawSQL runs one statement on a store's database directly, bypassing the store, as
// someone who can write the database but has no key file could. Statements use ?
// placeholders and the table names api_keys and api_key_scopes; an implementation maps
// both to its own dialect and table names.
type RawSQL func(t *testing.T, query string, args ...any)

// withSQL runs fn with an opener on the test's database and raw access to it.
func withSQL(fn func(t *testing.T, open opener, raw RawSQL)) func(*testing.T, database) {
	return func(t *testing.T, d database) {
		withRings(func(t *testing.T, open opener) { fn(t, open, d.SQL) })(t, d)
	}
}

// apiKeyAuthTests are the API key authentication contract: rows inserted or altered
// outside the store are refused by LookupAPIKey and ListAPIKeys with
// ErrAPIKeyUnauthenticated naming the key, can still be revoked, and rows follow key
// rotation.
var apiKeyAuthTests = []contractTest{
	{"InsertedRowRefused", withSQL(testInsertedAPIKeyRefused)},
	{"AlteredRowsRefused", withSQL(testAlteredAPIKeysRefused)},
	{"WrongKeyFileRefused", withSQL(testAPIKeyWrongKeyFile)},
	{"RotationKeepsRowsValid", withSQL(testAPIKeyRotation)},
}

// wantRefused checks that err refuses the key id loudly: ErrAPIKeyUnauthenticated, and
// the ID in the message.
func wantRefused(t *testing.T, what string, err error, id string) {
	t.Helper()
	if !errors.Is(err, store.ErrAPIKeyUnauthenticated) {
		t.Errorf("%s error = %v, want ErrAPIKeyUnauthenticated", what, err)
		return
	}
	if !strings.Contains(err.Error(), id) {
		t.Errorf("%s error = %q, does not name key %s", what, err, id)
	}
}

// A database writer inserts a key of their own making, scoped to a credential: it must
// grant nothing, and list must say so rather than show it.
func testInsertedAPIKeyRefused(t *testing.T, open opener, raw RawSQL) {
	ctx := t.Context()
	rings := newRotationRings(t)
	s := open(t, rings.before)
	good := apiKey("0123456789abcdef", "billing", "alpha")
	if _, err := s.CreateAPIKey(ctx, good); err != nil {
		t.Fatal(err)
	}
	forged := apiKey("fedcba9876543210", "intruder", "alpha")
	raw(t, `INSERT INTO api_keys (id, name, hash, created_at) VALUES (?, ?, ?, ?)`,
		forged.ID, forged.Name, forged.Hash, forged.CreatedAt.UnixNano())
	raw(t, `INSERT INTO api_key_scopes (key_id, credential_id) VALUES (?, ?)`, forged.ID, "alpha")

	_, err := s.LookupAPIKey(ctx, forged.ID)
	wantRefused(t, "LookupAPIKey(inserted)", err, forged.ID)
	if err != nil && !strings.Contains(err.Error(), "starter apikey") {
		t.Errorf("LookupAPIKey(inserted) error = %q, does not say how to fix it", err)
	}
	checkAPIKey(t, "LookupAPIKey(genuine)", good, mustLookup(t, s, good.ID))
	keys, err := s.ListAPIKeys(ctx)
	wantRefused(t, "ListAPIKeys", err, forged.ID)
	if len(keys) != 0 {
		t.Errorf("ListAPIKeys returned %d keys beside its refusal, want none", len(keys))
	}
	if err != nil && strings.Contains(err.Error(), good.ID) {
		t.Errorf("ListAPIKeys error = %q, names the genuine key too", err)
	}

	// The same row carrying a genuine row's authenticator is refused as well: the
	// authenticator is bound to the row's fields.
	copied := apiKey("1111111111111111", "copycat", "alpha")
	copied.Hash = good.Hash
	raw(t, `INSERT INTO api_keys (id, name, hash, created_at, mac_key_id, mac)
		SELECT ?, ?, hash, created_at, mac_key_id, mac FROM api_keys WHERE id = ?`, copied.ID, copied.Name, good.ID)
	raw(t, `INSERT INTO api_key_scopes (key_id, credential_id) VALUES (?, ?)`, copied.ID, "alpha")
	_, err = s.LookupAPIKey(ctx, copied.ID)
	wantRefused(t, "LookupAPIKey(copied authenticator)", err, copied.ID)

	// Revoking is how the operator retires such rows; afterwards they read as revoked
	// and list works again.
	revokedAt := base.Add(time.Hour)
	for _, id := range []string{forged.ID, copied.ID} {
		got, err := s.RevokeAPIKey(ctx, id, revokedAt)
		if err != nil {
			t.Fatalf("RevokeAPIKey(%s): %v", id, err)
		}
		if !got.Revoked() {
			t.Errorf("RevokeAPIKey(%s) result not revoked", id)
		}
		if k := mustLookup(t, s, id); !k.Revoked() || !sameTime(revokedAt, k.RevokedAt) {
			t.Errorf("LookupAPIKey(%s) after revocation: revoked at %v, want %v", id, k.RevokedAt, revokedAt)
		}
	}
	if keys, err := s.ListAPIKeys(ctx); err != nil || len(keys) != 3 {
		t.Errorf("ListAPIKeys after revoking the refused rows = %d keys, %v; want 3", len(keys), err)
	}
}

// Every field that decides access is covered: changing any of them, or the
// authenticator itself, refuses the key.
func testAlteredAPIKeysRefused(t *testing.T, open opener, raw RawSQL) {
	ctx := t.Context()
	rings := newRotationRings(t)
	s := open(t, rings.before)
	other := apiKey("aaaaaaaaaaaaaaaa", "other", "alpha")
	if _, err := s.CreateAPIKey(ctx, other); err != nil {
		t.Fatal(err)
	}
	alterations := []struct {
		name  string
		alter func(id string)
	}{
		{"scope added", func(id string) {
			raw(t, `INSERT INTO api_key_scopes (key_id, credential_id) VALUES (?, ?)`, id, "zzz-everything")
		}},
		{"scope removed", func(id string) {
			raw(t, `DELETE FROM api_key_scopes WHERE key_id = ? AND credential_id = ?`, id, "beta")
		}},
		{"hash replaced", func(id string) {
			h := apiKey("ffffffffffffffff", "x", "alpha").Hash
			raw(t, `UPDATE api_keys SET hash = ? WHERE id = ?`, h, id)
		}},
		{"renamed", func(id string) { raw(t, `UPDATE api_keys SET name = ? WHERE id = ?`, "renamed-"+id, id) }},
		{"created moved", func(id string) { raw(t, `UPDATE api_keys SET created_at = created_at + 1 WHERE id = ?`, id) }},
		{"unrevoked", func(id string) { raw(t, `UPDATE api_keys SET revoked_at = 0 WHERE id = ?`, id) }},
		{"authenticator swapped", func(id string) {
			raw(t, `UPDATE api_keys SET mac = (SELECT mac FROM api_keys WHERE id = ?) WHERE id = ?`, other.ID, id)
		}},
		{"authenticator removed", func(id string) { raw(t, `UPDATE api_keys SET mac_key_id = '', mac = ? WHERE id = ?`, []byte{}, id) }},
		{"key ID unknown", func(id string) { raw(t, `UPDATE api_keys SET mac_key_id = ? WHERE id = ?`, "nosuchkey", id) }},
	}
	for i, a := range alterations {
		id := strings.Repeat(string("0123456789"[i%10]), 16)
		k := apiKey(id, "victim-"+id, "alpha", "beta")
		if _, err := s.CreateAPIKey(ctx, k); err != nil {
			t.Fatalf("%s: CreateAPIKey: %v", a.name, err)
		}
		if a.name == "unrevoked" {
			if _, err := s.RevokeAPIKey(ctx, id, base.Add(time.Minute)); err != nil {
				t.Fatalf("%s: RevokeAPIKey: %v", a.name, err)
			}
		}
		mustLookup(t, s, id) // genuine until altered
		a.alter(id)
		_, err := s.LookupAPIKey(ctx, id)
		wantRefused(t, a.name+": LookupAPIKey", err, id)
		_, err = s.ListAPIKeys(ctx)
		wantRefused(t, a.name+": ListAPIKeys", err, id)
		// Retire it, so that the next case's list names only its own key.
		if _, err := s.RevokeAPIKey(ctx, id, base.Add(time.Hour)); err != nil {
			t.Fatalf("%s: RevokeAPIKey: %v", a.name, err)
		}
	}
	// TouchAPIKey's column is not covered: a touched key stays valid.
	if err := s.TouchAPIKey(ctx, other.ID, base.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	mustLookup(t, s, other.ID)
}

// A ring with the right key ID but other key bytes (the wrong key file) refuses every
// row instead of trusting it.
func testAPIKeyWrongKeyFile(t *testing.T, open opener, _ RawSQL) {
	ctx := t.Context()
	rings := newRotationRings(t)
	k := apiKey("0123456789abcdef", "billing", "alpha")
	if _, err := open(t, rings.before).CreateAPIKey(ctx, k); err != nil {
		t.Fatal(err)
	}
	impostor := newRotationRings(t).before // same key ID, other bytes
	_, err := open(t, impostor).LookupAPIKey(ctx, k.ID)
	wantRefused(t, "LookupAPIKey with the wrong key file", err, k.ID)
}

// Rows authenticated under the old key stay valid while the ring holds it, RemacAPIKeys
// moves them to the new primary (skipping a refused row, which it names), and then
// the old key is no longer needed.
func testAPIKeyRotation(t *testing.T, open opener, raw RawSQL) {
	ctx := t.Context()
	rings := newRotationRings(t)
	old := open(t, rings.before)
	keys := []store.APIKey{apiKey("0123456789abcdef", "billing", "alpha"), apiKey("fedcba9876543210", "analytics", "beta")}
	for _, k := range keys {
		if _, err := old.CreateAPIKey(ctx, k); err != nil {
			t.Fatal(err)
		}
	}
	forged := apiKey("1111111111111111", "intruder", "alpha")
	raw(t, `INSERT INTO api_keys (id, name, hash, created_at, mac_key_id, mac) VALUES (?, ?, ?, ?, ?, ?)`,
		forged.ID, forged.Name, forged.Hash, forged.CreatedAt.UnixNano(), rings.before.PrimaryID(), make([]byte, 28))

	during := open(t, rings.during)
	for _, k := range keys {
		mustLookup(t, during, k.ID)
	}
	counts, err := during.APIKeyKeyIDs(ctx)
	if err != nil || len(counts) != 1 || counts[rings.before.PrimaryID()] != 3 {
		t.Fatalf("APIKeyKeyIDs before re-authenticating = %v, %v; want 3 under %s", counts, err, rings.before.PrimaryID())
	}
	n, err := during.RemacAPIKeys(ctx)
	if n != 2 {
		t.Errorf("RemacAPIKeys moved %d rows, want 2", n)
	}
	wantRefused(t, "RemacAPIKeys", err, forged.ID)
	counts, err = during.APIKeyKeyIDs(ctx)
	if err != nil || counts[rings.during.PrimaryID()] != 2 || counts[rings.before.PrimaryID()] != 1 {
		t.Fatalf("APIKeyKeyIDs after re-authenticating = %v, %v; want 2 under %s and the refused row under %s",
			counts, err, rings.during.PrimaryID(), rings.before.PrimaryID())
	}
	if n, err := during.RemacAPIKeys(ctx); n != 0 || !errors.Is(err, store.ErrAPIKeyUnauthenticated) {
		t.Errorf("RemacAPIKeys again = %d, %v; want 0 and the refused row again", n, err)
	}

	after := open(t, rings.after)
	for _, k := range keys {
		checkAPIKey(t, "LookupAPIKey with the old key dropped", k, mustLookup(t, after, k.ID))
	}
	// The lagging worker (new keys, old primary) still verifies what it reads.
	for _, k := range keys {
		mustLookup(t, open(t, rings.lagging), k.ID)
	}
}
