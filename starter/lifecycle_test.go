package main

import (
	"strings"
	"testing"
	"time"
)

// TestLifecycleCommandsRejectBadInput covers refresh, reseed, retire and setup: bad
// input is refused locally with exit 2 (or -h answered with 0), before any dial.
func TestLifecycleCommandsRejectBadInput(t *testing.T) {
	setTemporalEnv(t)
	tests := []struct {
		name string
		// args; $SECRETS and $DIR are replaced by the secrets file and its directory.
		args       []string
		secrets    string
		stdin      string
		want       int
		wantStderr []string
	}{
		{name: "refresh without id", args: []string{"refresh"}, want: exitBadInput,
			wantStderr: []string{"expected one credential ID, got 0", "usage: starter refresh"}},
		{name: "refresh with two ids", args: []string{"refresh", "a", "b"}, want: exitBadInput,
			wantStderr: []string{"expected one credential ID, got 2"}},
		{name: "refresh id with a slash", args: []string{"refresh", "a/b"}, want: exitBadInput,
			wantStderr: []string{`id: "a/b" may contain only`}},
		{name: "refresh unknown flag", args: []string{"refresh", "-now", "a"}, want: exitBadInput,
			wantStderr: []string{"flag provided but not defined: -now"}},
		{name: "refresh zero timeout", args: []string{"refresh", "a", "-timeout", "0s"}, want: exitBadInput,
			wantStderr: []string{"-timeout: must be positive"}},
		{name: "refresh unparsable timeout", args: []string{"refresh", "a", "-timeout", "soon"}, want: exitBadInput,
			wantStderr: []string{`invalid value "soon" for flag -timeout`}},
		{name: "refresh -h", args: []string{"refresh", "-h"}, want: exitOK,
			wantStderr: []string{"usage: starter refresh", "-timeout"}},

		{name: "reseed without id", args: []string{"reseed", "-secrets", "$SECRETS"}, secrets: validSecrets, want: exitBadInput,
			wantStderr: []string{"expected one credential ID, got 0", "usage: starter reseed"}},
		{name: "reseed with two ids", args: []string{"reseed", "a", "b", "-secrets", "-"}, stdin: validSecrets, want: exitBadInput,
			wantStderr: []string{"expected one credential ID, got 2"}},
		{name: "reseed id with a slash", args: []string{"reseed", "a/b", "-secrets", "-"}, stdin: validSecrets, want: exitBadInput,
			wantStderr: []string{`id: "a/b" may contain only`}},
		{name: "reseed without -secrets", args: []string{"reseed", "acme-crm"}, want: exitBadInput,
			wantStderr: []string{"-secrets is required"}},
		{name: "reseed with -secrets but no value", args: []string{"reseed", "acme-crm", "-secrets"}, want: exitBadInput,
			wantStderr: []string{"flag needs an argument: -secrets"}},
		{name: "reseed secrets file does not exist", args: []string{"reseed", "acme-crm", "-secrets", "$DIR/nope.json"}, want: exitBadInput,
			wantStderr: []string{"secrets ", "nope.json", "no such file"}},
		{name: "reseed empty standard input", args: []string{"reseed", "acme-crm", "-secrets", "-"}, want: exitBadInput,
			wantStderr: []string{"secrets (standard input)", "empty input"}},
		{name: "reseed misspelt key", args: []string{"reseed", "acme-crm", "-secrets", "$SECRETS"}, want: exitBadInput,
			secrets:    `{"refresh_tokn": "` + secretRefresh + `"}`,
			wantStderr: []string{`unknown field "refresh_tokn"`}},
		{name: "reseed syntax error inside a secret", args: []string{"reseed", "acme-crm", "-secrets", "-"}, want: exitBadInput,
			stdin:      `{"refresh_token": "` + secretRefresh + `\q"}`,
			wantStderr: []string{"syntax error at byte"}},
		{name: "reseed secret of the wrong type", args: []string{"reseed", "acme-crm", "-secrets", "-"}, want: exitBadInput,
			stdin:      `{"refresh_token": ["` + secretRefresh + `"]}`,
			wantStderr: []string{`field "refresh_token": expected string`}},
		{name: "reseed two objects", args: []string{"reseed", "acme-crm", "-secrets", "-"}, want: exitBadInput,
			stdin:      validSecrets + validSecrets,
			wantStderr: []string{"more than one JSON value"}},
		{name: "reseed a whole credential file", args: []string{"reseed", "acme-crm", "-secrets", "-"}, want: exitBadInput,
			stdin:      validCredential,
			wantStderr: []string{`unknown field "id"`}},
		{name: "reseed zero timeout", args: []string{"reseed", "acme-crm", "-secrets", "-", "-timeout", "-1s"}, stdin: validSecrets,
			want: exitBadInput, wantStderr: []string{"-timeout: must be positive"}},
		{name: "reseed -h", args: []string{"reseed", "-h"}, want: exitOK,
			wantStderr: []string{"usage: starter reseed", "-secrets", "-timeout"}},

		// Without -yes nothing is sent; the message says what retiring would do.
		{name: "retire without -yes", args: []string{"retire", "acme-crm"}, want: exitBadInput,
			wantStderr: []string{"deletes its secrets", "completes its workflow", "starter retire acme-crm -yes"}},
		{name: "retire -yes=false", args: []string{"retire", "-yes=false", "acme-crm"}, want: exitBadInput,
			wantStderr: []string{"deletes its secrets"}},
		{name: "retire without id", args: []string{"retire", "-yes"}, want: exitBadInput,
			wantStderr: []string{"expected one credential ID, got 0", "usage: starter retire"}},
		{name: "retire id with a slash", args: []string{"retire", "a/b", "-yes"}, want: exitBadInput,
			wantStderr: []string{`id: "a/b" may contain only`}},
		{name: "retire unknown flag", args: []string{"retire", "acme-crm", "-force"}, want: exitBadInput,
			wantStderr: []string{"flag provided but not defined: -force"}},
		{name: "retire -h", args: []string{"retire", "-h"}, want: exitOK,
			wantStderr: []string{"usage: starter retire", "-yes"}},

		{name: "setup with arguments", args: []string{"setup", "default"}, want: exitBadInput,
			wantStderr: []string{`setup takes no arguments, got ["default"]`, "usage: starter setup"}},
		{name: "setup unknown flag", args: []string{"setup", "-namespace", "x"}, want: exitBadInput,
			wantStderr: []string{"flag provided but not defined: -namespace"}},
		{name: "setup -h", args: []string{"setup", "-h"}, want: exitOK,
			wantStderr: []string{"usage: starter setup"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			secretsPath := writeFile(t, dir, "secrets.json", tt.secrets)
			var args []string
			for _, a := range tt.args {
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

func TestUsageListsEveryCommand(t *testing.T) {
	setTemporalEnv(t)
	r := runStarter(t, "", "help")
	r.check(t, exitOK, "refresh ID", "reseed ID -secrets", "retire ID -yes", "setup", "6 update rejected")
}

// TestLifecycleCommandsUnreachable: valid input gets past the local checks and a dead
// server is exit 3, for each new command.
func TestLifecycleCommandsUnreachable(t *testing.T) {
	if testing.Short() {
		t.Skip("each case waits for a dial to fail")
	}
	addr := setTemporalEnv(t)
	tests := []struct {
		name  string
		args  []string
		stdin string
	}{
		{name: "refresh", args: []string{"refresh", "acme-crm"}},
		{name: "reseed", args: []string{"reseed", "acme-crm", "-secrets", "-"}, stdin: validSecrets},
		{name: "retire", args: []string{"retire", "acme-crm", "-yes"}},
		{name: "setup", args: []string{"setup"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := runStarter(t, tt.stdin, tt.args...)
			r.check(t, exitUnreachable, "cannot reach the Temporal server at "+addr)
			r.checkNoSecrets(t)
			if r.elapsed > 12*time.Second {
				t.Errorf("took %s to report an unreachable server", r.elapsed)
			}
		})
	}
}
