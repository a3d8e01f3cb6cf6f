package e2e

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/tokenwarden/tokenwarden/internal/credential"
	"github.com/tokenwarden/tokenwarden/internal/provider/zalo/zalotest"
	"github.com/tokenwarden/tokenwarden/workflows"
)

const (
	zaloAppID     = "1234567890123456789"
	zaloAppSecret = "e2e-Zalo-App-Secret-0123456789"
	zaloCycles    = 3
)

// TestZaloOARefreshCycles runs a zalo-oa credential, started by the starter, through
// several rotations on the fake Zalo server: every refresh token processed exactly once,
// the store holding the fake's latest, then a revoked authorization parks it.
func TestZaloOARefreshCycles(t *testing.T) {
	e := newEnv(t)
	fake := zalotest.New(zalotest.Options{
		AppID:     zaloAppID,
		AppSecret: zaloAppSecret,
		// 4 s instead of Zalo's 25 h, sent as a string as Zalo sometimes does.
		AccessLifetime:    4 * time.Second,
		ExpiresInAsString: true,
	})
	fake.Start()
	t.Cleanup(fake.Close)
	w := e.startWorker()

	const id = "e2e-zalo-oa"
	seed := fake.SeedOA(id)
	cred := e.writeJSON("zalo-oa.json", map[string]any{
		"id":       id,
		"provider": "zalo-oa",
		"config":   map[string]any{"client_id": zaloAppID, "base_url": fake.URL()},
		"policy":   map[string]any{"refresh_margin": "1s", "jitter": "200ms", "retry_initial": "1s", "retry_max": "5s"},
	})
	secrets := fmt.Sprintf(`{"refresh_token":%q,"client_secret":%q}`, seed, zaloAppSecret)
	if code, out := e.runStarter(secrets, "start", cred, "-secrets", "-"); code != 0 {
		t.Fatalf("starter start exited %d: %s", code, out)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = stack.client.TerminateWorkflow(ctx, id, "", "test finished")
	})

	st := waitForStatus(t, id, 90*time.Second, fmt.Sprintf("%d zalo refresh cycles", zaloCycles), func(s workflows.Status) bool {
		return s.Refreshes >= zaloCycles
	})
	if st.State != credential.StateActive && st.State != credential.StateRefreshing {
		t.Errorf("state %s after %d refreshes, want ACTIVE", st.State, st.Refreshes)
	}
	if st.Provider != "zalo-oa" {
		t.Errorf("status provider %q", st.Provider)
	}
	if life := st.AccessExpiresAt.Sub(st.LastRefreshAt); life < 3*time.Second || life > 6*time.Second {
		t.Errorf("access lifetime in status %v, want about 4s (expires_in \"4\")", life)
	}
	w.stop(t)

	// The fake's and the store's view: each refresh token presented and processed once.
	if got := fake.MaxPresentations(); got != 1 {
		t.Errorf("some refresh token was presented %d times, want exactly once each", got)
	}
	if got := fake.MaxProcessed(); got != 1 {
		t.Errorf("some refresh token was processed %d times, want exactly once each", got)
	}
	if got := fake.ReuseDetections(); got != 0 {
		t.Errorf("fake detected %d refresh-token reuses, want 0", got)
	}
	if fake.Refreshes() < zaloCycles {
		t.Errorf("fake saw %d refreshes, want at least %d", fake.Refreshes(), zaloCycles)
	}
	rec := e.storedRecord(id)
	latest, ok := fake.Latest(id)
	if !ok {
		t.Fatalf("fake has no live refresh token for %s", id)
	}
	if rec.Secrets.RefreshToken != latest {
		t.Errorf("store holds refresh token %s, the fake's live one is %s",
			zalotest.Fingerprint(rec.Secrets.RefreshToken), zalotest.Fingerprint(latest))
	}
	if rec.Secrets.ClientSecret != zaloAppSecret {
		t.Errorf("store lost the app secret")
	}
	if want := int64(fake.Refreshes()) + 1; rec.Version != want {
		t.Errorf("store version %d, want %d (the seed plus one per refresh)", rec.Version, want)
	}
	// No refresh_token_expires_in from the fake: the adapter assumes about 90 days.
	if d := time.Until(rec.RefreshExpiresAt); d < 89*24*time.Hour || d > 91*24*time.Hour {
		t.Errorf("stored refresh expiry %v away, want about 90 days", d.Round(time.Hour))
	}
	t.Logf("%s: %d refreshes, %d presentations, store version %d", id, fake.Refreshes(), fake.TotalPresentations(), rec.Version)

	// The OA admin removes the app's authorization: Zalo answers -14014 and the
	// credential waits for a human.
	e.startWorker()
	fake.RevokeFamily(id)
	st = waitForStatus(t, id, 60*time.Second, "NEEDS_REAUTH after the authorization was revoked", func(s workflows.Status) bool {
		return s.State == credential.StateNeedsReauth
	})
	if st.LastErrorCode != "-14014" {
		t.Errorf("LastErrorCode %q, want -14014", st.LastErrorCode)
	}
	if got := fake.MaxProcessed(); got != 1 {
		t.Errorf("after revocation some refresh token was processed %d times, want 1", got)
	}
}
