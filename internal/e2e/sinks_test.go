package e2e

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.temporal.io/sdk/client"

	"github.com/tokenwarden/tokenwarden/activities"
	"github.com/tokenwarden/tokenwarden/internal/fakeoauth"
	"github.com/tokenwarden/tokenwarden/internal/provider"
	"github.com/tokenwarden/tokenwarden/workflows"
)

// A credential with an env sink keeps a .env file, shared with comments and other
// keys, up to date with the token store through several refreshes of a worker running
// as its own process.
func TestEnvSinkFollowsRefreshes(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	fake, tokenURL := startProvider(t, 3*time.Second)
	e.startWorker()
	const id = "e2e-sink"
	seed := fake.Seed(id)

	dir := t.TempDir()
	envPath := filepath.Join(dir, ".env")
	head := "# chat-bot settings\nAPP_NAME=chat bot\nexport DB_URL=\"postgres://db/app\"\n\n"
	tail := "# keep this comment\nLAST_KEY=1\n"
	if err := os.WriteFile(envPath, []byte(head+"ZALO_ACCESS_TOKEN=not-yet\n"+tail), 0o640); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(envPath, 0o640); err != nil {
		t.Fatal(err)
	}

	dur := func(d time.Duration) *workflows.Duration { v := workflows.Duration(d); return &v }
	in := workflows.CredentialInput{
		Provider: "oauth2",
		Config:   provider.Config{TokenURL: tokenURL, ClientID: clientID},
		Policy: workflows.Policy{RefreshMargin: dur(time.Second), Jitter: dur(200 * time.Millisecond),
			RetryInitial: dur(time.Second), RetryMax: dur(5 * time.Second)},
		Sinks: []workflows.Sink{
			{Type: activities.SinkEnv, Path: envPath, Key: "ZALO_ACCESS_TOKEN"},
			{Type: activities.SinkEnv, Path: envPath, Key: "ZALO_TOKEN_EXPIRES_AT", Value: activities.SinkValueExpiresAt},
		},
	}
	in.Seed = sealedSeed(t, id, in, workflows.Seed{RefreshToken: seed, ClientSecret: clientSecret})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := stack.client.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: id, TaskQueue: e.taskQueue},
		workflows.WorkflowType, in); err != nil {
		t.Fatalf("start: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = stack.client.TerminateWorkflow(ctx, id, "", "test finished")
	})

	// Three refreshes or more, then the file must match the store.
	waitForStatus(t, id, 90*time.Second, "3 refreshes with their sinks", func(s workflows.Status) bool {
		return s.Refreshes >= 3 && s.SinkVersion >= 4
	})
	var content string
	waitFor(t, 30*time.Second, "the .env file to hold the store's current access token", func() (bool, string) {
		rec := e.storedRecord(id)
		b, err := os.ReadFile(envPath)
		if err != nil {
			return false, err.Error()
		}
		content = string(b)
		want := head + "ZALO_ACCESS_TOKEN=" + rec.Secrets.AccessToken + "\n" + tail +
			"ZALO_TOKEN_EXPIRES_AT=" + rec.AccessExpiresAt.UTC().Format(time.RFC3339) + "\n"
		return content == want, "store version " + itoa(rec.Version) + ", file:\n" + content
	})
	rec := e.storedRecord(id)
	if !fake.ValidAccessToken(rec.Secrets.AccessToken) {
		t.Error("the store's access token is not one the provider honours")
	}
	if strings.Contains(content, rec.Secrets.RefreshToken) {
		t.Error("the refresh token reached the .env file")
	}
	fi, err := os.Stat(envPath)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o640 {
		t.Errorf("mode %v, want 0640", fi.Mode().Perm())
	}
	st, err := queryStatus(t, id)
	if err != nil {
		t.Fatal(err)
	}
	if st.LastSinkError != "" || st.State == workflows.StateNeedsReauth {
		t.Errorf("status: state %s, last sink error %q", st.State, st.LastSinkError)
	}
	// No temporary file left in the directory: only the file and its sidecar lock.
	entries, _ := os.ReadDir(dir)
	for _, de := range entries {
		if de.Name() != ".env" && de.Name() != "..env.lock" {
			t.Errorf("stray file %s next to the .env file", de.Name())
		}
	}
	t.Logf("%d refreshes; store version %d; sinks at version %d; fingerprint %s", st.Refreshes, rec.Version, st.SinkVersion,
		fakeoauth.Fingerprint(rec.Secrets.AccessToken))
}

func itoa(v int64) string { return strconv.FormatInt(v, 10) }
