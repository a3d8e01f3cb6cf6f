// Package notifytest is a fake webhook receiver for tests: an httptest server that
// records every notification posted to it in the json format.
//
//	recv := notifytest.New(t)
//	// ... TOKENWARDEN_NOTIFY_WEBHOOK_URL=recv.URL ...
//	n := recv.WaitFor(t, func(n credential.Notification) bool {
//		return n.Event == credential.EventIncident && n.CredentialID == "crm-google"
//	}, time.Minute)
package notifytest

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tokenwarden/tokenwarden/internal/credential"
)

// Path is the path of URL: secret-looking, so that tests can check it never leaks.
const Path = "/hooks/T0KENWARDEN/B0TEST/s3cretWebhookPathDoNotLog"

// Delivery is one request the receiver accepted.
type Delivery struct {
	Notification credential.Notification
	// Text is the json format's human summary.
	Text   string
	Header http.Header
	Body   []byte
}

// Receiver is a running fake webhook.
type Receiver struct {
	// URL is the webhook URL to configure (server address plus Path).
	URL    string
	server *httptest.Server

	mu         sync.Mutex
	deliveries []Delivery
	failNext   int
	failStatus int
	changed    chan struct{} // closed and replaced on every delivery
}

// New starts a receiver on loopback; it is closed when the test ends.
func New(t testing.TB) *Receiver {
	t.Helper()
	r := &Receiver{changed: make(chan struct{})}
	r.server = httptest.NewServer(http.HandlerFunc(r.serve))
	r.URL = r.server.URL + Path
	t.Cleanup(r.server.Close)
	return r
}

// FailNext makes the next n requests fail with status (they are not recorded).
func (r *Receiver) FailNext(n, status int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.failNext, r.failStatus = n, status
}

func (r *Receiver) serve(w http.ResponseWriter, req *http.Request) {
	if req.Method != http.MethodPost || req.URL.Path != Path {
		http.Error(w, "no_service", http.StatusNotFound)
		return
	}
	if ct := req.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		http.Error(w, "invalid_content_type", http.StatusBadRequest)
		return
	}
	body, err := io.ReadAll(io.LimitReader(req.Body, 1<<20))
	if err != nil {
		http.Error(w, "read error", http.StatusBadRequest)
		return
	}
	var msg struct {
		credential.Notification
		Text string `json:"text"`
	}
	if err := json.Unmarshal(body, &msg); err != nil {
		http.Error(w, "invalid_payload", http.StatusBadRequest)
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.failNext > 0 {
		r.failNext--
		http.Error(w, "failing on purpose", r.failStatus)
		return
	}
	r.deliveries = append(r.deliveries, Delivery{Notification: msg.Notification, Text: msg.Text, Header: req.Header.Clone(), Body: body})
	close(r.changed)
	r.changed = make(chan struct{})
	_, _ = io.WriteString(w, "ok")
}

// Deliveries returns every accepted request so far, oldest first.
func (r *Receiver) Deliveries() []Delivery {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Delivery(nil), r.deliveries...)
}

// Received returns every notification received so far, oldest first.
func (r *Receiver) Received() []credential.Notification {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]credential.Notification, len(r.deliveries))
	for i, d := range r.deliveries {
		out[i] = d.Notification
	}
	return out
}

// WaitFor returns the first notification (oldest first) for which pred is true, waiting
// up to timeout for it to arrive; it fails the test, listing what did arrive, if none does.
func (r *Receiver) WaitFor(t testing.TB, pred func(credential.Notification) bool, timeout time.Duration) credential.Notification {
	t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		r.mu.Lock()
		for _, d := range r.deliveries {
			if pred(d.Notification) {
				r.mu.Unlock()
				return d.Notification
			}
		}
		changed := r.changed
		r.mu.Unlock()
		select {
		case <-changed:
		case <-deadline.C:
			t.Fatalf("notifytest: no matching notification within %s; received:\n%s", timeout, r.describe())
			return credential.Notification{}
		}
	}
}

func (r *Receiver) describe() string {
	var b strings.Builder
	for _, n := range r.Received() {
		fmt.Fprintf(&b, "  %s %s state=%s code=%s reminder=%d target=%q since=%s\n", n.Event, n.CredentialID, n.State, n.Code,
			n.Reminder, n.Target, n.Since.Format(time.RFC3339))
	}
	if b.Len() == 0 {
		return "  (nothing)\n"
	}
	return b.String()
}
