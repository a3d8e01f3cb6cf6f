package workflows_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	commonpb "go.temporal.io/api/common/v1"
	enumspb "go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/api/proxy"
	"go.temporal.io/api/temporalproto"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	sdklog "go.temporal.io/sdk/log"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/tokenwarden/tokenwarden/activities"
	"github.com/tokenwarden/tokenwarden/internal/codec"
	cred "github.com/tokenwarden/tokenwarden/internal/credential"
	"github.com/tokenwarden/tokenwarden/internal/keyring"
	"github.com/tokenwarden/tokenwarden/internal/provider"
	"github.com/tokenwarden/tokenwarden/internal/provider/baoming/baomingtest"
	"github.com/tokenwarden/tokenwarden/internal/provider/catalog"
	"github.com/tokenwarden/tokenwarden/internal/provider/oauth2/oauth2test"
	"github.com/tokenwarden/tokenwarden/internal/seal"
	"github.com/tokenwarden/tokenwarden/internal/store"
	"github.com/tokenwarden/tokenwarden/workflows"
)

// Recording runs only when asked, because it needs a real dev server and some 20 s:
//
//	make record-histories                  # re-record the newest generation
//	make record-histories HISTORY_GEN=v2   # add a generation after a versioned change
//
// Every file is called <generation>-<scenario>.json. A generation is re-recorded only
// when the change since it is compatible, which the recorder checks (see
// checkOverwrite); files of older generations are never touched.
const (
	recordEnv     = "TOKENWARDEN_RECORD_HISTORIES"  // 1: record
	generationEnv = "TOKENWARDEN_RECORD_GENERATION" // e.g. v2; empty: the newest, or v1
)

// Fake grant material. The recorded inputs carry it, encrypted under the committed test
// key, so anyone can read it; it must never look like anything else.
const (
	fakeClientID     = "replay-recorder-app"
	fakeClientSecret = "fake-client-secret-for-recorded-histories"
)

// recorder is one recording session: a private dev server, a worker in this process
// with the real activities, and a token store in a temporary directory.
type recorder struct {
	c   client.Client
	dc  converter.DataConverter
	out string // where the histories go before they replace the generation's files
	gen string
	// sealer seals seeds as the starter does; inputs holds each started credential's
	// input (ID -> workflows.CredentialInput), for sealing its reseeds.
	sealer *seal.Sealer
	inputs sync.Map
}

// scene is one scenario being recorded.
type scene struct {
	*recorder
	t   *testing.T
	ctx context.Context
}

// TestRecordHistories records histories of the current workflow code on a real dev
// server, one scenario per lifecycle path, and writes them to testdata/histories for
// TestReplayRecordedHistories. Providers are the in-repo fakes on loopback, so every
// token in them is fake.
func TestRecordHistories(t *testing.T) {
	if os.Getenv(recordEnv) != "1" {
		t.Skipf("records histories only with %s=1 (make record-histories)", recordEnv)
	}
	gen, err := generation(os.Getenv(generationEnv))
	if err != nil {
		t.Fatal(err)
	}
	existing, err := filepath.Glob(filepath.Join(historiesDir, gen+"-*.json"))
	if err != nil {
		t.Fatal(err)
	}
	ring := recordingKeyring(t)
	// An incompatible change must not replace the histories it cannot replay: find out
	// before spending the time to record.
	for _, file := range existing {
		if err := replayFile(newReplayer(t, ring, workflows.CredentialWorkflow), file); err != nil {
			t.Fatalf("%s does not replay against the current code, so the change since generation %s is "+
				"incompatible: keep its files, put the change behind workflow.GetVersion, and record a new "+
				"generation (make record-histories HISTORY_GEN=%s): %v", file, gen, nextGeneration(gen), err)
		}
	}

	started := time.Now()
	r := startRecorder(t, ring, gen)
	t.Run("scenarios", func(t *testing.T) {
		for _, sc := range []struct {
			name string
			run  func(s *scene)
		}{
			{"steady-refresh", recordSteadyRefresh},
			{"transient-failure", recordTransientFailure},
			{"needs-reauth-reseed-signal", recordReauthBySignal},
			{"needs-reauth-reseed-update", recordReauthByUpdate},
			{"probe-only-baoming", recordProbeOnly},
			{"retire-signal", recordRetireSignal},
			{"retire-unused", recordRetireUnused},
			{"continue-as-new", recordContinueAsNew},
			{"refresh-update-and-signal", recordRefreshMessages},
			{"update-policy", recordUpdatePolicy},
		} {
			t.Run(sc.name, func(t *testing.T) {
				t.Parallel()
				ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
				defer cancel()
				sc.run(&scene{recorder: r, t: t, ctx: ctx})
			})
		}
	})
	if t.Failed() {
		t.Fatalf("nothing written to %s: a scenario failed", historiesDir)
	}
	recorded, err := filepath.Glob(filepath.Join(r.out, "*.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := checkOverwrite(r.dc, gen, existing, recorded); err != nil {
		t.Fatal(err)
	}

	// Replace the generation's files only once every scenario has been recorded.
	for _, old := range existing {
		if err := os.Remove(old); err != nil {
			t.Fatal(err)
		}
	}
	var total int64
	for _, file := range recorded {
		data, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(historiesDir, filepath.Base(file)), data, 0o644); err != nil {
			t.Fatal(err)
		}
		total += int64(len(data))
	}
	t.Logf("recorded %d histories of generation %s (%d KiB) in %s", len(recorded), gen, total/1024, time.Since(started).Round(time.Second))
}

