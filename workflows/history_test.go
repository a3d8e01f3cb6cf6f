package workflows_test

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"testing"

	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/sdk/client"
	sdklog "go.temporal.io/sdk/log"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/tokenwarden/tokenwarden/internal/codec"
	"github.com/tokenwarden/tokenwarden/internal/keyring"
	"github.com/tokenwarden/tokenwarden/workflows"
)

// The recorded histories (record_test.go writes them, `make record-histories`) and the
// key their payloads are encrypted with. The key is a test key, made by
// keyring.GenerateFile for these files alone: it protects nothing but fake tokens, and
// no worker, starter or other test loads it.
const (
	historiesDir = "testdata/histories"
	testKeyFile  = "testdata/TEST-ONLY-history-key.json"
)

// testKeyring loads the test key. keyring.LoadFile refuses a key file that group or
// others may read, and a checkout gives the committed file the mode of any other file,
// so it loads a private copy.
func testKeyring(t *testing.T) *keyring.Keyring {
	t.Helper()
	data, err := os.ReadFile(testKeyFile)
	if err != nil {
		t.Fatalf("read the test key: %v", err)
	}
	private := filepath.Join(t.TempDir(), "keys.json")
	if err := os.WriteFile(private, data, 0o600); err != nil {
		t.Fatal(err)
	}
	ring, err := keyring.LoadFile(private)
	if err != nil {
		t.Fatalf("load the test key: %v", err)
	}
	return ring
}

// newReplayer returns a replayer that decodes payloads as the worker does (the codec's
// data and failure converters) and runs wf under the workflow type's registered name.
func newReplayer(t *testing.T, ring *keyring.Keyring, wf any) worker.WorkflowReplayer {
	t.Helper()
	dc := codec.DataConverter(ring)
	r, err := worker.NewWorkflowReplayerWithOptions(worker.WorkflowReplayerOptions{
		DataConverter:    dc,
		FailureConverter: codec.FailureConverter(dc),
	})
	if err != nil {
		t.Fatalf("new replayer: %v", err)
	}
	r.RegisterWorkflowWithOptions(wf, workflow.RegisterOptions{Name: workflows.WorkflowType})
	return r
}

// replayFile replays one recorded history. It hands the replayer the recorded workflow
// ID: the workflow takes its credential ID from it, and the replayer would otherwise
// make one up.
func replayFile(r worker.WorkflowReplayer, file string) error {
	hist, err := readHistory(file)
	if err != nil {
		return err
	}
	started := hist.GetEvents()[0].GetWorkflowExecutionStartedEventAttributes()
	if started.GetWorkflowId() == "" {
		return errors.New("the first event is not a WorkflowExecutionStarted that names its workflow ID")
	}
	logger := sdklog.NewStructuredLogger(slog.New(slog.DiscardHandler))
	return r.ReplayWorkflowHistoryWithOptions(logger, hist, worker.ReplayWorkflowHistoryOptions{
		OriginalExecution: workflow.Execution{ID: started.GetWorkflowId()},
	})
}

// readHistory reads a history in the JSON form that `temporal workflow show --output
// json` and record_test.go write.
func readHistory(file string) (*historypb.History, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("read history: %w", err)
	}
	hist, err := client.HistoryFromJSON(bytes.NewReader(data), client.HistoryJSONOptions{})
	if err != nil {
		return nil, fmt.Errorf("parse history %s: %w", file, err)
	}
	if len(hist.GetEvents()) == 0 {
		return nil, fmt.Errorf("history %s has no events", file)
	}
	return hist, nil
}
