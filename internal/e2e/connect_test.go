package e2e

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"mime"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tokenwarden/tokenwarden/internal/credential"
	"github.com/tokenwarden/tokenwarden/internal/provider/feishu/feishutest"
	"github.com/tokenwarden/tokenwarden/internal/provider/oauth2/oauth2test"
	"github.com/tokenwarden/tokenwarden/internal/provider/zalo/zalotest"
	"github.com/tokenwarden/tokenwarden/internal/testlog"
	"github.com/tokenwarden/tokenwarden/workflows"
)

// `starter connect` end to end: (the binary) prints the authorization URL,
// headless Chromium clicks the fake provider's Approve (or Deny) button, the fake sends
// the browser to the starter's loopback callback, the starter exchanges the code once
// and starts (or reseeds) the credential sealed; the worker then refreshes it on its
// own. No code, verifier, secret or token may show in the starter's output, the
// worker's log, or any history payload, decoded through the codec endpoint or not.

// connectLifetime is the fakes' access-token lifetime: short, so that the first
// refresh the worker schedules by itself comes within seconds.
const connectLifetime = 12 * time.Second

// connectCase is one provider's setup: its fake behind a recorder, and the credential.
type connectCase struct {
	name     string
	provider string
	config   map[string]any
	secret   string
	// refreshed tells whether the fake accepted a refresh of the connected grant.
	refreshed func() int
}

func TestConnect(t *testing.T) {
	chromium, err := findChromium()
	if err != nil {
		t.Skipf("no Chromium to click the consent page (%v): install Debian's chromium or set TOKENWARDEN_TEST_CHROMIUM", err)
	}
	node, err := exec.LookPath("node")
	if err != nil {
		t.Skipf("Chromium is at %s but Node.js is not on PATH to drive it with playwright-core", chromium)
	}
	npmCI(t)
	browse := func(t *testing.T, name, authURL, decision string) string {
		t.Helper()
		cmd := exec.Command(node, "consent.mjs")
		cmd.Dir = webuiDir
		cmd.Env = append(os.Environ(), "CONSENT_CHROMIUM="+chromium, "CONSENT_URL="+authURL, "CONSENT_DECISION="+decision,
			"CONSENT_SHOTS_DIR="+filepath.Join(filepath.Dir(webuiArtifactsDir(t)), "connect"), "CONSENT_NAME="+name)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("the consent driver (node internal/e2e/webui/consent.mjs) failed: %v\n%s", err, stderr.String())
		}
		return strings.TrimSpace(string(out))
	}

	t.Run("oauth2", func(t *testing.T) {
		rec := &tokenRecorder{seen: map[string]bool{}}
		fake := oauth2test.New(oauth2test.Options{AccessLifetime: connectLifetime, ClientID: clientID, ClientSecret: clientSecret})
		srv := recordedServer(t, rec, fake)
		c := connectCase{name: "oauth2", provider: "oauth2", secret: clientSecret, refreshed: fake.Refreshes,
			config: map[string]any{"token_url": srv.URL + oauth2test.TokenPath, "authorize_url": srv.URL + oauth2test.AuthorizePath,
				"client_id": clientID, "scopes": []string{"offline_access"}}}
		e, id := runConnect(t, c, rec, browse)

		// Reconnect the running credential: `starter connect ID` reseeds it.
		before := e.storedRecord(id).Version
		out := connectThroughBrowser(t, e, "oauth2-reconnect", []string{"connect", id, "-secrets", writeSecret(t, clientSecret), "-no-browser", "-timeout", "60s"},
			"Approve", browse, 0)
		if !strings.Contains(out, "reseeded: state ACTIVE") {
			t.Errorf("connect ID did not report the reseed:\n%s", out)
		}
		if after := e.storedRecord(id).Version; after <= before {
			t.Errorf("store version %d after the reconnect, was %d", after, before)
		}
		assertNoSecrets(t, e, id, rec, out)
	})

	t.Run("zalo-oa", func(t *testing.T) {
		rec := &tokenRecorder{seen: map[string]bool{}}
		const appID, appSecret = "4321987650123456789", "Zalo-App-Secret-connect-0123"
		fake := zalotest.New(zalotest.Options{AppID: appID, AppSecret: appSecret, AccessLifetime: connectLifetime})
		srv := recordedServer(t, rec, fake)
		c := connectCase{name: "zalo-oa", provider: "zalo-oa", secret: appSecret, refreshed: fake.Refreshes,
			config: map[string]any{"client_id": appID, "base_url": srv.URL}}
		e, _ := runConnect(t, c, rec, browse)

		// Deny: exit 7, nothing started, the browser told so.
		cred := e.writeJSON("denied.json", map[string]any{"id": "connect-zalo-denied", "provider": "zalo-oa", "config": c.config})
		out := connectThroughBrowser(t, e, "zalo-oa-deny", []string{"connect", cred, "-secrets", writeSecret(t, appSecret), "-no-browser", "-timeout", "60s"},
			"Deny", browse, 7)
		if !strings.Contains(out, "access denied") {
			t.Errorf("a denied connect says:\n%s", out)
		}
		if _, err := queryStatus(t, "connect-zalo-denied"); err == nil {
			t.Error("a denied connect started the credential")
		}
	})

	t.Run("zalo-user", func(t *testing.T) {
		rec := &tokenRecorder{seen: map[string]bool{}}
		const appID, appSecret = "5432198760123456789", "Zalo-App-Secret-connect-user-4567"
		fake := zalotest.New(zalotest.Options{AppID: appID, AppSecret: appSecret, AccessLifetime: connectLifetime})
		srv := recordedServer(t, rec, fake)
		c := connectCase{name: "zalo-user", provider: "zalo-user", secret: appSecret, refreshed: fake.Refreshes,
			config: map[string]any{"client_id": appID, "base_url": srv.URL}}
		runConnect(t, c, rec, browse)
	})

	t.Run("feishu-user", func(t *testing.T) {
		rec := &tokenRecorder{seen: map[string]bool{}}
		const appID, appSecret = "cli_connect_e2e", "feishu-app-secret-connect-0123"
		fake := feishutest.New(feishutest.Options{AppID: appID, AppSecret: appSecret, UserAccessLifetime: connectLifetime})
		srv := recordedServer(t, rec, fake)
		c := connectCase{name: "feishu-user", provider: "feishu-user", secret: appSecret, refreshed: fake.Refreshes,
			config: map[string]any{"client_id": appID, "base_url": srv.URL, "scopes": []string{"offline_access"}}}
		runConnect(t, c, rec, browse)
	})
}

