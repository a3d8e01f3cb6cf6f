package metrics

import (
	"strings"
	"testing"
	"time"
)

func TestNilActivityRecordsNothing(t *testing.T) {
	var a *Activity
	a.Refresh("oauth2", OutcomeCommitted)
	a.RefreshDuration("oauth2", time.Second)
	a.Probe("oauth2", "valid")
	a.Notification("incident", "sent")
}

func TestActivityMetrics(t *testing.T) {
	r := NewRegistry()
	a := NewActivity(r)
	a.Refresh("oauth2", OutcomeCommitted)
	a.RefreshDuration("oauth2", 300*time.Millisecond)
	a.Probe("baoming", "rejected")
	a.Notification("incident", "sent")
	got := text(t, r)
	for _, want := range []string{
		"# TYPE tokenwarden_refreshes_total counter\n",
		`tokenwarden_refreshes_total{outcome="committed",provider="oauth2"} 1` + "\n",
		"# TYPE tokenwarden_refresh_duration_seconds histogram\n",
		`tokenwarden_refresh_duration_seconds_bucket{provider="oauth2",le="0.25"} 0` + "\n",
		`tokenwarden_refresh_duration_seconds_bucket{provider="oauth2",le="0.5"} 1` + "\n",
		`tokenwarden_refresh_duration_seconds_sum{provider="oauth2"} 0.3` + "\n",
		`tokenwarden_probes_total{outcome="rejected",provider="baoming"} 1` + "\n",
		`tokenwarden_notifications_total{event="incident",outcome="sent"} 1` + "\n",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("missing %q in\n%s", want, got)
		}
	}
}

func TestCredentialStates(t *testing.T) {
	r := NewRegistry()
	c := NewCredentialStates(r)
	now := time.Date(2031, 1, 2, 3, 4, 5, 0, time.UTC)
	c.SetStates(map[string]int64{"ACTIVE": 3, "NEEDS_REAUTH": 1, "DEGRADED": 0}, now)
	c.SetEarliestExpiry([]time.Time{{}, now.Add(time.Hour), now.Add(-90 * time.Second), now.Add(time.Minute)}, now)
	c.CollectFailed("visibility")
	want := `# HELP tokenwarden_collect_errors_total Failed collections of tokenwarden_credentials (source visibility) or tokenwarden_earliest_expiry_seconds (source store).
# TYPE tokenwarden_collect_errors_total counter
tokenwarden_collect_errors_total{source="visibility"} 1
# HELP tokenwarden_credentials Running credential workflows by the TokenState search attribute (Temporal visibility; REFRESHING is not published).
# TYPE tokenwarden_credentials gauge
tokenwarden_credentials{state="ACTIVE"} 3
tokenwarden_credentials{state="DEGRADED"} 0
tokenwarden_credentials{state="NEEDS_REAUTH"} 1
# HELP tokenwarden_earliest_expiry_seconds Seconds until the earliest access-token expiry among the token store's credentials (negative: already expired). Absent when no stored credential has a known expiry.
# TYPE tokenwarden_earliest_expiry_seconds gauge
tokenwarden_earliest_expiry_seconds -90
# HELP tokenwarden_last_collect_timestamp_seconds Unix time of the last collection of the credential gauges that succeeded, by source.
# TYPE tokenwarden_last_collect_timestamp_seconds gauge
tokenwarden_last_collect_timestamp_seconds{source="store"} 1.925089445e+09
tokenwarden_last_collect_timestamp_seconds{source="visibility"} 1.925089445e+09
`
	// tokenwarden's families, in name order, after the collectors' go_* and process_*.
	if got := text(t, r); !strings.Contains(got, "\n"+want) {
		t.Fatalf("exposition:\n%s\nwant it to contain:\n%s", got, want)
	}
	c.SetEarliestExpiry([]time.Time{{}}, now)
	if strings.Contains(text(t, r), "\ntokenwarden_earliest_expiry_seconds ") {
		t.Fatal("earliest expiry exposed without any known expiry")
	}
}
