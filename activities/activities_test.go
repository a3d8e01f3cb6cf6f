package activities_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/tokenwarden/tokenwarden/activities"
	"github.com/tokenwarden/tokenwarden/internal/provider/catalog"
	"github.com/tokenwarden/tokenwarden/internal/seal"
	"github.com/tokenwarden/tokenwarden/internal/store"
)

func TestSeedRejectsIncompleteMaterial(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	cases := []struct {
		name string
		req  activities.SeedRequest
		want string
	}{
		{"no credential id", activities.SeedRequest{Provider: catalog.OAuth2, Config: h.config(),
			Seed: h.sealedSeed(credID, seal.Seed{RefreshToken: "rt_Abc0123456789abcdefXYZ"}).Seed}, "credential id"},
		{"no refresh token", h.sealedSeed(credID, seal.Seed{ClientSecret: testClientSecret}), "refresh_token"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := h.env.ExecuteActivity(h.acts.Seed, tc.req)
			appError(t, err, activities.ErrTypeInvalidInput, true)
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q does not mention %q", err, tc.want)
			}
			h.assertNoSecrets(err, "rt_Abc0123456789abcdefXYZ", testClientSecret)
		})
	}
	if recs, err := h.sqlite.List(context.Background()); err != nil || len(recs) != 0 {
		t.Fatalf("rejected seeds wrote records: %v, %v", recs, err)
	}
}

func TestSeedStoresMaterial(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	expires := h.clock.Now().Add(20 * time.Minute)
	res := h.seedMaterial(h.sealedSeed(credID, seal.Seed{
		RefreshToken: "rt_First0123456789abcdefXYZ", ClientSecret: testClientSecret,
		AccessToken: "at_First0123456789abcdefXYZ", AccessExpiresAt: expires,
	}))
	if res.Version != 1 || !res.AccessExpiresAt.Equal(expires) || !res.SeededAt.Equal(h.clock.Now()) {
		t.Fatalf("result %+v", res)
	}
	rec := h.get(credID)
	want := store.Secrets{RefreshToken: "rt_First0123456789abcdefXYZ", ClientSecret: testClientSecret, AccessToken: "at_First0123456789abcdefXYZ"}
	if secretsOf(rec.Secrets) != want || rec.Provider != catalog.OAuth2 || !rec.AccessExpiresAt.Equal(expires) {
		t.Fatalf("stored %+v", rec)
	}
	if strings.Contains(h.logs.String(), "First0123456789") || strings.Contains(h.logs.String(), testClientSecret) {
		t.Fatal("seed logged a secret")
	}
}

// A reseed is a human's fresh material: it always wins, clears any lease, and keeps the
// stored client secret when only a refresh token is given.
func TestReseed(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	rt, v := h.seed(credID, "fam", testClientSecret)
	res := h.mustRefresh(h.request(credID, v))
	if res.Version != 2 {
		t.Fatalf("refresh: %+v", res)
	}
	if _, err := h.sqlite.AcquireLease(context.Background(), credID, "stuck-run/1#4", time.Hour); err != nil {
		t.Fatal(err)
	}

	rt2 := h.fake.Seed("fam") // re-authorisation at the provider revokes rt and its successors
	seeded := h.seedMaterial(h.sealedSeed(credID, seal.Seed{RefreshToken: rt2}))
	if seeded.Version != 3 || !seeded.AccessExpiresAt.IsZero() {
		t.Fatalf("reseed result %+v", seeded)
	}
	rec := h.get(credID)
	if secretsOf(rec.Secrets) != (store.Secrets{RefreshToken: rt2, ClientSecret: testClientSecret}) {
		t.Fatalf("reseed stored wrong secrets (refresh token new: %v, client secret kept: %v, access token dropped: %v)",
			rec.Secrets.RefreshToken == rt2, rec.Secrets.ClientSecret == testClientSecret, rec.Secrets.AccessToken == "")
	}
	if rec.Lease != (store.Lease{}) || !rec.AccessExpiresAt.IsZero() {
		t.Fatalf("reseed kept lease %+v or access expiry %s", rec.Lease, rec.AccessExpiresAt)
	}

	// The workflow, told version 3, refreshes with the new material at once.
	res = h.mustRefresh(h.request(credID, seeded.Version))
	if res.Version != 4 || h.fake.Presentations(rt2) != 1 || h.fake.Presentations(rt) != 1 {
		t.Fatalf("refresh after reseed: %+v, presentations new %d old %d", res, h.fake.Presentations(rt2), h.fake.Presentations(rt))
	}
}
