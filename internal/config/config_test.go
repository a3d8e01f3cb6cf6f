package config

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tokenwarden/tokenwarden/internal/store"
)

func TestVariableNamesArePrefixedAndComplete(t *testing.T) {
	names, err := VariableNames(&Worker{})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"TOKENWARDEN_TEMPORAL_ADDRESS", "TOKENWARDEN_TASK_QUEUE", "TOKENWARDEN_SQLITE_PATH", "TOKENWARDEN_LEASE_DURATION"} {
		if !slices.Contains(names, want) {
			t.Errorf("%s missing from %v", want, names)
		}
	}
}

func TestUnprefixedVariablesAreIgnored(t *testing.T) {
	names, err := VariableNames(&Worker{})
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range names {
		t.Setenv(n, "") // restored after the test
		os.Unsetenv(n)
	}
	// Stray variables without the prefix must not configure tokenwarden.
	t.Setenv("LOG_LEVEL", "verbose")
	t.Setenv("DATA_DIR", "/elsewhere")
	isolateTemporalEnv(t) // TEMPORAL_* is read on purpose (temporal_test.go)
	w, err := LoadWorker()
	if err != nil {
		t.Fatalf("defaults alone must load: %v", err)
	}
	if w.DataDir != "data" || w.TemporalAddress != "localhost:7233" || w.LogLevel != "info" {
		t.Fatalf("unprefixed variables leaked into the config: %+v", w)
	}
}

func TestTokenAPIVariables(t *testing.T) {
	names, err := VariableNames(&Worker{})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"TOKENWARDEN_TOKEN_API_RATE", "TOKENWARDEN_TOKEN_API_BURST"} {
		if !slices.Contains(names, want) {
			t.Errorf("%s missing from %v", want, names)
		}
	}
	names, err = VariableNames(&TokenClient{})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(names, []string{"TOKENWARDEN_API_KEY", "TOKENWARDEN_TOKEN_API"}) {
		t.Errorf("TokenClient variables = %v, want TOKENWARDEN_API_KEY, TOKENWARDEN_TOKEN_API", names)
	}

	w := Worker{ProviderTimeout: time.Second, LeaseDuration: 10 * time.Second, CommitRetry: time.Second, MinAccessLifetime: time.Minute, LogLevel: "info", LogFormat: "text", TokenStore: TokenStore{Store: StoreSQLite}, NotifyFormat: "json", NotifyTimeout: 1, TokenAPIRate: 10, TokenAPIBurst: 20, WorkflowCacheSize: 2000}
	if err := w.Check(); err != nil {
		t.Fatalf("valid config refused: %v", err)
	}
	for _, bad := range []func(*Worker){
		func(w *Worker) { w.TokenAPIRate = 0 },
		func(w *Worker) { w.TokenAPIRate = -1 },
		func(w *Worker) { w.TokenAPIBurst = 0 },
		func(w *Worker) { w.WorkflowCacheSize = 0 },
	} {
		c := w
		bad(&c)
		if err := c.Check(); err == nil {
			t.Errorf("Check accepted rate %v burst %d cache %d", c.TokenAPIRate, c.TokenAPIBurst, c.WorkflowCacheSize)
		}
	}

	for _, n := range []string{"TOKENWARDEN_API_KEY", "TOKENWARDEN_TOKEN_API", "API_KEY", "TOKEN_API"} {
		t.Setenv(n, "")
		os.Unsetenv(n)
	}
	c, err := LoadTokenClient()
	if err != nil || c.TokenAPI != DefaultTokenAPI || c.APIKey != "" {
		t.Fatalf("LoadTokenClient defaults = %+v, %v", c, err)
	}
	t.Setenv("TOKENWARDEN_TOKEN_API", "ftp://x")
	if _, err := LoadTokenClient(); err == nil {
		t.Error("LoadTokenClient accepted an ftp URL")
	}
	t.Setenv("TOKENWARDEN_TOKEN_API", DefaultTokenAPI)
	t.Setenv("TOKENWARDEN_API_KEY", "twk_a b")
	if _, err := LoadTokenClient(); err == nil || strings.Contains(err.Error(), "twk_a") {
		t.Errorf("LoadTokenClient with a key holding a space: error %v (must refuse without quoting it)", err)
	}
}

// unsetAll clears every variable of specs and envconfig's unprefixed fallbacks of
// them, so that the developer's environment cannot change the outcome.
func unsetAll(t *testing.T, specs ...any) {
	t.Helper()
	for _, spec := range specs {
		names, err := VariableNames(spec)
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range names {
			for _, k := range []string{n, strings.TrimPrefix(n, Prefix+"_")} {
				t.Setenv(k, "") // restored after the test
				os.Unsetenv(k)
			}
		}
	}
}

