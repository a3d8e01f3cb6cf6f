package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	workflowpb "go.temporal.io/api/workflow/v1"

	"github.com/tokenwarden/tokenwarden/internal/credential"
	"github.com/tokenwarden/tokenwarden/internal/provider/catalog"
	"github.com/tokenwarden/tokenwarden/workflows"
)

// The period of `starter stats`. Below a minute the figures say nothing: visibility
// records close times to the second and lags behind the workflows. The ceiling keeps a
// count of days from overflowing a time.Duration.
const (
	defaultStatsPeriod = 30 * 24 * time.Hour
	minStatsPeriod     = time.Minute
	maxStatsDays       = 3650
	maxStatsPeriod     = maxStatsDays * 24 * time.Hour
)

// statsPeriod is the -since flag: a Go duration ("36h") or whole days ("30d").
type statsPeriod time.Duration

func (p *statsPeriod) String() string { return formatPeriod(time.Duration(*p)) }

func (p *statsPeriod) Set(s string) error {
	d, err := parsePeriod(s)
	if err != nil {
		return err
	}
	*p = statsPeriod(d)
	return nil
}

// parsePeriod reads a period and holds it to [minStatsPeriod, maxStatsPeriod].
func parsePeriod(s string) (time.Duration, error) {
	var d time.Duration
	if days, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.Atoi(days)
		if err != nil || n < 0 {
			return 0, fmt.Errorf("%q is not a period: write whole days (30d) or a Go duration (36h, 90m)", s)
		}
		if n > maxStatsDays {
			return 0, fmt.Errorf("%q is longer than %dd", s, maxStatsDays)
		}
		d = time.Duration(n) * 24 * time.Hour
	} else {
		var err error
		if d, err = time.ParseDuration(s); err != nil {
			return 0, fmt.Errorf("%q is not a period: write whole days (30d) or a Go duration (36h, 90m)", s)
		}
	}
	switch {
	case d < minStatsPeriod:
		return 0, fmt.Errorf("%q is shorter than %s, the shortest period", s, minStatsPeriod)
	case d > maxStatsPeriod:
		return 0, fmt.Errorf("%q is longer than %dd", s, maxStatsDays)
	}
	return d, nil
}

// formatPeriod writes whole days as "30d", anything else as a Go duration.
func formatPeriod(d time.Duration) string {
	if d > 0 && d%(24*time.Hour) == 0 {
		return fmt.Sprintf("%dd", d/(24*time.Hour))
	}
	return d.String()
}

// statsRun is what stats reads of one run of a credential's workflow.
type statsRun struct {
	Provider string
	State    string
	Status   enumspb.WorkflowExecutionStatus
	Start    time.Time
	Close    time.Time // zero while running
}

// providerStats is one row of `starter stats`: the figures of the baoming scripts'
// report (total, live, failed, deleted), for one provider.
type providerStats struct {
	Provider string `json:"provider"`
	// Total counts the running credentials, now; Live, Failing and Seeding split them.
	Total   int `json:"total"`
	Live    int `json:"live"`
	Failing int `json:"failing"`
	Seeding int `json:"seeding"`
	// Retired counts the workflows that completed as RETIRED within the period, Started
	// the credentials started within it (runs that continued-as-new do not count).
	Retired int `json:"retired"`
	Started int `json:"started"`
}

func (s *providerStats) add(o providerStats) {
	s.Total += o.Total
	s.Live += o.Live
	s.Failing += o.Failing
	s.Seeding += o.Seeding
	s.Retired += o.Retired
	s.Started += o.Started
}

