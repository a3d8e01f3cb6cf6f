// Package credential holds the domain types that every part of tokenwarden may import:
// what a credential ID may be (ValidateID), where a credential is in its lifecycle
// (State) and where its fresh token is delivered (Sink).
//
// What belongs here: plain values that travel between packages and through Temporal
// history, their JSON encodings, and rules that need nothing but the standard library.
// The encodings are recorded in workflow histories (workflows/testdata), so a value's
// name, type or JSON tag never changes here without a replay test saying it may;
// encoding_test.go pins them.
//
// What does not: anything that runs (activities), schedules (workflows) or reads the
// worker's configuration. A sink's full check needs the env file's key syntax, the
// notification target names and the loopback rule of webhooks, so it stays with the
// code that delivers sinks (activities.CheckSinks). This package imports no other
// tokenwarden package and not the Temporal SDK, so that importing it never pulls a
// workflow, an activity or a store into a package that only needs a name.
package credential
