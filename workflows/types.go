package workflows

import (
	"time"

	// Named cred here: in this package, credential is the workflow's in-memory state
	// (credential.go).
	cred "github.com/tokenwarden/tokenwarden/internal/credential"
	"github.com/tokenwarden/tokenwarden/internal/provider"
	"github.com/tokenwarden/tokenwarden/internal/seal"
)

// TaskQueue is the one task queue every tokenwarden worker polls.
const TaskQueue = "tokenwarden"

// Names of the workflow type and its messages, as the temporal CLI and the Web UI see them.
const (
	WorkflowType       = "CredentialWorkflow"
	QueryStatus        = "status"
	SignalRefreshNow   = "refresh-now"
	SignalReseed       = "reseed"
	SignalRetire       = "retire"
	SignalUpdatePolicy = "update-policy"
	UpdateRefresh      = "refresh"
	UpdateReseed       = "reseed"
	DefaultEventLimit  = 1000
)

// Policy is the per-credential timing configuration. Every field is optional: nil
// means the default (see Resolve). Durations are written as "90s", "5m", "1h".
type Policy struct {
	// RefreshMargin: refresh at least this long before the access token expires
	// (default 5m). For long-lived tokens a third of the lifetime is used instead.
	RefreshMargin *Duration `json:"refresh_margin,omitempty"`
	// Jitter: the largest per-credential offset subtracted from the refresh time
	// (default 1m; never more than a tenth of the token's lifetime).
	Jitter *Duration `json:"jitter,omitempty"`
	// AssumedLifetime: the access-token lifetime to assume when the provider does not
	// say (default 1h).
	AssumedLifetime *Duration `json:"assumed_lifetime,omitempty"`
	// RetryInitial and RetryMax bound the exponential backoff between failed refresh
	// rounds (defaults 10s and 1h). Each round itself retries a few times quickly.
	RetryInitial *Duration `json:"retry_initial,omitempty"`
	RetryMax     *Duration `json:"retry_max,omitempty"`
	// NotifyAfterFailures: a DEGRADED credential becomes an incident (and is notified)
	// after this many failed refresh rounds in a row (default 3).
	NotifyAfterFailures *int `json:"notify_after_failures,omitempty"`
	// ReminderInterval: while an incident lasts, remind this often (default 24h).
	ReminderInterval *Duration `json:"reminder_interval,omitempty"`
	// NotifyTarget names a notification target configured on the worker
	// (TOKENWARDEN_NOTIFY_TARGETS); empty means the worker's default target. Targets are
	// named rather than given here because a webhook URL is itself a secret.
	NotifyTarget string `json:"notify_target,omitempty"`
	// RetireAfterUnused: retire a credential nobody has used for this long — no token API
	// read, no sink delivery, no child credential minted with it — since it was seeded
	// ("0s" = never). Retiring deletes its secrets and completes its workflow. The default
	// is 720h (30 days, seed 004's cleanup) for probe-only credentials and never for
	// credentials that refresh: their consumers may read them in ways tokenwarden cannot
	// see, and deleting a live grant by default is not safe.
	RetireAfterUnused *Duration `json:"retire_after_unused,omitempty"`
	// RevokeOnRetire: an automatic retirement (retire_after_unused, on_invalid: retire)
	// also revokes the grant at the provider where it can (RFC 7009). Default false: the
	// secrets are deleted here, the grant is left alone. A retire signal always revokes:
	// a human asked for the credential to be gone.
	RevokeOnRetire *bool `json:"revoke_on_retire,omitempty"`
	// ProbeIntervalIdle: the probe interval for a credential nobody used in the last 7
	// days (default 24h for providers that cannot refresh; otherwise probe_interval).
	ProbeIntervalIdle *Duration `json:"probe_interval_idle,omitempty"`
	// OnInvalid: what a probe that finds the token dead does to a credential that cannot
	// refresh: "reauth" (default: NEEDS_REAUTH, a human reseeds) or "retire" (delete it,
	// as the baoming cleanup scripts did).
	OnInvalid string `json:"on_invalid,omitempty"`
	// ProbeInterval: how often to ask the provider whether the access token still works
	// (default 1h for providers that cannot refresh, such as baoming; off otherwise).
	ProbeInterval *Duration `json:"probe_interval,omitempty"`
}

