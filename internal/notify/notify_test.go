package notify_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"go.temporal.io/sdk/testsuite"

	"github.com/tokenwarden/tokenwarden/activities"
	"github.com/tokenwarden/tokenwarden/internal/credential"
	"github.com/tokenwarden/tokenwarden/internal/notify"
	"github.com/tokenwarden/tokenwarden/internal/notify/notifytest"
	"github.com/tokenwarden/tokenwarden/internal/testlog"
	"github.com/tokenwarden/tokenwarden/internal/webhook"
)

// secretPath looks like a Slack webhook path; it must never appear in an error or a log.
const secretPath = "/services/T0SECRET1/B0SECRET2/xoxSecretWebhookPathXYZ123"

var (
	since = time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)
	now   = since.Add(2*time.Hour + 15*time.Minute)
)

func clock() time.Time { return now }

func incident() credential.Notification {
	return credential.Notification{
		Event:         credential.EventIncident,
		CredentialID:  "crm-google",
		Provider:      "oauth2",
		State:         "NEEDS_REAUTH",
		Code:          "invalid_grant",
		Reason:        "refresh token 1//0gAbCdEfGhIjKlMnOpQrStUvWxYz rejected",
		Since:         since,
		Failures:      1,
		ReseedCommand: "bin/starter reseed crm-google -secrets -",
	}
}

func newWebhook(t *testing.T, o notify.Options) (*notify.Webhook, *testlog.Buffer) {
	t.Helper()
	logs := &testlog.Buffer{}
	o.Logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	o.Now = clock
	w, err := notify.New(o)
	if err != nil {
		t.Fatal(err)
	}
	return w, logs
}

// capture is a receiver that records raw requests and answers with status.
type capture struct {
	*httptest.Server
	mu     sync.Mutex
	reqs   []captured
	status int
	delay  time.Duration
}

type captured struct {
	path   string
	header http.Header
	body   []byte
}

func newCapture(t *testing.T, status int) *capture {
	c := &capture{status: status}
	c.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		c.mu.Lock()
		c.reqs = append(c.reqs, captured{path: r.URL.Path, header: r.Header.Clone(), body: body})
		status, delay := c.status, c.delay
		c.mu.Unlock()
		if delay > 0 {
			select {
			case <-time.After(delay):
			case <-r.Context().Done():
			}
		}
		w.WriteHeader(status)
		// A careless receiver that quotes the request URL back.
		_, _ = io.WriteString(w, "error for "+r.URL.String()+" "+r.Host)
	}))
	t.Cleanup(c.Close)
	return c
}

func (c *capture) requests() []captured {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]captured(nil), c.reqs...)
}

func TestJSONFormat(t *testing.T) {
	recv := notifytest.New(t)
	w, _ := newWebhook(t, notify.Options{Default: notify.Target{Format: notify.FormatJSON, URL: recv.URL}, BearerToken: "tok-123"})
	if err := w.Notify(context.Background(), incident()); err != nil {
		t.Fatal(err)
	}
	ds := recv.Deliveries()
	if len(ds) != 1 {
		t.Fatalf("got %d deliveries, want 1", len(ds))
	}
	d := ds[0]
	n := d.Notification
	if n.Event != "incident" || n.CredentialID != "crm-google" || n.Provider != "oauth2" || n.State != "NEEDS_REAUTH" ||
		n.Code != "invalid_grant" || !n.Since.Equal(since) || n.Failures != 1 || n.ReseedCommand != "bin/starter reseed crm-google -secrets -" {
		t.Errorf("notification fields = %+v", n)
	}
	if strings.Contains(n.Reason, "AbCdEfGhIj") || !strings.Contains(n.Reason, "[redacted]") {
		t.Errorf("reason not scrubbed: %q", n.Reason)
	}
	for _, want := range []string{
		"Incident: credential crm-google (oauth2) is NEEDS_REAUTH since 2026-11-26T10:00:00Z (for 2h15m).",
		"The provider rejected the grant",
		"Reason: invalid_grant: refresh token [redacted] rejected.",
		"To reseed: bin/starter reseed crm-google -secrets -",
	} {
		if !strings.Contains(d.Text, want) {
			t.Errorf("text lacks %q:\n%s", want, d.Text)
		}
	}
	if strings.Contains(d.Text, "\n") {
		t.Errorf("text is not one paragraph: %q", d.Text)
	}
	if got := d.Header.Get("Authorization"); got != "Bearer tok-123" {
		t.Errorf("Authorization = %q", got)
	}
	if got := d.Header.Get("Content-Type"); got != "application/json" {
		t.Errorf("Content-Type = %q", got)
	}
	var raw map[string]any
	if err := json.Unmarshal(d.Body, &raw); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"event", "credential_id", "provider", "state", "reason", "code", "since", "consecutive_failures", "reseed_command", "text"} {
		if _, ok := raw[k]; !ok {
			t.Errorf("body lacks %q: %s", k, d.Body)
		}
	}
}

