package main

import (
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tokenwarden/tokenwarden/internal/apikeys"
	"github.com/tokenwarden/tokenwarden/internal/config"
	"github.com/tokenwarden/tokenwarden/internal/keyring"
	"github.com/tokenwarden/tokenwarden/internal/store"
	"github.com/tokenwarden/tokenwarden/internal/store/storetest"
	"github.com/tokenwarden/tokenwarden/internal/testnet"
)

// storeEnv gives the starter a private token store configuration: every store variable
// (and envconfig's unprefixed fallbacks) unset, the data directory in t.TempDir() with a
// key file made as the worker makes it, Temporal at a closed port (setTemporalEnv), so
// that a command that tried to reach it would fail, and set on top. It returns the data
// directory.
func storeEnv(t *testing.T, set map[string]string) string {
	t.Helper()
	setTemporalEnv(t)
	names, err := config.VariableNames(&config.Starter{})
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range names {
		if strings.HasPrefix(n, "TOKENWARDEN_TEMPORAL_") || n == "TOKENWARDEN_TASK_QUEUE" {
			continue // pinned by setTemporalEnv
		}
		for _, k := range []string{n, strings.TrimPrefix(n, "TOKENWARDEN_")} {
			t.Setenv(k, "") // restored after the test
			os.Unsetenv(k)
		}
	}
	dataDir := filepath.Join(t.TempDir(), "data")
	if _, err := keyring.GenerateFile(filepath.Join(dataDir, "keys.json")); err != nil {
		t.Fatal(err)
	}
	t.Setenv("TOKENWARDEN_DATA_DIR", dataDir)
	for k, v := range set {
		t.Setenv(k, v)
	}
	return dataDir
}

// openConfiguredStore opens the store of the test's environment from the test itself,
// as the worker would, and puts the credential "crm" in it.
func openConfiguredStore(t *testing.T) store.Store {
	t.Helper()
	cfg, err := config.LoadTokenStore()
	if err != nil {
		t.Fatal(err)
	}
	ring, err := keyring.LoadFile(cfg.KeyFile)
	if err != nil {
		t.Fatal(err)
	}
	st, _, err := store.Open(t.Context(), cfg.Store, cfg.SqlitePath, cfg.PostgresDSN, ring)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if _, err := st.Put(t.Context(), store.Record{ID: "crm", TokenType: "Bearer", Secrets: store.Secrets{AccessToken: "access-crm"}}); err != nil {
		t.Fatal(err)
	}
	return st
}

func TestAPIKeyCommandsSQLite(t *testing.T) {
	storeEnv(t, nil)
	testAPIKeyCommands(t, openConfiguredStore(t))
}

func TestAPIKeyCommandsPostgres(t *testing.T) {
	_, dsn := storetest.PostgresSchema(t)
	storeEnv(t, map[string]string{"TOKENWARDEN_STORE": "postgres", "TOKENWARDEN_POSTGRES_DSN": dsn})
	testAPIKeyCommands(t, openConfiguredStore(t))
}

