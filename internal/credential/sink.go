package credential

// Sink types.
const (
	// SinkEnv sets one KEY=value line of a dotenv file on the worker's machine.
	SinkEnv = "env"
	// SinkWebhook posts the new access token to a target configured on the worker.
	SinkWebhook = "webhook"
)

// What an env sink writes. The refresh token is written only when chosen explicitly:
// a consumer that spends a single-use refresh token takes the credential away from
// tokenwarden.
const (
	SinkValueAccessToken  = "access_token" // the default
	SinkValueTokenType    = "token_type"
	SinkValueExpiresAt    = "expires_at" // the access token's expiry, RFC 3339 in UTC; empty when unknown
	SinkValueRefreshToken = "refresh_token"
)

// Sink is one place a credential's fresh token is delivered to after every committed
// refresh:
// {"type":"env","path":"/srv/app/.env","key":"ZALO_ACCESS_TOKEN","value":"access_token"}
// or {"type":"webhook","target":"<a TOKENWARDEN_NOTIFY_TARGETS name>"}; an env sink may
// add "reload_signal" ({"pid_file":"/run/app.pid","signal":"HUP"}) and/or "reload_url"
// to tell the file's consumer it changed. It is part of the workflow input, travels in
// history, and must hold no secret: a webhook is named, its URL is the worker's; a
// reload URL is the consumer's and must carry no credentials. activities.CheckSinks
// validates sinks and activities.Sink delivers them.
type Sink struct {
	// Type is SinkEnv or SinkWebhook.
	Type string `json:"type"`
	// Path (env) is the absolute, clean path of the dotenv file. The check sees only its
	// form; the worker writes it only inside its TOKENWARDEN_SINK_DIRS
	// (activities/sinkpath.go).
	Path string `json:"path,omitempty"`
	// Key (env) is the variable to set, [A-Za-z_][A-Za-z0-9_]*.
	Key string `json:"key,omitempty"`
	// Value (env) is what to write: access_token (default), token_type, expires_at,
	// or refresh_token. EnvValue fills in the default.
	Value string `json:"value,omitempty"`
	// Target (webhook) names an entry of TOKENWARDEN_NOTIFY_TARGETS.
	Target string `json:"target,omitempty"`
	// ReloadSignal (env), if set, signals the file's consumer after the file has been
	// written.
	ReloadSignal *ReloadSignal `json:"reload_signal,omitempty"`
	// ReloadURL (env), if set, is POSTed to after the file has been written (see
	// activities.CheckReloadURL); it is told no token.
	ReloadURL string `json:"reload_url,omitempty"`
}

// EnvValue is what an env sink writes: Value, or SinkValueAccessToken when Value is
// empty.
func (s Sink) EnvValue() string {
	if s.Value == "" {
		return SinkValueAccessToken
	}
	return s.Value
}

// ReloadSignal signals the process whose pid a pid file holds, the way the seeds' cron
// jobs restart the container that reads .env after writing it. A pid file's path and
// a signal name are not secret, so the spec may travel in history.
type ReloadSignal struct {
	// PIDFile is the absolute, clean path of a regular file whose name ends in ".pid"
	// and that holds one positive decimal integer (a trailing newline is allowed).
	PIDFile string `json:"pid_file"`
	// Signal is HUP, USR1, USR2 or TERM.
	Signal string `json:"signal"`
}
