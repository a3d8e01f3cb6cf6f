package tokenapi

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tokenwarden/tokenwarden/internal/apikeys"
	"github.com/tokenwarden/tokenwarden/internal/keyring"
	"github.com/tokenwarden/tokenwarden/internal/store"
	"github.com/tokenwarden/tokenwarden/internal/testlog"
)

// apiFixture is a token API over a real SQLite store, with a settable clock.
type apiFixture struct {
	t      *testing.T
	dbPath string
	store  *store.SQLite
	api    *Handler
	srv    *httptest.Server
	logs   *testlog.Buffer
	mu     sync.Mutex
	clock  time.Time
}

var apiEpoch = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func newAPIFixture(t *testing.T, rate float64, burst int) *apiFixture {
	t.Helper()
	dir := t.TempDir()
	keyPath := filepath.Join(dir, "keys.json")
	if _, err := keyring.GenerateFile(keyPath); err != nil {
		t.Fatal(err)
	}
	ring, err := keyring.LoadFile(keyPath)
	if err != nil {
		t.Fatal(err)
	}
	dbPath := filepath.Join(dir, "tokens.db")
	st, err := store.OpenSQLite(t.Context(), dbPath, ring, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	f := &apiFixture{t: t, dbPath: dbPath, store: st, logs: &testlog.Buffer{}, clock: apiEpoch}
	logger := slog.New(slog.NewJSONHandler(f.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	f.api = NewHandler(st, RateLimit{Rate: rate, Burst: burst}, logger, f.now)
	f.srv = httptest.NewServer(f.routed())
	t.Cleanup(f.srv.Close)
	return f
}

// routed is the API under Pattern, as the worker's endpoint serves it: the handler
// reads the pattern's {id}.
func (f *apiFixture) routed() http.Handler {
	mux := http.NewServeMux()
	mux.Handle(Pattern, f.api)
	return mux
}

func (f *apiFixture) now() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.clock
}

func (f *apiFixture) advance(d time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.clock = f.clock.Add(d)
}

// seed stores a credential whose access token expires an hour after apiEpoch.
func (f *apiFixture) seed(id, access string) store.Record {
	f.t.Helper()
	rec, err := f.store.Put(f.t.Context(), store.Record{
		ID: id, Provider: "oauth2", TokenType: "Bearer",
		Secrets:         store.Secrets{AccessToken: access, RefreshToken: "refresh-" + access},
		AccessExpiresAt: apiEpoch.Add(time.Hour),
	})
	if err != nil {
		f.t.Fatal(err)
	}
	return rec
}

// newKey creates an API key in the store and returns it.
func (f *apiFixture) newKey(name string, creds ...string) (key, id string) {
	f.t.Helper()
	key, id, hash, err := apikeys.Generate()
	if err != nil {
		f.t.Fatal(err)
	}
	if _, err := f.store.CreateAPIKey(f.t.Context(), store.APIKey{ID: id, Name: name, CredentialIDs: creds, Hash: hash}); err != nil {
		f.t.Fatal(err)
	}
	return key, id
}

type apiAnswer struct {
	status int
	header http.Header
	body   string
	token  tokenResponse
	err    errorResponse
}

func (f *apiFixture) get(credID, authorization string) apiAnswer {
	f.t.Helper()
	return f.do(http.MethodGet, credID, authorization)
}

func (f *apiFixture) do(method, credID, authorization string) apiAnswer {
	f.t.Helper()
	req, err := http.NewRequestWithContext(f.t.Context(), method, f.srv.URL+"/v1/credentials/"+credID+"/token", nil)
	if err != nil {
		f.t.Fatal(err)
	}
	if authorization != "" {
		req.Header.Set("Authorization", authorization)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		f.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	a := apiAnswer{status: resp.StatusCode, header: resp.Header, body: string(b)}
	if resp.StatusCode == http.StatusOK {
		if err := json.Unmarshal(b, &a.token); err != nil {
			f.t.Fatalf("200 body is not a token response: %v", err)
		}
	} else if method != http.MethodHead {
		if err := json.Unmarshal(b, &a.err); err != nil || a.err.Error == "" || a.err.Message == "" {
			f.t.Fatalf("%d body is not {\"error\", \"message\"}: %q (%v)", resp.StatusCode, b, err)
		}
	}
	return a
}

func bearer(key string) string { return "Bearer " + key }

func TestTokenAPIAuthMatrix(t *testing.T) {
	f := newAPIFixture(t, 1000, 1000)
	f.seed("crm", "access-crm-SECRET")
	f.seed("other", "access-other-SECRET")
	valid, _ := f.newKey("app", "crm", "ghost")
	forOther, _ := f.newKey("app-other", "other")
	revoked, revokedID := f.newKey("app-old", "crm")
	if _, err := f.store.RevokeAPIKey(t.Context(), revokedID, apiEpoch); err != nil {
		t.Fatal(err)
	}
	id, _ := apikeys.Parse(valid)
	wrongSecret := apikeys.Prefix + id + "_" + strings.Repeat("a", apikeys.SecretLen)
	unknownID := apikeys.Prefix + "0123456789abcdef" + valid[len(apikeys.Prefix)+apikeys.IDLen:]

	for _, tc := range []struct {
		name, cred, auth string
		status           int
		code             string
	}{
		{"no key", "crm", "", 401, "missing_api_key"},
		{"basic auth", "crm", "Basic dXNlcjpwYXNz", 401, "invalid_api_key"},
		{"bearer without key", "crm", "Bearer", 401, "invalid_api_key"},
		{"malformed key", "crm", bearer("not-a-key"), 401, "invalid_api_key"},
		{"wrong secret", "crm", bearer(wrongSecret), 401, "invalid_api_key"},
		{"unknown key ID", "crm", bearer(unknownID), 401, "invalid_api_key"},
		{"revoked key", "crm", bearer(revoked), 401, "revoked_api_key"},
		{"key for another credential", "crm", bearer(forOther), 403, "forbidden"},
		{"unscoped and unknown credential", "nope", bearer(valid), 403, "forbidden"},
		{"scoped but unknown credential", "ghost", bearer(valid), 404, "not_found"},
		{"valid key", "crm", bearer(valid), 200, ""},
		{"valid key, scheme in lower case", "crm", "bearer " + valid, 200, ""},
		{"other valid key", "other", bearer(forOther), 200, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := f.get(tc.cred, tc.auth)
			if a.status != tc.status || a.err.Error != tc.code {
				t.Fatalf("status %d error %q, want %d %q; body %s", a.status, a.err.Error, tc.status, tc.code, a.body)
			}
			if got := a.header.Get("Cache-Control"); got != "no-store" {
				t.Errorf("Cache-Control = %q, want no-store", got)
			}
			if got := a.header.Get("Content-Type"); got != "application/json" {
				t.Errorf("Content-Type = %q, want application/json", got)
			}
			if (tc.status == 401) != (a.header.Get("WWW-Authenticate") != "") {
				t.Errorf("WWW-Authenticate = %q on a %d", a.header.Get("WWW-Authenticate"), tc.status)
			}
			if tc.status != 200 && strings.Contains(a.body, "SECRET") {
				t.Errorf("refusal carries a token: %s", a.body)
			}
			if tc.status == 200 {
				want := "access-" + tc.cred + "-SECRET"
				if a.token.AccessToken != want || a.token.TokenType != "Bearer" {
					t.Errorf("token response %+v, want access token of %s, type Bearer", a.token, tc.cred)
				}
				if a.token.ExpiresAt == nil || !a.token.ExpiresAt.Equal(apiEpoch.Add(time.Hour)) {
					t.Errorf("expires_at = %v, want %v", a.token.ExpiresAt, apiEpoch.Add(time.Hour))
				}
				if !strings.Contains(a.body, `"expires_at":"2026-03-01T13:00:00Z"`) {
					t.Errorf("expires_at not in RFC 3339 UTC: %s", a.body)
				}
			}
		})
	}

	// Only GET (and HEAD) are served.
	if a := f.do(http.MethodPost, "crm", bearer(valid)); a.status != http.StatusMethodNotAllowed || a.header.Get("Allow") != "GET, HEAD" {
		t.Errorf("POST: status %d Allow %q, want 405, GET, HEAD", a.status, a.header.Get("Allow"))
	}
}

// Keys as the operator makes and revokes them (internal/apikeys, behind starter apikey):
// the key Create prints reads its credential, and Revoke by name stops it at the next
// request and no other key.
func TestTokenAPIServesKeysFromAPIKeys(t *testing.T) {
	f := newAPIFixture(t, 1000, 1000)
	f.seed("crm", "access-crm-SECRET")
	billing, err := apikeys.Create(t.Context(), f.store, "billing", []string{"crm"})
	if err != nil {
		t.Fatal(err)
	}
	reports, err := apikeys.Create(t.Context(), f.store, "reports", []string{"crm"})
	if err != nil {
		t.Fatal(err)
	}
	if a := f.get("crm", bearer(billing.Key.Reveal())); a.status != http.StatusOK || a.token.AccessToken != "access-crm-SECRET" {
		t.Fatalf("created key: %d %s, want 200 with the stored token", a.status, a.body)
	}
	if _, err := apikeys.Revoke(t.Context(), f.store, "billing", apiEpoch); err != nil {
		t.Fatal(err)
	}
	if a := f.get("crm", bearer(billing.Key.Reveal())); a.status != http.StatusUnauthorized || a.err.Error != "revoked_api_key" {
		t.Errorf("revoked key: %d %q, want 401 revoked_api_key", a.status, a.err.Error)
	}
	if a := f.get("crm", bearer(reports.Key.Reveal())); a.status != http.StatusOK {
		t.Errorf("the other key after revoking one: %d, want 200", a.status)
	}
}

// A database writer without the key file inserts a key of their own (or widens a
// genuine key's scope): the token API answers 401 as for any invalid key, serves no
// token, and logs an error naming the key ID.
func TestTokenAPIRefusesUnauthenticatedKeyRows(t *testing.T) {
	f := newAPIFixture(t, 1000, 1000)
	f.seed("crm", "access-crm-SECRET")
	f.seed("payroll", "access-payroll-SECRET")
	genuine, genuineID := f.newKey("app", "crm")

	db, err := sql.Open("sqlite", "file:"+f.dbPath+"?_pragma=busy_timeout(5000)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	forged, forgedID, hash, err := apikeys.Generate()
	if err != nil {
		t.Fatal(err)
	}
	for _, stmt := range []struct {
		query string
		args  []any
	}{
		{`INSERT INTO api_keys (id, name, hash, created_at) VALUES (?, ?, ?, ?)`, []any{forgedID, "intruder", hash, apiEpoch.UnixNano()}},
		{`INSERT INTO api_key_scopes (key_id, credential_id) VALUES (?, ?)`, []any{forgedID, "crm"}},
		{`INSERT INTO api_key_scopes (key_id, credential_id) VALUES (?, ?)`, []any{genuineID, "payroll"}},
	} {
		if _, err := db.ExecContext(t.Context(), stmt.query, stmt.args...); err != nil {
			t.Fatal(err)
		}
	}

	for _, tc := range []struct{ name, cred, key, keyID string }{
		{"inserted key", "crm", forged, forgedID},
		{"widened key, new scope", "payroll", genuine, genuineID},
		{"widened key, old scope", "crm", genuine, genuineID},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := f.get(tc.cred, bearer(tc.key))
			if a.status != http.StatusUnauthorized || a.err.Error != "invalid_api_key" {
				t.Fatalf("status %d error %q, want 401 invalid_api_key; body %s", a.status, a.err.Error, a.body)
			}
			if strings.Contains(a.body, "SECRET") || strings.Contains(a.body, tc.keyID) {
				t.Errorf("refusal body says too much: %s", a.body)
			}
		})
	}
	logs := f.logs.String()
	for _, id := range []string{forgedID, genuineID} {
		if !strings.Contains(logs, `"level":"ERROR"`) || !strings.Contains(logs, "not authenticated") || !strings.Contains(logs, id) {
			t.Errorf("no error logged naming key %s:\n%s", id, logs)
		}
	}
	if strings.Contains(logs, "SECRET") || strings.Contains(logs, forged) || strings.Contains(logs, genuine) {
		t.Errorf("log holds a token or an API key:\n%s", logs)
	}
}

func TestTokenAPIUnavailableToken(t *testing.T) {
	f := newAPIFixture(t, 1000, 1000)
	key, _ := f.newKey("app", "seeding", "crm")
	if _, err := f.store.Put(t.Context(), store.Record{ID: "seeding", Secrets: store.Secrets{RefreshToken: "r"}}); err != nil {
		t.Fatal(err)
	}
	f.seed("crm", "access-crm-SECRET")
	if a := f.get("seeding", bearer(key)); a.status != 503 || a.err.Error != "token_unavailable" || a.header.Get("Retry-After") == "" {
		t.Errorf("no access token: %d %q Retry-After %q, want 503 token_unavailable with Retry-After", a.status, a.err.Error, a.header.Get("Retry-After"))
	}
	f.advance(time.Hour) // the access token expires exactly now
	if a := f.get("crm", bearer(key)); a.status != 503 || strings.Contains(a.body, "SECRET") {
		t.Errorf("expired access token: %d %s, want 503 without the token", a.status, a.body)
	}
}

// countingStore counts last-used writes.
type countingStore struct {
	*store.SQLite
	credTouches, keyTouches atomic.Int32
}

func (c *countingStore) TouchLastUsed(ctx context.Context, id string, at time.Time) error {
	c.credTouches.Add(1)
	return c.SQLite.TouchLastUsed(ctx, id, at)
}

func (c *countingStore) TouchAPIKey(ctx context.Context, id string, at time.Time) error {
	c.keyTouches.Add(1)
	return c.SQLite.TouchAPIKey(ctx, id, at)
}

func TestTokenAPIRecordsLastUse(t *testing.T) {
	f := newAPIFixture(t, 1000, 1000)
	counting := &countingStore{SQLite: f.store}
	f.api.store = counting
	seeded := f.seed("crm", "access-crm-SECRET")
	key, keyID := f.newKey("app", "crm")

	lastUsed := func() (cred, key time.Time) {
		t.Helper()
		rec, err := f.store.Get(t.Context(), "crm")
		if err != nil {
			t.Fatal(err)
		}
		k, err := f.store.LookupAPIKey(t.Context(), keyID)
		if err != nil {
			t.Fatal(err)
		}
		if rec.Version != seeded.Version || !rec.UpdatedAt.Equal(seeded.UpdatedAt) {
			t.Errorf("recording last use changed the record: version %d updated %v, want %d %v", rec.Version, rec.UpdatedAt, seeded.Version, seeded.UpdatedAt)
		}
		return rec.LastUsedAt, k.LastUsedAt
	}
	if c, k := lastUsed(); !c.IsZero() || !k.IsZero() {
		t.Fatalf("last used before any read: %v, %v", c, k)
	}
	// Refused reads record nothing.
	f.get("crm", "")
	f.get("crm", bearer(otherSecret(key)))
	if c, k := lastUsed(); !c.IsZero() || !k.IsZero() {
		t.Fatalf("last used after refused reads: %v, %v", c, k)
	}

	if a := f.get("crm", bearer(key)); a.status != 200 {
		t.Fatalf("read: %d %s", a.status, a.body)
	}
	first := f.now()
	if c, k := lastUsed(); !c.Equal(first) || !k.Equal(first) {
		t.Fatalf("last used after a read = %v (credential), %v (key); want %v", c, k, first)
	}

	// Within the minute: no write, however many reads, also concurrent ones.
	f.advance(59 * time.Second)
	var wg sync.WaitGroup
	for range 20 {
		wg.Go(func() {
			if a := f.get("crm", bearer(key)); a.status != 200 {
				t.Errorf("read: %d %s", a.status, a.body)
			}
		})
	}
	wg.Wait()
	if n := counting.credTouches.Load(); n != 1 {
		t.Errorf("%d credential last-used writes after 21 reads within a minute, want 1", n)
	}
	if c, _ := lastUsed(); !c.Equal(first) {
		t.Errorf("last used = %v within the throttle interval, want still %v", c, first)
	}

	// A minute after the last write: one more.
	f.advance(time.Second)
	f.get("crm", bearer(key))
	if c, k := lastUsed(); !c.Equal(f.now()) || !k.Equal(f.now()) {
		t.Errorf("last used a minute later = %v, %v; want %v", c, k, f.now())
	}
	if n, m := counting.credTouches.Load(), counting.keyTouches.Load(); n != 2 || m != 2 {
		t.Errorf("%d credential and %d key last-used writes, want 2 and 2", n, m)
	}
}

func TestTokenAPIRateLimit(t *testing.T) {
	f := newAPIFixture(t, 2, 3)
	f.seed("crm", "access-crm-SECRET")
	key, _ := f.newKey("app", "crm")
	other, _ := f.newKey("app2", "crm")

	for i := range 3 {
		if a := f.get("crm", bearer(key)); a.status != 200 {
			t.Fatalf("request %d of the burst: %d %s", i+1, a.status, a.body)
		}
	}
	a := f.get("crm", bearer(key))
	if a.status != http.StatusTooManyRequests || a.err.Error != "rate_limited" || a.header.Get("Retry-After") != "1" {
		t.Fatalf("request past the burst: %d %q Retry-After %q, want 429 rate_limited Retry-After 1", a.status, a.err.Error, a.header.Get("Retry-After"))
	}
	// Refused requests spend nothing; other keys have their own bucket.
	if a := f.get("crm", bearer(other)); a.status != 200 {
		t.Errorf("another key: %d, want 200", a.status)
	}
	// Unauthenticated requests do not drain a key's bucket.
	f.advance(500 * time.Millisecond) // one token at 2/s
	for range 5 {
		f.get("crm", "Bearer twk_bogus")
	}
	if a := f.get("crm", bearer(key)); a.status != 200 {
		t.Errorf("after refilling one token: %d, want 200", a.status)
	}
	if a := f.get("crm", bearer(key)); a.status != 429 {
		t.Errorf("after spending it: %d, want 429", a.status)
	}
	f.advance(30 * time.Minute) // refills to the burst, not beyond
	for i := range 4 {
		want := 200
		if i == 3 {
			want = 429
		}
		if a := f.get("crm", bearer(key)); a.status != want {
			t.Errorf("after half an hour, request %d: %d, want %d", i+1, a.status, want)
		}
	}
}

// No log line and no answer carries a token or an API key (the secret part, nor the
// whole key), whatever the outcome.
func TestTokenAPILogsNoSecrets(t *testing.T) {
	f := newAPIFixture(t, 1, 1)
	const access = "access-crm-SECRET-xyz"
	f.seed("crm", access)
	key, _ := f.newKey("app", "crm")
	revoked, revokedID := f.newKey("old", "crm")
	if _, err := f.store.RevokeAPIKey(t.Context(), revokedID, apiEpoch); err != nil {
		t.Fatal(err)
	}
	other, _ := f.newKey("other", "nope")
	wrong := otherSecret(key)
	var bodies []string
	for _, auth := range []string{"", bearer(key), bearer(key), bearer(revoked), bearer(other), bearer(wrong), bearer("garbage-" + key)} {
		for _, cred := range []string{"crm", "nope"} {
			bodies = append(bodies, f.get(cred, auth).body)
		}
	}
	f.store.Close() // store errors are logged too
	bodies = append(bodies, f.get("crm", bearer(key)).body)

	logs := f.logs.String()
	if !strings.Contains(logs, "token API") {
		t.Fatalf("nothing logged:\n%s", logs)
	}
	for _, secret := range []string{access, key, revoked, other, wrong, secretPart(key), secretPart(revoked), secretPart(wrong)} {
		if strings.Contains(logs, secret) {
			t.Errorf("the log contains a secret:\n%s", logs)
		}
		for _, b := range bodies {
			if strings.Contains(b, secretPart(key)) || strings.Contains(b, secretPart(revoked)) {
				t.Errorf("an answer contains an API key: %s", b)
			}
		}
	}
	if n := strings.Count(strings.Join(bodies, "\n"), access); n != 1 {
		t.Errorf("the access token appears in %d answers, want exactly the one 200", n)
	}
}

func secretPart(key string) string { return key[len(apikeys.Prefix)+apikeys.IDLen+1:] }

// otherSecret is key with the same ID and a different, well-formed secret.
func otherSecret(key string) string {
	last := "a"
	if strings.HasSuffix(key, "a") {
		last = "b"
	}
	return key[:len(key)-1] + last
}

// lookupCountingStore counts API key lookups, which failed authentication must stop
// reaching once an address has spent its budget.
type lookupCountingStore struct {
	*store.SQLite
	lookups atomic.Int32
}

func (c *lookupCountingStore) LookupAPIKey(ctx context.Context, id string) (store.APIKey, error) {
	c.lookups.Add(1)
	return c.SQLite.LookupAPIKey(ctx, id)
}

// serveFrom sends one request as if from remoteAddr, through the API's routing.
func (f *apiFixture) serveFrom(remoteAddr, path, authorization string) *httptest.ResponseRecorder {
	f.t.Helper()
	req := httptest.NewRequestWithContext(f.t.Context(), http.MethodGet, path, nil)
	req.RemoteAddr = remoteAddr
	if authorization != "" {
		req.Header.Set("Authorization", authorization)
	}
	rec := httptest.NewRecorder()
	f.routed().ServeHTTP(rec, req)
	return rec
}

// logLines decodes the fixture's JSON log.
func (f *apiFixture) logLines() []map[string]any {
	f.t.Helper()
	var out []map[string]any
	for line := range strings.SplitSeq(strings.TrimSpace(f.logs.String()), "\n") {
		if line == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			f.t.Fatalf("log line is not JSON: %q", line)
		}
		out = append(out, m)
	}
	return out
}

