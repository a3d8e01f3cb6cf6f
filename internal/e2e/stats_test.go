package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"go.temporal.io/api/workflowservice/v1"

	"github.com/tokenwarden/tokenwarden/internal/credential"
	"github.com/tokenwarden/tokenwarden/internal/provider/baoming/baomingtest"
	"github.com/tokenwarden/tokenwarden/workflows"
)

// statsRow is one provider's row of `starter stats -json`.
type statsRow struct {
	Provider string `json:"provider"`
	Total    int    `json:"total"`
	Live     int    `json:"live"`
	Failing  int    `json:"failing"`
	Seeding  int    `json:"seeding"`
	Retired  int    `json:"retired"`
	Started  int    `json:"started"`
}

// TestStarterStats: `starter stats` against a server of the test's own, so that the
// figures are exactly its credentials: two oauth2 ones running (one live that has
// continued-as-new, one parked in NEEDS_REAUTH), one oauth2 one retired, and a live
// baoming one.
func TestStarterStats(t *testing.T) {
	t.Parallel()
	srv := startPrivateServer(t)
	e := newEnv(t)
	e.address = srv.hostPort
	fake, tokenURL := startProvider(t, cliAccessLifetime)
	bm := baomingtest.New()
	bmBase := bm.Start()
	t.Cleanup(bm.Close)
	e.startWorker()

	start := func(id string, cred map[string]any, secrets string) {
		t.Helper()
		e.cliStarterOK(secrets, "start", e.writeJSON(id+".json", cred), "-secrets", "-")
		waitForStatusOn(t, srv.client(), id, 30*time.Second, id+" ACTIVE", func(s workflows.Status) bool {
			return s.State == credential.StateActive
		})
	}
	oauthSecrets := func(id string) string {
		return fmt.Sprintf(`{"refresh_token":%q,"client_secret":%q}`, fake.Seed(id), clientSecret)
	}

	// Live, and continued-as-new: its access tokens live 3 s, so its own timers refresh
	// it every two seconds or so, and its history limit is short.
	const live = "e2e-stats-live"
	fast, fastURL := startProvider(t, 3*time.Second)
	cred := credentialFile(live, fastURL)
	cred["history_event_limit"] = historyEventLimit
	start(live, cred, fmt.Sprintf(`{"refresh_token":%q,"client_secret":%q}`, fast.Seed(live), clientSecret))
	waitFor(t, 60*time.Second, live+" to continue-as-new", func() (bool, string) {
		resp, err := srv.client().CountWorkflow(context.Background(), &workflowservice.CountWorkflowExecutionsRequest{
			Query: fmt.Sprintf("WorkflowId = '%s' AND ExecutionStatus = 'ContinuedAsNew'", live)})
		if err != nil {
			return false, err.Error()
		}
		return resp.GetCount() >= 1, fmt.Sprintf("%d runs continued-as-new", resp.GetCount())
	})

	// Parked: the grant is revoked, the next refresh fails permanently.
	const parked = "e2e-stats-reauth"
	start(parked, credentialFile(parked, tokenURL), oauthSecrets(parked))
	fake.RevokeFamily(parked)
	e.cliStarterExit(1, "", "refresh", parked)

	// Retired within the period.
	const retired = "e2e-stats-retired"
	start(retired, credentialFile(retired, tokenURL), oauthSecrets(retired))
	e.cliStarterOK("", "retire", retired, "-yes")

	// A second provider.
	const probed = "e2e-stats-baoming"
	token := bm.Issue()
	eid := baomingtest.NewEnrollID()
	bm.Enroll(token, eid)
	start(probed, map[string]any{"id": probed, "provider": "baoming", "config": map[string]any{"base_url": bmBase, "eid": eid}},
		fmt.Sprintf(`{"access_token":%q}`, token))

	want := map[string]statsRow{
		"oauth2":  {Provider: "oauth2", Total: 2, Live: 1, Failing: 1, Retired: 1, Started: 3},
		"baoming": {Provider: "baoming", Total: 1, Live: 1, Started: 1},
		"all":     {Provider: "all", Total: 3, Live: 2, Failing: 1, Retired: 1, Started: 4},
	}
	// Visibility lags behind the workflows: wait for it to agree.
	var report struct {
		Since     time.Time  `json:"since"`
		Until     time.Time  `json:"until"`
		Period    string     `json:"period"`
		Providers []statsRow `json:"providers"`
		All       statsRow   `json:"all"`
	}
	waitFor(t, 30*time.Second, "starter stats -json to count the four credentials", func() (bool, string) {
		out := e.cliStarterOK("", "stats", "-json")
		report.Providers = nil
		if err := json.Unmarshal([]byte(out), &report); err != nil {
			return false, fmt.Sprintf("%v:\n%s", err, out)
		}
		if report.All != want["all"] {
			return false, out
		}
		for _, r := range report.Providers {
			w, ok := want[r.Provider]
			if !ok {
				w = statsRow{Provider: r.Provider}
			}
			if r != w {
				return false, out
			}
		}
		return true, out
	})
	if report.Period != "30d" || report.Until.Sub(report.Since) != 30*24*time.Hour {
		t.Errorf("default period: %q from %s to %s, want 30d", report.Period, report.Since, report.Until)
	}

	out := e.cliStarterOK("", "stats")
	t.Logf("starter stats:\n%s", out)
	for _, row := range []string{"oauth2 ", "baoming ", "all "} {
		if !strings.Contains(out, "\n"+row) {
			t.Errorf("starter stats has no %q row:\n%s", row, out)
		}
	}
	if !strings.Contains(out, "within the last 30d") {
		t.Errorf("starter stats does not name its period:\n%s", out)
	}

	// A period too short to say anything is refused before the server is asked.
	out = e.cliStarterExit(2, "", "stats", "-since", "10s")
	if !strings.Contains(out, "shorter than") {
		t.Errorf("starter stats -since 10s:\n%s", out)
	}
}