func TestSummaries(t *testing.T) {
	tests := []struct {
		name string
		n    credential.Notification
		want []string
		not  []string
	}{
		{
			name: "reminder",
			n: credential.Notification{Event: credential.EventReminder, Reminder: 3, CredentialID: "zalo-shop", Provider: "zalo",
				State: "EXPIRED", Code: "timeout", Since: now.Add(-50 * time.Hour), Failures: 12, ReseedCommand: "bin/starter reseed zalo-shop -secrets -"},
			want: []string{"Reminder 3: credential zalo-shop (zalo) is still EXPIRED since 2026-11-24T10:15:00Z (for 2d2h).",
				"has expired", "12 rounds in a row", "Reason: timeout.", "To reseed: bin/starter reseed zalo-shop -secrets -"},
		},
		{
			name: "degraded incident",
			n:    credential.Notification{Event: credential.EventIncident, CredentialID: "c", Provider: "feishu", State: "DEGRADED", Reason: "HTTP 502", Since: now.Add(-90 * time.Second), Failures: 3},
			want: []string{"Incident: credential c (feishu) is DEGRADED since", "(for 1m)", "still valid", "Reason: HTTP 502."},
			not:  []string{"To reseed"},
		},
		{
			name: "recovered",
			n: credential.Notification{Event: credential.EventRecovered, CredentialID: "c", Provider: "oauth2", State: "ACTIVE",
				Since: now.Add(-5 * time.Second), ReseedCommand: "bin/starter reseed c -secrets -"},
			want: []string{"Recovered: credential c (oauth2) is ACTIVE again since", "(for 5s)."},
			not:  []string{"To reseed", "Reason"},
		},
		{
			name: "retired",
			n:    credential.Notification{Event: credential.EventRetired, CredentialID: "c", Provider: "oauth2", State: "RETIRED", Since: now},
			want: []string{"Retired: credential c (oauth2) is no longer refreshed; state RETIRED since 2026-11-26T12:15:00Z (for 0s)."},
			not:  []string{"To reseed"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := notify.Summary(tt.n, "", now)
			for _, w := range tt.want {
				if !strings.Contains(s, w) {
					t.Errorf("summary lacks %q:\n%s", w, s)
				}
			}
			for _, w := range tt.not {
				if strings.Contains(s, w) {
					t.Errorf("summary has %q:\n%s", w, s)
				}
			}
		})
	}
}

func TestDuration(t *testing.T) {
	for d, want := range map[time.Duration]string{
		-time.Second: "0s", 45 * time.Second: "45s", 12*time.Minute + 5*time.Second: "12m", 2*time.Hour + 15*time.Minute: "2h15m",
		3 * time.Hour: "3h", 76 * time.Hour: "3d4h", 48 * time.Hour: "2d",
	} {
		if got := notify.Duration(d); got != want {
			t.Errorf("Duration(%s) = %q, want %q", d, got, want)
		}
	}
}

type slackMsg struct {
	Text   string `json:"text"`
	Blocks []struct {
		Type string `json:"type"`
		Text *struct {
			Type string `json:"type"`
			Text string `json:"text"`
		} `json:"text"`
		Fields []struct {
			Type string `json:"type"`
			Text string `json:"text"`
		} `json:"fields"`
		Elements []struct {
			Type string `json:"type"`
			Text string `json:"text"`
		} `json:"elements"`
	} `json:"blocks"`
}

