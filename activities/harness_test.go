package activities_test

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	tlog "go.temporal.io/sdk/log"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"
	"go.uber.org/mock/gomock"

	"github.com/tokenwarden/tokenwarden/activities"
	"github.com/tokenwarden/tokenwarden/internal/keyring/keyringtest"
	"github.com/tokenwarden/tokenwarden/internal/outbox"
	"github.com/tokenwarden/tokenwarden/internal/provider"
	"github.com/tokenwarden/tokenwarden/internal/provider/catalog"
	"github.com/tokenwarden/tokenwarden/internal/provider/oauth2/oauth2test"
	"github.com/tokenwarden/tokenwarden/internal/seal"
	"github.com/tokenwarden/tokenwarden/internal/store"
	"github.com/tokenwarden/tokenwarden/internal/store/storemock"
	"github.com/tokenwarden/tokenwarden/internal/testlog"
)

// The test client. The secret looks like a real one (mixed case, digits, long) so that
// the adapter's scrubber would have to work to keep it out of errors.
const (
	testClientID     = "tokenwarden-test-client"
	testClientSecret = "cs_Th1sIsTheClientSecretValue_9f8e7d"
	accessLifetime   = 10 * time.Minute
)

// clock is the one controllable clock shared by the store, the activities, the adapter
// and the fake provider, so lease expiry and token lifetimes are exact and tests can
// step past a lease instead of sleeping through it.
type clock struct {
	mu sync.Mutex
	t  time.Time
	// real makes it the wall clock: for a store that keeps its own (PostgreSQL), whose
	// leases a fake clock could not step past.
	real bool
}

func newClock() *clock {
	return &clock{t: time.Date(2031, 3, 14, 9, 26, 53, 0, time.UTC)}
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.real {
		return time.Now().UTC()
	}
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

type harnessOptions struct {
	fake oauth2test.Options
	// wrapStore, if set, wraps the real SQLite store (to inject store failures; see
	// delegateTo).
	wrapStore       func(store.Records) store.Records
	providerTimeout time.Duration
	// introspect configures the fake's introspection endpoint (see introspecting).
	introspect bool
	// outbox gives the activities an outbox in the temp dir (h.outboxDir).
	outbox bool
	// postgresDSN, if set, puts the store in PostgreSQL instead of SQLite (h.sqlite is
	// then nil) and runs everything on the wall clock: PostgreSQL times leases by its own.
	postgresDSN string
}

// harness is one tokenwarden worker's worth of real parts: a SQLite store in a temp dir,
// the real oauth2 adapter talking HTTP to a strict fake provider, and the Temporal
// activity test environment running the activities.
type harness struct {
	t        *testing.T
	clock    *clock
	fake     *oauth2test.Server
	tokenURL string
	sqlite   *store.SQLite // the real store, also reachable when wrapped
	primary  store.Records // the real store, SQLite or PostgreSQL, unwrapped
	dbPath   string        // its file
	// outboxDir is the activities' outbox directory, when opts.outbox is set.
	outboxDir string
	sealer    *seal.Sealer // seals seeds as the starter does
	opts      harnessOptions
	acts      *activities.Activities
	env       *testsuite.TestActivityEnvironment
	logs      *testlog.Buffer // the activities' log output: tests check that no secret is ever logged
}

func newHarness(t *testing.T, opts harnessOptions) *harness {
	t.Helper()
	clk := newClock()
	clk.real = opts.postgresDSN != ""

	fopts := opts.fake
	if fopts.ClientID == "" {
		fopts.ClientID, fopts.ClientSecret = testClientID, testClientSecret
	}
	if fopts.AccessLifetime == 0 {
		fopts.AccessLifetime = accessLifetime
	}
	fopts.Now = clk.Now
	fake := oauth2test.New(fopts)
	tokenURL := fake.Start()
	t.Cleanup(fake.Close)

	ring := keyringtest.Random(t)
	var (
		db      *store.SQLite
		dbPath  string
		primary store.Records
	)
	if opts.postgresDSN != "" {
		pg, err := store.OpenPostgres(context.Background(), opts.postgresDSN, ring, clk.Now)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { pg.Close() })
		primary = pg
	} else {
		dbPath = filepath.Join(t.TempDir(), "tokens.db")
		var err error
		if db, err = store.OpenSQLite(context.Background(), dbPath, ring, clk.Now); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		primary = db
	}

	st := primary
	if opts.wrapStore != nil {
		st = opts.wrapStore(primary)
	}
	sealer, err := seal.NewSealer(ring, clk.Now)
	if err != nil {
		t.Fatal(err)
	}
	logs := &testlog.Buffer{}
	acts := &activities.Activities{
		Seeds:           sealer,
		Store:           st,
		Providers:       catalog.Registry(&http.Client{Timeout: 10 * time.Second}, clk.Now),
		Now:             clk.Now,
		Logger:          slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		ProviderTimeout: opts.providerTimeout,
		// Env sinks may write in the tests' temporary directories (t.TempDir, also a
		// subtest's, lies in os.TempDir), except the store's and the outbox's.
		EnvSinkDirs: []string{os.TempDir()},
	}
	if dbPath != "" {
		acts.EnvSinkProtected = append(acts.EnvSinkProtected, filepath.Dir(dbPath))
	}
	var outboxDir string
	if opts.outbox {
		outboxDir = filepath.Join(t.TempDir(), "outbox")
		if acts.Outbox, err = outbox.Open(outboxDir, ring); err != nil {
			t.Fatal(err)
		}
		acts.EnvSinkProtected = append(acts.EnvSinkProtected, outboxDir)
	}
	env := newActivityEnv(acts)
	return &harness{t: t, clock: clk, fake: fake, tokenURL: tokenURL, sqlite: db, primary: primary, dbPath: dbPath, outboxDir: outboxDir,
		sealer: sealer, opts: opts, acts: acts, env: env, logs: logs}
}

