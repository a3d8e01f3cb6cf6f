package e2e

import (
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/tokenwarden/tokenwarden/workflows"
)

// runWorkerCommand runs one of the worker's store commands (-apikey-create, ...) as its
// own process against the test's data directory, while the test's worker holds the same
// SQLite file open.
func (e *env) runWorkerCommand(args ...string) (code int, stdout, stderr string) {
	e.t.Helper()
	cmd := exec.Command(stack.workerBin, args...)
	cmd.Env = e.vars()
	var out, errOut strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode(), out.String(), errOut.String()
	} else if err != nil {
		e.t.Fatalf("run worker %v: %v", args, err)
	}
	return 0, out.String(), errOut.String()
}

// TestTokenAPI: a key created with the worker command reads, through `starter token`
// and the worker's token API, the access token the store holds, refresh after refresh;
// a revocation by another process applies to the next request; neither the key nor a
// token reaches the worker's log.
func TestTokenAPI(t *testing.T) {
	e := newEnv(t)
	fake, _ := startProvider(t, 3*time.Second)
	w := e.startWorker()
	const id = "e2e-tokenapi"
	e.startCredential(stack.client, credential{id: id, fake: fake})
	waitForStatus(t, id, 60*time.Second, "a first refresh", func(s workflows.Status) bool { return s.Refreshes >= 1 })

	code, key, stderr := e.runWorkerCommand("-apikey-create", "e2e-app", "-credential", id)
	key = strings.TrimSpace(key)
	if code != 0 || !strings.HasPrefix(key, "twk_") {
		t.Fatalf("worker -apikey-create exited %d: %s", code, stderr)
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
	if code, _, stderr := e.runWorkerCommand("-apikey-revoke", "e2e-app"); code != 0 {
		t.Fatalf("worker -apikey-revoke exited %d: %s", code, stderr)
	}
	if code, out := e.runStarterEnv(api, "", "token", id); code != 6 || !strings.Contains(out, "unauthorized") {
		t.Errorf("starter token with the revoked key exited %d, want 6: %s", code, out)
	}
	code, list, _ := e.runWorkerCommand("-apikey-list")
	if code != 0 || !strings.Contains(list, "e2e-app") || strings.Contains(list, key[len("twk_0123456789abcdef_"):]) {
		t.Errorf("worker -apikey-list exited %d:\n%s", code, list)
	}
	w.stop(t)
	if e.httpAddr != "" {
		if code, out := e.runStarterEnv(api, "", "token", id); code != 3 {
			t.Errorf("starter token with the worker stopped exited %d, want 3: %s", code, out)
		}
	}

	logs := w.output.String()
	secret := key[len("twk_0123456789abcdef_"):]
	if strings.Contains(logs, secret) || strings.Contains(logs, first) {
		t.Errorf("the worker's log holds the API key or an access token:\n%s", logs)
	}
	if !strings.Contains(logs, "token API: refused") {
		t.Errorf("the worker did not log the refusals:\n%s", logs)
	}
}