func countLevel(lines []map[string]any, level string) int {
	n := 0
	for _, l := range lines {
		if l["level"] == level {
			n++
		}
	}
	return n
}

// Guessing keys from one address: after the address's burst of failures, every further
// request is 429 before its key is looked up or logged at info, one warning says so,
// and the budget refills with time.
func TestTokenAPILimitsFailedAuthentication(t *testing.T) {
	f := newAPIFixture(t, 1000, 1000)
	counting := &lookupCountingStore{SQLite: f.store}
	f.api.store = counting
	f.api.failures = newFailureLimiter(failureLimits{remoteRate: 1, remoteBurst: 3, globalRate: 1000, globalBurst: 1000, maxRemotes: 100})
	f.seed("crm", "access-crm-SECRET")
	valid, _ := f.newKey("app", "crm")
	const path = "/v1/credentials/crm/token"
	guess := func(i int) string {
		return bearer(fmt.Sprintf("twk_%016x_%s", i, strings.Repeat("a", apikeys.SecretLen)))
	}

	for i := range 3 {
		if rec := f.serveFrom("192.0.2.7:4000", path, guess(i)); rec.Code != http.StatusUnauthorized {
			t.Fatalf("guess %d: %d, want 401", i+1, rec.Code)
		}
	}
	if n := counting.lookups.Load(); n != 3 {
		t.Fatalf("%d lookups for 3 guesses, want 3", n)
	}
	for i := range 50 {
		rec := f.serveFrom("192.0.2.7:4001", path, guess(100+i))
		if rec.Code != http.StatusTooManyRequests || !strings.Contains(rec.Body.String(), "too_many_failures") || rec.Header().Get("Retry-After") != "1" {
			t.Fatalf("guess past the burst: %d %s Retry-After %q, want 429 too_many_failures Retry-After 1", rec.Code, rec.Body, rec.Header().Get("Retry-After"))
		}
	}
	// Missing and malformed keys count as well, and are refused the same way.
	if rec := f.serveFrom("192.0.2.7:4002", path, ""); rec.Code != http.StatusTooManyRequests {
		t.Errorf("no key while limited: %d, want 429", rec.Code)
	}
	if n := counting.lookups.Load(); n != 3 {
		t.Errorf("%d lookups after 51 limited requests, want still 3", n)
	}
	// Whether a key is valid is only known after the lookup the limit protects, so the
	// address's valid key waits too; another address is not affected.
	if rec := f.serveFrom("192.0.2.7:4003", path, bearer(valid)); rec.Code != http.StatusTooManyRequests {
		t.Errorf("valid key from the limited address: %d, want 429", rec.Code)
	}
	if rec := f.serveFrom("198.51.100.1:4000", path, bearer(valid)); rec.Code != http.StatusOK {
		t.Errorf("valid key from another address: %d, want 200", rec.Code)
	}
	f.advance(time.Second)
	if rec := f.serveFrom("192.0.2.7:4004", path, bearer(valid)); rec.Code != http.StatusOK {
		t.Errorf("valid key a second later: %d, want 200", rec.Code)
	}

	lines := f.logLines()
	if n := countLevel(lines, "INFO"); n != 3 {
		t.Errorf("%d info lines, want one per looked-at failure (3):\n%s", n, f.logs)
	}
	if n := countLevel(lines, "WARN"); n != 1 || !strings.Contains(f.logs.String(), `"remote_prefix":"192.0.2.7/32"`) {
		t.Errorf("%d warnings, want one naming 192.0.2.7/32:\n%s", n, f.logs)
	}
}

