package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tokenwarden/tokenwarden/internal/config"
	"github.com/tokenwarden/tokenwarden/internal/keyring"
	"github.com/tokenwarden/tokenwarden/internal/testnet"
)

// envNames lists the full name of every variable config.Worker reads, so that the
// tests follow the struct when a setting is added.
func envNames(t *testing.T) []string {
	t.Helper()
	names, err := config.VariableNames(&config.Worker{})
	if err != nil {
		t.Fatal(err)
	}
	return names
}

// workerEnv gives the worker a private environment: every TOKENWARDEN_ variable unset
// (and envconfig's unprefixed fallbacks such as LOG_LEVEL, which it also reads), the
// data directory in a fresh temporary directory (not yet created, so that we can see
// what the worker creates), and Temporal at a closed loopback port. It returns the
// data directory and the Temporal address; set returns further variables.
func workerEnv(t *testing.T, set map[string]string) (dataDir, addr string) {
	t.Helper()
	for _, n := range envNames(t) {
		t.Setenv(n, "") // restores the old value after the test
		os.Unsetenv(n)  // envconfig treats an empty variable as set, to ""
	}
	dataDir = filepath.Join(t.TempDir(), "data")
	addr = testnet.FreeAddr(t)
	t.Setenv("TOKENWARDEN_DATA_DIR", dataDir)
	t.Setenv("TOKENWARDEN_TEMPORAL_ADDRESS", addr)
	for k, v := range set {
		t.Setenv(k, v)
	}
	return dataDir, addr
}

type result struct {
	code           int
	stdout, stderr string
	elapsed        time.Duration
}

// runWorker runs the worker in-process, failing the test instead of hanging if run does
// not return: every case here must end on its own, none reaches a running worker.
func runWorker(t *testing.T, args ...string) result {
	t.Helper()
	var stdout, stderr bytes.Buffer
	done := make(chan int, 1)
	start := time.Now()
	go func() { done <- run(args, &stdout, &stderr) }()
	select {
	case code := <-done:
		return result{code: code, stdout: stdout.String(), stderr: stderr.String(), elapsed: time.Since(start)}
	case <-time.After(30 * time.Second):
		// The buffers are still being written to; do not read them.
		t.Fatalf("worker %q did not return within 30s", args)
		return result{}
	}
}

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

func TestHelpListsEveryVariable(t *testing.T) {
	workerEnv(t, nil)
	r := runWorker(t, "-help")
	r.check(t, 0, "usage: worker", "-init-dev-key",
		// Spelled out as well, in case envNames and the usage agree on a wrong name.
		"TOKENWARDEN_TEMPORAL_ADDRESS", "TOKENWARDEN_LEASE_DURATION", "TOKENWARDEN_PROVIDER_TIMEOUT", "TOKENWARDEN_DATA_DIR")
	for _, n := range envNames(t) {
		if !strings.Contains(r.stderr, n) {
			t.Errorf("-help does not list %s:\n%s", n, r.stderr)
		}
	}
	// Defaults are part of the documentation.
	for _, d := range []string{"localhost:7233", "120s", "30s"} {
		if !strings.Contains(r.stderr, d) {
			t.Errorf("-help does not show the default %q", d)
		}
	}
}

func TestUnknownFlag(t *testing.T) {
	dataDir, _ := workerEnv(t, nil)
	r := runWorker(t, "-init-dev-keys")
	r.check(t, 2, "flag provided but not defined: -init-dev-keys", "usage: worker")
	assertNotExist(t, dataDir)
}

