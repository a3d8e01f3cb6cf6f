package activities_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tokenwarden/tokenwarden/activities"
	"github.com/tokenwarden/tokenwarden/internal/provider"
	"github.com/tokenwarden/tokenwarden/internal/provider/catalog"
	"github.com/tokenwarden/tokenwarden/internal/provider/chathub/chathubtest"
	"github.com/tokenwarden/tokenwarden/internal/seal"
	"github.com/tokenwarden/tokenwarden/internal/store"
)

// listener is an attacker's endpoint: it counts whatever reaches it.
func listener(t *testing.T) (url string, hits *atomic.Int64) {
	t.Helper()
	hits = &atomic.Int64{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		http.Error(w, "no", http.StatusTeapot)
	}))
	t.Cleanup(srv.Close)
	return srv.URL, hits
}

func assertNoRecord(t *testing.T, h *harness, id string) {
	t.Helper()
	if _, err := h.sqlite.Get(context.Background(), id); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("a refused seed left a record (Get: %v)", err)
	}
}

func TestSeedRefusesPlaintext(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	plain := activities.SeedRequest{CredentialID: credID, Provider: catalog.OAuth2, Config: h.config(),
		Seed: seal.Envelope{Seed: seal.Seed{RefreshToken: "rt_Plain0123456789abcdefXYZ", ClientSecret: testClientSecret}}}
	_, err := h.env.ExecuteActivity(h.acts.Seed, plain)
	appError(t, err, activities.ErrTypeInvalidInput, true)
	for _, want := range []string{"plaintext", "history", "rotate it at the provider", "starter seal"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("refusal %q does not say %q", err, want)
		}
	}
	h.assertNoSecrets(err, "rt_Plain0123456789abcdefXYZ", testClientSecret)
	assertNoRecord(t, h, credID)

	// A development worker may allow it.
	h.acts.AllowPlaintextSeeds = true
	res := h.seedMaterial(plain)
	if res.Version != 1 || h.get(credID).Secrets.RefreshToken != "rt_Plain0123456789abcdefXYZ" {
		t.Fatalf("allowed plaintext seed: %+v", res)
	}
}

// A sealed seed opens only for the credential and the configuration it was sealed for:
// copied from one workflow's history into another, or into a run pointed elsewhere, it
// is refused and nothing is stored.
func TestSealedSeedIsBoundToCredentialAndConfig(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	evilURL, _ := listener(t)
	victim := h.sealedSeed("victim", seal.Seed{RefreshToken: "rt_Victim0123456789abcdefXYZ"})
	for name, req := range map[string]activities.SeedRequest{
		"another credential": {CredentialID: credID, Provider: catalog.OAuth2, Config: h.config(), Seed: victim.Seed},
		"another token url": {CredentialID: "victim", Provider: catalog.OAuth2,
			Config: provider.Config{TokenURL: evilURL + "/token", ClientID: testClientID}, Seed: victim.Seed},
		"another client id": {CredentialID: "victim", Provider: catalog.OAuth2,
			Config: provider.Config{TokenURL: h.tokenURL, ClientID: "x"}, Seed: victim.Seed},
		"tampered": {CredentialID: "victim", Provider: catalog.OAuth2, Config: h.config(),
			Seed: seal.Envelope{Sealed: victim.Seed.Sealed[:len(victim.Seed.Sealed)-4] + "AAAA"}},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := h.env.ExecuteActivity(h.acts.Seed, req)
			appError(t, err, activities.ErrTypeInvalidInput, true)
			if !strings.Contains(err.Error(), "does not open") {
				t.Fatalf("refusal %q does not say the seed does not open", err)
			}
			h.assertNoSecrets(err, "rt_Victim0123456789abcdefXYZ")
			assertNoRecord(t, h, req.CredentialID)
		})
	}
}

// The store remembers the seal it holds: the same seal again (a retry, or a new run of
// the credential started with the seed copied from its history) writes nothing, and an
// older seal than the one stored is refused, so a consumed refresh token is never put
// back.
func TestSealedSeedIsAppliedOnce(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	rtA := h.fake.Seed("famA")
	sealA := h.sealedSeed(credID, seal.Seed{RefreshToken: rtA, ClientSecret: testClientSecret})
	if res := h.seedMaterial(sealA); res.Version != 1 || res.AlreadyApplied {
		t.Fatalf("first seed: %+v", res)
	}
	h.mustRefresh(h.request(credID, 1)) // rtA is spent; version 2

	again := h.seedMaterial(sealA)
	if !again.AlreadyApplied || again.Version != 2 || h.get(credID).Version != 2 {
		t.Fatalf("the same seal again: %+v, stored version %d", again, h.get(credID).Version)
	}

	h.clock.Advance(time.Minute)
	rtB := h.fake.Seed("famB")
	if res := h.seedMaterial(h.sealedSeed(credID, seal.Seed{RefreshToken: rtB})); res.Version != 3 {
		t.Fatalf("newer seal: %+v", res)
	}
	_, err := h.env.ExecuteActivity(h.acts.Seed, sealA)
	appError(t, err, activities.ErrTypeInvalidInput, true)
	if !strings.Contains(err.Error(), "before the seed the store holds") {
		t.Fatalf("refusal of an older seal: %v", err)
	}
	if rec := h.get(credID); rec.Version != 3 || rec.Secrets.RefreshToken != rtB {
		t.Fatalf("an older seal changed the record: version %d", rec.Version)
	}
	if n := h.fake.Presentations(rtA); n != 1 {
		t.Fatalf("the first refresh token was presented %d times, want 1", n)
	}
}

