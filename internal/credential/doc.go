// Package credential holds the domain types that every part of tokenwarden may import:
// what a credential ID may be (ValidateID), where a credential is in its lifecycle
// (State), where its fresh token is delivered (Sink), and what its owners are told
// (Notification).
//
// What belongs here: plain values that more than one of workflows, activities, the
// binaries and the internal packages exchange, their JSON encodings, and rules that need
// nothing but the standard library. The values travel through Temporal history, and
// recorded runs (workflows/testdata) must keep decoding, so a field's name, type or JSON
// tag does not change: encoding_test.go pins them byte for byte.
//
// What does not: anything that runs (activities), schedules (workflows) or reads the
// worker's configuration. The workflow's own input, policy and status (CredentialInput,
// Policy, Status) stay in workflows, whose rules version them. A sink's full check needs
// the env file's key syntax, the notification target names and the loopback rule of
// webhooks, so it stays with the code that delivers sinks (activities.CheckSinks). This
// package imports no other tokenwarden package and not the Temporal SDK, so that
// importing it never pulls a workflow, an activity or a store into a package that only
// needs a name.
package credential
