package webhook_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tokenwarden/tokenwarden/internal/webhook"
)

// Secrets of the tests: 32-byte keys.
var (
	secretA = webhook.SecretPrefix + base64.StdEncoding.EncodeToString(bytes.Repeat([]byte("a"), 32))
	secretB = webhook.SecretPrefix + base64.StdEncoding.EncodeToString(bytes.Repeat([]byte("b"), 32))
)

// hookPath looks like a secret webhook path; it must never appear in an error.
const hookPath = "/hooks/T0SECRET1/B0SECRET2/xoxSecretWebhookPathXYZ123"

var now = time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)

type request struct {
	header http.Header
	body   []byte
}

// receiver records every request and answers with handler (200 if nil).
type receiver struct {
	*httptest.Server
	mu      sync.Mutex
	reqs    []request
	handler http.HandlerFunc
}

func newReceiver(t *testing.T, handler http.HandlerFunc) *receiver {
	t.Helper()
	r := &receiver{handler: handler}
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		r.reqs = append(r.reqs, request{header: req.Header.Clone(), body: body})
		r.mu.Unlock()
		if r.handler != nil {
			r.handler(w, req)
		}
	}))
	t.Cleanup(r.Close)
	return r
}

func (r *receiver) requests() []request {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]request(nil), r.reqs...)
}

func sender(timeout time.Duration) *webhook.Sender {
	return webhook.New(webhook.Options{Timeout: timeout, Now: func() time.Time { return now }})
}

func TestSignedDeliveryVerifies(t *testing.T) {
	recv := newReceiver(t, nil)
	s := sender(0)
	target := webhook.Target{Label: `target "ops"`, URL: recv.URL + hookPath, Secret: secretA}
	body := []byte(`{"event":"incident"}`)
	if err := s.Send(context.Background(), target, webhook.Message{ID: "msg_1", Body: body}); err != nil {
		t.Fatal(err)
	}
	got := recv.requests()
	if len(got) != 1 {
		t.Fatalf("%d requests", len(got))
	}
	h := got[0].header
	if h.Get("webhook-id") != "msg_1" || h.Get("webhook-timestamp") != strconv.FormatInt(now.Unix(), 10) ||
		!strings.HasPrefix(h.Get("webhook-signature"), "v1,") || h.Get("Content-Type") != "application/json" {
		t.Errorf("headers %v", h)
	}
	if !bytes.Equal(got[0].body, body) {
		t.Errorf("body %q", got[0].body)
	}
	if err := webhook.Verify(secretA, h, got[0].body, now.Add(time.Minute), 0); err != nil {
		t.Errorf("verify with the target's secret: %v", err)
	}
	if err := webhook.Verify(secretB, h, got[0].body, now, 0); !errors.Is(err, webhook.ErrBadSignature) {
		t.Errorf("verify with another secret: %v", err)
	}
	if err := webhook.Verify(secretA, h, []byte(`{"event":"recovered"}`), now, 0); !errors.Is(err, webhook.ErrBadSignature) {
		t.Errorf("tampered body: %v", err)
	}
	tampered := h.Clone()
	tampered.Set("webhook-timestamp", strconv.FormatInt(now.Unix()+1, 10))
	if err := webhook.Verify(secretA, tampered, got[0].body, now, 0); !errors.Is(err, webhook.ErrBadSignature) {
		t.Errorf("tampered timestamp: %v", err)
	}
	tampered = h.Clone()
	tampered.Set("webhook-id", "msg_2")
	if err := webhook.Verify(secretA, tampered, got[0].body, now, 0); !errors.Is(err, webhook.ErrBadSignature) {
		t.Errorf("tampered id: %v", err)
	}
	if err := webhook.Verify(secretA, h, got[0].body, now.Add(time.Hour), 0); !errors.Is(err, webhook.ErrTimestamp) {
		t.Errorf("an hour late (a replay): %v", err)
	}
	// A rotating sender lists several signatures; one match suffices.
	other, _ := webhook.Sign(secretB, "msg_1", now, body)
	both := h.Clone()
	both.Set("webhook-signature", other+" "+h.Get("webhook-signature"))
	if err := webhook.Verify(secretA, both, body, now, 0); err != nil {
		t.Errorf("two signatures: %v", err)
	}
	if err := webhook.Verify(secretA, http.Header{}, body, now, 0); !errors.Is(err, webhook.ErrNoSignature) {
		t.Errorf("unsigned: %v", err)
	}
}

