package activities_test

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"go.temporal.io/sdk/testsuite"
	"go.uber.org/mock/gomock"

	"github.com/tokenwarden/tokenwarden/activities"
	"github.com/tokenwarden/tokenwarden/activities/activitiesmock"
	"github.com/tokenwarden/tokenwarden/internal/provider"
	"github.com/tokenwarden/tokenwarden/internal/provider/baoming"
	"github.com/tokenwarden/tokenwarden/internal/provider/catalog"
	"github.com/tokenwarden/tokenwarden/internal/provider/providermock"
	"github.com/tokenwarden/tokenwarden/internal/store"
	"github.com/tokenwarden/tokenwarden/internal/store/storemock"
)

// These tests give the refresh activity gomock doubles for the store and the provider:
// each test lists every call the activity may make, so what it must NOT do (present a
// token, take or release a lease, ask a parent) is checked by the mocks themselves.
// The harness's real SQLite store and fake provider cover the outcomes.

const mockProviderName = "mock"

// mocked is an Activities whose store and provider are gomock doubles.
type mocked struct {
	store *storemock.MockRecords
	acts  *activities.Activities
	env   *testsuite.TestActivityEnvironment
	now   time.Time
	cfg   provider.Config
}

func newMocked(t *testing.T, ctrl *gomock.Controller, p provider.Provider) *mocked {
	t.Helper()
	m := &mocked{
		store: storemock.NewMockRecords(ctrl),
		now:   time.Date(2031, 3, 14, 9, 26, 53, 0, time.UTC),
		cfg:   provider.Config{TokenURL: "https://auth.invalid/token", ClientID: testClientID},
	}
	m.acts = &activities.Activities{
		Store:     m.store,
		Providers: provider.Registry{mockProviderName: p},
		Now:       func() time.Time { return m.now },
		Logger:    slog.New(slog.DiscardHandler),
	}
	m.env = newActivityEnv(m.acts)
	return m
}

func (m *mocked) request(version int64) activities.RefreshRequest {
	return activities.RefreshRequest{CredentialID: credID, Provider: mockProviderName, Config: m.cfg, ExpectedVersion: version}
}

func (m *mocked) record(version int64) store.Record {
	return store.Record{ID: credID, Provider: mockProviderName, Version: version,
		Secrets: store.Secrets{RefreshToken: "rt_Mocked0123456789abcdefXYZ", ClientSecret: testClientSecret}}
}

// refresh runs the activity in env (m.env when nil).
func (m *mocked) refresh(env *testsuite.TestActivityEnvironment, req activities.RefreshRequest) (activities.RefreshResult, error) {
	if env == nil {
		env = m.env
	}
	val, err := env.ExecuteActivity(m.acts.Refresh, req)
	if err != nil {
		return activities.RefreshResult{}, err
	}
	var res activities.RefreshResult
	err = val.Get(&res)
	return res, err
}

// A retry after a commit only reads: no lease is taken and the provider is not asked.
func TestRefreshAlreadyCommittedOnlyReads(t *testing.T) {
	ctrl := gomock.NewController(t)
	p := providermock.NewMockProvider(ctrl)
	m := newMocked(t, ctrl, p)
	p.EXPECT().ValidateConfig(m.cfg).Return(nil)
	m.store.EXPECT().Get(gomock.Any(), credID).Return(m.record(3), nil)

	res, err := m.refresh(nil, m.request(2))
	if err != nil || !res.AlreadyCommitted || res.Version != 3 {
		t.Fatalf("result %+v, %v; want version 3 already committed", res, err)
	}
}

// Another attempt's live lease: the provider is not called, and the lease, which is
// not this attempt's, is not released either.
func TestRefreshLeaseHeldTouchesNothing(t *testing.T) {
	ctrl := gomock.NewController(t)
	p := providermock.NewMockProvider(ctrl)
	m := newMocked(t, ctrl, p)
	held := store.Lease{Owner: "other-run/7#1/" + uuid.NewString(), TakenAt: m.now.Add(-45 * time.Second), ExpiresAt: m.now.Add(45 * time.Second)}
	p.EXPECT().ValidateConfig(m.cfg).Return(nil)
	m.store.EXPECT().Get(gomock.Any(), credID).Return(m.record(1), nil)
	m.store.EXPECT().AcquireLease(gomock.Any(), credID, gomock.Any(), activities.DefaultLeaseDuration).
		Return(held, store.ErrLeaseHeld)

	_, err := m.refresh(nil, m.request(1))
	appErr := appError(t, err, activities.ErrTypeInFlight, false)
	if d := appErr.NextRetryDelay(); d != 46*time.Second {
		t.Fatalf("NextRetryDelay = %s, want the lease's remaining 45s + 1s", d)
	}
}

