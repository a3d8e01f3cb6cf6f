package activities

import (
	"errors"
	"time"

	"go.temporal.io/sdk/temporal"

	"github.com/tokenwarden/tokenwarden/internal/credential"
	"github.com/tokenwarden/tokenwarden/internal/metrics"
)

// recordRefresh counts a Refresh attempt by outcome and, when the provider was called
// (calledAt set), records how long the call and the commit took.
func (a *Activities) recordRefresh(providerName string, res RefreshResult, err error, calledAt time.Time) {
	if a.Metrics == nil {
		return
	}
	label := a.providerLabel(providerName)
	outcome := metrics.OutcomeCommitted
	if err != nil {
		outcome = errorOutcome(err)
	} else if res.AlreadyCommitted {
		outcome = metrics.OutcomeAlreadyCommitted
	}
	a.Metrics.Refresh(label, outcome)
	if !calledAt.IsZero() {
		a.Metrics.RefreshDuration(label, time.Since(calledAt))
	}
}

// recordProbe counts a Probe attempt: valid, rejected, no_access_token, or the error's
// outcome.
func (a *Activities) recordProbe(providerName string, res ProbeResult, err error) {
	if a.Metrics == nil {
		return
	}
	outcome := "valid"
	switch {
	case err != nil:
		outcome = errorOutcome(err)
	case res.Valid:
	case res.Code == "no_access_token":
		outcome = res.Code
	default:
		outcome = "rejected"
	}
	a.Metrics.Probe(a.providerLabel(providerName), outcome)
}

// recordNotification counts a Notify attempt: sent, logged (no notifier) or failed.
func (a *Activities) recordNotification(n credential.Notification, err error) {
	if a.Metrics == nil {
		return
	}
	event := n.Event
	switch event {
	case credential.EventIncident, credential.EventReminder, credential.EventRecovered, credential.EventRetired:
	default:
		event = "other"
	}
	outcome := "sent"
	switch {
	case err != nil:
		outcome = "failed"
	case a.Notifier == nil:
		outcome = "logged"
	}
	a.Metrics.Notification(event, outcome)
}

// providerLabel keeps the provider label to the registered names: a request naming an
// unknown provider must not create a series of its own.
func (a *Activities) providerLabel(name string) string {
	if a.Providers == nil {
		return "unknown"
	}
	if _, err := a.Providers.Lookup(name); err != nil {
		return "unknown"
	}
	return name
}

// errorOutcome names an activity error by its application error type.
func errorOutcome(err error) string {
	var appErr *temporal.ApplicationError
	if !errors.As(err, &appErr) {
		return metrics.OutcomeError
	}
	switch appErr.Type() {
	case ErrTypeTransient:
		return metrics.OutcomeTransient
	case ErrTypePermanent:
		return metrics.OutcomePermanent
	case ErrTypeInFlight:
		return metrics.OutcomeInFlight
	case ErrTypeStore:
		return metrics.OutcomeStoreError
	case ErrTypeInvalidInput:
		return metrics.OutcomeInvalidInput
	}
	return metrics.OutcomeError
}