// A run whose configuration differs from the one the secrets were seeded for gets no
// secret: refresh and probe fail permanently (the credential parks in NEEDS_REAUTH)
// before anything reaches the new endpoint.
func TestChangedConfigGetsNoSecret(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	rt, v := h.seed(credID, "fam", testClientSecret)
	evilURL, hits := listener(t)

	moved := h.request(credID, v)
	moved.Config.TokenURL = evilURL + "/token"
	_, err := h.refresh(moved)
	appErr := appError(t, err, activities.ErrTypePermanent, true)
	var detail activities.FailureDetail
	if err := appErr.Details(&detail); err != nil || detail.Code != activities.CodeConfigChanged {
		t.Fatalf("detail %+v (%v), want code %s", detail, err, activities.CodeConfigChanged)
	}
	if !strings.Contains(err.Error(), "token_url") || !strings.Contains(err.Error(), "reseed") {
		t.Fatalf("error %q does not name the field and the remedy", err)
	}

	probe := activities.ProbeRequest{CredentialID: credID, Provider: catalog.OAuth2,
		Config: provider.Config{TokenURL: h.tokenURL, ClientID: testClientID, UserinfoURL: evilURL + "/userinfo"}}
	h.mustRefresh(h.request(credID, v)) // an access token to probe with
	_, err = h.env.ExecuteActivity(h.acts.Probe, probe)
	appError(t, err, activities.ErrTypePermanent, true)

	if hits.Load() != 0 {
		t.Fatalf("the new endpoint received %d requests", hits.Load())
	}
	if n := h.fake.Presentations(rt); n != 1 {
		t.Fatalf("the refresh token was presented %d times, want 1 (the unmoved refresh)", n)
	}
	h.assertNoSecrets(err, rt, testClientSecret)
}

// Records seeded before bindings existed are bound by their next refresh.
func TestRefreshBindsARecordSeededBeforeBindings(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	rt := h.fake.Seed("fam")
	if _, err := h.sqlite.Put(context.Background(), store.Record{ID: credID, Provider: catalog.OAuth2,
		Secrets: store.Secrets{RefreshToken: rt, ClientSecret: testClientSecret}}); err != nil {
		t.Fatal(err)
	}
	h.mustRefresh(h.request(credID, 1))
	if got, want := h.get(credID).Secrets.Binding, string(provider.BindingOf(catalog.OAuth2, h.config())); got != want {
		t.Fatalf("binding after refresh = %s, want %s", got, want)
	}
}

// A child minted with its parent's token counts as the parent's use, so that an unused
// parent's retirement does not break its children.
func TestChildUseCountsAsParentUse(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	company := chathubtest.New(chathubtest.Options{Now: h.clock.Now})
	base := company.Start()
	t.Cleanup(company.Close)
	companyCfg := provider.Config{BaseURL: base}
	const login, password = "acme", "pw-0123456789"
	company.AddCompany(login, password)
	company.AddOperator(login, 7)
	h.seedMaterial(h.sealedFor(seal.Request{ID: "company", Provider: catalog.ChatHubCompany, Config: companyCfg,
		Seed: seal.Seed{Username: login, Password: password}}))
	if _, err := h.refresh(activities.RefreshRequest{CredentialID: "company", Provider: catalog.ChatHubCompany, Config: companyCfg, ExpectedVersion: 1}); err != nil {
		t.Fatal(err)
	}
	if used := h.get("company").LastUsedAt; !used.IsZero() {
		t.Fatalf("the company was used at %s before any child", used)
	}
	h.clock.Advance(time.Hour)
	childCfg := provider.Config{BaseURL: base, OperatorID: "7", Parent: "company"}
	h.seedMaterial(h.sealedFor(seal.Request{ID: "operator", Provider: catalog.ChatHubOperator, Config: childCfg}))
	if _, err := h.refresh(activities.RefreshRequest{CredentialID: "operator", Provider: catalog.ChatHubOperator, Config: childCfg, ExpectedVersion: 1}); err != nil {
		t.Fatal(err)
	}
	if used := h.get("company").LastUsedAt; !used.Equal(h.clock.Now()) {
		t.Fatalf("the company's last use is %s, want the child's refresh at %s", used, h.clock.Now())
	}
}

// A child credential is sent its parent's token only when the parent is what its
// adapter mints with (a chathub-company credential) seeded for the child's base URL.
func TestParentMustMatchTheChild(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	h.seed("victim", "fam", testClientSecret)
	h.mustRefresh(h.request("victim", 1)) // the victim has an access token now
	evilURL, hits := listener(t)
	childCfg := provider.Config{BaseURL: evilURL, OperatorID: "7", Parent: "victim"}
	h.seedMaterial(h.sealedFor(seal.Request{ID: "evil-op", Provider: catalog.ChatHubOperator, Config: childCfg}))

	_, err := h.refresh(activities.RefreshRequest{CredentialID: "evil-op", Provider: catalog.ChatHubOperator, Config: childCfg, ExpectedVersion: 1})
	appErr := appError(t, err, activities.ErrTypePermanent, true)
	var detail activities.FailureDetail
	if err := appErr.Details(&detail); err != nil || detail.Code != "parent_mismatch" {
		t.Fatalf("detail %+v (%v), want parent_mismatch", detail, err)
	}
	if !strings.Contains(err.Error(), `"oauth2" credential, not "chathub-company"`) {
		t.Fatalf("error %q does not say what the parent is", err)
	}
	if hits.Load() != 0 {
		t.Fatalf("the child's base URL received %d requests", hits.Load())
	}
}
