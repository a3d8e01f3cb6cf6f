package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"go.temporal.io/api/serviceerror"
	workflowpb "go.temporal.io/api/workflow/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"

	"github.com/tokenwarden/tokenwarden/internal/credential"
	"github.com/tokenwarden/tokenwarden/internal/provider/catalog"
	"github.com/tokenwarden/tokenwarden/workflows"
)

// maxInputBytes bounds credential and secret files: they are small by nature.
const maxInputBytes = 1 << 20

func (a *app) start(ctx context.Context, args []string) error {
	fs := a.newFlags("start", "start CREDENTIAL.json -secrets FILE|-")
	secrets := secretsFlag(fs)
	// Sealed before anything is dialled: the seed never reaches Temporal in plaintext.
	in, err := a.sealedCredential(ctx, fs, args, secrets)
	if err != nil {
		return err
	}
	c, err := a.dial(ctx)
	if err != nil {
		return err
	}
	defer c.Close()
	return a.startInput(ctx, c, in)
}

// startInput starts the workflow of a checked input whose seed is sealed (start,
// connect).
func (a *app) startInput(ctx context.Context, c client.Client, in workflows.CredentialInput) error {
	run, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{
		ID:        in.ID,
		TaskQueue: a.cfg.TaskQueue,
		// Fail, rather than hand back the running execution, if the credential exists.
		WorkflowExecutionErrorWhenAlreadyStarted: true,
		// The line the Web UI's list shows for it (workflows/metadata.go).
		StaticSummary: workflows.StaticSummary(in.Provider, in.ID),
		TypedSearchAttributes: temporal.NewSearchAttributes(
			workflows.SearchState.ValueSet(string(credential.StateSeeding)),
			workflows.SearchProvider.ValueSet(in.Provider),
		),
	}, workflows.WorkflowType, in)
	if err != nil {
		var exists *serviceerror.WorkflowExecutionAlreadyStarted
		if errors.As(err, &exists) {
			return fail(exitExists, "credential %q is already running; use reseed to hand it new grant material", in.ID)
		}
		return classifyServerError(err, "start credential %q", in.ID)
	}
	fmt.Fprintf(a.stdout, "started credential %s (provider %s, run %s)\n", in.ID, in.Provider, run.GetRunID())
	return nil
}

func (a *app) status(ctx context.Context, args []string) error {
	fs := a.newFlags("status", "status ID [-json]")
	asJSON := fs.Bool("json", false, "print the status as JSON")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		fs.Usage()
		return fail(exitBadInput, "expected one credential ID")
	}
	if err := credential.ValidateID(pos[0]); err != nil {
		return fail(exitBadInput, "%v", err)
	}
	c, err := a.dial(ctx)
	if err != nil {
		return err
	}
	defer c.Close()
	st, err := queryStatus(ctx, c, pos[0])
	if err != nil {
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(a.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(st)
	}
	printStatus(a.stdout, st, time.Now())
	return nil
}

func queryStatus(ctx context.Context, c client.Client, id string) (workflows.Status, error) {
	resp, err := c.QueryWorkflow(ctx, id, "", workflows.QueryStatus)
	if err != nil {
		return workflows.Status{}, classifyServerError(err, "query credential %q", id)
	}
	var st workflows.Status
	if err := resp.Get(&st); err != nil {
		return workflows.Status{}, fmt.Errorf("decode status of %q: %w", id, err)
	}
	return st, nil
}

func printStatus(w io.Writer, st workflows.Status, now time.Time) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	row := func(k, v string) { fmt.Fprintf(tw, "%s\t%s\n", k, v) }
	row("credential", st.ID)
	row("provider", st.Provider)
	if len(st.Labels) > 0 {
		keys := slices.Sorted(maps.Keys(st.Labels))
		pairs := make([]string, len(keys))
		for i, k := range keys {
			pairs[i] = k + "=" + st.Labels[k]
		}
		row("labels", strings.Join(pairs, " "))
	}
	row("state", fmt.Sprintf("%s since %s", st.State, when(st.StateSince, now)))
	row("store version", fmt.Sprint(st.Version))
	row("access token expires", when(st.AccessExpiresAt, now))
	row("refresh token expires", when(st.RefreshExpiresAt, now))
	row("last refresh", when(st.LastRefreshAt, now))
	row("refreshes", fmt.Sprint(st.Refreshes))
	row("next action", fmt.Sprintf("%s %s", st.NextAction, when(st.NextActionAt, now)))
	if st.ConsecutiveFailures > 0 {
		row("consecutive failures", fmt.Sprint(st.ConsecutiveFailures))
	}
	if st.LastError != "" {
		row("last error", st.LastError)
	}
	if st.State == credential.StateNeedsReauth {
		row("to fix", workflows.ReseedCommand(st.ID, st.Provider, st.Config))
	}
	_ = tw.Flush()
}

