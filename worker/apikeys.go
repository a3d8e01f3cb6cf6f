package main

// API key commands for the token API (tokenapi.go): -apikey-create, -apikey-revoke and
// -apikey-list. Each runs against the configured token store (SQLite or PostgreSQL) and
// exits; none needs Temporal, and all are safe while workers run (a worker looks the
// key up on every request, so a revocation applies to the next one).
//
// A key reads twk_<id>_<secret>: id is 16 hex digits (8 random bytes), public, and
// names the key in the store, the logs and these commands; secret is 32 random bytes
// in lower-case base32. The store keeps only SHA-256(key). A slow password hash
// (bcrypt, scrypt, Argon2) exists to make guessing a human-chosen password from its
// hash expensive; a key of 256 random bits cannot be guessed whatever the hash costs,
// so the slowness would buy nothing and would cost every request tens of milliseconds
// of CPU, which an unauthenticated caller could spend at will.

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base32"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/tokenwarden/tokenwarden/internal/config"
	"github.com/tokenwarden/tokenwarden/internal/keyring"
	"github.com/tokenwarden/tokenwarden/internal/store"
	"github.com/tokenwarden/tokenwarden/workflows"
)

const (
	apiKeyPrefix    = "twk_"
	apiKeyIDBytes   = 8
	apiKeyIDLen     = 2 * apiKeyIDBytes // hex
	apiKeySecretLen = 52                // 32 bytes in unpadded base32
	apiKeyLen       = len(apiKeyPrefix) + apiKeyIDLen + 1 + apiKeySecretLen
	maxAPIKeyName   = 64
)

var apiKeySecretEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// generateAPIKey returns a new key, its ID and the hash to store.
func generateAPIKey() (key, id string, hash []byte, err error) {
	var b [apiKeyIDBytes + 32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", "", nil, fmt.Errorf("generate API key: %w", err)
	}
	id = hex.EncodeToString(b[:apiKeyIDBytes])
	key = apiKeyPrefix + id + "_" + apiKeySecretEncoding.EncodeToString(b[apiKeyIDBytes:])
	clear(b[:])
	return key, id, hashAPIKey(key), nil
}

// hashAPIKey is what the store keeps of a key: SHA-256 of the whole key string, so the
// ID part is bound to the secret part.
func hashAPIKey(key string) []byte {
	h := sha256.Sum256([]byte(key))
	return h[:]
}

// parseAPIKey returns the ID of a well-formed key. It never echoes the input.
func parseAPIKey(key string) (id string, ok bool) {
	if len(key) != apiKeyLen || !strings.HasPrefix(key, apiKeyPrefix) || key[len(apiKeyPrefix)+apiKeyIDLen] != '_' {
		return "", false
	}
	id = key[len(apiKeyPrefix) : len(apiKeyPrefix)+apiKeyIDLen]
	if !isKeyID(id) {
		return "", false
	}
	for _, c := range key[len(apiKeyPrefix)+apiKeyIDLen+1:] {
		if !('a' <= c && c <= 'z' || '2' <= c && c <= '7') {
			return "", false
		}
	}
	return id, true
}