func TestSlackFormat(t *testing.T) {
	c := newCapture(t, http.StatusOK)
	w, _ := newWebhook(t, notify.Options{Default: notify.Target{Format: notify.FormatSlack, URL: c.URL + secretPath}, BearerToken: "tok-123"})
	n := incident()
	n.Reason = "grant revoked <!channel> see <https://evil.example|here> & more"
	if err := w.Notify(context.Background(), n); err != nil {
		t.Fatal(err)
	}
	reqs := c.requests()
	if len(reqs) != 1 {
		t.Fatalf("got %d requests", len(reqs))
	}
	r := reqs[0]
	if r.path != secretPath {
		t.Errorf("posted to %q", r.path)
	}
	if got := r.header.Get("Authorization"); got != "" {
		t.Errorf("the bearer token went to Slack: %q", got)
	}
	if got := r.header.Get("Content-Type"); got != "application/json" {
		t.Errorf("Content-Type = %q", got)
	}
	var m slackMsg
	if err := json.Unmarshal(r.body, &m); err != nil {
		t.Fatalf("%v: %s", err, r.body)
	}
	if !strings.HasPrefix(m.Text, "Incident: credential crm-google (oauth2) is NEEDS_REAUTH since 2026-11-26T10:00:00Z (for 2h15m).") {
		t.Errorf("text = %q", m.Text)
	}
	if strings.Contains(m.Text, "<!channel>") || strings.Contains(string(r.body), "<https://evil") {
		t.Errorf("provider text not escaped for mrkdwn: %s", r.body)
	}
	if len(m.Blocks) < 3 {
		t.Fatalf("blocks = %s", r.body)
	}
	h := m.Blocks[0]
	if h.Type != "header" || h.Text == nil || h.Text.Type != "plain_text" || h.Text.Text != ":rotating_light: Incident: crm-google" {
		t.Errorf("header block = %+v", h)
	}
	s := m.Blocks[1]
	if s.Type != "section" || s.Text == nil || !strings.Contains(s.Text.Text, "The provider rejected the grant") {
		t.Errorf("summary section = %+v", s)
	}
	fields := map[string]string{}
	for _, f := range s.Fields {
		if f.Type != "mrkdwn" {
			t.Errorf("field type %q", f.Type)
		}
		name, value, _ := strings.Cut(f.Text, "\n")
		fields[name] = value
	}
	want := map[string]string{
		"*Credential*": "`crm-google`",
		"*Provider*":   "oauth2",
		"*State*":      "NEEDS_REAUTH",
		"*Since*":      "2026-11-26T10:00:00Z (for 2h15m)",
		"*Reason*":     "invalid_grant: grant revoked &lt;!channel&gt; see &lt;https://evil.example|here&gt; &amp; more",
	}
	for k, v := range want {
		if fields[k] != v {
			t.Errorf("field %s = %q, want %q", k, fields[k], v)
		}
	}
	rs := m.Blocks[2]
	if rs.Type != "section" || rs.Text == nil || rs.Text.Text != "*To reseed:*\n```bin/starter reseed crm-google -secrets -```" {
		t.Errorf("reseed block = %+v", rs)
	}
}

func TestSlackRecoveredHasNoReseed(t *testing.T) {
	c := newCapture(t, http.StatusOK)
	w, _ := newWebhook(t, notify.Options{Default: notify.Target{Format: notify.FormatSlack, URL: c.URL}})
	n := credential.Notification{Event: credential.EventRecovered, CredentialID: "c", Provider: "oauth2", State: "ACTIVE", Since: since,
		ReseedCommand: "bin/starter reseed c -secrets -"}
	if err := w.Notify(context.Background(), n); err != nil {
		t.Fatal(err)
	}
	body := string(c.requests()[0].body)
	if strings.Contains(body, "To reseed") || !strings.Contains(body, ":white_check_mark: Recovered: c") {
		t.Errorf("body = %s", body)
	}
}

