package activities_test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/tokenwarden/tokenwarden/activities"
	"github.com/tokenwarden/tokenwarden/internal/credential"
	"github.com/tokenwarden/tokenwarden/internal/provider/catalog"
)

// The helper process of TestSinkReloadSignal: it waits for SIGHUP and then prints the
// .env file as it is at that moment, so the test sees what the consumer would read.
func TestReloadHelperProcess(t *testing.T) {
	path := os.Getenv("RELOAD_HELPER_ENV_FILE")
	if path == "" {
		t.Skip("helper process of TestSinkReloadSignal")
	}
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, syscall.SIGHUP)
	fmt.Println("ready")
	select {
	case sig := <-ch:
		b, err := os.ReadFile(path)
		if err != nil {
			fmt.Println("read:", err)
			os.Exit(3)
		}
		fmt.Printf("got %v\n%s", sig, b)
		os.Exit(0)
	case <-time.After(30 * time.Second):
		fmt.Println("no signal")
		os.Exit(2)
	}
}

// startReloadHelper starts this test binary as a process that reports a SIGHUP and
// the file's content when it came; it returns once the process listens.
func startReloadHelper(t *testing.T, envPath string) (*exec.Cmd, *bufio.Reader) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestReloadHelperProcess$")
	cmd.Env = append(os.Environ(), "RELOAD_HELPER_ENV_FILE="+envPath)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	r := bufio.NewReader(out)
	line, err := r.ReadString('\n')
	if err != nil || line != "ready\n" {
		t.Fatalf("helper did not start: %q, %v", line, err)
	}
	return cmd, r
}

func writePIDFile(t *testing.T, dir string, content string) string {
	t.Helper()
	path := filepath.Join(dir, "app.pid")
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestSinkReloadSignal(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("no signals")
	}
	h := newHarness(t, harnessOptions{})
	_, v := h.seed(credID, "fam", testClientSecret)
	res := h.mustRefresh(h.request(credID, v))
	rec := h.get(credID)
	path := writeEnv(t, envSample, 0o600)
	cmd, out := startReloadHelper(t, path)
	pidFile := writePIDFile(t, t.TempDir(), strconv.Itoa(cmd.Process.Pid)+"\n")
	sinks := []credential.Sink{
		{Type: credential.SinkEnv, Path: path, Key: "ZALO_ACCESS_TOKEN",
			ReloadSignal: &credential.ReloadSignal{PIDFile: pidFile, Signal: "HUP"}},
		// The same consumer named twice is told once.
		{Type: credential.SinkEnv, Path: path, Key: "ZALO_TOKEN_EXPIRES_AT", Value: credential.SinkValueExpiresAt,
			ReloadSignal: &credential.ReloadSignal{PIDFile: pidFile, Signal: "HUP"}},
	}

	got, err := h.sink(activities.SinkRequest{CredentialID: credID, Provider: catalog.OAuth2, Version: res.Version, Sinks: sinks})
	if err != nil {
		t.Fatalf("Sink: %v", err)
	}
	if got.FilesChanged != 1 || got.Reloads != 1 {
		t.Fatalf("result %+v, want one file changed and one reload", got)
	}
	seen, _ := io.ReadAll(out)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("helper: %v; said %q", err, seen)
	}
	head, content, _ := strings.Cut(string(seen), "\n")
	if head != "got hangup" {
		t.Fatalf("helper said %q, want a hangup", head)
	}
	if content != readFile(t, path) || !strings.Contains(content, "ZALO_ACCESS_TOKEN="+rec.Secrets.AccessToken+" ") {
		t.Fatal("when the signal came, the file did not yet hold the new token")
	}
	h.assertNoSecrets(errNone{}, h.secrets(credID, "fam")...)
	if !strings.Contains(h.logs.String(), fmt.Sprintf("SIGHUP to pid %d", cmd.Process.Pid)) {
		t.Errorf("the log does not say who was signalled:\n%s", h.logs.String())
	}

	// The same token again: the file is unchanged, so nobody is signalled (the helper
	// is gone: a signal would fail).
	got, err = h.sink(activities.SinkRequest{CredentialID: credID, Provider: catalog.OAuth2, Version: res.Version, Sinks: sinks})
	if err != nil || got.FilesChanged != 0 || got.Reloads != 0 {
		t.Fatalf("second Sink = %+v, %v; want no change and no reload", got, err)
	}

	// A new token and a stale pid file: the file is written, the failure reported and
	// retryable (the consumer may be restarting).
	h.clock.Advance(time.Minute)
	res = h.mustRefresh(h.request(credID, res.Version))
	rec = h.get(credID)
	_, err = h.sink(activities.SinkRequest{CredentialID: credID, Provider: catalog.OAuth2, Version: res.Version, Sinks: sinks})
	appErr := appError(t, err, activities.ErrTypeSinkFailed, false)
	want := fmt.Sprintf("sinks[0]: reload_signal: signal HUP to pid %d: no process has that pid (stale pid file?): ", cmd.Process.Pid)
	if !strings.Contains(appErr.Message(), want) {
		t.Errorf("message %q, want %q", appErr.Message(), want)
	}
	if !strings.Contains(readFile(t, path), "ZALO_ACCESS_TOKEN="+rec.Secrets.AccessToken+" ") {
		t.Fatal("a failed reload undid the write")
	}
	h.assertNoSecrets(err, h.secrets(credID, "fam")...)
}

