package store_test

import (
	"crypto/rand"
	"database/sql"
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
			AtRest: func(t *testing.T) map[string][]byte { return databaseFiles(t, path) },
		}
	}})
}

// databaseFiles reads the database's files: tokens.db, and -wal and -shm while they
// exist.
func databaseFiles(t *testing.T, path string) map[string][]byte {
	t.Helper()
	files, err := filepath.Glob(path + "*")
	if err != nil {
		t.Fatal(err)
	}
	contents := map[string][]byte{}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		contents[filepath.Base(f)] = data
	}
	return contents
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

// The database files are the owner's alone, from the first write (storetest's
// NoPlaintextAtRest checks what they hold), and so is a directory created for them.
func TestSQLiteFileModes(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state", "db") // missing parents are created
	path := filepath.Join(dir, "tokens.db")
	s := openSQLite(t, path, newRing(t, "k1", map[string][]byte{"k1": randomKey(t)}), nil)
	if _, err := s.Put(t.Context(), secretRecord("c1")); err != nil {
		t.Fatal(err)
	}

	check := func(when string) {
		t.Helper()
		files, err := filepath.Glob(path + "*") // tokens.db, -wal, -shm
		if err != nil {
			t.Fatal(err)
		}
		if len(files) == 0 {
			t.Fatal("no database files found")
		}
		for _, f := range files {
			info, err := os.Stat(f)
			if err != nil {
				t.Fatal(err)
			}
			if perm := info.Mode().Perm(); perm != 0o600 {
				t.Errorf("%s: %s mode = %#o, want 0600", when, filepath.Base(f), perm)
			}
		}
	}
	check("while open")
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	check("after close")

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

func TestSQLiteSchema(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tokens.db")
	ring := newRing(t, "k1", map[string][]byte{"k1": randomKey(t)})
	ctx := t.Context()

	// Reopening an up-to-date database re-applies nothing (that it keeps the data is
	// storetest's ReopenKeepsRecords).
	openSQLite(t, path, ring, nil).Close()
	openSQLite(t, path, ring, nil).Close()

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

// OpenSQLite refuses a missing keyring or path; what an open store refuses is
// storetest's InvalidArgumentsRefused.
func TestSQLiteRejects(t *testing.T) {
	ring := newRing(t, "k1", map[string][]byte{"k1": randomKey(t)})
	if _, err := store.OpenSQLite(t.Context(), filepath.Join(t.TempDir(), "db"), nil, nil); err == nil {
		t.Error("OpenSQLite with a nil keyring succeeded")
	}
	if _, err := store.OpenSQLite(t.Context(), "", ring, nil); err == nil {
		t.Error("OpenSQLite with an empty path succeeded")
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