// quietSuite is a test suite whose SDK logger is quiet: every expected failure would
// otherwise print an ERROR line.
func quietSuite() *testsuite.WorkflowTestSuite {
	var suite testsuite.WorkflowTestSuite
	suite.SetLogger(tlog.NewStructuredLogger(slog.New(slog.DiscardHandler)))
	return &suite
}

// newActivityEnv returns an activity test environment for acts with a quiet SDK logger.
func newActivityEnv(acts *activities.Activities) *testsuite.TestActivityEnvironment {
	suite := quietSuite()
	env := suite.NewTestActivityEnvironment()
	env.RegisterActivity(acts)
	return env
}

func (h *harness) config() provider.Config {
	cfg := provider.Config{TokenURL: h.tokenURL, ClientID: testClientID}
	if h.opts.introspect {
		cfg.IntrospectionURL = h.fake.IntrospectionURL()
	}
	return cfg
}

func (h *harness) request(id string, expected int64) activities.RefreshRequest {
	return activities.RefreshRequest{CredentialID: id, Provider: catalog.OAuth2, Config: h.config(), ExpectedVersion: expected}
}

// seed starts a token family at the fake provider and stores its first refresh token
// (with the given client secret) through the Seed activity. It returns the refresh token
// and the stored version.
func (h *harness) seed(id, family, clientSecret string) (string, int64) {
	h.t.Helper()
	rt := h.fake.Seed(family)
	res := h.seedMaterial(h.sealedSeed(id, seal.Seed{RefreshToken: rt, ClientSecret: clientSecret}))
	return rt, res.Version
}

// sealedSeed is the Seed activity's request for seed, sealed for the credential id with
// the harness's oauth2 configuration, as the starter seals it.
func (h *harness) sealedSeed(id string, seed seal.Seed) activities.SeedRequest {
	h.t.Helper()
	return h.sealedFor(seal.Request{ID: id, Provider: catalog.OAuth2, Config: h.config(), Seed: seed})
}

