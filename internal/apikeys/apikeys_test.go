package apikeys_test

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tokenwarden/tokenwarden/internal/apikeys"
	"github.com/tokenwarden/tokenwarden/internal/keyring"
	"github.com/tokenwarden/tokenwarden/internal/store"
	"github.com/tokenwarden/tokenwarden/internal/store/storetest"
)

func secretPart(key string) string { return key[len(apikeys.Prefix)+apikeys.IDLen+1:] }

func TestFormat(t *testing.T) {
	seen := map[string]bool{}
	for range 100 {
		key, id, hash, err := apikeys.Generate()
		if err != nil {
			t.Fatal(err)
		}
		got, ok := apikeys.Parse(key)
		if !ok || got != id || len(key) != apikeys.KeyLen || !bytes.Equal(hash, apikeys.Hash(key)) || len(hash) != store.APIKeyHashSize {
			t.Fatalf("generated key does not parse back: ok %v id %q want %q", ok, got, id)
		}
		if !apikeys.IsID(id) || len(secretPart(key)) != apikeys.SecretLen {
			t.Fatalf("generated key has an ID of %d or a secret of %d characters", len(id), len(secretPart(key)))
		}
		if seen[key] || seen[id] {
			t.Fatal("generated the same key twice")
		}
		seen[key], seen[id] = true, true
	}
	key, _, _, _ := apikeys.Generate()
	for _, bad := range []string{"", key[:len(key)-1], key + "a", strings.ToUpper(key), "twx" + key[3:],
		key[:len(apikeys.Prefix)+apikeys.IDLen] + "-" + secretPart(key), key[:len(key)-1] + "1", key[:5] + "g" + key[6:]} {
		if _, ok := apikeys.Parse(bad); ok {
			t.Errorf("Parse accepted a malformed key (variant of %d chars)", len(bad))
		}
	}
	// The hash binds the ID to the secret: the same secret under another ID differs.
	other := apikeys.Prefix + "0123456789abcdef" + key[len(apikeys.Prefix)+apikeys.IDLen:]
	if bytes.Equal(apikeys.Hash(key), apikeys.Hash(other)) {
		t.Error("Hash ignores the ID part")
	}
}

func TestIsID(t *testing.T) {
	for s, want := range map[string]bool{
		"0123456789abcdef": true, "0123456789ABCDEF": false, "0123456789abcde": false,
		"0123456789abcdef0": false, "0123456789abcdeg": false, "": false,
	} {
		if got := apikeys.IsID(s); got != want {
			t.Errorf("IsID(%q) = %v, want %v", s, got, want)
		}
	}
}

func TestValidName(t *testing.T) {
	for _, ok := range []string{"billing", "a", "App-2.prod_x", "0app", strings.Repeat("n", apikeys.MaxNameLen), "0123456789abcdeg"} {
		if err := apikeys.ValidName(ok); err != nil {
			t.Errorf("ValidName(%q) = %v, want nil", ok, err)
		}
	}
	for name, want := range map[string]string{
		"": "1-64 characters",
		strings.Repeat("n", apikeys.MaxNameLen+1): "1-64 characters",
		"-x":               "starting with a letter or digit",
		".x":               "starting with a letter or digit",
		"has space":        "use letters",
		"a/b":              "use letters",
		"0123456789abcdef": "looks like a key ID",
	} {
		err := apikeys.ValidName(name)
		if err == nil || !strings.Contains(err.Error(), want) || !errors.Is(err, apikeys.ErrInvalidInput) {
			t.Errorf("ValidName(%q) = %v, want an ErrInvalidInput mentioning %q", name, err, want)
		}
	}
}

func TestParseCredentialIDs(t *testing.T) {
	ids, err := apikeys.ParseCredentialIDs(" crm, later ,,crm-2 ")
	if err != nil || !slices.Equal(ids, []string{"crm", "later", "crm-2"}) {
		t.Errorf("ParseCredentialIDs = %q, %v", ids, err)
	}
	for list, want := range map[string]string{"": "no credential IDs", " , ": "no credential IDs", "crm,bad/id": "may contain only"} {
		_, err := apikeys.ParseCredentialIDs(list)
		if err == nil || !strings.Contains(err.Error(), want) || !errors.Is(err, apikeys.ErrInvalidInput) {
			t.Errorf("ParseCredentialIDs(%q) = %v, want an ErrInvalidInput mentioning %q", list, err, want)
		}
	}
}

