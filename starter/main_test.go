package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tokenwarden/tokenwarden/internal/keyring"
	"github.com/tokenwarden/tokenwarden/internal/testnet"
)

// Secret values used in the secrets inputs below. No failure message may contain them:
// a starter error ends up in terminals, CI logs and bug reports.
const (
	secretRefresh = "rt-S3CRET-refresh-7f3a"
	secretClient  = "cs-S3CRET-client-91bc"
	secretAccess  = "at-S3CRET-access-2d4e"
)

var secretValues = []string{secretRefresh, secretClient, secretAccess}

// validCredential passes every check of the starter; cases below change one thing.
const validCredential = `{
  "id": "acme-crm",
  "provider": "oauth2",
  "config": {"token_url": "https://auth.example.com/token", "client_id": "tokenwarden"}
}`

const validSecrets = `{"refresh_token": "` + secretRefresh + `", "client_secret": "` + secretClient + `"}`

// setTemporalEnv points the starter at a closed port and pins the other connection
// settings, including envconfig's unprefixed fallbacks (TEMPORAL_ADDRESS, ...), so the
// developer's environment cannot change the outcome. Input that is wrongly accepted
// then shows up as exit code 3 (unreachable) instead of the expected 2.
func setTemporalEnv(t *testing.T) string {
	t.Helper()
	addr := testnet.FreeAddr(t)
	for _, k := range []string{"TEMPORAL_ADDRESS", "TEMPORAL_NAMESPACE", "TASK_QUEUE"} {
		t.Setenv(k, "")
		os.Unsetenv(k)
	}
	t.Setenv("TOKENWARDEN_TEMPORAL_ADDRESS", addr)
	t.Setenv("TOKENWARDEN_TEMPORAL_NAMESPACE", "default")
	t.Setenv("TOKENWARDEN_TASK_QUEUE", "tokenwarden-test")
	return addr
}

type result struct {
	code           int
	stdout, stderr string
	elapsed        time.Duration
}

func runStarter(t *testing.T, stdin string, args ...string) result {
	t.Helper()
	var stdout, stderr bytes.Buffer
	start := time.Now()
	code := run(args, strings.NewReader(stdin), &stdout, &stderr)
	return result{code: code, stdout: stdout.String(), stderr: stderr.String(), elapsed: time.Since(start)}
}

// check compares the exit code and looks for every wanted fragment on stderr.
func (r result) check(t *testing.T, wantCode int, wantStderr ...string) {
	t.Helper()
	if r.code != wantCode {
		t.Errorf("exit code = %d, want %d\nstdout:\n%s\nstderr:\n%s", r.code, wantCode, r.stdout, r.stderr)
	}
	for _, w := range wantStderr {
		if !strings.Contains(r.stderr, w) {
			t.Errorf("stderr does not mention %q:\n%s", w, r.stderr)
		}
	}
}

// checkNoDial fails if the command got as far as dialing Temporal: bad input must be
// refused locally, without waiting for a server.
func (r result) checkNoDial(t *testing.T) {
	t.Helper()
	if strings.Contains(r.stderr, "cannot reach the Temporal server") || r.code == exitUnreachable {
		t.Errorf("bad input reached the dial (exit %d):\n%s", r.code, r.stderr)
	}
}

func (r result) checkNoSecrets(t *testing.T) {
	t.Helper()
	for _, s := range secretValues {
		if strings.Contains(r.stdout, s) || strings.Contains(r.stderr, s) {
			t.Errorf("output leaks secret %q\nstdout:\n%s\nstderr:\n%s", s, r.stdout, r.stderr)
		}
	}
}

