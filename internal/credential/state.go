package credential

// State is where a credential is in its lifecycle. Its values are what the status
// query, the TokenState search attribute and notifications show.
type State string

// The states of the credential workflow's state machine (workflows/credential.go).
const (
	// StateSeeding: the workflow has started and is storing the seed material.
	StateSeeding State = "SEEDING"
	// StateActive: the token is valid; the workflow sleeps until the next action.
	StateActive State = "ACTIVE"
	// StateRefreshing: a refresh activity is in flight.
	StateRefreshing State = "REFRESHING"
	// StateDegraded: refreshes fail transiently; the access token is still valid.
	StateDegraded State = "DEGRADED"
	// StateExpired: refreshes fail transiently and the access token has run out.
	StateExpired State = "EXPIRED"
	// StateNeedsReauth: the provider rejected the grant; a human must reseed.
	StateNeedsReauth State = "NEEDS_REAUTH"
	// StateRetired: the credential was retired; its secrets are deleted and the
	// workflow has completed.
	StateRetired State = "RETIRED"
)
