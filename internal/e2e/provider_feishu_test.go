package e2e

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/tokenwarden/tokenwarden/internal/credential"
	"github.com/tokenwarden/tokenwarden/internal/provider/feishu/feishutest"
	"github.com/tokenwarden/tokenwarden/workflows"
)

const (
	feishuAppID     = "cli_e2e_feishu_app"
	feishuAppSecret = "e2e-feishu-app-secret-value"
)

// terminateAtEnd ends the credential's workflow when the test ends, so that a rerun
// (-count=2) can start it afresh on the shared dev server.
func terminateAtEnd(t *testing.T, id string) {
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = stack.client.TerminateWorkflow(ctx, id, "", "test finished")
	})
}

// feishuCredential is a Feishu credential file as the starter reads it, pointed at the
// fake through config.base_url.
func feishuCredential(id, providerName, base string) map[string]any {
	return map[string]any{
		"id":       id,
		"provider": providerName,
		"config":   map[string]any{"client_id": feishuAppID, "base_url": base},
		"policy":   map[string]any{"refresh_margin": "1s", "jitter": "200ms", "retry_initial": "1s", "retry_max": "5s"},
	}
}

// TestFeishuUserRefreshCycles: single-use Feishu refresh tokens through the whole stack.
// Every rotated refresh token is presented and processed exactly once (the seed report's
// "verify" step would have made it twice), and the store ends up holding the one the fake
// considers live.
func TestFeishuUserRefreshCycles(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	fake := feishutest.New(feishutest.Options{AppID: feishuAppID, AppSecret: feishuAppSecret, UserAccessLifetime: 4 * time.Second})
	base := fake.Start()
	t.Cleanup(fake.Close)
	w := e.startWorker()
	const id = "e2e-feishu-user"
	terminateAtEnd(t, id)
	seed := fake.Seed(id)

	cred := e.writeJSON("feishu-user.json", feishuCredential(id, "feishu-user", base))
	secrets := fmt.Sprintf(`{"refresh_token":%q,"client_secret":%q}`, seed, feishuAppSecret)
	if code, out := e.runStarter(secrets, "start", cred, "-secrets", "-"); code != 0 {
		t.Fatalf("starter start exited %d: %s", code, out)
	}
	st := waitForStatus(t, id, 90*time.Second, "three refresh cycles", func(s workflows.Status) bool { return s.Refreshes >= 3 })
	if st.State != credential.StateActive && st.State != credential.StateRefreshing {
		t.Errorf("state %s after %d refreshes, want ACTIVE", st.State, st.Refreshes)
	}
	if st.RefreshExpiresAt.IsZero() {
		t.Errorf("status has no refresh-token expiry; refresh_token_expires_in was sent")
	}
	w.stop(t)

	if got := fake.MaxPresentations(); got != 1 {
		t.Errorf("some refresh token was presented %d times, want exactly once each", got)
	}
	if got := fake.MaxProcessed(); got != 1 {
		t.Errorf("Feishu processed some refresh token %d times, want exactly once each", got)
	}
	if got := fake.ReuseDetections(); got != 0 {
		t.Errorf("%d reused refresh tokens (code 20073), want 0", got)
	}
	if fake.Processed(seed) != 1 {
		t.Errorf("the seed was processed %d times, want 1", fake.Processed(seed))
	}
	rec := e.storedRecord(id)
	latest, ok := fake.Latest(id)
	if !ok {
		t.Fatalf("the fake has no live refresh token for %s", id)
	}
	if rec.Secrets.RefreshToken != latest {
		t.Errorf("store holds refresh token %s, Feishu's live one is %s",
			feishutest.Fingerprint(rec.Secrets.RefreshToken), feishutest.Fingerprint(latest))
	}
	if !fake.ValidUserAccessToken(rec.Secrets.AccessToken) && time.Now().Before(rec.AccessExpiresAt) {
		t.Errorf("store's access token is not one the fake issued")
	}
	if want := int64(fake.Refreshes()) + 1; rec.Version != want {
		t.Errorf("store version %d, want %d (the seed plus one per refresh)", rec.Version, want)
	}
	t.Logf("%s: %d refreshes, %d presentations, store version %d", id, fake.Refreshes(), fake.TotalPresentations(), rec.Version)
}

// TestFeishuTenantMints: a tenant credential re-minted with app_id/app_secret alone.
// The fake's tokens live 6s and are re-issued unchanged while 1.5s or more are left (the
// scaled-down 2h/30m rule), so the run sees both answers: the same token handed back,
// which must not break anything, and new tokens.
func TestFeishuTenantMints(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	fake := feishutest.New(feishutest.Options{AppID: feishuAppID, AppSecret: feishuAppSecret,
		TenantLifetime: 6 * time.Second, ReissueWindow: 1500 * time.Millisecond})
	base := fake.Start()
	t.Cleanup(fake.Close)
	w := e.startWorker()
	const id = "e2e-feishu-tenant"
	terminateAtEnd(t, id)

	cred := e.writeJSON("feishu-tenant.json", feishuCredential(id, "feishu-tenant", base))
	if code, out := e.runStarter(fmt.Sprintf(`{"client_secret":%q}`, feishuAppSecret), "start", cred, "-secrets", "-"); code != 0 {
		t.Fatalf("starter start exited %d: %s", code, out)
	}
	waitFor(t, 90*time.Second, "three tenant tokens minted", func() (bool, string) {
		return fake.TenantMints() >= 3, fmt.Sprintf("%d mints, %d re-issues", fake.TenantMints(), fake.TenantReissues())
	})
	st := waitForStatus(t, id, 10*time.Second, "the credential settled", func(s workflows.Status) bool {
		return s.State == credential.StateActive
	})
	w.stop(t)

	if st.ConsecutiveFailures != 0 || st.LastErrorCode != "" {
		t.Errorf("failures %d, last error %q", st.ConsecutiveFailures, st.LastErrorCode)
	}
	if fake.TenantReissues() < 1 {
		t.Errorf("no re-mint returned the unchanged token; the test did not exercise the 30-minute rule")
	}
	rec := e.storedRecord(id)
	if rec.Secrets.AccessToken != fake.CurrentTenantToken() {
		t.Errorf("store holds tenant token %s, the fake's current one is %s",
			feishutest.Fingerprint(rec.Secrets.AccessToken), feishutest.Fingerprint(fake.CurrentTenantToken()))
	}
	if rec.Secrets.RefreshToken != "" || rec.Secrets.ClientSecret != feishuAppSecret {
		t.Errorf("store holds a refresh token or lost the app secret")
	}
	if want := int64(fake.Requests(feishutest.TenantTokenPath)) + 1; rec.Version != want {
		t.Errorf("store version %d, want %d (the seed plus one per mint)", rec.Version, want)
	}
	t.Logf("%s: %d mints, %d unchanged re-issues, store version %d, %d refreshes in status",
		id, fake.TenantMints(), fake.TenantReissues(), rec.Version, st.Refreshes)
}
