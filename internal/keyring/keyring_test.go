package keyring

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func randomKey(t *testing.T) []byte {
	t.Helper()
	k := make([]byte, KeySize)
	if _, err := rand.Read(k); err != nil {
		t.Fatal(err)
	}
	return k
}

func mustNew(t *testing.T, primary string, keys map[string][]byte) *Keyring {
	t.Helper()
	k, err := New(primary, keys)
	if err != nil {
		t.Fatalf("New(%q): %v", primary, err)
	}
	return k
}

func TestNewValidation(t *testing.T) {
	good := randomKey(t)
	tests := []struct {
		name    string
		primary string
		keys    map[string][]byte
		wantErr string // substring; empty means success
	}{
		{name: "ok", primary: "a", keys: map[string][]byte{"a": good}},
		{name: "ok two keys", primary: "b", keys: map[string][]byte{"a": good, "b": randomKey(t)}},
		{name: "no keys", primary: "a", keys: nil, wantErr: "no keys"},
		{name: "primary missing", primary: "b", keys: map[string][]byte{"a": good}, wantErr: `primary key "b" is not among`},
		{name: "primary empty", primary: "", keys: map[string][]byte{"a": good}, wantErr: "primary key ID is empty"},
		{name: "short key", primary: "a", keys: map[string][]byte{"a": good[:16]}, wantErr: "16 bytes, want 32"},
		{name: "long key", primary: "a", keys: map[string][]byte{"a": append(bytes.Clone(good), 0)}, wantErr: "33 bytes, want 32"},
		{name: "empty id", primary: "a", keys: map[string][]byte{"a": good, "": good}, wantErr: "empty key ID"},
		{name: "space in id", primary: "a b", keys: map[string][]byte{"a b": good}, wantErr: "whitespace"},
		{name: "tab in id", primary: "a\tb", keys: map[string][]byte{"a\tb": good}, wantErr: "whitespace"},
		{name: "newline in id", primary: "a", keys: map[string][]byte{"a": good, "x\n": good}, wantErr: "whitespace"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k, err := New(tt.primary, tt.keys)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("New: %v", err)
				}
				if k.PrimaryID() != tt.primary {
					t.Fatalf("PrimaryID = %q, want %q", k.PrimaryID(), tt.primary)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("New error = %v, want it to contain %q", err, tt.wantErr)
			}
		})
	}
}

func TestNewCopiesKeys(t *testing.T) {
	key := randomKey(t)
	k := mustNew(t, "a", map[string][]byte{"a": key})
	_, ct, err := k.Seal([]byte("hello"), nil)
	if err != nil {
		t.Fatal(err)
	}
	clear(key) // the caller zeroing its copy must not affect the ring
	if _, err := k.Open("a", ct, nil); err != nil {
		t.Fatalf("Open after caller zeroed key: %v", err)
	}
}

