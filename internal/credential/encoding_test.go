package credential

import (
	"encoding/json"
	"testing"
	"time"
)

// These values travel through Temporal history (workflow inputs, activity inputs and
// results), and recorded runs must keep decoding: their JSON is pinned here byte for
// byte.
func TestEncodingsArePinned(t *testing.T) {
	for _, tc := range []struct {
		name string
		v    any
		want string
	}{
		{"state", StateNeedsReauth, `"NEEDS_REAUTH"`},
		{"empty sink", Sink{}, `{"type":""}`},
		{"full sink", Sink{Type: SinkEnv, Path: "/srv/app/.env", Key: "K", Value: SinkValueExpiresAt, Target: "t",
			ReloadSignal: &ReloadSignal{PIDFile: "/run/app.pid", Signal: "HUP"}, ReloadURL: "https://app.example/reload"},
			`{"type":"env","path":"/srv/app/.env","key":"K","value":"expires_at","target":"t",` +
				`"reload_signal":{"pid_file":"/run/app.pid","signal":"HUP"},"reload_url":"https://app.example/reload"}`},
		{"empty notification", Notification{}, `{"event":"","credential_id":"","provider":"","state":"","since":"0001-01-01T00:00:00Z"}`},
		{"full notification", Notification{ID: "n1", Event: EventIncident, CredentialID: "crm", Provider: "oauth2",
			State: StateNeedsReauth, Reason: "r", Code: "invalid_grant", Since: time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC),
			Failures: 3, Reminder: 2, ReseedCommand: "starter reseed crm", Target: "ops"},
			`{"id":"n1","event":"incident","credential_id":"crm","provider":"oauth2","state":"NEEDS_REAUTH","reason":"r",` +
				`"code":"invalid_grant","since":"2026-11-26T10:00:00Z","consecutive_failures":3,"reminder":2,` +
				`"reseed_command":"starter reseed crm","target":"ops"}`},
	} {
		b, err := json.Marshal(tc.v)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if string(b) != tc.want {
			t.Errorf("%s encodes as\n%s\nwant\n%s", tc.name, b, tc.want)
		}
	}
}

func TestSinkEnvValue(t *testing.T) {
	if got := (Sink{Type: SinkEnv}).EnvValue(); got != SinkValueAccessToken {
		t.Errorf("EnvValue of an env sink without value = %q, want %q", got, SinkValueAccessToken)
	}
	if got := (Sink{Type: SinkEnv, Value: SinkValueTokenType}).EnvValue(); got != SinkValueTokenType {
		t.Errorf("EnvValue = %q, want %q", got, SinkValueTokenType)
	}
}
