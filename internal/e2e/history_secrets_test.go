package e2e

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	commonpb "go.temporal.io/api/common/v1"
	enumspb "go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/api/proxy"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/tokenwarden/tokenwarden/internal/codec"
	"github.com/tokenwarden/tokenwarden/internal/credential"
	"github.com/tokenwarden/tokenwarden/internal/provider"
	"github.com/tokenwarden/tokenwarden/internal/provider/oauth2/oauth2test"
	"github.com/tokenwarden/tokenwarden/internal/seal"
	"github.com/tokenwarden/tokenwarden/internal/testnet"
	"github.com/tokenwarden/tokenwarden/workflows"
)

// Temporal's history is readable by everyone with Web UI access, so no secret
// may reach it in plaintext. These tests run a credential through its whole life and
// then read every event of every run back through the raw gRPC WorkflowService (no data
// converter, no codec: what the server stores and the Web UI shows) looking for every
// secret the test has seen, raw and base64-encoded.

// historyEventLimit forces continue-as-new after two or three refresh cycles.
const historyEventLimit = 30

// TestHistoryHoldsNoSecrets: start with the seed through the starter (key file), a
// reseed signal through the temporal CLI (codec endpoint), a reseed update through the
// starter without the key file (codec endpoint), timer-driven refreshes across
// continue-as-new, and a revoked grant parking the credential in NEEDS_REAUTH.
func TestHistoryHoldsNoSecrets(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	rec := &tokenRecorder{seen: map[string]bool{}}
	fake, tokenURL := startRecordedFake(t, rec, 3*time.Second)
	e.startWorker()
	const id = "e2e-history-secrets"
	cliTerminateAtEnd(t, id)

	cred := credentialFile(id, tokenURL)
	cred["history_event_limit"] = historyEventLimit
	credPath := e.writeJSON("cred.json", cred)
	seed0 := fake.Seed(id)
	rec.add(seed0)
	e.cliStarterOK(fmt.Sprintf(`{"refresh_token":%q,"client_secret":%q}`, seed0, clientSecret), "start", credPath, "-secrets", "-")
	st := waitForStatus(t, id, 60*time.Second, "three refreshes", func(s workflows.Status) bool { return s.Refreshes >= 3 })

	// The reseed signal, as the README's recipe has it: sealed by the starter, sent by
	// the temporal CLI from a file.
	seed1 := fake.Seed(id)
	rec.add(seed1)
	sealedPath := filepath.Join(t.TempDir(), "reseed.json")
	sealedSeed := e.cliStarterOK(fmt.Sprintf(`{"refresh_token":%q}`, seed1), "seal", credPath, "-secrets", "-", "-seed-only")
	if err := os.WriteFile(sealedPath, []byte(sealedSeed), 0o600); err != nil {
		t.Fatal(err)
	}
	runTemporal(t, "workflow", "signal", "--workflow-id", id, "--name", workflows.SignalReseed, "--input-file", sealedPath)
	st = waitForStatus(t, id, 30*time.Second, "a refresh after the reseed signal", func(s workflows.Status) bool {
		return s.Refreshes > st.Refreshes && s.State == credential.StateActive
	})

	// The reseed update, from a starter that cannot read the key file: it seals through
	// the worker's sealing endpoint and encrypts through its codec endpoint.
	seed2 := fake.Seed(id)
	rec.add(seed2)
	noKey := "TOKENWARDEN_KEY_FILE=" + filepath.Join(t.TempDir(), "absent", "keys.json")
	code, out := e.runStarterEnv([]string{noKey}, fmt.Sprintf(`{"refresh_token":%q,"client_secret":%q}`, seed2, clientSecret),
		"reseed", id, "-secrets", "-")
	if code != 0 {
		t.Fatalf("starter reseed through the codec endpoint exited %d:\n%s", code, out)
	}
	before := st.Refreshes
	waitForStatus(t, id, 60*time.Second, "three more refreshes and a continue-as-new", func(s workflows.Status) bool {
		return s.Refreshes >= before+3 && len(runsOf(t, id)) >= 2
	})

	fake.RevokeFamily(id)
	st = waitForStatus(t, id, 30*time.Second, "NEEDS_REAUTH after the grant was revoked", func(s workflows.Status) bool {
		return s.State == credential.StateNeedsReauth
	})

	secrets := rec.secrets()
	secrets = appendUnique(secrets, clientSecret)
	runs := runsOf(t, id)
	scan := scanHistories(t, id, runs, secrets, "http://"+e.httpAddr+codec.PathPrefix)
	t.Logf("%d refreshes, state %s; %d runs, %d history events, %d payloads (%d encrypted, %d decoded through the codec endpoint, %d sealed seeds among them) checked against %d secrets (%d refresh tokens and access tokens seen at the provider, the client secret) in %d forms each",
		st.Refreshes, st.State, len(runs), scan.events, scan.payloads, scan.encrypted, scan.decoded, scan.sealed, len(secrets), len(secrets)-1, len(needles(clientSecret)))
	for _, f := range scan.findings {
		t.Errorf("secret in history: %s", f)
	}
	if len(runs) < 2 {
		t.Errorf("%d runs, want a continue-as-new (history_event_limit %d)", len(runs), historyEventLimit)
	}
	if scan.plaintext > 0 {
		t.Errorf("%d payloads in history are not encrypted: %v", scan.plaintext, scan.plainKinds)
	}
	if scan.encrypted == 0 || scan.decoded != scan.encrypted || len(secrets) < 10 {
		t.Errorf("the check saw %d encrypted payloads (%d decoded) and %d secrets: too few to mean anything", scan.encrypted, scan.decoded, len(secrets))
	}
	// Without the bearer token the endpoint decodes nothing.
	first := runs[len(runs)-1]
	noToken := converter.NewRemotePayloadCodec(converter.RemotePayloadCodecOptions{Endpoint: "http://" + e.httpAddr + codec.PathPrefix})
	if _, err := noToken.Decode(first.started.GetInput().GetPayloads()); err == nil || !strings.Contains(err.Error(), "Unauthorized") {
		t.Errorf("decode without the bearer token: %v, want 401 Unauthorized", err)
	}
	// The start input, the reseed signal, the reseed update and their Seed activities.
	if scan.sealed < 6 {
		t.Errorf("%d payloads decoded to a sealed seed, want at least 6", scan.sealed)
	}

	// Not vacuous: the start input decodes to a sealed seed that the worker's seed key
	// (and only it) opens to the seed.
	var in workflows.CredentialInput
	if err := codec.DataConverter(stack.ring).FromPayloads(first.started.GetInput(), &in); err != nil || in.Seed == nil || in.Seed.Plaintext() {
		t.Fatalf("the first run's input does not decrypt to a sealed seed (err %v)", err)
	}
	sealer, err := seal.NewSealer(stack.ring, nil)
	if err != nil {
		t.Fatal(err)
	}
	opened, err := sealer.Open(*in.Seed, id, string(provider.BindingOf(in.Provider, in.Config)))
	if err != nil || opened.Seed.RefreshToken != seed0 {
		t.Errorf("the sealed seed of the first run does not open to the seed (err %v)", err)
	}
}

