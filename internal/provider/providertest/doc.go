// Package providertest is what the fake providers (each adapter's <name>test package,
// beside it as httptest sits beside net/http) share: the fault schedule and server
// lifecycle (fault.go, lifecycle.go) and the token ledger (ledger.go). The consent page
// and its authorization codes are the subpackage consent.
//
// # Faults
//
// A fake describes itself with Rules and takes misbehaviours from a Schedule; see
// fault.go.
//
// # The ledger
//
// Ledger is the token bookkeeping of the OAuth-style fakes (oauth2test, zalotest,
// feishutest, zogotest): rotating single-use refresh tokens in families with reuse
// detection, the access tokens minted next to them, and the counters tests prove
// tokenwarden's behaviour with.
//
// # Ledger families
//
// Every grant is one token family, started by Seed or Start. Redeem applies the refresh
// rules in the fakes' common order: unknown (or of another kind), already used (reuse:
// counted, and the family revoked when the policy says so), revoked, expired, otherwise
// granted: the presented token is marked used and a new access and refresh token are
// minted, the new refresh token being the family's only live one. Each fake maps the
// outcome to its own wire answer.
//
// # Ledger counting
//
// Arrive counts what the client put on the wire, on arrival: a request per path, a
// presentation per refresh token carried, and the request in flight (overall and for
// the family of the token it carries). Redeem counts what the grant logic acted on
// (Processed), whatever the outcome, and successful grants (Refreshes).
package providertest