// The worker and the starter read the token store from the same variables, so that
// `starter apikey` opens the worker's store.
func TestTokenStoreShared(t *testing.T) {
	storeVars, err := VariableNames(&TokenStore{})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"TOKENWARDEN_DATA_DIR", "TOKENWARDEN_KEY_FILE", "TOKENWARDEN_SQLITE_PATH", "TOKENWARDEN_STORE", "TOKENWARDEN_POSTGRES_DSN"}
	if !slices.Equal(storeVars, want) {
		t.Errorf("TokenStore variables = %v, want %v", storeVars, want)
	}
	for _, spec := range []any{&Worker{}, &Starter{}} {
		names, err := VariableNames(spec)
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range want {
			if !slices.Contains(names, n) {
				t.Errorf("%T does not read %s", spec, n)
			}
		}
	}
	// store.Open takes the values TOKENWARDEN_STORE accepts.
	if StoreSQLite != store.BackendSQLite || StorePostgres != store.BackendPostgres {
		t.Errorf("TOKENWARDEN_STORE values %q, %q differ from store.Open's %q, %q", StoreSQLite, StorePostgres, store.BackendSQLite, store.BackendPostgres)
	}

	unsetAll(t, &Worker{}, &Starter{})
	dir := t.TempDir()
	t.Setenv("TOKENWARDEN_DATA_DIR", dir)
	ts, err := LoadTokenStore()
	if err != nil {
		t.Fatal(err)
	}
	w, err := LoadWorker()
	if err != nil {
		t.Fatal(err)
	}
	s, err := LoadStarter()
	if err != nil {
		t.Fatal(err)
	}
	wantStore := TokenStore{DataDir: dir, KeyFile: filepath.Join(dir, "keys.json"), SqlitePath: filepath.Join(dir, "tokens.db"), Store: StoreSQLite}
	if ts != wantStore || w.TokenStore != wantStore || s.TokenStore != wantStore {
		t.Errorf("defaults differ:\nLoadTokenStore %+v\nLoadWorker     %+v\nLoadStarter    %+v\nwant           %+v", ts, w.TokenStore, s.TokenStore, wantStore)
	}

	const password = "pw-S3CRET-5e1f"
	t.Setenv("TOKENWARDEN_STORE", "postgres")
	t.Setenv("TOKENWARDEN_POSTGRES_DSN", "postgres://tw:"+password+"@db.example:5432/tokens")
	t.Setenv("TOKENWARDEN_KEY_FILE", "/etc/tokenwarden/keys.json")
	if ts, err = LoadTokenStore(); err != nil || ts.Store != StorePostgres || ts.KeyFile != "/etc/tokenwarden/keys.json" {
		t.Errorf("LoadTokenStore with postgres = %v (store %q, key file %q)", err, ts.Store, ts.KeyFile)
	}
}

// LoadTokenStore refuses what LoadWorker refuses, without quoting the DSN; LoadStarter,
// for the commands that never open the store, does not refuse it.
func TestTokenStoreChecks(t *testing.T) {
	const password = "pw-S3CRET-5e1f"
	for _, tc := range []struct {
		name      string
		env       map[string]string
		wantError string
	}{
		{"unknown store", map[string]string{"TOKENWARDEN_STORE": "mysql"}, `"mysql" is not sqlite or postgres`},
		{"postgres without DSN", map[string]string{"TOKENWARDEN_STORE": "postgres"}, "needs TOKENWARDEN_POSTGRES_DSN"},
		{"DSN without postgres", map[string]string{"TOKENWARDEN_POSTGRES_DSN": "postgres://tw:" + password + "@db.example/tokens"}, "TOKENWARDEN_POSTGRES_DSN is set but TOKENWARDEN_STORE is sqlite"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			unsetAll(t, &Worker{}, &Starter{})
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			_, tsErr := LoadTokenStore()
			_, wErr := LoadWorker()
			for what, err := range map[string]error{"LoadTokenStore": tsErr, "LoadWorker": wErr} {
				if err == nil || !strings.Contains(err.Error(), tc.wantError) || strings.Contains(err.Error(), password) {
					t.Errorf("%s = %v, want an error mentioning %q and not the password", what, err, tc.wantError)
				}
			}
			if _, err := LoadStarter(); err != nil {
				t.Errorf("LoadStarter = %v; the Temporal commands must not refuse store settings they do not use", err)
			}
		})
	}
}

