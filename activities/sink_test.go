package activities_test

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tokenwarden/tokenwarden/activities"
	"github.com/tokenwarden/tokenwarden/internal/credential"
	"github.com/tokenwarden/tokenwarden/internal/provider/catalog"
	"github.com/tokenwarden/tokenwarden/internal/webhook"
)

func (h *harness) sink(req activities.SinkRequest) (activities.SinkResult, error) {
	h.t.Helper()
	val, err := h.env.ExecuteActivity(h.acts.Sink, req)
	if err != nil {
		return activities.SinkResult{}, err
	}
	var res activities.SinkResult
	if err := val.Get(&res); err != nil {
		h.t.Fatalf("Sink result: %v", err)
	}
	return res, nil
}

const envSample = "# app\nAPP_NAME=bot\n\nZALO_ACCESS_TOKEN=stale # set by tokenwarden\nLAST=1\n"

func writeEnv(t *testing.T, content string, mode os.FileMode) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), ".env")
	if err := os.WriteFile(path, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
	return path
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestSinkWritesCurrentRecordToEnvFile(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	_, v := h.seed(credID, "fam", testClientSecret)
	res := h.mustRefresh(h.request(credID, v))
	rec := h.get(credID)
	path := writeEnv(t, envSample, 0o640)

	out, err := h.sink(activities.SinkRequest{CredentialID: credID, Provider: catalog.OAuth2, Version: res.Version, Sinks: []credential.Sink{
		{Type: credential.SinkEnv, Path: path, Key: "ZALO_ACCESS_TOKEN"},
		{Type: credential.SinkEnv, Path: path, Key: "ZALO_TOKEN_TYPE", Value: credential.SinkValueTokenType},
		{Type: credential.SinkEnv, Path: path, Key: "ZALO_EXPIRES_AT", Value: credential.SinkValueExpiresAt},
	}})
	if err != nil {
		t.Fatalf("Sink: %v", err)
	}
	if out.Version != rec.Version || out.FilesChanged != 1 {
		t.Fatalf("result %+v, want version %d and one file changed", out, rec.Version)
	}
	want := "# app\nAPP_NAME=bot\n\nZALO_ACCESS_TOKEN=" + rec.Secrets.AccessToken + " # set by tokenwarden\nLAST=1\n" +
		"ZALO_TOKEN_TYPE=Bearer\nZALO_EXPIRES_AT=" + rec.AccessExpiresAt.UTC().Format(time.RFC3339) + "\n"
	if got := readFile(t, path); got != want {
		t.Fatalf("file =\n%s\nwant\n%s", got, want)
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o640 {
		t.Fatalf("mode %v, want 0640", fi.Mode().Perm())
	}
	if strings.Contains(readFile(t, path), rec.Secrets.RefreshToken) {
		t.Fatal("the refresh token was written without being asked for")
	}
	h.assertNoSecrets(errNone{}, h.secrets(credID, "fam")...)

	// Run again: nothing changed, nothing rewritten.
	out, err = h.sink(activities.SinkRequest{CredentialID: credID, Provider: catalog.OAuth2, Version: res.Version, Sinks: []credential.Sink{
		{Type: credential.SinkEnv, Path: path, Key: "ZALO_ACCESS_TOKEN"},
	}})
	if err != nil || out.FilesChanged != 0 {
		t.Fatalf("second Sink = %+v, %v; want no change", out, err)
	}
}

type errNone struct{}

func (errNone) Error() string { return "" }

// A sink that runs after a newer refresh committed writes the newest token set, not the
// one of the refresh that asked for it.
func TestSinkWritesNewestWhenStoreMovedOn(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	_, v := h.seed(credID, "fam", testClientSecret)
	first := h.mustRefresh(h.request(credID, v))
	h.clock.Advance(time.Minute)
	second := h.mustRefresh(h.request(credID, first.Version))
	rec := h.get(credID)
	path := writeEnv(t, envSample, 0o600)

	out, err := h.sink(activities.SinkRequest{CredentialID: credID, Provider: catalog.OAuth2, Version: first.Version, Sinks: []credential.Sink{
		{Type: credential.SinkEnv, Path: path, Key: "ZALO_ACCESS_TOKEN"},
		{Type: credential.SinkEnv, Path: path, Key: "ZALO_REFRESH_TOKEN", Value: credential.SinkValueRefreshToken},
	}})
	if err != nil {
		t.Fatalf("Sink: %v", err)
	}
	if out.Version != second.Version {
		t.Fatalf("wrote version %d, want the newest %d", out.Version, second.Version)
	}
	got := readFile(t, path)
	if !strings.Contains(got, "ZALO_ACCESS_TOKEN="+rec.Secrets.AccessToken+" ") {
		t.Fatalf("file does not hold the newest access token:\n%s", got)
	}
	if !strings.Contains(got, "ZALO_REFRESH_TOKEN="+rec.Secrets.RefreshToken+"\n") {
		t.Fatal("the explicitly chosen refresh token was not written")
	}
}

// Credentials that share a file, sunk concurrently, keep each other's keys.
func TestSinksOfCredentialsSharingAFile(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	path := writeEnv(t, "# shared\n", 0o600)
	ids := []string{"cred-a", "cred-b", "cred-c", "cred-d"}
	for _, id := range ids {
		_, v := h.seed(id, "fam-"+id, testClientSecret)
		h.mustRefresh(h.request(id, v))
	}
	var wg sync.WaitGroup
	for _, id := range ids {
		wg.Add(1)
		go func() {
			defer wg.Done()
			key := strings.ToUpper(strings.ReplaceAll(id, "-", "_")) + "_TOKEN"
			for range 5 {
				// Its own activity environment: the test environment is not safe for
				// concurrent use.
				val, err := newActivityEnv(h.acts).ExecuteActivity(h.acts.Sink, activities.SinkRequest{CredentialID: id, Provider: catalog.OAuth2,
					Version: 2, Sinks: []credential.Sink{{Type: credential.SinkEnv, Path: path, Key: key}}})
				if err != nil {
					t.Error(err)
					return
				}
				_ = val
			}
		}()
	}
	wg.Wait()
	got := readFile(t, path)
	for _, id := range ids {
		key := strings.ToUpper(strings.ReplaceAll(id, "-", "_")) + "_TOKEN"
		if !strings.Contains(got, key+"="+h.get(id).Secrets.AccessToken+"\n") {
			t.Errorf("%s missing or wrong:\n%s", key, got)
		}
	}
	if !strings.HasPrefix(got, "# shared\n") || strings.Count(got, "\n") != 1+len(ids) {
		t.Errorf("file =\n%s", got)
	}
}

func TestSinkFailures(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	_, v := h.seed(credID, "fam", testClientSecret)
	h.mustRefresh(h.request(credID, v))
	secrets := h.secrets(credID, "fam")

	// A directory that does not exist: retryable, named, no secret.
	missing := filepath.Join(t.TempDir(), "gone", ".env")
	_, err := h.sink(activities.SinkRequest{CredentialID: credID, Provider: catalog.OAuth2, Version: 2,
		Sinks: []credential.Sink{{Type: credential.SinkEnv, Path: missing, Key: "TOKEN"}}})
	appErr := appError(t, err, activities.ErrTypeSinkFailed, false)
	if !strings.Contains(appErr.Message(), "sinks[0]") || !strings.Contains(appErr.Message(), missing) {
		t.Errorf("message %q does not name the sink and path", appErr.Message())
	}
	h.assertNoSecrets(err, secrets...)

	// Invalid input: non-retryable, names the field.
	_, err = h.sink(activities.SinkRequest{CredentialID: credID, Provider: catalog.OAuth2, Version: 2,
		Sinks: []credential.Sink{{Type: credential.SinkEnv, Path: "rel/.env", Key: "TOKEN"}}})
	appErr = appError(t, err, activities.ErrTypeInvalidInput, true)
	if !strings.Contains(appErr.Message(), "sinks[0].path: must be absolute") {
		t.Errorf("message %q", appErr.Message())
	}

	// No record (retired): refused.
	_, err = h.sink(activities.SinkRequest{CredentialID: "nobody", Provider: catalog.OAuth2, Version: 2,
		Sinks: []credential.Sink{{Type: credential.SinkEnv, Path: writeEnv(t, "", 0o600), Key: "TOKEN"}}})
	appError(t, err, activities.ErrTypeSinkRefused, true)

	// A webhook sink on a worker without targets: refused.
	_, err = h.sink(activities.SinkRequest{CredentialID: credID, Provider: catalog.OAuth2, Version: 2,
		Sinks: []credential.Sink{{Type: credential.SinkWebhook, Target: "app"}}})
	appError(t, err, activities.ErrTypeSinkRefused, true)
}

// Signing secrets of the webhook sink tests ("whsec_" and 32 base64 bytes).
var (
	sinkSecret  = webhook.SecretPrefix + base64.StdEncoding.EncodeToString([]byte("sink-signing-key-0123456789abcde"))
	otherSecret = webhook.SecretPrefix + base64.StdEncoding.EncodeToString([]byte("another-targets-key-0123456789ab"))
)

func TestSinkWebhook(t *testing.T) {
	var mu sync.Mutex
	var bodies []activities.SinkPayload
	var headers []http.Header
	var raw [][]byte
	fail := false
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		var p activities.SinkPayload
		_ = json.Unmarshal(b, &p)
		mu.Lock()
		defer mu.Unlock()
		if fail {
			http.Error(w, "nope", http.StatusInternalServerError)
			return
		}
		bodies = append(bodies, p)
		raw = append(raw, b)
		headers = append(headers, r.Header.Clone())
	}))
	t.Cleanup(srv.Close)
	hookURL := srv.URL + "/hooks/s3cr3t-path-Xy9"

	h := newHarness(t, harnessOptions{})
	h.acts.SinkWebhooks = activities.NewWebhookSinks([]activities.SinkTarget{
		{Name: "app", Format: "json", URL: hookURL, Secret: sinkSecret},
		{Name: "chat", Format: "slack", URL: hookURL},
		{Name: "plain", Format: "json", URL: "http://hooks.example.com/abcdefgh"},
	}, "bearer-Th1s-is-secret", 5*time.Second, nil)
	_, v := h.seed(credID, "fam", testClientSecret)
	h.mustRefresh(h.request(credID, v))
	rec := h.get(credID)
	secrets := append(h.secrets(credID, "fam"), hookURL, "s3cr3t-path-Xy9", "bearer-Th1s-is-secret", sinkSecret,
		strings.TrimPrefix(sinkSecret, webhook.SecretPrefix))

	out, err := h.sink(activities.SinkRequest{CredentialID: credID, Provider: catalog.OAuth2, Version: 2,
		Sinks: []credential.Sink{{Type: credential.SinkWebhook, Target: "app"}}})
	if err != nil || out.Webhooks != 1 {
		t.Fatalf("Sink = %+v, %v", out, err)
	}
	mu.Lock()
	if len(bodies) != 1 || bodies[0].AccessToken != rec.Secrets.AccessToken || bodies[0].Version != rec.Version ||
		bodies[0].CredentialID != credID || bodies[0].TokenType != "Bearer" {
		t.Fatalf("webhook received %+v", bodies)
	}
	if got := headers[0].Get("Authorization"); got != "Bearer bearer-Th1s-is-secret" {
		t.Errorf("Authorization = %q", got)
	}
	wantID := activities.SinkMessageID(credID, rec.Version)
	if got := headers[0].Get("Idempotency-Key"); got != wantID {
		t.Errorf("Idempotency-Key = %q, want %q", got, wantID)
	}
	if got := headers[0].Get(webhook.HeaderID); got != wantID || bodies[0].ID != wantID {
		t.Errorf("webhook-id = %q, body id %q, want %q", got, bodies[0].ID, wantID)
	}
	if err := webhook.Verify(sinkSecret, headers[0], raw[0], time.Now(), 0); err != nil {
		t.Errorf("the target's secret does not verify the delivery: %v", err)
	}
	if err := webhook.Verify(otherSecret, headers[0], raw[0], time.Now(), 0); !errors.Is(err, webhook.ErrBadSignature) {
		t.Errorf("another secret verifies the delivery: %v", err)
	}
	mu.Unlock()

	// Delivered again (a retry, or a late run for the same version): the same webhook-id.
	if _, err := h.sink(activities.SinkRequest{CredentialID: credID, Provider: catalog.OAuth2, Version: 2,
		Sinks: []credential.Sink{{Type: credential.SinkWebhook, Target: "app"}}}); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	if len(headers) != 2 || headers[1].Get(webhook.HeaderID) != wantID {
		t.Errorf("the second delivery's webhook-id = %q, want %q", headers[len(headers)-1].Get(webhook.HeaderID), wantID)
	}
	fail = true
	mu.Unlock()

	// The receiver fails: retryable, and nothing secret in the error or the log.
	_, err = h.sink(activities.SinkRequest{CredentialID: credID, Provider: catalog.OAuth2, Version: 2,
		Sinks: []credential.Sink{{Type: credential.SinkWebhook, Target: "app"}}})
	appErr := appError(t, err, activities.ErrTypeSinkFailed, false)
	if !strings.Contains(appErr.Message(), `webhook target "app": webhook answered 500`) {
		t.Errorf("message %q", appErr.Message())
	}
	h.assertNoSecrets(err, secrets...)

	// Targets a token must never go to: refused outright.
	for target, want := range map[string]string{
		"chat":    "slack target",
		"plain":   "needs an https URL",
		"unknown": "not configured on this worker",
	} {
		_, err = h.sink(activities.SinkRequest{CredentialID: credID, Provider: catalog.OAuth2, Version: 2,
			Sinks: []credential.Sink{{Type: credential.SinkWebhook, Target: target}}})
		appErr := appError(t, err, activities.ErrTypeSinkRefused, true)
		if !strings.Contains(appErr.Message(), want) {
			t.Errorf("%s: message %q, want %q", target, appErr.Message(), want)
		}
		h.assertNoSecrets(err, secrets...)
	}
}
