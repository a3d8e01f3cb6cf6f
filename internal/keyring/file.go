package keyring

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"time"
)

// maxKeyFileSize bounds how much LoadFile reads. A real key file is a few hundred bytes
// per key; anything near this limit is not a key file.
const maxKeyFileSize = 1 << 20

// keyFile is the on-disk format:
//
//	{"primary":"<id>","keys":{"<id>":"<base64 (standard encoding) of 32 bytes>"}}
type keyFile struct {
	Primary string            `json:"primary"`
	Keys    map[string]string `json:"keys"`
}

// LoadFile reads a key file and builds a Keyring from it.
//
// It refuses a file that group or others may access in any way: a key file is as
// sensitive as every token it protects, so a loose mode is treated as a mistake to fix
// (chmod 600), not something to work around. It also refuses unknown JSON fields, so
// that a typo such as "primay" is reported instead of ignored.
func LoadFile(path string) (*Keyring, error) {
	data, err := readKeyFile(path)
	if err != nil {
		return nil, err
	}
	ring, err := parseKeyFile(data)
	// The raw file holds every key in base64; drop our copy as soon as we are done.
	clear(data)
	if err != nil {
		return nil, fmt.Errorf("keyring: key file %s: %w", path, err)
	}
	return ring, nil
}

// readKeyFile reads a key file's bytes after checking that it is a regular file that
// neither group nor others may access, and not absurdly large. The caller clears them.
func readKeyFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("keyring: key file %s does not exist (the worker's `make run` creates a development key there on first start): %w", path, err)
		}
		return nil, fmt.Errorf("keyring: open key file: %w", err)
	}
	defer f.Close()

	// Stat the open file rather than the path, so the mode we check belongs to the
	// bytes we read even if the path is swapped in between.
	info, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("keyring: stat key file %s: %w", path, err)
	}
	if !info.Mode().IsRegular() {
		return nil, fmt.Errorf("keyring: key file %s is not a regular file (mode %s)", path, info.Mode())
	}
	// Windows does not carry Unix permission bits; every file looks like 0666 there.
	if runtime.GOOS != "windows" {
		if perm := info.Mode().Perm(); perm&0o077 != 0 {
			return nil, fmt.Errorf("keyring: key file %s has mode %#o, which gives group or others access to the keys; restrict it with: chmod 600 %s",
				path, perm, path)
		}
	}

	data, err := io.ReadAll(io.LimitReader(f, maxKeyFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("keyring: read key file %s: %w", path, err)
	}
	if len(data) > maxKeyFileSize {
		clear(data)
		return nil, fmt.Errorf("keyring: key file %s is larger than %d bytes; it is not a key file", path, maxKeyFileSize)
	}
	return data, nil
}

// parseKeyFile decodes the JSON key file format. Its errors describe positions and field
// names, never key material: encoding/json syntax errors carry offsets, and base64
// errors carry the offset of the bad byte only.
func parseKeyFile(data []byte) (*Keyring, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var kf keyFile
	if err := dec.Decode(&kf); err != nil {
		return nil, fmt.Errorf("invalid JSON (want {\"primary\":\"<id>\",\"keys\":{\"<id>\":\"<base64 of 32 bytes>\"}}): %w", err)
	}
	if dec.More() {
		return nil, errors.New("invalid JSON: unexpected data after the key object")
	}
	if kf.Primary == "" {
		return nil, errors.New(`"primary" is missing or empty`)
	}
	if len(kf.Keys) == 0 {
		return nil, errors.New(`"keys" is missing or empty`)
	}
	keys := make(map[string][]byte, len(kf.Keys))
	defer func() {
		for _, k := range keys {
			clear(k)
		}
	}()
	for id, enc := range kf.Keys {
		raw, err := base64.StdEncoding.DecodeString(enc)
		if err != nil {
			return nil, fmt.Errorf("key %q is not valid standard base64: %w", id, err)
		}
		keys[id] = raw
	}
	return New(kf.Primary, keys)
}