// The credential ID comes from the URL: a valid one is logged as sent, an invalid one
// escaped, marked and cut short, so that no caller writes raw bytes or megabytes into
// the log.
func TestTokenAPILogsSanitisedIDs(t *testing.T) {
	f := newAPIFixture(t, 1000, 1000)
	f.seed("crm", "access-crm-SECRET")
	key, _ := f.newKey("app", "crm")
	long := strings.Repeat("x", 5000)
	for _, p := range []string{
		"/v1/credentials/crm/token",
		"/v1/credentials/evil%0A%7B%22level%22:%22ERROR%22%7D%1B%5B31m/token",
		"/v1/credentials/" + long + "/token",
		"/v1/credentials/caf%C3%A9%FF/token",
	} {
		f.serveFrom("192.0.2.9:1", p, bearer(key))
	}
	seen := map[string]bool{}
	for _, l := range f.logLines() {
		c, _ := l["credential"].(string)
		seen[c] = true
		if len(c) > 2*maxLoggedID+40 {
			t.Errorf("logged credential of %d bytes: %.80q...", len(c), c)
		}
		for _, r := range c {
			if r < 0x20 || r > 0x7e {
				t.Errorf("logged credential %q holds a byte outside printable ASCII", c)
				break
			}
		}
		if c != "crm" && !strings.HasPrefix(c, "invalid:") {
			t.Errorf("logged credential %q is neither valid nor marked invalid", c)
		}
	}
	if !seen["crm"] || len(seen) != 4 {
		t.Errorf("logged credentials %v, want the valid ID as sent and three invalid ones", seen)
	}
	if !seen[`invalid:"`+strings.Repeat("x", maxLoggedID)+`"...(5000 bytes)`] {
		t.Errorf("the long ID is not logged cut short with its length: %v", seen)
	}
	if strings.Contains(f.logs.String(), long[:200]) {
		t.Error("the log holds the long ID")
	}
}
