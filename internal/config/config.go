// Package config reads tokenwarden's settings from the environment. Every variable
// carries the TOKENWARDEN_ prefix; the README's table lists them all, and
// `worker -help` prints them with their defaults.
package config

import (
	"fmt"
	"io"
	"maps"
	"math"
	"net"
	"net/netip"
	"net/url"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/kelseyhightower/envconfig"

	"github.com/tokenwarden/tokenwarden/internal/leasetiming"
	"github.com/tokenwarden/tokenwarden/internal/webhook"
)

// Prefix is the common prefix of every environment variable.
const Prefix = "TOKENWARDEN"

// Temporal is how to reach the Temporal server; the worker and the starter share it.
// The connection itself is read as the temporal CLI reads it (ClientOptions, in
// temporal.go); the two TOKENWARDEN_TEMPORAL_* variables override it when set, and
// have no defaults here so that an unset one cannot hide a profile's value.
//
// Names come from the field names (split_words), never from `envconfig` tags: a tag
// would make envconfig fall back to the unprefixed name, so a stray DATA_DIR or
// LOG_LEVEL in the environment would silently configure tokenwarden.
type Temporal struct {
	TemporalAddress   string `split_words:"true" desc:"host:port of the Temporal frontend; overrides TEMPORAL_ADDRESS and the temporal CLI profile (default localhost:7233)"`
	TemporalNamespace string `split_words:"true" desc:"Temporal namespace; overrides TEMPORAL_NAMESPACE and the temporal CLI profile (default \"default\")"`
	TaskQueue         string `split_words:"true" default:"tokenwarden" desc:"task queue the worker polls and the starter starts on"`
	// TemporalGrpcCompression exists because every payload tokenwarden sends is
	// encrypted, which gzip cannot shrink: compressing it only costs CPU, at both ends.
	TemporalGrpcCompression string `split_words:"true" default:"gzip" desc:"gRPC compression of requests to Temporal: gzip (the SDK's default) or none"`
}

// TokenStore is where the token store lives and the key file that seals it. The worker
// and the starter embed it, so that `starter apikey` opens the very store the worker
// uses, from the same variables with the same defaults.
type TokenStore struct {
	DataDir     string `split_words:"true" default:"data" desc:"directory for the SQLite token store and the key file (created 0700)"`
	KeyFile     string `split_words:"true" desc:"AES-256 key file for secrets at rest (default DATA_DIR/keys.json; must be mode 0600); the starter also encrypts payloads with it when readable"`
	SqlitePath  string `split_words:"true" desc:"SQLite token store file (default DATA_DIR/tokens.db)"`
	Store       string `split_words:"true" default:"sqlite" desc:"token store: sqlite (one host) or postgres (workers on several hosts share POSTGRES_DSN)"`
	PostgresDSN string `split_words:"true" desc:"PostgreSQL connection string (postgres://... or key=value) when STORE=postgres; a secret, never logged"`
}

// applyDefaults fills in the paths that default to files in DataDir.
func (s *TokenStore) applyDefaults() {
	if s.KeyFile == "" {
		s.KeyFile = filepath.Join(s.DataDir, "keys.json")
	}
	if s.SqlitePath == "" {
		s.SqlitePath = filepath.Join(s.DataDir, "tokens.db")
	}
}

// LoadTokenStore reads and checks only the token store settings: what a command that
// works on the store and nothing else (`starter apikey`) needs, so that a setting it
// does not use (a codec endpoint, say) cannot stop it.
func LoadTokenStore() (TokenStore, error) {
	var s TokenStore
	if err := envconfig.Process(Prefix, &s); err != nil {
		return TokenStore{}, fmt.Errorf("read %s_* environment: %w", Prefix, err)
	}
	s.applyDefaults()
	if err := s.CheckStore(); err != nil {
		return TokenStore{}, err
	}
	return s, nil
}