// testAPIKeyCommands runs every apikey command against st's store, as configured in the
// environment, and checks each outcome in the store itself.
func testAPIKeyCommands(t *testing.T, st store.APIKeys) {
	ctx := t.Context()
	// noSecrets fails if r shows a key, or a stored hash, hex or base64 (as JSON would).
	var keys []string
	noSecrets := func(what string, r result) {
		t.Helper()
		stored, err := st.ListAPIKeys(ctx)
		if err != nil {
			t.Fatal(err)
		}
		out := r.stdout + r.stderr
		for _, k := range stored {
			b, _ := json.Marshal(k.Hash)
			if strings.Contains(out, hex.EncodeToString(k.Hash)) || strings.Contains(out, strings.Trim(string(b), `"`)) {
				t.Errorf("%s shows the hash of key %s:\n%s", what, k.ID, out)
			}
		}
		for _, key := range keys {
			if strings.Contains(out, key[len(apikeys.Prefix)+apikeys.IDLen+1:]) {
				t.Errorf("%s shows a key:\n%s", what, out)
			}
		}
	}

	// create: the key alone on stdout, the rest on stderr.
	r := runStarter(t, "", "apikey", "create", "billing", "-credential", "crm, later")
	r.check(t, exitOK, `created API key "billing"`, "crm, later", `credential "later" is not in the token store`)
	key := strings.TrimSuffix(r.stdout, "\n")
	id, ok := apikeys.Parse(key)
	if !ok || strings.Contains(key, "\n") {
		t.Fatalf("stdout is not one API key line: %q", r.stdout)
	}
	if !strings.Contains(r.stderr, id) || strings.Contains(r.stderr, key) {
		t.Errorf("stderr must name the key ID and not repeat the key:\n%s", r.stderr)
	}
	if strings.Contains(r.stderr, `credential "crm" is not`) {
		t.Errorf("stderr calls a stored credential missing:\n%s", r.stderr)
	}
	// What the token API will compare: the store holds the key's hash, with its scopes.
	stored, err := st.LookupAPIKey(ctx, id)
	if err != nil || stored.Name != "billing" || !slices.Equal(stored.CredentialIDs, []string{"crm", "later"}) ||
		string(stored.Hash) != string(apikeys.Hash(key)) || stored.Revoked() {
		t.Fatalf("stored key = %+v, %v; want billing for crm, later with the key's hash", stored, err)
	}
	keys = append(keys, key)
	noSecrets("create's stderr", result{stderr: r.stderr}) // stdout is the key, once

	// --credential, and -credential repeated.
	r = runStarter(t, "", "apikey", "create", "--credential", "crm", "reports")
	r.check(t, exitOK)
	reports := strings.TrimSpace(r.stdout)
	reportsID, ok := apikeys.Parse(reports)
	if !ok {
		t.Fatalf("create with --credential printed %q", r.stdout)
	}
	keys = append(keys, reports)
	r = runStarter(t, "", "apikey", "create", "multi", "-credential", "crm", "-credential", "other,crm")
	r.check(t, exitOK)
	multiID, _ := apikeys.Parse(strings.TrimSpace(r.stdout))
	keys = append(keys, strings.TrimSpace(r.stdout))
	if k, err := st.LookupAPIKey(ctx, multiID); err != nil || !slices.Equal(k.CredentialIDs, []string{"crm", "other"}) {
		t.Errorf("repeated -credential stored %v, %v; want crm, other", k.CredentialIDs, err)
	}

	// Refusals; none writes anything.
	before, _ := st.ListAPIKeys(ctx)
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"create", "billing", "-credential", "crm"}, exitExists, `an API key named "billing" already exists`},
		{[]string{"create", "has space", "-credential", "crm"}, exitBadInput, "use letters"},
		{[]string{"create", "0123456789abcdef", "-credential", "crm"}, exitBadInput, "looks like a key ID"},
		{[]string{"create", "x", "-credential", "bad/id"}, exitBadInput, "may contain only"},
		{[]string{"create", "x"}, exitBadInput, "needs -credential"},
		{[]string{"create", "x", "-credential", " , "}, exitBadInput, "needs -credential"},
		{[]string{"create", "-credential", "crm"}, exitBadInput, "expected one API key name, got 0"},
		{[]string{"create", "x", "y", "-credential", "crm"}, exitBadInput, "expected one API key name, got 2"},
		{[]string{"create", "x", "-credentials", "crm"}, exitBadInput, "flag provided but not defined: -credentials"},
	} {
		r := runStarter(t, "", append([]string{"apikey"}, tc.args...)...)
		r.check(t, tc.code, tc.want)
		if r.stdout != "" {
			t.Errorf("apikey %q: stdout = %q, want nothing", tc.args, r.stdout)
		}
	}
	if after, _ := st.ListAPIKeys(ctx); len(after) != len(before) {
		t.Errorf("refused creates changed the store: %d keys, want %d", len(after), len(before))
	}

	// list: every key, its scopes and times, never a key or a hash.
	r = runStarter(t, "", "apikey", "list")
	r.check(t, exitOK)
	for _, want := range []string{"NAME", "LAST USED", "billing", id, "crm,later", "reports", reportsID, "multi", "never"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("apikey list does not show %q:\n%s", want, r.stdout)
		}
	}
	noSecrets("list", r)
	r = runStarter(t, "", "apikey", "list", "-json")
	r.check(t, exitOK)
	rows := jsonLines(t, r.stdout)
	if len(rows) != 3 || rows[0]["name"] != "billing" || rows[0]["id"] != id || rows[0]["revoked_at"] != nil {
		t.Errorf("apikey list -json:\n%s", r.stdout)
	}
	for _, row := range rows {
		if _, ok := row["hash"]; ok {
			t.Errorf("apikey list -json has a hash field: %v", row)
		}
	}
	noSecrets("list -json", r)

	// revoke: by name, by ID, twice, unknown, malformed.
	r = runStarter(t, "", "apikey", "revoke", "billing")
	r.check(t, exitOK)
	if !strings.Contains(r.stdout, `revoked API key "billing" (id `+id+")") {
		t.Errorf("apikey revoke billing printed:\n%s", r.stdout)
	}
	k, err := st.LookupAPIKey(ctx, id)
	if err != nil || !k.Revoked() || time.Since(k.RevokedAt) > time.Minute {
		t.Fatalf("billing after revoke: %+v, %v", k, err)
	}
	firstRevocation := k.RevokedAt
	r = runStarter(t, "", "apikey", "revoke", reportsID)
	r.check(t, exitOK)
	if k, err := st.LookupAPIKey(ctx, reportsID); err != nil || !k.Revoked() {
		t.Errorf("reports after revoke by ID: %+v, %v", k, err)
	}
	r = runStarter(t, "", "apikey", "revoke", "billing")
	r.check(t, exitOK)
	if !strings.Contains(r.stdout, "already revoked") {
		t.Errorf("second revoke printed:\n%s", r.stdout)
	}
	if k, _ := st.LookupAPIKey(ctx, id); !k.RevokedAt.Equal(firstRevocation) {
		t.Errorf("a second revoke moved RevokedAt from %s to %s", firstRevocation, k.RevokedAt)
	}
	runStarter(t, "", "apikey", "revoke", "nobody").check(t, exitUnknown, `no API key is named "nobody"`, "starter apikey list")
	runStarter(t, "", "apikey", "revoke", "ffffffffffffffff").check(t, exitUnknown, "no API key")
	runStarter(t, "", "apikey", "revoke", "has space").check(t, exitBadInput, "neither an API key name nor an ID")
	runStarter(t, "", "apikey", "revoke").check(t, exitBadInput, "expected one API key name or ID")
	if k, _ := st.LookupAPIKey(ctx, multiID); k.Revoked() {
		t.Error("revoking others revoked multi")
	}

	r = runStarter(t, "", "apikey", "list", "-json")
	rows = jsonLines(t, r.stdout)
	if len(rows) != 3 || rows[0]["revoked_at"] == nil || rows[1]["name"] != "multi" || rows[1]["revoked_at"] != nil || rows[2]["revoked_at"] == nil {
		t.Errorf("apikey list -json after revoking billing and reports:\n%s", r.stdout)
	}
	runStarter(t, "", "apikey", "list", "extra").check(t, exitBadInput, "takes no arguments")
}