// Timing is a Policy with every default filled in: what the scheduler works with.
type Timing struct {
	RefreshMargin       Duration `json:"refresh_margin"`
	Jitter              Duration `json:"jitter"`
	AssumedLifetime     Duration `json:"assumed_lifetime"`
	RetryInitial        Duration `json:"retry_initial"`
	RetryMax            Duration `json:"retry_max"`
	NotifyAfterFailures int      `json:"notify_after_failures"`
	ReminderInterval    Duration `json:"reminder_interval"`
	NotifyTarget        string   `json:"notify_target,omitempty"`
	// RetireAfterUnused 0 means never.
	RetireAfterUnused Duration `json:"retire_after_unused"`
	RevokeOnRetire    bool     `json:"revoke_on_retire,omitempty"`
	ProbeIntervalIdle Duration `json:"probe_interval_idle,omitempty"`
	OnInvalid         string   `json:"on_invalid,omitempty"`
	// ProbeInterval 0 means no probes.
	ProbeInterval Duration `json:"probe_interval,omitempty"`
}

// Defaults used when a Policy leaves a field out.
const (
	DefaultRefreshMargin   = 5 * time.Minute
	DefaultJitter          = time.Minute
	DefaultAssumedLifetime = time.Hour
	DefaultRetryInitial    = 10 * time.Second
	DefaultRetryMax        = time.Hour
	// DefaultProbeInterval applies to credentials that cannot refresh: probing is all
	// their lifecycle has.
	DefaultProbeInterval = time.Hour
	// DefaultProbeIntervalIdle: a probe-only token nobody read for a week is checked daily.
	DefaultProbeIntervalIdle = 24 * time.Hour
	// RecentUse is how recent a use must be for the busier probe interval.
	RecentUse = 7 * 24 * time.Hour
	// DefaultNotifyAfterFailures: failed rounds before a DEGRADED credential is news.
	DefaultNotifyAfterFailures = 3
	// DefaultReminderInterval: how often an open incident is brought up again.
	DefaultReminderInterval = 24 * time.Hour
	// DefaultRetireAfterUnused: the seed users' cleanup of tokens unused for 30 days
	// (seed 004), the default of probe-only credentials only.
	DefaultRetireAfterUnused = 30 * 24 * time.Hour
	// MinPolicyDuration is the floor of every policy duration that is set (jitter may be
	// 0, retire_after_unused 0 means never): below it a credential would busy-loop.
	MinPolicyDuration = time.Second
	// MinEventLimit is the floor of history_event_limit: a fresh run needs about a dozen
	// events before its first cycle, and a cycle about twelve, so a lower limit would
	// continue as new before it ever refreshed.
	MinEventLimit = 25
)

// inputRules is the version of the rules a run's input is held to, as recorded at the
// run's start (changeInputRules): a rule added later applies to runs that start after
// it, never, on replay, to a run that already accepted its input.
type inputRules int

const (
	// rulesOriginal: the rules before versioning.
	rulesOriginal inputRules = iota
	// rulesStrictConfig adds the providers' own configuration rules (https beyond
	// loopback, baoming's enrollment ID, ...).
	rulesStrictConfig
	// rulesSafeDefaults adds retire_after_unused off by default for credentials that
	// refresh, no revocation on automatic retirement unless asked, floors on every
	// duration and on history_event_limit, and update-policy merging the fields given
	// and refusing unknown ones.
	rulesSafeDefaults

	// currentRules are the rules every new run, and the starter, applies.
	currentRules = rulesSafeDefaults
)

func (r inputRules) strictConfig() bool { return r >= rulesStrictConfig }
func (r inputRules) safeDefaults() bool { return r >= rulesSafeDefaults }

// Resolve fills in defaults for a credential that can refresh, or only be probed. Call
// Validate first: Resolve does not reject bad values.
func (p Policy) Resolve(probeOnly bool) Timing { return p.resolve(probeOnly, currentRules) }

