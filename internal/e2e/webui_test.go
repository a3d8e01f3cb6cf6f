package e2e

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	sdkpb "go.temporal.io/api/sdk/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/testsuite"

	"github.com/tokenwarden/tokenwarden/internal/codec"
	"github.com/tokenwarden/tokenwarden/internal/credential"
	"github.com/tokenwarden/tokenwarden/internal/provider"
	"github.com/tokenwarden/tokenwarden/internal/testlog"
	"github.com/tokenwarden/tokenwarden/internal/testnet"
	"github.com/tokenwarden/tokenwarden/workflows"
)

// The Web UI in a real browser: the dev server's Web UI, pointed at the worker's codec
// endpoint (as `make run` does), filters credentials by the TokenState search attribute
// and shows a credential's payloads decoded in the browser, without a secret on the page.
// The browser is Chromium driven by playwright-core (internal/e2e/webui/webui.mjs, run
// with Node.js); screenshots go to $TOKENWARDEN_ARTIFACTS_DIR or ./artifacts/webui/.

// webuiDir holds the Node.js driver, its package.json and package-lock.json.
const webuiDir = "webui"

// findChromium returns the Chromium to drive: $TOKENWARDEN_TEST_CHROMIUM, else Debian's
// /usr/bin/chromium, else the first of the usual names on PATH.
func findChromium() (string, error) {
	if p := os.Getenv("TOKENWARDEN_TEST_CHROMIUM"); p != "" {
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("TOKENWARDEN_TEST_CHROMIUM=%s: %w", p, err)
		}
		return p, nil
	}
	if _, err := os.Stat("/usr/bin/chromium"); err == nil {
		return "/usr/bin/chromium", nil
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome-stable", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("none of /usr/bin/chromium, chromium, chromium-browser, google-chrome on PATH")
}

// webuiArtifactsDir is where the screenshots go: $TOKENWARDEN_ARTIFACTS_DIR (CI keeps
// it) or artifacts/webui/ at the repository root (gitignored).
func webuiArtifactsDir(t *testing.T) string {
	t.Helper()
	if d := os.Getenv("TOKENWARDEN_ARTIFACTS_DIR"); d != "" {
		return filepath.Join(d, "webui")
	}
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Join(root, "artifacts", "webui")
}

// npmCI installs the pinned playwright-core (package-lock.json) when node_modules lacks it.
func npmCI(t *testing.T) {
	t.Helper()
	if _, err := os.Stat(filepath.Join(webuiDir, "node_modules", "playwright-core", "package.json")); err == nil {
		return
	}
	npm, err := exec.LookPath("npm")
	if err != nil {
		t.Fatalf("npm not found to install playwright-core into %s: %v", webuiDir, err)
	}
	cmd := exec.Command(npm, "ci", "--no-audit", "--no-fund", "--loglevel=error")
	cmd.Dir = webuiDir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("npm ci in internal/e2e/%s: %v\n%s", webuiDir, err, out)
	}
}

// webuiPage is one page the driver opens; see webui.mjs.
type webuiPage struct {
	Name   string   `json:"name"`
	Path   string   `json:"path"`
	Expect []string `json:"expect,omitempty"`
	Absent []string `json:"absent,omitempty"`
}

// controlPage is the page that must show a secret (see TestWebUI).
const controlPage = "control-plaintext-seed-shows"

// plaintextID is the control credential, seeded in plaintext (development mode).
const plaintextID = "webui-plaintext-control"

// firstRunID is the run ID of the workflow's first run (the one started with the seed).
func firstRunID(t *testing.T, c client.Client, id string) string {
	t.Helper()
	resp, err := c.ListWorkflow(context.Background(), &workflowservice.ListWorkflowExecutionsRequest{
		Query: fmt.Sprintf("WorkflowId = %q", id),
	})
	if err != nil {
		t.Fatalf("list the runs of %s: %v", id, err)
	}
	first, firstStart := "", time.Time{}
	for _, ex := range resp.GetExecutions() {
		if st := ex.GetStartTime().AsTime(); first == "" || st.Before(firstStart) {
			first, firstStart = ex.GetExecution().GetRunId(), st
		}
	}
	if first == "" {
		t.Fatalf("no runs of %s", id)
	}
	return first
}

