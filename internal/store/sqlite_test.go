package store_test

import (
	"bytes"
	"crypto/rand"
	"database/sql"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tokenwarden/tokenwarden/internal/keyring"
	"github.com/tokenwarden/tokenwarden/internal/store"
	"github.com/tokenwarden/tokenwarden/internal/store/storetest"
)

func randomKey(t *testing.T) []byte {
	t.Helper()
	k := make([]byte, keyring.KeySize)
	if _, err := rand.Read(k); err != nil {
		t.Fatal(err)
	}
	return k
}

func newRing(t *testing.T, primary string, keys map[string][]byte) *keyring.Keyring {
	t.Helper()
	r, err := keyring.New(primary, keys)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func openSQLite(t *testing.T, path string, ring *keyring.Keyring, now func() time.Time) *store.SQLite {
	t.Helper()
	s, err := store.OpenSQLite(t.Context(), path, ring, now)
	if err != nil {
		t.Fatalf("OpenSQLite: %v", err)
	}
	return s
}

// leasedCAS commits as the refresh activity does: under a lease it has just taken.
func leasedCAS(t *testing.T, s store.Store, rec store.Record, expected int64) (store.Record, error) {
	t.Helper()
	const owner = "test-writer"
	if _, err := s.AcquireLease(t.Context(), rec.ID, owner, time.Minute); err != nil {
		t.Fatalf("AcquireLease(%q): %v", rec.ID, err)
	}
	return s.CompareAndSwap(t.Context(), rec, expected, owner)
}

// sqliteRows is storetest.RowAccess on the database file itself.
type sqliteRows struct{ db *sql.DB }

func (r sqliteRows) ReadRow(t *testing.T, id string) storetest.RawRow {
	t.Helper()
	var row storetest.RawRow
	if err := r.db.QueryRowContext(t.Context(), `SELECT version, key_id, secrets FROM credentials WHERE id = ?`, id).
		Scan(&row.Version, &row.KeyID, &row.Sealed); err != nil {
		t.Fatalf("read row %q: %v", id, err)
	}
	return row
}

func (r sqliteRows) WriteRow(t *testing.T, id string, row storetest.RawRow) {
	t.Helper()
	if _, err := r.db.ExecContext(t.Context(), `UPDATE credentials SET version = ?, key_id = ?, secrets = ? WHERE id = ?`,
		row.Version, row.KeyID, row.Sealed, id); err != nil {
		t.Fatalf("write row %q: %v", id, err)
	}
}

func TestSQLiteContract(t *testing.T) {
	storetest.Run(t, storetest.Backend{NewDB: func(t *testing.T) storetest.DB {
		path := filepath.Join(t.TempDir(), "tokens.db")
		raw := rawDB(t, path)
		return storetest.DB{
			Open: func(t *testing.T, ring *keyring.Keyring, now func() time.Time) store.Store {
				return openSQLite(t, path, ring, now)
			},
			Rows: sqliteRows{db: raw},
			SQL: func(t *testing.T, query string, args ...any) {
				t.Helper()
				if _, err := raw.ExecContext(t.Context(), query, args...); err != nil {
					t.Fatalf("raw %s: %v", query, err)
				}
			},
		}
	}})
}

// rawDB opens the database file directly, bypassing the store, to inspect or corrupt
// rows the way an attacker with file access could.
func rawDB(t *testing.T, path string) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(5000)")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func secretRecord(id string) store.Record {
	return store.Record{
		ID:       id,
		Provider: "example-oauth",
		Secrets: store.Secrets{
			AccessToken:  "PLAINTEXT-ACCESS-" + id,
			RefreshToken: "PLAINTEXT-REFRESH-" + id,
			ClientSecret: "PLAINTEXT-CLIENT-" + id,
		},
		TokenType: "Bearer",
	}
}

