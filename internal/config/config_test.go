package config

import (
	"os"
	"slices"
	"strings"
	"testing"
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
	t.Setenv("TEMPORAL_ADDRESS", "elsewhere:1")
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

	w := Worker{ProviderTimeout: 1, LeaseDuration: 2, LogLevel: "info", LogFormat: "text", Store: StoreSQLite, NotifyFormat: "json", NotifyTimeout: 1, TokenAPIRate: 10, TokenAPIBurst: 20}
	if err := w.Check(); err != nil {
		t.Fatalf("valid config refused: %v", err)
	}
	for _, bad := range []func(*Worker){
		func(w *Worker) { w.TokenAPIRate = 0 },
		func(w *Worker) { w.TokenAPIRate = -1 },
		func(w *Worker) { w.TokenAPIBurst = 0 },
	} {
		c := w
		bad(&c)
		if err := c.Check(); err == nil {
			t.Errorf("Check accepted rate %v burst %d", c.TokenAPIRate, c.TokenAPIBurst)
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
