package main

import (
	"strings"
	"testing"
	"time"

	enumspb "go.temporal.io/api/enums/v1"

	"github.com/tokenwarden/tokenwarden/internal/provider/catalog"
)

func TestCountStats(t *testing.T) {
	now := time.Date(2026, 2, 12, 18, 50, 0, 0, time.UTC)
	since := now.Add(-30 * 24 * time.Hour)
	inside, before := since.Add(time.Hour), since.Add(-time.Hour)
	const (
		running   = enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING
		completed = enumspb.WORKFLOW_EXECUTION_STATUS_COMPLETED
		continued = enumspb.WORKFLOW_EXECUTION_STATUS_CONTINUED_AS_NEW
		failed    = enumspb.WORKFLOW_EXECUTION_STATUS_TERMINATED
	)
	run := func(prov, state string, status enumspb.WorkflowExecutionStatus, start, end time.Time) statsRun {
		return statsRun{Provider: prov, State: state, Status: status, Start: start, Close: end}
	}
	tests := []struct {
		name string
		runs []statsRun
		want map[string]providerStats // only the rows that are not all zero
	}{
		{name: "nothing", want: map[string]providerStats{}},
		{
			name: "running states split into live, failing and seeding",
			runs: []statsRun{
				run("oauth2", "ACTIVE", running, before, time.Time{}),
				run("oauth2", "REFRESHING", running, before, time.Time{}),
				run("oauth2", "DEGRADED", running, before, time.Time{}),
				run("oauth2", "EXPIRED", running, before, time.Time{}),
				run("oauth2", "NEEDS_REAUTH", running, before, time.Time{}),
				run("oauth2", "SEEDING", running, before, time.Time{}),
				run("baoming", "ACTIVE", running, before, time.Time{}),
			},
			want: map[string]providerStats{
				"oauth2":  {Total: 6, Live: 2, Failing: 3, Seeding: 1},
				"baoming": {Total: 1, Live: 1},
			},
		},
		{
			name: "retired within the period only, and only as RETIRED",
			runs: []statsRun{
				run("baoming", "RETIRED", completed, before, inside),
				run("baoming", "RETIRED", completed, before.Add(-time.Hour), before),
				run("baoming", "NEEDS_REAUTH", failed, before, inside),
				run("baoming", "ACTIVE", completed, before, inside),
			},
			want: map[string]providerStats{"baoming": {Retired: 1}},
		},
		{
			name: "started within the period, continue-as-new is no new credential",
			runs: []statsRun{
				// Started before the period, continued-as-new inside it: not started.
				run("zalo-oa", "ACTIVE", continued, before, inside),
				run("zalo-oa", "ACTIVE", running, inside, time.Time{}),
				// Started inside, continued-as-new twice: one start.
				run("zogo", "ACTIVE", continued, inside, inside.Add(time.Hour)),
				run("zogo", "ACTIVE", continued, inside.Add(time.Hour), inside.Add(2*time.Hour)),
				run("zogo", "ACTIVE", running, inside.Add(2*time.Hour), time.Time{}),
				// Started and retired inside the period.
				run("oauth2", "RETIRED", completed, inside, inside.Add(time.Minute)),
				// Started at the very start of the period.
				run("oauth2", "SEEDING", running, since, time.Time{}),
			},
			want: map[string]providerStats{
				"zalo-oa": {Total: 1, Live: 1},
				"zogo":    {Total: 1, Live: 1, Started: 1},
				"oauth2":  {Total: 1, Seeding: 1, Retired: 1, Started: 2},
			},
		},
		{
			name: "a continuation listed without its successor never counts below zero",
			runs: []statsRun{run("zogo", "ACTIVE", continued, before, inside)},
			want: map[string]providerStats{},
		},
		{
			name: "unknown and missing providers get rows of their own, after the known ones",
			runs: []statsRun{
				run("", "", running, inside, time.Time{}),
				run("legacy", "ACTIVE", running, before, time.Time{}),
			},
			want: map[string]providerStats{
				"-":      {Total: 1, Seeding: 1, Started: 1},
				"legacy": {Total: 1, Live: 1},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rows, all := countStats(tt.runs, since)
			known := catalog.Names()
			if len(rows) < len(known) {
				t.Fatalf("%d rows, want at least one per known provider (%d)", len(rows), len(known))
			}
			var sum providerStats
			for i, r := range rows {
				if i < len(known) && r.Provider != known[i] {
					t.Errorf("row %d is %q, want %q: known providers first, in order", i, r.Provider, known[i])
				}
				want := tt.want[r.Provider]
				want.Provider = r.Provider
				if r != want {
					t.Errorf("%s: got %+v, want %+v", r.Provider, r, want)
				}
				sum.add(r)
			}
			if extra := len(rows) - len(known); extra != len(tt.want)-countKnown(tt.want) {
				t.Errorf("%d rows beyond the known providers, want %d", extra, len(tt.want)-countKnown(tt.want))
			}
			sum.Provider = "all"
			if all != sum {
				t.Errorf("all = %+v, want the sum of the rows %+v", all, sum)
			}
		})
	}
}