// Worker is the worker process's configuration.
type Worker struct {
	Temporal
	TokenStore
	ProviderTimeout time.Duration `split_words:"true" default:"30s" desc:"deadline of one call to a provider's token endpoint"`
	// LeaseDuration must outlast an attempt's whole life after it takes the lease
	// (leasetiming.MinLease): 2 x 30 s of provider calls capped at the 60 s
	// start-to-close timeout, 30 s of commit retries and 2 s of margin by default.
	LeaseDuration time.Duration `split_words:"true" default:"120s" desc:"refresh lease lifetime; must be longer than the attempt before its commit (2 x PROVIDER_TIMEOUT + 2s, at most 60s) + COMMIT_RETRY + 2s"`
	CommitRetry   time.Duration `split_words:"true" default:"30s" desc:"how long, at least, a commit retries a failing token store before the token set goes to the outbox (at least 1s)"`
	// MinAccessLifetime: a provider that issues shorter access tokens is misbehaving,
	// and following it would refresh many times a second.
	MinAccessLifetime time.Duration `split_words:"true" default:"1m" desc:"shortest access-token lifetime accepted from a provider (at least 1s); a shorter one is stored and reported as a provider error, and the next refresh waits for the backoff"`
	LogLevel          string        `split_words:"true" default:"info" desc:"debug, info, warn or error"`
	LogFormat         string        `split_words:"true" default:"text" desc:"text or json"`
	// WorkflowCacheSize bounds the worker's memory: a cached credential workflow costs
	// about 50 KB (two coroutine stacks of about 12 KB and the SDK's state), and one that
	// is not cached replays its current run's history (at most history_event_limit
	// events) when it wakes. 10,000 cached credentials would take about 500 MB; the
	// benchmark holds 10,000 with 1000 cached in well under 200 MB.
	WorkflowCacheSize int `split_words:"true" default:"1000" desc:"credential workflows kept in memory between wake-ups (about 50 KB each); the others replay their history when they wake"`

	// Notifications (internal/notify). Webhook URLs and the bearer token are secrets:
	// no error message or log line ever shows them.
	NotifyWebhookURL  string `split_words:"true" desc:"default notification webhook, absolute http(s) URL; a secret (empty: notifications are only logged)"`
	NotifyFormat      string `split_words:"true" default:"json" desc:"json or slack: body format of NOTIFY_WEBHOOK_URL and of targets that name none"`
	NotifyTargets     string `split_words:"true" desc:"named targets for policy.notify_target: name=[json:|slack:]URL, comma-separated"`
	NotifyBearerToken string `split_words:"true" desc:"optional Authorization: Bearer token sent to json-format webhooks; a secret"`
	// Signing secrets (Standard Webhooks): one per target, so that a receiver holding
	// one cannot forge deliveries to another.
	NotifyWebhookSecret string        `split_words:"true" desc:"whsec_<base64> secret signing the deliveries to NOTIFY_WEBHOOK_URL (empty: unsigned); a secret"`
	NotifyTargetSecrets string        `split_words:"true" desc:"signing secrets of named targets: name=whsec_<base64>, comma-separated (a target without one is unsigned); secrets"`
	NotifyTimeout       time.Duration `split_words:"true" default:"10s" desc:"deadline of one webhook delivery"`

	// The HTTP codec endpoint (internal/codec) for the Web UI, the temporal CLI and
	// starters without the key file. The bearer token is a secret.
	HTTPAddr         string `split_words:"true" default:"127.0.0.1:8234" desc:"host:port of the worker's HTTP endpoint: /codec/encode, /codec/decode, /healthz, /livez, /readyz, /metrics, /v1 (the token API) (empty: none)"`
	CodecCORSOrigins string `split_words:"true" default:"http://localhost:8233,http://127.0.0.1:8233" desc:"browser origins (the Temporal Web UI) allowed to call /codec, comma-separated"`
	CodecBearerToken string `split_words:"true" desc:"token callers of /codec must send as Authorization: Bearer, required when HTTP_ADDR is not on loopback; a secret"`

	// Seeds (internal/seal). Sealing through the worker lets a starter without the key
	// file seal a seed; whoever may seal may replace any credential's grant, so it needs
	// its own token and is off without one.
	SealBearerToken     string `split_words:"true" desc:"token callers of /seal must send as Authorization: Bearer (empty: /seal is off); a secret"`
	AllowPlaintextSeeds bool   `split_words:"true" default:"false" desc:"accept seeds sent in plaintext; they are then readable in workflow history: local development only"`

	// The token API (GET /v1/credentials/{id}/token on HTTP_ADDR): a token bucket per
	// API key.
	TokenAPIRate  float64 `split_words:"true" default:"10" desc:"token API: requests per second each API key may make on average"`
	TokenAPIBurst int     `split_words:"true" default:"20" desc:"token API: requests each API key may make at once before TOKEN_API_RATE applies"`

	// Env sinks (activities/sinkpath.go). Whoever can start a workflow names a sink's
	// path, so the worker writes only inside directories its operator lists, and never
	// beside its own key file or store.
	SinkDirs string `split_words:"true" desc:"directories env sinks may write in, comma-separated absolute clean paths (empty: env sinks are refused); never the data directory or the directory of the key file or SQLite store"`
}