// when renders a time with its distance from now; zero reads "-".
func when(t, now time.Time) string {
	if t.IsZero() {
		return "-"
	}
	d := t.Sub(now).Round(time.Second)
	switch {
	case d > 0:
		return fmt.Sprintf("%s (in %s)", t.UTC().Format(time.RFC3339), d)
	case d < 0:
		return fmt.Sprintf("%s (%s ago)", t.UTC().Format(time.RFC3339), -d)
	}
	return t.UTC().Format(time.RFC3339) + " (now)"
}

// listed is one row of `starter list`.
type listed struct {
	ID        string    `json:"id"`
	State     string    `json:"state"`
	Provider  string    `json:"provider"`
	ExpiresAt time.Time `json:"expires_at,omitzero"`
}

func (a *app) list(ctx context.Context, args []string) error {
	fs := a.newFlags("list", "list [-state STATE] [-provider NAME] [-json]")
	state := fs.String("state", "", "only credentials in this state (ACTIVE, DEGRADED, EXPIRED, NEEDS_REAUTH, ...)")
	prov := fs.String("provider", "", "only credentials of this provider")
	asJSON := fs.Bool("json", false, "print JSON lines")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 0 {
		return fail(exitBadInput, "list takes no arguments, got %q", pos)
	}
	query := fmt.Sprintf("WorkflowType = '%s' AND ExecutionStatus = 'Running'", workflows.WorkflowType)
	if *state != "" {
		s := strings.ToUpper(*state)
		if !knownState(s) {
			return fail(exitBadInput, "-state: %q is not a state (ACTIVE, REFRESHING, DEGRADED, EXPIRED, NEEDS_REAUTH, SEEDING)", *state)
		}
		query += fmt.Sprintf(" AND TokenState = '%s'", s)
	}
	if *prov != "" {
		if !knownProvider(*prov) {
			return fail(exitBadInput, "-provider: %q is not a provider (%s)", *prov, strings.Join(catalog.Names(), ", "))
		}
		query += fmt.Sprintf(" AND TokenProvider = '%s'", *prov)
	}

	c, err := a.dial(ctx)
	if err != nil {
		return err
	}
	defer c.Close()
	var rows []listed
	err = eachExecution(ctx, c, query, func(ex *workflowpb.WorkflowExecutionInfo) {
		rows = append(rows, listedOf(ex))
	})
	if err != nil {
		return err
	}
	sort.Slice(rows, func(i, j int) bool { return rows[i].ID < rows[j].ID })

	if *asJSON {
		enc := json.NewEncoder(a.stdout)
		for _, r := range rows {
			if err := enc.Encode(r); err != nil {
				return err
			}
		}
		return nil
	}
	now := time.Now()
	tw := tabwriter.NewWriter(a.stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tSTATE\tPROVIDER\tACCESS TOKEN EXPIRES")
	counts := map[string]int{}
	for _, r := range rows {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", r.ID, r.State, r.Provider, when(r.ExpiresAt, now))
		counts[r.State]++
	}
	_ = tw.Flush()
	fmt.Fprintf(a.stdout, "\n%d credentials", len(rows))
	var states []string
	for s := range counts {
		states = append(states, s)
	}
	sort.Strings(states)
	for _, s := range states {
		fmt.Fprintf(a.stdout, ", %d %s", counts[s], s)
	}
	// Retired credentials have completed, so the running list cannot show them; count
	// them apart, like the seed scripts' "deleted" total.
	if *state == "" {
		q := fmt.Sprintf("WorkflowType = '%s' AND ExecutionStatus = 'Completed' AND TokenState = '%s'",
			workflows.WorkflowType, credential.StateRetired)
		if *prov != "" {
			q += fmt.Sprintf(" AND TokenProvider = '%s'", *prov)
		}
		if resp, err := c.CountWorkflow(ctx, &workflowservice.CountWorkflowExecutionsRequest{Query: q}); err == nil {
			fmt.Fprintf(a.stdout, "; %d RETIRED (completed)", resp.GetCount())
		}
	}
	fmt.Fprintln(a.stdout)
	return nil
}

// eachExecution pages through the visibility query's executions and hands each to fn:
// the one pager of the starter (list, cleanup and stats read visibility through it).
func eachExecution(ctx context.Context, c client.Client, query string, fn func(*workflowpb.WorkflowExecutionInfo)) error {
	var token []byte
	for {
		resp, err := c.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{Query: query, NextPageToken: token})
		if err != nil {
			return classifyServerError(err, "list credentials")
		}
		for _, ex := range resp.GetExecutions() {
			fn(ex)
		}
		if token = resp.GetNextPageToken(); len(token) == 0 {
			return nil
		}
	}
}

