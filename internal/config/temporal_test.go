package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tokenwarden/tokenwarden/internal/tlstest"
	"go.temporal.io/sdk/client"
)

// isolateTemporalEnv clears every TEMPORAL_* and TOKENWARDEN_TEMPORAL_* variable for
// the test and points TEMPORAL_CONFIG_FILE at a file that does not exist, so that
// neither the developer's environment nor their temporal CLI profile leaks in.
func isolateTemporalEnv(t *testing.T) {
	t.Helper()
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(k, "TEMPORAL_") || strings.HasPrefix(k, Prefix+"_TEMPORAL_") {
			t.Setenv(k, "") // restored after the test
			os.Unsetenv(k)
		}
	}
	t.Setenv("TEMPORAL_CONFIG_FILE", filepath.Join(t.TempDir(), "none.toml"))
}

func TestClientOptionsDefaults(t *testing.T) {
	isolateTemporalEnv(t)
	opts, err := Temporal{}.ClientOptions(nil)
	if err != nil {
		t.Fatal(err)
	}
	if opts.HostPort != DefaultTemporalAddress || opts.Namespace != DefaultTemporalNamespace {
		t.Errorf("defaults: %s / %s", opts.HostPort, opts.Namespace)
	}
	if opts.Credentials != nil || opts.ConnectionOptions.TLS != nil {
		t.Errorf("the dev server default must be plaintext without credentials: %s", DescribeConnection(opts))
	}
	if got := DescribeConnection(opts); got != `localhost:7233 (namespace "default", plaintext, auth none)` {
		t.Errorf("DescribeConnection = %s", got)
	}
}