func TestSealOpen(t *testing.T) {
	keyA := randomKey(t)
	ring := mustNew(t, "a", map[string][]byte{"a": keyA})
	// Same ID, different bytes: what a wrong key file looks like.
	impostor := mustNew(t, "a", map[string][]byte{"a": randomKey(t)})
	other := mustNew(t, "b", map[string][]byte{"b": randomKey(t)})

	const secret = "refresh-token-do-not-leak"
	aad := []byte("tokenwarden/credential/c1")
	id, ct, err := ring.Seal([]byte(secret), aad)
	if err != nil {
		t.Fatal(err)
	}
	if id != "a" {
		t.Fatalf("Seal key ID = %q, want a", id)
	}
	if len(ct) != 12+len(secret)+16 {
		t.Fatalf("ciphertext length = %d, want nonce+plaintext+tag = %d", len(ct), 12+len(secret)+16)
	}
	if bytes.Contains(ct, []byte(secret)) {
		t.Fatal("ciphertext contains the plaintext")
	}

	tampered := bytes.Clone(ct)
	tampered[len(tampered)/2] ^= 0x01
	tamperedNonce := bytes.Clone(ct)
	tamperedNonce[0] ^= 0x80

	tests := []struct {
		name    string
		ring    *Keyring
		keyID   string
		ct      []byte
		aad     []byte
		wantErr string
	}{
		{name: "round trip", ring: ring, keyID: "a", ct: ct, aad: aad},
		{name: "wrong key ID", ring: ring, keyID: "b", ct: ct, aad: aad, wantErr: `key "b", which this keyring does not hold`},
		{name: "ring without the key", ring: other, keyID: "a", ct: ct, aad: aad, wantErr: `key "a", which this keyring does not hold`},
		{name: "tampered ciphertext", ring: ring, keyID: "a", ct: tampered, aad: aad, wantErr: `key "a": authentication failed`},
		{name: "tampered nonce", ring: ring, keyID: "a", ct: tamperedNonce, aad: aad, wantErr: `key "a": authentication failed`},
		{name: "truncated", ring: ring, keyID: "a", ct: ct[:20], aad: aad, wantErr: "truncated or corrupt"},
		{name: "empty", ring: ring, keyID: "a", ct: nil, aad: aad, wantErr: "truncated or corrupt"},
		{name: "wrong AAD", ring: ring, keyID: "a", ct: ct, aad: []byte("tokenwarden/credential/c2"), wantErr: `key "a": authentication failed`},
		{name: "missing AAD", ring: ring, keyID: "a", ct: ct, aad: nil, wantErr: `key "a": authentication failed`},
		{name: "same ID other key", ring: impostor, keyID: "a", ct: ct, aad: aad, wantErr: `key "a": authentication failed`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.ring.Open(tt.keyID, tt.ct, tt.aad)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("Open: %v", err)
				}
				if string(got) != secret {
					t.Fatalf("Open = %q, want %q", got, secret)
				}
				return
			}
			if err == nil {
				t.Fatalf("Open succeeded (%q), want error containing %q", got, tt.wantErr)
			}
			if got != nil {
				t.Fatalf("Open returned plaintext %q alongside error", got)
			}
			msg := err.Error()
			if !strings.Contains(msg, tt.wantErr) {
				t.Fatalf("Open error = %q, want it to contain %q", msg, tt.wantErr)
			}
			if strings.Contains(msg, secret) || strings.Contains(msg, base64.StdEncoding.EncodeToString(keyA)) || strings.Contains(msg, string(keyA)) {
				t.Fatalf("Open error leaks secret or key material: %q", msg)
			}
		})
	}
}

func TestSealNoncesDiffer(t *testing.T) {
	ring := mustNew(t, "a", map[string][]byte{"a": randomKey(t)})
	_, ct1, _ := ring.Seal([]byte("same"), nil)
	_, ct2, _ := ring.Seal([]byte("same"), nil)
	if bytes.Equal(ct1[:12], ct2[:12]) || bytes.Equal(ct1, ct2) {
		t.Fatal("two seals of the same plaintext produced the same nonce or ciphertext")
	}
}

func TestRotation(t *testing.T) {
	oldKey, newKey := randomKey(t), randomKey(t)
	before := mustNew(t, "old", map[string][]byte{"old": oldKey})
	aad := []byte("row-1")
	oldID, oldCT, err := before.Seal([]byte("written before rotation"), aad)
	if err != nil {
		t.Fatal(err)
	}

	during := mustNew(t, "new", map[string][]byte{"old": oldKey, "new": newKey})
	got, err := during.Open(oldID, oldCT, aad)
	if err != nil || string(got) != "written before rotation" {
		t.Fatalf("rotated ring Open(old) = %q, %v", got, err)
	}
	newID, newCT, err := during.Seal([]byte("written after rotation"), aad)
	if err != nil {
		t.Fatal(err)
	}
	if newID != "new" {
		t.Fatalf("rotated ring sealed with %q, want new", newID)
	}

	// After the old key is retired, new ciphertexts still open and old ones fail loudly.
	after := mustNew(t, "new", map[string][]byte{"new": newKey})
	if got, err := after.Open(newID, newCT, aad); err != nil || string(got) != "written after rotation" {
		t.Fatalf("retired ring Open(new) = %q, %v", got, err)
	}
	if _, err := after.Open(oldID, oldCT, aad); err == nil || !strings.Contains(err.Error(), `"old"`) {
		t.Fatalf("retired ring Open(old) error = %v, want unknown key \"old\"", err)
	}
	// The pre-rotation ring cannot read post-rotation data.
	if _, err := before.Open(newID, newCT, aad); err == nil {
		t.Fatal("old ring opened a ciphertext sealed with the new key")
	}
}