func countKnown(m map[string]providerStats) int {
	n := 0
	for _, p := range catalog.Names() {
		if _, ok := m[p]; ok {
			n++
		}
	}
	return n
}

func TestParsePeriod(t *testing.T) {
	for _, tt := range []struct {
		in      string
		want    time.Duration
		wantErr string
	}{
		{in: "30d", want: 30 * 24 * time.Hour},
		{in: "1d", want: 24 * time.Hour},
		{in: "36h", want: 36 * time.Hour},
		{in: "1m", want: time.Minute},
		{in: "3650d", want: 3650 * 24 * time.Hour},
		{in: "59s", wantErr: "shorter than 1m0s"},
		{in: "0d", wantErr: "shorter than 1m0s"},
		{in: "-5h", wantErr: "shorter than 1m0s"},
		{in: "3651d", wantErr: "longer than 3650d"},
		{in: "99999999999999d", wantErr: "longer than 3650d"},
		{in: "87601h", wantErr: "longer than 3650d"},
		{in: "-1d", wantErr: "is not a period"},
		{in: "1.5d", wantErr: "is not a period"},
		{in: "a month", wantErr: "is not a period"},
		{in: "", wantErr: "is not a period"},
	} {
		got, err := parsePeriod(tt.in)
		switch {
		case tt.wantErr == "" && (err != nil || got != tt.want):
			t.Errorf("parsePeriod(%q) = %s, %v; want %s", tt.in, got, err, tt.want)
		case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
			t.Errorf("parsePeriod(%q) = %s, %v; want an error with %q", tt.in, got, err, tt.wantErr)
		}
	}
	if got := formatPeriod(30 * 24 * time.Hour); got != "30d" {
		t.Errorf("formatPeriod(30 days) = %q", got)
	}
	if got := formatPeriod(36 * time.Hour); got != "36h0m0s" {
		t.Errorf("formatPeriod(36h) = %q", got)
	}
}

func TestStatsQuery(t *testing.T) {
	q := statsQuery(time.Date(2026, 1, 13, 18, 50, 0, 0, time.FixedZone("CST", 8*3600)))
	for _, want := range []string{"WorkflowType = 'CredentialWorkflow'", "ExecutionStatus = 'Running'",
		"StartTime >= '2026-01-13T10:50:00Z'", "CloseTime >= '2026-01-13T10:50:00Z'"} {
		if !strings.Contains(q, want) {
			t.Errorf("query %q lacks %q", q, want)
		}
	}
}

// TestStatsRejectsBadInput: a bad period is refused before any dial, with exit 2.
func TestStatsRejectsBadInput(t *testing.T) {
	setTemporalEnv(t)
	for _, tc := range []struct {
		name string
		args []string
		want []string
	}{
		{"below the floor", []string{"stats", "-since", "30s"}, []string{"-since", "shorter than 1m0s"}},
		{"not a period", []string{"stats", "-since", "month"}, []string{"-since", "is not a period", "30d"}},
		{"too long", []string{"stats", "-since", "20000d"}, []string{"longer than 3650d"}},
		{"positional argument", []string{"stats", "oauth2"}, []string{"takes no arguments"}},
		{"unknown flag", []string{"stats", "-provider", "oauth2"}, []string{"-provider"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := runStarter(t, "", tc.args...)
			r.check(t, exitBadInput, tc.want...)
			r.checkNoDial(t)
		})
	}
}

func TestUsageListsStats(t *testing.T) {
	setTemporalEnv(t)
	runStarter(t, "", "help").check(t, exitOK, "stats [-since D] [-json]", "default 30d")
	runStarter(t, "", "stats", "-h").check(t, exitOK, "usage: starter stats", "-since")
}
