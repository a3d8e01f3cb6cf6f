// Package leasetiming holds the arithmetic that makes a refresh lease long enough: the
// rule the worker's configuration is checked against (internal/config) and the budgets
// the refresh activity runs under (activities/refresh.go), in one place so that the two
// cannot drift apart. It has no dependencies, so both may import it.
//
// An attempt's life after it takes the lease has two parts. Before the commit: the
// parent token read, at most two provider calls (introspection after an interrupted
// attempt, then the refresh), each bounded by the provider timeout, and the store calls
// between them. Then the commit, which retries a failing store. The lease must outlast
// both with a margin to spare, or a retry could take the lease and present a refresh
// token the first attempt is still committing.
package leasetiming

import (
	"fmt"
	"time"
)

// StartToClose is the refresh activity's start-to-close timeout. Temporal retries an
// attempt that outlives it; the attempt's context is then cancelled.
const StartToClose = 60 * time.Second

// DefaultCommitRetry is how long, at least, the commit keeps retrying a failing store
// before it gives the token set to the outbox.
const DefaultCommitRetry = 30 * time.Second

// StoreCallsAllowance is the time allowed, before the commit, for the store calls that
// surround the provider calls (reading the parent credential, recording its use).
const StoreCallsAllowance = 2 * time.Second

// Margin is kept between the end of the commit's retries and the lease's expiry: it
// covers the store's round trip and the time between the store stamping the lease and
// the activity starting its own count, which begins before it asks.
const Margin = 2 * time.Second

// BeforeCommit bounds an attempt from taking the lease to the start of its commit:
// two provider calls and the store calls around them, and never more than the
// start-to-close timeout, which cancels the attempt.
func BeforeCommit(providerTimeout time.Duration) time.Duration {
	return min(StartToClose, 2*providerTimeout+StoreCallsAllowance)
}

// MinLease is the shortest lease that may be configured: the attempt before its
// commit, the commit's retries and the margin. Check refuses anything not longer.
func MinLease(providerTimeout, commitRetry time.Duration) time.Duration {
	return BeforeCommit(providerTimeout) + commitRetry + Margin
}

// Check refuses a lease that an attempt could outlive. Its errors name the
// environment variables with prefix, and the parts of the sum.
func Check(prefix string, lease, providerTimeout, commitRetry time.Duration) error {
	if min := MinLease(providerTimeout, commitRetry); lease <= min {
		return fmt.Errorf("%s_LEASE_DURATION (%s) must be longer than %s: an attempt may take %s before its commit "+
			"(two calls of %s_PROVIDER_TIMEOUT=%s and %s of store calls, at most the %s start-to-close timeout), "+
			"then retry the commit for %s_COMMIT_RETRY=%s, and %s of margin must remain; a shorter lease lets a retry "+
			"present the refresh token while this attempt is still committing it",
			prefix, lease, min, BeforeCommit(providerTimeout), prefix, providerTimeout, StoreCallsAllowance,
			StartToClose, prefix, commitRetry, Margin)
	}
	return nil
}
