package credential

import "time"

// Notification events.
const (
	EventIncident  = "incident"  // an incident started, or got worse (DEGRADED -> EXPIRED -> NEEDS_REAUTH)
	EventReminder  = "reminder"  // the incident still lasts
	EventRecovered = "recovered" // the credential is healthy again
	EventRetired   = "retired"   // the credential was retired
)

// Notification tells the people who own a credential what happened and what to do. The
// workflow writes it, the Notify activity delivers it and internal/notify formats it;
// its JSON is both the activity's input in history and the json format's webhook body.
// It carries no secret: the reason is the workflow's LastError, already scrubbed by the
// provider adapter.
type Notification struct {
	// ID identifies this notification to its receivers, so that they can drop a
	// duplicate: the Notify activity sets it, and a retried delivery carries the same
	// ID. The workflow leaves it empty.
	ID           string    `json:"id,omitempty"`
	Event        string    `json:"event"`
	CredentialID string    `json:"credential_id"`
	Provider     string    `json:"provider"`
	State        State     `json:"state"`
	Reason       string    `json:"reason,omitempty"`
	Code         string    `json:"code,omitempty"`
	Since        time.Time `json:"since"`
	Failures     int       `json:"consecutive_failures,omitempty"`
	// Reminder counts reminders of this incident (1 for the first).
	Reminder int `json:"reminder,omitempty"`
	// ReseedCommand is the exact command that hands the credential new grant material.
	ReseedCommand string `json:"reseed_command,omitempty"`
	// Target names the worker-configured destination; empty means the default.
	Target string `json:"target,omitempty"`
}