func TestNamedTargets(t *testing.T) {
	def, ops := notifytest.New(t), notifytest.New(t)
	teamB := newCapture(t, http.StatusOK)
	w, logs := newWebhook(t, notify.Options{
		Default: notify.Target{Format: notify.FormatJSON, URL: def.URL},
		Targets: []notify.Target{
			{Name: "ops", Format: notify.FormatJSON, URL: ops.URL},
			{Name: "team-b", Format: notify.FormatSlack, URL: teamB.URL + secretPath},
		},
	})
	send := func(target, id string) {
		t.Helper()
		n := incident()
		n.Target, n.CredentialID = target, id
		if err := w.Notify(context.Background(), n); err != nil {
			t.Fatalf("target %q: %v", target, err)
		}
	}
	send("", "to-default")
	send("ops", "to-ops")
	send("team-b", "to-team-b")
	send("nobody", "to-nobody")

	if got := def.Received(); len(got) != 2 || got[0].CredentialID != "to-default" || got[1].CredentialID != "to-nobody" {
		t.Errorf("default received %+v", got)
	}
	if got := ops.Received(); len(got) != 1 || got[0].CredentialID != "to-ops" || got[0].Target != "ops" {
		t.Errorf("ops received %+v", got)
	}
	if got := teamB.requests(); len(got) != 1 || !strings.Contains(string(got[0].body), `"blocks"`) || !strings.Contains(string(got[0].body), "to-team-b") {
		t.Errorf("team-b received %d requests", len(got))
	}
	fallback := def.Deliveries()[1]
	if !strings.Contains(fallback.Text, `notify_target "nobody" is not configured`) {
		t.Errorf("fallback text does not say why: %q", fallback.Text)
	}
	if !strings.Contains(logs.String(), "target=nobody") {
		t.Errorf("no warning about the unknown target:\n%s", logs)
	}
	if s := w.String(); s != "default (json), ops (json), team-b (slack)" {
		t.Errorf("String() = %q", s)
	}
}

func TestNoDefaultTarget(t *testing.T) {
	ops := notifytest.New(t)
	w, logs := newWebhook(t, notify.Options{Targets: []notify.Target{{Name: "ops", Format: notify.FormatJSON, URL: ops.URL}}})

	// No default: a notification for the default is only logged.
	if err := w.Notify(context.Background(), incident()); err != nil {
		t.Fatalf("default without a URL: %v", err)
	}
	if !strings.Contains(logs.String(), "no default webhook configured") {
		t.Errorf("not logged:\n%s", logs)
	}
	// An unknown target has nowhere to go: a retryable error that names it.
	n := incident()
	n.Target = "team-x"
	err := w.Notify(context.Background(), n)
	if err == nil || !strings.Contains(err.Error(), `notify target "team-x" is not configured`) {
		t.Fatalf("err = %v", err)
	}
	if len(ops.Received()) != 0 {
		t.Errorf("ops received a notification for another target")
	}
	if w.String() != "default (log only), ops (json)" {
		t.Errorf("String() = %q", w.String())
	}
}

// TestFailuresNeverShowTheURL covers every failure path: the message names the target
// and says what went wrong, and neither it nor the log holds the URL.
func TestFailuresNeverShowTheURL(t *testing.T) {
	closed := httptest.NewServer(http.NotFoundHandler())
	closedURL := closed.URL
	closed.Close()

	tests := []struct {
		name       string
		status     int
		delay      time.Duration
		url        func(c *capture) string
		wantStatus int
		wantMsg    []string
		timeout    bool
	}{
		{name: "404", status: http.StatusNotFound, wantStatus: 404, wantMsg: []string{`notify target "ops" (slack): webhook answered 404 Not Found`}},
		{name: "410", status: http.StatusGone, wantStatus: 410, wantMsg: []string{"410 Gone"}},
		{name: "429", status: http.StatusTooManyRequests, wantStatus: 429, wantMsg: []string{"429"}},
		{name: "500", status: http.StatusInternalServerError, wantStatus: 500, wantMsg: []string{"500 Internal Server Error"}},
		{name: "302 not followed", status: http.StatusFound, wantStatus: 302, wantMsg: []string{"302 Found", "redirects are not followed"}},
		{name: "connection refused", url: func(*capture) string { return closedURL + secretPath }, wantMsg: []string{`notify target "ops" (slack): post to the webhook`}},
		{name: "timeout", status: http.StatusOK, delay: 5 * time.Second, timeout: true, wantMsg: []string{"no answer from the webhook within 200ms"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newCapture(t, tt.status)
			c.delay = tt.delay
			u := c.URL + secretPath + "?token=QuerySecretValue123"
			if tt.url != nil {
				u = tt.url(c)
			}
			w, logs := newWebhook(t, notify.Options{
				Targets: []notify.Target{{Name: "ops", Format: notify.FormatSlack, URL: u}},
				Timeout: 200 * time.Millisecond,
			})
			n := incident()
			n.Target = "ops"
			start := time.Now()
			err := w.Notify(context.Background(), n)
			if err == nil {
				t.Fatal("no error")
			}
			if el := time.Since(start); el > 3*time.Second {
				t.Errorf("took %s", el)
			}
			var de *webhook.Error
			if !errors.As(err, &de) || de.Target != `notify target "ops" (slack)` || de.StatusCode != tt.wantStatus || de.Timeout != tt.timeout {
				t.Errorf("err = %#v", err)
			}
			if tt.timeout && !errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("timeout is not context.DeadlineExceeded: %v", err)
			}
			if errors.Unwrap(err) != nil {
				t.Errorf("error wraps %v: Temporal would record it", errors.Unwrap(err))
			}
			for _, w := range tt.wantMsg {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
			for _, secret := range []string{"T0SECRET1", "xoxSecretWebhookPath", "QuerySecretValue", "services/"} {
				if strings.Contains(err.Error(), secret) {
					t.Errorf("error shows the URL: %q", err)
				}
				if strings.Contains(logs.String(), secret) {
					t.Errorf("log shows the URL:\n%s", logs)
				}
			}
		})
	}
}

