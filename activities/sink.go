package activities

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"

	"github.com/tokenwarden/tokenwarden/internal/config"
	"github.com/tokenwarden/tokenwarden/internal/credential"
	"github.com/tokenwarden/tokenwarden/internal/envfile"
	"github.com/tokenwarden/tokenwarden/internal/provider/scrub"
	"github.com/tokenwarden/tokenwarden/internal/store"
	"github.com/tokenwarden/tokenwarden/internal/webhook"
)

// MaxSinks bounds the sinks of one credential.
const MaxSinks = 16

// ErrTypeSinkRefused: a sink's configuration cannot work on this worker (an unknown or
// plain-http webhook target, no record to write); retrying cannot help, the next
// refresh tries again.
const ErrTypeSinkRefused = "SinkRefused"

// ErrTypeSinkFailed: a sink failed in a way a retry may cure (a file system or network
// error).
const ErrTypeSinkFailed = "SinkFailed"

// checkSink validates one sink; its errors name the field ("path: must be absolute").
func checkSink(s credential.Sink) error {
	var errs []error
	switch s.Type {
	case credential.SinkEnv:
		if err := checkFilePath("path", s.Path); err != nil {
			errs = append(errs, err)
		}
		if !envfile.ValidKey(s.Key) {
			errs = append(errs, fmt.Errorf("key: must be a variable name ([A-Za-z_][A-Za-z0-9_]*, at most %d), got %q", envfile.MaxKeyLen, s.Key))
		}
		switch s.EnvValue() {
		case credential.SinkValueAccessToken, credential.SinkValueTokenType, credential.SinkValueExpiresAt, credential.SinkValueRefreshToken:
		default:
			errs = append(errs, fmt.Errorf("value: must be %s (default), %s, %s or %s, got %q",
				credential.SinkValueAccessToken, credential.SinkValueTokenType, credential.SinkValueExpiresAt, credential.SinkValueRefreshToken, s.Value))
		}
		if s.Target != "" {
			errs = append(errs, errors.New("target: only for webhook sinks"))
		}
		if s.ReloadSignal != nil {
			if err := checkReloadSignal(*s.ReloadSignal); err != nil {
				errs = append(errs, err)
			}
		}
		if s.ReloadURL != "" {
			if err := CheckReloadURL(s.ReloadURL); err != nil {
				errs = append(errs, err)
			}
		}
	case credential.SinkWebhook:
		if !config.ValidNotifyTargetName(s.Target) {
			errs = append(errs, fmt.Errorf("target: must name a target of %s_NOTIFY_TARGETS (1-%d letters, digits, '.', '_', '-'), got %q",
				config.Prefix, config.MaxNotifyTargetName, s.Target))
		}
		if s.Path != "" || s.Key != "" || s.Value != "" {
			errs = append(errs, errors.New("path, key, value: only for env sinks (a webhook receives the access token, its type and expiry)"))
		}
		if s.ReloadSignal != nil || s.ReloadURL != "" {
			errs = append(errs, errors.New("reload_signal, reload_url: only for env sinks (a webhook's receiver is told by the webhook itself)"))
		}
	case "":
		errs = append(errs, fmt.Errorf("type: required (%s or %s)", credential.SinkEnv, credential.SinkWebhook))
	default:
		errs = append(errs, fmt.Errorf("type: must be %s or %s, got %q", credential.SinkEnv, credential.SinkWebhook, s.Type))
	}
	return errors.Join(errs...)
}

