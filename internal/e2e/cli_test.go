package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/testsuite"

	"github.com/tokenwarden/tokenwarden/internal/codec"
	"github.com/tokenwarden/tokenwarden/internal/credential"
	"github.com/tokenwarden/tokenwarden/internal/store"
	"github.com/tokenwarden/tokenwarden/internal/testlog"
	"github.com/tokenwarden/tokenwarden/internal/testnet"
	"github.com/tokenwarden/tokenwarden/workflows"
)

// The operator paths, end to end: every lifecycle command of the starter
// binary, and the README's temporal CLI recipes run verbatim with the real bin/temporal.
// Access tokens live ten minutes here, so no timer fires during a test: every refresh
// is one the test asked for.
const cliAccessLifetime = 10 * time.Minute

// cliStarterOK runs the starter and fails the test unless it exits 0.
func (e *env) cliStarterOK(stdin string, args ...string) string {
	e.t.Helper()
	code, out := e.runStarter(stdin, args...)
	if code != 0 {
		e.t.Fatalf("starter %s exited %d:\n%s", strings.Join(args, " "), code, out)
	}
	return out
}

// cliStarterExit runs the starter and fails the test unless it exits with want.
func (e *env) cliStarterExit(want int, stdin string, args ...string) string {
	e.t.Helper()
	code, out := e.runStarter(stdin, args...)
	if code != want {
		e.t.Fatalf("starter %s exited %d, want %d:\n%s", strings.Join(args, " "), code, want, out)
	}
	return out
}

// cliTerminateAtEnd terminates the credential's workflow when the test ends, in case the
// test failed before retiring it.
func cliTerminateAtEnd(t *testing.T, id string) {
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = stack.client.TerminateWorkflow(ctx, id, "", "test finished")
	})
}

// cliDescribeStatus is the execution status of the workflow's latest run.
func cliDescribeStatus(t *testing.T, id string) enumspb.WorkflowExecutionStatus {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	d, err := stack.client.DescribeWorkflow(ctx, id, "")
	if err != nil {
		t.Fatalf("describe %s: %v", id, err)
	}
	return d.RawResponse.GetWorkflowExecutionInfo().GetStatus()
}

// cliAssertStoreForgot checks that the worker's token store no longer has the credential.
func (e *env) cliAssertStoreForgot(id string) {
	e.t.Helper()
	s := e.openStore()
	defer s.Close()
	if _, err := s.Get(context.Background(), id); !errors.Is(err, store.ErrNotFound) {
		e.t.Errorf("token store still answers for retired %s: %v (want ErrNotFound)", id, err)
	}
}