// listedOf reads an execution's ID and its search attributes (state, provider,
// expiry); an attribute the execution lacks stays empty.
func listedOf(ex *workflowpb.WorkflowExecutionInfo) listed {
	r := listed{ID: ex.GetExecution().GetWorkflowId()}
	fields := ex.GetSearchAttributes().GetIndexedFields()
	dc := converter.GetDefaultDataConverter()
	if p, ok := fields[workflows.SearchState.GetName()]; ok {
		_ = dc.FromPayload(p, &r.State)
	}
	if p, ok := fields[workflows.SearchProvider.GetName()]; ok {
		_ = dc.FromPayload(p, &r.Provider)
	}
	if p, ok := fields[workflows.SearchExpiresAt.GetName()]; ok {
		_ = dc.FromPayload(p, &r.ExpiresAt)
	}
	return r
}

func knownState(s string) bool {
	switch credential.State(s) {
	case credential.StateSeeding, credential.StateActive, credential.StateRefreshing, credential.StateDegraded,
		credential.StateExpired, credential.StateNeedsReauth:
		return true
	}
	return false
}

func knownProvider(p string) bool {
	for _, n := range catalog.Names() {
		if n == p {
			return true
		}
	}
	return false
}

// classifyServerError maps Temporal service errors to exit codes.
func classifyServerError(err error, format string, args ...any) error {
	what := fmt.Sprintf(format, args...)
	var notFound *serviceerror.NotFound
	var unavailable *serviceerror.Unavailable
	var deadline *serviceerror.DeadlineExceeded
	switch {
	case errors.As(err, &notFound):
		return fail(exitUnknown, "%s: no such credential (see `starter list`)", what)
	case errors.As(err, &unavailable), errors.As(err, &deadline), errors.Is(err, context.DeadlineExceeded):
		return fail(exitUnreachable, "%s: Temporal server unavailable: %v", what, err)
	}
	return fmt.Errorf("%s: %w", what, err)
}

// readJSON decodes one JSON object from path ("-" = stdin), refusing unknown fields so
// that a misspelt key is an error instead of a silently ignored setting.
func readJSON(path string, stdin io.Reader, v any) error {
	var r io.Reader
	if path == "-" {
		r = stdin
	} else {
		f, err := os.Open(path)
		if err != nil {
			return err
		}
		defer f.Close()
		r = f
	}
	data, err := io.ReadAll(io.LimitReader(r, maxInputBytes+1))
	if err != nil {
		return fmt.Errorf("read: %w", err)
	}
	if len(data) > maxInputBytes {
		return fmt.Errorf("larger than %d bytes", maxInputBytes)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("not valid JSON for this file: %s", jsonProblem(err))
	}
	if dec.More() {
		return errors.New("more than one JSON value")
	}
	return nil
}

// jsonProblem describes a decode error without quoting the input, which may be secret.
func jsonProblem(err error) string {
	var syntax *json.SyntaxError
	var typeErr *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syntax):
		return fmt.Sprintf("syntax error at byte %d", syntax.Offset)
	case errors.As(err, &typeErr):
		return fmt.Sprintf("field %q: expected %s", typeErr.Field, typeErr.Type)
	case errors.Is(err, io.EOF):
		return "empty input"
	}
	// Unknown-field and duration errors name a key or a duration, never a value of ours.
	return err.Error()
}

func displayPath(p string) string {
	if p == "-" {
		return "(standard input)"
	}
	return p
}