// DefaultTokenAPI is where `starter token` finds the token API unless
// TOKENWARDEN_TOKEN_API says otherwise: the worker's default HTTP_ADDR.
const DefaultTokenAPI = "http://127.0.0.1:8234"

// TokenClient is the configuration of `starter token`, a client of the token API.
type TokenClient struct {
	APIKey   string `split_words:"true" desc:"API key for the token API (starter apikey create); a secret, read from the environment only"`
	TokenAPI string `split_words:"true" default:"http://127.0.0.1:8234" desc:"base URL of the worker's token API (its HTTP_ADDR)"`
}

// LoadTokenClient reads and checks the token API client's configuration. A missing API
// key is not an error here; the command says what to set.
func LoadTokenClient() (TokenClient, error) {
	var c TokenClient
	if err := envconfig.Process(Prefix, &c); err != nil {
		return TokenClient{}, fmt.Errorf("read %s_* environment: %w", Prefix, err)
	}
	u, err := url.Parse(c.TokenAPI)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return TokenClient{}, fmt.Errorf("%s_TOKEN_API: %q is not an absolute http(s) URL without user info or query, such as %s", Prefix, c.TokenAPI, DefaultTokenAPI)
	}
	if err := checkToken(c.APIKey); err != nil {
		return TokenClient{}, fmt.Errorf("%s_API_KEY: %w", Prefix, err)
	}
	return c, nil
}

// DefaultCodecEndpoint is where the starter finds the worker's codec endpoint unless
// TOKENWARDEN_CODEC_ENDPOINT says otherwise: the worker's default HTTP_ADDR.
const DefaultCodecEndpoint = "http://127.0.0.1:8234/codec"

// Starter is the starter's configuration: Temporal, how it encrypts payloads, and the
// worker's token store (for `starter apikey`).
type Starter struct {
	Temporal
	// TokenStore's KeyFile encrypts payloads when this user can read it; the other
	// fields are used by `starter apikey` only (see LoadTokenStore).
	TokenStore
	CodecEndpoint    string `split_words:"true" default:"http://127.0.0.1:8234/codec" desc:"the worker's codec endpoint, used when the key file is not readable (empty: never)"`
	CodecBearerToken string `split_words:"true" desc:"bearer token for CODEC_ENDPOINT; a secret"`
	SealEndpoint     string `split_words:"true" default:"http://127.0.0.1:8234/seal" desc:"the worker's sealing endpoint, used when the key file is not readable (empty: never)"`
	SealBearerToken  string `split_words:"true" desc:"bearer token for SEAL_ENDPOINT; a secret"`
}