// A pid file that is not exactly a pid is refused: no signal goes out on a guess, and
// the file is written all the same.
func TestSinkReloadSignalRefusesBadPIDFiles(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("no signals")
	}
	h := newHarness(t, harnessOptions{})
	_, v := h.seed(credID, "fam", testClientSecret)
	res := h.mustRefresh(h.request(credID, v))
	rec := h.get(credID)

	for name, tc := range map[string]struct {
		content string // written to app.pid; "<dir>" makes it a directory
		want    string
		refused bool
	}{
		"empty":      {"", "does not hold a positive decimal pid (0 bytes)", true},
		"words":      {"nginx\n", "does not hold a positive decimal pid", true},
		"two pids":   {"12 34\n", "does not hold a positive decimal pid", true},
		"signed":     {"+12\n", "does not hold a positive decimal pid", true},
		"negative":   {"-1\n", "does not hold a positive decimal pid", true},
		"zero":       {"0\n", "does not hold a positive decimal pid", true},
		"too big":    {"99999999999\n", "does not hold a positive decimal pid", true},
		"large file": {strings.Repeat("1", 200), "larger than 64 bytes", true},
		"worker":     {strconv.Itoa(os.Getpid()), "names the worker itself", true},
		"directory":  {"<dir>", "is not a regular file", true},
		"missing":    {"<none>", "does not exist (is the process running?)", false},
	} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			pidFile := filepath.Join(dir, "app.pid")
			switch tc.content {
			case "<dir>":
				if err := os.Mkdir(pidFile, 0o755); err != nil {
					t.Fatal(err)
				}
			case "<none>":
			default:
				writePIDFile(t, dir, tc.content)
			}
			path := writeEnv(t, envSample, 0o600)
			_, err := h.sink(activities.SinkRequest{CredentialID: credID, Provider: catalog.OAuth2, Version: res.Version,
				Sinks: []credential.Sink{{Type: credential.SinkEnv, Path: path, Key: "ZALO_ACCESS_TOKEN",
					ReloadSignal: &credential.ReloadSignal{PIDFile: pidFile, Signal: "TERM"}}}})
			wantType := activities.ErrTypeSinkFailed
			if tc.refused {
				wantType = activities.ErrTypeSinkRefused
			}
			appErr := appError(t, err, wantType, tc.refused)
			if !strings.Contains(appErr.Message(), "sinks[0]: reload_signal: ") || !strings.Contains(appErr.Message(), tc.want) ||
				!strings.Contains(appErr.Message(), "(the file was written)") {
				t.Errorf("message %q, want %q", appErr.Message(), tc.want)
			}
			if !strings.Contains(readFile(t, path), "ZALO_ACCESS_TOKEN="+rec.Secrets.AccessToken+" ") {
				t.Fatal("the refused reload kept the file from being written")
			}
		})
	}
}

// reloadReceiver is a consumer's reload endpoint: it records each POST and the .env
// file's content when the POST arrived.
type reloadReceiver struct {
	envPath string
	mu      sync.Mutex
	status  int
	delay   time.Duration
	// failFirst: the first so many POSTs are answered 503 whatever status says.
	failFirst int
	posts     []reloadPost
}

