package workflows

import (
	"strings"
	"testing"
	"time"

	cred "github.com/tokenwarden/tokenwarden/internal/credential"

	"github.com/stretchr/testify/mock"
	"go.temporal.io/sdk/temporal"
)

// A steady credential upserts its search attributes when its state changes, not on
// every refresh: over a day of hourly tokens, SEEDING -> ACTIVE is published once and
// TokenExpiresAt stays unset while ACTIVE.
func (s *credentialSuite) TestSearchAttributesOnlyOnStateChanges() {
	s.env.SetStartTime(t0)
	s.seeded()
	log := &refreshLog{version: 1}
	s.refreshSucceeds(log, time.Hour)
	var upserts []temporal.SearchAttributes
	s.env.OnUpsertTypedSearchAttributes(mock.Anything).Run(func(args mock.Arguments) {
		upserts = append(upserts, args.Get(0).(temporal.SearchAttributes))
	}).Return(nil)
	// Between two refreshes (every 40 minutes from t0), so that none is in flight.
	s.stopAt(24*time.Hour + 20*time.Minute)
	s.env.ExecuteWorkflow(WorkflowType, input())

	s.Greater(len(log.times), 20, "hourly tokens refresh about every 40 minutes")
	s.Require().Len(upserts, 1, "one upsert: the credential became ACTIVE")
	state, _ := upserts[0].GetKeyword(SearchState)
	s.Equal(string(cred.StateActive), state)
	_, set := upserts[0].GetTime(SearchExpiresAt)
	s.False(set, "TokenExpiresAt is unset while ACTIVE")
}

func TestCurrentDetails(t *testing.T) {
	at := time.Date(2026, 12, 7, 12, 36, 7, 0, time.UTC)
	active := currentDetails(Status{ID: "zalo-oa-main", Provider: "zalo-oa", State: cred.StateActive, StateSince: at.Add(-time.Hour),
		Version: 17, AccessExpiresAt: at.Add(8 * time.Hour), NextAction: ActionRefresh, NextActionAt: at, Refreshes: 16, Runs: 2})
	for _, want := range []string{"**ACTIVE** since 2026-12-07 11:36:07 UTC", "zalo-oa", "store version 17",
		"access token expires 2026-12-07 20:36:07 UTC", "next: refresh at 2026-12-07 12:36:07 UTC", "16 refreshes, run 2"} {
		if !strings.Contains(active, want) {
			t.Errorf("ACTIVE details lack %q:\n%s", want, active)
		}
	}
	parked := currentDetails(Status{ID: "zalo-oa-main", Provider: "zalo-oa", State: cred.StateNeedsReauth, StateSince: at,
		NextAction: ActionAwaitReseed, LastError: "permanent provider error invalid_grant", LastErrorCode: "invalid_grant"})
	for _, want := range []string{"**NEEDS_REAUTH**", "next: nothing until a human reseeds", "last error (`invalid_grant`)",
		"to fix: `starter connect zalo-oa-main`"} {
		if !strings.Contains(parked, want) {
			t.Errorf("NEEDS_REAUTH details lack %q:\n%s", want, parked)
		}
	}
	if got := timerSummary(Status{ConsecutiveFailures: 2, RetryNotBefore: at}, ActionRetry, at); got != "retry at 12:36:07 UTC (the provider's Retry-After)" {
		t.Errorf("retry timer summary %q", got)
	}
	if got := timerSummary(Status{}, ActionRefresh, at); got != "refresh at 12:36:07 UTC" {
		t.Errorf("refresh timer summary %q", got)
	}
}
