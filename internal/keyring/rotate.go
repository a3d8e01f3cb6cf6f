package keyring

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// AddKey generates a fresh random key, adds it to the key file at path as the new
// primary and keeps every key already there, so that everything sealed before still
// opens. It returns the new key's ID ("key-" followed by the current UTC time, for
// example key-20261126T183000Z, with a -2, -3... suffix if that ID is taken) and the
// previous primary's.
//
// The file must load as LoadFile would load it (regular file, no group or other
// access, valid content). It is rewritten atomically: the new content goes to a
// temporary file (mode 0600) in the same directory, which is synced and renamed over
// path, so a crash leaves either the old file or the new one. The new file has mode
// 0600 and belongs to the user running AddKey. A symbolic link is refused rather than
// replaced by a regular file. AddKey fails if the file changes while it works; it
// does not guard against two AddKey calls racing each other beyond that.
func AddKey(path string) (keyID, previousPrimary string, err error) {
	key := make([]byte, KeySize)
	defer clear(key)
	if _, err := rand.Read(key); err != nil {
		return "", "", fmt.Errorf("keyring: generate key: %w", err)
	}
	err = rewriteKeyFile(path, func(kf *keyFile) error {
		base := "key-" + time.Now().UTC().Format("20060102T150405Z")
		keyID = base
		for n := 2; kf.Keys[keyID] != ""; n++ {
			keyID = fmt.Sprintf("%s-%d", base, n)
		}
		previousPrimary = kf.Primary
		kf.Keys[keyID] = base64.StdEncoding.EncodeToString(key)
		kf.Primary = keyID
		return nil
	})
	if err != nil {
		return "", "", err
	}
	return keyID, previousPrimary, nil
}

// RemoveKey deletes the key id from the key file at path, rewriting it the way AddKey
// does. It refuses to remove the primary key or a key the file does not hold. Whether
// anything still needs the key (token store rows, Temporal history) is the caller's to
// check: once removed, whatever was sealed under it cannot be read.
func RemoveKey(path, id string) error {
	return rewriteKeyFile(path, func(kf *keyFile) error {
		if _, ok := kf.Keys[id]; !ok {
			ids := slices.Sorted(maps.Keys(kf.Keys))
			return fmt.Errorf("holds no key %q (it holds %s)", id, strings.Join(ids, ", "))
		}
		if id == kf.Primary {
			return fmt.Errorf("key %q is the primary key; add a new primary key first", id)
		}
		delete(kf.Keys, id)
		return nil
	})
}

// rewriteKeyFile loads the key file at path, applies edit and atomically replaces the
// file with the result, after checking that the result is a valid key file.
func rewriteKeyFile(path string, edit func(*keyFile) error) error {
	if info, err := os.Lstat(path); err == nil && info.Mode()&fs.ModeSymlink != 0 {
		return fmt.Errorf("keyring: key file %s is a symbolic link; rewriting it would replace the link with a file, so point the key file setting at the link's target instead", path)
	}
	data, err := readKeyFile(path)
	if err != nil {
		return err
	}
	defer clear(data)
	if _, err := parseKeyFile(data); err != nil {
		return fmt.Errorf("keyring: key file %s: %w", path, err)
	}
	var kf keyFile
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&kf); err != nil { // parseKeyFile accepted it, so this cannot fail
		return fmt.Errorf("keyring: key file %s: invalid JSON: %w", path, err)
	}
	if err := edit(&kf); err != nil {
		return fmt.Errorf("keyring: key file %s: %w", path, err)
	}
	out, err := json.MarshalIndent(kf, "", "  ")
	if err != nil {
		return fmt.Errorf("keyring: encode key file: %w", err)
	}
	out = append(out, '\n')
	defer clear(out)
	if _, err := parseKeyFile(out); err != nil {
		return fmt.Errorf("keyring: new content for key file %s is invalid: %w", path, err)
	}
	return replaceFile(path, data, out)
}

// replaceFile writes data to a temporary file next to path (mode 0600), syncs it and
// renames it over path, unless path no longer holds old.
func replaceFile(path string, old, data []byte) (err error) {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, ".keyring-*.tmp") // CreateTemp uses mode 0600
	if err != nil {
		return fmt.Errorf("keyring: create temporary key file in %s: %w", dir, err)
	}
	tmpName := tmp.Name()
	defer func() {
		if err != nil {
			_ = os.Remove(tmpName)
		}
	}()
	if err := writeSyncClose(tmp, data); err != nil {
		return fmt.Errorf("keyring: write temporary key file %s: %w", tmpName, err)
	}
	if err := os.Chmod(tmpName, 0o600); err != nil {
		return fmt.Errorf("keyring: set mode of temporary key file %s: %w", tmpName, err)
	}
	// A last look, to fail rather than silently drop a key someone else added meanwhile.
	now, err := readKeyFile(path)
	if err != nil {
		return err
	}
	same := bytes.Equal(now, old)
	clear(now)
	if !same {
		return fmt.Errorf("keyring: key file %s changed while it was being edited; nothing was written, run the command again", path)
	}
	if err := os.Rename(tmpName, path); err != nil {
		if errors.Is(err, fs.ErrPermission) {
			return fmt.Errorf("keyring: replace key file %s (its directory must be writable; a read-only mount such as a Docker secret has to be edited where it comes from): %w", path, err)
		}
		return fmt.Errorf("keyring: replace key file %s: %w", path, err)
	}
	return syncDir(dir)
}
