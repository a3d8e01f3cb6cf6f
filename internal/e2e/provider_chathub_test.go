package e2e

import (
	"fmt"
	"testing"
	"time"

	"github.com/tokenwarden/tokenwarden/internal/credential"
	"github.com/tokenwarden/tokenwarden/internal/provider/chathub"
	"github.com/tokenwarden/tokenwarden/internal/provider/chathub/chathubtest"
	"github.com/tokenwarden/tokenwarden/workflows"
)

const (
	chathubLogin    = "e2e-company"
	chathubPassword = "chathub-e2e-password"
)

func startChatHub(t *testing.T, opts chathubtest.Options) *chathubtest.Server {
	t.Helper()
	fake := chathubtest.New(opts)
	fake.AddCompany(chathubLogin, chathubPassword)
	fake.Start()
	t.Cleanup(fake.Close)
	return fake
}

func chathubCredentialFile(id, baseURL string, policy map[string]any) map[string]any {
	p := map[string]any{"refresh_margin": "1s", "jitter": "200ms", "retry_initial": "1s", "retry_max": "5s"}
	for k, v := range policy {
		p[k] = v
	}
	return map[string]any{"id": id, "provider": "chathub-company", "config": map[string]any{"base_url": baseURL}, "policy": p}
}

func chathubStart(t *testing.T, e *env, id, baseURL string, policy map[string]any) {
	t.Helper()
	cred := e.writeJSON("chathub.json", chathubCredentialFile(id, baseURL, policy))
	secrets := fmt.Sprintf(`{"username":%q,"password":%q}`, chathubLogin, chathubPassword)
	if code, out := e.runStarter(secrets, "start", cred, "-secrets", "-"); code != 0 {
		t.Fatalf("starter start exited %d: %s", code, out)
	}
}

// TestChatHubCompanyTokenFromExpClaim: company tokens whose JWT carries a 3-second exp
// are re-minted by logging in again, scheduled by the exp claim.
func TestChatHubCompanyTokenFromExpClaim(t *testing.T) {
	e := newEnv(t)
	fake := startChatHub(t, chathubtest.Options{CompanyLifetime: 3 * time.Second})
	w := e.startWorker()
	const id = "e2e-chathub-exp"
	chathubStart(t, e, id, fake.URL(), nil)

	st := waitForStatus(t, id, 60*time.Second, "three company-token cycles", func(s workflows.Status) bool {
		if s.State == credential.StateNeedsReauth {
			t.Fatalf("NEEDS_REAUTH: %s %s", s.LastErrorCode, s.LastError)
		}
		return s.Refreshes >= 4 // the first login plus three cycles
	})
	if st.AccessExpiresAt.IsZero() || st.AccessExpiresAt.Sub(st.LastRefreshAt) > 4*time.Second {
		t.Errorf("access expires at %s after a refresh at %s; want the JWT's exp, about 3s later", st.AccessExpiresAt, st.LastRefreshAt)
	}
	w.stop(t)

	rec := e.storedRecord(id)
	if rec.Secrets.AccessToken != fake.NewestCompanyToken(chathubLogin) {
		t.Errorf("store does not hold the newest company token")
	}
	if exp, err := chathub.TokenExpiry(rec.Secrets.AccessToken); err != nil || !exp.Equal(rec.AccessExpiresAt) {
		t.Errorf("stored expiry %s, JWT exp %s (%v)", rec.AccessExpiresAt, exp, err)
	}
	if rec.Secrets.RefreshToken != "" {
		t.Errorf("a refresh token was stored for a provider that issues none")
	}
	if want := int64(fake.Logins()) + 1; rec.Version != want {
		t.Errorf("store version %d, want %d (seed + one per login)", rec.Version, want)
	}
	if fake.LoginFailures() != 0 {
		t.Errorf("%d failed logins", fake.LoginFailures())
	}
	t.Logf("%s: %d logins, store version %d", id, fake.Logins(), rec.Version)
}

// TestChatHubCompanyTokenWithoutExp: tokens without exp are rotated on their rotation
// period, config.token_lifetime; a changed password parks the credential with
// login_rejected.
func TestChatHubCompanyTokenWithoutExp(t *testing.T) {
	e := newEnv(t)
	fake := startChatHub(t, chathubtest.Options{Unsigned: true})
	e.startWorker()
	const id = "e2e-chathub-noexp"
	file := chathubCredentialFile(id, fake.URL(), nil)
	file["config"].(map[string]any)["token_lifetime"] = "3s"
	secrets := fmt.Sprintf(`{"username":%q,"password":%q}`, chathubLogin, chathubPassword)
	if code, out := e.runStarter(secrets, "start", e.writeJSON("chathub.json", file), "-secrets", "-"); code != 0 {
		t.Fatalf("starter start exited %d: %s", code, out)
	}

	waitForStatus(t, id, 60*time.Second, "three company-token cycles on the rotation period", func(s workflows.Status) bool {
		if s.State == credential.StateNeedsReauth {
			t.Fatalf("NEEDS_REAUTH: %s %s", s.LastErrorCode, s.LastError)
		}
		return s.Refreshes >= 4 // the first login plus three cycles
	})
	if tok, ok := fake.LatestCompanyToken(chathubLogin); !ok || tok == "" {
		t.Errorf("no live company token at the fake")
	}
	rec := e.storedRecord(id)
	if rec.AccessExpiresAt.IsZero() || time.Until(rec.AccessExpiresAt) > 3*time.Second {
		t.Errorf("stored expiry %s for a token without exp, want the end of its 3s rotation period", rec.AccessExpiresAt)
	}
	if !fake.ValidCompanyToken(rec.Secrets.AccessToken) {
		t.Errorf("stored company token is not one the fake issued")
	}

	fake.AddCompany(chathubLogin, "the-password-was-changed")
	st := waitForStatus(t, id, 30*time.Second, "NEEDS_REAUTH after the password changed", func(s workflows.Status) bool {
		return s.State == credential.StateNeedsReauth
	})
	if st.LastErrorCode != "login_rejected" {
		t.Errorf("LastErrorCode %q, want login_rejected", st.LastErrorCode)
	}
}