// LoadStarter reads and checks the starter's configuration for the commands that talk
// to Temporal. It does not check the token store settings: those commands never open
// the store, and a starter that ran with a half-set store configuration before must
// keep running.
func LoadStarter() (Starter, error) {
	var s Starter
	if err := envconfig.Process(Prefix, &s); err != nil {
		return Starter{}, fmt.Errorf("read %s_* environment: %w", Prefix, err)
	}
	if err := s.resolve(); err != nil {
		return Starter{}, err
	}
	s.applyDefaults()
	if s.CodecEndpoint != "" {
		u, err := url.Parse(s.CodecEndpoint)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil {
			return Starter{}, fmt.Errorf("%s_CODEC_ENDPOINT: %q is not an absolute http(s) URL without user info, such as %s", Prefix, s.CodecEndpoint, DefaultCodecEndpoint)
		}
	}
	if err := checkToken(s.CodecBearerToken); err != nil {
		return Starter{}, fmt.Errorf("%s_CODEC_BEARER_TOKEN: %w", Prefix, err)
	}
	if s.SealEndpoint != "" {
		u, err := url.Parse(s.SealEndpoint)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil {
			return Starter{}, fmt.Errorf("%s_SEAL_ENDPOINT: %q is not an absolute http(s) URL without user info, such as http://127.0.0.1:8234/seal", Prefix, s.SealEndpoint)
		}
	}
	if err := checkToken(s.SealBearerToken); err != nil {
		return Starter{}, fmt.Errorf("%s_SEAL_BEARER_TOKEN: %w", Prefix, err)
	}
	return s, nil
}

// checkToken rejects a bearer token that cannot travel in a header.
func checkToken(tok string) error {
	if strings.ContainsFunc(tok, func(r rune) bool { return r <= ' ' || r == 0x7f }) {
		return fmt.Errorf("must not contain spaces or control characters (the token is not shown)")
	}
	return nil
}

// CORSOrigins parses TOKENWARDEN_CODEC_CORS_ORIGINS (Check has already accepted it).
func (w Worker) CORSOrigins() []string {
	origins, _ := parseOrigins(w.CodecCORSOrigins)
	return origins
}

// parseOrigins splits a comma-separated list of origins, each scheme://host[:port]
// with scheme http or https and nothing after the host: browsers send exactly that in
// the Origin header, and CORS compares it as a string.
func parseOrigins(s string) ([]string, error) {
	var origins []string
	for _, o := range strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ' ' || r == '\t' || r == '\n' }) {
		u, err := url.Parse(o)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil ||
			(u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" {
			return nil, fmt.Errorf("%q is not an origin such as http://localhost:8233 (scheme, host and port only; \"*\" is not allowed)", o)
		}
		origins = append(origins, u.Scheme+"://"+u.Host)
	}
	return origins, nil
}