type reloadPost struct {
	method, path, body, file string
	header                   http.Header
}

func (rr *reloadReceiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	file, _ := os.ReadFile(rr.envPath)
	rr.mu.Lock()
	rr.posts = append(rr.posts, reloadPost{method: r.Method, path: r.URL.Path, body: string(b), file: string(file), header: r.Header.Clone()})
	status, delay := rr.status, rr.delay
	if len(rr.posts) <= rr.failFirst {
		status = http.StatusServiceUnavailable
	}
	rr.mu.Unlock()
	time.Sleep(delay)
	switch status {
	case 0:
		w.WriteHeader(http.StatusNoContent)
	case http.StatusFound:
		http.Redirect(w, r, "/elsewhere", http.StatusFound)
	default:
		// A large answer: the sink reads only the start of it.
		w.WriteHeader(status)
		_, _ = w.Write([]byte(strings.Repeat("x", 1<<20)))
	}
}

func (rr *reloadReceiver) set(status int, delay time.Duration) {
	rr.mu.Lock()
	defer rr.mu.Unlock()
	rr.status, rr.delay = status, delay
}

func (rr *reloadReceiver) got() []reloadPost {
	rr.mu.Lock()
	defer rr.mu.Unlock()
	return append([]reloadPost(nil), rr.posts...)
}

func TestSinkReloadURL(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	h.acts.ReloadTimeout = 500 * time.Millisecond
	_, v := h.seed(credID, "fam", testClientSecret)
	res := h.mustRefresh(h.request(credID, v))
	path := writeEnv(t, envSample, 0o600)
	rr := &reloadReceiver{envPath: path}
	srv := httptest.NewServer(rr)
	t.Cleanup(srv.Close)
	sinks := []credential.Sink{{Type: credential.SinkEnv, Path: path, Key: "ZALO_ACCESS_TOKEN", ReloadURL: srv.URL + "/reload"}}

	got, err := h.sink(activities.SinkRequest{CredentialID: credID, Provider: catalog.OAuth2, Version: res.Version, Sinks: sinks})
	if err != nil || got.FilesChanged != 1 || got.Reloads != 1 {
		t.Fatalf("Sink = %+v, %v; want one file changed and one reload", got, err)
	}
	rec := h.get(credID)
	posts := rr.got()
	if len(posts) != 1 || posts[0].method != http.MethodPost || posts[0].path != "/reload" {
		t.Fatalf("receiver got %+v, want one POST /reload", posts)
	}
	if !strings.Contains(posts[0].file, "ZALO_ACCESS_TOKEN="+rec.Secrets.AccessToken+" ") {
		t.Fatal("when the POST came, the file did not yet hold the new token")
	}
	var notice activities.ReloadNotice
	if err := json.Unmarshal([]byte(posts[0].body), &notice); err != nil {
		t.Fatalf("body %q: %v", posts[0].body, err)
	}
	if want := (activities.ReloadNotice{Event: "env_file_changed", CredentialID: credID, Provider: catalog.OAuth2,
		Version: rec.Version, Path: path}); notice != want {
		t.Errorf("notice %+v, want %+v", notice, want)
	}
	if a := posts[0].header.Get("Authorization"); a != "" {
		t.Errorf("the reload POST carries Authorization %q", a)
	}
	secrets := h.secrets(credID, "fam")
	for _, s := range secrets {
		if s != "" && (strings.Contains(posts[0].body, s) || strings.Contains(fmt.Sprint(posts[0].header), s)) {
			t.Errorf("the reload POST carries a secret (%.6s...)", s)
		}
	}
	h.assertNoSecrets(errNone{}, secrets...)

	// Failures: the file holds the new token, the error names the sink and says so.
	for _, tc := range []struct {
		status int
		delay  time.Duration
		want   string
	}{
		{http.StatusInternalServerError, 0, "reload_url " + srv.URL + " answered 500 Internal Server Error"},
		{http.StatusFound, 0, "reload_url " + srv.URL + " answered 302 Found (redirects are not followed)"},
		{0, time.Second, "reload_url " + srv.URL + ": no answer within 500ms"},
	} {
		rr.set(tc.status, tc.delay)
		h.clock.Advance(time.Minute)
		res = h.mustRefresh(h.request(credID, res.Version))
		rec = h.get(credID)
		before := len(rr.got())
		_, err := h.sink(activities.SinkRequest{CredentialID: credID, Provider: catalog.OAuth2, Version: res.Version, Sinks: sinks})
		appErr := appError(t, err, activities.ErrTypeSinkFailed, false)
		if !strings.Contains(appErr.Message(), "sinks[0]: "+tc.want) || !strings.Contains(appErr.Message(), "(the file was written)") {
			t.Errorf("message %q, want %q", appErr.Message(), tc.want)
		}
		if !strings.Contains(readFile(t, path), "ZALO_ACCESS_TOKEN="+rec.Secrets.AccessToken+" ") {
			t.Fatal("a failed reload undid the write")
		}
		posts := rr.got()
		if len(posts) != before+1 || posts[len(posts)-1].path != "/reload" {
			t.Errorf("receiver got %d more requests (last %q), want one POST /reload: no redirect followed", len(posts)-before, posts[len(posts)-1].path)
		}
		h.assertNoSecrets(err, h.secrets(credID, "fam")...)
	}
}

