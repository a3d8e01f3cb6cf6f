// Package notify delivers tokenwarden's notifications (incident, reminder, recovered,
// retired) to webhooks: a JSON body for generic receivers, or a Slack incoming-webhook
// message.
//
// Webhook URLs are secrets (anyone holding a Slack webhook URL can post to the channel),
// so no error, log line or String() of this package ever contains one. Errors carry no
// cause chain either: Temporal records every error's Unwrap chain in workflow history,
// and Go's HTTP errors quote the URL.
//
// Delivery failures are ordinary (retryable) errors; see Webhook.Notify for why.
package notify

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"time"

	"github.com/tokenwarden/tokenwarden/activities"
	"github.com/tokenwarden/tokenwarden/internal/config"
	"github.com/tokenwarden/tokenwarden/internal/provider/scrub"
)

// Formats of a webhook body.
const (
	FormatJSON  = config.NotifyFormatJSON  // the Notification as JSON, plus "text"
	FormatSlack = config.NotifyFormatSlack // Slack incoming-webhook message: "text" and "blocks"
)

// DefaultTimeout bounds one delivery when Options.Timeout is zero.
const DefaultTimeout = 10 * time.Second

// maxRedirects bounds the 307/308 redirects followed within the same host.
const maxRedirects = 3

// Target is one webhook. URL is a secret.
type Target struct {
	// Name is the policy.notify_target that selects it; empty for the default target.
	Name   string
	Format string // FormatJSON or FormatSlack
	URL    string
}

func (t Target) label() string {
	if t.Name == "" {
		return "default target"
	}
	return fmt.Sprintf("target %q", t.Name)
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
	// Timeout bounds one delivery, redirects included (default DefaultTimeout).
	Timeout time.Duration
	// Client is the HTTP client to use (default: a new one on http.DefaultTransport).
	// It is copied; its CheckRedirect is replaced by the same-host policy.
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
	timeout time.Duration
	client  *http.Client
	logger  *slog.Logger
	now     func() time.Time
}

var _ activities.Notifier = (*Webhook)(nil)

// New checks the options and returns a Webhook. Its errors name targets, never URLs.
func New(o Options) (*Webhook, error) {
	w := &Webhook{
		targets: map[string]Target{},
		bearer:  o.BearerToken,
		timeout: o.Timeout,
		logger:  o.Logger,
		now:     o.Now,
	}
	if w.timeout <= 0 {
		w.timeout = DefaultTimeout
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
	if o.Client != nil {
		c := *o.Client
		w.client = &c
	} else {
		w.client = &http.Client{}
	}
	w.client.CheckRedirect = sameHostRedirects
	return w, nil
}

func checkTarget(t Target) error {
	if t.Format != FormatJSON && t.Format != FormatSlack {
		return fmt.Errorf("notify: %s: format %q is not json or slack", t.label(), t.Format)
	}
	if err := config.CheckWebhookURL(t.URL); err != nil {
		return fmt.Errorf("notify: %s: %w", t.label(), err)
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
		Default:     Target{Format: cfg.NotifyFormat, URL: cfg.NotifyWebhookURL},
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

// String describes the targets without their URLs, for the worker's start-up log:
// "default (slack), ops (json), team-b (slack)".
func (w *Webhook) String() string {
	var parts []string
	if w.def.URL != "" {
		parts = append(parts, fmt.Sprintf("default (%s)", w.def.Format))
	} else {
		parts = append(parts, "default (log only)")
	}
	names := make([]string, 0, len(w.targets))
	for n := range w.targets {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		parts = append(parts, fmt.Sprintf("%s (%s)", n, w.targets[n].Format))
	}
	return strings.Join(parts, ", ")
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
// retryable NotifyFailed error anyway. *DeliveryError carries the status code.
func (w *Webhook) Notify(ctx context.Context, n activities.Notification) error {
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
		return &DeliveryError{Target: t.Name, msg: fmt.Sprintf("notify %s: encode the message: %v", t.label(), err)}
	}
	if err := w.post(ctx, t, n.ID, body); err != nil {
		w.logger.Warn("notification delivery failed", "event", n.Event, "credential", n.CredentialID,
			"target", t.Name, "error", err.Error())
		return err
	}
	return nil
}

// route picks the target of n, and a note for the message when it had to fall back.
func (w *Webhook) route(n activities.Notification) (Target, string, error) {
	if n.Target == "" {
		return w.def, "", nil
	}
	if t, ok := w.targets[n.Target]; ok {
		return t, "", nil
	}
	name := scrub.New().Scrub(n.Target, config.MaxNotifyTargetName)
	if w.def.URL == "" {
		return Target{}, "", &DeliveryError{Target: name, msg: fmt.Sprintf(
			"notify target %q is not configured on this worker (%s_NOTIFY_TARGETS) and there is no default target (%s_NOTIFY_WEBHOOK_URL)",
			name, config.Prefix, config.Prefix)}
	}
	w.logger.Warn("notify target is not configured on this worker; using the default target", "target", name,
		"event", n.Event, "credential", n.CredentialID)
	return w.def, fmt.Sprintf("Note: notify_target %q is not configured on the worker; this went to the default target.", name), nil
}

// clean passes the provider-supplied text through the scrubber once more: it should
// already be clean, but a notification leaves tokenwarden for a chat channel.
func clean(n activities.Notification) activities.Notification {
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

func (w *Webhook) post(ctx context.Context, t Target, id string, body []byte) error {
	ctx, cancel := context.WithTimeout(ctx, w.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, t.URL, bytes.NewReader(body))
	if err != nil {
		return &DeliveryError{Target: t.Name, msg: fmt.Sprintf("notify %s: cannot build the request (the URL is not shown)", t.label())}
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "tokenwarden-notify")
	if w.bearer != "" && t.Format == FormatJSON {
		req.Header.Set("Authorization", "Bearer "+w.bearer)
	}
	if id != "" {
		// The notification's ID, the same in every retry of its delivery (the Notify
		// activity derives it), so a receiver can drop the duplicate of a delivery whose
		// answer was lost. The json body carries it as "id" too.
		req.Header.Set("Idempotency-Key", id)
	}
	resp, err := w.client.Do(req)
	if err != nil {
		return w.transportError(ctx, t, err)
	}
	defer resp.Body.Close()
	snippet, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10)) // let the connection be reused
	if resp.StatusCode >= 200 && resp.StatusCode <= 299 {
		return nil
	}
	e := &DeliveryError{Target: t.Name, StatusCode: resp.StatusCode}
	msg := fmt.Sprintf("notify %s (%s): webhook answered %s", t.label(), t.Format, resp.Status)
	if resp.StatusCode >= 300 && resp.StatusCode <= 399 {
		msg += " (redirects are followed only as 307/308 within the same host)"
	} else if s := secretScrubber(t.URL, w.bearer).Scrub(string(snippet), 120); s != "" {
		// Slack explains itself in the body: no_service, invalid_payload, channel_is_archived.
		msg += ": " + s
	}
	e.msg = msg
	return e
}

// transportError describes a failed round trip without the URL that Go's *url.Error
// quotes, and without keeping that error in the chain.
func (w *Webhook) transportError(ctx context.Context, t Target, err error) error {
	e := &DeliveryError{Target: t.Name}
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	switch {
	case errors.Is(ctx.Err(), context.DeadlineExceeded) || (ue != nil && ue.Timeout()):
		e.Timeout = true
		e.msg = fmt.Sprintf("notify %s: no answer from the webhook within %s", t.label(), w.timeout)
	case errors.Is(ctx.Err(), context.Canceled):
		e.canceled = true
		e.msg = fmt.Sprintf("notify %s: delivery canceled", t.label())
	default:
		e.msg = fmt.Sprintf("notify %s: post to the webhook: %s", t.label(), secretScrubber(t.URL, w.bearer).Scrub(err.Error(), 200))
	}
	return e
}

// secretScrubber redacts the URL, the parts of it that an error could quote (those long
// enough not to be common words, such as "/" or "/hook"), and the bearer token.
func secretScrubber(raw, bearer string) scrub.Scrubber {
	secrets := []string{raw, bearer}
	if u, err := url.Parse(raw); err == nil {
		p, _ := u.User.Password()
		for _, part := range []string{u.Path, u.EscapedPath(), u.RawQuery, u.Fragment, u.User.String(), p} {
			if len(part) >= 8 {
				secrets = append(secrets, part)
			}
		}
	}
	return scrub.New(secrets...)
}

// sameHostRedirects follows only 307 and 308 (which keep the method and the body) to
// the same scheme and host. A 301/302/303 would turn the POST into a body-less GET
// whose 200 would pass for a delivery, and another host must not receive the message
// or the bearer token.
func sameHostRedirects(req *http.Request, via []*http.Request) error {
	if len(via) > maxRedirects || req.Response == nil {
		return http.ErrUseLastResponse
	}
	if c := req.Response.StatusCode; c != http.StatusTemporaryRedirect && c != http.StatusPermanentRedirect {
		return http.ErrUseLastResponse
	}
	if req.URL.Scheme != via[0].URL.Scheme || req.URL.Host != via[0].URL.Host {
		return http.ErrUseLastResponse
	}
	return nil
}

// DeliveryError is a failed delivery. Its message names the target, never its URL, and
// it wraps nothing (Temporal would record a wrapped *url.Error, URL included).
type DeliveryError struct {
	// Target is the target's name; empty for the default target.
	Target string
	// StatusCode is the webhook's HTTP status; 0 when there was no answer.
	StatusCode int
	// Timeout: no answer within the delivery timeout.
	Timeout  bool
	canceled bool
	msg      string
}

func (e *DeliveryError) Error() string { return e.msg }

// Is makes errors.Is(err, context.DeadlineExceeded) and context.Canceled work without
// a cause chain.
func (e *DeliveryError) Is(target error) bool {
	return (e.Timeout && target == context.DeadlineExceeded) || (e.canceled && target == context.Canceled)
}
