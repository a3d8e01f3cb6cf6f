package activities

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.temporal.io/sdk/temporal"

	"github.com/tokenwarden/tokenwarden/internal/provider"
	"github.com/tokenwarden/tokenwarden/internal/store"
)

// ProbeRequest asks whether a credential's access token still works.
type ProbeRequest struct {
	CredentialID string
	Provider     string
	Config       provider.Config
}

// ProbeResult is the answer, without the token.
type ProbeResult struct {
	Valid     bool
	CheckedAt time.Time
	// Code says why an invalid token was judged so, when the provider said.
	Code string
	// LastUsedAt is when a consumer last read the token through the token API, as the
	// store says; it sets the probe cadence (recently used tokens are probed more often).
	LastUsedAt time.Time
	// Labels are non-secret facts the provider told about the token (baoming's info_id),
	// from adapters that implement provider.DetailedProber.
	Labels map[string]string `json:",omitempty"`
}

// Probe asks the provider whether the stored access token is accepted. It never
// presents the refresh token and never writes the store.
func (a *Activities) Probe(ctx context.Context, req ProbeRequest) (ProbeResult, error) {
	res, err := a.probe(ctx, req)
	a.recordProbe(req.Provider, res, err)
	return res, err
}

func (a *Activities) probe(ctx context.Context, req ProbeRequest) (ProbeResult, error) {
	p, err := a.Providers.Lookup(req.Provider)
	if err != nil {
		return ProbeResult{}, temporal.NewNonRetryableApplicationError(err.Error(), ErrTypeInvalidInput, nil)
	}
	prober, ok := p.(provider.Prober)
	if !ok {
		return ProbeResult{}, temporal.NewNonRetryableApplicationError(
			fmt.Sprintf("provider %q cannot probe tokens; remove policy.probe_interval", req.Provider), ErrTypeInvalidInput, nil)
	}
	rec, err := a.Store.Get(ctx, req.CredentialID)
	if errors.Is(err, store.ErrNotFound) {
		return ProbeResult{}, temporal.NewNonRetryableApplicationError(
			"the token store has no record of this credential; reseed it", ErrTypePermanent, nil,
			FailureDetail{Code: "not_in_store"})
	}
	if err != nil {
		return ProbeResult{}, storeError("read credential", err)
	}
	if err := checkBinding(rec, req.Provider, req.Config); err != nil {
		return ProbeResult{}, err
	}
	if rec.Secrets.AccessToken == "" {
		// Nothing to probe is not a dead token: a refresh will produce one.
		return ProbeResult{Valid: false, CheckedAt: a.now(), Code: "no_access_token", LastUsedAt: rec.LastUsedAt}, nil
	}
	parentToken, err := a.parentToken(ctx, p, req.Config)
	if err != nil {
		return ProbeResult{}, err
	}
	stop := heartbeat(ctx, nil)
	defer stop()
	callCtx, cancel := context.WithTimeout(ctx, a.providerTimeout())
	grant := provider.Grant{
		AccessToken:       rec.Secrets.AccessToken,
		ClientSecret:      rec.Secrets.ClientSecret,
		ParentAccessToken: parentToken,
	}
	var detail provider.ProbeResult
	if dp, ok := prober.(provider.DetailedProber); ok {
		detail, err = dp.ProbeDetail(callCtx, req.Config, grant)
	} else {
		detail.Valid, err = prober.Probe(callCtx, req.Config, grant)
	}
	valid := detail.Valid
	cancel()
	if err != nil {
		if req.Config.Parent != "" && providerCode(err) == provider.CodeParentRejected {
			return ProbeResult{}, a.parentRejected(ctx, req.CredentialID, req.Config.Parent, "")
		}
		var pe *provider.Error
		if !errors.As(err, &pe) {
			pe = &provider.Error{Kind: provider.Transient, Code: "unclassified", Err: err}
		}
		detail := FailureDetail{Code: pe.Code, Description: pe.Description, RetryAfter: pe.RetryAfter}
		if pe.Kind == provider.Permanent {
			return ProbeResult{}, temporal.NewNonRetryableApplicationError(pe.Error(), ErrTypePermanent, nil, detail)
		}
		return ProbeResult{}, temporal.NewApplicationErrorWithOptions(pe.Error(), ErrTypeTransient,
			temporal.ApplicationErrorOptions{NextRetryDelay: pe.RetryAfter, Details: []interface{}{detail}})
	}
	a.logger().Info("probed", "credential", req.CredentialID, "provider", req.Provider, "valid", valid)
	res := ProbeResult{Valid: valid, CheckedAt: a.now(), LastUsedAt: rec.LastUsedAt, Labels: detail.Labels}
	if !valid {
		res.Code = detail.Code
		if res.Code == "" {
			res.Code = "token_rejected"
		}
	}
	return res, nil
}