type browseFunc func(t *testing.T, name, authURL, decision string) string

// runConnect connects a new credential through the browser, waits for the worker's own
// first refresh, and checks every place a secret could leak.
func runConnect(t *testing.T, c connectCase, rec *tokenRecorder, browse browseFunc) (*env, string) {
	t.Helper()
	e := newEnv(t)
	var w *worker
	t.Cleanup(func() {
		// Registered before the worker's own cleanup, so it runs after the worker has
		// stopped and its log is complete.
		for _, s := range rec.secrets() {
			if strings.Contains(w.output.String(), s) {
				t.Errorf("the worker's log holds secret %s", oauth2test.Fingerprint(s))
			}
		}
	})
	w = e.startWorker()
	id := "connect-" + c.name
	cliTerminateAtEnd(t, id)
	cred := e.writeJSON("credential.json", map[string]any{"id": id, "provider": c.provider, "config": c.config,
		"policy": map[string]any{"refresh_margin": "1s", "jitter": "200ms", "retry_initial": "1s", "retry_max": "5s"}})
	out := connectThroughBrowser(t, e, c.name, []string{"connect", cred, "-secrets", writeSecret(t, c.secret), "-no-browser", "-timeout", "60s"},
		"Approve", browse, 0)
	if !strings.Contains(out, "started credential "+id) {
		t.Fatalf("connect did not start the credential:\n%s", out)
	}
	// The seed carried the fresh access token, so the first refresh is the worker's
	// own, on schedule.
	st := waitForStatus(t, id, 60*time.Second, "the first scheduled refresh", func(s workflows.Status) bool {
		return s.State == credential.StateActive && s.Refreshes >= 1
	})
	if c.refreshed() < 1 {
		t.Errorf("the fake saw no refresh; status %+v", st)
	}
	assertNoSecrets(t, e, id, rec, out)
	return e, id
}