// CheckSinks validates a credential's sinks; every error names the field
// ("sinks[0].path: must be absolute ...").
func CheckSinks(sinks []credential.Sink) error {
	var errs []error
	if len(sinks) > MaxSinks {
		errs = append(errs, fmt.Errorf("sinks: at most %d, got %d", MaxSinks, len(sinks)))
	}
	seen := map[string]int{}
	for i, s := range sinks {
		if err := checkSink(s); err != nil {
			for _, line := range strings.Split(err.Error(), "\n") {
				errs = append(errs, fmt.Errorf("sinks[%d].%s", i, line))
			}
			continue
		}
		id := s.Type + "\x00" + s.Target
		if s.Type == credential.SinkEnv {
			id = s.Type + "\x00" + s.Path + "\x00" + s.Key
		}
		if j, dup := seen[id]; dup {
			errs = append(errs, fmt.Errorf("sinks[%d]: the same destination as sinks[%d]", i, j))
			continue
		}
		seen[id] = i
	}
	return errors.Join(errs...)
}

// SinkRequest asks for a credential's sinks to be brought up to date.
type SinkRequest struct {
	CredentialID string
	Provider     string
	// Version is the store version the workflow committed. The activity writes the
	// record as it is now, which may be newer.
	Version int64
	Sinks   []credential.Sink
}

// SinkResult is what was delivered. It never carries a token.
type SinkResult struct {
	// Version is the store version written to every sink.
	Version int64
	// FilesChanged counts the .env files rewritten (a file already up to date is not).
	FilesChanged int
	// Reloads counts the consumers told of a written file (signals sent, reload URLs
	// answered 2xx).
	Reloads  int
	Webhooks int
	At       time.Time
}

// SinkPayload is the JSON body a webhook sink receives. It is secret: it carries the
// access token (never the refresh token).
type SinkPayload struct {
	// ID is the delivery's webhook-id (SinkMessageID), the same for every delivery of
	// this token set.
	ID              string    `json:"id"`
	Event           string    `json:"event"` // "token_refreshed"
	CredentialID    string    `json:"credential_id"`
	Provider        string    `json:"provider"`
	Version         int64     `json:"version"`
	AccessToken     string    `json:"access_token"`
	TokenType       string    `json:"token_type,omitempty"`
	AccessExpiresAt time.Time `json:"access_expires_at,omitzero"`
	UpdatedAt       time.Time `json:"updated_at,omitzero"`
}

// SinkDeliverer posts a payload to a named worker-configured target.
type SinkDeliverer interface {
	DeliverSink(ctx context.Context, target string, p SinkPayload) error
}

