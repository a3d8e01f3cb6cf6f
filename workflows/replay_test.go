package workflows_test

import (
	"path/filepath"
	"testing"

	"github.com/tokenwarden/tokenwarden/workflows"
)

// TestReplayRecordedHistories replays every recorded history against the workflow code
// as it is now. The workflows never end, so a change that cannot replay these would
// break credentials in flight; see "Versioning policy" in the README.
func TestReplayRecordedHistories(t *testing.T) {
	files := historyFiles(t)
	ring := testKeyring(t)
	for _, file := range files {
		t.Run(filepath.Base(file), func(t *testing.T) {
			r := newReplayer(t, ring, workflows.CredentialWorkflow)
			if err := replayFile(r, file); err != nil {
				t.Fatalf("%s does not replay against the current CredentialWorkflow: %v", file, err)
			}
		})
	}
}

// historyFiles lists the recorded histories, and fails when there are none, so that the
// replay tests cannot pass by finding nothing to replay.
func historyFiles(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(historiesDir, "*.json"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatalf("no recorded histories in %s (make record-histories records them)", historiesDir)
	}
	return files
}