// generation is the generation to record: the one asked for, or else the newest one
// recorded, or else v1.
func generation(asked string) (string, error) {
	if asked != "" {
		if _, ok := generationNumber(asked); !ok {
			return "", fmt.Errorf("%s=%q: want a generation such as v1 or v2", generationEnv, asked)
		}
		return asked, nil
	}
	files, err := filepath.Glob(filepath.Join(historiesDir, "v*-*.json"))
	if err != nil {
		return "", err
	}
	newest := 1
	for _, f := range files {
		prefix, _, _ := strings.Cut(filepath.Base(f), "-")
		if n, ok := generationNumber(prefix); ok && n > newest {
			newest = n
		}
	}
	return fmt.Sprintf("v%d", newest), nil
}

// generationNumber reads "v3" as 3; a generation is v1, v2, ... written without zeros
// in front.
func generationNumber(gen string) (int, bool) {
	digits, ok := strings.CutPrefix(gen, "v")
	n, err := strconv.Atoi(digits)
	if !ok || err != nil || n < 1 || fmt.Sprintf("v%d", n) != gen {
		return 0, false
	}
	return n, true
}

func nextGeneration(gen string) string {
	n, _ := generationNumber(gen)
	return fmt.Sprintf("v%d", n+1)
}

// checkOverwrite allows the new recording to replace a generation's files only when the
// change since them is compatible without workflow.GetVersion. The old files replay
// (checked before recording); but a change behind GetVersion replays too, and its old
// files are then the only test of the old branch, so a recording that takes a GetVersion
// branch the old files do not know is refused.
func checkOverwrite(dc converter.DataConverter, gen string, existing, recorded []string) error {
	if len(existing) == 0 {
		return nil
	}
	before, err := changeIDs(dc, existing)
	if err != nil {
		return err
	}
	after, err := changeIDs(dc, recorded)
	if err != nil {
		return err
	}
	var added []string
	for id := range after {
		if !before[id] {
			added = append(added, id)
		}
	}
	if len(added) > 0 {
		sort.Strings(added)
		return fmt.Errorf("the new recording passes workflow.GetVersion changes that generation %s does not know (%s): "+
			"keep its files and record a new generation (make record-histories HISTORY_GEN=%s)",
			gen, strings.Join(added, ", "), nextGeneration(gen))
	}
	return nil
}

// changeIDs collects the change IDs of the GetVersion markers in the files.
func changeIDs(dc converter.DataConverter, files []string) (map[string]bool, error) {
	ids := map[string]bool{}
	for _, file := range files {
		hist, err := readHistory(file)
		if err != nil {
			return nil, err
		}
		for _, e := range hist.GetEvents() {
			m := e.GetMarkerRecordedEventAttributes()
			// The SDK's GetVersion marker: name "Version", the change ID under "change-id".
			if m.GetMarkerName() != "Version" {
				continue
			}
			var id string
			if err := dc.FromPayloads(m.GetDetails()["change-id"], &id); err != nil {
				return nil, fmt.Errorf("%s: event %d: decode a version marker: %w", file, e.GetEventId(), err)
			}
			ids[id] = true
		}
	}
	return ids, nil
}