// sealedFor is the Seed activity's request for a sealing request of any provider.
func (h *harness) sealedFor(req seal.Request) activities.SeedRequest {
	h.t.Helper()
	env, err := h.sealer.SealFor(req)
	if err != nil {
		h.t.Fatal(err)
	}
	return activities.SeedRequest{CredentialID: req.ID, Provider: req.Provider, Config: req.Config, Seed: env}
}

// secretsOf is the grant material of stored secrets, without the binding and the seed's
// identity that the Seed activity records beside it.
func secretsOf(s store.Secrets) store.Secrets {
	s.Binding, s.SeedID, s.SeedSealedAt = "", "", time.Time{}
	return s
}

func (h *harness) seedMaterial(req activities.SeedRequest) activities.SeedResult {
	h.t.Helper()
	val, err := h.env.ExecuteActivity(h.acts.Seed, req)
	if err != nil {
		h.t.Fatalf("Seed: %v", err)
	}
	var res activities.SeedResult
	if err := val.Get(&res); err != nil {
		h.t.Fatalf("Seed result: %v", err)
	}
	return res
}

// refresh runs the Refresh activity as Temporal would: input and result go through the
// data converter, errors through the failure converter.
func (h *harness) refresh(req activities.RefreshRequest) (activities.RefreshResult, error) {
	h.t.Helper()
	val, err := h.env.ExecuteActivity(h.acts.Refresh, req)
	if err != nil {
		return activities.RefreshResult{}, err
	}
	var res activities.RefreshResult
	if err := val.Get(&res); err != nil {
		h.t.Fatalf("Refresh result: %v", err)
	}
	return res, nil
}

func (h *harness) mustRefresh(req activities.RefreshRequest) activities.RefreshResult {
	h.t.Helper()
	res, err := h.refresh(req)
	if err != nil {
		h.t.Fatalf("Refresh(expected version %d): %v", req.ExpectedVersion, err)
	}
	return res
}

func (h *harness) get(id string) store.Record {
	h.t.Helper()
	rec, err := h.sqlite.Get(context.Background(), id)
	if err != nil {
		h.t.Fatalf("store.Get(%q): %v", id, err)
	}
	return rec
}

// assertLeaseFree proves the lease was released by taking it for another owner.
func (h *harness) assertLeaseFree(id string) {
	h.t.Helper()
	if _, err := h.sqlite.AcquireLease(context.Background(), id, "someone-else", time.Minute); err != nil {
		h.t.Fatalf("lease should be free, but another owner cannot take it: %v", err)
	}
	if err := h.sqlite.ReleaseLease(context.Background(), id, "someone-else"); err != nil {
		h.t.Fatal(err)
	}
}

// takeLeaseAgo leaves a lease of ttl that owner took `ago` on the harness clock, as an
// attempt that died then would have: the store stamps leases with its own clock, so
// the clock is stepped back for the taking and forward again. It returns when it was
// taken.
func (h *harness) takeLeaseAgo(id, owner string, ago, ttl time.Duration) time.Time {
	h.t.Helper()
	h.clock.Advance(-ago)
	defer h.clock.Advance(ago)
	if _, err := h.sqlite.AcquireLease(context.Background(), id, owner, ttl); err != nil {
		h.t.Fatal(err)
	}
	return h.clock.Now()
}

// assertLeaseHeld checks that an attempt's lease is still live and returns it.
func (h *harness) assertLeaseHeld(id string) store.Lease {
	h.t.Helper()
	rec := h.get(id)
	if rec.Lease.Owner == "" || !h.clock.Now().Before(rec.Lease.ExpiresAt) {
		h.t.Fatalf("lease should still be held, got %+v (now %s)", rec.Lease, h.clock.Now())
	}
	return rec.Lease
}

// secrets lists every secret value the harness knows of for a credential: what is
// stored now, the fake's live token, and the given extras (spent or rejected values).
func (h *harness) secrets(id, family string, extra ...string) []string {
	h.t.Helper()
	out := append([]string{testClientSecret}, extra...)
	if rec, err := h.sqlite.Get(context.Background(), id); err == nil {
		out = append(out, rec.Secrets.RefreshToken, rec.Secrets.AccessToken, rec.Secrets.ClientSecret)
	}
	if latest, ok := h.fake.Latest(family); ok {
		out = append(out, latest)
	}
	return out
}

