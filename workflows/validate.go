package workflows

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"unicode"

	"github.com/tokenwarden/tokenwarden/activities"
	// Named cred as in types.go.
	cred "github.com/tokenwarden/tokenwarden/internal/credential"
	"github.com/tokenwarden/tokenwarden/internal/provider"
	"github.com/tokenwarden/tokenwarden/internal/provider/catalog"
)

// Validate checks a workflow input before anything is started or stored. The starter
// runs the same check, so bad input is refused before it reaches the server. Every
// error names the offending field.
func (in CredentialInput) Validate(workflowID string) error {
	return in.validate(workflowID, currentRules)
}

// validate is Validate under the rules a run started with (inputRules): a rule added
// later must not fail, on replay, an input that a run in flight already accepted.
func (in CredentialInput) validate(workflowID string, rules inputRules) error {
	var errs []error
	if in.ID != "" && workflowID != "" && in.ID != workflowID {
		errs = append(errs, fmt.Errorf("id: %q differs from the workflow ID %q", in.ID, workflowID))
	}
	id := in.ID
	if id == "" {
		id = workflowID
	}
	if err := cred.ValidateID(id); err != nil {
		errs = append(errs, err)
	}
	switch {
	case in.Provider == "":
		errs = append(errs, fmt.Errorf("provider: required (one of %s)", strings.Join(catalog.Names(), ", ")))
	case rules.strictConfig():
		if err := catalog.ValidateConfig(in.Provider, in.Config); err != nil {
			errs = append(errs, err)
		}
	case !slices.Contains(catalog.Names(), in.Provider):
		errs = append(errs, fmt.Errorf("provider: unknown %q (one of %s)", in.Provider, strings.Join(catalog.Names(), ", ")))
	}
	if in.Config.Parent != "" {
		if err := cred.ValidateID(in.Config.Parent); err != nil {
			errs = append(errs, fmt.Errorf("config.parent: %w", err))
		} else if in.Config.Parent == id {
			errs = append(errs, errors.New("config.parent: a credential cannot be its own parent"))
		}
	}
	errs = append(errs, in.Policy.validate(rules))
	if in.Policy.ProbeInterval != nil && in.Provider != "" && !catalog.CanProbe(in.Provider, in.Config) {
		errs = append(errs, fmt.Errorf("policy.probe_interval: provider %q cannot probe tokens as configured "+
			"(for oauth2 set config.introspection_url or config.userinfo_url)", in.Provider))
	}
	if in.Carried == nil {
		switch {
		case in.Seed == nil:
			errs = append(errs, errors.New(`seed: required to start a credential (a sealed seed, {"sealed":"tw1:..."}, made by "starter seal")`))
		case in.Seed.Plaintext():
			// Refused by the Seed activity unless the worker allows it; checked here so
			// that the starter and a development worker report bad material early.
			errs = append(errs, in.Seed.Check(), ValidateSeed(in.Provider, in.Config, in.Seed.Seed))
		default:
			errs = append(errs, in.Seed.Check())
		}
	}
	errs = append(errs, activities.CheckSinks(in.Sinks), checkLabels(in.Labels))
	switch {
	case in.HistoryEventLimit < 0:
		errs = append(errs, errors.New("history_event_limit: must not be negative"))
	case rules.safeDefaults() && in.HistoryEventLimit > 0 && in.HistoryEventLimit < MinEventLimit:
		errs = append(errs, fmt.Errorf("history_event_limit: %d is below the floor of %d (a run continues as new after this many events, "+
			"and needs about a dozen to start and twelve per refresh); leave it out for the default %d", in.HistoryEventLimit, MinEventLimit, DefaultEventLimit))
	}
	return errors.Join(errs...)
}

// Validate checks that set durations are at least MinPolicyDuration and that the
// backoff bounds agree.
func (p Policy) Validate() error { return p.validate(currentRules) }