// recordingKeyring loads the committed test key, making it the first time round. A new
// key is made only while no history exists: histories already recorded can be read
// with the key they were written with and no other.
func recordingKeyring(t *testing.T) *keyring.Keyring {
	t.Helper()
	if _, err := os.Stat(testKeyFile); errors.Is(err, os.ErrNotExist) {
		if old, _ := filepath.Glob(filepath.Join(historiesDir, "*.json")); len(old) > 0 {
			t.Fatalf("%s is missing but recorded histories exist: restore the key they were written with", testKeyFile)
		}
		if _, err := keyring.GenerateFile(testKeyFile); err != nil {
			t.Fatalf("make the test key: %v", err)
		}
	}
	return testKeyring(t)
}

// startRecorder starts the dev server (bin/temporal, as the e2e tests use it) and a
// worker with the real activities, and stops both when the test ends.
func startRecorder(t *testing.T, ring *keyring.Keyring, gen string) *recorder {
	t.Helper()
	bin := os.Getenv("TOKENWARDEN_TEST_TEMPORAL_BIN")
	if bin == "" {
		bin = filepath.Join("..", "bin", "temporal")
	}
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("the temporal CLI is missing (make bin/temporal builds it): %v", err)
	}
	dc := codec.DataConverter(ring)
	// A fixed identity: the server writes it into every task event, and a host name
	// has no business in a committed file.
	const identity = "history-recorder"
	quiet := sdklog.NewStructuredLogger(slog.New(slog.DiscardHandler))
	var serverLog strings.Builder
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	srv, err := testsuite.StartDevServer(ctx, testsuite.DevServerOptions{
		ExistingPath: bin,
		LogLevel:     "error",
		ClientOptions: &client.Options{
			Identity:         identity,
			Logger:           quiet,
			DataConverter:    dc,
			FailureConverter: codec.FailureConverter(dc),
		},
		ExtraArgs: []string{
			"--search-attribute", workflows.SearchState.GetName() + "=Keyword",
			"--search-attribute", workflows.SearchProvider.GetName() + "=Keyword",
			"--search-attribute", workflows.SearchExpiresAt.GetName() + "=Datetime",
		},
		Stdout: &serverLog,
		Stderr: &serverLog,
	})
	if err != nil {
		t.Fatalf("start the dev server: %v\n%s", err, serverLog.String())
	}
	t.Cleanup(func() { _ = srv.Stop() })

	dir := t.TempDir()
	tokens, err := store.OpenSQLite(context.Background(), filepath.Join(dir, "tokens.db"), ring, nil)
	if err != nil {
		t.Fatalf("open the token store: %v", err)
	}
	t.Cleanup(func() { _ = tokens.Close() })

	w := worker.New(srv.Client(), workflows.TaskQueue, worker.Options{Identity: identity})
	w.RegisterWorkflowWithOptions(workflows.CredentialWorkflow, workflow.RegisterOptions{Name: workflows.WorkflowType})
	sealer, err := seal.NewSealer(ring, nil)
	if err != nil {
		t.Fatal(err)
	}
	w.RegisterActivity(&activities.Activities{
		Store:     tokens,
		Providers: catalog.Registry(&http.Client{}, nil),
		Logger:    slog.New(slog.DiscardHandler),
		Seeds:     sealer,
		// The scenarios' tokens live a few seconds.
		MinAccessLifetime: time.Second,
	})
	if err := w.Start(); err != nil {
		t.Fatalf("start the worker: %v", err)
	}
	t.Cleanup(w.Stop)

	out := filepath.Join(dir, "histories")
	if err := os.Mkdir(out, 0o755); err != nil {
		t.Fatal(err)
	}
	return &recorder{c: srv.Client(), dc: dc, out: out, gen: gen, sealer: sealer}
}

func dur(d time.Duration) *workflows.Duration { v := workflows.Duration(d); return &v }

func num(n int) *int { return &n }

// fakeOAuth2 starts a fake OAuth2 provider whose access tokens live for lifetime. Each
// scenario has its own, so that the faults it injects hit only that scenario.
func fakeOAuth2(t *testing.T, lifetime time.Duration) (*oauth2test.Server, provider.Config) {
	t.Helper()
	fake := oauth2test.New(oauth2test.Options{AccessLifetime: lifetime, ClientID: fakeClientID, ClientSecret: fakeClientSecret})
	tokenURL := fake.Start()
	t.Cleanup(fake.Close)
	return fake, provider.Config{TokenURL: tokenURL, ClientID: fakeClientID}
}