// TestPlaintextSeedRefused: a credential started by a client without the starter and
// without the codec (the temporal CLI without --codec-endpoint behaves the same) carries
// its seed in plaintext in the start event. The worker refuses to store it, saying what
// happened and what to do; the history check finds the seed where the client put it,
// which shows the check is not vacuous; and everything the worker wrote itself is
// still encrypted.
func TestPlaintextSeedRefused(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	rec := &tokenRecorder{seen: map[string]bool{}}
	fake, tokenURL := startRecordedFake(t, rec, cliAccessLifetime)
	e.startWorker()
	const id = "e2e-history-plaintext"

	plain, err := client.NewClientFromExisting(stack.client, client.Options{
		Namespace:     "default",
		DataConverter: converter.GetDefaultDataConverter(),
		Logger:        quietLogger(),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	seed := fake.Seed(id)
	rec.add(seed)
	in := workflows.CredentialInput{
		Provider: "oauth2",
		Config:   provider.Config{TokenURL: tokenURL, ClientID: clientID},
		Seed:     &workflows.SeedEnvelope{Seed: workflows.Seed{RefreshToken: seed, ClientSecret: clientSecret}},
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	wr, err := plain.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: id, TaskQueue: e.taskQueue}, workflows.WorkflowType, in)
	if err != nil {
		t.Fatal(err)
	}
	cliTerminateAtEnd(t, id)
	runErr := wr.Get(ctx, nil)
	if runErr == nil || !strings.Contains(runErr.Error(), "plaintext") || !strings.Contains(runErr.Error(), "rotate it at the provider") {
		t.Fatalf("the workflow's outcome %v does not refuse the plaintext seed", runErr)
	}
	tokens := e.openStore()
	defer tokens.Close()
	if _, err := tokens.Get(ctx, id); err == nil {
		t.Error("the refused plaintext seed was stored")
	}
	if got := fake.Presentations(seed); got != 0 {
		t.Errorf("the refused seed was presented %d times", got)
	}

	secrets := appendUnique(rec.secrets(), clientSecret)
	scan := scanHistories(t, id, runsOf(t, id), secrets, "")
	t.Logf("without the codec: %d events, %d payloads (%d encrypted, %d not); %d findings:\n%s",
		scan.events, scan.payloads, scan.encrypted, scan.plaintext, len(scan.findings), strings.Join(scan.findings, "\n"))
	var seedFound, secretFound bool
	for _, f := range scan.findings {
		seedFound = seedFound || strings.Contains(f, oauth2test.Fingerprint(seed))
		secretFound = secretFound || strings.Contains(f, oauth2test.Fingerprint(clientSecret))
	}
	if !seedFound || !secretFound {
		t.Errorf("the check missed the plaintext seed (refresh token found: %v, client secret found: %v)", seedFound, secretFound)
	}
	if scan.plaintext == 0 {
		t.Error("no plaintext payload counted, though the start input was sent without the codec")
	}
	for _, f := range scan.findings {
		if !strings.Contains(f, enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED.String()) {
			t.Errorf("leak outside the client-written start event: %s", f)
		}
	}
}

// TestNeedleEncodings checks the matcher itself: a secret inside base64 of a longer
// blob, at every alignment and in both alphabets, is found.
func TestNeedleEncodings(t *testing.T) {
	const secret = "rt_0123456789abcdefghij?>?>"
	for pad := 0; pad < 3; pad++ {
		blob := append(bytes.Repeat([]byte{0xfb}, pad+5), []byte(secret)...)
		blob = append(blob, 0xff, 0x01)
		for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.URLEncoding, base64.RawStdEncoding, base64.RawURLEncoding} {
			if where := match([]byte(enc.EncodeToString(blob)), needles(secret)); where == "" {
				t.Errorf("secret at offset %d not found in base64", pad+5)
			}
		}
		if match(blob, needles(secret)) == "" {
			t.Errorf("raw secret not found")
		}
	}
	if match([]byte(base64.StdEncoding.EncodeToString([]byte("unrelated bytes, nothing to see here"))), needles(secret)) != "" {
		t.Error("false positive")
	}
}

