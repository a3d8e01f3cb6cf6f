package keyring

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestAddKey(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "keys.json")
	first, err := GenerateFile(path)
	if err != nil {
		t.Fatal(err)
	}
	before, err := LoadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	aad := []byte("tokenwarden/credential/c1")
	_, oldCT, _ := before.Seal([]byte("sealed before"), aad)

	second, prev, err := AddKey(path)
	if err != nil {
		t.Fatalf("AddKey: %v", err)
	}
	if prev != first {
		t.Errorf("previous primary = %q, want %q", prev, first)
	}
	if !strings.HasPrefix(second, "key-") || second == first {
		t.Errorf("new key ID = %q, want key-<UTC time>", second)
	}
	// A second add within the same second gets a distinct ID.
	third, prev, err := AddKey(path)
	if err != nil {
		t.Fatalf("second AddKey: %v", err)
	}
	if third == second || prev != second {
		t.Errorf("second AddKey = %q (previous %q), want a new ID after %q", third, prev, second)
	}

	assertKeyFileMode(t, path)
	ring, err := LoadFile(path)
	if err != nil {
		t.Fatalf("LoadFile after AddKey: %v", err)
	}
	if ring.PrimaryID() != third {
		t.Errorf("primary = %q, want %q", ring.PrimaryID(), third)
	}
	if got := ring.IDs(); len(got) != 3 {
		t.Errorf("IDs = %v, want all three keys", got)
	}
	if pt, err := ring.Open(first, oldCT, aad); err != nil || string(pt) != "sealed before" {
		t.Errorf("old ciphertext after AddKey: %q, %v", pt, err)
	}
	if kid, _, _ := ring.Seal([]byte("x"), nil); kid != third {
		t.Errorf("Seal uses %q, want the new key %q", kid, third)
	}
	assertOnlyFile(t, dir, "keys.json")
}

func TestAddKeyRefusals(t *testing.T) {
	valid := func(t *testing.T) string {
		t.Helper()
		path := filepath.Join(t.TempDir(), "keys.json")
		if _, err := GenerateFile(path); err != nil {
			t.Fatal(err)
		}
		return path
	}
	tests := []struct {
		name    string
		prepare func(t *testing.T) string
		wantErr string
	}{
		{"world readable", func(t *testing.T) string {
			p := valid(t)
			if err := os.Chmod(p, 0o644); err != nil {
				t.Fatal(err)
			}
			return p
		}, "chmod 600"},
		{"missing", func(t *testing.T) string { return filepath.Join(t.TempDir(), "keys.json") }, "does not exist"},
		{"invalid", func(t *testing.T) string {
			p := filepath.Join(t.TempDir(), "keys.json")
			if err := os.WriteFile(p, []byte(`{"primary":"a","keys":{"a":"c2hvcnQ="}}`), 0o600); err != nil {
				t.Fatal(err)
			}
			return p
		}, `key "a" is 5 bytes`},
		{"symlink", func(t *testing.T) string {
			target := valid(t)
			link := filepath.Join(t.TempDir(), "link.json")
			if err := os.Symlink(target, link); err != nil {
				t.Skip(err)
			}
			return link
		}, "symbolic link"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := tt.prepare(t)
			before, _ := os.ReadFile(path)
			if _, _, err := AddKey(path); err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("AddKey error = %v, want it to contain %q", err, tt.wantErr)
			}
			after, _ := os.ReadFile(path)
			if !bytes.Equal(before, after) {
				t.Error("a refused AddKey changed the file")
			}
			assertOnlyFile(t, filepath.Dir(path), filepath.Base(path))
		})
	}
}

func TestRemoveKey(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "keys.json")
	first, err := GenerateFile(path)
	if err != nil {
		t.Fatal(err)
	}
	second, _, err := AddKey(path)
	if err != nil {
		t.Fatal(err)
	}
	ring, _ := LoadFile(path)
	kid, ct, _ := ring.Seal([]byte("new"), nil)

	if err := RemoveKey(path, second); err == nil || !strings.Contains(err.Error(), "primary") {
		t.Errorf("RemoveKey(primary) error = %v, want a refusal", err)
	}
	if err := RemoveKey(path, "nope"); err == nil || !strings.Contains(err.Error(), `holds no key "nope"`) || !strings.Contains(err.Error(), first) {
		t.Errorf("RemoveKey(unknown) error = %v, want one listing the keys", err)
	}
	if err := RemoveKey(path, first); err != nil {
		t.Fatalf("RemoveKey(old): %v", err)
	}
	assertKeyFileMode(t, path)
	ring, err = LoadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if ids := ring.IDs(); len(ids) != 1 || ids[0] != second {
		t.Errorf("IDs after RemoveKey = %v, want [%s]", ids, second)
	}
	if pt, err := ring.Open(kid, ct, nil); err != nil || string(pt) != "new" {
		t.Errorf("Open under the remaining key: %q, %v", pt, err)
	}
	data, _ := os.ReadFile(path)
	if strings.Contains(string(data), first) {
		t.Error("the removed key's ID is still in the file")
	}
	assertOnlyFile(t, dir, "keys.json")
}

func assertKeyFileMode(t *testing.T, path string) {
	t.Helper()
	info, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := info.Mode().Perm(); got != 0o600 {
		t.Errorf("key file mode = %#o, want 0600", got)
	}
}

// assertOnlyFile checks that no temporary file was left behind in dir.
func assertOnlyFile(t *testing.T, dir, name string) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.Name() != name {
			t.Errorf("%s holds %s besides %s", dir, e.Name(), name)
		}
	}
}
