// Package config reads tokenwarden's settings from the environment. Every variable
// carries the TOKENWARDEN_ prefix; the README's table lists them all, and
// `worker -help` prints them with their defaults.
package config

import (
	"fmt"
	"path/filepath"
	"time"

	"github.com/kelseyhightower/envconfig"
)

// Prefix is the common prefix of every environment variable.
const Prefix = "TOKENWARDEN"

// Temporal is how to reach the Temporal server; the worker and the starter share it.
type Temporal struct {
	Address   string `envconfig:"TEMPORAL_ADDRESS" default:"localhost:7233" desc:"host:port of the Temporal frontend"`
	Namespace string `envconfig:"TEMPORAL_NAMESPACE" default:"default" desc:"Temporal namespace"`
	TaskQueue string `envconfig:"TASK_QUEUE" default:"tokenwarden" desc:"task queue the worker polls and the starter starts on"`
}

// Worker is the worker process's configuration.
type Worker struct {
	Temporal
	DataDir         string        `envconfig:"DATA_DIR" default:"data" desc:"directory for the SQLite token store and the key file (created 0700)"`
	KeyFile         string        `envconfig:"KEY_FILE" desc:"AES-256 key file for secrets at rest (default DATA_DIR/keys.json; must be mode 0600)"`
	SQLitePath      string        `envconfig:"SQLITE_PATH" desc:"SQLite token store file (default DATA_DIR/tokens.db)"`
	ProviderTimeout time.Duration `envconfig:"PROVIDER_TIMEOUT" default:"30s" desc:"deadline of one call to a provider's token endpoint"`
	LeaseDuration   time.Duration `envconfig:"LEASE_DURATION" default:"90s" desc:"refresh lease lifetime; must exceed PROVIDER_TIMEOUT"`
	LogLevel        string        `envconfig:"LOG_LEVEL" default:"info" desc:"debug, info, warn or error"`
	LogFormat       string        `envconfig:"LOG_FORMAT" default:"text" desc:"text or json"`
}

// LoadWorker reads and checks the worker's configuration.
func LoadWorker() (Worker, error) {
	var w Worker
	if err := envconfig.Process(Prefix, &w); err != nil {
		return Worker{}, fmt.Errorf("read %s_* environment: %w", Prefix, err)
	}
	if w.KeyFile == "" {
		w.KeyFile = filepath.Join(w.DataDir, "keys.json")
	}
	if w.SQLitePath == "" {
		w.SQLitePath = filepath.Join(w.DataDir, "tokens.db")
	}
	return w, w.Check()
}

// Check rejects settings that would break the refresh protocol's safety margins.
func (w Worker) Check() error {
	if w.ProviderTimeout <= 0 {
		return fmt.Errorf("%s_PROVIDER_TIMEOUT: must be positive, got %s", Prefix, w.ProviderTimeout)
	}
	if w.LeaseDuration <= w.ProviderTimeout {
		return fmt.Errorf("%s_LEASE_DURATION (%s) must be longer than %s_PROVIDER_TIMEOUT (%s), or a slow provider call could outlive its lease",
			Prefix, w.LeaseDuration, Prefix, w.ProviderTimeout)
	}
	switch w.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		return fmt.Errorf("%s_LOG_LEVEL: %q is not one of debug, info, warn, error", Prefix, w.LogLevel)
	}
	switch w.LogFormat {
	case "text", "json":
	default:
		return fmt.Errorf("%s_LOG_FORMAT: %q is not text or json", Prefix, w.LogFormat)
	}
	return nil
}

// LoadTemporal reads only the Temporal connection settings (for the starter).
func LoadTemporal() (Temporal, error) {
	var t Temporal
	if err := envconfig.Process(Prefix, &t); err != nil {
		return Temporal{}, fmt.Errorf("read %s_* environment: %w", Prefix, err)
	}
	return t, nil
}

// Usage prints every variable of spec with its default and description.
func Usage(spec any) error {
	return envconfig.Usage(Prefix, spec)
}
