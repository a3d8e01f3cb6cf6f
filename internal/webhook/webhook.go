// Package webhook is tokenwarden's one sender of webhooks, used by notifications
// (internal/notify) and by webhook sinks (activities/sink.go). Every delivery is a JSON
// POST that:
//
//   - goes over https, or plain http only to a loopback host, and then only when the
//     address actually dialled is a loopback address (a name that resolves elsewhere
//     is refused);
//   - follows no redirect: a 307 to another host would hand it the body (an access
//     token, for a sink) and the bearer token, and a 302 would turn the POST into a
//     body-less GET whose 200 passes for a delivery;
//   - is bounded by a timeout, and reads at most a few kilobytes of the answer;
//   - is signed the Standard Webhooks way when its target has a secret (sign.go), with a
//     webhook-id the caller keeps the same on every retry of one message.
//
// A target's URL is a secret (anyone holding a Slack webhook URL can post to the
// channel). No error of this package contains it, any part of it long enough to be
// secret, the signing secret, an extra header's value or a secret the caller names;
// and no error wraps a cause: Temporal records an error's whole Unwrap chain in workflow
// history, and Go's HTTP errors quote the URL. Target's String and LogValue show only
// its label, so logging a target cannot leak it either.
package webhook

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/tokenwarden/tokenwarden/internal/provider/scrub"
)

// DefaultTimeout bounds one delivery when Options.Timeout is zero.
const DefaultTimeout = 10 * time.Second

// Limits of what is read of an answer.
const (
	// maxSnippet is how much of a failed answer is read for its message (Slack
	// explains itself there: no_service, invalid_payload, channel_is_archived).
	maxSnippet = 1024
	// maxDrain is how much more is read and discarded so the connection can be reused;
	// a longer answer closes it.
	maxDrain = 64 << 10
)

// Target is one webhook. URL and Secret are secrets.
type Target struct {
	// Label names the target in errors and logs, e.g. `notify target "ops"`.
	Label string
	URL   string
	// Secret is the signing secret ("whsec_..."); empty sends the delivery unsigned.
	Secret string
}

// String is the label: never the URL or the secret.
func (t Target) String() string { return t.Label }

// LogValue is the label, for slog.
func (t Target) LogValue() slog.Value { return slog.StringValue(t.Label) }

// Signed reports whether deliveries to t carry a webhook-signature.
func (t Target) Signed() bool { return t.Secret != "" }

// CheckURL accepts an absolute https URL with a host, or an http one whose host is
// loopback ("localhost" or a loopback IP). Its errors never quote the URL (url.Parse's
// do, so they are not passed on).
func CheckURL(raw string) error {
	const hidden = " (the URL is not shown: webhook URLs are secrets)"
	if strings.ContainsFunc(raw, func(r rune) bool { return r <= ' ' || r == 0x7f }) {
		return errors.New("URL contains spaces or control characters" + hidden)
	}
	u, err := url.Parse(raw)
	if err != nil {
		return errors.New("not a valid URL" + hidden)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return errors.New("must be an absolute http or https URL" + hidden)
	}
	if u.Host == "" || u.Hostname() == "" {
		return errors.New("URL has no host" + hidden)
	}
	if u.Scheme == "http" && !IsLoopbackHost(u.Hostname()) {
		return errors.New("needs an https URL (plain http only to a loopback address)" + hidden)
	}
	return nil
}

// CheckTarget checks t's URL and secret; its errors start with the label.
func CheckTarget(t Target) error {
	if err := CheckURL(t.URL); err != nil {
		return fmt.Errorf("%s: %w", t.Label, err)
	}
	if t.Secret != "" {
		if _, err := ParseSecret(t.Secret); err != nil {
			return fmt.Errorf("%s: %w", t.Label, err)
		}
	}
	return nil
}