func (w Worker) checkHTTP() error {
	if w.HTTPAddr != "" {
		host, port, err := net.SplitHostPort(w.HTTPAddr)
		if err != nil {
			return fmt.Errorf("%s_HTTP_ADDR: %q is not host:port (for example 127.0.0.1:8234): %w", Prefix, w.HTTPAddr, err)
		}
		if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
			return fmt.Errorf("%s_HTTP_ADDR: %q has no valid port", Prefix, w.HTTPAddr)
		}
		// /codec/decode opens every payload ever written, seeds included; on loopback
		// only this host's users reach it, beyond it anyone who can reach the address.
		if !isLoopbackHost(host) && w.CodecBearerToken == "" {
			return fmt.Errorf("%s_HTTP_ADDR %q listens beyond loopback, where anyone who reaches it could decrypt every payload: "+
				"set %s_CODEC_BEARER_TOKEN (callers of /codec then send Authorization: Bearer <token>), or listen on 127.0.0.1",
				Prefix, w.HTTPAddr, Prefix)
		}
	}
	if _, err := parseOrigins(w.CodecCORSOrigins); err != nil {
		return fmt.Errorf("%s_CODEC_CORS_ORIGINS: %w", Prefix, err)
	}
	if err := checkToken(w.CodecBearerToken); err != nil {
		return fmt.Errorf("%s_CODEC_BEARER_TOKEN: %w", Prefix, err)
	}
	if err := checkToken(w.SealBearerToken); err != nil {
		return fmt.Errorf("%s_SEAL_BEARER_TOKEN: %w", Prefix, err)
	}
	if !(w.TokenAPIRate > 0) || math.IsInf(w.TokenAPIRate, 0) { // also refuses NaN
		return fmt.Errorf("%s_TOKEN_API_RATE: must be a positive number of requests per second, got %v", Prefix, w.TokenAPIRate)
	}
	if w.TokenAPIBurst < 1 {
		return fmt.Errorf("%s_TOKEN_API_BURST: must be at least 1, got %d", Prefix, w.TokenAPIBurst)
	}
	if w.WorkflowCacheSize < 1 {
		return fmt.Errorf("%s_WORKFLOW_CACHE_SIZE: must be at least 1, got %d", Prefix, w.WorkflowCacheSize)
	}
	return nil
}

// isLoopbackHost reports whether a listener on host is reachable from this machine
// only: "localhost", or an address in 127.0.0.0/8 or ::1. An empty host and the
// unspecified addresses (0.0.0.0, ::) listen on every interface; any other name may
// resolve to anything.
func isLoopbackHost(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.IsLoopback()
}

// LoadWorker reads and checks the worker's configuration.
func LoadWorker() (Worker, error) {
	var w Worker
	if err := envconfig.Process(Prefix, &w); err != nil {
		return Worker{}, fmt.Errorf("read %s_* environment: %w", Prefix, err)
	}
	if err := w.resolve(); err != nil {
		return Worker{}, err
	}
	w.applyDefaults()
	return w, w.Check()
}