// Beyond loopback the codec endpoint needs a bearer token: the worker refuses to start
// without one, naming the variable to set.
func TestCodecBearerTokenRequiredBeyondLoopback(t *testing.T) {
	const token = "tok-S3CRET"
	for _, tc := range []struct {
		addr      string
		wantError string // without a token; "" when that is fine
	}{
		{"", ""}, // no HTTP endpoint at all
		{"127.0.0.1:8234", ""},
		{"127.0.0.1:0", ""},
		{"127.10.20.30:8234", ""},
		{"[::1]:8234", ""},
		{"[::ffff:127.0.0.1]:8234", ""},
		{"localhost:8234", ""},
		{"LocalHost:8234", ""},
		{":8234", `TOKENWARDEN_HTTP_ADDR ":8234" listens beyond loopback`},
		{"0.0.0.0:8234", `TOKENWARDEN_HTTP_ADDR "0.0.0.0:8234" listens beyond loopback`},
		{"[::]:8234", "beyond loopback"},
		{"192.168.1.20:8234", "beyond loopback"},
		{"[fe80::1]:8234", "beyond loopback"},
		{"128.0.0.1:8234", "beyond loopback"},
		{"worker.internal:8234", "beyond loopback"},
		{"localhost.:8234", "beyond loopback"}, // a name that is not exactly localhost
	} {
		t.Run(tc.addr, func(t *testing.T) {
			w := Worker{ProviderTimeout: time.Second, LeaseDuration: 10 * time.Second, CommitRetry: time.Second, MinAccessLifetime: time.Minute, LogLevel: "info", LogFormat: "text", TokenStore: TokenStore{Store: StoreSQLite},
				NotifyFormat: "json", NotifyTimeout: 1, TokenAPIRate: 10, TokenAPIBurst: 20, WorkflowCacheSize: 1, HTTPAddr: tc.addr}
			err := w.Check()
			if tc.wantError == "" {
				if err != nil {
					t.Fatalf("without a token: %v, want accepted", err)
				}
			} else if err == nil || !strings.Contains(err.Error(), tc.wantError) || !strings.Contains(err.Error(), "set TOKENWARDEN_CODEC_BEARER_TOKEN") {
				t.Fatalf("without a token: %v, want an error with %q naming TOKENWARDEN_CODEC_BEARER_TOKEN", err, tc.wantError)
			}
			w.CodecBearerToken = token
			if err := w.Check(); err != nil {
				t.Fatalf("with a token: %v", err)
			}
		})
	}

	// The same through the environment, as the worker loads it.
	unsetAll(t, &Worker{})
	t.Setenv("TOKENWARDEN_HTTP_ADDR", "0.0.0.0:8234")
	if _, err := LoadWorker(); err == nil || !strings.Contains(err.Error(), "TOKENWARDEN_CODEC_BEARER_TOKEN") {
		t.Fatalf("LoadWorker on 0.0.0.0 without a token = %v, want a refusal naming TOKENWARDEN_CODEC_BEARER_TOKEN", err)
	}
	t.Setenv("TOKENWARDEN_CODEC_BEARER_TOKEN", token)
	if w, err := LoadWorker(); err != nil || w.CodecBearerToken != token {
		t.Fatalf("LoadWorker on 0.0.0.0 with a token = %v", err)
	}
	t.Setenv("TOKENWARDEN_CODEC_BEARER_TOKEN", "")
	t.Setenv("TOKENWARDEN_HTTP_ADDR", "127.0.0.1:8234")
	if _, err := LoadWorker(); err != nil {
		t.Fatalf("LoadWorker on loopback without a token = %v", err)
	}
}

// The lease must outlast an attempt's life after taking it: the calls before the commit
// (two provider timeouts and the store calls, at most the start-to-close timeout), the
// commit's retries and the margin. The example: 45 s with the 30 s provider
// timeout, when an attempt may take 60 s and then retry its commit for 30 s.
func TestLeaseMustOutlastTheAttempt(t *testing.T) {
	valid := Worker{ProviderTimeout: 30 * time.Second, LeaseDuration: 120 * time.Second, CommitRetry: 30 * time.Second,
		MinAccessLifetime: time.Minute, LogLevel: "info", LogFormat: "text", TokenStore: TokenStore{Store: StoreSQLite},
		NotifyFormat: "json", NotifyTimeout: 1, TokenAPIRate: 10, TokenAPIBurst: 20, WorkflowCacheSize: 1}
	if err := valid.Check(); err != nil {
		t.Fatalf("the defaults are refused: %v", err)
	}
	for _, tc := range []struct {
		provider, lease, commit time.Duration
		ok                      bool
	}{
		{30 * time.Second, 45 * time.Second, 30 * time.Second, false},
		{30 * time.Second, 90 * time.Second, 30 * time.Second, false}, // the old default: 60 + 30 + 2 = 92
		{30 * time.Second, 92 * time.Second, 30 * time.Second, false}, // not longer than the minimum
		{30 * time.Second, 93 * time.Second, 30 * time.Second, true},
		{30 * time.Second, 93 * time.Second, 31 * time.Second, false},
		{59 * time.Second, 93 * time.Second, 30 * time.Second, true}, // before the commit: capped at 60 s
		{3 * time.Second, 6 * time.Second, 4 * time.Second, false},   // the end-to-end tests' former lease
		{3 * time.Second, 15 * time.Second, 4 * time.Second, true},   // theirs now: 8 + 4 + 2 = 14
		{3 * time.Second, 15 * time.Second, 0, false},                // a commit must retry for at least 1 s
	} {
		w := valid
		w.ProviderTimeout, w.LeaseDuration, w.CommitRetry = tc.provider, tc.lease, tc.commit
		err := w.Check()
		if tc.ok && err != nil {
			t.Errorf("provider %s, lease %s, commit %s: refused: %v", tc.provider, tc.lease, tc.commit, err)
		}
		if !tc.ok && err == nil {
			t.Errorf("provider %s, lease %s, commit %s: accepted, want refused", tc.provider, tc.lease, tc.commit)
		}
		if !tc.ok && tc.commit > 0 && err != nil && !strings.Contains(err.Error(), "TOKENWARDEN_LEASE_DURATION") {
			t.Errorf("provider %s, lease %s, commit %s: error does not name the lease: %v", tc.provider, tc.lease, tc.commit, err)
		}
	}
}