// countStats sums runs per provider: every known provider in order, then any other
// name the runs carry, then the sum of all. A run that continued-as-new within the
// period started its successor at that moment, so the fresh starts are the runs
// started within the period less those continuations: visibility keeps no first-run
// ID to tell them apart directly.
func countStats(runs []statsRun, since time.Time) (rows []providerStats, all providerStats) {
	by := map[string]*providerStats{}
	names := catalog.Names()
	for _, n := range names {
		by[n] = &providerStats{Provider: n}
	}
	continued := map[string]int{}
	for _, r := range runs {
		name := r.Provider
		if name == "" {
			name = "-" // started without search attributes and not yet reported
		}
		s, ok := by[name]
		if !ok {
			s = &providerStats{Provider: name}
			by[name] = s
			names = append(names, name)
		}
		closedInPeriod := !r.Close.IsZero() && !r.Close.Before(since)
		switch r.Status {
		case enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING:
			s.Total++
			switch credential.State(r.State) {
			case credential.StateActive, credential.StateRefreshing:
				s.Live++
			case credential.StateDegraded, credential.StateExpired, credential.StateNeedsReauth:
				s.Failing++
			case credential.StateSeeding, "":
				s.Seeding++
			}
		case enumspb.WORKFLOW_EXECUTION_STATUS_COMPLETED:
			if closedInPeriod && credential.State(r.State) == credential.StateRetired {
				s.Retired++
			}
		case enumspb.WORKFLOW_EXECUTION_STATUS_CONTINUED_AS_NEW:
			if closedInPeriod {
				continued[name]++
			}
		}
		if !r.Start.Before(since) {
			s.Started++
		}
	}
	slices.Sort(names[len(catalog.Names()):])
	all.Provider = "all"
	for _, n := range names {
		s := by[n]
		// Visibility may list a continuation before its successor: never below zero.
		s.Started = max(s.Started-continued[n], 0)
		rows = append(rows, *s)
		all.add(*s)
	}
	return rows, all
}

// statsQuery selects the runs countStats needs: every running one, and those started
// or closed within the period.
func statsQuery(since time.Time) string {
	t := since.UTC().Format(time.RFC3339Nano)
	return fmt.Sprintf("WorkflowType = '%s' AND (ExecutionStatus = 'Running' OR StartTime >= '%s' OR CloseTime >= '%s')",
		workflows.WorkflowType, t, t)
}

func statsRunOf(ex *workflowpb.WorkflowExecutionInfo) statsRun {
	l := listedOf(ex)
	r := statsRun{Provider: l.Provider, State: l.State, Status: ex.GetStatus()}
	if ex.GetStartTime() != nil {
		r.Start = ex.GetStartTime().AsTime()
	}
	if ex.GetCloseTime() != nil {
		r.Close = ex.GetCloseTime().AsTime()
	}
	return r
}

// statsReport is the -json output.
type statsReport struct {
	Since     time.Time       `json:"since"`
	Until     time.Time       `json:"until"`
	Period    string          `json:"period"`
	Providers []providerStats `json:"providers"`
	All       providerStats   `json:"all"`
}

func (a *app) stats(ctx context.Context, args []string) error {
	fs := a.newFlags("stats", "stats [-since 30d] [-json]")
	period := statsPeriod(defaultStatsPeriod)
	fs.Var(&period, "since", fmt.Sprintf("the period `D` that retired and started count: whole days (30d) or a Go duration (36h), %s to %dd",
		minStatsPeriod, maxStatsDays))
	asJSON := fs.Bool("json", false, "print one JSON object")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 0 {
		return fail(exitBadInput, "stats takes no arguments, got %q", pos)
	}
	c, err := a.dial(ctx)
	if err != nil {
		return err
	}
	defer c.Close()

	now := time.Now().UTC()
	since := now.Add(-time.Duration(period))
	var runs []statsRun
	err = eachExecution(ctx, c, statsQuery(since), func(ex *workflowpb.WorkflowExecutionInfo) {
		runs = append(runs, statsRunOf(ex))
	})
	if err != nil {
		return err
	}
	rep := statsReport{Since: since, Until: now, Period: period.String()}
	rep.Providers, rep.All = countStats(runs, since)
	if *asJSON {
		enc := json.NewEncoder(a.stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(rep); err != nil {
			return fmt.Errorf("write stats: %w", err)
		}
		return nil
	}
	if err := printStats(a.stdout, rep); err != nil {
		return fmt.Errorf("write stats: %w", err)
	}
	return nil
}

func printStats(w io.Writer, rep statsReport) error {
	fmt.Fprintf(w, "credentials now; retired and started within the last %s (since %s)\n\n",
		rep.Period, rep.Since.Format(time.RFC3339))
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "PROVIDER\tTOTAL\tLIVE\tFAILING\tSEEDING\tRETIRED\tSTARTED")
	for _, s := range append(rep.Providers, rep.All) {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%d\t%d\n", s.Provider, s.Total, s.Live, s.Failing, s.Seeding, s.Retired, s.Started)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	_, err := fmt.Fprintln(w, "\ntotal: running; live: ACTIVE, REFRESHING; failing: DEGRADED, EXPIRED, NEEDS_REAUTH; "+
		"retired: completed as RETIRED; started: new credentials (not continue-as-new)")
	return err
}