func (p Policy) resolve(probeOnly bool, rules inputRules) Timing {
	pick := func(d *Duration, def time.Duration) Duration {
		if d == nil {
			return Duration(def)
		}
		return *d
	}
	t := Timing{
		RefreshMargin:   pick(p.RefreshMargin, DefaultRefreshMargin),
		Jitter:          pick(p.Jitter, DefaultJitter),
		AssumedLifetime: pick(p.AssumedLifetime, DefaultAssumedLifetime),
		RetryInitial:    pick(p.RetryInitial, DefaultRetryInitial),
		RetryMax:        pick(p.RetryMax, DefaultRetryMax),
	}
	t.NotifyAfterFailures = DefaultNotifyAfterFailures
	if p.NotifyAfterFailures != nil {
		t.NotifyAfterFailures = *p.NotifyAfterFailures
	}
	t.ReminderInterval = pick(p.ReminderInterval, DefaultReminderInterval)
	t.NotifyTarget = p.NotifyTarget
	retireDefault := time.Duration(DefaultRetireAfterUnused)
	if rules.safeDefaults() && !probeOnly {
		retireDefault = 0
	}
	t.RetireAfterUnused = pick(p.RetireAfterUnused, retireDefault)
	t.RevokeOnRetire = p.RevokeOnRetire != nil && *p.RevokeOnRetire
	t.OnInvalid = p.OnInvalid
	switch {
	case p.ProbeInterval != nil:
		t.ProbeInterval = *p.ProbeInterval
	case probeOnly:
		t.ProbeInterval = Duration(DefaultProbeInterval)
	}
	switch {
	case p.ProbeIntervalIdle != nil:
		t.ProbeIntervalIdle = *p.ProbeIntervalIdle
	case probeOnly:
		t.ProbeIntervalIdle = Duration(DefaultProbeIntervalIdle)
	default:
		t.ProbeIntervalIdle = t.ProbeInterval
	}
	return t
}

// Seed is grant material a human hands in: at start, or later with the reseed signal.
// It is secret, and never travels through Temporal in this form: the starter seals it
// (SeedEnvelope) and only the Seed activity opens it.
type Seed = seal.Seed

// SeedEnvelope is a seed as the workflow input, the reseed signal and update carry it:
// {"sealed":"tw1:..."}, which the codec endpoint (and so the Web UI and the temporal
// CLI) can never open. The workflow passes it straight to the Seed activity, which
// refuses a plaintext one unless the worker allows it for local development.
type SeedEnvelope = seal.Envelope

// CredentialInput starts a credential workflow. The workflow ID is the credential ID.
type CredentialInput struct {
	// ID must equal the workflow ID when set; empty means "the workflow ID".
	ID       string          `json:"id,omitempty"`
	Provider string          `json:"provider"`
	Config   provider.Config `json:"config"`
	Policy   Policy          `json:"policy,omitempty"`
	// Seed is required on a fresh start and absent after continue-as-new.
	Seed *SeedEnvelope `json:"seed,omitempty"`
	// Carried is the status handed over by continue-as-new; never set it by hand: a run
	// that was not started by a continue-as-new of the same credential refuses it.
	Carried *Status `json:"carried,omitempty"`
	// HistoryEventLimit: continue-as-new once the history is this long (default 1000),
	// even if the server has not suggested it yet. Keeps replays short.
	HistoryEventLimit int `json:"history_event_limit,omitempty"`
	// Labels are non-secret facts about the credential that its status shows, such as
	// seed 004's per-token fields (uname, pic, unionid, card_name). At most 16, keys of
	// [a-z0-9_] (1-40), values of at most 256 printable characters. They travel in
	// history: never a secret.
	Labels map[string]string `json:"labels,omitempty"`
	// Sinks are where the fresh token is delivered after every committed refresh: lines
	// of .env files, named webhook targets (see credential.Sink). Non-secret: they travel in history.
	Sinks []cred.Sink `json:"sinks,omitempty"`
}

// Action is what the workflow will do when it next wakes up.
type Action string

// The actions NextWakeup can choose.
const (
	ActionRefresh     Action = "refresh"      // the access token is due
	ActionKeepAlive   Action = "keep-alive"   // the refresh token must be exercised before it lapses
	ActionRetry       Action = "retry"        // a failed refresh is retried
	ActionProbe       Action = "probe"        // ask the provider whether the access token works
	ActionRemind      Action = "remind"       // remind the owners of an incident that still lasts
	ActionUsageCheck  Action = "usage-check"  // retire the credential if nobody used it lately
	ActionAwaitReseed Action = "await-reseed" // nothing until a human reseeds
)