func TestPrintingHidesKeys(t *testing.T) {
	key := randomKey(t)
	ring := mustNew(t, "a", map[string][]byte{"a": key})
	for _, s := range []string{fmt.Sprint(ring), fmt.Sprintf("%+v", ring), fmt.Sprintf("%v", *ring), fmt.Sprintf("%#v", *ring)} {
		if strings.Contains(s, base64.StdEncoding.EncodeToString(key)) || strings.Contains(s, string(key)) || strings.Contains(s, fmt.Sprint(key)) {
			t.Fatalf("printed keyring shows key material: %s", s)
		}
	}
}

// writeKeyFile writes content at a fresh path with the given mode (set exactly,
// bypassing the umask).
func writeKeyFile(t *testing.T, content string, mode os.FileMode) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "keys.json")
	if err := os.WriteFile(path, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestLoadFile(t *testing.T) {
	k1, k2 := randomKey(t), randomKey(t)
	b64 := base64.StdEncoding.EncodeToString
	valid := fmt.Sprintf(`{"primary":"k2","keys":{"k1":%q,"k2":%q}}`, b64(k1), b64(k2))

	tests := []struct {
		name    string
		content string
		mode    os.FileMode
		missing bool
		wantErr []string // all must appear; nil means success
	}{
		{name: "valid 0600", content: valid, mode: 0o600},
		{name: "valid 0400", content: valid, mode: 0o400},
		{name: "group and other readable 0644", content: valid, mode: 0o644, wantErr: []string{"mode 0644", "chmod 600 "}},
		{name: "group readable 0640", content: valid, mode: 0o640, wantErr: []string{"mode 0640", "chmod 600 "}},
		{name: "other writable 0602", content: valid, mode: 0o602, wantErr: []string{"mode 0602", "chmod 600 "}},
		{name: "missing", missing: true, wantErr: []string{"does not exist", "make run", "development key"}},
		{name: "bad JSON", content: `{"primary":"k1","keys":`, mode: 0o600, wantErr: []string{"invalid JSON"}},
		{name: "empty file", content: "", mode: 0o600, wantErr: []string{"invalid JSON"}},
		{name: "trailing data", content: valid + `{}`, mode: 0o600, wantErr: []string{"unexpected data"}},
		{name: "unknown field", content: fmt.Sprintf(`{"primay":"k1","keys":{"k1":%q}}`, b64(k1)), mode: 0o600, wantErr: []string{"primay"}},
		{name: "no primary", content: fmt.Sprintf(`{"keys":{"k1":%q}}`, b64(k1)), mode: 0o600, wantErr: []string{`"primary" is missing`}},
		{name: "no keys", content: `{"primary":"k1","keys":{}}`, mode: 0o600, wantErr: []string{`"keys" is missing`}},
		{name: "primary not in keys", content: fmt.Sprintf(`{"primary":"k9","keys":{"k1":%q}}`, b64(k1)), mode: 0o600, wantErr: []string{`"k9" is not among`}},
		{name: "short key", content: fmt.Sprintf(`{"primary":"k1","keys":{"k1":%q}}`, b64(k1[:31])), mode: 0o600, wantErr: []string{`key "k1" is 31 bytes, want 32`}},
		{name: "bad base64", content: `{"primary":"k1","keys":{"k1":"not base64!"}}`, mode: 0o600, wantErr: []string{`key "k1" is not valid standard base64`}},
		{name: "url base64", content: fmt.Sprintf(`{"primary":"k1","keys":{"k1":%q}}`, strings.Repeat("-_", 21)+"-A="), mode: 0o600, wantErr: []string{"not valid standard base64"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var path string
			if tt.missing {
				path = filepath.Join(t.TempDir(), "nope", "keys.json")
			} else {
				path = writeKeyFile(t, tt.content, tt.mode)
			}
			ring, err := LoadFile(path)
			if tt.wantErr == nil {
				if err != nil {
					t.Fatalf("LoadFile: %v", err)
				}
				if ring.PrimaryID() != "k2" {
					t.Fatalf("PrimaryID = %q, want k2", ring.PrimaryID())
				}
				// Both keys usable: k1 via a ring built directly from it.
				_, ct, _ := mustNew(t, "k1", map[string][]byte{"k1": k1}).Seal([]byte("x"), nil)
				if _, err := ring.Open("k1", ct, nil); err != nil {
					t.Fatalf("loaded ring cannot open k1 ciphertext: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatal("LoadFile succeeded, want error")
			}
			msg := err.Error()
			for _, want := range tt.wantErr {
				if !strings.Contains(msg, want) {
					t.Errorf("LoadFile error = %q, want it to contain %q", msg, want)
				}
			}
			if !strings.Contains(msg, path) {
				t.Errorf("LoadFile error = %q, want it to name the path", msg)
			}
			if strings.Contains(msg, b64(k1)) || strings.Contains(msg, b64(k2)) {
				t.Errorf("LoadFile error leaks key material: %q", msg)
			}
		})
	}
}

func TestLoadFileRejectsDirectory(t *testing.T) {
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadFile(dir); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Fatalf("LoadFile(dir) error = %v, want not a regular file", err)
	}
}

func TestGenerateFile(t *testing.T) {
	base := t.TempDir()
	dir := filepath.Join(base, "state", "keys") // two missing levels
	path := filepath.Join(dir, "keyring.json")

	id, err := GenerateFile(path)
	if err != nil {
		t.Fatalf("GenerateFile: %v", err)
	}
	if !strings.HasPrefix(id, "dev-") || !strings.HasSuffix(id, "Z") {
		t.Fatalf("key ID = %q, want dev-<UTC time>Z", id)
	}

	info, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := info.Mode().Perm(); got != 0o600 {
		t.Errorf("key file mode = %#o, want 0600", got)
	}
	dinfo, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if got := dinfo.Mode().Perm(); got != 0o700 {
		t.Errorf("key directory mode = %#o, want 0700", got)
	}

	// No temporary files are left behind.
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 || entries[0].Name() != "keyring.json" {
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		t.Errorf("directory holds %v, want only keyring.json", names)
	}

	ring, err := LoadFile(path)
	if err != nil {
		t.Fatalf("LoadFile(generated): %v", err)
	}
	if ring.PrimaryID() != id {
		t.Fatalf("loaded PrimaryID = %q, want %q", ring.PrimaryID(), id)
	}
	kid, ct, _ := ring.Seal([]byte("s"), []byte("aad"))
	if pt, err := ring.Open(kid, ct, []byte("aad")); err != nil || string(pt) != "s" {
		t.Fatalf("generated ring round trip = %q, %v", pt, err)
	}

	// Refuses to overwrite, and the existing key survives.
	before, _ := os.ReadFile(path)
	if _, err := GenerateFile(path); err == nil || !strings.Contains(err.Error(), "refusing to overwrite") {
		t.Fatalf("second GenerateFile error = %v, want refusal to overwrite", err)
	}
	after, _ := os.ReadFile(path)
	if !bytes.Equal(before, after) {
		t.Fatal("second GenerateFile changed the existing key file")
	}
}

func TestGenerateFileKeepsExistingDirMode(t *testing.T) {
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o750); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "k.json")
	if _, err := GenerateFile(path); err != nil {
		t.Fatal(err)
	}
	info, _ := os.Stat(dir)
	if got := info.Mode().Perm(); got != 0o750 {
		t.Errorf("existing directory mode changed to %#o", got)
	}
	if info, _ := os.Stat(path); info.Mode().Perm() != 0o600 {
		t.Errorf("key file mode = %#o, want 0600", info.Mode().Perm())
	}
}

func TestDerive(t *testing.T) {
	k := mustNew(t, "a", map[string][]byte{"a": randomKey(t), "b": randomKey(t)})
	d, err := k.Derive("tokenwarden/test/v1")
	if err != nil {
		t.Fatal(err)
	}
	if d.PrimaryID() != "a" || len(d.IDs()) != 2 {
		t.Fatalf("derived ring %s", d)
	}
	again, _ := k.Derive("tokenwarden/test/v1")
	other, _ := k.Derive("tokenwarden/other/v1")
	id, sealed, _ := d.Seal([]byte("x"), nil)
	if _, err := again.Open(id, sealed, nil); err != nil {
		t.Fatalf("the same label derives the same keys: %v", err)
	}
	if _, err := k.Open(id, sealed, nil); err == nil {
		t.Fatal("the parent ring opened what the derived ring sealed")
	}
	if _, err := other.Open(id, sealed, nil); err == nil {
		t.Fatal("another label opened it")
	}
	if _, err := k.Derive(""); err == nil {
		t.Fatal("an empty label was accepted")
	}
}
