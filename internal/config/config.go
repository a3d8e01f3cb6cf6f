// Package config reads tokenwarden's settings from the environment. Every variable
// carries the TOKENWARDEN_ prefix; the README's table lists them all, and
// `worker -help` prints them with their defaults.
package config

import (
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/kelseyhightower/envconfig"
)

// Prefix is the common prefix of every environment variable.
const Prefix = "TOKENWARDEN"

// Temporal is how to reach the Temporal server; the worker and the starter share it.
//
// Names come from the field names (split_words), never from `envconfig` tags: a tag
// would make envconfig fall back to the unprefixed name, so a stray DATA_DIR or
// LOG_LEVEL in the environment would silently configure tokenwarden.
type Temporal struct {
	TemporalAddress   string `split_words:"true" default:"localhost:7233" desc:"host:port of the Temporal frontend"`
	TemporalNamespace string `split_words:"true" default:"default" desc:"Temporal namespace"`
	TaskQueue         string `split_words:"true" default:"tokenwarden" desc:"task queue the worker polls and the starter starts on"`
}

// Worker is the worker process's configuration.
type Worker struct {
	Temporal
	DataDir         string        `split_words:"true" default:"data" desc:"directory for the SQLite token store and the key file (created 0700)"`
	KeyFile         string        `split_words:"true" desc:"AES-256 key file for secrets at rest (default DATA_DIR/keys.json; must be mode 0600)"`
	SqlitePath      string        `split_words:"true" desc:"SQLite token store file (default DATA_DIR/tokens.db)"`
	ProviderTimeout time.Duration `split_words:"true" default:"30s" desc:"deadline of one call to a provider's token endpoint"`
	LeaseDuration   time.Duration `split_words:"true" default:"90s" desc:"refresh lease lifetime; must exceed PROVIDER_TIMEOUT"`
	LogLevel        string        `split_words:"true" default:"info" desc:"debug, info, warn or error"`
	LogFormat       string        `split_words:"true" default:"text" desc:"text or json"`
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
	if w.SqlitePath == "" {
		w.SqlitePath = filepath.Join(w.DataDir, "tokens.db")
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

// Usage writes a table of every variable of spec with its default and description.
func Usage(w io.Writer, spec any) error {
	tw := tabwriter.NewWriter(w, 1, 0, 4, ' ', 0)
	if err := envconfig.Usagef(Prefix, spec, tw, envconfig.DefaultTableFormat); err != nil {
		return err
	}
	return tw.Flush()
}

// VariableNames lists the full names (TOKENWARDEN_...) of every variable spec reads.
func VariableNames(spec any) ([]string, error) {
	var b strings.Builder
	if err := envconfig.Usagef(Prefix, spec, &b, "{{range .}}{{usage_key .}}\n{{end}}"); err != nil {
		return nil, fmt.Errorf("list %s_* variables: %w", Prefix, err)
	}
	return strings.Fields(b.String()), nil
}