// Every attempt takes the lease under a fresh owner, and releases it under the same
// one, even where run, activity and attempt repeat: a second activity environment
// starts from the same IDs.
func TestRefreshLeaseOwnerIsFreshPerAttempt(t *testing.T) {
	ctrl := gomock.NewController(t)
	p := refreshingProvider{providermock.NewMockProvider(ctrl), providermock.NewMockRefresher(ctrl)}
	m := newMocked(t, ctrl, p)
	var taken, released []string
	p.MockProvider.EXPECT().ValidateConfig(m.cfg).Return(nil).Times(3)
	m.store.EXPECT().Get(gomock.Any(), credID).Return(m.record(1), nil).Times(3)
	m.store.EXPECT().AcquireLease(gomock.Any(), credID, gomock.Any(), gomock.Any()).Times(3).
		DoAndReturn(func(_ context.Context, _, owner string, _ time.Duration) (store.Lease, error) {
			taken = append(taken, owner)
			return store.Lease{}, nil
		})
	// The provider answers 503: not consumed, so the lease is released at once.
	p.MockRefresher.EXPECT().Refresh(gomock.Any(), m.cfg, gomock.Any()).Times(3).
		Return(provider.TokenSet{}, &provider.Error{Kind: provider.Transient, Code: "http_503", HTTPStatus: 503})
	m.store.EXPECT().ReleaseLease(gomock.Any(), credID, gomock.Any()).Times(3).
		DoAndReturn(func(_ context.Context, _, owner string) error {
			released = append(released, owner)
			return nil
		})

	for _, env := range []*testsuite.TestActivityEnvironment{m.env, m.env, newActivityEnv(m.acts)} {
		_, err := m.refresh(env, m.request(1))
		appError(t, err, activities.ErrTypeTransient, false)
	}
	seen := map[string]bool{}
	for i, owner := range taken {
		if released[i] != owner {
			t.Errorf("attempt %d took the lease as %q and released it as %q", i, owner, released[i])
		}
		// run/activity#attempt/uuid: the first part for people, the last for uniqueness.
		slash := strings.LastIndex(owner, "/")
		if _, err := uuid.Parse(owner[slash+1:]); err != nil || !strings.Contains(owner[:max(slash, 0)], "#1") {
			t.Errorf("attempt %d: owner %q is not run/activity#attempt/uuid", i, owner)
		}
		if seen[owner] {
			t.Errorf("attempt %d reused lease owner %q", i, owner)
		}
		seen[owner] = true
	}
}

// refreshingProvider is an adapter with a refresh endpoint.
type refreshingProvider struct {
	*providermock.MockProvider
	*providermock.MockRefresher
}

// checkingProvider is an adapter that can refresh and introspect refresh tokens.
type checkingProvider struct {
	*providermock.MockProvider
	*providermock.MockRefresher
	*providermock.MockRefreshTokenChecker
}

// After an interrupted attempt, a provider that reports the token consumed parks the
// credential: the token is never presented again, and the lease this attempt took over
// is released for the human who reseeds.
func TestInterruptedConsumedTokenIsNeverPresented(t *testing.T) {
	ctrl := gomock.NewController(t)
	p := checkingProvider{providermock.NewMockProvider(ctrl), providermock.NewMockRefresher(ctrl), providermock.NewMockRefreshTokenChecker(ctrl)}
	m := newMocked(t, ctrl, p)
	stale := store.Lease{Owner: staleLeaseOwner, TakenAt: m.now.Add(-2 * activities.DefaultLeaseDuration),
		ExpiresAt: m.now.Add(-activities.DefaultLeaseDuration)}
	var owner string
	p.MockProvider.EXPECT().ValidateConfig(m.cfg).Return(nil)
	m.store.EXPECT().Get(gomock.Any(), credID).Return(m.record(1), nil)
	m.store.EXPECT().AcquireLease(gomock.Any(), credID, gomock.Any(), gomock.Any()).
		DoAndReturn(func(_ context.Context, _, o string, _ time.Duration) (store.Lease, error) {
			owner = o
			return stale, nil
		})
	p.MockRefreshTokenChecker.EXPECT().RefreshTokenActive(gomock.Any(), m.cfg,
		gomock.Cond(func(g provider.Grant) bool { return g.RefreshToken == "rt_Mocked0123456789abcdefXYZ" })).
		Return(false, true, nil)
	m.store.EXPECT().ReleaseLease(gomock.Any(), credID, gomock.Any()).
		DoAndReturn(func(_ context.Context, _, o string) error {
			if o != owner {
				t.Errorf("released the lease as %q, took it as %q", o, owner)
			}
			return nil
		})

	_, err := m.refresh(nil, m.request(1))
	appErr := appError(t, err, activities.ErrTypePermanent, true)
	if d := detailOf(t, appErr); d.Code != "refresh_token_consumed" || !d.InterruptedAt.Equal(stale.TakenAt) {
		t.Fatalf("detail = %+v", d)
	}
}

