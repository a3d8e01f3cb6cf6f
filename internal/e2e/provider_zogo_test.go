package e2e

import (
	"fmt"
	"testing"
	"time"

	"github.com/tokenwarden/tokenwarden/internal/credential"
	"github.com/tokenwarden/tokenwarden/internal/provider/zogo/zogotest"
	"github.com/tokenwarden/tokenwarden/workflows"
)

const (
	zogoClientID     = "1"
	zogoClientSecret = "zogo-e2e-client-secret-0123456789"
	zogoUser         = "shop@zogo.test"
	zogoPassword     = "zogo-e2e-password"
)

// startZogo runs the fake Zogo API with short-lived access tokens and one account.
func startZogo(t *testing.T, lifetime time.Duration) *zogotest.Server {
	t.Helper()
	fake := zogotest.New(zogotest.Options{AccessLifetime: lifetime, ClientID: zogoClientID, ClientSecret: zogoClientSecret})
	fake.AddUser(zogoUser, zogoPassword)
	fake.Start()
	t.Cleanup(fake.Close)
	return fake
}

func zogoCredentialFile(id, baseURL string) map[string]any {
	return map[string]any{
		"id":       id,
		"provider": "zogo",
		"config":   map[string]any{"base_url": baseURL, "client_id": zogoClientID},
		"policy":   map[string]any{"refresh_margin": "1s", "jitter": "200ms", "retry_initial": "1s", "retry_max": "5s"},
	}
}

// zogoWaitActive waits until the credential has done n more refreshes than from, failing
// at once if it ever parks in NEEDS_REAUTH.
func zogoWaitActive(t *testing.T, id string, from int64, n int64, what string) workflows.Status {
	t.Helper()
	var st workflows.Status
	waitFor(t, 60*time.Second, what, func() (bool, string) {
		var err error
		st, err = queryStatus(t, id)
		if err != nil {
			return false, err.Error()
		}
		if st.State == credential.StateNeedsReauth {
			t.Fatalf("%s: credential parked in NEEDS_REAUTH (%s: %s)", what, st.LastErrorCode, st.LastError)
		}
		return st.Refreshes >= from+n, fmt.Sprintf("state %s, %d refreshes, last error %q", st.State, st.Refreshes, st.LastErrorCode)
	})
	return st
}

// TestZogoRefreshCyclesAndLoginFallback rotates a Zogo refresh token through several
// cycles, then revokes the token family at the provider: the credential must recover by
// logging in with the stored password, stay ACTIVE and go on refreshing.
func TestZogoRefreshCyclesAndLoginFallback(t *testing.T) {
	e := newEnv(t)
	fake := startZogo(t, 3*time.Second)
	w := e.startWorker()
	const id = "e2e-zogo"
	seed := fake.Seed(zogoUser)

	cred := e.writeJSON("zogo.json", zogoCredentialFile(id, fake.URL()))
	secrets := fmt.Sprintf(`{"refresh_token":%q,"client_secret":%q,"username":%q,"password":%q}`,
		seed, zogoClientSecret, zogoUser, zogoPassword)
	if code, out := e.runStarter(secrets, "start", cred, "-secrets", "-"); code != 0 {
		t.Fatalf("starter start exited %d: %s", code, out)
	}
	st := zogoWaitActive(t, id, 0, 3, "three refresh cycles")
	if fake.Logins() != 0 {
		t.Errorf("%d logins before the family was revoked, want 0 (the refresh token works)", fake.Logins())
	}
	if fake.Refreshes() < 3 {
		t.Errorf("provider saw %d refreshes, want at least 3", fake.Refreshes())
	}

	// The user (or Zogo) revokes the token family: the next refresh is rejected and the
	// adapter logs in again with the stored password.
	fake.RevokeFamily(zogoUser)
	waitFor(t, 30*time.Second, "a login after the family was revoked", func() (bool, string) {
		return fake.Logins() >= 1, fake.String()
	})
	st = zogoWaitActive(t, id, st.Refreshes, 4, "refresh cycles after the login fallback")
	if st.State != credential.StateActive && st.State != credential.StateRefreshing {
		t.Errorf("state %s after recovery, want ACTIVE", st.State)
	}

	w.stop(t)
	if got := fake.Logins(); got != 1 {
		t.Errorf("%d logins, want exactly 1 (one revocation)", got)
	}
	if got := fake.MaxPresentations(); got != 1 {
		t.Errorf("some refresh token was presented %d times, want once each", got)
	}
	if got := fake.ReuseDetections(); got != 0 {
		t.Errorf("%d reuse detections, want 0", got)
	}
	rec := e.storedRecord(id)
	latest, ok := fake.Latest(zogoUser)
	if !ok {
		t.Fatalf("provider has no live refresh token after recovery: %s", fake)
	}
	if rec.Secrets.RefreshToken != latest {
		t.Errorf("store holds refresh token %s, provider's live one is %s",
			zogotest.Fingerprint(rec.Secrets.RefreshToken), zogotest.Fingerprint(latest))
	}
	if !fake.ValidAccessToken(rec.Secrets.AccessToken) {
		t.Errorf("stored access token is not one the provider still honours")
	}
	if rec.Secrets.Username != zogoUser || rec.Secrets.Password != zogoPassword || rec.Secrets.ClientSecret != zogoClientSecret {
		t.Errorf("stored login material changed")
	}
	if want := int64(fake.Refreshes()+fake.Logins()) + 1; rec.Version != want {
		t.Errorf("store version %d, want %d (seed + one per refresh or login)", rec.Version, want)
	}
	t.Logf("%s: %d refreshes, %d logins, store version %d", id, fake.Refreshes(), fake.Logins(), rec.Version)
}

// TestZogoLoginOnlySeedAndBadPassword seeds a credential with a login and no refresh
// token: it logs in, then rotates refresh tokens. When the family is revoked and the
// password no longer works, the credential parks in NEEDS_REAUTH with login_rejected.
func TestZogoLoginOnlySeedAndBadPassword(t *testing.T) {
	e := newEnv(t)
	fake := startZogo(t, 3*time.Second)
	e.startWorker()
	const id = "e2e-zogo-login"

	cred := e.writeJSON("zogo.json", zogoCredentialFile(id, fake.URL()))
	secrets := fmt.Sprintf(`{"client_secret":%q,"username":%q,"password":%q}`, zogoClientSecret, zogoUser, zogoPassword)
	if code, out := e.runStarter(secrets, "start", cred, "-secrets", "-"); code != 0 {
		t.Fatalf("starter start exited %d: %s", code, out)
	}
	zogoWaitActive(t, id, 0, 3, "a login and refresh cycles")
	if got := fake.Logins(); got != 1 {
		t.Errorf("%d logins, want 1 (the first refresh logs in, then refresh tokens rotate)", got)
	}
	if fake.Refreshes() < 2 {
		t.Errorf("%d refresh-token refreshes after the login, want at least 2", fake.Refreshes())
	}

	fake.AddUser(zogoUser, "the-password-was-changed")
	fake.RevokeFamily(zogoUser)
	st := waitForStatus(t, id, 30*time.Second, "NEEDS_REAUTH after the password changed", func(s workflows.Status) bool {
		return s.State == credential.StateNeedsReauth
	})
	if st.LastErrorCode != "login_rejected" {
		t.Errorf("LastErrorCode %q, want login_rejected", st.LastErrorCode)
	}
	if fake.ReuseDetections() != 0 || fake.MaxPresentations() != 1 {
		t.Errorf("reuse detections %d, max presentations %d; want 0 and 1", fake.ReuseDetections(), fake.MaxPresentations())
	}
}