func TestSQLiteFilesHoldNoPlaintext(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state", "db") // missing parents are created
	path := filepath.Join(dir, "tokens.db")
	ring := newRing(t, "k1", map[string][]byte{"k1": randomKey(t)})
	s := openSQLite(t, path, ring, nil)

	ctx := t.Context()
	r1, err := s.Put(ctx, secretRecord("c1"))
	if err != nil {
		t.Fatal(err)
	}
	next := secretRecord("c1")
	next.Secrets.AccessToken = "PLAINTEXT-ROTATED-ACCESS"
	if _, err := leasedCAS(t, s, next, r1.Version); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Put(ctx, secretRecord("c2")); err != nil {
		t.Fatal(err)
	}

	secrets := []string{"PLAINTEXT-ROTATED-ACCESS"}
	for _, id := range []string{"c1", "c2"} {
		rec := secretRecord(id)
		secrets = append(secrets, rec.Secrets.AccessToken, rec.Secrets.RefreshToken, rec.Secrets.ClientSecret)
	}
	// Also no fragment that would betray the JSON document, in case a test string is
	// ever split across pages.
	secrets = append(secrets, "PLAINTEXT-", `"refresh_token"`)

	scan := func(when string) {
		t.Helper()
		files, err := filepath.Glob(path + "*") // tokens.db, -wal, -shm
		if err != nil {
			t.Fatal(err)
		}
		if len(files) == 0 {
			t.Fatal("no database files found")
		}
		for _, f := range files {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			for _, sec := range secrets {
				if bytes.Contains(data, []byte(sec)) {
					t.Errorf("%s: %s contains %q", when, filepath.Base(f), sec)
				}
			}
			info, err := os.Stat(f)
			if err != nil {
				t.Fatal(err)
			}
			if perm := info.Mode().Perm(); perm != 0o600 {
				t.Errorf("%s: %s mode = %#o, want 0600", when, filepath.Base(f), perm)
			}
		}
	}
	scan("while open")
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	scan("after close")

	info, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if perm := info.Mode().Perm(); perm != 0o700 {
		t.Errorf("database directory mode = %#o, want 0700", perm)
	}
}

func TestSQLiteTightensExistingFileMode(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tokens.db")
	if err := os.WriteFile(path, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	s := openSQLite(t, path, newRing(t, "k1", map[string][]byte{"k1": randomKey(t)}), nil)
	defer s.Close()
	info, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if perm := info.Mode().Perm(); perm != 0o600 {
		t.Fatalf("database mode = %#o, want 0600", perm)
	}
}

func TestSQLiteWrongKeyringFailsLoudly(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tokens.db")
	s := openSQLite(t, path, newRing(t, "k1", map[string][]byte{"k1": randomKey(t)}), nil)
	rec := secretRecord("c1")
	if _, err := s.Put(t.Context(), rec); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name    string
		ring    *keyring.Keyring
		wantErr string
	}{
		// A ring that never had the key: the error says which key is missing.
		{name: "key ID unknown", ring: newRing(t, "k2", map[string][]byte{"k2": randomKey(t)}), wantErr: `key "k1", which this keyring does not hold`},
		// A ring with a different key under the same ID (a regenerated dev key).
		{name: "same ID other key", ring: newRing(t, "k1", map[string][]byte{"k1": randomKey(t)}), wantErr: `key "k1": authentication failed`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := openSQLite(t, path, tt.ring, nil)
			defer s.Close()
			got, err := s.Get(t.Context(), "c1")
			if err == nil {
				t.Fatalf("Get with the wrong keyring succeeded (secrets empty: %v)", got.Secrets == store.Secrets{})
			}
			msg := err.Error()
			if !strings.Contains(msg, tt.wantErr) || !strings.Contains(msg, `"c1"`) {
				t.Errorf("Get error = %q, want it to name the credential and contain %q", msg, tt.wantErr)
			}
			if errors.Is(err, store.ErrNotFound) {
				t.Error("Get error matches ErrNotFound; an undecryptable record is not a missing one")
			}
			for _, sec := range []string{rec.Secrets.AccessToken, rec.Secrets.RefreshToken, rec.Secrets.ClientSecret} {
				if strings.Contains(msg, sec) {
					t.Errorf("Get error leaks a secret: %q", msg)
				}
			}
			// Non-secret operations still work without the key.
			list, err := s.List(t.Context())
			if err != nil || len(list) != 1 || list[0].ID != "c1" {
				t.Errorf("List with the wrong keyring = %v, %v; want [c1]", list, err)
			}
		})
	}
}

