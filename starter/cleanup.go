package main

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"text/tabwriter"
	"time"

	workflowpb "go.temporal.io/api/workflow/v1"

	"github.com/tokenwarden/tokenwarden/workflows"
)

// cleanupRow is one credential that retire_after_unused will retire.
type cleanupRow struct {
	ID       string    `json:"id"`
	Provider string    `json:"provider"`
	State    string    `json:"state"`
	LastUse  time.Time `json:"last_use"`
	Deadline time.Time `json:"retire_at"`
	Due      bool      `json:"due"`
}

// cleanup lists the credentials that their workflows will retire for disuse, now or
// within -within. Retirement itself happens in each workflow at its deadline; this
// command only shows it, so it requires -dry-run to say so.
func (a *app) cleanup(ctx context.Context, args []string) error {
	fs := a.newFlags("cleanup", "cleanup -dry-run [-within 168h] [-json]")
	dryRun := fs.Bool("dry-run", false, "list what would go and why (required: each workflow retires itself)")
	within := fs.Duration("within", 7*24*time.Hour, "also list credentials whose deadline falls within this window")
	asJSON := fs.Bool("json", false, "print JSON lines")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 0 {
		return fail(exitBadInput, "cleanup takes no arguments, got %q", pos)
	}
	if !*dryRun {
		return fail(exitBadInput, "each credential's workflow retires it at its retire_after_unused deadline; "+
			"use -dry-run to see which will go, or `starter retire ID -yes` to retire one now")
	}
	if *within < 0 {
		return fail(exitBadInput, "-within: must not be negative")
	}
	c, err := a.dial(ctx)
	if err != nil {
		return err
	}
	defer c.Close()

	query := fmt.Sprintf("WorkflowType = '%s' AND ExecutionStatus = 'Running'", workflows.WorkflowType)
	var ids []string
	err = eachExecution(ctx, c, query, func(ex *workflowpb.WorkflowExecutionInfo) {
		ids = append(ids, ex.GetExecution().GetWorkflowId())
	})
	if err != nil {
		return err
	}
	sort.Strings(ids)

	now := time.Now()
	var rows []cleanupRow
	for _, id := range ids {
		st, err := queryStatus(ctx, c, id)
		if err != nil {
			fmt.Fprintf(a.stderr, "starter cleanup: skipping %s: %v\n", id, err)
			continue
		}
		deadline, ok := workflows.UnusedDeadline(st, st.Timing)
		if !ok || deadline.After(now.Add(*within)) {
			continue
		}
		rows = append(rows, cleanupRow{ID: id, Provider: st.Provider, State: string(st.State),
			LastUse: deadline.Add(-st.Timing.RetireAfterUnused.D()), Deadline: deadline, Due: !deadline.After(now)})
	}
	if *asJSON {
		enc := json.NewEncoder(a.stdout)
		for _, r := range rows {
			if err := enc.Encode(r); err != nil {
				return err
			}
		}
		return nil
	}
	tw := tabwriter.NewWriter(a.stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tPROVIDER\tSTATE\tLAST USE\tRETIRES")
	due := 0
	for _, r := range rows {
		when := "at its next check"
		if !r.Due {
			when = fmt.Sprintf("%s (in %s)", r.Deadline.UTC().Format(time.RFC3339), r.Deadline.Sub(now).Round(time.Minute))
		} else {
			due++
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", r.ID, r.Provider, r.State, r.LastUse.UTC().Format(time.RFC3339), when)
	}
	_ = tw.Flush()
	fmt.Fprintf(a.stdout, "\n%d of %d credentials unused past retire_after_unused now, %d more within %s\n",
		due, len(ids), len(rows)-due, *within)
	return nil
}
