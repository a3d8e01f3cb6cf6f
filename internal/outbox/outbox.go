// Package outbox keeps token sets that the token store could not take, on the local
// disk, until an attempt commits them.
//
// Once a provider has rotated a refresh token, the new one exists only in the worker's
// memory until the store has it. When the store stays down longer than the refresh
// lease allows the commit to retry, the token set is written here instead: one file
// per credential in a 0700 directory, 0600, fsynced (file and directory) before the
// refresh reports anything, and sealed with the store's keyring under associated data
// naming the credential and the version it becomes, so a file copied to another
// credential or replayed over a later version fails to open. Every later refresh
// attempt of the credential commits the entry before it presents anything to the
// provider (activities/refresh.go).
//
// The outbox is local to one worker's data directory: workers that share a PostgreSQL
// store do not see each other's entries. So an outbox has an ID (a random one, kept in
// the directory, so a restarted worker has the same), and the worker that owns it also
// polls a task queue named after it (TaskQueue): a refresh whose token set may wait
// here is sent to that queue by the workflow, and no other worker presents anything for
// the credential meanwhile (activities/refresh.go).
package outbox

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/tokenwarden/tokenwarden/internal/keyring"
	"github.com/tokenwarden/tokenwarden/internal/store"
)

// Entry is a token set waiting for the store: Record is what CompareAndSwap writes on
// top of version Expected (its Version, UpdatedAt and Lease are ignored).
type Entry struct {
	Record   store.Record
	Expected int64
	// Rotated and RenewableAt are the refresh's result, reported once committed.
	Rotated     bool
	RenewableAt time.Time
}

// Outbox is a directory of entries. It is safe for concurrent use on distinct
// credentials; the refresh lease keeps two attempts off one credential.
type Outbox struct {
	dir  string
	ring *keyring.Keyring
	id   string
}

// idFile holds the outbox's ID in its directory.
const idFile = "outbox-id"

// Open uses (creating it if needed, mode 0700) the directory dir.
func Open(dir string, ring *keyring.Keyring) (*Outbox, error) {
	if dir == "" {
		return nil, errors.New("outbox: empty directory")
	}
	if ring == nil {
		return nil, errors.New("outbox: nil keyring")
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("outbox: create directory %s: %w", dir, err)
	}
	// Also tightens a directory that existed with looser permissions.
	if err := os.Chmod(dir, 0o700); err != nil {
		return nil, fmt.Errorf("outbox: set mode of directory %s: %w", dir, err)
	}
	id, err := loadID(dir)
	if err != nil {
		return nil, err
	}
	return &Outbox{dir: dir, ring: ring, id: id}, nil
}

// loadID reads the directory's ID, or gives it one (durably, before any entry can be
// written under it).
func loadID(dir string) (string, error) {
	path := filepath.Join(dir, idFile)
	b, err := os.ReadFile(path)
	if err == nil {
		id := strings.TrimSpace(string(b))
		if _, perr := uuid.Parse(id); perr != nil {
			return "", fmt.Errorf("outbox: %s does not hold an outbox ID; restore it, or remove it if the directory holds no entry", path)
		}
		return id, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("outbox: read %s: %w", path, err)
	}
	id := uuid.NewString()
	o := &Outbox{dir: dir}
	if err := o.writeDurably(path, []byte(id+"\n")); err != nil {
		return "", fmt.Errorf("outbox: write %s: %w", path, err)
	}
	return id, nil
}

// ID names this outbox directory; it stays the same across restarts.
func (o *Outbox) ID() string { return o.id }

// TaskQueue is the task queue that only the worker owning this outbox polls, next to
// the fleet's queue base: the queue a refresh is routed to while its token set may wait
// here.
func (o *Outbox) TaskQueue(base string) string { return base + "-outbox-" + o.id }

// file is the envelope on disk. Its ID and version are for people reading the
// directory: opening an entry builds the associated data from the ID asked for and
// the version found, so a changed one fails to open.
type file struct {
	CredentialID    string `json:"credential_id"`
	ExpectedVersion int64  `json:"expected_version"`
	KeyID           string `json:"key_id"`
	Sealed          []byte `json:"sealed"`
}

// payload is the sealed part.
type payload struct {
	Provider         string        `json:"provider"`
	Secrets          store.Secrets `json:"secrets"`
	TokenType        string        `json:"token_type,omitempty"`
	AccessExpiresAt  time.Time     `json:"access_expires_at,omitzero"`
	RefreshExpiresAt time.Time     `json:"refresh_expires_at,omitzero"`
	LastUsedAt       time.Time     `json:"last_used_at,omitzero"`
	Rotated          bool          `json:"rotated,omitempty"`
	RenewableAt      time.Time     `json:"renewable_at,omitzero"`
}