// TestBadConfig runs each case with -init-dev-key: bad settings must be refused before
// the worker creates anything on disk.
func TestBadConfig(t *testing.T) {
	tests := []struct {
		name       string
		env        map[string]string
		wantStderr []string
	}{
		{
			// The lease must outlive the attempt and its commit retries, or a retry could
			// present the token while the first attempt is still committing it.
			name:       "lease equal to provider timeout",
			env:        map[string]string{"TOKENWARDEN_LEASE_DURATION": "30s", "TOKENWARDEN_PROVIDER_TIMEOUT": "30s"},
			wantStderr: []string{"TOKENWARDEN_LEASE_DURATION (30s) must be longer than 1m32s"},
		},
		{
			name:       "lease shorter than an attempt and its commit retries",
			env:        map[string]string{"TOKENWARDEN_LEASE_DURATION": "45s"},
			wantStderr: []string{"TOKENWARDEN_LEASE_DURATION (45s) must be longer than 1m32s", "TOKENWARDEN_COMMIT_RETRY=30s"},
		},
		{
			name:       "provider timeout equal to the activity timeout",
			env:        map[string]string{"TOKENWARDEN_PROVIDER_TIMEOUT": "60s", "TOKENWARDEN_LEASE_DURATION": "5m"},
			wantStderr: []string{"TOKENWARDEN_PROVIDER_TIMEOUT (1m0s) must be shorter than"},
		},
		{
			name:       "provider timeout longer than the activity timeout",
			env:        map[string]string{"TOKENWARDEN_PROVIDER_TIMEOUT": "2m", "TOKENWARDEN_LEASE_DURATION": "5m"},
			wantStderr: []string{"TOKENWARDEN_PROVIDER_TIMEOUT (2m0s) must be shorter than"},
		},
		{
			name:       "zero provider timeout",
			env:        map[string]string{"TOKENWARDEN_PROVIDER_TIMEOUT": "0s"},
			wantStderr: []string{"TOKENWARDEN_PROVIDER_TIMEOUT: must be positive"},
		},
		{
			name:       "unparsable duration",
			env:        map[string]string{"TOKENWARDEN_LEASE_DURATION": "ninety seconds"},
			wantStderr: []string{"TOKENWARDEN_LEASE_DURATION", "invalid duration"},
		},
		{
			name:       "bad log level",
			env:        map[string]string{"TOKENWARDEN_LOG_LEVEL": "verbose"},
			wantStderr: []string{`TOKENWARDEN_LOG_LEVEL: "verbose" is not one of`},
		},
		{
			// slog would accept "INFO"; the documented values are lower case.
			name:       "upper-case log level",
			env:        map[string]string{"TOKENWARDEN_LOG_LEVEL": "DEBUG"},
			wantStderr: []string{"TOKENWARDEN_LOG_LEVEL"},
		},
		{
			name:       "bad log format",
			env:        map[string]string{"TOKENWARDEN_LOG_FORMAT": "yaml"},
			wantStderr: []string{`TOKENWARDEN_LOG_FORMAT: "yaml" is not text or json`},
		},
		{
			name:       "codec endpoint address without a port",
			env:        map[string]string{"TOKENWARDEN_HTTP_ADDR": "127.0.0.1"},
			wantStderr: []string{`TOKENWARDEN_HTTP_ADDR: "127.0.0.1" is not host:port`},
		},
		{
			// Anyone who reaches the address could decrypt every payload.
			name:       "codec endpoint on every interface without a bearer token",
			env:        map[string]string{"TOKENWARDEN_HTTP_ADDR": "0.0.0.0:8234"},
			wantStderr: []string{`TOKENWARDEN_HTTP_ADDR "0.0.0.0:8234" listens beyond loopback`, "set TOKENWARDEN_CODEC_BEARER_TOKEN"},
		},
		{
			// "*" would let every web page read the decrypted payloads.
			name:       "wildcard CORS origin",
			env:        map[string]string{"TOKENWARDEN_CODEC_CORS_ORIGINS": "*"},
			wantStderr: []string{`TOKENWARDEN_CODEC_CORS_ORIGINS: "*" is not an origin`},
		},
		{
			name:       "CORS origin with a path",
			env:        map[string]string{"TOKENWARDEN_CODEC_CORS_ORIGINS": "http://localhost:8233/ui"},
			wantStderr: []string{"TOKENWARDEN_CODEC_CORS_ORIGINS", "scheme, host and port only"},
		},
		{
			name:       "codec bearer token with a newline",
			env:        map[string]string{"TOKENWARDEN_CODEC_BEARER_TOKEN": "tok\nX-Evil: 1"},
			wantStderr: []string{"TOKENWARDEN_CODEC_BEARER_TOKEN: must not contain"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dataDir, _ := workerEnv(t, tt.env)
			r := runWorker(t, "-init-dev-key")
			r.check(t, 2, tt.wantStderr...)
			if r.stdout != "" {
				t.Errorf("stdout = %q, want nothing", r.stdout)
			}
			assertNotExist(t, dataDir)
		})
	}
}