// Sink brings the credential's sinks up to date with the token store. It runs after a
// refresh has committed and never touches the record: it reads the CURRENT record
// (never a token from history), so a sink that runs late, or is retried after a newer
// refresh, writes the newest token, never an older one. Every sink is tried; the
// failures are reported together (retryable unless all of them are refusals).
func (a *Activities) Sink(ctx context.Context, req SinkRequest) (SinkResult, error) {
	log := a.logger().With("credential", req.CredentialID, "provider", req.Provider)
	if req.CredentialID == "" {
		return SinkResult{}, temporal.NewNonRetryableApplicationError("sink: credential id is empty", ErrTypeInvalidInput, nil)
	}
	if err := CheckSinks(req.Sinks); err != nil {
		return SinkResult{}, temporal.NewNonRetryableApplicationError(err.Error(), ErrTypeInvalidInput, nil)
	}
	rec, err := a.Store.Get(ctx, req.CredentialID)
	if errors.Is(err, store.ErrNotFound) {
		return SinkResult{}, temporal.NewNonRetryableApplicationError("sink: the token store has no record of this credential (retired?)",
			ErrTypeSinkRefused, nil)
	}
	if err != nil {
		return SinkResult{}, storeError("read credential for its sinks", err)
	}
	if rec.Version > req.Version {
		log.Info("sink: a newer refresh has committed since; writing the newest", "committed", req.Version, "current", rec.Version)
	} else if rec.Version < req.Version {
		log.Warn("sink: the token store is older than the refresh that asked for this sink; writing what it holds",
			"committed", req.Version, "current", rec.Version)
	}
	// Secrets to keep out of every error and log line.
	hide := func(s string) string {
		for _, secret := range []string{rec.Secrets.AccessToken, rec.Secrets.RefreshToken, rec.Secrets.ClientSecret, rec.Secrets.Password} {
			if len(secret) >= 4 {
				s = strings.ReplaceAll(s, secret, scrub.Redacted)
			}
		}
		return s
	}
	values := map[string]string{
		credential.SinkValueAccessToken:  rec.Secrets.AccessToken,
		credential.SinkValueTokenType:    rec.TokenType,
		credential.SinkValueRefreshToken: rec.Secrets.RefreshToken,
	}
	if !rec.AccessExpiresAt.IsZero() {
		values[credential.SinkValueExpiresAt] = rec.AccessExpiresAt.UTC().Format(time.RFC3339)
	}

	res := SinkResult{Version: rec.Version}
	var failures []string
	refusals := 0
	refuse := func(msg string) { failures = append(failures, msg); refusals++ }

	// One update per file, its keys in the order given, so each file is replaced once,
	// and then its consumers told, each once however many of its sinks name them.
	type fileUpdate struct {
		entries []envfile.Entry
		sinks   []string
		reloads []reloadAction
	}
	files := map[string]*fileUpdate{}
	var paths []string
	for i, s := range req.Sinks {
		if s.Type != credential.SinkEnv {
			continue
		}
		v := values[s.EnvValue()]
		if v == "" && (s.EnvValue() == credential.SinkValueAccessToken || s.EnvValue() == credential.SinkValueRefreshToken) {
			refuse(fmt.Sprintf("sinks[%d]: the token store holds no %s to write", i, s.EnvValue()))
			continue
		}
		fu := files[s.Path]
		if fu == nil {
			fu = &fileUpdate{}
			files[s.Path] = fu
			paths = append(paths, s.Path)
		}
		fu.entries = append(fu.entries, envfile.Entry{Key: s.Key, Value: v})
		fu.sinks = append(fu.sinks, fmt.Sprint(i))
		if s.ReloadSignal != nil {
			fu.reloads = addReload(fu.reloads, reloadAction{sink: i, signal: *s.ReloadSignal})
		}
		if s.ReloadURL != "" {
			fu.reloads = addReload(fu.reloads, reloadAction{sink: i, url: s.ReloadURL})
		}
	}
	for _, p := range paths {
		fu := files[p]
		// Update returns only once the new file is synced and renamed into place and
		// the rename synced: a consumer told below reads the new token, even after a
		// crash of this machine. A failed update tells nobody.
		//
		// Where the file may be is the worker's to decide (sinkpath.go); what it may be
		// (a regular file of bounded size, not a link) is envfile's. Neither refusal
		// can be cured by a retry.
		changed := false
		target, err := a.envSinkPath(p)
		if err == nil {
			changed, err = envfile.Update(ctx, target, fu.entries)
		}
		var refused *SinkRefusedError
		switch {
		case errors.As(err, &refused) || envfile.IsRefusal(err):
			refuse(fmt.Sprintf("sinks[%s]: %s", strings.Join(fu.sinks, ","), hide(err.Error())))
			continue
		case err != nil:
			failures = append(failures, fmt.Sprintf("sinks[%s]: %s", strings.Join(fu.sinks, ","), hide(err.Error())))
			continue
		}
		if changed {
			res.FilesChanged++
		}
		// An unchanged file already held this token, and its consumers were told when
		// it was written; except on a retry, where the attempt that wrote it may have
		// failed before (or while) telling them.
		if len(fu.reloads) == 0 || (!changed && !isRetry(ctx)) {
			continue
		}
		notice := ReloadNotice{Event: "env_file_changed", CredentialID: rec.ID, Provider: rec.Provider, Version: rec.Version, Path: p}
		for _, r := range fu.reloads {
			what, err := a.reload(ctx, r, notice)
			var refused *SinkRefusedError
			switch {
			case errors.As(err, &refused):
				// A reload failure never undoes the write: the message says so.
				refuse(fmt.Sprintf("sinks[%d]: %s (the file was written)", r.sink, hide(err.Error())))
			case err != nil:
				failures = append(failures, fmt.Sprintf("sinks[%d]: %s (the file was written)", r.sink, hide(err.Error())))
			default:
				res.Reloads++
				log.Info("sink: consumer told", "path", p, "version", rec.Version, "reload", what)
			}
		}
	}

	for i, s := range req.Sinks {
		if s.Type != credential.SinkWebhook {
			continue
		}
		if a.SinkWebhooks == nil {
			refuse(fmt.Sprintf("sinks[%d]: webhook target %q: no webhook targets are configured on this worker (%s_NOTIFY_TARGETS)",
				i, s.Target, config.Prefix))
			continue
		}
		if rec.Secrets.AccessToken == "" {
			refuse(fmt.Sprintf("sinks[%d]: the token store holds no access_token to send", i))
			continue
		}
		err := a.SinkWebhooks.DeliverSink(ctx, s.Target, SinkPayload{
			Event:           "token_refreshed",
			CredentialID:    rec.ID,
			Provider:        rec.Provider,
			Version:         rec.Version,
			AccessToken:     rec.Secrets.AccessToken,
			TokenType:       rec.TokenType,
			AccessExpiresAt: rec.AccessExpiresAt,
			UpdatedAt:       rec.UpdatedAt,
		})
		var refused *SinkRefusedError
		switch {
		case errors.As(err, &refused):
			refuse(fmt.Sprintf("sinks[%d]: %s", i, hide(err.Error())))
		case err != nil:
			failures = append(failures, fmt.Sprintf("sinks[%d]: %s", i, hide(err.Error())))
		default:
			res.Webhooks++
		}
	}

	res.At = a.now()
	if len(failures) > 0 {
		msg := "sink: " + strings.Join(failures, "; ")
		log.Warn("sink failed", "version", rec.Version, "error", msg)
		if refusals == len(failures) {
			return SinkResult{}, temporal.NewNonRetryableApplicationError(msg, ErrTypeSinkRefused, nil)
		}
		return SinkResult{}, temporal.NewApplicationError(msg, ErrTypeSinkFailed)
	}
	log.Info("sinks updated", "version", rec.Version, "files_changed", res.FilesChanged, "reloads", res.Reloads, "webhooks", res.Webhooks)
	return res, nil
}

