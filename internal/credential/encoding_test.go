package credential

import (
	"encoding/json"
	"testing"
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
