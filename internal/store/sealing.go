package store

// Sealing and row encoding shared by every Store implementation (SQLite, PostgreSQL):
// the same AAD, the same JSON document under AES-256-GCM, and the same time encoding
// (integer Unix nanoseconds, 0 for the zero time), so a record means the same thing
// whichever database holds it.

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"time"

	"github.com/tokenwarden/tokenwarden/internal/keyring"
)

// aadPrefix starts the associated data every credential's secrets are sealed with; the
// version the row holds them at and the credential ID follow it. Binding the ciphertext
// to its row means a sealed blob copied into another credential's row fails to open
// instead of lending that credential someone else's tokens; binding it to the version
// means an older blob restored into the row (a rollback by someone who can write the
// database) fails to open instead of making the worker present a refresh token the
// provider has already consumed. The version comes first: it is all digits, so the ID
// after the next "/" is unambiguous whatever it holds.
const aadPrefix = "tokenwarden/credential-v/"

func credentialAAD(id string, version int64) []byte {
	return []byte(aadPrefix + strconv.FormatInt(version, 10) + "/" + id)
}

// legacyAADPrefix is the associated data of rows sealed before the version was bound:
// the credential ID alone. Such rows still open; every write seals them anew under
// credentialAAD, and so does Reseal. Until the key they were sealed under is retired
// (worker -rotate-keys, then -remove-key), an old blob of that era restored into a row
// still opens: the version cannot protect what was sealed without it.
const legacyAADPrefix = "tokenwarden/credential/"

func legacyCredentialAAD(id string) []byte { return []byte(legacyAADPrefix + id) }

// pendingWrite is a record ready to be stored: times converted, and rec normalised to
// exactly what Get will return afterwards (minus Version). Its secrets are sealed by
// seal, once the version they will be stored at is known.
type pendingWrite struct {
	rec    Record
	ring   *keyring.Keyring
	keyID  string
	sealed []byte
	t      rowTimes
}

// seal seals the secrets for the row at version.
func (w *pendingWrite) seal(version int64) error {
	var err error
	if w.keyID, w.sealed, err = sealSecrets(w.ring, w.rec.ID, version, w.rec.Secrets); err != nil {
		return fmt.Errorf("credential %q: %w", w.rec.ID, err)
	}
	return nil
}

// prepareWrite stamps UpdatedAt from now and converts the times; the caller seals the
// secrets with ring (seal) at the version it writes. Every Store implementation writes
// through it, so all of them seal and store times the same way.
func prepareWrite(rec Record, ring *keyring.Keyring, now func() time.Time) (pendingWrite, error) {
	if rec.ID == "" {
		return pendingWrite{}, errors.New("record has an empty ID")
	}
	w := pendingWrite{rec: rec, ring: ring}
	w.rec.UpdatedAt = now()
	w.rec.Lease = Lease{}
	var err error
	if w.t, err = timesOf(w.rec); err != nil {
		return pendingWrite{}, fmt.Errorf("credential %q: %w", rec.ID, err)
	}
	// Round-trip the times so the returned record carries UTC, nanosecond values
	// without monotonic readings, the same as a later Get.
	w.t.apply(&w.rec)
	return w, nil
}

// sealSecrets encrypts secrets as JSON under ring's primary key, bound to the credential
// ID and the version, and returns the key ID to store beside the ciphertext.
func sealSecrets(ring *keyring.Keyring, id string, version int64, secrets Secrets) (string, []byte, error) {
	plain, err := json.Marshal(secrets)
	if err != nil {
		return "", nil, fmt.Errorf("encode secrets: %w", err) // json errors here name types, not values
	}
	defer clear(plain)
	keyID, sealed, err := ring.Seal(plain, credentialAAD(id, version))
	if err != nil {
		return "", nil, fmt.Errorf("seal secrets: %w", err)
	}
	return keyID, sealed, nil
}

// openPlain opens a row's sealed secrets at version, or, for a row sealed before the
// version was bound, under the legacy associated data. A blob sealed for another row
// or another version opens under neither, and the error says so. Its errors never
// contain plaintext.
func openPlain(ring *keyring.Keyring, id string, version int64, keyID string, sealed []byte) (plain []byte, legacy bool, err error) {
	plain, err = ring.Open(keyID, sealed, credentialAAD(id, version))
	if err == nil {
		return plain, false, nil
	}
	if plain, lerr := ring.Open(keyID, sealed, legacyCredentialAAD(id)); lerr == nil {
		return plain, true, nil
	}
	if !slices.Contains(ring.IDs(), keyID) {
		return nil, false, fmt.Errorf("decrypt secrets: %w", err)
	}
	return nil, false, fmt.Errorf("decrypt secrets: they were not sealed for this credential at version %d "+
		"(copied from another row, or an older version restored into this one?): %w", version, err)
}

