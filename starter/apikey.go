package main

// starter apikey create|revoke|list: the token API's keys (internal/apikeys), managed
// in the worker's token store. These commands need the store and the key file, never
// Temporal: they read the worker's store settings (TOKENWARDEN_DATA_DIR, _KEY_FILE,
// _SQLITE_PATH, _STORE, _POSTGRES_DSN; config.TokenStore) and are safe while workers
// run, which look a key up on every request.
//
// create prints the new key alone on stdout, once, so that KEY=$(starter apikey create
// ...) captures it; notes and the summary go to stderr. Nothing prints a key's hash or
// the PostgreSQL DSN. No key file, or an ambiguous reference, is bad input
// (apikeyFailure maps the rest).

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
	"time"

	"github.com/tokenwarden/tokenwarden/internal/apikeys"
	"github.com/tokenwarden/tokenwarden/internal/config"
	"github.com/tokenwarden/tokenwarden/internal/keyring"
	"github.com/tokenwarden/tokenwarden/internal/store"
)

const apikeyUsage = `usage: starter apikey <command> [flags]

commands:
  create NAME -credential ID[,ID...]   create a token API key that may read these credentials;
                                       the key is printed alone on stdout, once, and never again
  revoke NAME|ID                       revoke a key; workers refuse it from their next request on
  list [-json]                         list the keys: name, ID, credentials, created, revoked,
                                       last used (never a key or its hash)

They work on the worker's token store, not Temporal: run them where the worker's key
file and store settings are (TOKENWARDEN_DATA_DIR, TOKENWARDEN_KEY_FILE,
TOKENWARDEN_STORE with TOKENWARDEN_SQLITE_PATH or TOKENWARDEN_POSTGRES_DSN).
Exit codes: 0 ok, 1 failure, 2 bad input, 4 unknown key, 5 name taken.
`

func (a *app) apikey(ctx context.Context, args []string) error {
	if len(args) == 0 {
		fmt.Fprint(a.stderr, apikeyUsage)
		return fail(exitBadInput, "expected a command: create, revoke or list")
	}
	switch args[0] {
	case "-h", "-help", "--help", "help":
		fmt.Fprint(a.stderr, apikeyUsage)
		return nil
	case "create":
		return a.apikeyCreate(ctx, args[1:])
	case "revoke":
		return a.apikeyRevoke(ctx, args[1:])
	case "list":
		return a.apikeyList(ctx, args[1:])
	default:
		fmt.Fprint(a.stderr, apikeyUsage)
		return fail(exitBadInput, "unknown command %q: expected create, revoke or list", args[0])
	}
}

// credentialList collects -credential values: each may hold several IDs separated by
// commas, and the flag may be repeated (a plain string flag would keep only the last).
type credentialList []string

func (l *credentialList) String() string { return strings.Join(*l, ",") }

func (l *credentialList) Set(v string) error {
	*l = append(*l, v)
	return nil
}

func (a *app) apikeyCreate(ctx context.Context, args []string) error {
	fs := a.newFlags("apikey create", "apikey create NAME -credential ID[,ID...]")
	var creds credentialList
	fs.Var(&creds, "credential", "the credential `ID[,ID...]` the key may read (may be repeated)")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		fs.Usage()
		return fail(exitBadInput, "expected one API key name, got %d arguments", len(pos))
	}
	// Input is checked before the key file and the store are touched.
	if err := apikeys.ValidName(pos[0]); err != nil {
		return fail(exitBadInput, "%v", err)
	}
	ids, err := apikeys.ParseCredentialIDs(creds.String())
	if err != nil {
		return fail(exitBadInput, "%v", err)
	}
	st, desc, err := openTokenStore(ctx)
	if err != nil {
		return err
	}
	defer st.Close()
	created, err := apikeys.Create(ctx, st, pos[0], ids)
	if err != nil {
		return apikeyFailure(err)
	}
	return apikeys.WriteCreated(a.stdout, a.stderr, created, desc)
}

func (a *app) apikeyRevoke(ctx context.Context, args []string) error {
	fs := a.newFlags("apikey revoke", "apikey revoke NAME|ID")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		fs.Usage()
		return fail(exitBadInput, "expected one API key name or ID, got %d arguments", len(pos))
	}
	if err := apikeys.CheckRef(pos[0]); err != nil {
		return fail(exitBadInput, "%v", err)
	}
	st, _, err := openTokenStore(ctx)
	if err != nil {
		return err
	}
	defer st.Close()
	revoked, err := apikeys.Revoke(ctx, st, pos[0], time.Now())
	if err != nil {
		return apikeyFailure(err)
	}
	fmt.Fprintln(a.stdout, revoked.Message())
	return nil
}

func (a *app) apikeyList(ctx context.Context, args []string) error {
	fs := a.newFlags("apikey list", "apikey list [-json]")
	asJSON := fs.Bool("json", false, "print JSON lines: name, id, credentials, created_at, revoked_at, last_used_at")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 0 {
		return fail(exitBadInput, "apikey list takes no arguments, got %q", pos)
	}
	st, _, err := openTokenStore(ctx)
	if err != nil {
		return err
	}
	defer st.Close()
	keys, err := apikeys.List(ctx, st)
	if err != nil {
		return apikeyFailure(err)
	}
	if *asJSON {
		return apikeys.WriteJSON(a.stdout, keys)
	}
	return apikeys.WriteTable(a.stdout, keys)
}

// apikeyFailure gives an error of internal/apikeys the starter's exit code.
func apikeyFailure(err error) error {
	switch {
	case errors.Is(err, apikeys.ErrNameTaken):
		return fail(exitExists, "%v", err)
	case errors.Is(err, apikeys.ErrUnknownKey):
		return fail(exitUnknown, "%v (starter apikey list shows the keys)", err)
	case errors.Is(err, apikeys.ErrInvalidInput), errors.Is(err, apikeys.ErrAmbiguous):
		return fail(exitBadInput, "%v", err)
	}
	return fail(exitFailure, "%v", err)
}

// openTokenStore opens the worker's token store as the worker would (store.Open, from
// the same settings), and returns its description for messages (never the DSN).
func openTokenStore(ctx context.Context) (store.Store, string, error) {
	cfg, err := config.LoadTokenStore()
	if err != nil {
		return nil, "", fail(exitBadInput, "%v", err)
	}
	where := fmt.Sprintf("run it where the worker's key file and token store settings are (%s_KEY_FILE, %s_DATA_DIR, %s_STORE, %s_SQLITE_PATH, %s_POSTGRES_DSN)",
		config.Prefix, config.Prefix, config.Prefix, config.Prefix, config.Prefix)
	ring, err := keyring.LoadFile(cfg.KeyFile)
	if err != nil {
		return nil, "", fail(exitBadInput, "%v\nthe apikey commands need the worker's key file: %s", err, where)
	}
	if cfg.Store == config.StoreSQLite {
		// The worker creates its SQLite file on first start; a missing one means another
		// directory than the worker's. Creating it here would hand out keys that no
		// worker ever sees.
		if _, err := os.Stat(cfg.SqlitePath); errors.Is(err, fs.ErrNotExist) {
			return nil, "", fail(exitBadInput, "no token store at %s (the worker creates it on its first start); %s", cfg.SqlitePath, where)
		}
	}
	st, desc, err := store.Open(ctx, cfg.Store, cfg.SqlitePath, cfg.PostgresDSN, ring)
	if err != nil {
		return nil, "", fail(exitFailure, "open token store %s: %v", desc, err)
	}
	return st, desc, nil
}