// TestSignatureByHand recomputes the signature from its definition, independent of
// Sign: base64(HMAC-SHA256(key, id "." ts "." body)).
func TestSignatureByHand(t *testing.T) {
	key := bytes.Repeat([]byte("a"), 32)
	sig, err := webhook.Sign(secretA, "msg_p5jXN8AQM9LWM0D4loKWxJek", time.Unix(1614265330, 0), []byte(`{"test": 2432232314}`))
	if err != nil {
		t.Fatal(err)
	}
	want := "v1," + base64.StdEncoding.EncodeToString(hmacSHA256(key, []byte(`msg_p5jXN8AQM9LWM0D4loKWxJek.1614265330.{"test": 2432232314}`)))
	if sig != want {
		t.Errorf("Sign = %q, want %q", sig, want)
	}
}

func TestUnsignedTargetStillCarriesIDAndTimestamp(t *testing.T) {
	recv := newReceiver(t, nil)
	if err := sender(0).Send(context.Background(), webhook.Target{Label: "default target", URL: recv.URL},
		webhook.Message{ID: "n-1", Body: []byte(`{}`)}); err != nil {
		t.Fatal(err)
	}
	h := recv.requests()[0].header
	if h.Get("webhook-id") != "n-1" || h.Get("webhook-timestamp") == "" || h.Get("webhook-signature") != "" {
		t.Errorf("headers %v", h)
	}
}

func TestParseSecretRejects(t *testing.T) {
	for name, s := range map[string]string{
		"no prefix":  strings.TrimPrefix(secretA, webhook.SecretPrefix),
		"not base64": webhook.SecretPrefix + "!!!!not-base64-SECRETVALUE",
		"short key":  webhook.SecretPrefix + base64.StdEncoding.EncodeToString([]byte("SECRETshort")),
	} {
		_, err := webhook.ParseSecret(s)
		if err == nil {
			t.Errorf("%s: accepted", name)
			continue
		}
		if strings.Contains(err.Error(), "SECRET") || strings.Contains(err.Error(), strings.TrimPrefix(s, webhook.SecretPrefix)) {
			t.Errorf("%s: error shows the secret: %v", name, err)
		}
	}
	if _, err := webhook.ParseSecret(secretA); err != nil {
		t.Errorf("good secret: %v", err)
	}
}

func TestNoRedirectFollowed(t *testing.T) {
	elsewhere := newReceiver(t, nil)
	for _, code := range []int{http.StatusFound, http.StatusTemporaryRedirect, http.StatusPermanentRedirect} {
		recv := newReceiver(t, func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/final" {
				return
			}
			http.Redirect(w, r, elsewhere.URL+"/stolen", code)
		})
		err := sender(0).Send(context.Background(), webhook.Target{Label: "t", URL: recv.URL + hookPath},
			webhook.Message{ID: "x", Body: []byte(`{}`)})
		var we *webhook.Error
		if !errors.As(err, &we) || we.StatusCode != code || !strings.Contains(err.Error(), "redirects are not followed") {
			t.Errorf("%d: err = %v", code, err)
		}
		if len(recv.requests()) != 1 {
			t.Errorf("%d: the receiver saw %d requests", code, len(recv.requests()))
		}
	}
	if n := len(elsewhere.requests()); n != 0 {
		t.Errorf("the redirect's target received %d requests", n)
	}
}

func TestPlainHTTPOnlyToLoopback(t *testing.T) {
	for _, u := range []string{"http://hooks.example.com" + hookPath, "http://192.0.2.10:8080" + hookPath, "http://[2001:db8::1]" + hookPath} {
		err := sender(0).Send(context.Background(), webhook.Target{Label: `target "plain"`, URL: u},
			webhook.Message{ID: "x", Body: []byte(`{}`)})
		var we *webhook.Error
		if !errors.As(err, &we) || !we.Refused || !strings.Contains(err.Error(), `target "plain": needs an https URL`) {
			t.Errorf("err = %v", err)
		}
		if err != nil && (strings.Contains(err.Error(), "SECRET") || strings.Contains(err.Error(), "example")) {
			t.Errorf("error shows the URL: %v", err)
		}
	}
	for _, u := range []string{"http://localhost:1/x", "http://127.0.0.1/x", "http://[::1]/x", "https://hooks.example.com/x"} {
		if err := webhook.CheckURL(u); err != nil {
			t.Errorf("%s: %v", u, err)
		}
	}
}

func TestErrorsNeverShowSecrets(t *testing.T) {
	closed := httptest.NewServer(http.NotFoundHandler())
	closedURL := closed.URL
	closed.Close()
	const bearer = "bearer-Th1s-is-SECRET"
	const token = "access-T0KEN-SECRET-value"
	echo := func(status int) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(status)
			// A careless receiver that quotes everything back.
			b, _ := io.ReadAll(r.Body)
			_, _ = io.WriteString(w, "error for "+r.URL.String()+" "+r.Header.Get("Authorization")+" "+string(b))
		}
	}
	slow := func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-time.After(5 * time.Second):
		case <-r.Context().Done():
		}
	}
	tests := []struct {
		name    string
		handler http.HandlerFunc
		url     string
		status  int
		timeout bool
		want    string
	}{
		{name: "404 echoing the request", handler: echo(404), status: 404, want: `target "ops": webhook answered 404 Not Found`},
		{name: "500", handler: echo(500), status: 500, want: "500 Internal Server Error"},
		{name: "connection refused", url: closedURL + hookPath + "?token=QuerySecretValue123", want: `target "ops": post to the webhook`},
		{name: "timeout", handler: slow, timeout: true, want: "no answer from the webhook within 200ms"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u := tt.url
			if u == "" {
				u = newReceiver(t, tt.handler).URL + hookPath + "?token=QuerySecretValue123"
			}
			err := sender(200*time.Millisecond).Send(context.Background(),
				webhook.Target{Label: `target "ops"`, URL: u, Secret: secretA},
				webhook.Message{ID: "x", Body: []byte(`{"access_token":"` + token + `"}`),
					Header: http.Header{"Authorization": {"Bearer " + bearer}}, Redact: []string{token}})
			var we *webhook.Error
			if !errors.As(err, &we) || we.StatusCode != tt.status || we.Timeout != tt.timeout || we.Refused {
				t.Fatalf("err = %#v", err)
			}
			if tt.timeout && !errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("timeout is not context.DeadlineExceeded: %v", err)
			}
			if errors.Unwrap(err) != nil {
				t.Errorf("error wraps %v: Temporal would record it", errors.Unwrap(err))
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q lacks %q", err, tt.want)
			}
			for _, secret := range []string{"SECRET", "xoxSecretWebhookPath", "QuerySecretValue", "hooks/", strings.TrimPrefix(secretA, "whsec_")} {
				if strings.Contains(err.Error(), secret) {
					t.Errorf("error shows a secret (%s): %q", secret, err)
				}
			}
		})
	}
}

func TestTargetPrintsOnlyItsLabel(t *testing.T) {
	tg := webhook.Target{Label: `target "ops"`, URL: "https://hooks.example.com" + hookPath, Secret: secretA}
	if tg.String() != `target "ops"` || tg.LogValue().String() != `target "ops"` {
		t.Errorf("String %q, LogValue %q", tg.String(), tg.LogValue())
	}
}

func TestCappedAnswer(t *testing.T) {
	recv := newReceiver(t, func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusBadRequest)
		_, _ = io.WriteString(w, strings.Repeat("no_service ", 10000))
	})
	err := sender(0).Send(context.Background(), webhook.Target{Label: "t", URL: recv.URL}, webhook.Message{ID: "x", Body: []byte(`{}`)})
	if err == nil || len(err.Error()) > 300 || !strings.Contains(err.Error(), "400 Bad Request: no_service") {
		t.Errorf("err = %v", err)
	}
}