func TestSinkDirs(t *testing.T) {
	data := t.TempDir()
	for _, tc := range []struct {
		name, dirs string
		key        string
		want       []string
		wantError  string
	}{
		{name: "unset: none", dirs: "", want: nil},
		{name: "two, spaces and a duplicate", dirs: "/srv/app, /srv/other,/srv/app", want: []string{"/srv/app", "/srv/other"}},
		{name: "relative", dirs: "srv/app", wantError: "not an absolute, clean path"},
		{name: "not clean", dirs: "/srv/app/", wantError: "not an absolute, clean path"},
		{name: "dot-dot", dirs: "/srv/app/../etc", wantError: "not an absolute, clean path"},
		{name: "root", dirs: "/", wantError: "is the root"},
		{name: "the data directory", dirs: data, wantError: "holds the token store or the key file"},
		{name: "inside the data directory", dirs: filepath.Join(data, "outbox"), wantError: "holds the token store or the key file"},
		{name: "the key file's directory", dirs: "/etc/tw", key: "/etc/tw/keys.json", wantError: "holds the token store or the key file"},
		{name: "a parent of the data directory is fine", dirs: filepath.Dir(data), want: []string{filepath.Dir(data)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			unsetAll(t, &Worker{})
			isolateTemporalEnv(t)
			t.Setenv("TOKENWARDEN_DATA_DIR", data)
			t.Setenv("TOKENWARDEN_SINK_DIRS", tc.dirs)
			if tc.key != "" {
				t.Setenv("TOKENWARDEN_KEY_FILE", tc.key)
			}
			w, err := LoadWorker()
			if tc.wantError != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantError) || !strings.Contains(err.Error(), "TOKENWARDEN_SINK_DIRS") {
					t.Fatalf("LoadWorker = %v, want an error naming TOKENWARDEN_SINK_DIRS and %q", err, tc.wantError)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got, err := w.SinkDirList()
			if err != nil || !slices.Equal(got, tc.want) {
				t.Fatalf("SinkDirList = %q, %v; want %q", got, err, tc.want)
			}
		})
	}
}

func TestProtectedDirsAreAbsolute(t *testing.T) {
	s := TokenStore{DataDir: "data", KeyFile: "/etc/tw/keys.json", SqlitePath: "data/tokens.db"}
	got, err := s.ProtectedDirs()
	if err != nil {
		t.Fatal(err)
	}
	wd, _ := os.Getwd()
	want := []string{filepath.Join(wd, "data"), "/etc/tw"}
	if !slices.Equal(got, want) {
		t.Fatalf("ProtectedDirs = %q, want %q", got, want)
	}
}

func TestPathWithin(t *testing.T) {
	for _, tc := range []struct {
		dir, path string
		want      bool
	}{
		{"/srv/app", "/srv/app", true},
		{"/srv/app", "/srv/app/.env", true},
		{"/srv/app", "/srv/app/sub/.env", true},
		{"/srv/app", "/srv/app/..env", true},
		{"/srv/ap", "/srv/app/.env", false},
		{"/srv/app", "/srv/apple/.env", false},
		{"/srv/app", "/srv/.env", false},
		{"/srv/app", "/etc/passwd", false},
	} {
		if got := PathWithin(tc.dir, tc.path); got != tc.want {
			t.Errorf("PathWithin(%q, %q) = %v, want %v", tc.dir, tc.path, got, tc.want)
		}
	}
}