// A Created printed or logged by mistake must not show the key.
func TestSecretDoesNotPrint(t *testing.T) {
	key, _, _, _ := apikeys.Generate()
	c := apikeys.Created{Key: apikeys.Secret(key), Info: apikeys.Info{Name: "x"}}
	var out []string
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%X", "%d", "%t"} {
		out = append(out, fmt.Sprintf(verb, c), fmt.Sprintf(verb, c.Key))
	}
	out = append(out, fmt.Sprint(c.Key), c.Key.String())
	b, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	out = append(out, string(b))
	var logged bytes.Buffer
	slog.New(slog.NewTextHandler(&logged, nil)).Info("x", "created", c, "key", c.Key)
	slog.New(slog.NewJSONHandler(&logged, nil)).Info("x", "created", c, "key", c.Key)
	out = append(out, logged.String())
	for _, o := range out {
		if strings.Contains(o, secretPart(key)) || strings.Contains(strings.ToLower(o), hex.EncodeToString([]byte(secretPart(key)))[:20]) {
			t.Errorf("the key shows in %q", o)
		}
	}
	if c.Key.Reveal() != key {
		t.Error("Reveal does not return the key")
	}
}

// openSQLite opens a fresh SQLite store under a fresh key file.
func openSQLite(t *testing.T) store.Store {
	t.Helper()
	dir := t.TempDir()
	ring := newRing(t, dir)
	st, _, err := store.Open(t.Context(), store.BackendSQLite, filepath.Join(dir, "tokens.db"), "", ring)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// openPostgres opens a store in a fresh schema of the test PostgreSQL server.
func openPostgres(t *testing.T) store.Store {
	t.Helper()
	_, dsn := storetest.PostgresSchema(t)
	st, _, err := store.Open(t.Context(), store.BackendPostgres, "", dsn, newRing(t, t.TempDir()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

func newRing(t *testing.T, dir string) *keyring.Keyring {
	t.Helper()
	path := filepath.Join(dir, "keys.json")
	if _, err := keyring.GenerateFile(path); err != nil {
		t.Fatal(err)
	}
	ring, err := keyring.LoadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return ring
}

func TestOperationsSQLite(t *testing.T)   { testOperations(t, openSQLite(t)) }
func TestOperationsPostgres(t *testing.T) { testOperations(t, openPostgres(t)) }

func testOperations(t *testing.T, st store.Store) {
	ctx := t.Context()
	if _, err := st.Put(ctx, store.Record{ID: "crm", TokenType: "Bearer", Secrets: store.Secrets{AccessToken: "access-crm"}}); err != nil {
		t.Fatal(err)
	}

	keys, err := apikeys.List(ctx, st)
	if err != nil || len(keys) != 0 {
		t.Fatalf("List of an empty store = %v, %v", keys, err)
	}

	c, err := apikeys.Create(ctx, st, "billing", []string{"later", "crm"})
	if err != nil {
		t.Fatal(err)
	}
	key := c.Key.Reveal()
	id, ok := apikeys.Parse(key)
	if !ok || id != c.Info.ID || c.Info.Name != "billing" || !slices.Equal(c.Info.CredentialIDs, []string{"crm", "later"}) ||
		c.Info.CreatedAt.IsZero() || c.Info.Revoked() {
		t.Fatalf("Create = %+v (key well formed: %v)", c.Info, ok)
	}
	if !slices.Equal(c.Missing, []string{"later"}) || c.CheckErr != nil {
		t.Errorf("Missing = %q (%v), want [later]", c.Missing, c.CheckErr)
	}
	// The store holds the hash of the key and nothing from which to get it back.
	stored, err := st.LookupAPIKey(ctx, id)
	if err != nil || !bytes.Equal(stored.Hash, apikeys.Hash(key)) {
		t.Fatalf("stored hash is not Hash(key): %v", err)
	}

	// Refusals write nothing.
	for _, tc := range []struct {
		name  string
		creds []string
		want  error
	}{
		{"billing", []string{"crm"}, apikeys.ErrNameTaken},
		{"bad name", []string{"crm"}, apikeys.ErrInvalidInput},
		{"0123456789abcdef", []string{"crm"}, apikeys.ErrInvalidInput},
		{"reports", nil, apikeys.ErrInvalidInput},
		{"reports", []string{"crm", "bad/id"}, apikeys.ErrInvalidInput},
	} {
		_, err := apikeys.Create(ctx, st, tc.name, tc.creds)
		if !errors.Is(err, tc.want) {
			t.Errorf("Create(%q, %q) = %v, want %v", tc.name, tc.creds, err, tc.want)
		}
	}
	if _, err := apikeys.Create(ctx, st, "billing", []string{"crm"}); !errors.Is(err, store.ErrAPIKeyExists) {
		t.Errorf("a taken name does not also match store.ErrAPIKeyExists: %v", err)
	}
	reports, err := apikeys.Create(ctx, st, "reports", []string{"crm"})
	if err != nil || len(reports.Missing) != 0 {
		t.Fatalf("Create reports = %+v, %v", reports.Info, err)
	}

	keys, err = apikeys.List(ctx, st)
	if err != nil || len(keys) != 2 || keys[0].Name != "billing" || keys[1].Name != "reports" {
		t.Fatalf("List = %+v, %v", keys, err)
	}

	// Revoke by name, then again by ID, then unknown and malformed references.
	at := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	r, err := apikeys.Revoke(ctx, st, "billing", at)
	if err != nil || r.Already || r.Info.ID != id || !r.Info.RevokedAt.Equal(at) {
		t.Fatalf("Revoke(billing) = %+v, %v", r, err)
	}
	if !strings.Contains(r.Message(), `revoked API key "billing"`) {
		t.Errorf("Message = %q", r.Message())
	}
	r, err = apikeys.Revoke(ctx, st, id, at.Add(time.Hour))
	if err != nil || !r.Already || !r.Info.RevokedAt.Equal(at) {
		t.Errorf("second Revoke by ID = %+v, %v; want Already with the first time", r, err)
	}
	if !strings.Contains(r.Message(), "already revoked at 2026-05-01T12:00:00Z") {
		t.Errorf("Message = %q", r.Message())
	}
	if _, err := apikeys.Revoke(ctx, st, "nobody", at); !errors.Is(err, apikeys.ErrUnknownKey) || !strings.Contains(err.Error(), `"nobody"`) {
		t.Errorf("Revoke(nobody) = %v, want ErrUnknownKey", err)
	}
	if _, err := apikeys.Revoke(ctx, st, "ffffffffffffffff", at); !errors.Is(err, apikeys.ErrUnknownKey) {
		t.Errorf("Revoke(unknown ID) = %v, want ErrUnknownKey", err)
	}
	for _, ref := range []string{"", "has space", "../x"} {
		if _, err := apikeys.Revoke(ctx, st, ref, at); !errors.Is(err, apikeys.ErrInvalidInput) {
			t.Errorf("Revoke(%q) = %v, want ErrInvalidInput", ref, err)
		}
	}
	keys, _ = apikeys.List(ctx, st)
	if !keys[0].Revoked() || keys[1].Revoked() {
		t.Errorf("after revoking billing: %+v", keys)
	}

	// A name of an ID's form cannot be created here, but a store written by other means
	// may hold one: revoking by it must not guess.
	_, oddID, oddHash, _ := apikeys.Generate()
	if _, err := st.CreateAPIKey(ctx, store.APIKey{ID: oddID, Name: reports.Info.ID, CredentialIDs: []string{"crm"}, Hash: oddHash}); err != nil {
		t.Fatal(err)
	}
	_, err = apikeys.Revoke(ctx, st, reports.Info.ID, at)
	if !errors.Is(err, apikeys.ErrAmbiguous) || !strings.Contains(err.Error(), "names key "+oddID) ||
		!strings.Contains(err.Error(), "the ID of key "+reports.Info.ID) {
		t.Errorf("Revoke(ambiguous) = %v, want ErrAmbiguous naming both keys", err)
	}
	if k, _ := st.LookupAPIKey(ctx, reports.Info.ID); k.Revoked() {
		t.Error("an ambiguous revoke revoked a key")
	}
}

func TestWrite(t *testing.T) {
	st := openSQLite(t)
	ctx := t.Context()
	var table bytes.Buffer
	if err := apikeys.WriteTable(&table, nil); err != nil || table.String() != apikeys.EmptyList+"\n" {
		t.Errorf("WriteTable(nothing) = %q, %v", table.String(), err)
	}

	c, err := apikeys.Create(ctx, st, "billing", []string{"crm", "later"})
	if err != nil {
		t.Fatal(err)
	}
	key := c.Key.Reveal()
	var stdout, stderr bytes.Buffer
	if err := apikeys.WriteCreated(&stdout, &stderr, c, "tokens.db"); err != nil {
		t.Fatal(err)
	}
	if stdout.String() != key+"\n" {
		t.Errorf("WriteCreated stdout = %q, want the key alone", stdout.String())
	}
	for _, want := range []string{`created API key "billing"`, c.Info.ID, "crm, later", "tokens.db", `credential "crm" is not in the token store`, `credential "later"`} {
		if !strings.Contains(stderr.String(), want) {
			t.Errorf("WriteCreated stderr does not mention %q:\n%s", want, stderr.String())
		}
	}
	if strings.Contains(stderr.String(), secretPart(key)) {
		t.Errorf("WriteCreated repeats the key on stderr:\n%s", stderr.String())
	}

	if _, err := apikeys.Revoke(ctx, st, "billing", time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)); err != nil {
		t.Fatal(err)
	}
	if _, err := apikeys.Create(ctx, st, "reports", []string{"crm"}); err != nil {
		t.Fatal(err)
	}
	keys, err := apikeys.List(ctx, st)
	if err != nil {
		t.Fatal(err)
	}
	table.Reset()
	if err := apikeys.WriteTable(&table, keys); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(table.String()), "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[0], "NAME") || !strings.Contains(lines[0], "LAST USED") {
		t.Fatalf("WriteTable:\n%s", table.String())
	}
	if !strings.Contains(lines[1], "billing") || !strings.Contains(lines[1], "crm,later") || !strings.Contains(lines[1], "2026-05-01T12:00:00Z") ||
		!strings.Contains(lines[2], "reports") || !strings.HasSuffix(lines[2], "never") {
		t.Errorf("WriteTable rows:\n%s", table.String())
	}

	var js bytes.Buffer
	if err := apikeys.WriteJSON(&js, keys); err != nil {
		t.Fatal(err)
	}
	var rows []map[string]any
	dec := json.NewDecoder(&js)
	for dec.More() {
		var row map[string]any
		if err := dec.Decode(&row); err != nil {
			t.Fatal(err)
		}
		rows = append(rows, row)
	}
	if len(rows) != 2 || rows[0]["name"] != "billing" || rows[0]["id"] != c.Info.ID || rows[0]["revoked_at"] != "2026-05-01T12:00:00Z" ||
		rows[1]["revoked_at"] != nil || rows[1]["last_used_at"] != nil || rows[1]["created_at"] == nil {
		t.Errorf("WriteJSON rows = %v", rows)
	}
	for _, row := range rows {
		for field := range row {
			if !slices.Contains([]string{"name", "id", "credentials", "created_at", "revoked_at", "last_used_at"}, field) {
				t.Errorf("WriteJSON has field %q", field)
			}
		}
	}

	// Neither output holds a key or a stored hash.
	for _, k := range keys {
		stored, err := st.LookupAPIKey(ctx, k.ID)
		if err != nil {
			t.Fatal(err)
		}
		for _, out := range []string{table.String(), js.String()} {
			if strings.Contains(out, hex.EncodeToString(stored.Hash)) || strings.Contains(out, secretPart(key)) {
				t.Errorf("the list shows a hash or a key:\n%s", out)
			}
		}
	}
}

// A store whose API key rows fail their authenticator (here: opened with a key file
// whose key has the right ID and other bytes, as a forged row reads) refuses to list,
// and so refuses revocation by name; revocation by ID still retires the row.
func TestRevokeRefusedRowByID(t *testing.T) {
	ctx := t.Context()
	dir := t.TempDir()
	path := filepath.Join(dir, "tokens.db")
	ring := newRing(t, dir)
	st, _, err := store.Open(ctx, store.BackendSQLite, path, "", ring)
	if err != nil {
		t.Fatal(err)
	}
	created, err := apikeys.Create(ctx, st, "billing", []string{"crm"})
	st.Close()
	if err != nil {
		t.Fatal(err)
	}
	id := created.Info.ID

	other := make([]byte, keyring.KeySize)
	other[0] = 1
	impostor, err := keyring.New(ring.PrimaryID(), map[string][]byte{ring.PrimaryID(): other})
	if err != nil {
		t.Fatal(err)
	}
	st, _, err = store.Open(ctx, store.BackendSQLite, path, "", impostor)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if _, err := apikeys.List(ctx, st); !errors.Is(err, store.ErrAPIKeyUnauthenticated) || !strings.Contains(err.Error(), id) {
		t.Fatalf("List = %v, want ErrAPIKeyUnauthenticated naming %s", err, id)
	}
	if _, err := apikeys.Revoke(ctx, st, "billing", time.Now()); !errors.Is(err, store.ErrAPIKeyUnauthenticated) {
		t.Fatalf("Revoke(name) = %v, want the listing's refusal", err)
	}
	at := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	r, err := apikeys.Revoke(ctx, st, id, at)
	if err != nil || r.Already || !r.Info.RevokedAt.Equal(at) {
		t.Fatalf("Revoke(ID) = %+v, %v; want revoked at %v", r, err, at)
	}
	keys, err := apikeys.List(ctx, st)
	if err != nil || len(keys) != 1 || !keys[0].Revoked() {
		t.Fatalf("List after revoking by ID = %+v, %v; want the one key, revoked", keys, err)
	}
	if r, err := apikeys.Revoke(ctx, st, id, at.Add(time.Hour)); err != nil || !r.Already {
		t.Errorf("Revoke(ID) again = %+v, %v; want Already", r, err)
	}
}
