package activities

// Fault points where a test build of the worker can kill itself, to prove that a crash
// at the worst moment loses nothing that can be saved. See faults_on.go.
const (
	// FaultAfterProviderBeforeCommit: the provider has answered with new tokens and
	// nothing is stored yet.
	FaultAfterProviderBeforeCommit = "after-provider-before-commit"
)