// childProvider is an adapter minted with a parent credential's token.
type childProvider struct {
	*providermock.MockProvider
	*providermock.MockRefresher
	*providermock.MockChild
}

// The provider refuses the parent's token: the child asks its parent to refresh, once,
// and retries shortly; its own lease is released (its grant was not spent).
func TestParentRejectedAsksTheParentOnce(t *testing.T) {
	ctrl := gomock.NewController(t)
	p := childProvider{providermock.NewMockProvider(ctrl), providermock.NewMockRefresher(ctrl), providermock.NewMockChild(ctrl)}
	parents := activitiesmock.NewMockParentRefresher(ctrl)
	m := newMocked(t, ctrl, p)
	m.acts.Parents = parents
	m.cfg.Parent = "company-1"
	parent := store.Record{ID: "company-1", Provider: "company", Version: 5,
		Secrets: store.Secrets{AccessToken: "at_Parent0123456789abcdefXYZ"}}

	p.MockProvider.EXPECT().ValidateConfig(m.cfg).Return(nil)
	m.store.EXPECT().Get(gomock.Any(), credID).Return(m.record(1), nil)
	m.store.EXPECT().AcquireLease(gomock.Any(), credID, gomock.Any(), gomock.Any()).Return(store.Lease{}, nil)
	m.store.EXPECT().Get(gomock.Any(), "company-1").Return(parent, nil)
	p.MockChild.EXPECT().ParentProvider().Return("company")
	// The child's use of its parent counts as the parent's use.
	m.store.EXPECT().TouchLastUsed(gomock.Any(), "company-1", m.now).Return(nil)
	p.MockRefresher.EXPECT().Refresh(gomock.Any(), m.cfg,
		gomock.Cond(func(g provider.Grant) bool { return g.ParentAccessToken == "at_Parent0123456789abcdefXYZ" })).
		Return(provider.TokenSet{}, &provider.Error{Kind: provider.Transient, Code: provider.CodeParentRejected, HTTPStatus: 401})
	m.store.EXPECT().ReleaseLease(gomock.Any(), credID, gomock.Any()).Return(nil)
	parents.EXPECT().RefreshNow(gomock.Any(), "company-1").Return(nil)

	_, err := m.refresh(nil, m.request(1))
	appErr := appError(t, err, activities.ErrTypeTransient, false)
	if d := detailOf(t, appErr); d.Code != provider.CodeParentRejected || appErr.NextRetryDelay() != activities.ParentRetryDelay {
		t.Fatalf("detail = %+v, NextRetryDelay %s", d, appErr.NextRetryDelay())
	}
}

// An adapter that is no provider.Refresher (baoming: probes only, and the workflow never
// asks it to refresh) answers a refresh asked for anyway as a grant rejected for good:
// Permanent cannot_refresh, the lease released for the reseed, nothing presented.
func TestRefreshWithoutARefresherIsPermanent(t *testing.T) {
	ctrl := gomock.NewController(t)
	m := newMocked(t, ctrl, nil)
	m.acts.Providers = provider.Registry{catalog.Baoming: baoming.New(nil)}
	m.cfg = provider.Config{EnrollID: "698add7c7068f814935d6804"}
	rec := m.record(1)
	rec.Provider = catalog.Baoming
	m.store.EXPECT().Get(gomock.Any(), credID).Return(rec, nil)
	m.store.EXPECT().AcquireLease(gomock.Any(), credID, gomock.Any(), gomock.Any()).Return(store.Lease{}, nil)
	m.store.EXPECT().ReleaseLease(gomock.Any(), credID, gomock.Any()).Return(nil)

	req := m.request(1)
	req.Provider = catalog.Baoming
	_, err := m.refresh(nil, req)
	appErr := appError(t, err, activities.ErrTypePermanent, true)
	d := detailOf(t, appErr)
	if d.Code != provider.CodeCannotRefresh || d.Description != "baoming tokens cannot be refreshed; log in again and reseed the access token" {
		t.Fatalf("detail = %+v", d)
	}
}