// connectThroughBrowser runs the starter with args, hands the URL it prints to the
// browser, which clicks decision, and returns the starter's output once it exited with
// want.
func connectThroughBrowser(t *testing.T, e *env, name string, args []string, decision string, browse browseFunc, want int) string {
	t.Helper()
	cmd := exec.Command(stack.starterBin, args...)
	cmd.Env = append(e.vars(), "TOKENWARDEN_CODEC_ENDPOINT=http://"+e.httpAddr+"/codec", "TOKENWARDEN_SEAL_ENDPOINT=http://"+e.httpAddr+"/seal",
		"DISPLAY=", "WAYLAND_DISPLAY=")
	var stderr testlog.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	lines := bufio.NewScanner(stdout)
	authURL := ""
	for authURL == "" && lines.Scan() {
		out.WriteString(lines.Text() + "\n")
		if l := strings.TrimSpace(lines.Text()); strings.HasPrefix(l, "http") {
			authURL = l
		}
	}
	if authURL == "" {
		_ = cmd.Wait()
		t.Fatalf("starter %s printed no authorization URL:\n%s%s", strings.Join(args, " "), out.String(), stderr.String())
	}
	done := make(chan struct{})
	go func() {
		for lines.Scan() {
			out.WriteString(lines.Text() + "\n")
		}
		close(done)
	}()
	page := browse(t, name, authURL, decision)
	<-done
	err = cmd.Wait()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	all := out.String() + stderr.String()
	t.Logf("starter %s exited %d; the browser's page said %q", args[0], code, page)
	if code != want {
		t.Fatalf("starter %s exited %d, want %d:\n%s", strings.Join(args, " "), code, want, all)
	}
	wantPage := map[bool]string{true: "received the authorization", false: "tokenwarden: "}[want == 0]
	if !strings.Contains(page, wantPage) {
		t.Errorf("the callback page says %q, want %q", page, wantPage)
	}
	return all + "\n" + page
}

// assertNoSecrets looks for every code, verifier, secret and token the fake saw in the
// starter's output, the worker's log and every payload of the credential's history.
func assertNoSecrets(t *testing.T, e *env, id string, rec *tokenRecorder, output string) {
	t.Helper()
	secrets := rec.secrets()
	if len(secrets) < 4 {
		t.Fatalf("the recorder saw only %d secrets; the test would prove nothing", len(secrets))
	}
	for _, s := range secrets {
		if strings.Contains(output, s) {
			t.Errorf("the starter's output (or the browser's page) holds secret %s", oauth2test.Fingerprint(s))
		}
	}
	res := scanHistories(t, id, runsOf(t, id), secrets, "http://"+e.httpAddr+"/codec")
	for _, f := range res.findings {
		t.Error(f)
	}
	if res.sealed == 0 {
		t.Errorf("no sealed seed in %s's history (%d payloads)", id, res.payloads)
	}
}

// recordedServer serves fake behind a recorder of every code, verifier, secret and
// token that crosses it, in form or JSON bodies, headers and answers.
func recordedServer(t *testing.T, rec *tokenRecorder, fake http.Handler) *httptest.Server {
	t.Helper()
	keys := []string{"code", "code_verifier", "client_secret", "app_secret", "refresh_token", "token"}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		r.Body = io.NopCloser(bytes.NewReader(body))
		mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
		if mt == "application/json" {
			var m map[string]any
			if json.Unmarshal(body, &m) == nil {
				for _, k := range keys {
					if s, ok := m[k].(string); ok {
						rec.add(s)
					}
				}
			}
		} else if r.URL.Path != oauth2test.AuthorizePath && !strings.Contains(r.URL.Path, "/permission") && !strings.Contains(r.URL.Path, "/authorize") {
			if form, err := url.ParseQuery(string(body)); err == nil {
				for _, k := range keys {
					rec.add(form.Get(k))
				}
			}
		}
		rec.add(r.Header.Get(zalotest.SecretKeyHeader))
		if _, pw, ok := r.BasicAuth(); ok {
			if dec, err := url.QueryUnescape(pw); err == nil {
				rec.add(dec)
			}
		}
		cw := &captureWriter{ResponseWriter: w}
		fake.ServeHTTP(cw, r)
		var resp map[string]any
		if json.Unmarshal(cw.body.Bytes(), &resp) == nil {
			for _, k := range []string{"access_token", "refresh_token", "tenant_access_token"} {
				if s, ok := resp[k].(string); ok {
					rec.add(s)
				}
			}
		}
	}))
	t.Cleanup(srv.Close)
	return srv
}

// writeSecret writes the secrets file connect reads: the client secret alone.
func writeSecret(t *testing.T, secret string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "secrets.json")
	data, _ := json.Marshal(map[string]string{"client_secret": secret})
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}