// Check rejects settings that would break the refresh protocol's safety margins.
func (w Worker) Check() error {
	if w.ProviderTimeout <= 0 {
		return fmt.Errorf("%s_PROVIDER_TIMEOUT: must be positive, got %s", Prefix, w.ProviderTimeout)
	}
	if w.CommitRetry < time.Second {
		return fmt.Errorf("%s_COMMIT_RETRY: must be at least 1s, got %s", Prefix, w.CommitRetry)
	}
	if err := leasetiming.Check(Prefix, w.LeaseDuration, w.ProviderTimeout, w.CommitRetry); err != nil {
		return err
	}
	if w.MinAccessLifetime < time.Second {
		return fmt.Errorf("%s_MIN_ACCESS_LIFETIME: must be at least 1s, got %s", Prefix, w.MinAccessLifetime)
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
	if err := w.checkHTTP(); err != nil {
		return err
	}
	if err := w.CheckStore(); err != nil {
		return err
	}
	if err := w.checkSinkDirs(); err != nil {
		return err
	}
	return w.checkNotify()
}

// SinkDirList parses TOKENWARDEN_SINK_DIRS: absolute, clean directories, not the root
// (which would let a workflow starter name any file the worker may write).
func (w Worker) SinkDirList() ([]string, error) {
	var dirs []string
	for _, d := range strings.Split(w.SinkDirs, ",") {
		d = strings.TrimSpace(d)
		if d == "" {
			continue
		}
		if !filepath.IsAbs(d) || filepath.Clean(d) != d {
			return nil, fmt.Errorf("%s_SINK_DIRS: %q is not an absolute, clean path (no trailing /, no . or .. components)", Prefix, d)
		}
		if filepath.Dir(d) == d {
			return nil, fmt.Errorf("%s_SINK_DIRS: %q is the root: list the directories that hold the .env files", Prefix, d)
		}
		if !slices.Contains(dirs, d) {
			dirs = append(dirs, d)
		}
	}
	return dirs, nil
}

// ProtectedDirs are the directories no env sink may write in, whatever
// TOKENWARDEN_SINK_DIRS says: the data directory (the SQLite store, the outbox, the
// default key file) and the directories of the key file and of the SQLite store. A
// sink there could append to the key file (the worker would then not start) or
// replace the store. The paths are made absolute against the working directory.
func (s TokenStore) ProtectedDirs() ([]string, error) {
	var dirs []string
	for _, p := range []string{s.DataDir, filepath.Dir(s.KeyFile), filepath.Dir(s.SqlitePath)} {
		if p == "" {
			continue
		}
		abs, err := filepath.Abs(p)
		if err != nil {
			return nil, fmt.Errorf("make %s absolute: %w", p, err)
		}
		if !slices.Contains(dirs, abs) {
			dirs = append(dirs, abs)
		}
	}
	return dirs, nil
}

// checkSinkDirs refuses a sink directory that is, or lies inside, a protected one: a
// mistake the activity would refuse on every write anyway. A protected directory
// inside a sink directory is fine; sinks there are refused.
func (w Worker) checkSinkDirs() error {
	dirs, err := w.SinkDirList()
	if err != nil {
		return err
	}
	protected, err := w.ProtectedDirs()
	if err != nil {
		return err
	}
	for _, d := range dirs {
		for _, p := range protected {
			if PathWithin(p, d) {
				return fmt.Errorf("%s_SINK_DIRS: %q is inside %s, which holds the token store or the key file: env sinks may never write there", Prefix, d, p)
			}
		}
	}
	return nil
}

// PathWithin reports whether path is dir or lies below it, comparing whole path
// components ("/srv/app" is not within "/srv/ap"). Both must be absolute and clean.
func PathWithin(dir, path string) bool {
	rel, err := filepath.Rel(dir, path)
	if err != nil {
		return false
	}
	return rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator)) && !filepath.IsAbs(rel)
}

// Token stores (TOKENWARDEN_STORE), as store.Open names its backends.
const (
	StoreSQLite   = "sqlite"
	StorePostgres = "postgres"
)

// CheckStore checks the store settings. It never quotes the DSN: it may hold a password.
func (s TokenStore) CheckStore() error {
	switch s.Store {
	case StoreSQLite:
		if s.PostgresDSN != "" {
			// A worker (or an API key command) meant for the shared database must not
			// quietly use a local file instead: the two stores would drift apart.
			return fmt.Errorf("%s_POSTGRES_DSN is set but %s_STORE is %s; set %s_STORE=%s, or unset the DSN", Prefix, Prefix, StoreSQLite, Prefix, StorePostgres)
		}
	case StorePostgres:
		if strings.TrimSpace(s.PostgresDSN) == "" {
			return fmt.Errorf("%s_STORE=%s needs %s_POSTGRES_DSN (e.g. postgres://user@host:5432/db?sslmode=verify-full)", Prefix, StorePostgres, Prefix)
		}
	default:
		return fmt.Errorf("%s_STORE: %q is not %s or %s", Prefix, s.Store, StoreSQLite, StorePostgres)
	}
	return nil
}

// Notification formats.
const (
	NotifyFormatJSON  = "json"
	NotifyFormatSlack = "slack"
)

// NotifyTarget is one named destination of TOKENWARDEN_NOTIFY_TARGETS. URL and Secret
// are secrets.
type NotifyTarget struct {
	Name   string
	Format string // json or slack, the entry's own or TOKENWARDEN_NOTIFY_FORMAT
	URL    string
	// Secret signs its deliveries (TOKENWARDEN_NOTIFY_TARGET_SECRETS); empty: unsigned.
	Secret string
}

// String never shows the URL.
func (t NotifyTarget) String() string { return fmt.Sprintf("%s (%s)", t.Name, t.Format) }