// A retry tells the consumer again although the file it finds is already up to date:
// the attempt that wrote the file failed to tell it.
func TestSinkReloadRetriedAfterFailure(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	_, v := h.seed(credID, "fam", testClientSecret)
	res := h.mustRefresh(h.request(credID, v))
	path := writeEnv(t, envSample, 0o600)
	// The consumer is back after the first try.
	rr := &reloadReceiver{envPath: path, failFirst: 1}
	srv := httptest.NewServer(rr)
	t.Cleanup(srv.Close)
	req := activities.SinkRequest{CredentialID: credID, Provider: catalog.OAuth2, Version: res.Version,
		Sinks: []credential.Sink{{Type: credential.SinkEnv, Path: path, Key: "ZALO_ACCESS_TOKEN", ReloadURL: srv.URL + "/reload"}}}

	// A workflow test environment, which retries the activity as Temporal would.
	suite := quietSuite()
	env := suite.NewTestWorkflowEnvironment()
	env.RegisterActivity(h.acts)
	sinkWithRetries := func(ctx workflow.Context, req activities.SinkRequest) (activities.SinkResult, error) {
		ctx = workflow.WithActivityOptions(ctx, workflow.ActivityOptions{StartToCloseTimeout: 30 * time.Second,
			RetryPolicy: &temporal.RetryPolicy{InitialInterval: time.Second, MaximumAttempts: 3}})
		var res activities.SinkResult
		err := workflow.ExecuteActivity(ctx, h.acts.Sink, req).Get(ctx, &res)
		return res, err
	}
	env.RegisterWorkflow(sinkWithRetries)
	env.ExecuteWorkflow(sinkWithRetries, req)
	if err := env.GetWorkflowError(); err != nil {
		t.Fatalf("Sink with retries: %v", err)
	}
	var got activities.SinkResult
	if err := env.GetWorkflowResult(&got); err != nil {
		t.Fatal(err)
	}
	if got.FilesChanged != 0 || got.Reloads != 1 {
		t.Errorf("second attempt %+v, want the file unchanged and one reload", got)
	}
	posts := rr.got()
	if len(posts) != 2 {
		t.Fatalf("receiver got %d POSTs, want 2 (a failure, then the retry)", len(posts))
	}
	tokenLine := "ZALO_ACCESS_TOKEN=" + h.get(credID).Secrets.AccessToken + " "
	for i, p := range posts {
		if !strings.Contains(p.file, tokenLine) {
			t.Errorf("POST %d came before the file held the new token", i)
		}
	}
}