// TestNoRedirects: no redirect is followed, not even a 307 within the same host (the
// rule internal/webhook keeps for every webhook).
func TestNoRedirects(t *testing.T) {
	other := newCapture(t, http.StatusOK)
	var hits []string
	var mu sync.Mutex
	mux := http.NewServeMux()
	mux.HandleFunc("/same", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/final", http.StatusTemporaryRedirect)
	})
	mux.HandleFunc("/final", func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		hits = append(hits, r.Method)
		mu.Unlock()
	})
	mux.HandleFunc("/elsewhere", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, other.URL+"/stolen", http.StatusPermanentRedirect)
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)

	w, _ := newWebhook(t, notify.Options{
		Default: notify.Target{Format: notify.FormatJSON, URL: srv.URL + "/same"},
		Targets: []notify.Target{{Name: "x", Format: notify.FormatJSON, URL: srv.URL + "/elsewhere"}},
	})
	err := w.Notify(context.Background(), incident())
	var de *webhook.Error
	if !errors.As(err, &de) || de.StatusCode != http.StatusTemporaryRedirect {
		t.Errorf("307 within the host: err = %v", err)
	}
	mu.Lock()
	if len(hits) != 0 {
		t.Errorf("the redirect was followed: %q", hits)
	}
	mu.Unlock()

	n := incident()
	n.Target = "x"
	err = w.Notify(context.Background(), n)
	if !errors.As(err, &de) || de.StatusCode != http.StatusPermanentRedirect {
		t.Errorf("308 to another host: err = %v", err)
	}
	if len(other.requests()) != 0 {
		t.Error("the other host received the notification")
	}
}

// TestSignedAndRetried: a target with a secret gets deliveries that verify with that
// secret and no other, and a retried delivery of one notification keeps its webhook-id.
func TestSignedAndRetried(t *testing.T) {
	secret := webhook.SecretPrefix + base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{7}, 32))
	other := webhook.SecretPrefix + base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{8}, 32))
	c := newCapture(t, http.StatusServiceUnavailable)
	w, logs := newWebhook(t, notify.Options{Targets: []notify.Target{
		{Name: "ops", Format: notify.FormatJSON, URL: c.URL + secretPath, Secret: secret}}})
	n := incident()
	n.Target, n.ID = "ops", "5f0c3c4e-6d0a-5b7e-9a51-0d7c1f4f2a10"
	if err := w.Notify(context.Background(), n); err == nil {
		t.Fatal("503 accepted")
	}
	c.mu.Lock()
	c.status = http.StatusOK
	c.mu.Unlock()
	if err := w.Notify(context.Background(), n); err != nil {
		t.Fatal(err)
	}
	reqs := c.requests()
	if len(reqs) != 2 {
		t.Fatalf("%d requests", len(reqs))
	}
	for i, r := range reqs {
		if got := r.header.Get(webhook.HeaderID); got != n.ID {
			t.Errorf("attempt %d: webhook-id %q, want the notification's ID %q", i+1, got, n.ID)
		}
		if err := webhook.Verify(secret, r.header, r.body, now, 0); err != nil {
			t.Errorf("attempt %d: %v", i+1, err)
		}
		if err := webhook.Verify(other, r.header, r.body, now, 0); !errors.Is(err, webhook.ErrBadSignature) {
			t.Errorf("attempt %d: verified with another target's secret: %v", i+1, err)
		}
	}
	for _, s := range []string{secret, strings.TrimPrefix(secret, webhook.SecretPrefix), "xoxSecretWebhookPath"} {
		if strings.Contains(logs.String(), s) {
			t.Errorf("log shows a secret:\n%s", logs)
		}
	}
	if w.String() != "default (log only), ops (json, signed)" {
		t.Errorf("String() = %q", w.String())
	}
}

