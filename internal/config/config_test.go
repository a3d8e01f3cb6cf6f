package config

import (
	"os"
	"slices"
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
