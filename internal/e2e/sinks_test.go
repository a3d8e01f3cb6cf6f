package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.temporal.io/sdk/client"

	"github.com/tokenwarden/tokenwarden/activities"
	"github.com/tokenwarden/tokenwarden/internal/credential"
	"github.com/tokenwarden/tokenwarden/internal/provider"
	"github.com/tokenwarden/tokenwarden/internal/provider/oauth2/oauth2test"
	"github.com/tokenwarden/tokenwarden/workflows"
)

// A credential with an env sink keeps a .env file, shared with comments and other
// keys, up to date with the token store through several refreshes of a worker running
// as its own process.
func TestEnvSinkFollowsRefreshes(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	fake, tokenURL := startProvider(t, 3*time.Second)
	dir := t.TempDir()
	// Env sinks write only in the directories the worker's operator lists.
	e.startWorkerBin(stack.workerBin, "TOKENWARDEN_SINK_DIRS="+dir)
	const id = "e2e-sink"
	seed := fake.Seed(id)

	envPath := filepath.Join(dir, ".env")
	head := "# chat-bot settings\nAPP_NAME=chat bot\nexport DB_URL=\"postgres://db/app\"\n\n"
	tail := "# keep this comment\nLAST_KEY=1\n"
	if err := os.WriteFile(envPath, []byte(head+"ZALO_ACCESS_TOKEN=not-yet\n"+tail), 0o640); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(envPath, 0o640); err != nil {
		t.Fatal(err)
	}

	// The application's reload endpoint: it records, for every POST, the notice and the
	// .env file as the application would read it then.
	type reloadCall struct {
		notice activities.ReloadNotice
		body   string
		file   string
	}
	var mu sync.Mutex
	var reloads []reloadCall
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(io.LimitReader(r.Body, 1<<16))
		file, _ := os.ReadFile(envPath)
		var n activities.ReloadNotice
		_ = json.Unmarshal(b, &n)
		mu.Lock()
		reloads = append(reloads, reloadCall{notice: n, body: string(b), file: string(file)})
		mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(app.Close)

	dur := func(d time.Duration) *workflows.Duration { v := workflows.Duration(d); return &v }
	in := workflows.CredentialInput{
		Provider: "oauth2",
		Config:   provider.Config{TokenURL: tokenURL, ClientID: clientID},
		Policy: workflows.Policy{RefreshMargin: dur(time.Second), Jitter: dur(200 * time.Millisecond),
			RetryInitial: dur(time.Second), RetryMax: dur(5 * time.Second)},
		Sinks: []credential.Sink{
			{Type: credential.SinkEnv, Path: envPath, Key: "ZALO_ACCESS_TOKEN", ReloadURL: app.URL + "/reload"},
			{Type: credential.SinkEnv, Path: envPath, Key: "ZALO_TOKEN_EXPIRES_AT", Value: credential.SinkValueExpiresAt},
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
	if st.LastSinkError != "" || st.State == credential.StateNeedsReauth {
		t.Errorf("status: state %s, last sink error %q", st.State, st.LastSinkError)
	}
	// No temporary file left in the directory: only the file and its sidecar lock.
	entries, _ := os.ReadDir(dir)
	for _, de := range entries {
		if de.Name() != ".env" && de.Name() != "..env.lock" {
			t.Errorf("stray file %s next to the .env file", de.Name())
		}
	}

	// Every reload came after its file was written, told the version written, and
	// carried no token.
	waitFor(t, 10*time.Second, "a reload for the current version", func() (bool, string) {
		mu.Lock()
		defer mu.Unlock()
		return len(reloads) > 0 && reloads[len(reloads)-1].notice.Version == rec.Version, fmt.Sprintf("%d reloads", len(reloads))
	})
	mu.Lock()
	calls := append([]reloadCall(nil), reloads...)
	mu.Unlock()
	if len(calls) < 3 {
		t.Errorf("%d reloads for %d refreshes", len(calls), st.Refreshes)
	}
	for i, c := range calls {
		if c.notice.Event != "env_file_changed" || c.notice.CredentialID != id || c.notice.Path != envPath {
			t.Errorf("reload %d: notice %+v", i, c.notice)
		}
		if strings.Contains(c.file, "ZALO_ACCESS_TOKEN=not-yet") || !strings.Contains(c.file, "ZALO_TOKEN_EXPIRES_AT=") {
			t.Errorf("reload %d (version %d) came before the file was written:\n%s", i, c.notice.Version, c.file)
		}
		if i > 0 && c.notice.Version < calls[i-1].notice.Version {
			t.Errorf("reload %d told version %d after %d", i, c.notice.Version, calls[i-1].notice.Version)
		}
		if strings.Contains(c.body, rec.Secrets.AccessToken) || strings.Contains(c.body, rec.Secrets.RefreshToken) {
			t.Errorf("reload %d carries a token", i)
		}
	}
	// The reload of the current version saw its token, unless a newer refresh has
	// rewritten the file since (then that reload may have seen the newer one).
	for _, c := range calls {
		if c.notice.Version == rec.Version && e.storedRecord(id).Version == rec.Version &&
			!strings.Contains(c.file, "ZALO_ACCESS_TOKEN="+rec.Secrets.AccessToken+"\n") {
			t.Errorf("the reload of version %d came before the file held its token", rec.Version)
		}
	}
	t.Logf("%d refreshes; store version %d; sinks at version %d; %d reloads; fingerprint %s", st.Refreshes, rec.Version, st.SinkVersion,
		len(calls), oauth2test.Fingerprint(rec.Secrets.AccessToken))
}

func itoa(v int64) string { return strconv.FormatInt(v, 10) }