func TestNon2xxAnd2xx(t *testing.T) {
	c := newCapture(t, http.StatusNoContent)
	w, _ := newWebhook(t, notify.Options{Default: notify.Target{Format: notify.FormatJSON, URL: c.URL}})
	if err := w.Notify(context.Background(), incident()); err != nil {
		t.Fatalf("204: %v", err)
	}
	c.mu.Lock()
	c.status = http.StatusBadGateway
	c.mu.Unlock()
	err := w.Notify(context.Background(), incident())
	var de *webhook.Error
	if !errors.As(err, &de) || de.StatusCode != http.StatusBadGateway || de.Target != "notify default target (json)" || !strings.Contains(err.Error(), "notify default target (json): webhook answered 502") {
		t.Errorf("502: err = %v", err)
	}
}

func TestNewRejectsBadTargets(t *testing.T) {
	for name, o := range map[string]notify.Options{
		"relative URL":   {Default: notify.Target{Format: "json", URL: "hooks.example" + secretPath}},
		"unknown format": {Targets: []notify.Target{{Name: "ops", Format: "teams", URL: "https://hooks.example" + secretPath}}},
		"bad name":       {Targets: []notify.Target{{Name: "ops team", Format: "json", URL: "https://hooks.example" + secretPath}}},
		"duplicate": {Targets: []notify.Target{{Name: "ops", Format: "json", URL: "https://hooks.example/a"},
			{Name: "ops", Format: "json", URL: "https://hooks.example" + secretPath}}},
		"named default": {Default: notify.Target{Name: "d", Format: "json", URL: "https://hooks.example" + secretPath}},
	} {
		_, err := notify.New(o)
		if err == nil {
			t.Errorf("%s: accepted", name)
			continue
		}
		if strings.Contains(err.Error(), "SECRET") || strings.Contains(err.Error(), "hooks.example") {
			t.Errorf("%s: error shows the URL: %v", name, err)
		}
	}
}

// TestThroughTheActivity runs the Notify activity with the webhook as its Notifier: the
// delivery carries the notification's ID as its idempotency key (stable across
// Temporal's retries: activities TestNotifyIDIsStableAcrossRetries), and a failure's
// recorded message holds no URL.
func TestThroughTheActivity(t *testing.T) {
	recv := notifytest.New(t)
	w, _ := newWebhook(t, notify.Options{Default: notify.Target{Format: notify.FormatJSON, URL: recv.URL}})
	var suite testsuite.WorkflowTestSuite
	env := suite.NewTestActivityEnvironment()
	acts := &activities.Activities{Notifier: w, Logger: slog.New(slog.DiscardHandler)}
	env.RegisterActivity(acts)
	if _, err := env.ExecuteActivity(acts.Notify, incident()); err != nil {
		t.Fatal(err)
	}
	got := recv.WaitFor(t, func(n credential.Notification) bool { return n.CredentialID == "crm-google" }, 5*time.Second)
	if got.State != "NEEDS_REAUTH" {
		t.Errorf("got %+v", got)
	}
	// The key is the notification's ID, which the body carries too (the Notify activity
	// derives it so that every retry of the delivery has the same one).
	if key := recv.Deliveries()[0].Header.Get("Idempotency-Key"); key == "" || key != got.ID {
		t.Errorf("Idempotency-Key %q, notification ID %q: want the same, not empty", key, got.ID)
	}
	if id := recv.Deliveries()[0].Header.Get(webhook.HeaderID); id != got.ID {
		t.Errorf("webhook-id %q, notification ID %q: want the same", id, got.ID)
	}

	recv.FailNext(1, http.StatusForbidden)
	_, err := env.ExecuteActivity(acts.Notify, incident())
	if err == nil {
		t.Fatal("403 accepted")
	}
	if strings.Contains(err.Error(), notifytest.Path) || !strings.Contains(err.Error(), "403") {
		t.Errorf("activity error = %v", err)
	}
}