// TestStarterRefusesWithoutCodec: no readable key file and no usable sealing endpoint:
// the starter cannot seal the seed, exits 2 and starts nothing.
func TestStarterRefusesWithoutCodec(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	const id = "e2e-no-codec"
	cred := e.writeJSON("cred.json", credentialFile(id, "http://127.0.0.1:9/token"))
	secrets := `{"refresh_token":"rt_never-sent","client_secret":"never-sent"}`
	noKey := "TOKENWARDEN_KEY_FILE=" + filepath.Join(t.TempDir(), "absent.json")

	code, out := e.runStarterEnv([]string{noKey, "TOKENWARDEN_SEAL_ENDPOINT="}, secrets, "start", cred, "-secrets", "-")
	if code != 2 || !strings.Contains(out, "refusing to send it in plaintext") {
		t.Errorf("starter without key file and sealing endpoint exited %d, want 2 refusing:\n%s", code, out)
	}
	code, out = e.runStarterEnv([]string{noKey, "TOKENWARDEN_SEAL_ENDPOINT=http://" + testnet.FreeAddr(t) + "/seal"}, secrets, "start", cred, "-secrets", "-")
	if code != 2 || !strings.Contains(out, "cannot seal the seed") {
		t.Errorf("starter with a dead sealing endpoint exited %d, want 2:\n%s", code, out)
	}
	if strings.Contains(out, "never-sent") {
		t.Errorf("the starter's refusal shows the secret:\n%s", out)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := stack.client.DescribeWorkflow(ctx, id, ""); err == nil {
		t.Errorf("a workflow %s exists: the starter sent something", id)
	}
}

// ---------------------------------------------------------------------------------------
// Collecting secrets.

// tokenRecorder collects every token that crosses the fake provider's token endpoint.
type tokenRecorder struct {
	mu   sync.Mutex
	seen map[string]bool
}

func (r *tokenRecorder) add(s string) {
	if s == "" {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.seen[s] = true
}

func (r *tokenRecorder) secrets() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]string, 0, len(r.seen))
	for s := range r.seen {
		out = append(out, s)
	}
	sort.Strings(out)
	return out
}