// openSecrets reverses sealSecrets. Its errors never contain plaintext.
func openSecrets(ring *keyring.Keyring, id string, version int64, keyID string, sealed []byte) (Secrets, error) {
	plain, _, err := openPlain(ring, id, version, keyID, sealed)
	if err != nil {
		return Secrets{}, err
	}
	defer clear(plain)
	var secrets Secrets
	if err := json.Unmarshal(plain, &secrets); err != nil {
		// Do not wrap: a syntax error could quote fragments of the plaintext.
		return Secrets{}, fmt.Errorf("decode secrets sealed with key %q: not a valid secrets document", keyID)
	}
	return secrets, nil
}

// checkLeaseRequest validates AcquireLease's arguments, the same for every store.
func checkLeaseRequest(owner string, ttl time.Duration) error {
	if owner == "" {
		// An empty owner is how a free lease is stored; taking it would look free.
		return errors.New("empty owner")
	}
	if ttl <= 0 {
		return fmt.Errorf("lease duration %s is not positive", ttl)
	}
	return nil
}

// leaseSpan converts a lease taken at now for ttl to the stored nanoseconds.
func leaseSpan(now time.Time, ttl time.Duration) (nowNS, expNS int64, err error) {
	if nowNS, err = toNanos(now); err != nil {
		return 0, 0, fmt.Errorf("store clock: %w", err)
	}
	if expNS, err = toNanos(now.Add(ttl)); err != nil {
		return 0, 0, fmt.Errorf("lease expiry: %w", err)
	}
	return nowNS, expNS, nil
}

// checkLeaseHeld decides whether a CompareAndSwap by writer may commit over a row whose
// lease is (owner, expiresNS), at the store's time nowNS: only while writer holds the
// lease and it is live (now < expiry).
func checkLeaseHeld(owner, writer string, expiresNS, nowNS int64) error {
	switch {
	case owner == "":
		return fmt.Errorf("no lease is held (it was released, or never taken, by %q): %w", writer, ErrLeaseLost)
	case owner != writer:
		return fmt.Errorf("the lease is held by %q, not %q: %w", owner, writer, ErrLeaseLost)
	case nowNS >= expiresNS:
		return fmt.Errorf("the lease of %q expired at %s, store time %s: %w", writer,
			fromNanos(expiresNS).Format(time.RFC3339Nano), fromNanos(nowNS).Format(time.RFC3339Nano), ErrLeaseLost)
	}
	return nil
}

// resealAttempts bounds how often Reseal reads a record again after it changed between
// the read and the conditional write. Both stores lock the row for the whole
// transaction, so in practice the first attempt always decides.
const resealAttempts = 5

// resealedRow is what Reseal writes back: the record's secrets, unchanged, under the
// primary key.
type resealedRow struct {
	keyID  string
	sealed []byte
}

// resealSecrets re-encrypts a row's sealed secrets under ring's primary key, bound to
// the row's version. It returns ok == false, and nothing else, when they already are
// sealed so: under the primary key, with the version in the associated data (a row
// sealed before the version was bound is resealed even under the primary key). The
// plaintext is sealed again byte for byte (never decoded), so the document cannot
// change on the way, and it is cleared before returning. Its errors never contain
// plaintext.
func resealSecrets(ring *keyring.Keyring, id string, version int64, keyID string, sealed []byte) (row resealedRow, ok bool, err error) {
	plain, legacy, err := openPlain(ring, id, version, keyID, sealed)
	if err != nil {
		return resealedRow{}, false, err
	}
	defer clear(plain)
	if keyID == ring.PrimaryID() && !legacy {
		return resealedRow{}, false, nil
	}
	newKeyID, newSealed, err := ring.Seal(plain, credentialAAD(id, version))
	if err != nil {
		return resealedRow{}, false, fmt.Errorf("seal secrets: %w", err)
	}
	return resealedRow{keyID: newKeyID, sealed: newSealed}, true, nil
}