// GenerateFile writes a new key file at path holding one fresh random key, which is
// primary, and returns its ID ("dev-" followed by the current UTC time, for example
// dev-20261126T183000Z).
//
// It never overwrites: if path exists, it fails. A missing parent directory is created
// with mode 0700; the file gets mode 0600. The file is written to a temporary name in
// the same directory, synced, and then hard-linked into place, which fails atomically if
// path appeared in the meantime. A crash therefore leaves either no key file or a
// complete one, never a truncated file at path.
func GenerateFile(path string) (keyID string, err error) {
	dir := filepath.Dir(path)
	if err := ensureDir(dir); err != nil {
		return "", err
	}
	if _, err := os.Lstat(path); err == nil {
		return "", fmt.Errorf("keyring: refusing to overwrite existing key file %s", path)
	} else if !errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("keyring: check key file %s: %w", path, err)
	}

	keyID = "dev-" + time.Now().UTC().Format("20060102T150405Z")
	key := make([]byte, KeySize)
	defer clear(key)
	if _, err := rand.Read(key); err != nil {
		return "", fmt.Errorf("keyring: generate key: %w", err)
	}
	data, err := json.MarshalIndent(keyFile{
		Primary: keyID,
		Keys:    map[string]string{keyID: base64.StdEncoding.EncodeToString(key)},
	}, "", "  ")
	if err != nil {
		return "", fmt.Errorf("keyring: encode key file: %w", err)
	}
	data = append(data, '\n')
	defer clear(data)

	if err := writeNewFile(dir, path, data); err != nil {
		return "", err
	}
	return keyID, nil
}

// ensureDir creates dir with mode 0700 if it does not exist. An existing directory is
// left alone: it may be shared, and its mode is its owner's decision.
func ensureDir(dir string) error {
	if _, err := os.Stat(dir); err == nil {
		return nil
	} else if !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("keyring: check key directory %s: %w", dir, err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("keyring: create key directory %s: %w", dir, err)
	}
	// MkdirAll applies the umask; make the leaf exactly 0700 regardless.
	if err := os.Chmod(dir, 0o700); err != nil {
		return fmt.Errorf("keyring: set mode of key directory %s: %w", dir, err)
	}
	return nil
}

// writeNewFile puts data at path with mode 0600 without ever exposing a partial file at
// path and without replacing an existing one.
func writeNewFile(dir, path string, data []byte) (err error) {
	tmp, err := os.CreateTemp(dir, ".keyring-*.tmp") // CreateTemp uses mode 0600
	if err != nil {
		return fmt.Errorf("keyring: create temporary key file in %s: %w", dir, err)
	}
	tmpName := tmp.Name()
	// The temporary name is removed in every case: after a successful link, path is the
	// file's only name we want.
	defer func() {
		if rmErr := os.Remove(tmpName); rmErr != nil && !errors.Is(rmErr, fs.ErrNotExist) && err == nil {
			err = fmt.Errorf("keyring: remove temporary key file %s: %w", tmpName, rmErr)
		}
	}()
	if err := writeSyncClose(tmp, data); err != nil {
		return fmt.Errorf("keyring: write temporary key file %s: %w", tmpName, err)
	}

	// link(2), unlike rename(2), fails with EEXIST instead of replacing the target, so
	// a key file that appeared since our Lstat is never clobbered.
	linkErr := os.Link(tmpName, path)
	switch {
	case linkErr == nil:
	case errors.Is(linkErr, fs.ErrExist):
		return fmt.Errorf("keyring: refusing to overwrite existing key file %s", path)
	default:
		// Some filesystems have no hard links. Fall back to an exclusive create: a crash
		// mid-write could leave a truncated file, but LoadFile rejects it (a prefix of
		// the JSON object is never valid JSON), so it is never accepted silently.
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			if errors.Is(err, fs.ErrExist) {
				return fmt.Errorf("keyring: refusing to overwrite existing key file %s", path)
			}
			return fmt.Errorf("keyring: create key file %s (hard link failed too: %v): %w", path, linkErr, err)
		}
		if err := writeSyncClose(f, data); err != nil {
			_ = os.Remove(path)
			return fmt.Errorf("keyring: write key file %s: %w", path, err)
		}
	}
	// The umask can only remove bits from 0600, but be exact: LoadFile demands no group
	// or other bits and we want the owner to be able to read it.
	if err := os.Chmod(path, 0o600); err != nil {
		return fmt.Errorf("keyring: set mode of key file %s: %w", path, err)
	}
	return syncDir(dir)
}

func writeSyncClose(f *os.File, data []byte) error {
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// syncDir makes the new directory entry durable, so that after a crash the key file is
// either there or not, not lost after the caller already used it.
func syncDir(dir string) error {
	if runtime.GOOS == "windows" {
		return nil // directories cannot be opened for sync there
	}
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("keyring: open key directory %s for sync: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("keyring: sync key directory %s: %w", dir, err)
	}
	return nil
}