// assertNoSecrets checks the error text, the error's details as they would be stored in
// workflow history, and everything the activities logged.
func (h *harness) assertNoSecrets(err error, secrets ...string) {
	h.t.Helper()
	texts := map[string]string{"error": err.Error(), "log": h.logs.String()}
	var appErr *temporal.ApplicationError
	if errors.As(err, &appErr) && appErr.HasDetails() {
		// Decoded generically, so fields FailureDetail does not know about are caught too.
		var details map[string]any
		if derr := appErr.Details(&details); derr != nil {
			h.t.Fatalf("decode details: %v", derr)
		}
		b, _ := json.Marshal(details)
		texts["details"] = string(b)
	}
	for _, s := range secrets {
		if s == "" {
			continue
		}
		for where, text := range texts {
			if strings.Contains(text, s) {
				h.t.Errorf("%s contains a secret (%.6s...): %s", where, s, text)
			}
		}
	}
}

// appError unwraps the Temporal application error and checks its type and retryability.
func appError(t *testing.T, err error, wantType string, wantNonRetryable bool) *temporal.ApplicationError {
	t.Helper()
	if err == nil {
		t.Fatalf("want a %s error, got success", wantType)
	}
	var appErr *temporal.ApplicationError
	if !errors.As(err, &appErr) {
		t.Fatalf("want a *temporal.ApplicationError, got %T: %v", err, err)
	}
	if appErr.Type() != wantType {
		t.Fatalf("error type = %q, want %q (error: %v)", appErr.Type(), wantType, err)
	}
	if appErr.NonRetryable() != wantNonRetryable {
		t.Fatalf("NonRetryable = %v, want %v (error: %v)", appErr.NonRetryable(), wantNonRetryable, err)
	}
	return appErr
}

func detailOf(t *testing.T, appErr *temporal.ApplicationError) activities.FailureDetail {
	t.Helper()
	var d activities.FailureDetail
	if !appErr.HasDetails() {
		t.Fatalf("error %q has no FailureDetail", appErr.Error())
	}
	if err := appErr.Details(&d); err != nil {
		t.Fatalf("decode FailureDetail: %v", err)
	}
	return d
}

// delegateTo makes m the real store for every method the activities call except
// CompareAndSwap, which the test programs: the commit is the step whose failures the
// tests inject. A call to any other method fails the test.
func delegateTo(m *storemock.MockRecords, real store.Records) {
	m.EXPECT().Get(gomock.Any(), gomock.Any()).DoAndReturn(real.Get).AnyTimes()
	m.EXPECT().Put(gomock.Any(), gomock.Any()).DoAndReturn(real.Put).AnyTimes()
	m.EXPECT().AcquireLease(gomock.Any(), gomock.Any(), gomock.Any(), gomock.Any()).DoAndReturn(real.AcquireLease).AnyTimes()
	m.EXPECT().ReleaseLease(gomock.Any(), gomock.Any(), gomock.Any()).DoAndReturn(real.ReleaseLease).AnyTimes()
}

// flakyStore is the real store with CompareAndSwap sabotaged: the first failures calls
// return failErr, then it delegates. failures < 0 fails forever.
type flakyStore struct {
	store.Records
	mu       sync.Mutex
	failures int
	failErr  error
	calls    int
}

func (s *flakyStore) CompareAndSwap(ctx context.Context, rec store.Record, expected int64, owner string) (store.Record, error) {
	s.mu.Lock()
	s.calls++
	fail := s.failures != 0
	if s.failures > 0 {
		s.failures--
	}
	s.mu.Unlock()
	if fail {
		return store.Record{}, s.failErr
	}
	return s.Records.CompareAndSwap(ctx, rec, expected, owner)
}

func (s *flakyStore) casCalls() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls
}