// fastPolicy keeps the whole recording under a minute: refresh 1 s before expiry, retry
// after 1 s.
func fastPolicy() workflows.Policy {
	return workflows.Policy{
		RefreshMargin: dur(time.Second),
		Jitter:        dur(200 * time.Millisecond),
		RetryInitial:  dur(time.Second),
		RetryMax:      dur(5 * time.Second),
	}
}

func oauth2Input(fake *oauth2test.Server, cfg provider.Config, id string, p workflows.Policy) workflows.CredentialInput {
	return workflows.CredentialInput{
		Provider: catalog.OAuth2,
		Config:   cfg,
		Policy:   p,
		Seed:     &workflows.SeedEnvelope{Seed: workflows.Seed{RefreshToken: fake.Seed(id), ClientSecret: fakeClientSecret}},
	}
}

// start starts a credential workflow the way the starter does: the workflow ID is the
// credential ID, and no execution timeout.
func (sc *scene) start(id string, in workflows.CredentialInput) client.WorkflowRun {
	sc.t.Helper()
	sc.inputs.Store(id, in)
	if in.Seed != nil && in.Seed.Plaintext() {
		sealed := sc.sealed(id, in.Seed.Seed)
		in.Seed = &sealed
	}
	run, err := sc.c.ExecuteWorkflow(sc.ctx, client.StartWorkflowOptions{ID: id, TaskQueue: workflows.TaskQueue}, workflows.WorkflowType, in)
	if err != nil {
		sc.t.Fatalf("start %s: %v", id, err)
	}
	return run
}

// waitFor polls the status query until cond holds.
// sealed seals seed for the started credential id, as the starter does.
func (sc *scene) sealed(id string, seed workflows.Seed) workflows.SeedEnvelope {
	sc.t.Helper()
	v, ok := sc.inputs.Load(id)
	if !ok {
		sc.t.Fatalf("seal a seed for %s: not started", id)
	}
	in := v.(workflows.CredentialInput)
	env, err := sc.sealer.SealFor(seal.Request{ID: id, Provider: in.Provider, Config: in.Config, Seed: seed})
	if err != nil {
		sc.t.Fatal(err)
	}
	return env
}