// reloadAction is one way of telling a file's consumer that it changed: a signal or
// a URL; sink is the index of the first sink that asked for it.
type reloadAction struct {
	sink   int
	signal credential.ReloadSignal
	url    string
}

// addReload appends r unless the same signal or URL is already there.
func addReload(rs []reloadAction, r reloadAction) []reloadAction {
	for _, have := range rs {
		if have.signal == r.signal && have.url == r.url {
			return rs
		}
	}
	return append(rs, r)
}

// isRetry reports whether ctx is a retry of an activity.
func isRetry(ctx context.Context) bool {
	return activity.IsActivity(ctx) && activity.GetInfo(ctx).Attempt > 1
}

// reload performs r and describes what it did, for the log (a signal and a pid, or a
// URL's scheme and host: never its path).
func (a *Activities) reload(ctx context.Context, r reloadAction, n ReloadNotice) (string, error) {
	if r.url != "" {
		timeout := a.ReloadTimeout
		if timeout <= 0 {
			timeout = DefaultReloadTimeout
		}
		if err := postReload(ctx, r.url, n, timeout); err != nil {
			return "", err
		}
		u, _ := url.Parse(r.url)
		return "POST " + u.Scheme + "://" + u.Host, nil
	}
	pid, err := sendReloadSignal(r.signal)
	if err != nil {
		return "", fmt.Errorf("reload_signal: %w", err)
	}
	return fmt.Sprintf("SIG%s to pid %d", r.signal.Signal, pid), nil
}

// SinkRefusedError is a sink delivery that cannot work with this worker's
// configuration: retrying will not help.
type SinkRefusedError struct {
	msg string
	err error // the cause, if any; its text is already in msg
}

func (e *SinkRefusedError) Error() string { return e.msg }

