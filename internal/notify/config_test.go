package notify_test

import (
	"encoding/base64"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tokenwarden/tokenwarden/internal/config"
	"github.com/tokenwarden/tokenwarden/internal/notify"
)

func TestParseNotifyTargets(t *testing.T) {
	got, err := config.ParseNotifyTargets(" ops=https://hooks.example/abc,team-b=slack:https://hooks.slack.com/services/T/B/X ,\n"+
		"raw.json_1=json:http://127.0.0.1:8080/hook?k=v&a=b,", "slack")
	if err != nil {
		t.Fatal(err)
	}
	want := []config.NotifyTarget{
		{Name: "ops", Format: "slack", URL: "https://hooks.example/abc"},
		{Name: "team-b", Format: "slack", URL: "https://hooks.slack.com/services/T/B/X"},
		{Name: "raw.json_1", Format: "json", URL: "http://127.0.0.1:8080/hook?k=v&a=b"},
	}
	if !slices.Equal(got, want) {
		t.Errorf("got %+v\nwant %+v", got, want)
	}
	if got, err := config.ParseNotifyTargets("", "json"); err != nil || len(got) != 0 {
		t.Errorf("empty: %v, %v", got, err)
	}
	if s := got[1].String(); s != "team-b (slack)" {
		t.Errorf("String() = %q", s)
	}
}

func TestParseNotifyTargetsRejects(t *testing.T) {
	const s = "/services/T0SECRET1/B0SECRET2/xoxSecretPath"
	tests := []struct {
		name, value string
		want        string
	}{
		{"bare URL", "https://hooks.example" + s, "entry 1 is not name=[json:|slack:]URL"},
		{"URL cut at its query", "ops=https://a.example/x,https://hooks.example" + s + "?t=1", "entry 2 is not name="},
		{"bad name", "ops team=https://hooks.example" + s, "entry 1 is not name="},
		{"long name", strings.Repeat("n", 65) + "=https://hooks.example" + s, "entry 1 is not name="},
		{"no URL", "ops=", `target "ops" has no URL`},
		{"format only", "ops=slack:", `target "ops" has no URL`},
		{"relative URL", "ops=hooks.example" + s, `target "ops": must be an absolute http or https URL`},
		{"ftp", "ops=ftp://hooks.example" + s, `target "ops": must be an absolute http or https URL`},
		{"plain http beyond loopback", "ops=http://hooks.example" + s, `target "ops": needs an https URL (plain http only to a loopback address)`},
		{"unknown format", "ops=teams:https://hooks.example" + s, `target "ops": must be an absolute http or https URL`},
		{"no host", "ops=https://" + s, `target "ops": URL has no host`},
		{"bad escape", "ops=https://hooks.example" + s + "%zz", `target "ops": not a valid URL`},
		{"duplicate", "ops=https://a.example/1,ops=slack:https://hooks.example" + s, `target "ops" is defined twice`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := config.ParseNotifyTargets(tt.value, "json")
			if err == nil {
				t.Fatal("accepted")
			}
			if !strings.Contains(err.Error(), "TOKENWARDEN_NOTIFY_TARGETS") || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %q, want it to contain %q", err, tt.want)
			}
			for _, secret := range []string{"SECRET", "xoxSecretPath", "hooks.example"} {
				if strings.Contains(err.Error(), secret) {
					t.Errorf("error shows the URL: %q", err)
				}
			}
		})
	}
}

// testSecret is a signing secret ("whsec_" and 32 base64 bytes) whose key reads
// SECRET, so that the checks below catch it in an error.
var testSecret = "whsec_" + base64.StdEncoding.EncodeToString([]byte("SECRET-SECRET-SECRET-SECRET-1234"))

// clearEnv unsets every worker variable for the test.
func clearEnv(t *testing.T) {
	t.Helper()
	names, err := config.VariableNames(&config.Worker{})
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range names {
		t.Setenv(n, "")
		os.Unsetenv(n)
	}
}

func TestWorkerNotifyVariables(t *testing.T) {
	names, err := config.VariableNames(&config.Worker{})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"TOKENWARDEN_NOTIFY_WEBHOOK_URL", "TOKENWARDEN_NOTIFY_FORMAT", "TOKENWARDEN_NOTIFY_TARGETS",
		"TOKENWARDEN_NOTIFY_BEARER_TOKEN", "TOKENWARDEN_NOTIFY_TIMEOUT"} {
		if !slices.Contains(names, want) {
			t.Errorf("%s missing from %v", want, names)
		}
	}

	clearEnv(t)
	t.Setenv("NOTIFY_WEBHOOK_URL", "https://stray.example/x") // unprefixed: ignored
	cfg, err := config.LoadWorker()
	if err != nil {
		t.Fatal(err)
	}
	if cfg.NotifyWebhookURL != "" || cfg.NotifyFormat != "json" || cfg.NotifyTimeout != 10*time.Second || cfg.NotifyTargets != "" {
		t.Errorf("defaults: %+v", cfg)
	}
	if n, err := notify.FromConfig(cfg, nil); n != nil || err != nil {
		t.Errorf("FromConfig without webhooks = %v, %v; want nil, nil", n, err)
	}

	t.Setenv("TOKENWARDEN_NOTIFY_WEBHOOK_URL", "https://hooks.example/default")
	t.Setenv("TOKENWARDEN_NOTIFY_FORMAT", "slack")
	t.Setenv("TOKENWARDEN_NOTIFY_TARGETS", "ops=json:https://ops.example/h,team-b=https://hooks.slack.com/services/T/B/X")
	t.Setenv("TOKENWARDEN_NOTIFY_BEARER_TOKEN", "tok")
	t.Setenv("TOKENWARDEN_NOTIFY_TIMEOUT", "3s")
	t.Setenv("TOKENWARDEN_NOTIFY_WEBHOOK_SECRET", testSecret)
	t.Setenv("TOKENWARDEN_NOTIFY_TARGET_SECRETS", "ops="+testSecret)
	cfg, err = config.LoadWorker()
	if err != nil {
		t.Fatal(err)
	}
	n, err := notify.FromConfig(cfg, nil)
	if err != nil || n == nil {
		t.Fatalf("FromConfig = %v, %v", n, err)
	}
	if s, _ := n.(interface{ String() string }); s == nil || s.String() != "default (slack, signed), ops (json, signed), team-b (slack)" {
		t.Errorf("notifier = %v", n)
	}
}