func TestSQLiteKeyRotation(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tokens.db")
	oldKey, newKey := randomKey(t), randomKey(t)
	ctx := t.Context()

	s := openSQLite(t, path, newRing(t, "old", map[string][]byte{"old": oldKey}), nil)
	for _, id := range []string{"c1", "c2"} {
		if _, err := s.Put(ctx, secretRecord(id)); err != nil {
			t.Fatal(err)
		}
	}
	s.Close()

	// Rotate: new key primary, old key kept so existing rows stay readable.
	s = openSQLite(t, path, newRing(t, "new", map[string][]byte{"old": oldKey, "new": newKey}), nil)
	for _, id := range []string{"c1", "c2"} {
		got, err := s.Get(ctx, id)
		if err != nil {
			t.Fatalf("Get(%s) after rotation: %v", id, err)
		}
		if got.Secrets != secretRecord(id).Secrets {
			t.Fatalf("Get(%s) after rotation returned different secrets", id)
		}
	}
	// Rewriting c1 re-seals it under the new key; c2 stays on the old one.
	c1, _ := s.Get(ctx, "c1")
	if _, err := leasedCAS(t, s, c1, c1.Version); err != nil {
		t.Fatal(err)
	}
	s.Close()

	keyIDs := map[string]string{}
	rows, err := rawDB(t, path).QueryContext(ctx, `SELECT id, key_id FROM credentials`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var id, kid string
		if err := rows.Scan(&id, &kid); err != nil {
			t.Fatal(err)
		}
		keyIDs[id] = kid
	}
	rows.Close()
	if keyIDs["c1"] != "new" || keyIDs["c2"] != "old" {
		t.Fatalf("key IDs = %v, want c1:new c2:old", keyIDs)
	}

	// With the old key retired, re-sealed rows read and old ones fail naming the key.
	s = openSQLite(t, path, newRing(t, "new", map[string][]byte{"new": newKey}), nil)
	defer s.Close()
	if _, err := s.Get(ctx, "c1"); err != nil {
		t.Fatalf("Get(c1) with only the new key: %v", err)
	}
	if _, err := s.Get(ctx, "c2"); err == nil || !strings.Contains(err.Error(), `"old"`) {
		t.Fatalf("Get(c2) with only the new key error = %v, want one naming key \"old\"", err)
	}
}

func TestSQLiteCiphertextBoundToRow(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tokens.db")
	s := openSQLite(t, path, newRing(t, "k1", map[string][]byte{"k1": randomKey(t)}), nil)
	defer s.Close()
	ctx := t.Context()
	for _, id := range []string{"victim", "attacker"} {
		if _, err := s.Put(ctx, secretRecord(id)); err != nil {
			t.Fatal(err)
		}
	}

	// Someone with write access to the file copies the victim's sealed secrets into the
	// attacker's row, hoping the store will hand them out under the attacker's ID.
	res, err := rawDB(t, path).ExecContext(ctx, `UPDATE credentials
		SET secrets = (SELECT secrets FROM credentials WHERE id = 'victim'),
		    key_id  = (SELECT key_id  FROM credentials WHERE id = 'victim')
		WHERE id = 'attacker'`)
	if err != nil {
		t.Fatal(err)
	}
	if n, _ := res.RowsAffected(); n != 1 {
		t.Fatalf("copied into %d rows, want 1", n)
	}

	_, err = s.Get(ctx, "attacker")
	if err == nil {
		t.Fatal("Get returned another row's secrets")
	}
	if !strings.Contains(err.Error(), "authentication failed") || !strings.Contains(err.Error(), `"k1"`) {
		t.Fatalf("Get error = %v, want an authentication failure naming key \"k1\"", err)
	}
	if _, err := s.Get(ctx, "victim"); err != nil {
		t.Fatalf("victim row damaged: %v", err)
	}
}

func TestSQLiteUsesInjectedClock(t *testing.T) {
	at := time.Date(2026, 11, 26, 18, 30, 0, 987654321, time.FixedZone("x", -7*3600))
	s := openSQLite(t, filepath.Join(t.TempDir(), "tokens.db"),
		newRing(t, "k1", map[string][]byte{"k1": randomKey(t)}), func() time.Time { return at })
	defer s.Close()
	put, err := s.Put(t.Context(), secretRecord("c1"))
	if err != nil {
		t.Fatal(err)
	}
	got, err := s.Get(t.Context(), "c1")
	if err != nil {
		t.Fatal(err)
	}
	for name, u := range map[string]time.Time{"Put": put.UpdatedAt, "Get": got.UpdatedAt} {
		if !u.Equal(at) || u.Location() != time.UTC {
			t.Errorf("%s UpdatedAt = %v, want %v in UTC", name, u, at.UTC())
		}
	}
}