// MaxNotifyTargetName bounds a target name.
const MaxNotifyTargetName = 64

// ValidNotifyTargetName reports whether name may name a notification target: 1 to 64
// letters, digits, '.', '_' or '-' (the characters of a credential ID).
func ValidNotifyTargetName(name string) bool {
	if name == "" || len(name) > MaxNotifyTargetName {
		return false
	}
	for _, r := range name {
		if !('a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9' || r == '.' || r == '_' || r == '-') {
			return false
		}
	}
	return true
}

func (w Worker) checkNotify() error {
	if err := checkNotifyFormat(w.NotifyFormat); err != nil {
		return fmt.Errorf("%s_NOTIFY_FORMAT: %w", Prefix, err)
	}
	if w.NotifyWebhookURL != "" {
		if err := CheckWebhookURL(w.NotifyWebhookURL); err != nil {
			return fmt.Errorf("%s_NOTIFY_WEBHOOK_URL: %w", Prefix, err)
		}
	}
	if w.NotifyWebhookSecret != "" {
		if w.NotifyWebhookURL == "" {
			return fmt.Errorf("%s_NOTIFY_WEBHOOK_SECRET is set but %s_NOTIFY_WEBHOOK_URL is not", Prefix, Prefix)
		}
		if _, err := webhook.ParseSecret(w.NotifyWebhookSecret); err != nil {
			return fmt.Errorf("%s_NOTIFY_WEBHOOK_SECRET: %w", Prefix, err)
		}
	}
	if _, err := w.NotifyTargetList(); err != nil {
		return err
	}
	if strings.ContainsFunc(w.NotifyBearerToken, func(r rune) bool { return r <= ' ' || r == 0x7f }) {
		return fmt.Errorf("%s_NOTIFY_BEARER_TOKEN: must not contain spaces or control characters (the token is not shown)", Prefix)
	}
	if w.NotifyTimeout <= 0 {
		return fmt.Errorf("%s_NOTIFY_TIMEOUT: must be positive, got %s", Prefix, w.NotifyTimeout)
	}
	return nil
}

// NotifyTargetList parses TOKENWARDEN_NOTIFY_TARGETS and gives each target its secret
// from TOKENWARDEN_NOTIFY_TARGET_SECRETS (Check has already accepted both).
func (w Worker) NotifyTargetList() ([]NotifyTarget, error) {
	targets, err := ParseNotifyTargets(w.NotifyTargets, w.NotifyFormat)
	if err != nil {
		return nil, err
	}
	secrets, err := ParseNotifyTargetSecrets(w.NotifyTargetSecrets)
	if err != nil {
		return nil, err
	}
	for i, t := range targets {
		targets[i].Secret = secrets[t.Name]
		delete(secrets, t.Name)
	}
	if len(secrets) > 0 {
		// A secret for no target is most likely a misspelt name, whose target would
		// then go unsigned.
		return nil, fmt.Errorf("%s_NOTIFY_TARGET_SECRETS: target %q is not in %s_NOTIFY_TARGETS", Prefix,
			slices.Sorted(maps.Keys(secrets))[0], Prefix)
	}
	return targets, nil
}

// ParseNotifyTargetSecrets parses TOKENWARDEN_NOTIFY_TARGET_SECRETS: entries separated
// by commas (or white space), each name=whsec_<base64>. The secrets live in a variable
// of their own, beside the URLs rather than inside them, so that a target's URL can be
// rotated without its secret and the other way round. Errors name entries by position
// or target name and never quote a secret.
func ParseNotifyTargetSecrets(s string) (map[string]string, error) {
	const what = Prefix + "_NOTIFY_TARGET_SECRETS"
	secrets := map[string]string{}
	for i, e := range strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ' ' || r == '\t' || r == '\n' || r == '\r' }) {
		name, secret, ok := strings.Cut(e, "=")
		// A bare secret's base64 padding would cut it into a valid-looking name, which
		// the errors below would quote.
		if !ok || !ValidNotifyTargetName(name) || strings.HasPrefix(name, webhook.SecretPrefix) {
			return nil, fmt.Errorf("%s: entry %d is not name=whsec_<base64> (the entry is not shown: it may hold a secret)", what, i+1)
		}
		if _, dup := secrets[name]; dup {
			return nil, fmt.Errorf("%s: target %q has two secrets", what, name)
		}
		if _, err := webhook.ParseSecret(secret); err != nil {
			return nil, fmt.Errorf("%s: target %q: %w", what, name, err)
		}
		secrets[name] = secret
	}
	return secrets, nil
}

