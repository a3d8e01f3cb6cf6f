package activities

import (
	"context"
	"fmt"
	"strings"

	"github.com/google/uuid"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"

	"github.com/tokenwarden/tokenwarden/internal/credential"
)

// Notifier delivers notifications. The worker's implementation posts webhooks to the
// targets configured in its environment.
type Notifier interface {
	Notify(ctx context.Context, n credential.Notification) error
}

// Notify delivers one notification. Failures are retried by Temporal; the workflow does
// not wait for them, so a broken webhook never holds up a refresh.
func (a *Activities) Notify(ctx context.Context, n credential.Notification) error {
	if n.ID == "" {
		n.ID = notificationID(ctx)
	}
	err := a.notify(ctx, n)
	a.recordNotification(n, err)
	return err
}

func (a *Activities) notify(ctx context.Context, n credential.Notification) error {
	if a.Notifier == nil {
		a.logger().Info("notification (no notifier configured)", "event", n.Event, "credential", n.CredentialID,
			"state", n.State, "code", n.Code)
		return nil
	}
	if err := a.Notifier.Notify(ctx, n); err != nil {
		return temporal.NewApplicationErrorWithCause(fmt.Sprintf("deliver %s notification for %s", n.Event, n.CredentialID),
			"NotifyFailed", err)
	}
	a.logger().Info("notification sent", "event", n.Event, "credential", n.CredentialID, "state", n.State, "target", n.Target)
	return nil
}

// notificationNamespace is the UUID namespace of notification IDs (notificationID).
const notificationNamespace = "dfc94e0e-7488-4ef8-bc85-ad632a9a37e0"

// notificationID is the ID of the notification this Notify activity delivers: a
// name-based (SHA-1) UUID of its workflow, run and activity IDs. Temporal keeps those
// three across the retries of one activity and gives every other activity another
// activity ID, so each notification has one ID however often its delivery is tried,
// and no two notifications share one. Nothing is stored: a retry on another worker
// derives the same ID. Outside an activity nothing retries, and a random UUID will do.
func notificationID(ctx context.Context) string {
	if !activity.IsActivity(ctx) {
		return uuid.NewString()
	}
	info := activity.GetInfo(ctx)
	name := strings.Join([]string{info.WorkflowExecution.ID, info.WorkflowExecution.RunID, info.ActivityID}, "\x00")
	return uuid.NewSHA1(uuid.MustParse(notificationNamespace), []byte(name)).String()
}
