package e2e

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	enumspb "go.temporal.io/api/enums/v1"

	"github.com/tokenwarden/tokenwarden/internal/store"
)

// TestUnusedCredentialRetires: a credential nobody reads goes at its
// retire_after_unused deadline: `starter cleanup -dry-run` lists it beforehand, then its
// workflow deletes the secrets from the store and completes.
func TestUnusedCredentialRetires(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	fake, tokenURL := startProvider(t, time.Hour)
	w := e.startWorker()
	const id = "e2e-unused"
	cred := credentialFile(id, tokenURL)
	cred["policy"].(map[string]any)["retire_after_unused"] = "8s"
	secrets := fmt.Sprintf(`{"refresh_token":%q,"client_secret":%q}`, fake.Seed(id), clientSecret)
	if code, out := e.runStarter(secrets, "start", e.writeJSON("cred.json", cred), "-secrets", "-"); code != 0 {
		t.Fatalf("starter start exited %d: %s", code, out)
	}
	waitFor(t, 30*time.Second, "the first refresh", func() (bool, string) {
		return fake.Refreshes() >= 1, fmt.Sprint(fake.Refreshes(), " refreshes")
	})

	code, out := e.runStarter("", "cleanup", "-dry-run", "-within", "1m")
	if code != 0 || !strings.Contains(out, id) {
		t.Fatalf("cleanup -dry-run exited %d without %s:\n%s", code, id, out)
	}

	waitFor(t, 60*time.Second, "the workflow to retire itself", func() (bool, string) {
		d, err := stack.client.DescribeWorkflow(context.Background(), id, "")
		if err != nil {
			return false, err.Error()
		}
		s := d.RawResponse.GetWorkflowExecutionInfo().GetStatus()
		return s == enumspb.WORKFLOW_EXECUTION_STATUS_COMPLETED, s.String()
	})
	w.stop(t)
	s := e.openStore()
	if _, err := s.Get(context.Background(), id); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("the retired credential's record is still in the store (err %v)", err)
	}
}
