package metrics

import "time"

// Metric names of tokenwarden itself.
const (
	RefreshesTotal       = "tokenwarden_refreshes_total"
	RefreshDuration      = "tokenwarden_refresh_duration_seconds"
	ProbesTotal          = "tokenwarden_probes_total"
	NotificationsTotal   = "tokenwarden_notifications_total"
	Credentials          = "tokenwarden_credentials"
	EarliestExpiry       = "tokenwarden_earliest_expiry_seconds"
	CollectErrorsTotal   = "tokenwarden_collect_errors_total"
	LastCollectTimestamp = "tokenwarden_last_collect_timestamp_seconds"
)

// Refresh outcomes (the outcome label of tokenwarden_refreshes_total).
const (
	OutcomeCommitted        = "committed"         // a new token set was stored
	OutcomeAlreadyCommitted = "already_committed" // an earlier attempt had stored it; nothing presented
	OutcomeTransient        = "transient"         // will be retried
	OutcomePermanent        = "permanent"         // the grant is dead: NEEDS_REAUTH
	OutcomeInFlight         = "in_flight"         // another attempt holds the lease; nothing presented
	OutcomeStoreError       = "store_error"       // the token store failed
	OutcomeInvalidInput     = "invalid_input"     // the request cannot succeed (unknown provider, bad config)
	OutcomeError            = "error"             // anything else
)

// RefreshBuckets are the bounds of tokenwarden_refresh_duration_seconds: a provider
// call is bounded by the provider timeout (30 s by default), the commit by 30 s more.
var RefreshBuckets = []float64{0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60}

// Activity records what the activities do. A nil *Activity records nothing, so the
// activities need no metrics in tests.
type Activity struct {
	refreshes       *Counter
	refreshDuration *Histogram
	probes          *Counter
	notifications   *Counter
}

// NewActivity registers the activities' metrics in r.
func NewActivity(r *Registry) *Activity {
	return &Activity{
		refreshes: r.NewCounter(RefreshesTotal,
			"Refresh activity attempts by provider and outcome (committed, already_committed, transient, permanent, in_flight, store_error, invalid_input, error).",
			"provider", "outcome"),
		refreshDuration: r.NewHistogram(RefreshDuration,
			"Duration of the provider's refresh call plus the commit of its answer, for attempts that called the provider.",
			RefreshBuckets, "provider"),
		probes: r.NewCounter(ProbesTotal,
			"Probe activity attempts by provider and outcome (valid, rejected, no_access_token, transient, permanent, store_error, invalid_input, error).",
			"provider", "outcome"),
		notifications: r.NewCounter(NotificationsTotal,
			"Notify activity attempts by event and outcome (sent, logged when no notifier is configured, failed).",
			"event", "outcome"),
	}
}

// Refresh counts one refresh attempt.
func (a *Activity) Refresh(provider, outcome string) {
	if a != nil {
		a.refreshes.Inc(provider, outcome)
	}
}

// RefreshDuration records how long the provider call and the commit took.
func (a *Activity) RefreshDuration(provider string, d time.Duration) {
	if a != nil {
		a.refreshDuration.Observe(d.Seconds(), provider)
	}
}

// Probe counts one probe attempt.
func (a *Activity) Probe(provider, outcome string) {
	if a != nil {
		a.probes.Inc(provider, outcome)
	}
}

// Notification counts one notification attempt.
func (a *Activity) Notification(event, outcome string) {
	if a != nil {
		a.notifications.Inc(event, outcome)
	}
}

// CredentialStates are the gauges computed from the token store and Temporal's
// visibility by the worker's collector.
type CredentialStates struct {
	credentials    *Gauge
	earliestExpiry *Gauge
	errors         *Counter
	lastCollect    *Gauge
}

// NewCredentialStates registers the collector's metrics in r.
func NewCredentialStates(r *Registry) *CredentialStates {
	return &CredentialStates{
		credentials: r.NewGauge(Credentials,
			"Running credential workflows by the TokenState search attribute (Temporal visibility; REFRESHING is not published).",
			"state"),
		earliestExpiry: r.NewGauge(EarliestExpiry,
			"Seconds until the earliest access-token expiry among the token store's credentials (negative: already expired). Absent when no stored credential has a known expiry."),
		errors: r.NewCounter(CollectErrorsTotal,
			"Failed collections of tokenwarden_credentials (source visibility) or tokenwarden_earliest_expiry_seconds (source store).",
			"source"),
		lastCollect: r.NewGauge(LastCollectTimestamp,
			"Unix time of the last collection of the credential gauges that succeeded, by source.",
			"source"),
	}
}

// SetStates sets tokenwarden_credentials for each state.
func (c *CredentialStates) SetStates(counts map[string]int64, now time.Time) {
	for state, n := range counts {
		c.credentials.Set(float64(n), state)
	}
	c.lastCollect.Set(float64(now.UnixNano())/1e9, "visibility")
}

// SetEarliestExpiry sets tokenwarden_earliest_expiry_seconds from the expiries of the
// stored credentials (zero times are unknown and skipped) at now.
func (c *CredentialStates) SetEarliestExpiry(expiries []time.Time, now time.Time) {
	var earliest time.Time
	for _, t := range expiries {
		if !t.IsZero() && (earliest.IsZero() || t.Before(earliest)) {
			earliest = t
		}
	}
	if earliest.IsZero() {
		c.earliestExpiry.Delete()
	} else {
		c.earliestExpiry.Set(earliest.Sub(now).Seconds())
	}
	c.lastCollect.Set(float64(now.UnixNano())/1e9, "store")
}

// CollectFailed counts a failed collection from source ("store" or "visibility").
func (c *CredentialStates) CollectFailed(source string) { c.errors.Inc(source) }