func TestStarterCLILifecycle(t *testing.T) {
	e := newEnv(t)
	fake, tokenURL := startProvider(t, cliAccessLifetime)
	e.startWorker()
	const id = "e2e-cli-starter"
	cliTerminateAtEnd(t, id)

	cred := e.writeJSON("cred.json", credentialFile(id, tokenURL))
	secrets := fmt.Sprintf(`{"refresh_token":%q,"client_secret":%q}`, fake.Seed(id), clientSecret)
	e.cliStarterOK(secrets, "start", cred, "-secrets", "-")
	st0 := waitForStatus(t, id, 30*time.Second, "ACTIVE after the first refresh", func(s workflows.Status) bool {
		return s.State == credential.StateActive && s.Refreshes >= 1
	})

	// refresh: one more round, a later expiry, printed.
	time.Sleep(1100 * time.Millisecond) // so the new expiry differs at the printed second
	out := e.cliStarterOK("", "refresh", id)
	st1, err := queryStatus(t, id)
	if err != nil {
		t.Fatal(err)
	}
	if st1.Refreshes != st0.Refreshes+1 || !st1.AccessExpiresAt.After(st0.AccessExpiresAt) {
		t.Errorf("after starter refresh: refreshes %d -> %d, expiry %s -> %s; want one more and later",
			st0.Refreshes, st1.Refreshes, st0.AccessExpiresAt, st1.AccessExpiresAt)
	}
	if want := st1.AccessExpiresAt.UTC().Format(time.RFC3339); !strings.Contains(out, want) || !strings.Contains(out, "ACTIVE") {
		t.Errorf("starter refresh does not print state ACTIVE and the new expiry %s:\n%s", want, out)
	}
	t.Logf("starter refresh:\n%s", out)

	// The user withdraws consent: the next round fails, which the starter reports (exit 1)
	// with the workflow's reason, and the credential parks in NEEDS_REAUTH.
	fake.RevokeFamily(id)
	out = e.cliStarterExit(1, "", "refresh", id)
	if !strings.Contains(out, "NEEDS_REAUTH") || !strings.Contains(out, "invalid_grant") || !strings.Contains(out, "starter reseed "+id) {
		t.Errorf("a failed refresh round should print NEEDS_REAUTH, the error code and the reseed hint:\n%s", out)
	}
	waitForStatus(t, id, 10*time.Second, "NEEDS_REAUTH", func(s workflows.Status) bool { return s.State == credential.StateNeedsReauth })

	// While NEEDS_REAUTH the refresh update is rejected by its validator: exit 6.
	out = e.cliStarterExit(6, "", "refresh", id)
	if !strings.Contains(out, "rejected") || !strings.Contains(out, "needs a reseed") {
		t.Errorf("rejected refresh should quote the validator:\n%s", out)
	}

	// Malformed grant material is refused before anything is sent (exit 2).
	bad := `{"refresh_token":" ` + fake.Seed(id+"-unused") + `\n"}`
	out = e.cliStarterExit(2, bad, "reseed", id, "-secrets", "-")
	if !strings.Contains(out, "seed.refresh_token: has leading or trailing whitespace") || !strings.Contains(out, "provider oauth2") {
		t.Errorf("bad reseed should name the field and the provider:\n%s", out)
	}
	if strings.Contains(out, "rt_") {
		t.Errorf("bad reseed output leaks the token:\n%s", out)
	}
	e.cliStarterExit(4, secrets, "reseed", "no-such-credential", "-secrets", "-")

	// A fresh grant from the provider: reseed stores it, the refresh that follows works.
	before := st1.Version
	fresh := fmt.Sprintf(`{"refresh_token":%q,"client_secret":%q}`, fake.Seed(id), clientSecret)
	out = e.cliStarterOK(fresh, "reseed", id, "-secrets", "-")
	st2, err := queryStatus(t, id)
	if err != nil {
		t.Fatal(err)
	}
	if st2.State != credential.StateActive || st2.Version <= before || st2.LastError != "" {
		t.Errorf("after reseed: state %s, version %d (was %d), last error %q; want ACTIVE, higher, none",
			st2.State, st2.Version, before, st2.LastError)
	}
	if !strings.Contains(out, "reseeded: state ACTIVE") || !strings.Contains(out, fmt.Sprintf("store version %d", st2.Version)) {
		t.Errorf("starter reseed output:\n%s", out)
	}
	t.Logf("starter reseed:\n%s", out)
	if strings.Contains(out, "rt_") {
		t.Errorf("reseed output leaks a token:\n%s", out)
	}

	// retire: refused without -yes, done with it.
	out = e.cliStarterExit(2, "", "retire", id)
	if !strings.Contains(out, "deletes its secrets") || !strings.Contains(out, "-yes") {
		t.Errorf("retire without -yes should explain itself:\n%s", out)
	}
	if s := cliDescribeStatus(t, id); s != enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING {
		t.Fatalf("retire without -yes changed the workflow: %s", s)
	}
	out = e.cliStarterOK("", "retire", id, "-yes")
	if !strings.Contains(out, "workflow completed") || !strings.Contains(out, "RETIRED") {
		t.Errorf("starter retire output:\n%s", out)
	}
	t.Logf("starter retire:\n%s", out)
	if s := cliDescribeStatus(t, id); s != enumspb.WORKFLOW_EXECUTION_STATUS_COMPLETED {
		t.Errorf("workflow is %s after retire, want completed", s)
	}
	e.cliAssertStoreForgot(id)

	// A retired credential is not running: exit 4, and the message says so.
	out = e.cliStarterExit(4, "", "refresh", id)
	if !strings.Contains(out, "is not running (its workflow is completed)") {
		t.Errorf("refresh of a retired credential:\n%s", out)
	}
	e.cliStarterExit(4, "", "retire", id, "-yes")
	e.cliStarterExit(4, "", "refresh", "no-such-credential")
}

