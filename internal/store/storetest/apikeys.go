package storetest

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/tokenwarden/tokenwarden/internal/store"
)

func testTouchLastUsed(t *testing.T, s store.Store) {
	ctx := t.Context()
	rec := sample("c1")
	rec.LastUsedAt = time.Time{}
	v1 := mustPut(t, s, rec)
	if _, err := s.AcquireLease(ctx, "c1", "attempt-A", time.Hour); err != nil {
		t.Fatal(err)
	}
	want := mustGet(t, s, "c1")

	at := base.Add(time.Minute).In(elsewhere)
	if err := s.TouchLastUsed(ctx, "c1", at); err != nil {
		t.Fatalf("TouchLastUsed: %v", err)
	}
	want.LastUsedAt = at
	// Only LastUsedAt changed: not the version, UpdatedAt, the secrets or the lease.
	checkRecord(t, "Get after TouchLastUsed", want, mustGet(t, s, "c1"), true, true)

	// An earlier time does not move it back; a later one moves it on.
	if err := s.TouchLastUsed(ctx, "c1", at.Add(-time.Second)); err != nil {
		t.Fatalf("TouchLastUsed(earlier): %v", err)
	}
	checkRecord(t, "Get after an earlier TouchLastUsed", want, mustGet(t, s, "c1"), true, true)
	later := at.Add(time.Nanosecond)
	if err := s.TouchLastUsed(ctx, "c1", later); err != nil {
		t.Fatalf("TouchLastUsed(later): %v", err)
	}
	want.LastUsedAt = later
	checkRecord(t, "Get after a later TouchLastUsed", want, mustGet(t, s, "c1"), true, true)
	if v := mustGet(t, s, "c1").Version; v != v1.Version {
		t.Errorf("Version after TouchLastUsed = %d, want %d", v, v1.Version)
	}

	if err := s.TouchLastUsed(ctx, "ghost", at); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("TouchLastUsed(missing) error = %v, want ErrNotFound", err)
	}
	if _, err := s.Get(ctx, "ghost"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("TouchLastUsed(missing) created a record (Get error = %v)", err)
	}
}

// A writer that read the record before a consumer's read was recorded must not undo it.
func testLastUsedNeverGoesBack(t *testing.T, s store.Store) {
	ctx := t.Context()
	v1 := mustPut(t, s, sample("c1")) // LastUsedAt base-1m
	touched := base.Add(time.Hour)
	if err := s.TouchLastUsed(ctx, "c1", touched); err != nil {
		t.Fatal(err)
	}
	next := v1 // still carries the older LastUsedAt
	next.Secrets.AccessToken = "rotated"
	v2, err := cas(t, s, next, v1.Version)
	if err != nil {
		t.Fatalf("CompareAndSwap: %v", err)
	}
	if !sameTime(touched, v2.LastUsedAt) {
		t.Errorf("CompareAndSwap result LastUsedAt = %v, want the touched %v", v2.LastUsedAt, touched)
	}
	checkRecord(t, "Get after CompareAndSwap", v2, mustGet(t, s, "c1"), true, true)

	v3 := mustPut(t, s, sample("c1"))
	if !sameTime(touched, v3.LastUsedAt) {
		t.Errorf("Put result LastUsedAt = %v, want the touched %v", v3.LastUsedAt, touched)
	}
	checkRecord(t, "Get after Put", v3, mustGet(t, s, "c1"), true, true)

	// A later value written by CompareAndSwap does move it on.
	next = v3
	next.LastUsedAt = touched.Add(time.Minute)
	v4, err := cas(t, s, next, v3.Version)
	if err != nil {
		t.Fatalf("CompareAndSwap: %v", err)
	}
	checkRecord(t, "Get after a later CompareAndSwap", next, mustGet(t, s, "c1"), true, false)
	checkRecord(t, "CompareAndSwap result", v4, mustGet(t, s, "c1"), true, true)
}