// isKeyID reports whether s has the form of a key ID: 16 lower-case hex digits.
func isKeyID(s string) bool {
	if len(s) != apiKeyIDLen {
		return false
	}
	for _, c := range s {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// validAPIKeyName accepts 1-64 letters, digits, '.', '_', '-', starting with a letter
// or digit, and not of a key ID's form (so that -apikey-revoke NAME|ID is unambiguous).
func validAPIKeyName(name string) error {
	if name == "" || len(name) > maxAPIKeyName {
		return fmt.Errorf("API key name must be 1-%d characters", maxAPIKeyName)
	}
	for i, r := range name {
		alnum := 'a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9'
		if !alnum && (i == 0 || (r != '.' && r != '_' && r != '-')) {
			return fmt.Errorf("API key name %q: use letters, digits, '.', '_' and '-', starting with a letter or digit", name)
		}
	}
	if isKeyID(name) {
		return fmt.Errorf("API key name %q looks like a key ID (16 hex digits); choose another", name)
	}
	return nil
}

// apiKeyCommands are the API key flags; at most one command may be given.
type apiKeyCommands struct {
	create      string // name
	credentials string // for create: ID[,ID...]
	revoke      string // name or ID
	list        bool
}

func (c *apiKeyCommands) register(flags *flag.FlagSet) {
	flags.StringVar(&c.create, "apikey-create", "", "create a token API key `NAME` scoped to -credential, print it once and exit")
	flags.StringVar(&c.credentials, "credential", "", "with -apikey-create: the credential `ID[,ID...]` the key may read")
	flags.StringVar(&c.revoke, "apikey-revoke", "", "revoke the token API key `NAME|ID` and exit")
	flags.BoolVar(&c.list, "apikey-list", false, "list the token API keys (never the keys themselves) and exit")
}

func (c apiKeyCommands) count() int {
	n := 0
	for _, set := range []bool{c.create != "", c.revoke != "", c.list} {
		if set {
			n++
		}
	}
	return n
}

// runAPIKeyCommand runs the command c names and returns its exit code: 0 done, 1
// failed, 2 refused (bad input, unknown key, name taken).
func runAPIKeyCommand(c apiKeyCommands, cfg config.Worker, stdout, stderr io.Writer) int {
	if c.credentials != "" && c.create == "" {
		fmt.Fprintln(stderr, "worker: -credential goes with -apikey-create")
		return 2
	}
	var credIDs []string
	if c.create != "" {
		if err := validAPIKeyName(c.create); err != nil {
			fmt.Fprintf(stderr, "worker: -apikey-create: %v\n", err)
			return 2
		}
		for id := range strings.SplitSeq(c.credentials, ",") {
			if id = strings.TrimSpace(id); id == "" {
				continue
			}
			if err := workflows.ValidateID(id); err != nil {
				fmt.Fprintf(stderr, "worker: -credential: credential %v\n", err)
				return 2
			}
			credIDs = append(credIDs, id)
		}
		if len(credIDs) == 0 {
			fmt.Fprintln(stderr, "worker: -apikey-create needs -credential ID[,ID...]: the credentials the key may read")
			return 2
		}
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ring, err := keyring.LoadFile(cfg.KeyFile)
	if err != nil {
		fmt.Fprintf(stderr, "worker: %v\n", err)
		return 2
	}
	tokens, _, err := openStore(ctx, cfg, ring)
	if err != nil {
		fmt.Fprintf(stderr, "worker: open token store: %v\n", err)
		return 1
	}
	defer tokens.Close()

	switch {
	case c.create != "":
		return createAPIKey(ctx, tokens, c.create, credIDs, stdout, stderr)
	case c.revoke != "":
		return revokeAPIKey(ctx, tokens, c.revoke, time.Now(), stdout, stderr)
	default:
		return listAPIKeys(ctx, tokens, stdout, stderr)
	}
}

// createAPIKey stores a new key and prints it, alone, on stdout (KEY=$(worker
// -apikey-create ...) works); everything else goes to stderr.
func createAPIKey(ctx context.Context, st store.Store, name string, credIDs []string, stdout, stderr io.Writer) int {
	key, id, hash, err := generateAPIKey()
	if err != nil {
		fmt.Fprintf(stderr, "worker: %v\n", err)
		return 1
	}
	created, err := st.CreateAPIKey(ctx, store.APIKey{ID: id, Name: name, CredentialIDs: credIDs, Hash: hash})
	if errors.Is(err, store.ErrAPIKeyExists) {
		fmt.Fprintf(stderr, "worker: -apikey-create: an API key named %q already exists (revoked keys keep their names); choose another name\n", name)
		return 2
	}
	if err != nil {
		fmt.Fprintf(stderr, "worker: -apikey-create: %v\n", err)
		return 1
	}
	// A key may be created before its credential is seeded: say so, do not refuse.
	if recs, err := st.List(ctx); err == nil {
		known := map[string]bool{}
		for _, r := range recs {
			known[r.ID] = true
		}
		for _, cid := range created.CredentialIDs {
			if !known[cid] {
				fmt.Fprintf(stderr, "worker: note: credential %q is not in the token store (yet); the key gets 404 for it until it is seeded\n", cid)
			}
		}
	}
	fmt.Fprintf(stderr, "created API key %q (id %s) for %s; it is printed below once and is not stored anywhere: keep it now\n",
		created.Name, created.ID, strings.Join(created.CredentialIDs, ", "))
	fmt.Fprintln(stdout, key)
	return 0
}

// revokeAPIKey revokes the key named or identified by ref.
func revokeAPIKey(ctx context.Context, st store.Store, ref string, now time.Time, stdout, stderr io.Writer) int {
	keys, err := st.ListAPIKeys(ctx)
	if err != nil {
		fmt.Fprintf(stderr, "worker: -apikey-revoke: %v\n", err)
		return 1
	}
	var match *store.APIKey
	for i := range keys {
		if keys[i].ID == ref || keys[i].Name == ref {
			if match != nil && match.ID != keys[i].ID {
				fmt.Fprintf(stderr, "worker: -apikey-revoke: %q names key %s and is the ID of key %s; give the ID\n", ref, match.ID, keys[i].ID)
				return 2
			}
			match = &keys[i]
		}
	}
	if match == nil {
		fmt.Fprintf(stderr, "worker: -apikey-revoke: no API key is named %q or has that ID (worker -apikey-list shows them)\n", ref)
		return 2
	}
	if match.Revoked() {
		fmt.Fprintf(stdout, "API key %q (id %s) was already revoked at %s\n", match.Name, match.ID, formatTime(match.RevokedAt, ""))
		return 0
	}
	k, err := st.RevokeAPIKey(ctx, match.ID, now)
	if err != nil {
		fmt.Fprintf(stderr, "worker: -apikey-revoke: %v\n", err)
		return 1
	}
	fmt.Fprintf(stdout, "revoked API key %q (id %s) at %s; running workers refuse it from their next request on\n", k.Name, k.ID, formatTime(k.RevokedAt, ""))
	return 0
}

// listAPIKeys prints one line per key: never the key, which is not stored.
func listAPIKeys(ctx context.Context, st store.Store, stdout, stderr io.Writer) int {
	keys, err := st.ListAPIKeys(ctx)
	if err != nil {
		fmt.Fprintf(stderr, "worker: -apikey-list: %v\n", err)
		return 1
	}
	if len(keys) == 0 {
		fmt.Fprintln(stdout, "no API keys (create one with worker -apikey-create NAME -credential ID)")
		return 0
	}
	tw := tabwriter.NewWriter(stdout, 1, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tID\tCREDENTIALS\tCREATED\tREVOKED\tLAST USED")
	for _, k := range keys {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", k.Name, k.ID, strings.Join(k.CredentialIDs, ","),
			formatTime(k.CreatedAt, "-"), formatTime(k.RevokedAt, "-"), formatTime(k.LastUsedAt, "never"))
	}
	if err := tw.Flush(); err != nil {
		fmt.Fprintf(stderr, "worker: -apikey-list: %v\n", err)
		return 1
	}
	return 0
}

func formatTime(t time.Time, zero string) string {
	if t.IsZero() {
		return zero
	}
	return t.UTC().Format(time.RFC3339)
}