func (e *SinkRefusedError) Unwrap() error { return e.err }

// SinkTarget is a worker-configured webhook (an entry of TOKENWARDEN_NOTIFY_TARGETS).
// URL and Secret are secrets.
type SinkTarget struct {
	Name   string
	Format string
	URL    string
	// Secret signs the deliveries (TOKENWARDEN_NOTIFY_TARGET_SECRETS); empty: unsigned.
	Secret string
}

// WebhookSinks delivers SinkPayloads to the worker's named targets through
// internal/webhook (https beyond loopback, no redirects, signed when the target has a
// secret). Because the body carries an access token, it posts only to json-format
// targets, and the token joins the secrets no error may show.
type WebhookSinks struct {
	targets map[string]SinkTarget
	bearer  string
	sender  *webhook.Sender
}

var _ SinkDeliverer = (*WebhookSinks)(nil)

// NewWebhookSinks returns a deliverer for targets. bearer, if set, is sent as
// "Authorization: Bearer ..."; timeout bounds one delivery (default 10 s); client, if
// set, is used for https deliveries (webhook.Options.Client).
func NewWebhookSinks(targets []SinkTarget, bearer string, timeout time.Duration, client *http.Client) *WebhookSinks {
	w := &WebhookSinks{targets: map[string]SinkTarget{}, bearer: bearer,
		sender: webhook.New(webhook.Options{Timeout: timeout, Client: client, UserAgent: "tokenwarden-sink"})}
	for _, t := range targets {
		w.targets[t.Name] = t
	}
	return w
}

// sinkNamespace is the UUID namespace of sink message IDs (SinkMessageID).
const sinkNamespace = "5b1f3c0a-8d4e-4f6b-9a27-3e6c2d9b7f41"

// SinkMessageID is the webhook-id of the sink delivery of one token set: a name-based
// (SHA-1) UUID of the credential ID and the store version. A retry, a later run of the
// Sink activity for the same version, or another worker derives the same ID, so a
// receiver can drop duplicates; a newer token set has another.
func SinkMessageID(credentialID string, version int64) string {
	name := credentialID + "\x00" + strconv.FormatInt(version, 10)
	return uuid.NewSHA1(uuid.MustParse(sinkNamespace), []byte(name)).String()
}

// DeliverSink posts p as JSON to the target named target.
func (w *WebhookSinks) DeliverSink(ctx context.Context, target string, p SinkPayload) error {
	t, ok := w.targets[target]
	if !ok {
		return &SinkRefusedError{msg: fmt.Sprintf("webhook target %q is not configured on this worker (%s_NOTIFY_TARGETS)", target, config.Prefix)}
	}
	if t.Format == config.NotifyFormatSlack {
		return &SinkRefusedError{msg: fmt.Sprintf("webhook target %q is a slack target: a chat channel must never receive a token", target)}
	}
	p.ID = SinkMessageID(p.CredentialID, p.Version)
	body, err := json.Marshal(p)
	if err != nil {
		return fmt.Errorf("webhook target %q: encode the body: %w", target, err)
	}
	h := http.Header{"Cache-Control": {"no-store"}, "Idempotency-Key": {p.ID}}
	if w.bearer != "" {
		h.Set("Authorization", "Bearer "+w.bearer)
	}
	err = w.sender.Send(ctx, webhook.Target{Label: fmt.Sprintf("webhook target %q", target), URL: t.URL, Secret: t.Secret},
		webhook.Message{ID: p.ID, Body: body, Header: h, Redact: []string{p.AccessToken}})
	var we *webhook.Error
	if errors.As(err, &we) && we.Refused {
		// A webhook.Error wraps nothing: the chain ends here.
		return &SinkRefusedError{msg: we.Error(), err: we}
	}
	return err
}

// isLoopback is webhook.IsLoopbackHost; reload URLs (reload.go) follow the same rule.
func isLoopback(host string) bool { return webhook.IsLoopbackHost(host) }