// TestStarterCLISetup runs `starter setup` against the shared dev server, which
// registered the attributes at start, and against a fresh one without them.
func TestStarterCLISetup(t *testing.T) {
	e := newEnv(t)
	for i := 0; i < 2; i++ {
		out := e.cliStarterOK("", "setup")
		for _, name := range []string{"TokenState", "TokenProvider", "TokenExpiresAt"} {
			if !strings.Contains(out, name) {
				t.Errorf("setup run %d does not report %s:\n%s", i+1, name, out)
			}
		}
		if strings.Count(out, "already registered") != 3 {
			t.Errorf("setup run %d on the shared server should find all three registered:\n%s", i+1, out)
		}
	}

	t.Run("fresh server", func(t *testing.T) {
		e := newEnv(t)
		e.address = cliStartBareServer(t)
		out := e.cliStarterOK("", "setup")
		if strings.Count(out, " registered") != 3 || strings.Contains(out, "already") {
			t.Errorf("first setup on a fresh server should register all three:\n%s", out)
		}
		t.Logf("first setup:\n%s", out)
		out = e.cliStarterOK("", "setup")
		if strings.Count(out, "already registered") != 3 {
			t.Errorf("second setup should find all three registered:\n%s", out)
		}
	})

	t.Run("wrong type", func(t *testing.T) {
		e := newEnv(t)
		e.address = cliStartBareServer(t, "--search-attribute", "TokenState=Text")
		code, out := e.runStarter("", "setup")
		if code != 1 || !strings.Contains(out, "TokenState is registered as Text, tokenwarden needs Keyword") {
			t.Errorf("setup with TokenState as Text exited %d, want 1 naming it:\n%s", code, out)
		}
	})
}

// cliStartBareServer starts a dev server of the test's own with only the given extra
// arguments (no tokenwarden search attributes) and returns its address.
func cliStartBareServer(t *testing.T, extra ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	log := &testlog.Buffer{}
	srv, err := testsuite.StartDevServer(ctx, testsuite.DevServerOptions{
		ExistingPath:  stack.temporalBin,
		LogLevel:      "error",
		ClientOptions: &client.Options{HostPort: testnet.FreeAddr(t), Logger: quietLogger()},
		ExtraArgs:     extra,
		Stdout:        log,
		Stderr:        log,
	})
	if err != nil {
		t.Fatalf("start a bare dev server: %v\n%s", err, log.String())
	}
	t.Cleanup(func() {
		srv.Client().Close()
		_ = srv.Stop()
	})
	return srv.FrontendHostPort()
}