func TestKeyFileRefused(t *testing.T) {
	tests := []struct {
		name string
		// prepare creates the key situation in dataDir and returns the key file path.
		prepare    func(t *testing.T, dataDir string) string
		wantStderr []string
	}{
		{
			name:       "no key file",
			prepare:    func(t *testing.T, dataDir string) string { return filepath.Join(dataDir, "keys.json") },
			wantStderr: []string{"keys.json does not exist", "make run", "creates a development key"},
		},
		{
			// Without -init-dev-key the worker never creates a key: a key created by
			// accident next to an existing store would make its tokens unreadable.
			name: "key file readable by others",
			prepare: func(t *testing.T, dataDir string) string {
				p := generateKey(t, filepath.Join(dataDir, "keys.json"))
				if err := os.Chmod(p, 0o644); err != nil {
					t.Fatal(err)
				}
				return p
			},
			wantStderr: []string{"has mode 0644", "chmod 600"},
		},
		{
			name: "key file readable by the group",
			prepare: func(t *testing.T, dataDir string) string {
				p := generateKey(t, filepath.Join(dataDir, "keys.json"))
				if err := os.Chmod(p, 0o640); err != nil {
					t.Fatal(err)
				}
				return p
			},
			wantStderr: []string{"chmod 600"},
		},
		{
			name: "key file that is not a key file",
			prepare: func(t *testing.T, dataDir string) string {
				p := filepath.Join(dataDir, "keys.json")
				if err := os.MkdirAll(dataDir, 0o700); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(p, []byte(`{"primay": "k1"}`), 0o600); err != nil {
					t.Fatal(err)
				}
				return p
			},
			wantStderr: []string{"refusing to start", `unknown field "primay"`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dataDir, _ := workerEnv(t, nil)
			keyPath := tt.prepare(t, dataDir)
			r := runWorker(t)
			r.check(t, 2, append([]string{"worker: refusing to start", keyPath}, tt.wantStderr...)...)
			// Nothing else is touched before the key is accepted.
			assertNotExist(t, filepath.Join(dataDir, "tokens.db"))
		})
	}
}

// TestKeyFileFromEnvironment checks that TOKENWARDEN_KEY_FILE overrides DATA_DIR/keys.json.
func TestKeyFileFromEnvironment(t *testing.T) {
	keyPath := filepath.Join(t.TempDir(), "elsewhere", "worker.key")
	workerEnv(t, map[string]string{"TOKENWARDEN_KEY_FILE": keyPath})
	r := runWorker(t)
	r.check(t, 2, keyPath+" does not exist")
}

// TestInitDevKeyWithUnreachableTemporal follows a first `make run` whose Temporal server
// is not up yet: the key is created once, and the missing server is reported, not waited for.
func TestInitDevKeyWithUnreachableTemporal(t *testing.T) {
	dataDir, addr := workerEnv(t, nil)
	keyPath := filepath.Join(dataDir, "keys.json")

	r := runWorker(t, "-init-dev-key")
	t.Logf("first run failed after %s", r.elapsed.Round(time.Millisecond))
	r.check(t, 1, "cannot reach the Temporal server at "+addr, `namespace "default"`)
	if !strings.Contains(r.stdout, "created development key") || !strings.Contains(r.stdout, keyPath) {
		t.Errorf("stdout does not report the new key and its path:\n%s", r.stdout)
	}
	assertMode(t, dataDir, 0o700)
	assertMode(t, keyPath, 0o600)
	if _, err := keyring.LoadFile(keyPath); err != nil {
		t.Fatalf("the created key file does not load: %v", err)
	}
	before, err := os.ReadFile(keyPath)
	if err != nil {
		t.Fatal(err)
	}
	infoBefore, err := os.Stat(keyPath)
	if err != nil {
		t.Fatal(err)
	}

	// A second start must use the existing key: replacing it would orphan every token
	// already stored under it.
	r = runWorker(t, "-init-dev-key")
	t.Logf("second run failed after %s", r.elapsed.Round(time.Millisecond))
	r.check(t, 1, "cannot reach the Temporal server at "+addr)
	if strings.Contains(r.stdout, "created development key") {
		t.Errorf("second run claims to have created a key:\n%s", r.stdout)
	}
	after, err := os.ReadFile(keyPath)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(before, after) {
		t.Error("second run changed the key file")
	}
	infoAfter, err := os.Stat(keyPath)
	if err != nil {
		t.Fatal(err)
	}
	if !os.SameFile(infoBefore, infoAfter) || !infoAfter.ModTime().Equal(infoBefore.ModTime()) {
		t.Error("second run replaced the key file")
	}
	assertMode(t, keyPath, 0o600)
	// The key must never reach the output, not even its base64 form.
	for _, out := range []string{r.stdout, r.stderr} {
		if strings.Contains(out, `"keys"`) {
			t.Errorf("output shows key file content:\n%s", out)
		}
	}
}

func generateKey(t *testing.T, path string) string {
	t.Helper()
	if _, err := keyring.GenerateFile(path); err != nil {
		t.Fatal(err)
	}
	return path
}

func assertMode(t *testing.T, path string, want os.FileMode) {
	t.Helper()
	info, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := info.Mode().Perm(); got != want {
		t.Errorf("%s has mode %#o, want %#o", path, got, want)
	}
}

func assertNotExist(t *testing.T, path string) {
	t.Helper()
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Errorf("%s exists (err %v); the worker should not have created it", path, err)
	}
}
