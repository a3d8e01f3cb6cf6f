package main

import "testing"

// TestCleanupRejectsBadInput: cleanup only lists (retirement happens in each workflow),
// so it insists on -dry-run; bad input never reaches the server.
func TestCleanupRejectsBadInput(t *testing.T) {
	setTemporalEnv(t)
	for _, tc := range []struct {
		name string
		args []string
		want []string
	}{
		{"without -dry-run", []string{"cleanup"}, []string{"use -dry-run"}},
		{"positional argument", []string{"cleanup", "-dry-run", "extra"}, []string{"takes no arguments"}},
		{"negative window", []string{"cleanup", "-dry-run", "-within", "-1h"}, []string{"-within: must not be negative"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := runStarter(t, "", tc.args...)
			r.check(t, exitBadInput, tc.want...)
			r.checkNoDial(t)
		})
	}
}
