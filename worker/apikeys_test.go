package main

import (
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tokenwarden/tokenwarden/internal/apikeys"
	"github.com/tokenwarden/tokenwarden/internal/store"
)

// The worker's API key flags, kept for existing scripts: in-process against the SQLite
// store of the worker's configuration; the key they print then works against the real
// handler. The operations themselves are tested in internal/apikeys.
func TestAPIKeyCommands(t *testing.T) {
	k := setupSQLite(t)
	st, _ := k.open(t)
	if _, err := st.Put(t.Context(), store.Record{ID: "crm", TokenType: "Bearer", Secrets: store.Secrets{AccessToken: "access-crm-SECRET"}}); err != nil {
		t.Fatal(err)
	}

	r := runWorker(t, "-apikey-create", "billing", "-credential", "crm, later")
	r.check(t, 0, `created API key "billing"`, "crm, later", `credential "later" is not in the token store`)
	key := strings.TrimSpace(r.stdout)
	id, ok := apikeys.Parse(key)
	if !ok || strings.Count(r.stdout, "\n") != 1 {
		t.Fatalf("stdout is not one API key line: %q", r.stdout)
	}
	if strings.Contains(r.stderr, secretPart(key)) {
		t.Errorf("stderr repeats the key:\n%s", r.stderr)
	}
	if !strings.Contains(r.stderr, id) {
		t.Errorf("stderr does not name the key ID %s:\n%s", id, r.stderr)
	}

	r = runWorker(t, "-apikey-create", "billing", "-credential", "crm")
	r.check(t, 2, "already exists")
	r = runWorker(t, "-apikey-create", "reports", "-credential", "crm")
	r.check(t, 0)
	reports := strings.TrimSpace(r.stdout)

	r = runWorker(t, "-apikey-list")
	r.check(t, 0)
	for _, want := range []string{"NAME", "LAST USED", "billing", id, "crm,later", "reports", "never"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("-apikey-list does not show %q:\n%s", want, r.stdout)
		}
	}
	if strings.Contains(r.stdout, secretPart(key)) || strings.Contains(r.stdout, secretPart(reports)) {
		t.Errorf("-apikey-list shows a key:\n%s", r.stdout)
	}

	// The printed key works against the token API over the same store.
	api := newTokenAPI(st, 100, 100, discardLogger())
	srv := httptest.NewServer(api.handler(nil))
	defer srv.Close()
	status := func(key string) int {
		t.Helper()
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, srv.URL+"/v1/credentials/crm/token", nil)
		req.Header.Set("Authorization", "Bearer "+key)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if got := status(key); got != 200 {
		t.Fatalf("created key: status %d, want 200", got)
	}
	r = runWorker(t, "-apikey-list")
	if strings.Contains(strings.SplitN(r.stdout[strings.Index(r.stdout, "billing"):], "\n", 2)[0], "never") {
		t.Errorf("-apikey-list shows billing as never used after a read:\n%s", r.stdout)
	}

	// Revoke by name, then by ID (already revoked), then unknown.
	r = runWorker(t, "-apikey-revoke", "billing")
	r.check(t, 0)
	if !strings.Contains(r.stdout, "revoked API key \"billing\"") {
		t.Errorf("-apikey-revoke output:\n%s", r.stdout)
	}
	if got := status(key); got != 401 {
		t.Errorf("revoked key: status %d, want 401", got)
	}
	if got := status(reports); got != 200 {
		t.Errorf("the other key after revoking one: status %d, want 200", got)
	}
	r = runWorker(t, "-apikey-revoke", id)
	r.check(t, 0)
	if !strings.Contains(r.stdout, "already revoked") {
		t.Errorf("second -apikey-revoke output:\n%s", r.stdout)
	}
	runWorker(t, "-apikey-revoke", "nobody").check(t, 2, "no API key is named")
	r = runWorker(t, "-apikey-list")
	line := r.stdout[strings.Index(r.stdout, "billing"):]
	line = line[:strings.Index(line, "\n")]
	if strings.Count(line, "Z") < 2 { // created and revoked times
		t.Errorf("-apikey-list does not show billing's revocation time: %q", line)
	}
}

func TestAPIKeyCommandRefusals(t *testing.T) {
	setupSQLite(t)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"-apikey-create", "x"}, "needs -credential"},
		{[]string{"-apikey-create", "x", "-credential", " , "}, "needs -credential"},
		{[]string{"-apikey-create", "x", "-credential", "bad/id"}, "may contain only"},
		{[]string{"-apikey-create", "-x", "-credential", "crm"}, "starting with a letter or digit"},
		{[]string{"-apikey-create", "has space", "-credential", "crm"}, "use letters"},
		{[]string{"-apikey-create", "0123456789abcdef", "-credential", "crm"}, "looks like a key ID"},
		{[]string{"-credential", "crm"}, "goes with -apikey-create"},
		{[]string{"-apikey-list", "-apikey-revoke", "x"}, "exclude each other"},
		{[]string{"-apikey-list", "-rotate-keys"}, "exclude each other"},
		{[]string{"-apikey-list", "-init-dev-key"}, "exclude each other"},
	} {
		runWorker(t, tc.args...).check(t, 2, tc.want)
	}
}

func TestAPIKeyCommandsWithoutKeyFile(t *testing.T) {
	dataDir, _ := workerEnv(t, nil)
	runWorker(t, "-apikey-list").check(t, 2, filepath.Join(dataDir, "keys.json"))
}

func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }
