// Package notify delivers tokenwarden's notifications (incident, reminder, recovered,
// retired) to webhooks: a JSON body for generic receivers, or a Slack incoming-webhook
// message.
//
// Delivery is internal/webhook's: https beyond loopback, no redirects, signed when the
// target has a secret, and errors that never show a URL (webhook URLs are secrets; no
// log line or String() of this package shows one either).
//
// Delivery failures are ordinary (retryable) errors; see Webhook.Notify for why.
package notify

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sort"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/tokenwarden/tokenwarden/activities"
	"github.com/tokenwarden/tokenwarden/internal/config"
	"github.com/tokenwarden/tokenwarden/internal/credential"
	"github.com/tokenwarden/tokenwarden/internal/provider/scrub"
	"github.com/tokenwarden/tokenwarden/internal/webhook"
)

// Formats of a webhook body.
const (
	FormatJSON  = config.NotifyFormatJSON  // the Notification as JSON, plus "text"
	FormatSlack = config.NotifyFormatSlack // Slack incoming-webhook message: "text" and "blocks"
)

// DefaultTimeout bounds one delivery when Options.Timeout is zero.
const DefaultTimeout = 10 * time.Second

// Target is one webhook. URL and Secret are secrets.
type Target struct {
	// Name is the policy.notify_target that selects it; empty for the default target.
	Name   string
	Format string // FormatJSON or FormatSlack
	URL    string
	// Secret signs the deliveries ("whsec_...", see internal/webhook); empty: unsigned.
	Secret string
}

func (t Target) label() string {
	if t.Name == "" {
		return "default target"
	}
	return fmt.Sprintf("target %q", t.Name)
}

// webhook is t as internal/webhook sends to it; its label names the target and format.
func (t Target) webhook() webhook.Target {
	return webhook.Target{Label: fmt.Sprintf("notify %s (%s)", t.label(), t.Format), URL: t.URL, Secret: t.Secret}
}

// Options configure a Webhook.
type Options struct {
	// Default receives notifications whose Target is empty, and those naming a target
	// this worker does not know. An empty URL means such notifications are only logged.
	Default Target
	// Targets are the named targets.
	Targets []Target
	// BearerToken, if set, is sent as "Authorization: Bearer ..." to json-format
	// webhooks (never to Slack ones: Slack does not need it, and should not see it).
	BearerToken string
	// Timeout bounds one delivery (default DefaultTimeout).
	Timeout time.Duration
	// Client is the HTTP client for https deliveries (see webhook.Options.Client).
	Client *http.Client
	Logger *slog.Logger
	// Now is the clock for "for 2h15m" durations; nil means time.Now.
	Now func() time.Time
}

// Webhook implements activities.Notifier.
type Webhook struct {
	def     Target
	targets map[string]Target
	bearer  string
	sender  *webhook.Sender
	logger  *slog.Logger
	now     func() time.Time
}

var _ activities.Notifier = (*Webhook)(nil)

// New checks the options and returns a Webhook. Its errors name targets, never URLs.
func New(o Options) (*Webhook, error) {
	w := &Webhook{
		targets: map[string]Target{},
		bearer:  o.BearerToken,
		logger:  o.Logger,
		now:     o.Now,
	}
	timeout := o.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	if w.logger == nil {
		w.logger = slog.Default()
	}
	if w.now == nil {
		w.now = time.Now
	}
	if o.Default.Name != "" {
		return nil, errors.New("notify: the default target must have no name")
	}
	if o.Default.URL != "" {
		if err := checkTarget(o.Default); err != nil {
			return nil, err
		}
	}
	w.def = o.Default
	for _, t := range o.Targets {
		if !config.ValidNotifyTargetName(t.Name) {
			return nil, fmt.Errorf("notify: a target name must be 1-%d letters, digits, '.', '_', '-'", config.MaxNotifyTargetName)
		}
		if _, dup := w.targets[t.Name]; dup {
			return nil, fmt.Errorf("notify: target %q is defined twice", t.Name)
		}
		if err := checkTarget(t); err != nil {
			return nil, err
		}
		w.targets[t.Name] = t
	}
	w.sender = webhook.New(webhook.Options{Timeout: timeout, Client: o.Client, UserAgent: "tokenwarden-notify", Now: w.now})
	return w, nil
}

func checkTarget(t Target) error {
	if t.Format != FormatJSON && t.Format != FormatSlack {
		return fmt.Errorf("notify: %s: format %q is not json or slack", t.label(), t.Format)
	}
	if err := webhook.CheckTarget(webhook.Target{Label: "notify: " + t.label(), URL: t.URL, Secret: t.Secret}); err != nil {
		return fmt.Errorf("check the notification targets: %w", err)
	}
	return nil
}

// FromConfig builds the worker's notifier. It returns nil (and no error) when no webhook
// is configured at all, so that activities.Activities logs notifications itself.
func FromConfig(cfg config.Worker, logger *slog.Logger) (activities.Notifier, error) {
	list, err := cfg.NotifyTargetList()
	if err != nil {
		return nil, err
	}
	if cfg.NotifyWebhookURL == "" && len(list) == 0 {
		return nil, nil
	}
	o := Options{
		Default:     Target{Format: cfg.NotifyFormat, URL: cfg.NotifyWebhookURL, Secret: cfg.NotifyWebhookSecret},
		BearerToken: cfg.NotifyBearerToken,
		Timeout:     cfg.NotifyTimeout,
		Logger:      logger,
	}
	for _, t := range list {
		o.Targets = append(o.Targets, Target(t))
	}
	w, err := New(o)
	if err != nil {
		return nil, err
	}
	return w, nil
}

