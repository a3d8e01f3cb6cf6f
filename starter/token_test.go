package main

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"

	"github.com/tokenwarden/tokenwarden/internal/testnet"
)

const testAPIKey = "twk_0123456789abcdef_abcdefghijklmnopqrstuvwxyz234567abcdefghijklmnopqrstuvwx"

// fakeTokenAPI answers like the worker's token API: a token for "crm" to testAPIKey.
func fakeTokenAPI(t *testing.T) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		errJSON := func(status int, code string) {
			w.WriteHeader(status)
			_ = json.NewEncoder(w).Encode(map[string]string{"error": code, "message": code + " message"})
		}
		id, ok := strings.CutPrefix(r.URL.Path, "/v1/credentials/")
		id, ok2 := strings.CutSuffix(id, "/token")
		switch {
		case !ok || !ok2 || r.Method != http.MethodGet:
			errJSON(404, "bad_path")
		case r.Header.Get("Authorization") != "Bearer "+testAPIKey:
			errJSON(401, "invalid_api_key")
		case id == "limited":
			w.Header().Set("Retry-After", "3")
			errJSON(429, "rate_limited")
		case id == "seeding":
			errJSON(503, "token_unavailable")
		case id == "other":
			errJSON(403, "forbidden")
		case id != "crm":
			errJSON(404, "not_found")
		default:
			_, _ = w.Write([]byte(`{"access_token":"access-crm-SECRET","token_type":"Bearer","expires_at":"2026-03-01T13:00:00Z"}`))
		}
	}))
	t.Cleanup(srv.Close)
	return srv
}

func setTokenEnv(t *testing.T, api, key string) {
	t.Helper()
	setTemporalEnv(t)
	for _, k := range []string{"API_KEY", "TOKEN_API", "TOKENWARDEN_API_KEY", "TOKENWARDEN_TOKEN_API"} {
		t.Setenv(k, "")
		os.Unsetenv(k)
	}
	if api != "" {
		t.Setenv("TOKENWARDEN_TOKEN_API", api)
	}
	if key != "" {
		t.Setenv("TOKENWARDEN_API_KEY", key)
	}
}

func TestTokenCommand(t *testing.T) {
	srv := fakeTokenAPI(t)
	setTokenEnv(t, srv.URL, testAPIKey)

	r := runStarter(t, "", "token", "crm")
	r.check(t, exitOK)
	if r.stdout != "access-crm-SECRET\n" {
		t.Errorf("stdout = %q, want the access token and a newline", r.stdout)
	}
	r = runStarter(t, "", "token", "crm", "-json")
	r.check(t, exitOK)
	if !strings.Contains(r.stdout, `"expires_at":"2026-03-01T13:00:00Z"`) || !strings.Contains(r.stdout, `"access_token":"access-crm-SECRET"`) {
		t.Errorf("-json stdout = %q", r.stdout)
	}
	for _, tc := range []struct {
		id   string
		code int
		want string
	}{
		{"other", exitForbidden, "not scoped"},
		{"ghost", exitUnknown, "not in the token store"},
		{"limited", exitFailure, "retry after 3"},
		{"seeding", exitFailure, "token_unavailable"},
	} {
		r := runStarter(t, "", "token", tc.id)
		r.check(t, tc.code, tc.want)
		if r.stdout != "" || strings.Contains(r.stderr, testAPIKey[20:]) {
			t.Errorf("token %s: stdout %q, stderr %q (must hold neither a token nor the key)", tc.id, r.stdout, r.stderr)
		}
	}

	setTokenEnv(t, srv.URL, "twk_wrong")
	r = runStarter(t, "", "token", "crm")
	r.check(t, exitForbidden, "unauthorized", "TOKENWARDEN_API_KEY")
	if strings.Contains(r.stderr, "twk_wrong") {
		t.Errorf("stderr quotes the key: %s", r.stderr)
	}
}

func TestTokenCommandBadInput(t *testing.T) {
	srv := fakeTokenAPI(t)
	setTokenEnv(t, srv.URL, "")
	runStarter(t, "", "token", "crm").check(t, exitBadInput, "TOKENWARDEN_API_KEY", "never from the command line")
	setTokenEnv(t, srv.URL, testAPIKey)
	runStarter(t, "", "token").check(t, exitBadInput, "exactly one")
	runStarter(t, "", "token", "a", "b").check(t, exitBadInput, "exactly one")
	runStarter(t, "", "token", "bad/id").check(t, exitBadInput, "may contain only")
	runStarter(t, "", "token", "crm", "-key", testAPIKey).check(t, exitBadInput) // no flag takes the key
	setTokenEnv(t, "ftp://x", testAPIKey)
	runStarter(t, "", "token", "crm").check(t, exitBadInput, "TOKENWARDEN_TOKEN_API")
}

func TestTokenCommandUnreachable(t *testing.T) {
	setTokenEnv(t, "http://"+testnet.FreeAddr(t), testAPIKey)
	r := runStarter(t, "", "token", "crm")
	r.check(t, exitUnreachable, "cannot reach the token API")
	if strings.Contains(r.stderr, testAPIKey[20:]) {
		t.Errorf("stderr quotes the key: %s", r.stderr)
	}
}

func TestUsageListsToken(t *testing.T) {
	setTemporalEnv(t)
	runStarter(t, "", "help").check(t, exitOK, "token ID", "TOKENWARDEN_API_KEY", "API key unauthorized")
}