func TestTopLevel(t *testing.T) {
	setTemporalEnv(t)
	tests := []struct {
		name string
		args []string
		want int
		// wantStderr fragments; every case prints the usage or names the command.
		wantStderr []string
	}{
		{"no args", nil, exitBadInput, []string{"usage: starter"}},
		{"help", []string{"help"}, exitOK, []string{"usage: starter", "TOKENWARDEN_TEMPORAL_ADDRESS"}},
		{"-h", []string{"-h"}, exitOK, []string{"usage: starter"}},
		{"--help", []string{"--help"}, exitOK, []string{"usage: starter"}},
		{"unknown command", []string{"frobnicate"}, exitBadInput, []string{`unknown command "frobnicate"`, "usage: starter"}},
		// Commands are not flags: a misplaced flag must not be taken for a command.
		{"flag before command", []string{"-json", "status"}, exitBadInput, []string{`unknown command "-json"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := runStarter(t, "", tt.args...)
			r.check(t, tt.want, tt.wantStderr...)
			if r.stdout != "" {
				t.Errorf("stdout = %q, want nothing (usage and errors go to stderr)", r.stdout)
			}
		})
	}
}

func TestStartRejectsBadInput(t *testing.T) {
	setTemporalEnv(t)
	tests := []struct {
		name string
		// args after "start"; $CRED, $SECRETS and $DIR are replaced by the paths of the
		// written credential file, secrets file and the temporary directory.
		args    []string
		cred    string // content of $CRED
		secrets string // content of $SECRETS
		stdin   string
		want    int
		// wantStderr fragments that tell the operator what to fix.
		wantStderr []string
	}{
		{
			name: "no credential file argument",
			args: []string{"-secrets", "$SECRETS"}, secrets: validSecrets,
			want: exitBadInput, wantStderr: []string{"expected exactly one credential file, got 0"},
		},
		{
			name: "two credential files",
			args: []string{"$CRED", "$CRED", "-secrets", "$SECRETS"}, cred: validCredential, secrets: validSecrets,
			want: exitBadInput, wantStderr: []string{"expected exactly one credential file, got 2"},
		},
		{
			name: "credential file does not exist",
			args: []string{"$DIR/missing.json", "-secrets", "$SECRETS"}, secrets: validSecrets,
			want: exitBadInput, wantStderr: []string{"missing.json", "no such file"},
		},
		{
			// A syntax error is located by byte offset, never by quoting the input.
			name: "credential file is not JSON",
			args: []string{"$CRED", "-secrets", "$SECRETS"}, cred: `{"id": "acme-crm",}`, secrets: validSecrets,
			want: exitBadInput, wantStderr: []string{"syntax error at byte 19"},
		},
		{
			name: "credential file with a misspelt key",
			args: []string{"$CRED", "-secrets", "$SECRETS"}, secrets: validSecrets,
			cred: `{"id": "acme-crm", "provider": "oauth2", "polcy": {"refresh_margin": "5m"},
			        "config": {"token_url": "https://auth.example.com/token", "client_id": "tw"}}`,
			want: exitBadInput, wantStderr: []string{`unknown field "polcy"`},
		},
		{
			name: "credential file with a misspelt nested key",
			args: []string{"$CRED", "-secrets", "$SECRETS"}, secrets: validSecrets,
			cred: `{"id": "acme-crm", "provider": "oauth2",
			        "config": {"token_uri": "https://auth.example.com/token", "client_id": "tw"}}`,
			want: exitBadInput, wantStderr: []string{`unknown field "token_uri"`},
		},
		{
			// Secrets in the credential file would be committed to a repository with it.
			name: "credential file with a seed",
			args: []string{"$CRED", "-secrets", "$SECRETS"}, secrets: validSecrets,
			cred: `{"id": "acme-crm", "provider": "oauth2", "seed": {"refresh_token": "` + secretRefresh + `"},
			        "config": {"token_url": "https://auth.example.com/token", "client_id": "tw"}}`,
			want: exitBadInput, wantStderr: []string{"secrets belong in the -secrets file"},
		},
		{
			name: "credential file with carried status",
			args: []string{"$CRED", "-secrets", "$SECRETS"}, secrets: validSecrets,
			cred: `{"id": "acme-crm", "provider": "oauth2", "carried": {"id": "acme-crm"},
			        "config": {"token_url": "https://auth.example.com/token", "client_id": "tw"}}`,
			want: exitBadInput, wantStderr: []string{`"carried" is internal`},
		},
		{
			name: "no -secrets",
			args: []string{"$CRED"}, cred: validCredential,
			want: exitBadInput, wantStderr: []string{"-secrets is required"},
		},
		{
			name: "unknown flag",
			args: []string{"$CRED", "-secret", "$SECRETS"}, cred: validCredential, secrets: validSecrets,
			want: exitBadInput, wantStderr: []string{"flag provided but not defined: -secret"},
		},
		{
			name: "secrets file does not exist",
			args: []string{"$CRED", "-secrets", "$DIR/nope.json"}, cred: validCredential,
			want: exitBadInput, wantStderr: []string{"secrets ", "nope.json", "no such file"},
		},
		{
			name: "secrets file with a misspelt key",
			args: []string{"$CRED", "-secrets", "$SECRETS"}, cred: validCredential,
			secrets: `{"refresh_tokn": "` + secretRefresh + `", "client_secret": "` + secretClient + `"}`,
			want:    exitBadInput, wantStderr: []string{`unknown field "refresh_tokn"`},
		},
		{
			// The offending byte is inside a secret; only its offset may be reported.
			name: "secrets file with a syntax error inside a secret",
			args: []string{"$CRED", "-secrets", "$SECRETS"}, cred: validCredential,
			secrets: `{"refresh_token": "` + secretRefresh + `\q", "client_secret": "` + secretClient + `"}`,
			want:    exitBadInput, wantStderr: []string{"syntax error at byte"},
		},
		{
			name: "secrets file with an unquoted secret",
			args: []string{"$CRED", "-secrets", "$SECRETS"}, cred: validCredential,
			secrets: `{"refresh_token": ` + secretRefresh + `}`,
			want:    exitBadInput, wantStderr: []string{"syntax error at byte 19"},
		},
		{
			name: "secrets file with a secret of the wrong type",
			args: []string{"$CRED", "-secrets", "$SECRETS"}, cred: validCredential,
			secrets: `{"refresh_token": ["` + secretRefresh + `"]}`,
			want:    exitBadInput, wantStderr: []string{`field "refresh_token": expected string`},
		},
		{
			name: "secrets file with two objects",
			args: []string{"$CRED", "-secrets", "$SECRETS"}, cred: validCredential,
			secrets: validSecrets + validSecrets,
			want:    exitBadInput, wantStderr: []string{"more than one JSON value"},
		},
		{
			name: "empty standard input for -secrets -",
			args: []string{"$CRED", "-secrets", "-"}, cred: validCredential, stdin: "",
			want: exitBadInput, wantStderr: []string{"secrets (standard input)", "empty input"},
		},
		{
			name: "secrets without refresh_token",
			args: []string{"$CRED", "-secrets", "-"}, cred: validCredential,
			stdin: `{"client_secret": "` + secretClient + `"}`,
			want:  exitBadInput, wantStderr: []string{"seed.refresh_token: required"},
		},
		{
			// A pasted token often carries a newline; sending it would fail at the
			// provider much later, so it is refused now, without echoing the token.
			name: "refresh token with surrounding whitespace",
			args: []string{"$CRED", "-secrets", "$SECRETS"}, cred: validCredential,
			secrets: `{"refresh_token": " ` + secretRefresh + `\n", "client_secret": "` + secretClient + `"}`,
			want:    exitBadInput, wantStderr: []string{"seed.refresh_token: has leading or trailing whitespace"},
		},
		{
			name: "missing id",
			args: []string{"$CRED", "-secrets", "$SECRETS"}, secrets: validSecrets,
			cred: `{"provider": "oauth2", "config": {"token_url": "https://auth.example.com/token", "client_id": "tw"}}`,
			want: exitBadInput, wantStderr: []string{"id: required"},
		},
		{
			name: "id with a slash",
			args: []string{"$CRED", "-secrets", "$SECRETS"}, secrets: validSecrets,
			cred: `{"id": "acme/crm", "provider": "oauth2", "config": {"token_url": "https://auth.example.com/token", "client_id": "tw"}}`,
			want: exitBadInput, wantStderr: []string{"id:", "may contain only"},
		},
		{
			name: "unknown provider",
			args: []string{"$CRED", "-secrets", "$SECRETS"}, secrets: validSecrets,
			cred: `{"id": "acme-crm", "provider": "okta", "config": {"token_url": "https://auth.example.com/token", "client_id": "tw"}}`,
			want: exitBadInput, wantStderr: []string{`provider: unknown provider "okta"`, "oauth2"},
		},
		{
			name: "token_url with an ftp scheme",
			args: []string{"$CRED", "-secrets", "$SECRETS"}, secrets: validSecrets,
			cred: `{"id": "acme-crm", "provider": "oauth2", "config": {"token_url": "ftp://auth.example.com/token", "client_id": "tw"}}`,
			want: exitBadInput, wantStderr: []string{"config.token_url: must be an absolute http or https URL"},
		},
		{
			name: "zero refresh_margin",
			args: []string{"$CRED", "-secrets", "$SECRETS"}, secrets: validSecrets,
			cred: `{"id": "acme-crm", "provider": "oauth2", "policy": {"refresh_margin": "0s"},
			        "config": {"token_url": "https://auth.example.com/token", "client_id": "tw"}}`,
			want: exitBadInput, wantStderr: []string{"policy.refresh_margin: must be positive"},
		},
		{
			name: "negative retry_initial",
			args: []string{"$CRED", "-secrets", "$SECRETS"}, secrets: validSecrets,
			cred: `{"id": "acme-crm", "provider": "oauth2", "policy": {"retry_initial": "-5m"},
			        "config": {"token_url": "https://auth.example.com/token", "client_id": "tw"}}`,
			want: exitBadInput, wantStderr: []string{"policy.retry_initial: must be positive, got -5m0s"},
		},
		{
			name: "negative jitter",
			args: []string{"$CRED", "-secrets", "$SECRETS"}, secrets: validSecrets,
			cred: `{"id": "acme-crm", "provider": "oauth2", "policy": {"jitter": "-1s"},
			        "config": {"token_url": "https://auth.example.com/token", "client_id": "tw"}}`,
			want: exitBadInput, wantStderr: []string{"policy.jitter: must not be negative"},
		},
		{
			name: "unparsable duration",
			args: []string{"$CRED", "-secrets", "$SECRETS"}, secrets: validSecrets,
			cred: `{"id": "acme-crm", "provider": "oauth2", "policy": {"assumed_lifetime": "an hour"},
			        "config": {"token_url": "https://auth.example.com/token", "client_id": "tw"}}`,
			want: exitBadInput, wantStderr: []string{`duration "an hour"`},
		},
		{
			// Several problems are reported at once, each with its field.
			name: "several problems",
			args: []string{"$CRED", "-secrets", "$SECRETS"}, secrets: validSecrets,
			cred: `{"id": "acme-crm", "provider": "oauth2", "policy": {"refresh_margin": "0s", "assumed_lifetime": "-5m"},
			        "config": {"token_url": "ftp://auth.example.com/token", "client_id": "tw"}}`,
			want: exitBadInput, wantStderr: []string{"config.token_url", "policy.refresh_margin", "policy.assumed_lifetime"},
		},
		{
			name: "-h",
			args: []string{"-h"},
			want: exitOK, wantStderr: []string{"usage: starter start", "-secrets"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			credPath := writeFile(t, dir, "cred.json", tt.cred)
			secretsPath := writeFile(t, dir, "secrets.json", tt.secrets)
			args := []string{"start"}
			for _, a := range tt.args {
				a = strings.ReplaceAll(a, "$CRED", credPath)
				a = strings.ReplaceAll(a, "$SECRETS", secretsPath)
				a = strings.ReplaceAll(a, "$DIR", dir)
				args = append(args, a)
			}
			r := runStarter(t, tt.stdin, args...)
			r.check(t, tt.want, tt.wantStderr...)
			r.checkNoDial(t)
			r.checkNoSecrets(t)
			if r.stdout != "" {
				t.Errorf("stdout = %q, want nothing", r.stdout)
			}
		})
	}
}

func TestStatusAndListRejectBadInput(t *testing.T) {
	setTemporalEnv(t)
	tests := []struct {
		name       string
		args       []string
		want       int
		wantStderr []string
	}{
		{"status without id", []string{"status"}, exitBadInput, []string{"expected one credential ID", "usage: starter status"}},
		{"status with two ids", []string{"status", "a", "b"}, exitBadInput, []string{"expected one credential ID"}},
		{"status id with a slash", []string{"status", "a/b"}, exitBadInput, []string{`id: "a/b" may contain only`}},
		{"status id starting with a dash", []string{"status", "--", "-x"}, exitBadInput, []string{"must not start with"}},
		{"status unknown flag", []string{"status", "-yaml", "a"}, exitBadInput, []string{"flag provided but not defined: -yaml"}},
		{"status -h", []string{"status", "-h"}, exitOK, []string{"usage: starter status", "-json"}},
		{"list bad state", []string{"list", "-state", "sleeping"}, exitBadInput, []string{`-state: "sleeping" is not a state`, "ACTIVE"}},
		{"list bad provider", []string{"list", "-provider", "okta"}, exitBadInput, []string{`-provider: "okta" is not a provider`, "oauth2"}},
		{"list positional args", []string{"list", "ACTIVE"}, exitBadInput, []string{"list takes no arguments", `"ACTIVE"`}},
		{"list flag without value", []string{"list", "-state"}, exitBadInput, []string{"flag needs an argument: -state"}},
		{"list -h", []string{"list", "-h"}, exitOK, []string{"usage: starter list", "-provider"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := runStarter(t, "", tt.args...)
			r.check(t, tt.want, tt.wantStderr...)
			r.checkNoDial(t)
			if r.stdout != "" {
				t.Errorf("stdout = %q, want nothing", r.stdout)
			}
		})
	}
}

// TestUnreachableServer checks that a dead server is reported as such (exit 3), with
// the address and the hint to start one, and within the dial timeout rather than
// hanging. The valid start and list cases also show that good input gets past the
// local checks that TestStartRejectsBadInput and TestStatusAndListRejectBadInput rely on.
func TestUnreachableServer(t *testing.T) {
	if testing.Short() {
		t.Skip("each case waits for a dial to fail")
	}
	addr := setTemporalEnv(t)
	// start seals the seed before it dials: give it a key to seal with.
	keyFile := filepath.Join(t.TempDir(), "keys.json")
	if _, err := keyring.GenerateFile(keyFile); err != nil {
		t.Fatal(err)
	}
	t.Setenv("TOKENWARDEN_KEY_FILE", keyFile)
	tests := []struct {
		name  string
		args  []string
		cred  string
		stdin string
	}{
		{name: "status", args: []string{"status", "some-id"}},
		{name: "list", args: []string{"list", "-state", "active", "-provider", "oauth2"}},
		{name: "stats", args: []string{"stats", "-since", "7d"}},
		{name: "start", args: []string{"start", "$CRED", "-secrets", "-"}, cred: validCredential, stdin: validSecrets},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			credPath := writeFile(t, t.TempDir(), "cred.json", tt.cred)
			for i := range tt.args {
				tt.args[i] = strings.ReplaceAll(tt.args[i], "$CRED", credPath)
			}
			r := runStarter(t, tt.stdin, tt.args...)
			t.Logf("%s failed after %s", tt.name, r.elapsed.Round(time.Millisecond))
			r.check(t, exitUnreachable, "cannot reach the Temporal server at "+addr, `namespace "default"`, "`make run`")
			r.checkNoSecrets(t)
			// The dial is bounded; a refused connection should not take much longer.
			if r.elapsed > 12*time.Second {
				t.Errorf("took %s to report an unreachable server", r.elapsed)
			}
		})
	}
}

// writeFile writes content to dir/name and returns the path; empty content writes nothing,
// so that a case without a credential file gets a path that does not exist.
func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if content == "" {
		return p
	}
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}
