// Package credential holds the domain types that every part of tokenwarden may import:
// what a credential ID may be (ValidateID) and where a credential is in its lifecycle
// (State).
//
// What belongs here: plain values that travel between packages and through Temporal
// history, their JSON encodings, and rules that need nothing but the standard library.
// The encodings are recorded in workflow histories (workflows/testdata), so a value's
// name, type or JSON tag never changes here without a replay test saying it may.
//
// What does not: anything that runs (activities), schedules (workflows) or reads the
// worker's configuration. This package imports no other tokenwarden package and not the
// Temporal SDK, so that importing it never pulls a workflow, an activity or a store into
// a package that only needs a name.
package credential