// aad names the credential and the version the entry becomes once committed.
func aad(id string, expected int64) []byte {
	return []byte("tokenwarden/outbox/" + id + "/v" + strconv.FormatInt(expected+1, 10))
}

// path names a credential's file by a digest of its ID: IDs may hold dots, and a file
// name must not be a path.
func (o *Outbox) path(id string) string {
	sum := sha256.Sum256([]byte(id))
	return filepath.Join(o.dir, hex.EncodeToString(sum[:])+".json")
}

// Put writes e durably, replacing the credential's previous entry: it returns only
// once the file and the directory entry are on disk. Its errors never contain secrets.
func (o *Outbox) Put(e Entry) error {
	id := e.Record.ID
	if id == "" {
		return errors.New("outbox: entry without a credential ID")
	}
	plain, err := json.Marshal(payload{
		Provider: e.Record.Provider, Secrets: e.Record.Secrets, TokenType: e.Record.TokenType,
		AccessExpiresAt: e.Record.AccessExpiresAt, RefreshExpiresAt: e.Record.RefreshExpiresAt,
		LastUsedAt: e.Record.LastUsedAt, Rotated: e.Rotated, RenewableAt: e.RenewableAt,
	})
	if err != nil {
		return fmt.Errorf("outbox: encode entry of %q: %w", id, err) // json errors here name types, not values
	}
	keyID, sealed, err := o.ring.Seal(plain, aad(id, e.Expected))
	clear(plain)
	if err != nil {
		return fmt.Errorf("outbox: seal entry of %q: %w", id, err)
	}
	body, err := json.Marshal(file{CredentialID: id, ExpectedVersion: e.Expected, KeyID: keyID, Sealed: sealed})
	if err != nil {
		return fmt.Errorf("outbox: encode entry of %q: %w", id, err)
	}
	if err := o.writeDurably(o.path(id), body); err != nil {
		return fmt.Errorf("outbox: write entry of %q: %w", id, err)
	}
	return nil
}

// writeDurably writes a temporary file (0600), fsyncs it, renames it over path and
// fsyncs the directory, so a crash leaves either the old entry or the new one whole.
func (o *Outbox) writeDurably(path string, body []byte) error {
	tmp, err := os.CreateTemp(o.dir, ".entry-*") // created 0600
	if err != nil {
		return err
	}
	done := false
	defer func() {
		if !done {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if _, err := tmp.Write(body); err != nil {
		return err
	}
	if err := tmp.Sync(); err != nil {
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return err
	}
	done = true
	return syncDir(o.dir)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// Get returns the credential's entry, or ok == false when it has none. An entry that
// does not open (another credential's file, a changed version, a key the ring lacks)
// is an error, never an empty entry.
func (o *Outbox) Get(id string) (e Entry, ok bool, err error) {
	body, err := os.ReadFile(o.path(id))
	if errors.Is(err, os.ErrNotExist) {
		return Entry{}, false, nil
	}
	if err != nil {
		return Entry{}, false, fmt.Errorf("outbox: read entry of %q: %w", id, err)
	}
	var f file
	if err := json.Unmarshal(body, &f); err != nil {
		return Entry{}, false, fmt.Errorf("outbox: entry of %q is not a valid outbox file", id)
	}
	plain, err := o.ring.Open(f.KeyID, f.Sealed, aad(id, f.ExpectedVersion))
	if err != nil {
		return Entry{}, false, fmt.Errorf("outbox: open entry of %q (version %d): %w", id, f.ExpectedVersion+1, err)
	}
	defer clear(plain)
	var p payload
	if err := json.Unmarshal(plain, &p); err != nil {
		// Do not wrap: a syntax error could quote fragments of the plaintext.
		return Entry{}, false, fmt.Errorf("outbox: entry of %q does not hold a valid token set", id)
	}
	return Entry{
		Record: store.Record{ID: id, Provider: p.Provider, Secrets: p.Secrets, TokenType: p.TokenType,
			AccessExpiresAt: p.AccessExpiresAt, RefreshExpiresAt: p.RefreshExpiresAt, LastUsedAt: p.LastUsedAt},
		Expected: f.ExpectedVersion, Rotated: p.Rotated, RenewableAt: p.RenewableAt,
	}, true, nil
}

// Remove deletes the credential's entry, durably; a missing one is not an error.
func (o *Outbox) Remove(id string) error {
	if err := os.Remove(o.path(id)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("outbox: remove entry of %q: %w", id, err)
	}
	if err := syncDir(o.dir); err != nil {
		return fmt.Errorf("outbox: remove entry of %q: %w", id, err)
	}
	return nil
}

// Len counts the entries waiting, for the worker's start-up log.
func (o *Outbox) Len() (int, error) {
	m, err := filepath.Glob(filepath.Join(o.dir, "*.json"))
	if err != nil {
		return 0, fmt.Errorf("outbox: list %s: %w", o.dir, err)
	}
	return len(m), nil
}
