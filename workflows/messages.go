package workflows

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"

	"go.temporal.io/sdk/workflow"

	cred "github.com/tokenwarden/tokenwarden/internal/credential"
	"github.com/tokenwarden/tokenwarden/internal/provider"
	"github.com/tokenwarden/tokenwarden/internal/provider/catalog"
)

// pumpSignals receives signals as they arrive, so that their effect is immediate even
// while the main loop waits for an activity: a refresh-now during a refresh is
// coalesced into it, and a reseed is queued for the main loop.
func (c *credential) pumpSignals(ctx workflow.Context) {
	for ctx.Err() == nil {
		sel := workflow.NewSelector(ctx)
		sel.AddReceive(c.refreshNow, func(ch workflow.ReceiveChannel, _ bool) {
			ch.Receive(ctx, nil)
			c.onRefreshNow()
		})
		sel.AddReceive(c.reseed, func(ch workflow.ReceiveChannel, _ bool) {
			var raw json.RawMessage
			ch.Receive(ctx, &raw)
			c.onReseed(raw)
		})
		sel.AddReceive(c.retire, func(ch workflow.ReceiveChannel, _ bool) {
			ch.Receive(ctx, nil)
			c.retireRequested = true
		})
		sel.AddReceive(c.updatePolicy, func(ch workflow.ReceiveChannel, _ bool) {
			var raw json.RawMessage
			ch.Receive(ctx, &raw)
			c.onUpdatePolicy(raw)
		})
		sel.AddReceive(ctx.Done(), func(workflow.ReceiveChannel, bool) {})
		sel.Select(ctx)
	}
}

// validateRefreshUpdate rejects a refresh update before it enters history.
func (c *credential) validateRefreshUpdate() error {
	if c.retireRequested || c.st.State == cred.StateRetired {
		return errors.New("credential is retired")
	}
	if c.st.State == cred.StateNeedsReauth {
		return errors.New("credential needs a reseed: a refresh would present a grant the provider rejected")
	}
	return nil
}

// onRefreshUpdate asks for a refresh (or joins the one in flight) and returns the
// status once that round has finished, successful or not.
func (c *credential) onRefreshUpdate(ctx workflow.Context) (Status, error) {
	target := c.rounds + 1
	if !c.refreshing {
		c.st.RefreshRequested = true
	}
	if err := workflow.Await(ctx, func() bool { return c.rounds >= target || c.retireRequested }); err != nil {
		return c.st, err
	}
	return c.st, nil
}

// validateReseedUpdate rejects a malformed seed envelope synchronously, before it
// enters history: the caller learns at once what is wrong. What is inside a sealed
// seed only the Seed activity can see.
func (c *credential) validateReseedUpdate(seed SeedEnvelope) error {
	if c.retireRequested || c.st.State == cred.StateRetired {
		return errors.New("credential is retired")
	}
	return checkSeed(c.st.Provider, c.st.Config, seed)
}

// checkSeed checks a reseed's envelope, and a plaintext seed's content (which the Seed
// activity refuses anyway unless the worker allows plaintext seeds).
func checkSeed(providerName string, cfg provider.Config, seed SeedEnvelope) error {
	if err := seed.Check(); err != nil {
		return err
	}
	if seed.Plaintext() {
		return ValidateSeed(providerName, cfg, seed.Seed)
	}
	return nil
}

// onReseedUpdate queues the seed for the main loop and returns the status once it is
// stored (and, without an access token in the seed, once the refresh that follows ran).
func (c *credential) onReseedUpdate(ctx workflow.Context, seed SeedEnvelope) (Status, error) {
	c.pendingSeeds = append(c.pendingSeeds, seed)
	target := c.seedsQueued + 1
	c.seedsQueued++
	if err := workflow.Await(ctx, func() bool {
		return (c.seedsApplied >= target && !c.st.RefreshRequested && !c.refreshing) || c.retireRequested
	}); err != nil {
		return c.st, err
	}
	return c.st, nil
}

// onUpdatePolicy changes the timing policy: the fields given replace those of the
// current policy, a field given as null returns to its default, and the others stay
// (runs that started before rulesSafeDefaults replace the whole policy, as they did).
// A malformed policy, or one naming a field a policy does not have, is recorded and
// ignored.
func (c *credential) onUpdatePolicy(raw json.RawMessage) {
	p, err := c.policyUpdate(raw)
	if err != nil {
		c.rejectSignal(SignalUpdatePolicy, err.Error())
		return
	}
	if err := p.validate(c.rules); err != nil {
		c.rejectSignal(SignalUpdatePolicy, err.Error())
		return
	}
	if p.ProbeInterval != nil && !catalog.CanProbe(c.st.Provider, c.st.Config) {
		c.rejectSignal(SignalUpdatePolicy, "policy.probe_interval: this credential's provider cannot probe tokens as configured")
		return
	}
	c.in.Policy = p
	c.st.Timing = p.resolve(c.st.ProbeOnly, c.rules)
	c.rescheduled = true
	c.log.Info("policy updated")
}

// policyUpdate is the policy an update-policy signal asks for.
func (c *credential) policyUpdate(raw json.RawMessage) (Policy, error) {
	if !c.rules.safeDefaults() {
		var p Policy
		if err := json.Unmarshal(raw, &p); err != nil {
			return Policy{}, errors.New("payload is not a policy object")
		}
		return p, nil
	}
	// Decode onto a deep copy of the current policy, so that what the signal leaves out
	// stays and a rejected update leaves the current policy untouched.
	current, err := json.Marshal(c.in.Policy)
	if err != nil {
		return Policy{}, fmt.Errorf("encode the current policy: %w", err)
	}
	var p Policy
	if err := json.Unmarshal(current, &p); err != nil {
		return Policy{}, fmt.Errorf("decode the current policy: %w", err)
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&p); err != nil {
		if field, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
			return Policy{}, fmt.Errorf("policy has no field %s (nothing changed); the fields are %s", field, strings.Join(policyFields(), ", "))
		}
		return Policy{}, errors.New("payload is not a policy object (nothing changed)")
	}
	return p, nil
}

// policyFields lists the JSON names of Policy's fields.
func policyFields() []string {
	var names []string
	t := reflect.TypeFor[Policy]()
	for i := range t.NumField() {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ",")
		names = append(names, name)
	}
	return names
}

func (c *credential) onRefreshNow() {
	if c.st.State == cred.StateNeedsReauth {
		// The grant is dead; presenting it again would only be rejected again.
		c.log.Warn("refresh-now ignored: credential needs a reseed")
		return
	}
	if c.refreshing {
		// Coalesced: the round in flight answers this request too.
		return
	}
	c.st.RefreshRequested = true
}

func (c *credential) onReseed(raw json.RawMessage) {
	var seed SeedEnvelope
	if err := json.Unmarshal(raw, &seed); err != nil {
		c.rejectSignal(SignalReseed, "payload is not a seed object")
		return
	}
	if err := checkSeed(c.st.Provider, c.st.Config, seed); err != nil {
		c.rejectSignal(SignalReseed, err.Error())
		return
	}
	c.pendingSeeds = append(c.pendingSeeds, seed)
	c.seedsQueued++
}

// rejectSignal records a malformed signal without disturbing the lifecycle.
func (c *credential) rejectSignal(name, why string) {
	c.st.LastError = fmt.Sprintf("%s signal rejected: %s", name, why)
	c.log.Warn("signal rejected", "signal", name, "reason", why)
}