// IsLoopbackHost reports whether host is "localhost" or a loopback IP literal. A name
// is only a claim: the dialer checks the address it connects to as well.
func IsLoopbackHost(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// Options configure a Sender.
type Options struct {
	// Timeout bounds one delivery, connection included (default DefaultTimeout).
	Timeout time.Duration
	// Client, if set, is used for https deliveries (a test's TLS client, a proxy). It is
	// copied, and its CheckRedirect replaced: no redirect is followed. Plain http always
	// goes through the Sender's own transport, which dials loopback addresses only.
	Client *http.Client
	// UserAgent of every request (default "tokenwarden").
	UserAgent string
	// Now is the clock of webhook-timestamp; nil means time.Now.
	Now func() time.Time
}

// Sender delivers Messages to Targets. It is safe for concurrent use.
type Sender struct {
	timeout   time.Duration
	https     *http.Client
	loopback  *http.Client
	userAgent string
	now       func() time.Time
}

// New returns a Sender.
func New(o Options) *Sender {
	s := &Sender{timeout: o.Timeout, userAgent: o.UserAgent, now: o.Now}
	if s.timeout <= 0 {
		s.timeout = DefaultTimeout
	}
	if s.userAgent == "" {
		s.userAgent = "tokenwarden"
	}
	if s.now == nil {
		s.now = time.Now
	}
	s.https = &http.Client{}
	if o.Client != nil {
		c := *o.Client
		s.https = &c
	}
	s.https.CheckRedirect = noRedirects
	s.loopback = &http.Client{Transport: loopbackTransport(), CheckRedirect: noRedirects}
	return s
}

func noRedirects(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

// errNotLoopback is what the plain-http dialer answers for any other address.
var errNotLoopback = errors.New("plain http only to a loopback address")

// loopbackTransport is the transport of plain-http deliveries: no proxy (the address
// dialled must be the receiver's), and a dialer that refuses every non-loopback
// address, so a "localhost" that resolves elsewhere receives nothing.
func loopbackTransport() *http.Transport {
	d := &net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second, Control: dialLoopbackOnly}
	return &http.Transport{
		Proxy:               nil,
		DialContext:         d.DialContext,
		MaxIdleConns:        16,
		IdleConnTimeout:     90 * time.Second,
		TLSHandshakeTimeout: 10 * time.Second,
	}
}

// dialLoopbackOnly is a net.Dialer Control: address is the resolved ip:port about to
// be connected.
func dialLoopbackOnly(_, address string, _ syscall.RawConn) error {
	host, _, err := net.SplitHostPort(address)
	if err != nil {
		return errNotLoopback
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		return errNotLoopback
	}
	return nil
}

// Message is one webhook delivery.
type Message struct {
	// ID is the webhook-id: the same for every attempt to deliver one message, so a
	// receiver can drop a duplicate whose answer was lost. Required.
	ID   string
	Body []byte // JSON
	// Header holds extra request headers (Authorization...). Their values are secrets.
	Header http.Header
	// Redact lists more secrets that an answer could echo (the body's access token).
	Redact []string
}

// Error is a failed delivery. Its message starts with the target's label and holds no
// secret; it wraps nothing.
type Error struct {
	// Target is the label of the target.
	Target string
	// StatusCode is the webhook's HTTP status; 0 when there was no answer.
	StatusCode int
	// Timeout: no answer within the delivery timeout.
	Timeout bool
	// Refused: the target cannot be delivered to as configured (not https, a non-
	// loopback address for plain http, a bad secret); retrying cannot help.
	Refused  bool
	canceled bool
	msg      string
}

func (e *Error) Error() string { return e.msg }

// Is makes errors.Is(err, context.DeadlineExceeded) and context.Canceled work without
// a cause chain.
func (e *Error) Is(target error) bool {
	return (e.Timeout && target == context.DeadlineExceeded) || (e.canceled && target == context.Canceled)
}

// Send posts m to t once. Any answer but a 2xx is an *Error, as is every other failure.
func (s *Sender) Send(ctx context.Context, t Target, m Message) error {
	refuse := func(msg string) error { return &Error{Target: t.Label, Refused: true, msg: t.Label + ": " + msg} }
	if err := CheckURL(t.URL); err != nil {
		return refuse(err.Error())
	}
	if m.ID == "" {
		return &Error{Target: t.Label, msg: t.Label + ": the message has no webhook-id"}
	}
	ts := s.now()
	var sig string
	if t.Secret != "" {
		var err error
		if sig, err = Sign(t.Secret, m.ID, ts, m.Body); err != nil {
			return refuse(err.Error())
		}
	}
	client := s.https
	if strings.HasPrefix(t.URL, "http:") {
		client = s.loopback
	}
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, t.URL, bytes.NewReader(m.Body))
	if err != nil {
		return refuse("cannot build the request (the URL is not shown)")
	}
	for k, vs := range m.Header {
		for _, v := range vs {
			req.Header.Add(k, v)
		}
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", s.userAgent)
	req.Header.Set(HeaderID, m.ID)
	req.Header.Set(HeaderTimestamp, strconv.FormatInt(ts.Unix(), 10))
	if sig != "" {
		req.Header.Set(HeaderSignature, sig)
	}
	resp, err := client.Do(req)
	if err != nil {
		return s.transportError(ctx, t, m, err)
	}
	defer resp.Body.Close()
	snippet, _ := io.ReadAll(io.LimitReader(resp.Body, maxSnippet))
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxDrain))
	if resp.StatusCode >= 200 && resp.StatusCode <= 299 {
		return nil
	}
	msg := fmt.Sprintf("%s: webhook answered %s", t.Label, resp.Status)
	if resp.StatusCode >= 300 && resp.StatusCode <= 399 {
		msg += " (redirects are not followed)"
	} else if sn := redactor(t, m).Scrub(string(snippet), 120); sn != "" {
		msg += ": " + sn
	}
	return &Error{Target: t.Label, StatusCode: resp.StatusCode, msg: msg}
}