func TestWorkerNotifyCheck(t *testing.T) {
	const secret = "https://hooks.example/services/T0SECRET/xoxSecret"
	tests := []struct {
		name string
		env  map[string]string
		want string
	}{
		{"unknown format", map[string]string{"TOKENWARDEN_NOTIFY_FORMAT": "teams"}, `TOKENWARDEN_NOTIFY_FORMAT: "teams" is not json or slack`},
		{"empty format", map[string]string{"TOKENWARDEN_NOTIFY_FORMAT": ""}, `TOKENWARDEN_NOTIFY_FORMAT: "" is not json or slack`},
		{"relative default URL", map[string]string{"TOKENWARDEN_NOTIFY_WEBHOOK_URL": "hooks.example/services/T0SECRET/xoxSecret"}, "TOKENWARDEN_NOTIFY_WEBHOOK_URL: must be an absolute http or https URL"},
		{"default URL with a space", map[string]string{"TOKENWARDEN_NOTIFY_WEBHOOK_URL": secret + " x"}, "TOKENWARDEN_NOTIFY_WEBHOOK_URL: URL contains spaces"},
		{"bad target", map[string]string{"TOKENWARDEN_NOTIFY_TARGETS": "ops=mailto:xoxSecret@hooks.example"}, `TOKENWARDEN_NOTIFY_TARGETS: target "ops"`},
		{"zero timeout", map[string]string{"TOKENWARDEN_NOTIFY_TIMEOUT": "0s"}, "TOKENWARDEN_NOTIFY_TIMEOUT: must be positive"},
		{"bearer with a newline", map[string]string{"TOKENWARDEN_NOTIFY_BEARER_TOKEN": "xoxSecret\nX-Evil: 1"}, "TOKENWARDEN_NOTIFY_BEARER_TOKEN: must not contain"},
		{"plain http default URL", map[string]string{"TOKENWARDEN_NOTIFY_WEBHOOK_URL": "http://hooks.example/services/T0SECRET/xoxSecret"}, "TOKENWARDEN_NOTIFY_WEBHOOK_URL: needs an https URL"},
		{"default secret without a URL", map[string]string{"TOKENWARDEN_NOTIFY_WEBHOOK_SECRET": testSecret}, "NOTIFY_WEBHOOK_SECRET is set but"},
		{"default secret not whsec_", map[string]string{"TOKENWARDEN_NOTIFY_WEBHOOK_URL": secret, "TOKENWARDEN_NOTIFY_WEBHOOK_SECRET": "xoxSecretSECRET"}, `TOKENWARDEN_NOTIFY_WEBHOOK_SECRET: a signing secret must start with "whsec_"`},
		{"target secret too short", map[string]string{"TOKENWARDEN_NOTIFY_TARGETS": "ops=" + secret, "TOKENWARDEN_NOTIFY_TARGET_SECRETS": "ops=whsec_eG94U2VjcmV0"}, `TOKENWARDEN_NOTIFY_TARGET_SECRETS: target "ops": a signing secret's key must be`},
		{"target secret entry without a name", map[string]string{"TOKENWARDEN_NOTIFY_TARGETS": "ops=" + secret, "TOKENWARDEN_NOTIFY_TARGET_SECRETS": testSecret}, "TOKENWARDEN_NOTIFY_TARGET_SECRETS: entry 1 is not name=whsec_"},
		{"secret of no target", map[string]string{"TOKENWARDEN_NOTIFY_TARGETS": "ops=" + secret, "TOKENWARDEN_NOTIFY_TARGET_SECRETS": "opz=" + testSecret}, `TOKENWARDEN_NOTIFY_TARGET_SECRETS: target "opz" is not in`},
		{"two secrets", map[string]string{"TOKENWARDEN_NOTIFY_TARGETS": "ops=" + secret, "TOKENWARDEN_NOTIFY_TARGET_SECRETS": "ops=" + testSecret + ",ops=" + testSecret}, `target "ops" has two secrets`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clearEnv(t)
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			_, err := config.LoadWorker()
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want %q", err, tt.want)
			}
			// The variables' own names end in SECRET(S): those may be named.
			msg := strings.NewReplacer("_SECRETS", "", "_SECRET", "").Replace(err.Error())
			if strings.Contains(msg, "SECRET") || strings.Contains(msg, "xoxSecret") ||
				strings.Contains(msg, testSecret[len("whsec_"):44]) || strings.Contains(msg, "eG94U2VjcmV0") {
				t.Errorf("error shows a secret: %v", err)
			}
		})
	}
}