func (p Policy) validate(rules inputRules) error {
	var errs []error
	check := func(name string, d *Duration) {
		switch {
		case d == nil:
		case *d <= 0:
			errs = append(errs, fmt.Errorf("policy.%s: must be positive, got %s (leave it out for the default)", name, d.D()))
		case rules.safeDefaults() && d.D() < MinPolicyDuration:
			errs = append(errs, fmt.Errorf("policy.%s: %s is below the floor of %s (leave it out for the default)", name, d.D(), MinPolicyDuration))
		}
	}
	check("refresh_margin", p.RefreshMargin)
	check("assumed_lifetime", p.AssumedLifetime)
	check("retry_initial", p.RetryInitial)
	check("retry_max", p.RetryMax)
	check("probe_interval", p.ProbeInterval)
	check("reminder_interval", p.ReminderInterval)
	check("probe_interval_idle", p.ProbeIntervalIdle)
	switch p.OnInvalid {
	case "", OnInvalidReauth, OnInvalidRetire:
	default:
		errs = append(errs, fmt.Errorf("policy.on_invalid: %q is not %q or %q", p.OnInvalid, OnInvalidReauth, OnInvalidRetire))
	}
	if r := p.RetireAfterUnused; r != nil {
		switch {
		case *r < 0:
			errs = append(errs, fmt.Errorf("policy.retire_after_unused: must not be negative, got %s (0s: never)", r.D()))
		case rules.safeDefaults() && *r > 0 && r.D() < MinPolicyDuration:
			errs = append(errs, fmt.Errorf("policy.retire_after_unused: %s is below the floor of %s (0s: never)", r.D(), MinPolicyDuration))
		}
	}
	if p.NotifyAfterFailures != nil && *p.NotifyAfterFailures < 1 {
		errs = append(errs, fmt.Errorf("policy.notify_after_failures: must be at least 1, got %d", *p.NotifyAfterFailures))
	}
	if p.NotifyTarget != "" {
		if err := cred.ValidateID(p.NotifyTarget); err != nil {
			errs = append(errs, fmt.Errorf("policy.notify_target: %w", err))
		}
	}
	if p.Jitter != nil && *p.Jitter < 0 {
		errs = append(errs, fmt.Errorf("policy.jitter: must not be negative, got %s", p.Jitter.D()))
	}
	if len(errs) == 0 {
		t := p.resolve(false, rules)
		if t.RetryMax < t.RetryInitial {
			errs = append(errs, fmt.Errorf("policy.retry_max: %s is shorter than retry_initial %s", t.RetryMax.D(), t.RetryInitial.D()))
		}
	}
	return errors.Join(errs...)
}

// ValidateSeed checks plaintext grant material from a start or a reseed for the named
// provider, before it is sealed: what that provider needs must be there. It never
// echoes a secret.
// The configuration matters only where the provider's rules depend on it (an oauth2
// client credentials grant); for every configuration that existed before grant_type
// the answer is the same.
func ValidateSeed(providerName string, cfg provider.Config, s Seed) error {
	grant := provider.Grant{RefreshToken: s.RefreshToken, ClientSecret: s.ClientSecret,
		Username: s.Username, Password: s.Password, AccessToken: s.AccessToken}
	if err := catalog.ValidateGrant(providerName, cfg, grant); err != nil {
		return err
	}
	if strings.TrimSpace(s.RefreshToken) != s.RefreshToken {
		return errors.New("seed.refresh_token: has leading or trailing whitespace")
	}
	return nil
}

// Label limits: labels are shown by status and travel in every continue-as-new.
const (
	maxLabels        = 16
	maxLabelKeyLen   = 40
	maxLabelValueLen = 256
)

// checkLabels validates the input's labels, naming the offending key.
func checkLabels(labels map[string]string) error {
	if len(labels) > maxLabels {
		return fmt.Errorf("labels: %d given, at most %d", len(labels), maxLabels)
	}
	var errs []error
	for k, v := range labels {
		if len(k) == 0 || len(k) > maxLabelKeyLen || strings.ContainsFunc(k, func(r rune) bool {
			return !(r == '_' || (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9'))
		}) {
			errs = append(errs, fmt.Errorf("labels: key %q must be 1 to %d of [a-z0-9_]", k, maxLabelKeyLen))
			continue
		}
		if len(v) > maxLabelValueLen || strings.ContainsFunc(v, unicode.IsControl) {
			errs = append(errs, fmt.Errorf("labels.%s: at most %d printable characters", k, maxLabelValueLen))
		}
	}
	slices.SortFunc(errs, func(a, b error) int { return strings.Compare(a.Error(), b.Error()) })
	return errors.Join(errs...)
}