func checkNotifyFormat(f string) error {
	switch f {
	case NotifyFormatJSON, NotifyFormatSlack:
		return nil
	}
	return fmt.Errorf("%q is not json or slack", f)
}

// CheckWebhookURL accepts what internal/webhook will send to: an absolute https URL
// with a host, or plain http to a loopback host. Its errors never quote the URL:
// webhook URLs are secrets.
func CheckWebhookURL(raw string) error {
	return webhook.CheckURL(raw)
}

// ParseNotifyTargets parses TOKENWARDEN_NOTIFY_TARGETS: entries separated by commas
// (or white space), each name=URL or name=FORMAT:URL with FORMAT json or slack, e.g.
//
//	ops=https://hooks.example/abc,team-b=slack:https://hooks.slack.com/services/T/B/X
//
// An entry without a format uses defaultFormat. Names are 1-64 letters, digits, '.',
// '_', '-', each used once. A comma inside a URL must be written %2C. Errors name the
// entry by position and, once it is known to be one, by target name; they never quote
// a URL or anything that could be part of one.
func ParseNotifyTargets(s, defaultFormat string) ([]NotifyTarget, error) {
	const what = Prefix + "_NOTIFY_TARGETS"
	entries := strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ' ' || r == '\t' || r == '\n' || r == '\r' })
	var targets []NotifyTarget
	seen := map[string]bool{}
	for i, e := range entries {
		name, rest, ok := strings.Cut(e, "=")
		if !ok || !ValidNotifyTargetName(name) {
			// The entry may be a bare URL, or a URL cut at its query's '=': show none of it.
			return nil, fmt.Errorf("%s: entry %d is not name=[json:|slack:]URL with a name of 1-%d letters, digits, '.', '_', '-' "+
				"(the entry is not shown: it may hold a webhook URL)", what, i+1, MaxNotifyTargetName)
		}
		if seen[name] {
			return nil, fmt.Errorf("%s: target %q is defined twice", what, name)
		}
		seen[name] = true
		t := NotifyTarget{Name: name, Format: defaultFormat, URL: rest}
		if f, u, ok := strings.Cut(rest, ":"); ok && (f == NotifyFormatJSON || f == NotifyFormatSlack) {
			t.Format, t.URL = f, u
		}
		if err := checkNotifyFormat(t.Format); err != nil {
			return nil, fmt.Errorf("%s: target %q: format %w", what, name, err)
		}
		if t.URL == "" {
			return nil, fmt.Errorf("%s: target %q has no URL", what, name)
		}
		if err := CheckWebhookURL(t.URL); err != nil {
			return nil, fmt.Errorf("%s: target %q: %w; write name=URL or name=json:URL or name=slack:URL", what, name, err)
		}
		targets = append(targets, t)
	}
	return targets, nil
}

// LoadTemporal reads only the Temporal connection settings (for the starter), with the
// effective address and namespace filled in (see ClientOptions).
func LoadTemporal() (Temporal, error) {
	var t Temporal
	if err := envconfig.Process(Prefix, &t); err != nil {
		return Temporal{}, fmt.Errorf("read %s_* environment: %w", Prefix, err)
	}
	if err := t.resolve(); err != nil {
		return Temporal{}, err
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