// startRecordedFake serves a fake provider behind a recorder that notes every refresh
// token and client secret presented and every access and refresh token issued.
func startRecordedFake(t *testing.T, rec *tokenRecorder, lifetime time.Duration) (*oauth2test.Server, string) {
	t.Helper()
	fake := oauth2test.New(oauth2test.Options{AccessLifetime: lifetime, ClientID: clientID, ClientSecret: clientSecret})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		r.Body = io.NopCloser(bytes.NewReader(body))
		if form, err := url.ParseQuery(string(body)); err == nil {
			for _, k := range []string{"refresh_token", "client_secret", "token"} {
				rec.add(form.Get(k))
			}
		}
		if _, pw, ok := r.BasicAuth(); ok {
			if dec, err := url.QueryUnescape(pw); err == nil {
				rec.add(dec)
			}
		}
		cw := &captureWriter{ResponseWriter: w}
		fake.ServeHTTP(cw, r)
		var resp struct {
			AccessToken  string `json:"access_token"`
			RefreshToken string `json:"refresh_token"`
		}
		if json.Unmarshal(cw.body.Bytes(), &resp) == nil {
			rec.add(resp.AccessToken)
			rec.add(resp.RefreshToken)
		}
	}))
	t.Cleanup(func() {
		fake.Close()
		srv.Close()
	})
	return fake, srv.URL + oauth2test.TokenPath
}

type captureWriter struct {
	http.ResponseWriter
	body bytes.Buffer
}

func (c *captureWriter) Write(p []byte) (int, error) {
	c.body.Write(p)
	return c.ResponseWriter.Write(p)
}

func appendUnique(list []string, s string) []string {
	for _, x := range list {
		if x == s {
			return list
		}
	}
	return append(list, s)
}

// ---------------------------------------------------------------------------------------
// Reading history raw.

// run is one run of a workflow, newest first in runsOf's answer.
type run struct {
	runID   string
	started *historypb.WorkflowExecutionStartedEventAttributes
}

// runsOf follows the chain of runs back from the current one (each run's start event
// names the run it continued), newest first. It needs no visibility query, which could
// lag behind.
func runsOf(t *testing.T, id string) []run {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	desc, err := stack.client.DescribeWorkflow(ctx, id, "")
	if err != nil {
		t.Fatalf("describe %s: %v", id, err)
	}
	var runs []run
	for runID := desc.RawResponse.GetWorkflowExecutionInfo().GetExecution().GetRunId(); runID != ""; {
		resp, err := stack.client.WorkflowService().GetWorkflowExecutionHistory(ctx, &workflowservice.GetWorkflowExecutionHistoryRequest{
			Namespace:       "default",
			Execution:       &commonpb.WorkflowExecution{WorkflowId: id, RunId: runID},
			MaximumPageSize: 1,
		})
		if err != nil {
			t.Fatalf("history of %s run %s: %v", id, runID, err)
		}
		started := resp.GetHistory().GetEvents()[0].GetWorkflowExecutionStartedEventAttributes()
		runs = append(runs, run{runID: runID, started: started})
		runID = started.GetContinuedExecutionRunId()
	}
	return runs
}

type scanResult struct {
	events, payloads, encrypted, plaintext int
	// decoded counts encrypted payloads decoded through the codec endpoint, sealed
	// those that decoded to a sealed seed.
	decoded, sealed int
	plainKinds      map[string]int
	findings        []string
}