func apiKey(id, name string, scopes ...string) store.APIKey {
	h := sha256.Sum256([]byte("twk_" + id + "_secret"))
	return store.APIKey{ID: id, Name: name, CredentialIDs: scopes, Hash: h[:], CreatedAt: base.In(elsewhere)}
}

func checkAPIKey(t *testing.T, what string, want, got store.APIKey) {
	t.Helper()
	if got.ID != want.ID || got.Name != want.Name || !slices.Equal(got.CredentialIDs, want.CredentialIDs) ||
		!bytes.Equal(got.Hash, want.Hash) || !sameTime(want.CreatedAt, got.CreatedAt) ||
		!sameTime(want.RevokedAt, got.RevokedAt) || !sameTime(want.LastUsedAt, got.LastUsedAt) {
		t.Errorf("%s = {ID:%q Name:%q CredentialIDs:%q Created:%v Revoked:%v LastUsed:%v},\nwant {ID:%q Name:%q CredentialIDs:%q Created:%v Revoked:%v LastUsed:%v} (times in UTC, hash equal)",
			what, got.ID, got.Name, got.CredentialIDs, got.CreatedAt, got.RevokedAt, got.LastUsedAt,
			want.ID, want.Name, want.CredentialIDs, want.CreatedAt, want.RevokedAt, want.LastUsedAt)
	}
}

func mustLookup(t *testing.T, s store.Store, id string) store.APIKey {
	t.Helper()
	k, err := s.LookupAPIKey(t.Context(), id)
	if err != nil {
		t.Fatalf("LookupAPIKey(%q): %v", id, err)
	}
	return k
}

