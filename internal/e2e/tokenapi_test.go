package e2e

import (
	"encoding/json"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tokenwarden/tokenwarden/workflows"
)

// runStarterSplit runs the starter binary with the test's environment and returns its
// exit code, stdout and stderr apart: `starter apikey create` prints the key alone on
// stdout, and that is what a script captures.
func (e *env) runStarterSplit(args ...string) (code int, stdout, stderr string) {
	e.t.Helper()
	return e.runSplit(stack.starterBin, args...)
}

// runSplit runs bin with the test's environment; stdout and stderr come back apart.
func (e *env) runSplit(bin string, args ...string) (code int, stdout, stderr string) {
	e.t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = e.vars()
	var out, errOut strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode(), out.String(), errOut.String()
	} else if err != nil {
		e.t.Fatalf("run %s %v: %v", filepath.Base(bin), args, err)
	}
	return 0, out.String(), errOut.String()
}

// tokenAPIStatus asks the worker's token API for id's token with key and returns the
// HTTP status and the error code of a refusal.
func (e *env) tokenAPIStatus(id, key string) (status int, errorCode string) {
	e.t.Helper()
	req, err := http.NewRequestWithContext(e.t.Context(), http.MethodGet, "http://"+e.httpAddr+"/v1/credentials/"+id+"/token", nil)
	if err != nil {
		e.t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatalf("token API: %v", err)
	}
	defer resp.Body.Close()
	var body struct {
		Error string `json:"error"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&body)
	return resp.StatusCode, body.Error
}

// TestTokenAPI: a key created with `starter apikey create`, a separate process working
// on the store the running worker holds open, reads, through `starter token` and the
// worker's token API, the access token the store holds, refresh after refresh; a
// revocation by `starter apikey revoke` applies to the next request; neither the key
// nor a token reaches the worker's log.
func TestTokenAPI(t *testing.T) {
	e := newEnv(t)
	fake, _ := startProvider(t, 3*time.Second)
	w := e.startWorker()
	const id = "e2e-tokenapi"
	e.startCredential(stack.client, testCredential{id: id, fake: fake})
	waitForStatus(t, id, 60*time.Second, "a first refresh", func(s workflows.Status) bool { return s.Refreshes >= 1 })

	code, key, stderr := e.runStarterSplit("apikey", "create", "e2e-app", "--credential", id)
	if code != 0 || !strings.HasSuffix(key, "\n") || strings.Count(key, "\n") != 1 {
		t.Fatalf("starter apikey create exited %d with stdout of %d lines: %s", code, strings.Count(key, "\n"), stderr)
	}
	key = strings.TrimSuffix(key, "\n")
	if !strings.HasPrefix(key, "twk_") || len(key) != len("twk_0123456789abcdef_")+52 {
		t.Fatalf("starter apikey create printed something other than a key (%d characters)", len(key))
	}
	if !strings.Contains(stderr, `created API key "e2e-app"`) || strings.Contains(stderr, key) || strings.Contains(stderr, "is not in the token store") {
		t.Errorf("starter apikey create's stderr:\n%s", stderr)
	}
	if status, code := e.tokenAPIStatus(id, key); status != http.StatusOK {
		t.Fatalf("the token API answered the new key with %d %s, want 200", status, code)
	}
	api := []string{"TOKENWARDEN_API_KEY=" + key, "TOKENWARDEN_TOKEN_API=http://" + e.httpAddr}

	// The token the starter prints is the one the store holds. A refresh may land
	// between reading the store and asking the API: compare only when the store's
	// version did not move meanwhile.
	matchStore := func(what string) string {
		t.Helper()
		for range 10 {
			before := e.storedRecord(id)
			code, out := e.runStarterEnv(api, "", "token", id)
			after := e.storedRecord(id)
			if code != 0 {
				t.Fatalf("%s: starter token exited %d: %s", what, code, out)
			}
			if before.Version != after.Version {
				continue
			}
			if got := strings.TrimSpace(out); got != after.Secrets.AccessToken {
				t.Fatalf("%s: starter token printed a token that is not the stored one (store version %d)", what, after.Version)
			}
			if !fake.ValidAccessToken(after.Secrets.AccessToken) {
				t.Errorf("%s: the served token is not one the provider honours", what)
			}
			return after.Secrets.AccessToken
		}
		t.Fatalf("%s: the store's version moved during each of 10 attempts", what)
		return ""
	}
	first := matchStore("after the first refresh")
	refreshes := fake.Refreshes()
	waitFor(t, 30*time.Second, "another refresh", func() (bool, string) {
		return fake.Refreshes() > refreshes, ""
	})
	if second := matchStore("after another refresh"); second == first {
		t.Errorf("the token did not change across a refresh")
	}
	if rec := e.storedRecord(id); rec.LastUsedAt.IsZero() {
		t.Errorf("LastUsedAt is zero after reads through the token API")
	}

	// Refusals.
	if code, out := e.runStarterEnv(api, "", "token", "not-my-credential"); code != 6 || !strings.Contains(out, "not scoped") {
		t.Errorf("starter token for an unscoped credential exited %d, want 6: %s", code, out)
	}
	if code, out := e.runStarterEnv([]string{"TOKENWARDEN_API_KEY=", "TOKENWARDEN_TOKEN_API=http://" + e.httpAddr}, "", "token", id); code != 2 {
		t.Errorf("starter token without a key exited %d, want 2: %s", code, out)
	}
	// A second key, so that revoking one is seen to leave the other alone.
	code, other, stderr := e.runStarterSplit("apikey", "create", "e2e-other", "-credential", id)
	other = strings.TrimSpace(other)
	if code != 0 {
		t.Fatalf("starter apikey create e2e-other exited %d: %s", code, stderr)
	}
	if code, out, stderr := e.runStarterSplit("apikey", "revoke", "e2e-app"); code != 0 || !strings.Contains(out, `revoked API key "e2e-app"`) {
		t.Fatalf("starter apikey revoke exited %d: %s%s", code, out, stderr)
	}
	if status, code := e.tokenAPIStatus(id, key); status != http.StatusUnauthorized || code != "revoked_api_key" {
		t.Errorf("the token API answered the revoked key with %d %s, want 401 revoked_api_key", status, code)
	}
	if code, out := e.runStarterEnv(api, "", "token", id); code != 6 || !strings.Contains(out, "unauthorized") {
		t.Errorf("starter token with the revoked key exited %d, want 6: %s", code, out)
	}
	if status, code := e.tokenAPIStatus(id, other); status != http.StatusOK {
		t.Errorf("the token API answered the other key with %d %s after revoking one, want 200", status, code)
	}
	if code, out, _ := e.runStarterSplit("apikey", "revoke", "e2e-app"); code != 0 || !strings.Contains(out, "already revoked") {
		t.Errorf("a second starter apikey revoke exited %d: %s", code, out)
	}
	if code, _, stderr := e.runStarterSplit("apikey", "revoke", "e2e-nobody"); code != 4 {
		t.Errorf("starter apikey revoke of an unknown key exited %d, want 4: %s", code, stderr)
	}
	if code, _, stderr := e.runStarterSplit("apikey", "create", "e2e-app", "-credential", id); code != 5 {
		t.Errorf("starter apikey create of a taken name exited %d, want 5: %s", code, stderr)
	}
	code, list, _ := e.runStarterSplit("apikey", "list")
	secret := key[len("twk_0123456789abcdef_"):]
	if code != 0 || !strings.Contains(list, "e2e-app") || !strings.Contains(list, "e2e-other") || strings.Contains(list, secret) {
		t.Errorf("starter apikey list exited %d:\n%s", code, list)
	}
	if line := list[strings.Index(list, "e2e-app"):]; strings.Contains(line[:strings.Index(line, "\n")], "never") {
		t.Errorf("starter apikey list shows e2e-app as never used after reads:\n%s", list)
	}
	w.stop(t)
	if e.httpAddr != "" {
		if code, out := e.runStarterEnv(api, "", "token", id); code != 3 {
			t.Errorf("starter token with the worker stopped exited %d, want 3: %s", code, out)
		}
	}

	logs := w.output.String()
	if strings.Contains(logs, secret) || strings.Contains(logs, other[len("twk_0123456789abcdef_"):]) || strings.Contains(logs, first) {
		t.Errorf("the worker's log holds the API key or an access token:\n%s", logs)
	}
	if !strings.Contains(logs, "token API: refused") {
		t.Errorf("the worker did not log the refusals:\n%s", logs)
	}
}