// scanHistories reads every event of every run through the raw WorkflowService and
// looks for every secret in: each event's binary protobuf encoding (strings of failure
// messages, memo, search attributes, identities, raw payload bytes), its protojson
// encoding (byte fields in base64) and each payload's data and metadata, visited one by
// one, search attributes included; each in raw and base64 (standard and URL) forms.
// With codecURL, every encrypted payload is also decoded through that codec endpoint,
// as the Web UI and the temporal CLI decode it, and what it answers is checked too.
func scanHistories(t *testing.T, id string, runs []run, secrets []string, codecURL string) scanResult {
	t.Helper()
	var remote converter.PayloadCodec
	if codecURL != "" {
		remote = converter.NewRemotePayloadCodec(converter.RemotePayloadCodecOptions{Endpoint: codecURL,
			ModifyRequest: func(r *http.Request) error { r.Header.Set("Authorization", "Bearer "+codecToken); return nil }})
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	res := scanResult{plainKinds: map[string]int{}}
	type needle struct {
		fp    string
		forms [][]byte
	}
	var all []needle
	for _, s := range secrets {
		all = append(all, needle{fp: oauth2test.Fingerprint(s), forms: needles(s)})
	}
	check := func(where string, blob []byte) {
		for _, n := range all {
			if form := match(blob, n.forms); form != "" {
				res.findings = append(res.findings, fmt.Sprintf("%s: secret %s (%s)", where, n.fp, form))
			}
		}
	}
	for _, r := range runs {
		var token []byte
		for {
			resp, err := stack.client.WorkflowService().GetWorkflowExecutionHistory(ctx, &workflowservice.GetWorkflowExecutionHistoryRequest{
				Namespace:     "default",
				Execution:     &commonpb.WorkflowExecution{WorkflowId: id, RunId: r.runID},
				NextPageToken: token,
			})
			if err != nil {
				t.Fatalf("history of %s run %s: %v", id, r.runID, err)
			}
			for _, ev := range resp.GetHistory().GetEvents() {
				res.events++
				where := fmt.Sprintf("run %s event %d %s", r.runID, ev.GetEventId(), ev.GetEventType())
				bin, err := proto.Marshal(ev)
				if err != nil {
					t.Fatal(err)
				}
				check(where+" (protobuf)", bin)
				js, err := protojson.Marshal(ev)
				if err != nil {
					t.Fatal(err)
				}
				check(where+" (JSON)", js)
				err = proxy.VisitPayloads(ctx, ev, proxy.VisitPayloadsOptions{
					Visitor: func(vpc *proxy.VisitPayloadsContext, ps []*commonpb.Payload) ([]*commonpb.Payload, error) {
						for _, p := range ps {
							res.payloads++
							parent := fmt.Sprintf("%T", vpc.Parent)
							switch {
							case codec.IsEncrypted(p):
								res.encrypted++
								if remote != nil {
									decoded, err := remote.Decode([]*commonpb.Payload{p})
									if err != nil {
										t.Fatalf("%s: decode through the codec endpoint: %v", where, err)
									}
									res.decoded++
									if bytes.Contains(decoded[0].GetData(), []byte(`"sealed":"`+seal.Prefix)) {
										res.sealed++
									}
									check(where+" payload decoded by the codec endpoint", decoded[0].GetData())
								}
							case isSearchAttributes(vpc.Parent):
								// Indexed by the server, so never encrypted; checked for secrets below.
							default:
								res.plaintext++
								res.plainKinds[ev.GetEventType().String()+" "+parent]++
							}
							check(where+" payload in "+parent, p.GetData())
							for k, v := range p.GetMetadata() {
								check(where+" payload metadata "+k, v)
							}
						}
						return ps, nil
					},
				})
				if err != nil {
					t.Fatalf("visit payloads: %v", err)
				}
			}
			token = resp.GetNextPageToken()
			if len(token) == 0 {
				break
			}
		}
	}
	return res
}

func isSearchAttributes(m proto.Message) bool {
	_, ok := m.(*commonpb.SearchAttributes)
	return ok
}

// needles is every form of secret the scan looks for: raw, and base64 in the standard
// and URL alphabets at each of the three byte alignments it can have inside a longer
// encoded blob (the characters that also depend on neighbouring bytes are cut off).
func needles(secret string) [][]byte {
	forms := [][]byte{[]byte(secret)}
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.URLEncoding} {
		for pad := 0; pad < 3; pad++ {
			s := enc.EncodeToString(append(make([]byte, pad), secret...))
			skip := []int{0, 2, 3}[pad]
			forms = append(forms, []byte(s[skip:len(s)-4]))
		}
	}
	return forms
}

// match reports which form of a secret occurs in blob, or "".
func match(blob []byte, forms [][]byte) string {
	for i, f := range forms {
		if len(f) > 0 && bytes.Contains(blob, f) {
			if i == 0 {
				return "raw"
			}
			return fmt.Sprintf("base64 form %d", i)
		}
	}
	return ""
}