func TestSQLiteSchema(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tokens.db")
	ring := newRing(t, "k1", map[string][]byte{"k1": randomKey(t)})
	ctx := t.Context()

	// Reopening an up-to-date database keeps the data and re-applies nothing.
	s := openSQLite(t, path, ring, nil)
	if _, err := s.Put(ctx, secretRecord("c1")); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s = openSQLite(t, path, ring, nil)
	if _, err := s.Get(ctx, "c1"); err != nil {
		t.Fatalf("Get after reopen: %v", err)
	}
	s.Close()

	db := rawDB(t, path)
	var version int
	var mode string
	if err := db.QueryRowContext(ctx, "PRAGMA user_version").Scan(&version); err != nil {
		t.Fatal(err)
	}
	if err := db.QueryRowContext(ctx, "PRAGMA journal_mode").Scan(&mode); err != nil {
		t.Fatal(err)
	}
	if version != 5 || mode != "wal" {
		t.Fatalf("user_version = %d, journal_mode = %q; want 5, wal", version, mode)
	}

	// A database from a newer tokenwarden is refused rather than misread.
	if _, err := db.ExecContext(ctx, "PRAGMA user_version = 99"); err != nil {
		t.Fatal(err)
	}
	db.Close()
	if _, err := store.OpenSQLite(ctx, path, ring, nil); err == nil || !strings.Contains(err.Error(), "newer") {
		t.Fatalf("OpenSQLite on a newer schema error = %v, want refusal", err)
	}
}

func TestSQLiteRejects(t *testing.T) {
	ring := newRing(t, "k1", map[string][]byte{"k1": randomKey(t)})
	if _, err := store.OpenSQLite(t.Context(), filepath.Join(t.TempDir(), "db"), nil, nil); err == nil {
		t.Error("OpenSQLite with a nil keyring succeeded")
	}
	if _, err := store.OpenSQLite(t.Context(), "", ring, nil); err == nil {
		t.Error("OpenSQLite with an empty path succeeded")
	}

	s := openSQLite(t, filepath.Join(t.TempDir(), "tokens.db"), ring, nil)
	defer s.Close()
	ctx := t.Context()
	if _, err := s.Put(ctx, store.Record{}); err == nil {
		t.Error("Put with an empty ID succeeded")
	}
	rec := secretRecord("c1")
	rec.AccessExpiresAt = time.Date(3000, 1, 1, 0, 0, 0, 0, time.UTC)
	if _, err := s.Put(ctx, rec); err == nil || !strings.Contains(err.Error(), "storable range") {
		t.Errorf("Put with a year-3000 time error = %v, want range error", err)
	}
	if _, err := s.Put(ctx, secretRecord("c1")); err != nil {
		t.Fatal(err)
	}
	if _, err := s.AcquireLease(ctx, "c1", "", time.Minute); err == nil {
		t.Error("AcquireLease with an empty owner succeeded")
	}
	if _, err := s.AcquireLease(ctx, "c1", "a", 0); err == nil {
		t.Error("AcquireLease with a zero duration succeeded")
	}
}

// Special characters in the path must not be taken for URI syntax.
func TestSQLitePathWithURICharacters(t *testing.T) {
	path := filepath.Join(t.TempDir(), "we?ird#dir %41", "tokens.db")
	ring := newRing(t, "k1", map[string][]byte{"k1": randomKey(t)})
	s := openSQLite(t, path, ring, nil)
	if _, err := s.Put(t.Context(), secretRecord("c1")); err != nil {
		t.Fatal(err)
	}
	s.Close()
	// prepareFile creates the file at path regardless, so check that SQLite wrote the
	// data there too, and that nothing else appeared next to it.
	if info, err := os.Stat(path); err != nil || info.Size() == 0 {
		t.Fatalf("database not written at the given path (info %v, err %v)", info, err)
	}
	for _, dir := range []string{filepath.Dir(path), filepath.Dir(filepath.Dir(path))} {
		entries, err := os.ReadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		if len(entries) != 1 {
			var names []string
			for _, e := range entries {
				names = append(names, e.Name())
			}
			t.Errorf("%s holds %v, want a single entry", dir, names)
		}
	}
}