// transportError describes a failed round trip without the URL that Go's *url.Error
// quotes, and without keeping that error in the chain.
func (s *Sender) transportError(ctx context.Context, t Target, m Message, err error) error {
	e := &Error{Target: t.Label}
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	switch {
	case errors.Is(err, errNotLoopback):
		e.Refused = true
		e.msg = t.Label + ": the host did not resolve to a loopback address, and plain http goes only to one"
	case errors.Is(ctx.Err(), context.DeadlineExceeded) || (ue != nil && ue.Timeout()):
		e.Timeout = true
		e.msg = fmt.Sprintf("%s: no answer from the webhook within %s", t.Label, s.timeout)
	case errors.Is(ctx.Err(), context.Canceled):
		e.canceled = true
		e.msg = t.Label + ": delivery canceled"
	default:
		e.msg = fmt.Sprintf("%s: post to the webhook: %s", t.Label, redactor(t, m).Scrub(err.Error(), 200))
	}
	return e
}

// redactor is the one redaction rule of a delivery: the URL, every part of it an error
// could quote that is long enough not to be a common word (such as "/" or "/hook"),
// the signing secret, the extra headers' values, and the message's own secrets; the
// scrubber also redacts anything token-shaped.
func redactor(t Target, m Message) scrub.Scrubber {
	secrets := []string{t.URL, t.Secret, strings.TrimPrefix(t.Secret, SecretPrefix)}
	if u, err := url.Parse(t.URL); err == nil {
		p, _ := u.User.Password()
		for _, part := range []string{u.Path, u.EscapedPath(), u.RawQuery, u.Fragment, u.User.String(), p} {
			if len(part) >= 8 {
				secrets = append(secrets, part)
			}
		}
	}
	for _, vs := range m.Header {
		for _, v := range vs {
			secrets = append(secrets, v)
			if _, cred, ok := strings.Cut(v, " "); ok && len(cred) >= 4 {
				secrets = append(secrets, cred) // the token of "Bearer <token>"
			}
		}
	}
	for _, r := range m.Redact {
		if len(r) >= 4 {
			secrets = append(secrets, r)
		}
	}
	return scrub.New(secrets...)
}