// Status is the whole non-secret state of a credential: the answer to the status query,
// and what continue-as-new carries. It must never hold a token or secret.
type Status struct {
	ID       string          `json:"id"`
	Provider string          `json:"provider"`
	Config   provider.Config `json:"config"`
	Timing   Timing          `json:"timing"`

	State      cred.State `json:"state"`
	StateSince time.Time  `json:"state_since"`
	// Version is the token store generation this workflow last committed or saw.
	Version          int64     `json:"version"`
	AccessExpiresAt  time.Time `json:"access_expires_at,omitzero"`
	RefreshExpiresAt time.Time `json:"refresh_expires_at,omitzero"`
	// AccessRenewableAt is the earliest time a refresh yields a new access token (the
	// provider's word, e.g. Feishu's tenant tokens); zero: any time.
	AccessRenewableAt time.Time `json:"access_renewable_at,omitzero"`
	LastRefreshAt     time.Time `json:"last_refresh_at,omitzero"`
	Refreshes         int64     `json:"refreshes"`
	// ProbeOnly is true for providers without a refresh endpoint (baoming): their whole
	// lifecycle is liveness probes.
	ProbeOnly   bool      `json:"probe_only,omitempty"`
	LastProbeAt time.Time `json:"last_probe_at,omitzero"`
	Probes      int64     `json:"probes,omitempty"`
	// Labels are the input's labels and what probes learnt about the token's account
	// (baoming's info_id). Non-secret.
	Labels map[string]string `json:"labels,omitempty"`

	LastError           string    `json:"last_error,omitempty"`
	LastErrorCode       string    `json:"last_error_code,omitempty"`
	LastAttemptAt       time.Time `json:"last_attempt_at,omitzero"` // start of the last round; its end if it failed
	ConsecutiveFailures int       `json:"consecutive_failures"`
	// RetryNotBefore is the provider's Retry-After, as an absolute time.
	RetryNotBefore time.Time `json:"retry_not_before,omitzero"`

	// SinkVersion is the store version the sinks last received; LastSinkAt is when the
	// last sink run ended, LastSinkError its failure (empty after a success). A failing
	// sink never changes State.
	SinkVersion   int64     `json:"sink_version,omitempty"`
	LastSinkAt    time.Time `json:"last_sink_at,omitzero"`
	LastSinkError string    `json:"last_sink_error,omitempty"`

	// SeededAt is when grant material was last handed in; LastUsedAt when a consumer last
	// read the token through the token API (as the store recorded it at the last usage
	// check); LastDeliveredAt when a sink last delivered it. The latest of the three
	// starts the retire_after_unused clock.
	SeededAt        time.Time `json:"seeded_at,omitzero"`
	LastUsedAt      time.Time `json:"last_used_at,omitzero"`
	LastDeliveredAt time.Time `json:"last_delivered_at,omitzero"`

	// Incident is set while the credential needs attention and its owners were told.
	Incident *Incident `json:"incident,omitempty"`

	// Outbox, while set, sends refreshes to one worker's outbox queue: the worker whose
	// outbox holds, or may hold, the credential's newest token set (see OutboxRoute).
	Outbox *OutboxRoute `json:"outbox,omitempty"`

	// RefreshRequested is set by refresh-now and cleared when a refresh starts, so a
	// request that arrives just before continue-as-new is not lost.
	RefreshRequested bool `json:"refresh_requested,omitempty"`

	NextAction   Action    `json:"next_action,omitempty"`
	NextActionAt time.Time `json:"next_action_at,omitzero"`
	// Runs counts workflow runs (continue-as-new generations) of this credential.
	Runs int `json:"runs"`
}

// OutboxRoute is where refreshes go while a token set may wait in one worker's outbox,
// which no other worker can read (activities.Activities.OutboxQueue).
type OutboxRoute struct {
	// Queue is that worker's outbox queue.
	Queue string `json:"queue"`
	// Held: the worker said its outbox holds the token set (activities.CodeOutboxPending).
	// Refreshes wait for it however long it takes: any other worker would present a
	// consumed token. A reseed ends the wait.
	Held bool `json:"held,omitempty"`
	// InterruptedAt is the interrupted attempt another worker found
	// (activities.CodeOutboxElsewhere); the routed attempt treats its outcome as
	// uncertain.
	InterruptedAt time.Time `json:"interrupted_at,omitzero"`
	// GaveUp: the worker that may hold the token set did not take a refresh within
	// OutboxWait, and the fleet refreshes instead, treating the last attempt as
	// interrupted (only when it never said it holds one: Held).
	GaveUp bool `json:"gave_up,omitempty"`
}

// OutboxWait is how long a refresh routed to a worker's outbox queue waits for that
// worker to take it (the activity's schedule-to-start timeout): a worker restarting on
// its data directory is back well within it.
const OutboxWait = 5 * time.Minute

// Incident is an open problem its owners have been told about. It ends, with one
// "recovered" notification, when the credential is ACTIVE again.
type Incident struct {
	// Kind is the worst state the incident reached: DEGRADED, EXPIRED or NEEDS_REAUTH.
	Kind           cred.State `json:"kind"`
	Since          time.Time  `json:"since"`
	Reminders      int        `json:"reminders"`
	NextReminderAt time.Time  `json:"next_reminder_at"`
}

// What a dead token found by a probe does to a credential that cannot refresh.
const (
	OnInvalidReauth = "reauth"
	OnInvalidRetire = "retire"
)