func (sc *scene) waitFor(id, what string, cond func(workflows.Status) bool) workflows.Status {
	sc.t.Helper()
	var last workflows.Status
	var lastErr error
	for {
		// A fresh value each time: the status omits empty fields, and decoding into the
		// previous answer would keep them.
		var st workflows.Status
		v, err := sc.c.QueryWorkflow(sc.ctx, id, "", workflows.QueryStatus)
		if err == nil {
			err = v.Get(&st)
		}
		if lastErr = err; err == nil {
			last = st
			if cond(st) {
				return st
			}
		}
		select {
		case <-sc.ctx.Done():
			sc.t.Fatalf("%s: gave up waiting for %s (state %s, refreshes %d, probes %d, last error %q, query error %v)",
				id, what, last.State, last.Refreshes, last.Probes, last.LastError, lastErr)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func (sc *scene) signal(id, name string, arg any) {
	sc.t.Helper()
	if err := sc.c.SignalWorkflow(sc.ctx, id, "", name, arg); err != nil {
		sc.t.Fatalf("signal %s to %s: %v", name, id, err)
	}
}

func (sc *scene) update(id, name string, args ...any) (workflows.Status, error) {
	h, err := sc.c.UpdateWorkflow(sc.ctx, client.UpdateWorkflowOptions{
		WorkflowID: id, UpdateName: name, Args: args, WaitForStage: client.WorkflowUpdateStageCompleted,
	})
	if err != nil {
		return workflows.Status{}, fmt.Errorf("update %s: %w", name, err)
	}
	var st workflows.Status
	if err := h.Get(sc.ctx, &st); err != nil {
		return workflows.Status{}, fmt.Errorf("update %s result: %w", name, err)
	}
	return st, nil
}

// save writes the history of one run as <gen>-<name>.json once it is settled: the
// workflow's last task completed (or the run closed), so that the file ends where a
// worker would pick it up. It refuses a history with a plaintext payload.
func (sc *scene) save(name, id, runID string) {
	sc.t.Helper()
	var hist *historypb.History
	for {
		var err error
		hist, err = sc.history(sc.ctx, id, runID)
		if err != nil {
			sc.t.Fatalf("%s: read history: %v", id, err)
		}
		if settled(hist) {
			break
		}
		select {
		case <-sc.ctx.Done():
			sc.t.Fatalf("%s: the history never settled (%d events)", id, len(hist.GetEvents()))
		case <-time.After(100 * time.Millisecond):
		}
	}
	if err := checkEncrypted(sc.ctx, hist); err != nil {
		sc.t.Fatalf("%s: %v", id, err)
	}
	data, err := marshalHistory(hist)
	if err != nil {
		sc.t.Fatalf("%s: %v", id, err)
	}
	file := sc.gen + "-" + name + ".json"
	path := filepath.Join(sc.out, file)
	if err := os.WriteFile(path, data, 0o644); err != nil {
		sc.t.Fatal(err)
	}
	if back, err := readHistory(path); err != nil || len(back.GetEvents()) != len(hist.GetEvents()) {
		sc.t.Fatalf("%s: the written history does not read back whole (%v)", file, err)
	}
	events := hist.GetEvents()
	sc.t.Logf("%s: %d events, %d KiB, last event %s", file, len(events), len(data)/1024, events[len(events)-1].GetEventType())
}

// marshalHistory writes the JSON form of history.History that client.HistoryFromJSON
// reads (and `temporal workflow show --output json` writes), one event a line: the
// files stay small and still diff event by event.
func marshalHistory(hist *historypb.History) ([]byte, error) {
	var b bytes.Buffer
	b.WriteString("{\"events\": [\n")
	events := hist.GetEvents()
	for i, e := range events {
		line, err := temporalproto.CustomJSONMarshalOptions{}.Marshal(e)
		if err != nil {
			return nil, fmt.Errorf("marshal event %d: %w", e.GetEventId(), err)
		}
		b.Write(line)
		if i < len(events)-1 {
			b.WriteByte(',')
		}
		b.WriteByte('\n')
	}
	b.WriteString("]}\n")
	return b.Bytes(), nil
}

func (r *recorder) history(ctx context.Context, id, runID string) (*historypb.History, error) {
	it := r.c.GetWorkflowHistory(ctx, id, runID, false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	hist := &historypb.History{}
	for it.HasNext() {
		e, err := it.Next()
		if err != nil {
			return nil, err
		}
		hist.Events = append(hist.Events, e)
	}
	return hist, nil
}

// settled reports whether a history has no workflow task scheduled or running: the run
// closed, or its last workflow task completed.
func settled(hist *historypb.History) bool {
	events := hist.GetEvents()
	for i := len(events) - 1; i >= 0; i-- {
		switch events[i].GetEventType() {
		case enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED,
			enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW,
			enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_FAILED,
			enumspb.EVENT_TYPE_WORKFLOW_TASK_COMPLETED:
			return true
		case enumspb.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED,
			enumspb.EVENT_TYPE_WORKFLOW_TASK_STARTED,
			enumspb.EVENT_TYPE_WORKFLOW_TASK_FAILED,
			enumspb.EVENT_TYPE_WORKFLOW_TASK_TIMED_OUT:
			return false
		}
	}
	return false
}

// checkEncrypted fails on any payload the codec did not encrypt. Search attributes are
// the exception: the server indexes them, so they are plaintext by design and hold no
// secret.
func checkEncrypted(ctx context.Context, hist *historypb.History) error {
	var plain int
	err := proxy.VisitPayloads(ctx, hist, proxy.VisitPayloadsOptions{
		SkipSearchAttributes: true,
		Visitor: func(_ *proxy.VisitPayloadsContext, ps []*commonpb.Payload) ([]*commonpb.Payload, error) {
			for _, p := range ps {
				if !codec.IsEncrypted(p) {
					plain++
				}
			}
			return ps, nil
		},
	})
	if err != nil {
		return fmt.Errorf("visit payloads: %w", err)
	}
	if plain > 0 {
		return fmt.Errorf("%d payloads in the history are not encrypted", plain)
	}
	return nil
}

// recordSteadyRefresh: seed, then several ordinary refresh cycles.
func recordSteadyRefresh(sc *scene) {
	const id = "steady-refresh"
	fake, cfg := fakeOAuth2(sc.t, 3*time.Second)
	run := sc.start(id, oauth2Input(fake, cfg, id, fastPolicy()))
	sc.waitFor(id, "four refreshes", func(s workflows.Status) bool {
		return s.Refreshes >= 4 && s.State == cred.StateActive
	})
	sc.save(id, id, run.GetRunID())
}

// recordTransientFailure: a refresh round whose every attempt gets a 503 leaves the
// credential DEGRADED (an incident, since notify_after_failures is 1); the retry
// succeeds and the credential recovers. The round is asked for by refresh-now while the
// access token has an hour to live, so that it fails long before the token expires
// (which would make it EXPIRED instead).
func recordTransientFailure(sc *scene) {
	const id = "transient-failure"
	fake, cfg := fakeOAuth2(sc.t, time.Hour)
	p := fastPolicy()
	p.RetryInitial = dur(2 * time.Second)
	p.NotifyAfterFailures = num(1)
	run := sc.start(id, oauth2Input(fake, cfg, id, p))
	sc.waitFor(id, "the refresh after the seed", func(s workflows.Status) bool {
		return s.Refreshes == 1 && s.State == cred.StateActive
	})
	// Four attempts make one failed round (providerActivityOptions' MaximumAttempts).
	fake.InjectFault(oauth2test.Fault{Kind: oauth2test.FaultStatus, Status: http.StatusServiceUnavailable, Count: 4})
	sc.signal(id, workflows.SignalRefreshNow, nil)
	sc.waitFor(id, "DEGRADED after a failed round", func(s workflows.Status) bool {
		return s.State == cred.StateDegraded && s.ConsecutiveFailures == 1 && s.Incident != nil
	})
	sc.waitFor(id, "ACTIVE again after the retry", func(s workflows.Status) bool {
		return s.State == cred.StateActive && s.ConsecutiveFailures == 0 && s.Incident == nil && s.Refreshes == 2
	})
	sc.save(id, id, run.GetRunID())
}

// parkByRevocation refreshes once, then revokes the grant at the provider: the next
// refresh is refused with invalid_grant and the credential parks in NEEDS_REAUTH.
func parkByRevocation(sc *scene, id string, fake *oauth2test.Server) {
	sc.t.Helper()
	sc.waitFor(id, "a first refresh", func(s workflows.Status) bool {
		return s.Refreshes >= 1 && s.State == cred.StateActive
	})
	fake.RevokeFamily(id)
	sc.waitFor(id, "NEEDS_REAUTH after the revocation", func(s workflows.Status) bool {
		return s.State == cred.StateNeedsReauth
	})
}

// recordReauthBySignal: NEEDS_REAUTH, a reminder, a refresh update the validator
// refuses (it leaves no event), an ignored refresh-now, then a reseed signal.
func recordReauthBySignal(sc *scene) {
	const id = "needs-reauth-reseed-signal"
	fake, cfg := fakeOAuth2(sc.t, 3*time.Second)
	p := fastPolicy()
	p.ReminderInterval = dur(2 * time.Second)
	run := sc.start(id, oauth2Input(fake, cfg, id, p))
	parkByRevocation(sc, id, fake)
	sc.waitFor(id, "a reminder of the incident", func(s workflows.Status) bool {
		return s.Incident != nil && s.Incident.Reminders >= 1
	})
	if _, err := sc.update(id, workflows.UpdateRefresh); err == nil {
		sc.t.Fatal("the refresh update was accepted while the credential needs a reseed")
	}
	sc.signal(id, workflows.SignalRefreshNow, nil)
	sc.signal(id, workflows.SignalReseed, sc.sealed(id, workflows.Seed{RefreshToken: fake.Seed(id)}))
	sc.waitFor(id, "ACTIVE after the reseed and its refresh", func(s workflows.Status) bool {
		return s.State == cred.StateActive && s.Incident == nil && s.Refreshes >= 2
	})
	sc.save(id, id, run.GetRunID())
}

// recordReauthByUpdate: NEEDS_REAUTH, then a reseed update that answers once the
// refresh after the seed has run.
func recordReauthByUpdate(sc *scene) {
	const id = "needs-reauth-reseed-update"
	fake, cfg := fakeOAuth2(sc.t, 3*time.Second)
	run := sc.start(id, oauth2Input(fake, cfg, id, fastPolicy()))
	parkByRevocation(sc, id, fake)
	st, err := sc.update(id, workflows.UpdateReseed, sc.sealed(id, workflows.Seed{RefreshToken: fake.Seed(id)}))
	if err != nil {
		sc.t.Fatal(err)
	}
	if st.State != cred.StateActive || st.Refreshes < 2 {
		sc.t.Fatalf("the reseed update answered state %s after %d refreshes, want ACTIVE after 2", st.State, st.Refreshes)
	}
	sc.waitFor(id, "another refresh", func(s workflows.Status) bool {
		return s.State == cred.StateActive && s.Refreshes > st.Refreshes
	})
	sc.save(id, id, run.GetRunID())
}

// recordProbeOnly: a baoming credential (no refresh endpoint) probes; a round of 503s
// degrades it, a dead token parks it, and a reseed signal with a new token revives it.
func recordProbeOnly(sc *scene) {
	const id = "probe-only-baoming"
	fake := baomingtest.New()
	base := fake.Start()
	sc.t.Cleanup(fake.Close)
	first := fake.Issue()
	eid := baomingtest.NewEnrollID()
	fake.Enroll(first, eid)
	run := sc.start(id, workflows.CredentialInput{
		Provider: catalog.Baoming,
		Config:   provider.Config{BaseURL: base, EnrollID: eid},
		Policy:   workflows.Policy{ProbeInterval: dur(time.Second), RetryInitial: dur(2 * time.Second), RetryMax: dur(4 * time.Second)},
		Seed:     &workflows.SeedEnvelope{Seed: workflows.Seed{AccessToken: first}},
	})
	sc.waitFor(id, "two probes", func(s workflows.Status) bool { return s.Probes >= 2 })
	fake.FailNext(4)
	sc.waitFor(id, "DEGRADED after a failed probe round", func(s workflows.Status) bool {
		return s.State == cred.StateDegraded
	})
	st := sc.waitFor(id, "ACTIVE after the next probe", func(s workflows.Status) bool {
		return s.State == cred.StateActive && s.ConsecutiveFailures == 0
	})
	fake.Invalidate(first)
	sc.waitFor(id, "NEEDS_REAUTH after the token died", func(s workflows.Status) bool {
		return s.State == cred.StateNeedsReauth
	})
	sc.signal(id, workflows.SignalReseed, sc.sealed(id, workflows.Seed{AccessToken: fake.Reissue(first)}))
	sc.waitFor(id, "ACTIVE and probing the new token", func(s workflows.Status) bool {
		return s.State == cred.StateActive && s.Probes >= st.Probes+2
	})
	sc.save(id, id, run.GetRunID())
}

// recordRetireSignal: the retire signal deletes the secrets and completes the workflow.
func recordRetireSignal(sc *scene) {
	const id = "retire-signal"
	fake, cfg := fakeOAuth2(sc.t, 3*time.Second)
	run := sc.start(id, oauth2Input(fake, cfg, id, fastPolicy()))
	sc.waitFor(id, "two refreshes", func(s workflows.Status) bool {
		return s.Refreshes >= 2 && s.State == cred.StateActive
	})
	sc.signal(id, workflows.SignalRetire, nil)
	var st workflows.Status
	if err := run.Get(sc.ctx, &st); err != nil {
		sc.t.Fatalf("the retired workflow ended with %v", err)
	}
	if st.State != cred.StateRetired {
		sc.t.Fatalf("the retired workflow returned state %s", st.State)
	}
	sc.save(id, id, run.GetRunID())
}

// recordRetireUnused: a probe-only credential nobody reads is retired by its usage
// check once retire_after_unused has passed.
func recordRetireUnused(sc *scene) {
	const id = "retire-unused"
	fake := baomingtest.New()
	base := fake.Start()
	sc.t.Cleanup(fake.Close)
	token := fake.Issue()
	eid := baomingtest.NewEnrollID()
	fake.Enroll(token, eid)
	run := sc.start(id, workflows.CredentialInput{
		Provider: catalog.Baoming,
		Config:   provider.Config{BaseURL: base, EnrollID: eid},
		Policy:   workflows.Policy{ProbeInterval: dur(2 * time.Second), RetireAfterUnused: dur(5 * time.Second)},
		Seed:     &workflows.SeedEnvelope{Seed: workflows.Seed{AccessToken: token}},
	})
	var st workflows.Status
	if err := run.Get(sc.ctx, &st); err != nil {
		sc.t.Fatalf("the unused credential's workflow ended with %v", err)
	}
	if st.State != cred.StateRetired || st.LastErrorCode != "unused" {
		sc.t.Fatalf("the unused credential ended in state %s (code %q), want RETIRED (unused)", st.State, st.LastErrorCode)
	}
	sc.save(id, id, run.GetRunID())
}

// recordContinueAsNew: a history_event_limit of 40 (validate.go only refuses a
// negative one) makes the run continue as new after a few cycles. Both runs are kept:
// the first ends in ContinuedAsNew, the second starts from the carried status.
func recordContinueAsNew(sc *scene) {
	const id = "continue-as-new"
	fake, cfg := fakeOAuth2(sc.t, 3*time.Second)
	in := oauth2Input(fake, cfg, id, fastPolicy())
	in.HistoryEventLimit = 40
	run := sc.start(id, in)
	st := sc.waitFor(id, "the second run", func(s workflows.Status) bool { return s.Runs >= 2 })
	first, err := sc.history(sc.ctx, id, run.GetRunID())
	if err != nil {
		sc.t.Fatal(err)
	}
	events := first.GetEvents()
	second := events[len(events)-1].GetWorkflowExecutionContinuedAsNewEventAttributes().GetNewExecutionRunId()
	if second == "" {
		sc.t.Fatalf("the first run did not end in continue-as-new (last event %s)", events[len(events)-1].GetEventType())
	}
	sc.waitFor(id, "a refresh in the second run", func(s workflows.Status) bool {
		return s.Runs >= 2 && s.Refreshes > st.Refreshes && s.State == cred.StateActive
	})
	sc.save(id+"-run1", id, run.GetRunID())
	sc.save(id+"-run2", id, second)
}

// recordRefreshMessages: with an hour-long token nothing is due; a refresh-now signal
// and a refresh update each make a refresh happen now.
func recordRefreshMessages(sc *scene) {
	const id = "refresh-update-and-signal"
	fake, cfg := fakeOAuth2(sc.t, time.Hour)
	run := sc.start(id, oauth2Input(fake, cfg, id, fastPolicy()))
	sc.waitFor(id, "the refresh after the seed", func(s workflows.Status) bool {
		return s.Refreshes == 1 && s.State == cred.StateActive
	})
	sc.signal(id, workflows.SignalRefreshNow, nil)
	sc.waitFor(id, "the refresh asked for by signal", func(s workflows.Status) bool {
		return s.Refreshes == 2 && s.State == cred.StateActive
	})
	st, err := sc.update(id, workflows.UpdateRefresh)
	if err != nil {
		sc.t.Fatal(err)
	}
	if st.Refreshes != 3 || st.State != cred.StateActive {
		sc.t.Fatalf("the refresh update answered state %s after %d refreshes, want ACTIVE after 3", st.State, st.Refreshes)
	}
	sc.save(id, id, run.GetRunID())
}

// recordUpdatePolicy: update-policy signals, two rejected (not a policy; retry_max
// shorter than retry_initial) and one that turns on probes by introspection.
func recordUpdatePolicy(sc *scene) {
	const id = "update-policy"
	fake, cfg := fakeOAuth2(sc.t, time.Hour)
	cfg.IntrospectionURL = fake.IntrospectionURL()
	run := sc.start(id, oauth2Input(fake, cfg, id, fastPolicy()))
	sc.waitFor(id, "the refresh after the seed", func(s workflows.Status) bool {
		return s.Refreshes == 1 && s.State == cred.StateActive
	})
	sc.signal(id, workflows.SignalUpdatePolicy, "not a policy")
	sc.waitFor(id, "the malformed policy rejected", func(s workflows.Status) bool {
		return strings.Contains(s.LastError, "payload is not a policy object")
	})
	sc.signal(id, workflows.SignalUpdatePolicy, workflows.Policy{RetryInitial: dur(time.Minute), RetryMax: dur(time.Second)})
	sc.waitFor(id, "the inconsistent policy rejected", func(s workflows.Status) bool {
		return strings.Contains(s.LastError, "retry_max")
	})
	p := fastPolicy()
	p.ProbeInterval = dur(time.Second)
	sc.signal(id, workflows.SignalUpdatePolicy, p)
	sc.waitFor(id, "probes under the new policy", func(s workflows.Status) bool {
		return s.Probes >= 2 && s.State == cred.StateActive
	})
	sc.save(id, id, run.GetRunID())
}