// cliTemporal runs bin/temporal against the shared server, with --codec-endpoint set to
// the test worker's endpoint as the README's recipes have it, and returns its output
// and error, for commands that are expected to fail.
func cliTemporal(t *testing.T, args ...string) (string, error) {
	args = append(args, "--address", stack.address)
	if ep, ok := codecEndpoints.Load(t); ok {
		args = append(args, "--codec-endpoint", ep.(string), "--codec-auth", "Bearer "+codecToken)
	}
	cmd := exec.Command(stack.temporalBin, args...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// cliStatus reads the status with the README's `temporal workflow query` recipe.
func cliStatus(t *testing.T, id string) (workflows.Status, string, bool) {
	out, err := cliTemporal(t, "workflow", "query", "--workflow-id", id, "--name", "status", "--output", "json")
	if err != nil {
		return workflows.Status{}, out, false
	}
	var resp struct {
		QueryResult []workflows.Status `json:"queryResult"`
	}
	if err := json.Unmarshal([]byte(out), &resp); err != nil || len(resp.QueryResult) != 1 {
		return workflows.Status{}, out, false
	}
	return resp.QueryResult[0], out, true
}

func cliWaitForStatus(t *testing.T, id, what string, cond func(workflows.Status) bool) workflows.Status {
	t.Helper()
	var st workflows.Status
	waitFor(t, 30*time.Second, what+" (temporal workflow query)", func() (bool, string) {
		var ok bool
		var out string
		st, out, ok = cliStatus(t, id)
		return ok && cond(st), out
	})
	return st
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestTemporalCLIRecipes runs the README's "With the temporal CLI" recipes as written
// (with the placeholders filled in) against the real bin/temporal, every command with
// --codec-endpoint pointing at the test worker's codec endpoint (runTemporal and
// cliTemporal add it); the seeds are sealed by `starter seal`, so not even that
// endpoint can open them.
func TestTemporalCLIRecipes(t *testing.T) {
	e := newEnv(t)
	fake, tokenURL := startProvider(t, cliAccessLifetime)
	e.startWorker()
	const id = "e2e-cli-temporal"
	cliTerminateAtEnd(t, id)

	// starter seal cred.json -secrets secrets.json > input.json
	// temporal workflow start --type CredentialWorkflow ... --input-file input.json
	cred := e.writeJSON("cred.json", map[string]any{"id": id, "provider": "oauth2",
		"config": map[string]any{"token_url": tokenURL, "client_id": clientID},
		"policy": map[string]any{"refresh_margin": "1s", "jitter": "200ms"}})
	secrets := e.writeJSON("secrets.json", map[string]any{"refresh_token": fake.Seed(id), "client_secret": clientSecret})
	inputFile := filepath.Join(t.TempDir(), "input.json")
	writeFile(t, inputFile, e.cliStarterOK("", "seal", cred, "-secrets", secrets))
	runTemporal(t, "workflow", "start",
		"--type", "CredentialWorkflow", "--task-queue", e.taskQueue, "--workflow-id", id,
		"--static-summary", "oauth2 credential "+id, "--input-file", inputFile)
	st0 := cliWaitForStatus(t, id, "ACTIVE after the first refresh", func(s workflows.Status) bool {
		return s.State == credential.StateActive && s.Refreshes >= 1
	})
	// With --codec-endpoint the seed reached history encrypted.
	if in := runsOf(t, id)[0].started.GetInput().GetPayloads(); len(in) != 1 || !codec.IsEncrypted(in[0]) {
		t.Errorf("the start input in history is not encrypted: %v", in)
	}

	// temporal workflow update execute --name refresh: returns the status after the round.
	out := runTemporal(t, "workflow", "update", "execute", "--workflow-id", id, "--name", "refresh", "--output", "json")
	t.Logf("temporal workflow update execute --name refresh --output json:\n%s", out)
	var upd struct {
		Result workflows.Status `json:"result"`
	}
	if err := json.Unmarshal([]byte(out), &upd); err != nil || upd.Result.State != credential.StateActive || upd.Result.ID != id {
		t.Errorf("update result (%v) does not show %s ACTIVE:\n%s", err, id, out)
	}
	st1, _, ok := cliStatus(t, id)
	if !ok || st1.Refreshes != st0.Refreshes+1 {
		t.Errorf("refreshes %d after the refresh update, want %d", st1.Refreshes, st0.Refreshes+1)
	}

	// temporal workflow list --query 'TokenState="ACTIVE"' finds it.
	waitFor(t, 20*time.Second, "the credential in temporal workflow list --query 'TokenState=\"ACTIVE\"'", func() (bool, string) {
		out := runTemporal(t, "workflow", "list", "--query", `TokenState="ACTIVE"`)
		return strings.Contains(out, id), out
	})

	// temporal workflow signal --name update-policy: the new margin shows in the status.
	runTemporal(t, "workflow", "signal", "--workflow-id", id, "--name", "update-policy",
		"--input", `{"refresh_margin":"2m","jitter":"200ms"}`)
	cliWaitForStatus(t, id, "the new refresh margin", func(s workflows.Status) bool {
		return s.Timing.RefreshMargin == workflows.Duration(2*time.Minute)
	})

	// Revoke the grant and ask for a refresh: NEEDS_REAUTH, and the refresh update is
	// rejected by its validator.
	fake.RevokeFamily(id)
	runTemporal(t, "workflow", "signal", "--workflow-id", id, "--name", "refresh-now")
	cliWaitForStatus(t, id, "NEEDS_REAUTH", func(s workflows.Status) bool { return s.State == credential.StateNeedsReauth })
	out, err := cliTemporal(t, "workflow", "update", "execute", "--workflow-id", id, "--name", "refresh")
	if err == nil || !strings.Contains(out, "needs a reseed") {
		t.Errorf("refresh update in NEEDS_REAUTH: err %v, want a rejection quoting the validator:\n%s", err, out)
	}
	waitFor(t, 20*time.Second, "the credential in temporal workflow list --query 'TokenState=\"NEEDS_REAUTH\"'", func() (bool, string) {
		out := runTemporal(t, "workflow", "list", "--query", `TokenState="NEEDS_REAUTH"`)
		return strings.Contains(out, id), out
	})

	// A plaintext reseed signal is refused, saying what happened and what to do.
	plainSeed := fake.Seed(id)
	runTemporal(t, "workflow", "signal", "--workflow-id", id, "--name", "reseed",
		"--input", fmt.Sprintf(`{"refresh_token":%q}`, plainSeed))
	refused := cliWaitForStatus(t, id, "the plaintext reseed refused", func(s workflows.Status) bool {
		return strings.Contains(s.LastError, "plaintext")
	})
	if refused.State != credential.StateNeedsReauth || !strings.Contains(refused.LastError, "rotate it at the provider") ||
		fake.Presentations(plainSeed) != 0 {
		t.Errorf("after a plaintext reseed: state %s, last error %q, presentations %d; want still NEEDS_REAUTH, the refusal, none",
			refused.State, refused.LastError, fake.Presentations(plainSeed))
	}

	// starter seal cred.json -secrets - -seed-only > reseed.json
	// temporal workflow signal --name reseed --input-file reseed.json: the client secret
	// is kept from the first seed.
	reseedFile := filepath.Join(t.TempDir(), "reseed.json")
	writeFile(t, reseedFile, e.cliStarterOK(fmt.Sprintf(`{"refresh_token":%q}`, fake.Seed(id)), "seal", cred, "-secrets", "-", "-seed-only"))
	runTemporal(t, "workflow", "signal", "--workflow-id", id, "--name", "reseed", "--input-file", reseedFile)
	st2 := cliWaitForStatus(t, id, "ACTIVE after the reseed signal", func(s workflows.Status) bool {
		return s.State == credential.StateActive && s.Refreshes > st1.Refreshes
	})
	if st2.LastError != "" {
		t.Errorf("last error %q after the reseed", st2.LastError)
	}

	// temporal workflow update execute --name reseed: validated synchronously.
	out, err = cliTemporal(t, "workflow", "update", "execute", "--workflow-id", id, "--name", "reseed",
		"--input", `{"sealed":"not-a-seal"}`)
	if err == nil || !strings.Contains(out, "seed.sealed: not a sealed seed") {
		t.Errorf("malformed reseed update: err %v, want the validator's rejection:\n%s", err, out)
	}
	writeFile(t, reseedFile, e.cliStarterOK(fmt.Sprintf(`{"refresh_token":%q}`, fake.Seed(id)), "seal", cred, "-secrets", "-", "-seed-only"))
	out = runTemporal(t, "workflow", "update", "execute", "--workflow-id", id, "--name", "reseed", "--input-file", reseedFile)
	t.Logf("temporal workflow update execute --name reseed:\n%s", out)
	st3, _, ok := cliStatus(t, id)
	if !ok || st3.State != credential.StateActive || st3.Version <= st2.Version {
		t.Errorf("after the reseed update: %+v, want ACTIVE with a version above %d", st3, st2.Version)
	}

	waitFor(t, 20*time.Second, "the credential in temporal workflow list --query 'TokenState=\"ACTIVE\"'", func() (bool, string) {
		out := runTemporal(t, "workflow", "list", "--query", `TokenState="ACTIVE"`)
		return strings.Contains(out, id), out
	})

	// temporal workflow signal --name retire: secrets deleted, workflow completed.
	runTemporal(t, "workflow", "signal", "--workflow-id", id, "--name", "retire")
	waitFor(t, 30*time.Second, "the workflow to complete after retire", func() (bool, string) {
		s := cliDescribeStatus(t, id)
		return s == enumspb.WORKFLOW_EXECUTION_STATUS_COMPLETED, s.String()
	})
	out = runTemporal(t, "workflow", "result", "--workflow-id", id, "--output", "json")
	if !strings.Contains(out, "RETIRED") {
		t.Errorf("temporal workflow result does not show RETIRED:\n%s", out)
	}
	e.cliAssertStoreForgot(id)
}
