package e2e

import (
	"bytes"
	"compress/zlib"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	commonpb "go.temporal.io/api/common/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/tokenwarden/tokenwarden/internal/codec"
	"github.com/tokenwarden/tokenwarden/internal/credential"
	"github.com/tokenwarden/tokenwarden/internal/provider"
	"github.com/tokenwarden/tokenwarden/workflows"
)

// Hijacking a credential, as a namespace writer would try it against a real dev server and worker:
// every attempt to point a victim credential's stored secrets at an endpoint of the
// attacker's fails before anything is sent there. The attacker's listener counts every
// request it receives; it must end at 0.
func TestHijackAttempts(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	fake, _ := startProvider(t, time.Minute)
	e.startWorker()
	var hits atomic.Int64
	evil := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"access_token":"evil","token_type":"bearer","expires_in":3600,"active":true}`))
	}))
	t.Cleanup(evil.Close)

	const victim = "e2e-hijack-victim"
	e.startCredential(stack.client, testCredential{id: victim, fake: fake})
	waitForStatus(t, victim, 30*time.Second, "the victim ACTIVE after its first refresh", func(s workflows.Status) bool {
		return s.State == credential.StateActive && s.Refreshes >= 1
	})
	victimInput := firstInput(t, victim)

	start := func(id string, in workflows.CredentialInput) error {
		t.Helper()
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_ = stack.client.TerminateWorkflow(ctx, id, "", "test finished")
		})
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		run, err := stack.client.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: id, TaskQueue: e.taskQueue}, workflows.WorkflowType, in)
		if err != nil {
			t.Fatalf("start %s: %v", id, err)
		}
		return run.Get(ctx, nil)
	}
	refused := func(what string, err error, want string) {
		t.Helper()
		var appErr *temporal.ApplicationError
		if err == nil || !errors.As(err, &appErr) || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: outcome %v, want a refusal saying %q", what, err, want)
		}
	}
	evilCfg := provider.Config{TokenURL: evil.URL + "/token", ClientID: "x", AuthStyle: "header"}

	// 1. A new workflow whose input carries the victim's ID in "carried".
	err := start("evil-1", workflows.CredentialInput{Provider: "oauth2", Config: evilCfg,
		Carried: &workflows.Status{ID: victim, Provider: "oauth2", State: credential.StateActive, Version: 1000000}})
	refused("carried state from a workflow start", err, "carried: accepted only from a continue-as-new")

	// 2. The victim's own sealed seed, copied from its history, in a new workflow.
	err = start("evil-2", workflows.CredentialInput{Provider: "oauth2", Config: evilCfg, Seed: victimInput.Seed})
	refused("the victim's sealed seed in another workflow", err, "does not open")

	// 3. The victim terminated and started again under its own ID with the attacker's
	// token URL, with carried state and with the copied seal.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := stack.client.TerminateWorkflow(ctx, victim, "", "attacker"); err != nil {
		t.Fatal(err)
	}
	err = start(victim, workflows.CredentialInput{Provider: "oauth2", Config: evilCfg,
		Carried: &workflows.Status{ID: victim, Provider: "oauth2", State: credential.StateActive, Version: 1000000}})
	refused("carried state after terminate", err, "carried: accepted only from a continue-as-new")
	err = start(victim, workflows.CredentialInput{Provider: "oauth2", Config: evilCfg, Seed: victimInput.Seed})
	refused("the copied seal with a changed token URL", err, "does not open")

	// 4. A chathub-operator whose parent is the victim and whose base URL is the
	// attacker's, even sealed by a key holder: the parent is not a chathub-company.
	opIn := workflows.CredentialInput{Provider: "chathub-operator",
		Config: provider.Config{BaseURL: evil.URL, OperatorID: "7", Parent: victim},
		Policy: workflows.Policy{RetryInitial: dur(time.Second), RetryMax: dur(2 * time.Second)}}
	opIn.Seed = sealedSeed(t, "evil-op", opIn, workflows.Seed{})
	go func() { _ = start("evil-op", opIn) }()
	st := waitForStatus(t, "evil-op", 30*time.Second, "the operator parked", func(s workflows.Status) bool {
		return s.State == credential.StateNeedsReauth
	})
	if st.LastErrorCode != "parent_mismatch" {
		t.Errorf("operator with a foreign parent: code %q (%s), want parent_mismatch", st.LastErrorCode, st.LastError)
	}

	// 5. The copied seal under the victim's ID and configuration: the store holds that
	// very seal already, so the new run writes nothing and presents nothing twice.
	go func() { _ = start(victim, victimInput) }()
	st = waitForStatus(t, victim, 30*time.Second, "the victim running again on its stored grant", func(s workflows.Status) bool {
		return s.State == credential.StateActive && s.Version >= 2
	})
	if got := fake.ReuseDetections(); got != 0 {
		t.Errorf("the provider detected %d reused refresh tokens", got)
	}

	if n := hits.Load(); n != 0 {
		t.Errorf("the attacker's endpoint received %d requests", n)
	}
}

// firstInput decodes the start input of a credential's current run.
func firstInput(t *testing.T, id string) workflows.CredentialInput {
	t.Helper()
	runs := runsOf(t, id)
	var in workflows.CredentialInput
	if err := codec.DataConverter(stack.ring).FromPayloads(runs[len(runs)-1].started.GetInput(), &in); err != nil || in.Seed == nil || in.Seed.Sealed == "" {
		t.Fatalf("the first run of %s has no sealed seed in its input (%v)", id, err)
	}
	return in
}

func dur(d time.Duration) *workflows.Duration { v := workflows.Duration(d); return &v }

// TestCodecDecodeBomb posts a zlib bomb (64 KiB that inflate to 64 MiB) to the real
// worker's /codec/decode, bare and inside an encrypted payload: the bare one comes back
// as it went (never inflated), the encrypted one is refused at the 4 MiB cap, both at
// once, and the worker keeps serving.
func TestCodecDecodeBomb(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.startWorker()
	var zipped bytes.Buffer
	zw := zlib.NewWriter(&zipped)
	zeros := make([]byte, 1<<20)
	for range 64 {
		_, _ = zw.Write(zeros)
	}
	_ = zw.Close()
	bomb := &commonpb.Payload{Metadata: map[string][]byte{converter.MetadataEncoding: []byte("binary/zlib")}, Data: zipped.Bytes()}
	// Older histories compressed the marshalled payload, then encrypted it: the bomb in
	// that shape is a zlib payload whose data inflates to a 64 MiB payload.
	huge, err := proto.Marshal(&commonpb.Payload{Metadata: map[string][]byte{converter.MetadataEncoding: []byte("json/plain")},
		Data: make([]byte, 64<<20)})
	if err != nil {
		t.Fatal(err)
	}
	sealedBomb, err := codec.New(stack.ring).Encode([]*commonpb.Payload{{
		Metadata: map[string][]byte{converter.MetadataEncoding: []byte("binary/zlib")}, Data: zlibOf(t, huge)}})
	if err != nil {
		t.Fatal(err)
	}
	post := func(p *commonpb.Payload) (int, []byte, time.Duration) {
		t.Helper()
		body, err := protojson.Marshal(&commonpb.Payloads{Payloads: []*commonpb.Payload{p}})
		if err != nil {
			t.Fatal(err)
		}
		req, _ := http.NewRequest(http.MethodPost, "http://"+e.httpAddr+codec.DecodePath, bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+codecToken)
		began := time.Now()
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		out, _ := io.ReadAll(io.LimitReader(res.Body, 8<<20))
		return res.StatusCode, out, time.Since(began)
	}
	code, out, took := post(bomb)
	t.Logf("bare bomb (%d bytes compressed): HTTP %d, %d bytes back, %s", zipped.Len(), code, len(out), took)
	if code != http.StatusOK || len(out) > 1<<20 {
		t.Errorf("bare bomb: HTTP %d with %d bytes, want 200 with the payload as it was", code, len(out))
	}
	code, out, took = post(sealedBomb[0])
	t.Logf("encrypted bomb: HTTP %d, %s: %s", code, took, bytes.TrimSpace(out))
	if code == http.StatusOK || !strings.Contains(string(out), "4 MiB") {
		t.Errorf("encrypted bomb: HTTP %d %s, want a refusal naming the 4 MiB cap", code, out)
	}
	res, err := http.Get("http://" + e.httpAddr + codec.HealthPath)
	if err != nil || res.StatusCode != http.StatusOK {
		t.Fatalf("the worker stopped serving after the bombs: %v", err)
	}
	res.Body.Close()
}

func zlibOf(t *testing.T, data []byte) []byte {
	t.Helper()
	var b bytes.Buffer
	zw := zlib.NewWriter(&b)
	if _, err := zw.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}