func testAPIKeys(t *testing.T, s store.Store) {
	ctx := t.Context()
	if keys, err := s.ListAPIKeys(ctx); err != nil || len(keys) != 0 {
		t.Fatalf("ListAPIKeys(empty) = %d keys, %v; want none", len(keys), err)
	}

	in := apiKey("0123456789abcdef", "billing", "zeta", "alpha", "zeta")
	in.RevokedAt, in.LastUsedAt = base, base // ignored on creation
	created, err := s.CreateAPIKey(ctx, in)
	if err != nil {
		t.Fatalf("CreateAPIKey: %v", err)
	}
	want := apiKey("0123456789abcdef", "billing", "alpha", "zeta") // sorted, deduplicated
	checkAPIKey(t, "CreateAPIKey result", want, created)
	checkAPIKey(t, "LookupAPIKey", want, mustLookup(t, s, in.ID))
	if !created.Allows("alpha") || !created.Allows("zeta") || created.Allows("beta") {
		t.Errorf("Allows disagrees with CredentialIDs %q", created.CredentialIDs)
	}

	// A zero CreatedAt means now.
	other := apiKey("fedcba9876543210", "analytics", "beta")
	other.CreatedAt = time.Time{}
	before := time.Now()
	created2, err := s.CreateAPIKey(ctx, other)
	if err != nil {
		t.Fatalf("CreateAPIKey(analytics): %v", err)
	}
	if created2.CreatedAt.Before(before.Add(-time.Second)) || created2.CreatedAt.After(time.Now().Add(time.Second)) || created2.CreatedAt.Location() != time.UTC {
		t.Errorf("CreatedAt = %v, want about now in UTC", created2.CreatedAt)
	}

	// Names and IDs are unique.
	for what, dup := range map[string]store.APIKey{
		"same name":        apiKey("1111111111111111", "billing", "alpha"),
		"same ID":          apiKey("0123456789abcdef", "other", "alpha"),
		"same name and ID": apiKey("0123456789abcdef", "billing", "alpha"),
	} {
		if _, err := s.CreateAPIKey(ctx, dup); !errors.Is(err, store.ErrAPIKeyExists) {
			t.Errorf("CreateAPIKey(%s) error = %v, want ErrAPIKeyExists", what, err)
		}
	}
	// Malformed keys are refused.
	for what, bad := range map[string]store.APIKey{
		"no ID":           apiKey("", "x1", "alpha"),
		"no name":         apiKey("2222222222222222", "", "alpha"),
		"no scope":        apiKey("3333333333333333", "x3"),
		"empty scope":     apiKey("4444444444444444", "x4", ""),
		"short hash":      func() store.APIKey { k := apiKey("5555555555555555", "x5", "alpha"); k.Hash = k.Hash[:16]; return k }(),
		"plaintext as ID": func() store.APIKey { k := apiKey("6666666666666666", "x6", "alpha"); k.Hash = nil; return k }(),
	} {
		if _, err := s.CreateAPIKey(ctx, bad); err == nil {
			t.Errorf("CreateAPIKey(%s) succeeded", what)
		}
	}

	keys, err := s.ListAPIKeys(ctx)
	if err != nil {
		t.Fatalf("ListAPIKeys: %v", err)
	}
	if len(keys) != 2 || keys[0].Name != "analytics" || keys[1].Name != "billing" {
		t.Fatalf("ListAPIKeys = %d keys %v, want analytics, billing", len(keys), keys)
	}
	checkAPIKey(t, "ListAPIKeys[analytics]", created2, keys[0])
	checkAPIKey(t, "ListAPIKeys[billing]", want, keys[1])

	// Touch moves LastUsedAt forward only.
	used := base.Add(time.Minute)
	for _, at := range []time.Time{used, used.Add(-time.Second)} {
		if err := s.TouchAPIKey(ctx, in.ID, at); err != nil {
			t.Fatalf("TouchAPIKey: %v", err)
		}
	}
	want.LastUsedAt = used
	checkAPIKey(t, "LookupAPIKey after TouchAPIKey", want, mustLookup(t, s, in.ID))
	if err := s.TouchAPIKey(ctx, "nope", used); !errors.Is(err, store.ErrAPIKeyNotFound) {
		t.Errorf("TouchAPIKey(missing) error = %v, want ErrAPIKeyNotFound", err)
	}

	// Revoke: once, the first time is kept, the key stays listed and its name taken.
	revokedAt := base.Add(2 * time.Minute).In(elsewhere)
	got, err := s.RevokeAPIKey(ctx, in.ID, revokedAt)
	if err != nil {
		t.Fatalf("RevokeAPIKey: %v", err)
	}
	want.RevokedAt = revokedAt
	checkAPIKey(t, "RevokeAPIKey result", want, got)
	if !got.Revoked() {
		t.Error("Revoked() = false after RevokeAPIKey")
	}
	if got, err = s.RevokeAPIKey(ctx, in.ID, revokedAt.Add(time.Hour)); err != nil {
		t.Fatalf("RevokeAPIKey(again): %v", err)
	}
	checkAPIKey(t, "RevokeAPIKey(again) result", want, got)
	checkAPIKey(t, "LookupAPIKey after revocation", want, mustLookup(t, s, in.ID))
	if _, err := s.CreateAPIKey(ctx, apiKey("7777777777777777", "billing", "alpha")); !errors.Is(err, store.ErrAPIKeyExists) {
		t.Errorf("CreateAPIKey with a revoked key's name error = %v, want ErrAPIKeyExists", err)
	}
	if mustLookup(t, s, created2.ID).Revoked() {
		t.Error("revoking one key revoked another")
	}
	if _, err := s.RevokeAPIKey(ctx, "nope", revokedAt); !errors.Is(err, store.ErrAPIKeyNotFound) {
		t.Errorf("RevokeAPIKey(missing) error = %v, want ErrAPIKeyNotFound", err)
	}
	if _, err := s.LookupAPIKey(ctx, "nope"); !errors.Is(err, store.ErrAPIKeyNotFound) {
		t.Errorf("LookupAPIKey(missing) error = %v, want ErrAPIKeyNotFound", err)
	}
	if keys, err := s.ListAPIKeys(ctx); err != nil || len(keys) != 2 {
		t.Errorf("ListAPIKeys after revocation = %d keys, %v; want 2", len(keys), err)
	}
}
