package workflows_test

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"

	"github.com/tokenwarden/tokenwarden/activities"
	"github.com/tokenwarden/tokenwarden/internal/provider"
	"github.com/tokenwarden/tokenwarden/internal/provider/catalog"
	"github.com/tokenwarden/tokenwarden/workflows"
)

// guardChange is the change both variants below make: a short timer before the
// credential's first step. Any new command ahead of the recorded ones would do.
const guardChange = "replay-guard-timer-first"

// timerFirst is CredentialWorkflow changed incompatibly: a run in flight recorded its
// first commands without the timer, so replaying it must fail.
func timerFirst(ctx workflow.Context, in workflows.CredentialInput) (workflows.Status, error) {
	if err := workflow.Sleep(ctx, time.Second); err != nil {
		return workflows.Status{}, err
	}
	return workflows.CredentialWorkflow(ctx, in)
}

// timerFirstVersioned makes the same change behind workflow.GetVersion, as the README's
// versioning policy asks: histories recorded before it take the old path.
func timerFirstVersioned(ctx workflow.Context, in workflows.CredentialInput) (workflows.Status, error) {
	if workflow.GetVersion(ctx, guardChange, workflow.DefaultVersion, 1) == 1 {
		if err := workflow.Sleep(ctx, time.Second); err != nil {
			return workflows.Status{}, err
		}
	}
	return workflows.CredentialWorkflow(ctx, in)
}

// TestReplayGuard shows that TestReplayRecordedHistories can fail: the incompatible
// variant is refused as nondeterministic on every recorded history, and the versioned
// variant replays them all.
func TestReplayGuard(t *testing.T) {
	ring := testKeyring(t)
	for _, file := range historyFiles(t) {
		t.Run(filepath.Base(file), func(t *testing.T) {
			err := replayFile(newReplayer(t, ring, timerFirst), file)
			if !isNondeterminism(err) {
				t.Errorf("%s: the incompatible variant replayed with %v, want a nondeterminism error", file, err)
			}
			if err := replayFile(newReplayer(t, ring, timerFirstVersioned), file); err != nil {
				t.Errorf("%s: the versioned variant does not replay: %v", file, err)
			}
		})
	}
}

// TestReplayGuardVersionedVariantChanges shows that the versioned variant is not
// compatible by doing nothing: a new run takes the new path, its timer before the seed.
func TestReplayGuardVersionedVariantChanges(t *testing.T) {
	var s testsuite.WorkflowTestSuite
	env := s.NewTestWorkflowEnvironment()
	env.RegisterWorkflowWithOptions(timerFirstVersioned, workflow.RegisterOptions{Name: workflows.WorkflowType})
	var a *activities.Activities
	env.RegisterActivity(a)
	// The seed is refused, which ends the run right after its first step.
	env.OnActivity(a.Seed, mock.Anything, mock.Anything).Return(activities.SeedResult{},
		temporal.NewNonRetryableApplicationError("refused by the test", activities.ErrTypeInvalidInput, nil))
	var steps []string
	env.SetOnTimerScheduledListener(func(string, time.Duration) { steps = append(steps, "timer") })
	env.SetOnActivityStartedListener(func(info *activity.Info, _ context.Context, _ converter.EncodedValues) {
		steps = append(steps, info.ActivityType.Name)
	})
	env.SetStartWorkflowOptions(client.StartWorkflowOptions{ID: "versioned-guard", TaskQueue: workflows.TaskQueue})
	env.ExecuteWorkflow(workflows.WorkflowType, workflows.CredentialInput{
		Provider: catalog.OAuth2,
		Config:   provider.Config{TokenURL: "https://idp.example/token", ClientID: fakeClientID},
		Seed:     &workflows.SeedEnvelope{Sealed: "tw1:guard:AAAA"},
	})
	if !env.IsWorkflowCompleted() {
		t.Fatal("the run did not end")
	}
	if len(steps) < 2 || steps[0] != "timer" || steps[1] != "Seed" {
		t.Fatalf("a new run of the versioned variant took the steps %v, want the timer before Seed", steps)
	}
}

// isNondeterminism reports whether a replay failed because the code issued other
// commands than the history recorded (the SDK's TMPRL1100 errors), as opposed to, say,
// a history that could not be decoded.
func isNondeterminism(err error) bool {
	return err != nil && strings.Contains(err.Error(), "TMPRL1100")
}