func TestWebUI(t *testing.T) {
	chromium, err := findChromium()
	if err != nil && os.Getenv("TOKENWARDEN_TEST_CHROMIUM") != "" {
		t.Fatalf("no Chromium where configured: %v", err)
	}
	if err != nil {
		t.Skipf("no Chromium to drive the Web UI (%v): install Debian's chromium (`apt-get install chromium`; .ci/run does as root) or set TOKENWARDEN_TEST_CHROMIUM", err)
	}
	node, err := exec.LookPath("node")
	if err != nil {
		t.Skipf("Chromium is at %s but Node.js is not on PATH to drive it with playwright-core: install nodejs and npm", chromium)
	}
	t.Parallel()
	npmCI(t)
	began := time.Now()

	// A dev server of the test's own, with the UI, its codec endpoint set to the codec
	// port the worker will listen on, and tokenwarden's search attributes.
	codecAddr := testnet.FreeAddr(t)
	_, uiPort, _ := net.SplitHostPort(testnet.FreeAddr(t))
	codecEndpoint := "http://" + codecAddr + codec.PathPrefix
	serverLog := &testlog.Buffer{}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	srv, err := testsuite.StartDevServer(ctx, testsuite.DevServerOptions{
		ExistingPath: stack.temporalBin,
		LogLevel:     "error",
		EnableUI:     true,
		UIPort:       uiPort,
		ClientOptions: &client.Options{Logger: quietLogger(),
			DataConverter: codec.DataConverter(stack.ring), FailureConverter: codec.FailureConverter(codec.DataConverter(stack.ring))},
		ExtraArgs: append([]string{"--ui-codec-endpoint", codecEndpoint}, searchAttributeArgs...),
		Stdout:    serverLog,
		Stderr:    serverLog,
	})
	if err != nil {
		t.Fatalf("start a Temporal dev server with the Web UI: %v\n%s", err, serverLog.String())
	}
	t.Cleanup(func() {
		srv.Client().Close()
		if err := srv.Stop(); err != nil {
			t.Logf("Web UI dev server exited with %v", err)
		}
		if t.Failed() {
			t.Logf("Web UI dev server output:\n%s", serverLog.String())
		}
	})
	c := srv.Client()
	host, _, _ := net.SplitHostPort(srv.FrontendHostPort())
	uiBase := "http://" + net.JoinHostPort(host, uiPort)

	// The worker on that codec port, answering the UI's origin (both spellings).
	e := newEnv(t)
	e.address = srv.FrontendHostPort()
	origins := fmt.Sprintf("http://127.0.0.1:%s,http://localhost:%s", uiPort, uiPort)
	// startWorkerBin picks a codec port of its own; the later TOKENWARDEN_HTTP_ADDR wins.
	// The development-only plaintext mode is on for the control credential below.
	e.startWorkerBin(stack.workerBin, "TOKENWARDEN_HTTP_ADDR="+codecAddr, "TOKENWARDEN_CODEC_CORS_ORIGINS="+origins,
		"TOKENWARDEN_ALLOW_PLAINTEXT_SEEDS=true", "TOKENWARDEN_CODEC_BEARER_TOKEN=")
	e.httpAddr = codecAddr

	// The fake provider, recording every token it sees or issues and the client secret.
	// Access tokens live 3 s: the ACTIVE credential refreshes every 2 s or so and, with a
	// short history_event_limit, continues as new within seconds. Its first run's input
	// carries the sealed seed, its newest run's the status: both pages are checked for
	// secrets.
	rec := &tokenRecorder{seen: map[string]bool{}}
	fake, tokenURL := startRecordedFake(t, rec, 3*time.Second)
	rec.add(clientSecret)
	const activeID, reauthID = "webui-active", "webui-needs-reauth"
	start := func(id string, eventLimit int) {
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_ = c.TerminateWorkflow(ctx, id, "", "test finished")
		})
		cred := credentialFile(id, tokenURL)
		if eventLimit > 0 {
			cred["history_event_limit"] = eventLimit
		}
		seed := fake.Seed(id)
		rec.add(seed)
		e.cliStarterOK(fmt.Sprintf(`{"refresh_token":%q,"client_secret":%q}`, seed, clientSecret),
			"start", e.writeJSON(id+".json", cred), "-secrets", "-")
	}
	start(activeID, historyEventLimit)
	start(reauthID, 0)

	// The control: a credential seeded in plaintext, as only the development mode
	// accepts. Its start input shows the seed decoded, and finding the client secret in
	// that page's DOM proves that the secret scan sees what the UI renders.
	plainSeed := fake.Seed(plaintextID)
	rec.add(plainSeed)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = c.TerminateWorkflow(ctx, plaintextID, "", "test finished")
	})
	plainIn := workflows.CredentialInput{Provider: "oauth2", Config: provider.Config{TokenURL: tokenURL, ClientID: clientID},
		Seed: &workflows.SeedEnvelope{Seed: workflows.Seed{RefreshToken: plainSeed, ClientSecret: clientSecret}}}
	plainRun, err := c.ExecuteWorkflow(context.Background(), client.StartWorkflowOptions{ID: plaintextID, TaskQueue: e.taskQueue},
		workflows.WorkflowType, plainIn)
	if err != nil {
		t.Fatal(err)
	}

	waitForStatusOn(t, c, reauthID, 30*time.Second, "a first refresh of "+reauthID, func(s workflows.Status) bool {
		return s.State == credential.StateActive && s.Refreshes >= 1
	})
	fake.RevokeFamily(reauthID)
	waitForStatusOn(t, c, reauthID, 30*time.Second, "NEEDS_REAUTH after the grant was revoked", func(s workflows.Status) bool {
		return s.State == credential.StateNeedsReauth
	})
	waitForStatusOn(t, c, activeID, 60*time.Second, activeID+" ACTIVE in its second run", func(s workflows.Status) bool {
		return s.State == credential.StateActive && s.Runs >= 2
	})
	waitFor(t, 20*time.Second, "visibility: TokenState of both credentials", func() (bool, string) {
		resp, err := c.ListWorkflow(context.Background(), &workflowservice.ListWorkflowExecutionsRequest{
			Query: fmt.Sprintf(`(WorkflowId = %q AND TokenState = "NEEDS_REAUTH") OR (WorkflowId = %q AND TokenState = "ACTIVE" AND ExecutionStatus = "Running")`, reauthID, activeID),
		})
		if err != nil {
			return false, err.Error()
		}
		return len(resp.GetExecutions()) == 2, fmt.Sprintf("%d executions", len(resp.GetExecutions()))
	})
	desc, err := c.DescribeWorkflow(context.Background(), activeID, "")
	if err != nil {
		t.Fatal(err)
	}
	activeRun := desc.RawResponse.GetWorkflowExecutionInfo().GetExecution().GetRunId()
	// The current details the UI shows for a running credential (its User Metadata):
	// the state and the command that fixes it, asked for as the UI asks.
	meta, err := c.QueryWorkflow(context.Background(), reauthID, "", "__temporal_workflow_metadata")
	if err != nil {
		t.Fatalf("the workflow metadata query: %v", err)
	}
	var md sdkpb.WorkflowMetadata
	if err := meta.Get(&md); err != nil {
		t.Fatal(err)
	}
	details := md.GetCurrentDetails()
	for _, want := range []string{"**NEEDS_REAUTH**", "next: remind at", "to fix: `" + workflows.ReseedCommand(reauthID, "oauth2", provider.Config{})} {
		if !strings.Contains(details, want) {
			t.Errorf("current details of %s lack %q:\n%s", reauthID, want, details)
		}
	}
	// The static summary the starter gave it (the list shows it once its column is on).
	reauthDesc, err := c.DescribeWorkflow(context.Background(), reauthID, "")
	if err != nil {
		t.Fatal(err)
	}
	if summary, err := reauthDesc.GetStaticSummary(); err != nil || summary != workflows.StaticSummary("oauth2", reauthID) {
		t.Errorf("static summary of %s: %q (%v)", reauthID, summary, err)
	}
	firstRun := firstRunID(t, c, activeID)
	setup := time.Since(began)

	// The UI (2.42) keeps the list's filter in the "query" parameter, URL-encoded.
	stateQuery := `TokenState="NEEDS_REAUTH"`
	pages := []webuiPage{
		{Name: "workflows-all", Path: "/namespaces/default/workflows", Expect: []string{activeID, reauthID}},
		{Name: "workflows-needs-reauth", Path: "/namespaces/default/workflows?query=" + url.QueryEscape(stateQuery),
			Expect: []string{reauthID}, Absent: []string{activeID}},
		// The ACTIVE credential's current run: its input (provider, config, the carried
		// status) decoded by the codec endpoint in the browser.
		{Name: "credential-active", Path: "/namespaces/default/workflows/" + url.PathEscape(activeID) + "/" + activeRun + "/history",
			Expect: []string{activeID, `"oauth2"`, "token_url", "client_id", `"carried"`, "ACTIVE",
				// The story: the timers' and activities' summaries.
				"refresh at", "refresh v"}},
		// The first run: its start input decoded in the browser shows the sealed seed.
		{Name: "credential-first-run", Path: "/namespaces/default/workflows/" + url.PathEscape(activeID) + "/" + firstRun + "/history",
			Expect: []string{activeID, `"sealed"`, "tw1:"}},
		{Name: controlPage, Path: "/namespaces/default/workflows/" + url.PathEscape(plaintextID) + "/" + plainRun.GetRunID() + "/history",
			Expect: []string{plaintextID, "refresh_token", "client_secret"}},
	}
	shots := webuiArtifactsDir(t)
	texts := t.TempDir()
	pagesJSON, _ := json.Marshal(pages)
	driver := exec.Command(node, "webui.mjs")
	driver.Dir = webuiDir
	driver.Env = append(os.Environ(),
		"WEBUI_CHROMIUM="+chromium,
		"WEBUI_BASE="+uiBase,
		"WEBUI_PAGES="+string(pagesJSON),
		"WEBUI_SHOTS_DIR="+shots,
		"WEBUI_TEXT_DIR="+texts,
	)
	var driverOut bytes.Buffer
	driver.Stdout, driver.Stderr = &driverOut, &driverOut
	browserStart := time.Now()
	err = driver.Run()
	t.Logf("setup %s, browser %s; screenshots in %s\n%s", setup.Round(time.Millisecond), time.Since(browserStart).Round(time.Millisecond), shots, driverOut.String())
	if err != nil {
		t.Fatalf("the Web UI driver (node internal/e2e/webui/webui.mjs) failed: %v", err)
	}

	read := func(name string) (text, html string) {
		t.Helper()
		b, err := os.ReadFile(filepath.Join(texts, name+".txt"))
		if err != nil {
			t.Fatal(err)
		}
		h, err := os.ReadFile(filepath.Join(texts, name+".html"))
		if err != nil {
			t.Fatal(err)
		}
		return string(b), string(h)
	}
	for _, p := range pages {
		text, html := read(p.Name)
		for _, s := range p.Expect {
			if !strings.Contains(text, s) {
				t.Errorf("%s: page text lacks %q", p.Name, s)
			}
		}
		for _, s := range p.Absent {
			if strings.Contains(text, s) {
				t.Errorf("%s: page text shows %q", p.Name, s)
			}
		}
		if p.Name == controlPage {
			if !strings.Contains(html, clientSecret) {
				t.Errorf("%s: the plaintext-seeded credential's decoded start input should show the client secret, and the page lacks it: the secret scan would miss a leak", p.Name)
			}
			continue
		}
		// No secret anywhere in the DOM, raw or base64-encoded (as payload data would be).
		for _, s := range rec.secrets() {
			for _, form := range []string{s, base64.StdEncoding.EncodeToString([]byte(s))} {
				if strings.Contains(html, form) {
					t.Errorf("%s: the page holds a secret (%d bytes, starts %q)", p.Name, len(s), s[:min(4, len(s))])
				}
			}
		}
	}
	// Decoded in the browser, not shown as ciphertext.
	if text, _ := read("credential-active"); strings.Contains(text, codec.EncodingEncrypted) {
		t.Errorf("credential-active: the page still shows %s payloads", codec.EncodingEncrypted)
	}
	if n := len(rec.secrets()); n < 5 {
		t.Errorf("only %d secrets recorded; the check above proves little", n)
	}
}