func jsonLines(t *testing.T, s string) []map[string]any {
	t.Helper()
	var rows []map[string]any
	for line := range strings.Lines(s) {
		var row map[string]any
		if err := json.Unmarshal([]byte(line), &row); err != nil {
			t.Fatalf("not JSON lines: %v\n%s", err, s)
		}
		rows = append(rows, row)
	}
	return rows
}

// The commands refuse, before they touch anything, when the store cannot be the
// worker's: no key file, no SQLite file, inconsistent settings.
func TestAPIKeyCommandsNeedTheWorkersStore(t *testing.T) {
	dataDir := storeEnv(t, nil)
	// No tokens.db: the worker never ran with this data directory. Nothing is created.
	r := runStarter(t, "", "apikey", "list")
	r.check(t, exitBadInput, "no token store at "+filepath.Join(dataDir, "tokens.db"), "TOKENWARDEN_DATA_DIR")
	if _, err := os.Stat(filepath.Join(dataDir, "tokens.db")); !os.IsNotExist(err) {
		t.Errorf("apikey list created the store: %v", err)
	}
	runStarter(t, "", "apikey", "create", "x", "-credential", "crm").check(t, exitBadInput, "no token store at")

	t.Setenv("TOKENWARDEN_KEY_FILE", filepath.Join(dataDir, "elsewhere.json"))
	runStarter(t, "", "apikey", "revoke", "x").check(t, exitBadInput, "elsewhere.json", "need the worker's key file", "TOKENWARDEN_KEY_FILE")

	storeEnv(t, map[string]string{"TOKENWARDEN_STORE": "postgres"})
	runStarter(t, "", "apikey", "list").check(t, exitBadInput, "needs TOKENWARDEN_POSTGRES_DSN")
}

// The PostgreSQL DSN may hold a password: a failure names the server, never the DSN.
func TestAPIKeyCommandsHideTheDSN(t *testing.T) {
	const password = "pw-S3CRET-77aa"
	addr := testnet.FreeAddr(t)
	storeEnv(t, map[string]string{
		"TOKENWARDEN_STORE":        "postgres",
		"TOKENWARDEN_POSTGRES_DSN": "postgres://tw:" + password + "@" + addr + "/tokens?sslmode=disable&connect_timeout=5",
	})
	r := runStarter(t, "", "apikey", "list")
	r.check(t, exitFailure, "open token store postgres "+addr+"/tokens")
	if strings.Contains(r.stdout+r.stderr, password) {
		t.Errorf("the output shows the DSN's password:\n%s", r.stderr)
	}
}

// The apikey commands need no Temporal (TOKENWARDEN_TEMPORAL_ADDRESS is a closed port
// throughout these tests); their usage is part of the starter's.
func TestAPIKeyUsage(t *testing.T) {
	storeEnv(t, nil)
	runStarter(t, "", "apikey").check(t, exitBadInput, "usage: starter apikey", "expected a command")
	runStarter(t, "", "apikey", "-h").check(t, exitOK, "usage: starter apikey", "TOKENWARDEN_STORE")
	runStarter(t, "", "apikey", "delete", "x").check(t, exitBadInput, `unknown command "delete"`)
	runStarter(t, "", "apikey", "create", "-h").check(t, exitOK, "usage: starter apikey create", "-credential")
	r := runStarter(t, "", "help")
	r.check(t, exitOK, "apikey create NAME -credential", "apikey revoke NAME|ID", "apikey list", "TOKENWARDEN_POSTGRES_DSN")
}
