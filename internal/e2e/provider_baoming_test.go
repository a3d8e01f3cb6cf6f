package e2e

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/tokenwarden/tokenwarden/internal/credential"
	"github.com/tokenwarden/tokenwarden/internal/provider"
	"github.com/tokenwarden/tokenwarden/internal/provider/baoming/baomingtest"
	"github.com/tokenwarden/tokenwarden/workflows"
)

// TestBaomingLivenessLifecycle: a provider without a refresh endpoint lives on probes.
// The token is probed on its interval (the enrollment-detail call of an enrollment the
// account has joined), a dead token parks the credential, and a reseed with a fresh
// login brings it back.
func TestBaomingLivenessLifecycle(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	fake := baomingtest.New()
	base := fake.Start()
	t.Cleanup(fake.Close)
	e.startWorker()
	const id = "e2e-baoming"
	first := fake.Issue()
	eid := baomingtest.NewEnrollID()
	fake.Enroll(first, eid)

	cred := e.writeJSON("baoming.json", map[string]any{
		"id":       id,
		"provider": "baoming",
		"config":   map[string]any{"base_url": base, "eid": eid},
		"policy":   map[string]any{"probe_interval": "1s", "retry_initial": "1s", "retry_max": "2s"},
	})
	if code, out := e.runStarter(fmt.Sprintf(`{"access_token":%q}`, first), "start", cred, "-secrets", "-"); code != 0 {
		t.Fatalf("starter start exited %d: %s", code, out)
	}
	waitForStatus(t, id, 30*time.Second, "three probes", func(s workflows.Status) bool { return s.Probes >= 3 })
	if got := fake.Probes(first); got < 3 {
		t.Fatalf("fake saw %d probes, want at least 3", got)
	}

	fake.Invalidate(first)
	st := waitForStatus(t, id, 30*time.Second, "NEEDS_REAUTH after the token died", func(s workflows.Status) bool {
		return s.State == credential.StateNeedsReauth
	})
	if st.LastErrorCode != "token_rejected" {
		t.Errorf("LastErrorCode %q, want token_rejected", st.LastErrorCode)
	}
	parkedProbes := fake.Probes(first)

	second := fake.Reissue(first) // the same account logs in again: still enrolled
	reseed := sealedSeed(t, id, workflows.CredentialInput{Provider: "baoming", Config: provider.Config{BaseURL: base, EnrollID: eid}},
		workflows.Seed{AccessToken: second})
	if err := stack.client.SignalWorkflow(context.Background(), id, "", workflows.SignalReseed, *reseed); err != nil {
		t.Fatal(err)
	}
	waitForStatus(t, id, 30*time.Second, "ACTIVE again with the new token probed", func(s workflows.Status) bool {
		return s.State == credential.StateActive && fake.Probes(second) >= 2
	})
	if got := fake.Probes(first); got != parkedProbes {
		t.Errorf("the dead token was probed %d more times after the credential parked", got-parkedProbes)
	}
	if rec := e.storedRecord(id); rec.Secrets.AccessToken != second || rec.Secrets.RefreshToken != "" {
		t.Errorf("store does not hold the reseeded access token alone")
	}
}
