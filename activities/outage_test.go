package activities_test

import (
	"context"
	"database/sql"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tokenwarden/tokenwarden/activities"
	"github.com/tokenwarden/tokenwarden/internal/keyring"
	"github.com/tokenwarden/tokenwarden/internal/outbox"
	"github.com/tokenwarden/tokenwarden/internal/store"
)

// storeOutage makes the real store unavailable the way an operator's tool or a stuck
// process would: another connection holds SQLite's write lock (BEGIN EXCLUSIVE).
// Readers still read (WAL); every write waits for the lock.
type storeOutage struct {
	t    *testing.T
	db   *sql.DB
	conn *sql.Conn
}

func lockSQLite(t *testing.T, path string) *storeOutage {
	t.Helper()
	q := url.Values{}
	q.Add("_pragma", "busy_timeout(5000)")
	db, err := sql.Open("sqlite", (&url.URL{Scheme: "file", Path: filepath.ToSlash(path), RawQuery: q.Encode()}).String())
	if err != nil {
		t.Fatal(err)
	}
	conn, err := db.Conn(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.ExecContext(context.Background(), "BEGIN EXCLUSIVE"); err != nil {
		t.Fatalf("lock the store: %v", err)
	}
	o := &storeOutage{t: t, db: db, conn: conn}
	t.Cleanup(o.end)
	return o
}

func (o *storeOutage) end() {
	if o.conn == nil {
		return
	}
	if _, err := o.conn.ExecContext(context.Background(), "ROLLBACK"); err != nil {
		o.t.Errorf("unlock the store: %v", err)
	}
	o.conn.Close()
	o.db.Close()
	o.conn = nil
}

// slowWhenLocked is the real store seen from a worker during an outage on the harness's
// clock: a write that finds the store locked gives up after a moment of real time, and
// the harness clock moves on by the 5 s it would have waited (SQLite's busy timeout),
// so that minutes of outage cost a second. lockAtFirstCommit starts the outage at the
// first CompareAndSwap: right after the provider rotated, before anything is stored.
type slowWhenLocked struct {
	store.Records
	clock             *clock
	mu                sync.Mutex
	lockAtFirstCommit func()
	casCalls          int
}

func (s *slowWhenLocked) bounded(ctx context.Context, call func(context.Context) error) error {
	waited := 5 * time.Second
	if deadline, ok := ctx.Deadline(); ok {
		// The caller's bound (the commit's time left) cuts the wait short.
		waited = min(waited, time.Until(deadline))
	}
	cctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	err := call(cctx)
	if err != nil {
		s.clock.Advance(waited)
	}
	return err
}

func (s *slowWhenLocked) CompareAndSwap(ctx context.Context, rec store.Record, expected int64, owner string) (store.Record, error) {
	s.mu.Lock()
	s.casCalls++
	lock := s.lockAtFirstCommit
	s.lockAtFirstCommit = nil
	s.mu.Unlock()
	if lock != nil {
		lock()
	}
	var saved store.Record
	err := s.bounded(ctx, func(ctx context.Context) (err error) {
		saved, err = s.Records.CompareAndSwap(ctx, rec, expected, owner)
		return err
	})
	return saved, err
}

func (s *slowWhenLocked) AcquireLease(ctx context.Context, id, owner string, ttl time.Duration) (store.Lease, error) {
	var prev store.Lease
	err := s.bounded(ctx, func(ctx context.Context) (err error) {
		prev, err = s.Records.AcquireLease(ctx, id, owner, ttl)
		return err
	})
	return prev, err
}

func (s *slowWhenLocked) ReleaseLease(ctx context.Context, id, owner string) error {
	return s.bounded(ctx, func(ctx context.Context) error { return s.Records.ReleaseLease(ctx, id, owner) })
}

// outageAtFirstCommit is a harness with an outbox whose SQLite store locks at the first
// commit (slowWhenLocked) and whose commit retries sleep on the harness clock. *outage
// is the outage once it has begun.
func outageAtFirstCommit(t *testing.T) (h *harness, wrapped *slowWhenLocked, outage **storeOutage) {
	t.Helper()
	outage = new(*storeOutage)
	h = newHarness(t, harnessOptions{outbox: true, wrapStore: func(s store.Records) store.Records {
		wrapped = &slowWhenLocked{Records: s}
		return wrapped
	}})
	wrapped.clock = h.clock
	wrapped.lockAtFirstCommit = func() { *outage = lockSQLite(t, h.dbPath) }
	h.acts.Sleep = func(_ context.Context, d time.Duration) error { h.clock.Advance(d); return nil }
	return h, wrapped, outage
}

// The store goes down for 5 minutes right after the provider rotated the refresh token.
// The commit retries until its lease nears its end, then the token set goes to the
// outbox (0600, sealed); every attempt during the outage fails without presenting
// anything; the first attempt after it commits the outbox's token set, and the next
// refresh presents that token, once. 0 lost, 0 presented twice.
func TestStoreOutageAfterRotationKeepsTheTokenInTheOutbox(t *testing.T) {
	h, wrapped, outage := outageAtFirstCommit(t)
	rt, v := h.seed(credID, "fam", testClientSecret)
	const outageLength = 5 * time.Minute

	// The provider rotates; the store is locked from the first commit on.
	down := h.clock.Now()
	_, err := h.refresh(h.request(credID, v))
	appErr := appError(t, err, activities.ErrTypeStore, false)
	if !strings.Contains(appErr.Error(), "kept in the outbox") {
		t.Fatalf("error %q does not say the token set is in the outbox", appErr.Error())
	}
	if *outage == nil {
		t.Fatal("the store was never locked")
	}
	latest, ok := h.fake.Latest("fam")
	if !ok || latest == rt || h.fake.Processed(rt) != 1 {
		t.Fatalf("the provider did not rotate: processed %d", h.fake.Processed(rt))
	}
	gaveUp := h.clock.Now().Sub(down)
	if gaveUp > activities.DefaultLeaseDuration {
		t.Fatalf("the commit retried for %s, past the %s lease", gaveUp, activities.DefaultLeaseDuration)
	}
	commits := wrapped.casCalls

	// The outbox holds one entry, 0600 in a 0700 directory, with no token in plaintext.
	entries, err := filepath.Glob(filepath.Join(h.outboxDir, "*.json"))
	if err != nil || len(entries) != 1 {
		t.Fatalf("outbox entries %v (%v), want 1", entries, err)
	}
	checkMode(t, h.outboxDir, 0o700)
	checkMode(t, entries[0], 0o600)
	body, err := os.ReadFile(entries[0])
	if err != nil {
		t.Fatal(err)
	}
	for _, secret := range h.secrets(credID, "fam", rt, latest) {
		if secret != "" && strings.Contains(string(body), secret) {
			t.Fatal("the outbox entry holds a secret in plaintext")
		}
	}
	h.assertNoSecrets(appErr, h.secrets(credID, "fam", rt, latest)...)

	// The rest of the outage: an attempt every 30 s fails, and none presents anything.
	presented := h.fake.TotalPresentations()
	attempts := 0
	for h.clock.Now().Sub(down) < outageLength {
		if _, err := h.refresh(h.request(credID, v)); err == nil {
			t.Fatal("a refresh succeeded while the store was locked")
		}
		attempts++
		if n := h.fake.TotalPresentations(); n != presented {
			t.Fatalf("an attempt during the outage presented a token (%d presentations, want %d)", n, presented)
		}
		h.clock.Advance(30 * time.Second)
	}
	(*outage).end()
	up := h.clock.Now().Sub(down)

	// The first attempt after the outage commits the outbox's token set, presenting
	// nothing, and empties the outbox.
	res, err := h.refresh(h.request(credID, v))
	if err != nil {
		t.Fatalf("first refresh after the outage: %v", err)
	}
	if res.Version != v+1 || !res.Rotated {
		t.Fatalf("first refresh after the outage: %+v, want version %d, rotated", res, v+1)
	}
	if h.fake.TotalPresentations() != presented {
		t.Fatal("the commit from the outbox presented a token")
	}
	rec := h.get(credID)
	if rec.Version != v+1 || rec.Secrets.RefreshToken != latest {
		t.Fatalf("store at version %d, and not with the rotated refresh token", rec.Version)
	}
	if entries, _ := filepath.Glob(filepath.Join(h.outboxDir, "*.json")); len(entries) != 0 {
		t.Fatalf("outbox still holds %v after the commit", entries)
	}

	// The rotated token works: the next refresh presents it once.
	next := h.mustRefresh(h.request(credID, v+1))
	if next.Version != v+2 || h.fake.Presentations(latest) != 1 {
		t.Fatalf("refresh with the rotated token: %+v, presented %d times", next, h.fake.Presentations(latest))
	}
	if h.fake.MaxPresentations() != 1 || h.fake.ReuseDetections() != 0 {
		t.Fatalf("a token was presented twice: max presentations %d, reuse detections %d", h.fake.MaxPresentations(), h.fake.ReuseDetections())
	}
	t.Logf("store down %s (simulated) right after the rotation: the commit retried %d times for %s, then the outbox; "+
		"%d attempts during the outage presented nothing; the first attempt after it committed version %d from the outbox; "+
		"0 lost, max presentations per token %d, reuse detections %d",
		up, commits, gaveUp, attempts, res.Version, h.fake.MaxPresentations(), h.fake.ReuseDetections())
}

func checkMode(t *testing.T, path string, want os.FileMode) {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := fi.Mode().Perm(); got != want {
		t.Errorf("%s has mode %o, want %o", filepath.Base(path), got, want)
	}
}

// A database writer puts the credential's whole version-1 row back (version, key ID and
// sealed secrets, all genuine) after version 2 was committed. The sealed secrets open
// (they are bound to version 1, which the row says again), but the workflow expects
// version 2: the attempt refuses the store, and the consumed refresh token is never
// presented.
func TestRolledBackStoreIsNotPresented(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	rt, v := h.seed(credID, "fam", testClientSecret)
	db, err := sql.Open("sqlite", "file:"+h.dbPath)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var (
		keyID  string
		sealed []byte
	)
	if err := db.QueryRow(`SELECT key_id, secrets FROM credentials WHERE id = ?`, credID).Scan(&keyID, &sealed); err != nil {
		t.Fatal(err)
	}
	res := h.mustRefresh(h.request(credID, v))
	if _, err := db.Exec(`UPDATE credentials SET version = ?, key_id = ?, secrets = ? WHERE id = ?`, v, keyID, sealed, credID); err != nil {
		t.Fatal(err)
	}
	if got := h.get(credID); got.Version != v || got.Secrets.RefreshToken != rt {
		t.Fatal("the rolled-back row does not read back as version 1")
	}
	presented := h.fake.TotalPresentations()
	_, err = h.refresh(h.request(credID, res.Version))
	appErr := appError(t, err, activities.ErrTypePermanent, true)
	if d := detailOf(t, appErr); d.Code != "store_went_back" {
		t.Fatalf("failure code %q, want store_went_back", d.Code)
	}
	if h.fake.TotalPresentations() != presented || h.fake.Presentations(rt) != 1 {
		t.Fatalf("the consumed refresh token was presented again (%d presentations of it)", h.fake.Presentations(rt))
	}
}

// Two workers on one store, each with its own outbox. The store goes down right after
// the provider rotated on worker A, whose outbox takes the token set and whose attempt
// names its queue (the workflow routes there). If A died before saying so, Temporal
// retries on the fleet's queue with A's last heartbeat (committing, on A's queue):
// worker B finds A's lease expired, and instead of presenting the consumed token it
// releases the lease and names A's queue. A commits from its outbox; the next refresh,
// on B, presents the rotated token once.
func TestOutboxOfAnotherWorkerIsNeverBypassed(t *testing.T) {
	h, _, outage := outageAtFirstCommit(t)
	h.acts.OutboxQueue = "tokenwarden-outbox-a"
	b := *h.acts
	b.OutboxQueue = "tokenwarden-outbox-b"
	ring, err := keyring.New("kb", map[string][]byte{"kb": make([]byte, keyring.KeySize)})
	if err != nil {
		t.Fatal(err)
	}
	if b.Outbox, err = outbox.Open(filepath.Join(t.TempDir(), "outbox-b"), ring); err != nil {
		t.Fatal(err)
	}
	envB := newActivityEnv(&b)
	// What A's last heartbeat told Temporal, which hands it to the retry on B: it had the
	// provider's answer and was committing it.
	envB.SetHeartbeatDetails(activities.RefreshProgress{CommittingOn: h.acts.OutboxQueue})
	rt, v := h.seed(credID, "fam", testClientSecret)

	_, err = h.refresh(h.request(credID, v))
	appErr := appError(t, err, activities.ErrTypeStore, true)
	if d := detailOf(t, appErr); d.Code != activities.CodeOutboxPending || d.OutboxQueue != h.acts.OutboxQueue {
		t.Fatalf("worker A's failure detail %+v, want %s naming its queue", d, activities.CodeOutboxPending)
	}
	latest, ok := h.fake.Latest("fam")
	if !ok || latest == rt {
		t.Fatal("the provider did not rotate")
	}
	(*outage).end()
	h.clock.Advance(activities.DefaultLeaseDuration) // A's lease has run out
	presented := h.fake.TotalPresentations()

	_, err = envB.ExecuteActivity(b.Refresh, h.request(credID, v))
	appErr = appError(t, err, activities.ErrTypeStore, true)
	d := detailOf(t, appErr)
	if d.Code != activities.CodeOutboxElsewhere || d.OutboxQueue != h.acts.OutboxQueue || d.InterruptedAt.IsZero() {
		t.Fatalf("worker B's failure detail %+v, want %s naming A's queue and the interruption", d, activities.CodeOutboxElsewhere)
	}
	if n := h.fake.TotalPresentations(); n != presented {
		t.Fatalf("worker B presented the consumed refresh token (%d presentations, want %d)", n, presented)
	}

	// The workflow's next round, on A's queue.
	req := h.request(credID, v)
	req.OutboxRouted, req.InterruptedAt = true, d.InterruptedAt
	res := h.mustRefresh(req)
	if res.Version != v+1 || !res.Rotated || h.fake.TotalPresentations() != presented {
		t.Fatalf("the routed attempt: %+v, %d presentations (want version %d from the outbox, none)", res, h.fake.TotalPresentations(), v+1)
	}
	val, err := envB.ExecuteActivity(b.Refresh, h.request(credID, v+1))
	if err != nil {
		t.Fatalf("worker B's next refresh: %v", err)
	}
	var next activities.RefreshResult
	if err := val.Get(&next); err != nil {
		t.Fatal(err)
	}
	if next.Version != v+2 || h.fake.Presentations(latest) != 1 || h.fake.MaxPresentations() != 1 || h.fake.ReuseDetections() != 0 {
		t.Fatalf("next refresh %+v: rotated token presented %d times, max %d, reuse %d",
			next, h.fake.Presentations(latest), h.fake.MaxPresentations(), h.fake.ReuseDetections())
	}
	t.Logf("two workers, one store: A's outbox held version %d; B presented nothing and named A's queue; A committed from its outbox; "+
		"max presentations per token %d, reuse detections %d", v+1, h.fake.MaxPresentations(), h.fake.ReuseDetections())
}
