package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.temporal.io/api/workflowservice/v1"

	"github.com/tokenwarden/tokenwarden/internal/credential"
	"github.com/tokenwarden/tokenwarden/internal/provider/oauth2/oauth2test"
	"github.com/tokenwarden/tokenwarden/workflows"
)

const (
	clientID     = "e2e-app"
	clientSecret = "e2e-client-secret-value"
	cycles       = 5
)

// startProvider runs the fake OAuth2 provider with short-lived access tokens.
func startProvider(t *testing.T, lifetime time.Duration) (*oauth2test.Server, string) {
	t.Helper()
	fake := oauth2test.New(oauth2test.Options{AccessLifetime: lifetime, ClientID: clientID, ClientSecret: clientSecret})
	url := fake.Start()
	t.Cleanup(fake.Close)
	return fake, url
}

// credentialFile is the non-secret part of a credential, as the starter reads it.
func credentialFile(id, tokenURL string) map[string]any {
	return map[string]any{
		"id":       id,
		"provider": "oauth2",
		"config":   map[string]any{"token_url": tokenURL, "client_id": clientID},
		"policy":   map[string]any{"refresh_margin": "1s", "jitter": "200ms", "retry_initial": "1s", "retry_max": "5s"},
	}
}

// assertRotationWasClean checks the provider's and the store's view after the worker
// has stopped: every refresh token presented once, no reuse, the latest one stored.
func assertRotationWasClean(t *testing.T, e *env, fake *oauth2test.Server, id string) {
	t.Helper()
	if got := fake.MaxPresentations(); got != 1 {
		t.Errorf("some refresh token was presented %d times, want exactly once each", got)
	}
	if got := fake.ReuseDetections(); got != 0 {
		t.Errorf("provider detected %d refresh-token reuses, want 0", got)
	}
	rec := e.storedRecord(id)
	latest, ok := fake.Latest(id)
	if !ok {
		t.Fatalf("provider has no live refresh token for %s (family revoked?)", id)
	}
	if rec.Secrets.RefreshToken != latest {
		t.Errorf("store holds refresh token %s, provider's live one is %s",
			oauth2test.Fingerprint(rec.Secrets.RefreshToken), oauth2test.Fingerprint(latest))
	}
	if !fake.ValidAccessToken(rec.Secrets.AccessToken) {
		t.Errorf("store's access token is not one the provider issued and still honours")
	}
	if want := int64(fake.Refreshes()) + 1; rec.Version != want {
		t.Errorf("store version %d, want %d (the seed plus one per provider refresh)", rec.Version, want)
	}
	t.Logf("%s: %d provider refreshes, %d presentations, store version %d, max presentations per token %d, reuse detections %d",
		id, fake.Refreshes(), fake.TotalPresentations(), rec.Version, fake.MaxPresentations(), fake.ReuseDetections())
}

