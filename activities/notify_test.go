package activities_test

import (
	"context"
	"errors"
	"log/slog"
	"testing"
	"time"

	"github.com/google/uuid"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"
	"go.uber.org/mock/gomock"

	"github.com/tokenwarden/tokenwarden/activities"
	"github.com/tokenwarden/tokenwarden/activities/activitiesmock"
	"github.com/tokenwarden/tokenwarden/internal/credential"
)

func event(kind string) gomock.Matcher {
	return gomock.Cond(func(n credential.Notification) bool { return n.Event == kind && n.CredentialID == credID })
}

// notifyTwice is a workflow that sends an incident and then a recovery, each through
// the Notify activity with Temporal's retries, as the credential workflow does.
func notifyTwice(ctx workflow.Context) error {
	ctx = workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: 30 * time.Second,
		RetryPolicy:         &temporal.RetryPolicy{InitialInterval: time.Second, MaximumAttempts: 3},
	})
	var a *activities.Activities
	for _, kind := range []string{credential.EventIncident, credential.EventRecovered} {
		n := credential.Notification{Event: kind, CredentialID: credID, State: "NEEDS_REAUTH"}
		if err := workflow.ExecuteActivity(ctx, a.Notify, n).Get(ctx, nil); err != nil {
			return err
		}
	}
	return nil
}

// Each notification reaches the notifier once per delivery attempt, and carries one ID
// through all of them: the retry of a failed incident has the first attempt's ID, so a
// receiver can drop a duplicate; the recovery, another notification, has its own.
func TestNotifyIDIsStableAcrossRetries(t *testing.T) {
	ctrl := gomock.NewController(t)
	notifier := activitiesmock.NewMockNotifier(ctrl)
	var ids []string
	record := func(err error) func(context.Context, credential.Notification) error {
		return func(_ context.Context, n credential.Notification) error {
			ids = append(ids, n.ID)
			return err
		}
	}
	gomock.InOrder(
		notifier.EXPECT().Notify(gomock.Any(), event(credential.EventIncident)).DoAndReturn(record(errors.New("webhook answered 502"))),
		notifier.EXPECT().Notify(gomock.Any(), event(credential.EventIncident)).DoAndReturn(record(nil)),
		notifier.EXPECT().Notify(gomock.Any(), event(credential.EventRecovered)).DoAndReturn(record(nil)),
	)

	suite := quietSuite()
	env := suite.NewTestWorkflowEnvironment()
	env.RegisterWorkflow(notifyTwice)
	env.RegisterActivity(&activities.Activities{Notifier: notifier, Logger: slog.New(slog.DiscardHandler)})
	env.ExecuteWorkflow(notifyTwice)
	if err := env.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}

	if len(ids) != 3 {
		t.Fatalf("notifier saw %d deliveries, want 3", len(ids))
	}
	for i, id := range ids {
		if u, err := uuid.Parse(id); err != nil || u.Version() != 5 {
			t.Errorf("delivery %d: ID %q is not a name-based (SHA-1) UUID", i, id)
		}
	}
	if ids[0] != ids[1] {
		t.Errorf("the retried incident has ID %s, its first attempt %s", ids[1], ids[0])
	}
	if ids[2] == ids[0] {
		t.Errorf("the recovery has the incident's ID %s", ids[2])
	}
}

// An ID the caller gives is kept.
func TestNotifyKeepsAGivenID(t *testing.T) {
	ctrl := gomock.NewController(t)
	notifier := activitiesmock.NewMockNotifier(ctrl)
	notifier.EXPECT().Notify(gomock.Any(), gomock.Cond(func(n credential.Notification) bool { return n.ID == "given" })).Return(nil)
	acts := &activities.Activities{Notifier: notifier, Logger: slog.New(slog.DiscardHandler)}
	if _, err := newActivityEnv(acts).ExecuteActivity(acts.Notify, credential.Notification{ID: "given", Event: credential.EventRetired}); err != nil {
		t.Fatal(err)
	}
}
