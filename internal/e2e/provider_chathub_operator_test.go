package e2e

import (
	"strconv"
	"testing"
	"time"

	"github.com/tokenwarden/tokenwarden/internal/credential"
	"github.com/tokenwarden/tokenwarden/internal/provider/chathub/chathubtest"
	"github.com/tokenwarden/tokenwarden/workflows"
)

// TestChatHubOperatorMintedWithItsParent: an operator token is minted with the company
// credential's token, read from the store; when ChatHub refuses the company token, the
// operator asks the company credential to log in again and carries on — no human needed.
func TestChatHubOperatorMintedWithItsParent(t *testing.T) {
	e := newEnv(t)
	fake := startChatHub(t, chathubtest.Options{CompanyLifetime: time.Hour})
	const operatorID = 7
	fake.AddOperator(chathubLogin, operatorID)
	w := e.startWorker()
	const company, operator = "e2e-chathub-parent", "e2e-chathub-operator"
	chathubStart(t, e, company, fake.URL(), map[string]any{"refresh_margin": "10m"})
	waitForStatus(t, company, 30*time.Second, "the company token", func(s workflows.Status) bool { return s.Refreshes >= 1 })

	cred := e.writeJSON("operator.json", map[string]any{
		"id":       operator,
		"provider": "chathub-operator",
		"config": map[string]any{"base_url": fake.URL(), "operator_id": strconv.Itoa(operatorID),
			"parent": company, "token_lifetime": "3s"},
		"policy": map[string]any{"refresh_margin": "1s", "jitter": "200ms", "retry_initial": "1s", "retry_max": "3s"},
	})
	if code, out := e.runStarter(`{}`, "start", cred, "-secrets", "-"); code != 0 {
		t.Fatalf("starter start exited %d: %s", code, out)
	}
	st := waitForStatus(t, operator, 60*time.Second, "three operator tokens", func(s workflows.Status) bool {
		return s.Refreshes >= 3
	})
	companyLogins := fake.Logins()

	// ChatHub stops honouring the company token: the operator's next mint gets a 401.
	fake.RevokeCompanyTokens(chathubLogin)
	before := st.Refreshes
	st = waitForStatus(t, operator, 60*time.Second, "operator tokens again after the company re-login", func(s workflows.Status) bool {
		if s.State == credential.StateNeedsReauth {
			t.Fatalf("operator parked: %s %s", s.LastErrorCode, s.LastError)
		}
		return s.Refreshes >= before+2
	})
	if fake.Logins() <= companyLogins {
		t.Errorf("the company credential did not log in again (%d logins before, %d after)", companyLogins, fake.Logins())
	}
	cst, err := queryStatus(t, company)
	if err != nil || cst.State != credential.StateActive {
		t.Errorf("company credential: %+v %v", cst.State, err)
	}
	w.stop(t)
	rec := e.storedRecord(operator)
	if !fake.ValidOperatorToken(rec.Secrets.AccessToken) {
		t.Errorf("the stored operator token is not one ChatHub honours")
	}
	t.Logf("operator: %d tokens minted, company logins %d", fake.OperatorTokens(), fake.Logins())
}
