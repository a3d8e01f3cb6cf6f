package chathub

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/tokenwarden/tokenwarden/internal/provider"
	"github.com/tokenwarden/tokenwarden/internal/provider/internal/wire"
	"github.com/tokenwarden/tokenwarden/internal/provider/scrub"
)

// Operator endpoints, relative to the base URL.
const (
	OperatorTokenPath = "/api/operator/get-token"
	ValidatePath      = "/api/operator/validate-token"
)

// MaxOperatorLifetime is the longest an operator token may be asked to live.
const MaxOperatorLifetime = 24 * time.Hour

// operatorLead keeps the requested expiry safely inside the 24-hour limit, whatever the
// clock difference between us and ChatHub.
const operatorLead = 5 * time.Minute

// Operator mints SMSBAT ChatHub operator tokens with the company token of its parent
// credential (config.parent names it; config.operator_id is the operator). It holds no
// secret of its own: each refresh asks for a new token that lives (almost) 24 hours.
type Operator struct {
	client *http.Client
	now    func() time.Time
}

var (
	_ provider.Provider  = (*Operator)(nil)
	_ provider.Refresher = (*Operator)(nil)
	_ provider.Prober    = (*Operator)(nil)
)

// NewOperator returns the operator-token adapter.
func NewOperator(client *http.Client, now func() time.Time) *Operator {
	if now == nil {
		now = time.Now
	}
	return &Operator{client: wire.Client(client), now: now}
}

// ValidateConfig requires the operator ID and the parent (company) credential.
func (o *Operator) ValidateConfig(cfg provider.Config) error {
	if cfg.BaseURL != "" {
		if err := wire.ValidateBaseURL("base_url", cfg.BaseURL); err != nil {
			return err
		}
	}
	if _, err := strconv.Atoi(cfg.OperatorID); err != nil {
		return errors.New("operator_id: required, the numeric ChatHub operator ID")
	}
	if cfg.Parent == "" {
		return errors.New("parent: required, the ID of the chathub-company credential that mints this token")
	}
	if _, err := operatorLifetime(cfg); err != nil {
		return err
	}
	return nil
}

// operatorLifetime is config.token_lifetime, or just under ChatHub's 24-hour limit.
func operatorLifetime(cfg provider.Config) (time.Duration, error) {
	if cfg.TokenLifetime == "" {
		return MaxOperatorLifetime - operatorLead, nil
	}
	d, err := time.ParseDuration(cfg.TokenLifetime)
	if err != nil || d <= 0 || d > MaxOperatorLifetime {
		return 0, errors.New("token_lifetime: must be a duration above 0 and at most 24h, such as \"12h\"")
	}
	return d, nil
}

// ValidateGrant accepts anything: the operator token is minted from the parent's.
func (o *Operator) ValidateGrant(provider.Grant) error { return nil }

// Refresh asks ChatHub for a new operator token with the parent's company token. A 401
// means the company token was refused: that is the parent's problem, reported with
// provider.CodeParentRejected so the parent refreshes and this credential retries.
func (o *Operator) Refresh(ctx context.Context, cfg provider.Config, grant provider.Grant) (provider.TokenSet, error) {
	if err := o.ValidateConfig(cfg); err != nil {
		return provider.TokenSet{}, &provider.Error{Kind: provider.Permanent, Code: CodeInvalidConfig, Err: fmt.Errorf("chathub: config.%w", err)}
	}
	if grant.ParentAccessToken == "" {
		return provider.TokenSet{}, &provider.Error{Kind: provider.Transient, Code: provider.CodeParentRejected,
			Description: "the parent company credential has no token yet"}
	}
	id, _ := strconv.Atoi(cfg.OperatorID)
	now := o.now()
	lifetime, _ := operatorLifetime(cfg) // checked by ValidateConfig above
	expiresAt := now.Add(lifetime).UTC().Truncate(time.Second)
	sc := scrub.New(grant.ParentAccessToken, grant.AccessToken)
	header := http.Header{"Authorization": {"Bearer " + grant.ParentAccessToken}}
	body := map[string]any{"id": id, "expiresAt": expiresAt.Format(time.RFC3339)}
	res, perr := wire.PostJSON(ctx, o.client, wire.JoinURL(baseURL(cfg), OperatorTokenPath), body, header, sc)
	if perr != nil {
		return provider.TokenSet{}, perr
	}
	if res.Status >= 200 && res.Status < 300 {
		ts, err := bareJWT(res, now, "operator token")
		if err != nil {
			return provider.TokenSet{}, err
		}
		if ts.AccessExpiresAt.IsZero() {
			ts.AccessExpiresAt = expiresAt
		}
		return ts, nil
	}
	return provider.TokenSet{}, o.failure(res, sc)
}

// Probe asks validate-token whether grant.AccessToken (the operator token) still holds.
func (o *Operator) Probe(ctx context.Context, cfg provider.Config, grant provider.Grant) (bool, error) {
	// As Refresh does: neither token may go to a URL the configuration rules refuse.
	if err := o.ValidateConfig(cfg); err != nil {
		return false, &provider.Error{Kind: provider.Permanent, Code: CodeInvalidConfig, Err: fmt.Errorf("chathub: config.%w", err)}
	}
	if grant.ParentAccessToken == "" {
		return false, &provider.Error{Kind: provider.Transient, Code: provider.CodeParentRejected,
			Description: "the parent company credential has no token yet"}
	}
	sc := scrub.New(grant.ParentAccessToken, grant.AccessToken)
	header := http.Header{"Authorization": {"Bearer " + grant.ParentAccessToken}}
	res, perr := wire.PostJSON(ctx, o.client, wire.JoinURL(baseURL(cfg), ValidatePath),
		map[string]string{"token": grant.AccessToken}, header, sc)
	if perr != nil {
		return false, perr
	}
	if res.Status < 200 || res.Status > 299 {
		return false, o.failure(res, sc)
	}
	var answer struct {
		IsValid *bool `json:"isValid"`
	}
	if err := json.Unmarshal(res.Body, &answer); err != nil || answer.IsValid == nil {
		return false, &provider.Error{Kind: provider.Transient, Code: CodeMalformedResponse, HTTPStatus: res.Status,
			Description: "validate-token answer has no isValid"}
	}
	return *answer.IsValid, nil
}

func (o *Operator) failure(res *wire.Response, sc scrub.Scrubber) error {
	e := &provider.Error{Kind: provider.Permanent, HTTPStatus: res.Status, Code: fmt.Sprintf("http_%d", res.Status),
		Description: wire.Message(res.Body, sc, "message", "error", "error_description", "title", "detail")}
	switch {
	case wire.IsTransientStatus(res.Status):
		e.Kind = provider.Transient
		e.RetryAfter = wire.ParseRetryAfter(res.Header.Get("Retry-After"), o.now())
	case res.Status == http.StatusUnauthorized:
		// The company token was refused, not this credential's grant.
		e.Kind, e.Code = provider.Transient, provider.CodeParentRejected
	case res.Status >= 300 && res.Status < 400:
		e.Description = "base_url answered with a redirect, which is not followed"
	}
	return e
}

// NameCompany is the provider name of the company credential an operator token is
// minted with.
const NameCompany = "chathub-company"

// ParentProvider: an operator token is minted with a company token (provider.Child).
func (o *Operator) ParentProvider() string { return NameCompany }

var _ provider.Child = (*Operator)(nil)