// String describes the targets without their URLs or secrets, for the worker's start-up
// log: "default (slack, signed), ops (json), team-b (slack)".
func (w *Webhook) String() string {
	var parts []string
	if w.def.URL != "" {
		parts = append(parts, "default ("+w.def.describe()+")")
	} else {
		parts = append(parts, "default (log only)")
	}
	names := make([]string, 0, len(w.targets))
	for n := range w.targets {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		parts = append(parts, n+" ("+w.targets[n].describe()+")")
	}
	return strings.Join(parts, ", ")
}

func (t Target) describe() string {
	if t.Secret != "" {
		return t.Format + ", signed"
	}
	return t.Format
}

// Notify delivers n to the target it names.
//
// Routing: an empty Target goes to the default target; a Target this worker does not
// know also goes to the default target, with a warning in the log and a line in the
// message, because the owners hearing about a dead grant on the wrong channel beats
// nobody hearing about it. If there is no default target, a notification for the
// default is only logged, and one for an unknown target fails (retryably): it shows up
// as a failing activity in Temporal, and is delivered once the target is configured
// and the worker restarted.
//
// Failures: every failure, 4xx included, is a retryable error. The cure for a webhook
// that answers 404 or 403 is a configuration change and a worker restart, after which
// the pending retries deliver the notification; retries are cheap and bounded by the
// workflow's activity options; and activities.Notify wraps whatever is returned in a
// retryable NotifyFailed error anyway. A *webhook.Error carries the status code.
func (w *Webhook) Notify(ctx context.Context, n credential.Notification) error {
	t, note, err := w.route(n)
	if err != nil {
		return err
	}
	if t.URL == "" {
		w.logger.Info("notification not delivered: no default webhook configured", "event", n.Event,
			"credential", n.CredentialID, "state", n.State, "code", n.Code)
		return nil
	}
	n = clean(n)
	var body []byte
	switch t.Format {
	case FormatSlack:
		body, err = slackBody(n, note, w.now())
	default:
		body, err = jsonBody(n, note, w.now())
	}
	if err != nil {
		return fmt.Errorf("notify %s: encode the message: %w", t.label(), err)
	}
	if err := w.post(ctx, t, n.ID, body); err != nil {
		w.logger.Warn("notification delivery failed", "event", n.Event, "credential", n.CredentialID,
			"target", t.Name, "error", err.Error())
		return err
	}
	return nil
}

// route picks the target of n, and a note for the message when it had to fall back.
func (w *Webhook) route(n credential.Notification) (Target, string, error) {
	if n.Target == "" {
		return w.def, "", nil
	}
	if t, ok := w.targets[n.Target]; ok {
		return t, "", nil
	}
	name := scrub.New().Scrub(n.Target, config.MaxNotifyTargetName)
	if w.def.URL == "" {
		return Target{}, "", fmt.Errorf(
			"notify target %q is not configured on this worker (%s_NOTIFY_TARGETS) and there is no default target (%s_NOTIFY_WEBHOOK_URL)",
			name, config.Prefix, config.Prefix)
	}
	w.logger.Warn("notify target is not configured on this worker; using the default target", "target", name,
		"event", n.Event, "credential", n.CredentialID)
	return w.def, fmt.Sprintf("Note: notify_target %q is not configured on the worker; this went to the default target.", name), nil
}

// clean passes the provider-supplied text through the scrubber once more: it should
// already be clean, but a notification leaves tokenwarden for a chat channel.
func clean(n credential.Notification) credential.Notification {
	sc := scrub.New()
	n.Reason = sc.Scrub(n.Reason, scrub.MaxDescriptionLen)
	n.Code = sc.Scrub(n.Code, scrub.MaxCodeLen)
	// The reseed command is tokenwarden's own text, and scrubbing could redact a long
	// credential ID out of it; it only loses control characters (no line injection).
	n.ReseedCommand = strings.Join(strings.Fields(strings.Map(func(r rune) rune {
		if r < ' ' || r == 0x7f {
			return ' '
		}
		return r
	}, n.ReseedCommand)), " ")
	return n
}

// post delivers one body. id is the notification's ID, the same in every retry of its
// delivery (the Notify activity derives it), and so the webhook-id, so that a receiver
// can drop the duplicate of a delivery whose answer was lost; the json body carries it
// as "id" too, and Idempotency-Key repeats it for receivers that predate the webhook-*
// headers. Outside an activity nothing retries, and a fresh ID will do.
func (w *Webhook) post(ctx context.Context, t Target, id string, body []byte) error {
	if id == "" {
		id = uuid.NewString()
	}
	h := http.Header{"Idempotency-Key": {id}}
	if w.bearer != "" && t.Format == FormatJSON {
		h.Set("Authorization", "Bearer "+w.bearer)
	}
	return w.sender.Send(ctx, t.webhook(), webhook.Message{ID: id, Body: body, Header: h})
}