// TestClientOptionsLayers: the temporal CLI's profile, then TEMPORAL_*, then
// tokenwarden's own overrides, each layer winning over the one before.
func TestClientOptionsLayers(t *testing.T) {
	isolateTemporalEnv(t)
	const apiKey = "tw-test-api-key-3f9c"
	file := filepath.Join(t.TempDir(), "temporal.toml")
	if err := os.WriteFile(file, []byte(`
[profile.default]
address = "default-profile:7233"

[profile.cloud]
address = "ns.acct.tmprl.example:7233"
namespace = "ns.acct"
api_key = "`+apiKey+`"
`), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("TEMPORAL_CONFIG_FILE", file)

	opts, err := Temporal{}.ClientOptions(nil)
	if err != nil {
		t.Fatal(err)
	}
	if opts.HostPort != "default-profile:7233" || opts.Namespace != "default" {
		t.Errorf("default profile: %s", DescribeConnection(opts))
	}

	t.Setenv("TEMPORAL_PROFILE", "cloud")
	opts, err = Temporal{}.ClientOptions(nil)
	if err != nil {
		t.Fatal(err)
	}
	if opts.HostPort != "ns.acct.tmprl.example:7233" || opts.Namespace != "ns.acct" {
		t.Errorf("cloud profile: %s", DescribeConnection(opts))
	}
	if opts.Credentials == nil || opts.ConnectionOptions.TLS == nil {
		t.Errorf("an API key must come with credentials and TLS: %s", DescribeConnection(opts))
	}
	if d := DescribeConnection(opts); strings.Contains(d, apiKey) || !strings.Contains(d, "auth api-key") || !strings.Contains(d, ", tls,") {
		t.Errorf("DescribeConnection = %s", d)
	}

	t.Setenv("TEMPORAL_ADDRESS", "from-env:7233")
	t.Setenv("TEMPORAL_NAMESPACE", "env-ns")
	opts, err = Temporal{}.ClientOptions(nil)
	if err != nil {
		t.Fatal(err)
	}
	if opts.HostPort != "from-env:7233" || opts.Namespace != "env-ns" {
		t.Errorf("TEMPORAL_* over the profile: %s", DescribeConnection(opts))
	}

	t.Setenv("TOKENWARDEN_TEMPORAL_ADDRESS", "override:7233")
	t.Setenv("TOKENWARDEN_TEMPORAL_NAMESPACE", "override-ns")
	tc, err := LoadTemporal()
	if err != nil {
		t.Fatal(err)
	}
	if tc.TemporalAddress != "override:7233" || tc.TemporalNamespace != "override-ns" {
		t.Errorf("TOKENWARDEN_TEMPORAL_* over TEMPORAL_*: %+v", tc)
	}
	if opts, err = tc.ClientOptions(nil); err != nil || opts.Credentials == nil {
		t.Errorf("the overrides must keep the profile's API key (err %v)", err)
	}

	t.Setenv("TEMPORAL_PROFILE", "missing")
	if _, err := LoadTemporal(); err == nil || !strings.Contains(err.Error(), "missing") {
		t.Errorf("a profile that does not exist must be an error, got %v", err)
	}
}

// TestClientOptionsMutualTLS: the TEMPORAL_TLS_* variables give a tls.Config with the
// client certificate, the CA and the server name.
func TestClientOptionsMutualTLS(t *testing.T) {
	isolateTemporalEnv(t)
	dir := t.TempDir()
	ca, err := tlstest.NewCA("config-test-ca")
	if err != nil {
		t.Fatal(err)
	}
	caPath, err := ca.WriteCert(dir, "ca.crt")
	if err != nil {
		t.Fatal(err)
	}
	cl, err := ca.Client(dir, "worker")
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("TEMPORAL_ADDRESS", "temporal.internal.example:7233")
	t.Setenv("TEMPORAL_TLS_CLIENT_CERT_PATH", cl.CertPath)
	t.Setenv("TEMPORAL_TLS_CLIENT_KEY_PATH", cl.KeyPath)
	t.Setenv("TEMPORAL_TLS_SERVER_CA_CERT_PATH", caPath)
	t.Setenv("TEMPORAL_TLS_SERVER_NAME", "frontend.temporal.example")
	w, err := LoadWorker()
	if err != nil {
		t.Fatal(err)
	}
	opts, err := w.ClientOptions(nil)
	if err != nil {
		t.Fatal(err)
	}
	tc := opts.ConnectionOptions.TLS
	if tc == nil || len(tc.Certificates) != 1 || tc.RootCAs == nil || tc.ServerName != "frontend.temporal.example" {
		t.Fatalf("TLS config %+v", tc)
	}
	if d := DescribeConnection(opts); !strings.Contains(d, "mtls") || !strings.Contains(d, "auth none") {
		t.Errorf("DescribeConnection = %s", d)
	}

	// A half-configured pair is refused, naming the setting.
	os.Unsetenv("TEMPORAL_TLS_CLIENT_KEY_PATH")
	if _, err := LoadWorker(); err == nil || !strings.Contains(err.Error(), "TEMPORAL_TLS") {
		t.Errorf("a certificate without its key must be refused, got %v", err)
	}
}

// TestClientOptionsErrorsHideSecrets: a malformed API key or key PEM is refused with an
// error that does not quote it.
func TestClientOptionsErrorsHideSecrets(t *testing.T) {
	isolateTemporalEnv(t)
	const badKey = "secret key with spaces 81d2"
	t.Setenv("TEMPORAL_API_KEY", badKey)
	_, err := Temporal{}.ClientOptions(nil)
	if err == nil || strings.Contains(err.Error(), badKey) || !strings.Contains(err.Error(), "TEMPORAL_API_KEY") {
		t.Errorf("bad API key: %v", err)
	}
	os.Unsetenv("TEMPORAL_API_KEY")

	const keyData = "-----BEGIN PRIVATE KEY-----\nc2VjcmV0LWtleS1tYXRlcmlhbC05OWE=\n-----END PRIVATE KEY-----\n"
	t.Setenv("TEMPORAL_TLS_CLIENT_CERT_DATA", "-----BEGIN CERTIFICATE-----\nbm90LWEtY2VydA==\n-----END CERTIFICATE-----\n")
	t.Setenv("TEMPORAL_TLS_CLIENT_KEY_DATA", keyData)
	_, err = Temporal{}.ClientOptions(nil)
	if err == nil || strings.Contains(err.Error(), "c2VjcmV0") {
		t.Errorf("bad key data: %v", err)
	}
}

// TestClientOptionsEnvLookup: a caller may hand its own environment (the e2e tests'
// processes get theirs from exec.Cmd.Env; this is the in-process equivalent).
func TestClientOptionsEnvLookup(t *testing.T) {
	isolateTemporalEnv(t)
	env := mapEnv{"TEMPORAL_ADDRESS": "mapped:7233", "TEMPORAL_CONFIG_FILE": filepath.Join(t.TempDir(), "none.toml")}
	opts, err := Temporal{}.ClientOptions(env)
	if err != nil {
		t.Fatal(err)
	}
	if opts.HostPort != "mapped:7233" {
		t.Errorf("HostPort %s", opts.HostPort)
	}
}

type mapEnv map[string]string

func (m mapEnv) Environ() []string {
	var out []string
	for k, v := range m {
		out = append(out, k+"="+v)
	}
	return out
}

func (m mapEnv) LookupEnv(k string) (string, bool) { v, ok := m[k]; return v, ok }

// TestClientOptionsGrpcCompression: gzip is the SDK's default (no option set), none
// turns it off, anything else is refused by name.
func TestClientOptionsGrpcCompression(t *testing.T) {
	isolateTemporalEnv(t)
	for _, tt := range []struct {
		setting  string
		wantNone bool
		wantErr  string
	}{
		{setting: ""},
		{setting: "gzip"},
		{setting: "none", wantNone: true},
		{setting: "zstd", wantErr: `TOKENWARDEN_TEMPORAL_GRPC_COMPRESSION: "zstd" is not gzip or none`},
	} {
		opts, err := Temporal{TemporalGrpcCompression: tt.setting}.ClientOptions(nil)
		if tt.wantErr != "" {
			if err == nil || err.Error() != tt.wantErr {
				t.Errorf("%q: error %v, want %q", tt.setting, err, tt.wantErr)
			}
			continue
		}
		if err != nil {
			t.Fatalf("%q: %v", tt.setting, err)
		}
		_, none := opts.ConnectionOptions.GrpcCompression.(*client.GrpcCompressionNone)
		if none != tt.wantNone || (!none && opts.ConnectionOptions.GrpcCompression != nil) {
			t.Errorf("%q: GrpcCompression = %T, want none: %t", tt.setting, opts.ConnectionOptions.GrpcCompression, tt.wantNone)
		}
	}
}