// The JSON a user writes in a credential file reaches the spec, and every bad field
// is named.
func TestCheckSinksReload(t *testing.T) {
	var specs []credential.Sink
	if err := json.Unmarshal([]byte(`[
		{"type": "env", "path": "/srv/app/.env", "key": "ZALO_ACCESS_TOKEN",
		 "reload_signal": {"pid_file": "/run/app.pid", "signal": "HUP"},
		 "reload_url": "http://127.0.0.1:8080/reload"}
	]`), &specs); err != nil {
		t.Fatal(err)
	}
	if specs[0].ReloadSignal == nil || *specs[0].ReloadSignal != (credential.ReloadSignal{PIDFile: "/run/app.pid", Signal: "HUP"}) ||
		specs[0].ReloadURL != "http://127.0.0.1:8080/reload" {
		t.Fatalf("decoded %+v", specs[0])
	}
	if err := activities.CheckSinks(specs); err != nil {
		t.Fatalf("valid sink refused: %v", err)
	}
	for _, u := range []string{"http://localhost:9/reload", "http://[::1]:8080/", "http://127.0.0.2/r", "https://app.example.com/hooks/reload"} {
		if err := activities.CheckReloadURL(u); err != nil {
			t.Errorf("CheckReloadURL(%q) = %v", u, err)
		}
	}

	env := func(sig *credential.ReloadSignal, u string) credential.Sink {
		return credential.Sink{Type: credential.SinkEnv, Path: "/srv/app/.env", Key: "K", ReloadSignal: sig, ReloadURL: u}
	}
	for _, tc := range []struct {
		spec credential.Sink
		want string
	}{
		{env(&credential.ReloadSignal{PIDFile: "/run/app.pid", Signal: "KILL"}, ""), `sinks[0].reload_signal.signal: must be HUP, USR1, USR2 or TERM, got "KILL"`},
		{env(&credential.ReloadSignal{PIDFile: "/run/app.pid", Signal: "SIGHUP"}, ""), `sinks[0].reload_signal.signal: must be HUP`},
		{env(&credential.ReloadSignal{PIDFile: "/run/app.pid"}, ""), `sinks[0].reload_signal.signal: required`},
		{env(&credential.ReloadSignal{Signal: "HUP"}, ""), `sinks[0].reload_signal.pid_file: required`},
		{env(&credential.ReloadSignal{PIDFile: "run/app.pid", Signal: "HUP"}, ""), `sinks[0].reload_signal.pid_file: must be absolute`},
		{env(&credential.ReloadSignal{PIDFile: "/run/../etc/app.pid", Signal: "HUP"}, ""), `sinks[0].reload_signal.pid_file: must be clean`},
		{env(&credential.ReloadSignal{PIDFile: "/proc/sys/kernel/pid_max", Signal: "HUP"}, ""), `sinks[0].reload_signal.pid_file: must be a file named *.pid`},
		{env(nil, "ftp://127.0.0.1/reload"), `sinks[0].reload_url: must be an https URL (http only to a loopback address), got scheme "ftp"`},
		{env(nil, "/reload"), `sinks[0].reload_url: must be an https URL`},
		{env(nil, "http://app.example.com/reload"), `sinks[0].reload_url: plain http only to a loopback address`},
		{env(nil, "http://10.0.0.1/reload"), `sinks[0].reload_url: plain http only to a loopback address`},
		{env(nil, "https://user:pw@app.example.com/reload"), `sinks[0].reload_url: must not carry user info`},
		{env(nil, "https://app.example.com/reload?key=abc"), `sinks[0].reload_url: must not carry a query`},
		{env(nil, "https://app.example.com/reload?"), `sinks[0].reload_url: must not carry a query`},
		{env(nil, "https://app.example.com/reload#x"), `sinks[0].reload_url: must not carry a fragment`},
		{env(nil, "https:///reload"), `sinks[0].reload_url: must be an absolute URL with a host`},
		{env(nil, "http://127.0.0.1/re load"), `sinks[0].reload_url: contains a space or control character`},
		{env(nil, "https://app.example.com/"+strings.Repeat("a", 2048)), `sinks[0].reload_url: longer than 2048 bytes`},
		{credential.Sink{Type: credential.SinkWebhook, Target: "app", ReloadURL: "http://127.0.0.1/reload"},
			`sinks[0].reload_signal, reload_url: only for env sinks`},
		{credential.Sink{Type: credential.SinkWebhook, Target: "app", ReloadSignal: &credential.ReloadSignal{PIDFile: "/run/app.pid", Signal: "HUP"}},
			`sinks[0].reload_signal, reload_url: only for env sinks`},
	} {
		err := activities.CheckSinks([]credential.Sink{tc.spec})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("CheckSinks(%+v) = %v, want %q", tc.spec, err, tc.want)
		}
	}
}
