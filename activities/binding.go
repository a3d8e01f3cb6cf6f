package activities

import (
	"fmt"
	"strings"

	"go.temporal.io/sdk/temporal"

	"github.com/tokenwarden/tokenwarden/internal/provider"
	"github.com/tokenwarden/tokenwarden/internal/store"
)

// CodeConfigChanged is the failure code of a run whose configuration binds differently
// from the one the stored secrets were seeded for.
const CodeConfigChanged = "config_changed"

// checkBinding refuses the stored secrets to a run whose configuration differs from the
// one they were seeded for (store.Secrets.Binding): a workflow input can never point a
// stored token at a new URL. The credential parks in NEEDS_REAUTH, and a reseed (by
// someone who can seal one) records the new configuration. Records seeded before
// bindings were recorded pass, and Refresh records the binding with its commit.
func checkBinding(rec store.Record, providerName string, cfg provider.Config) error {
	if rec.Secrets.Binding == "" {
		return nil
	}
	diff := provider.Binding(rec.Secrets.Binding).Diff(provider.BindingOf(providerName, cfg))
	if len(diff) == 0 {
		return nil
	}
	return temporal.NewNonRetryableApplicationError(
		fmt.Sprintf("configuration changed since the credential was seeded (%s); the stored secrets are never sent "+
			"to a configuration they were not seeded for: reseed the credential to confirm the new one", strings.Join(diff, ", ")),
		ErrTypePermanent, nil, FailureDetail{Code: CodeConfigChanged})
}

// checkParent refuses a parent credential whose record does not match what the child's
// adapter mints with (provider.Child): its provider, and the base URL it was seeded for
// must be the child's, so that a child cannot send any credential's token anywhere.
func checkParent(p provider.Provider, childCfg provider.Config, parent store.Record) error {
	child, ok := p.(provider.Child)
	if !ok {
		return temporal.NewNonRetryableApplicationError(
			"config.parent: this provider is not minted with a parent credential's token", ErrTypeInvalidInput, nil)
	}
	fail := func(why string) error {
		return temporal.NewNonRetryableApplicationError(fmt.Sprintf("parent credential %q %s; reseed the parent or fix config.parent",
			childCfg.Parent, why), ErrTypePermanent, nil, FailureDetail{Code: "parent_mismatch"})
	}
	if want := child.ParentProvider(); parent.Provider != want {
		return fail(fmt.Sprintf("is a %q credential, not %q", parent.Provider, want))
	}
	if b := provider.Binding(parent.Secrets.Binding); b != "" && b.Field("base_url") != childCfg.BaseURL {
		return fail("was seeded for another base_url")
	}
	return nil
}
