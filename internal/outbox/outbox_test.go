package outbox_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tokenwarden/tokenwarden/internal/keyring"
	"github.com/tokenwarden/tokenwarden/internal/keyring/keyringtest"
	"github.com/tokenwarden/tokenwarden/internal/outbox"
	"github.com/tokenwarden/tokenwarden/internal/store"
)

func newOutbox(t *testing.T) (*outbox.Outbox, string) {
	t.Helper()
	ring := keyringtest.Random(t)
	dir := filepath.Join(t.TempDir(), "outbox")
	o, err := outbox.Open(dir, ring)
	if err != nil {
		t.Fatal(err)
	}
	return o, dir
}

func entry(id string) outbox.Entry {
	return outbox.Entry{
		Record: store.Record{ID: id, Provider: "oauth2", TokenType: "Bearer",
			Secrets:         store.Secrets{AccessToken: "AT-" + id + "-s3cr3t", RefreshToken: "RT-" + id + "-s3cr3t", ClientSecret: "CS-s3cr3t"},
			AccessExpiresAt: time.Date(2031, 3, 14, 10, 0, 0, 0, time.UTC)},
		Expected: 4, Rotated: true, RenewableAt: time.Date(2031, 3, 14, 9, 30, 0, 0, time.UTC),
	}
}

func TestRoundTripModesAndRemove(t *testing.T) {
	o, dir := newOutbox(t)
	if _, ok, err := o.Get("c1"); ok || err != nil {
		t.Fatalf("Get on an empty outbox: ok %v, err %v", ok, err)
	}
	want := entry("c1")
	if err := o.Put(want); err != nil {
		t.Fatal(err)
	}
	got, ok, err := o.Get("c1")
	if err != nil || !ok {
		t.Fatalf("Get: ok %v, err %v", ok, err)
	}
	if got.Record.Secrets != want.Record.Secrets || got.Expected != 4 || !got.Rotated ||
		!got.RenewableAt.Equal(want.RenewableAt) || !got.Record.AccessExpiresAt.Equal(want.Record.AccessExpiresAt) ||
		got.Record.Provider != "oauth2" || got.Record.TokenType != "Bearer" || got.Record.ID != "c1" {
		t.Fatalf("Get returned another entry: version %d, rotated %v", got.Expected, got.Rotated)
	}
	files, _ := filepath.Glob(filepath.Join(dir, "*"))
	if len(files) != 2 || filepath.Base(files[1]) != "outbox-id" {
		t.Fatalf("outbox files %v, want the entry and the ID file (no temporary left behind)", files)
	}
	for path, mode := range map[string]os.FileMode{dir: 0o700, files[0]: 0o600, files[1]: 0o600} {
		if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != mode {
			t.Errorf("%s: mode %v (%v), want %o", path, fi.Mode().Perm(), err, mode)
		}
	}
	body, _ := os.ReadFile(files[0])
	for _, s := range []string{"s3cr3t", "refresh_token", "access_token"} {
		if strings.Contains(string(body), s) {
			t.Errorf("the file holds %q in plaintext", s)
		}
	}
	if n, err := o.Len(); n != 1 || err != nil {
		t.Errorf("Len = %d, %v; want 1", n, err)
	}
	if err := o.Remove("c1"); err != nil {
		t.Fatal(err)
	}
	if err := o.Remove("c1"); err != nil {
		t.Fatalf("removing a missing entry: %v", err)
	}
	if _, ok, err := o.Get("c1"); ok || err != nil {
		t.Fatalf("Get after Remove: ok %v, err %v", ok, err)
	}
}

// The associated data names the credential and the version: a file moved to another
// credential's name, or edited to claim another version, does not open.
func TestEntryBoundToCredentialAndVersion(t *testing.T) {
	o, dir := newOutbox(t)
	for _, id := range []string{"c1", "c2"} {
		if err := o.Put(entry(id)); err != nil {
			t.Fatal(err)
		}
	}
	name := func(id string) string {
		files, _ := filepath.Glob(filepath.Join(dir, "*.json"))
		for _, f := range files {
			body, _ := os.ReadFile(f)
			var env struct {
				CredentialID string `json:"credential_id"`
			}
			if json.Unmarshal(body, &env) == nil && env.CredentialID == id {
				return f
			}
		}
		t.Fatalf("no file for %s", id)
		return ""
	}
	c1, c2 := name("c1"), name("c2")
	body, _ := os.ReadFile(c1)
	if err := os.WriteFile(c2, body, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, err := o.Get("c2"); err == nil {
		t.Error("c1's entry opened as c2's")
	}

	var env map[string]any
	if err := json.Unmarshal(body, &env); err != nil {
		t.Fatal(err)
	}
	env["expected_version"] = 9
	changed, _ := json.Marshal(env)
	if err := os.WriteFile(c1, changed, 0o600); err != nil {
		t.Fatal(err)
	}
	_, _, err := o.Get("c1")
	if err == nil {
		t.Fatal("an entry with a changed version opened")
	}
	if strings.Contains(err.Error(), "s3cr3t") {
		t.Errorf("error holds a secret: %v", err)
	}
}

// The ID names the directory, not the process: a worker restarted on the same data
// directory polls the same outbox queue, another directory gets another queue, and a
// damaged ID file stops the worker rather than silently moving its queue.
func TestIDSurvivesRestartsAndNamesTheQueue(t *testing.T) {
	o, dir := newOutbox(t)
	other, _ := newOutbox(t)
	if o.ID() == "" || o.ID() == other.ID() {
		t.Fatalf("IDs %q and %q: want two different non-empty ones", o.ID(), other.ID())
	}
	ring, err := keyring.New("k2", map[string][]byte{"k2": make([]byte, keyring.KeySize)})
	if err != nil {
		t.Fatal(err)
	}
	again, err := outbox.Open(dir, ring)
	if err != nil {
		t.Fatal(err)
	}
	if again.ID() != o.ID() {
		t.Fatalf("reopened outbox has ID %q, want %q", again.ID(), o.ID())
	}
	if q := o.TaskQueue("tokenwarden"); q != "tokenwarden-outbox-"+o.ID() {
		t.Fatalf("TaskQueue = %q", q)
	}
	if n, err := o.Len(); err != nil || n != 0 {
		t.Fatalf("Len = %d, %v: the ID file is not an entry", n, err)
	}
	if err := os.WriteFile(filepath.Join(dir, "outbox-id"), []byte("not an id\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := outbox.Open(dir, ring); err == nil || !strings.Contains(err.Error(), "does not hold an outbox ID") {
		t.Fatalf("Open with a damaged ID file: %v", err)
	}
}