func TestRefreshCyclesStartedByStarter(t *testing.T) {
	e := newEnv(t)
	fake, tokenURL := startProvider(t, 3*time.Second)
	w := e.startWorker()
	const id = "e2e-starter"
	seed := fake.Seed(id)

	cred := e.writeJSON("cred.json", credentialFile(id, tokenURL))
	secrets := fmt.Sprintf(`{"refresh_token":%q,"client_secret":%q}`, seed, clientSecret)
	if code, out := e.runStarter(secrets, "start", cred, "-secrets", "-"); code != 0 {
		t.Fatalf("starter start exited %d: %s", code, out)
	}
	start := time.Now()
	st := waitForStatus(t, id, 60*time.Second, "a first refresh", func(s workflows.Status) bool { return s.Refreshes >= 1 })
	firstRefreshes, firstEvents := st.Refreshes, historyLength(t, id)
	st = waitForStatus(t, id, 60*time.Second, fmt.Sprintf("%d refresh cycles", cycles), func(s workflows.Status) bool {
		return s.Refreshes >= firstRefreshes+cycles
	})
	elapsed := time.Since(start)
	if st.State != credential.StateActive && st.State != credential.StateRefreshing {
		t.Errorf("state %s after %d refreshes, want ACTIVE", st.State, st.Refreshes)
	}
	events := historyLength(t, id)
	perCycle := float64(events-firstEvents) / float64(st.Refreshes-firstRefreshes)
	t.Logf("%d refreshes in %s; %d history events in the run, %.1f per steady refresh cycle", st.Refreshes, elapsed.Round(time.Millisecond), events, perCycle)
	if perCycle > 12 {
		t.Errorf("%.1f history events per refresh cycle, want at most 12", perCycle)
	}

	// The starter against the live server: human status, list, duplicate, unknown.
	code, out := e.runStarter("", "status", id)
	if code != 0 || !strings.Contains(out, "ACTIVE") && !strings.Contains(out, "REFRESHING") {
		t.Errorf("starter status exited %d:\n%s", code, out)
	}
	code, out = e.runStarter("", "list")
	if code != 0 || !strings.Contains(out, id) || !strings.Contains(out, "1 credentials") {
		t.Errorf("starter list exited %d:\n%s", code, out)
	}
	if code, out := e.runStarter(secrets, "start", cred, "-secrets", "-"); code != 5 {
		t.Errorf("second start exited %d, want 5 (already exists): %s", code, out)
	}
	if code, out := e.runStarter("", "status", "no-such-credential"); code != 4 {
		t.Errorf("status of an unknown credential exited %d, want 4: %s", code, out)
	}

	// Stop the worker: the provider and the store must agree on the latest token.
	w.stop(t)
	assertRotationWasClean(t, e, fake, id)

	// A new worker process picks the credential up where the old one left it.
	e.startWorker()
	before := fake.Refreshes()
	waitFor(t, 30*time.Second, "refreshes after the worker restarted", func() (bool, string) {
		return fake.Refreshes() >= before+2, fmt.Sprintf("%d provider refreshes", fake.Refreshes())
	})

	fake.RevokeFamily(id)
	st = waitForStatus(t, id, 30*time.Second, "NEEDS_REAUTH after the grant was revoked", func(s workflows.Status) bool {
		return s.State == credential.StateNeedsReauth
	})
	if st.LastErrorCode != "invalid_grant" {
		t.Errorf("LastErrorCode %q, want invalid_grant", st.LastErrorCode)
	}
	waitFor(t, 20*time.Second, "TokenState=NEEDS_REAUTH in visibility", func() (bool, string) {
		resp, err := stack.client.ListWorkflow(context.Background(), &workflowservice.ListWorkflowExecutionsRequest{
			Query: fmt.Sprintf("TokenState = 'NEEDS_REAUTH' AND WorkflowId = '%s'", id),
		})
		if err != nil {
			return false, err.Error()
		}
		return len(resp.GetExecutions()) == 1, fmt.Sprintf("%d executions", len(resp.GetExecutions()))
	})
	code, out = e.runStarter("", "list", "-state", "NEEDS_REAUTH")
	if code != 0 || !strings.Contains(out, id) {
		t.Errorf("starter list -state NEEDS_REAUTH exited %d without %s:\n%s", code, id, out)
	}
}

func TestRefreshCyclesStartedByTemporalCLI(t *testing.T) {
	e := newEnv(t)
	fake, tokenURL := startProvider(t, 3*time.Second)
	w := e.startWorker()
	const id = "e2e-temporal-cli"

	// starter seal, then the temporal CLI with the sealed input from a file.
	cred := e.writeJSON("cred.json", credentialFile(id, tokenURL))
	inputFile := filepath.Join(t.TempDir(), "input.json")
	writeFile(t, inputFile, e.cliStarterOK(fmt.Sprintf(`{"refresh_token":%q,"client_secret":%q}`, fake.Seed(id), clientSecret),
		"seal", cred, "-secrets", "-"))
	runTemporal(t, "workflow", "start",
		"--type", workflows.WorkflowType,
		"--task-queue", e.taskQueue,
		"--workflow-id", id,
		"--input-file", inputFile)

	var st workflows.Status
	waitFor(t, 60*time.Second, fmt.Sprintf("%d refresh cycles via temporal workflow query", cycles), func() (bool, string) {
		out := runTemporal(t, "workflow", "query", "--workflow-id", id, "--name", workflows.QueryStatus, "--output", "json")
		var resp struct {
			QueryResult []workflows.Status `json:"queryResult"`
		}
		if err := json.Unmarshal([]byte(out), &resp); err != nil || len(resp.QueryResult) != 1 {
			return false, out
		}
		st = resp.QueryResult[0]
		return st.Refreshes >= cycles, out
	})
	w.stop(t)
	assertRotationWasClean(t, e, fake, id)
}