// errResealRaced means the row changed between Reseal's read and its conditional write.
var errResealRaced = errors.New("record changed while being resealed")

// resealLoop runs one attempt (a transaction that reads, reseals and conditionally
// writes the row) until it does not report errResealRaced, at most resealAttempts
// times.
func resealLoop(attempt func() (bool, error)) (bool, error) {
	for range resealAttempts - 1 {
		changed, err := attempt()
		if !errors.Is(err, errResealRaced) {
			return changed, err
		}
	}
	return attempt()
}

// keyCountRows is what scanKeyCounts needs of *sql.Rows and pgx.Rows.
type keyCountRows interface {
	Next() bool
	Scan(dest ...any) error
	Err() error
}

// scanKeyCounts reads (key_id, count) rows into a map, empty rather than nil when there
// are no records.
func scanKeyCounts(rows keyCountRows) (map[string]int, error) {
	counts := map[string]int{}
	for rows.Next() {
		var (
			keyID string
			n     int64
		)
		if err := rows.Scan(&keyID, &n); err != nil {
			return nil, err
		}
		counts[keyID] = int(n)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	return counts, nil
}

// rowTimes holds a record's time columns as stored: Unix nanoseconds, 0 for zero.
// rowScanner is what database/sql and pgx rows have in common.
type rowScanner interface {
	Scan(dest ...any) error
}

// scanListed reads one row of List's query (the non-secret columns, in the order both
// stores select them) into a Record without secrets.
func scanListed(row rowScanner) (Record, error) {
	var (
		rec Record
		t   rowTimes
	)
	if err := row.Scan(&rec.ID, &rec.Provider, &rec.Version, &rec.TokenType,
		&t.accessExpires, &t.refreshExpires, &t.updated, &t.lastUsed,
		&rec.Lease.Owner, &t.leaseTaken, &t.leaseExpires); err != nil {
		return Record{}, err
	}
	t.apply(&rec)
	return rec, nil
}

type rowTimes struct {
	accessExpires, refreshExpires, updated, lastUsed int64
	leaseTaken, leaseExpires                         int64
}

func timesOf(rec Record) (rowTimes, error) {
	var t rowTimes
	for _, f := range []struct {
		name string
		in   time.Time
		out  *int64
	}{
		{"access expiry", rec.AccessExpiresAt, &t.accessExpires},
		{"refresh expiry", rec.RefreshExpiresAt, &t.refreshExpires},
		{"updated at", rec.UpdatedAt, &t.updated},
		{"last used at", rec.LastUsedAt, &t.lastUsed},
		{"lease taken at", rec.Lease.TakenAt, &t.leaseTaken},
		{"lease expiry", rec.Lease.ExpiresAt, &t.leaseExpires},
	} {
		ns, err := toNanos(f.in)
		if err != nil {
			return rowTimes{}, fmt.Errorf("%s: %w", f.name, err)
		}
		*f.out = ns
	}
	return t, nil
}

func (t rowTimes) apply(rec *Record) {
	rec.AccessExpiresAt = fromNanos(t.accessExpires)
	rec.RefreshExpiresAt = fromNanos(t.refreshExpires)
	rec.UpdatedAt = fromNanos(t.updated)
	rec.LastUsedAt = fromNanos(t.lastUsed)
	rec.Lease.TakenAt = fromNanos(t.leaseTaken)
	rec.Lease.ExpiresAt = fromNanos(t.leaseExpires)
}

// Unix nanoseconds in an int64 cover 1677-09-21 to 2262-04-11.
var (
	minNanosTime = time.Unix(0, math.MinInt64)
	maxNanosTime = time.Unix(0, math.MaxInt64)
)

// toNanos maps the zero time to 0 and any other time to its Unix nanoseconds. The one
// instant 1970-01-01T00:00:00Z therefore reads back as the zero time, which no
// credential has a reason to use.
func toNanos(t time.Time) (int64, error) {
	if t.IsZero() {
		return 0, nil
	}
	if t.Before(minNanosTime) || t.After(maxNanosTime) {
		return 0, fmt.Errorf("time %s is outside the storable range (years 1678 to 2262)", t.UTC().Format(time.RFC3339))
	}
	return t.UnixNano(), nil
}

func fromNanos(ns int64) time.Time {
	if ns == 0 {
		return time.Time{}
	}
	return time.Unix(0, ns).UTC()
}
