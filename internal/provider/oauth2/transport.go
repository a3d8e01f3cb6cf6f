package oauth2provider

import (
	"errors"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
)

// errSecondRequest is returned if anything tries to send a second token request within
// one Refresh call (callClient's wire.SingleShot refuses it). It should be unreachable;
// it exists so that "exactly once" does not depend on x/oauth2's internals staying as
// they are.
var errSecondRequest = errors.New("oauth2 refresh: refused a second token request in one call (the refresh token may be presented only once)")

// exchange records what happened on the wire during one Refresh call. x/oauth2 reports
// some outcomes only as untyped errors; the record lets classify tell "no answer" from
// "an answer we could not use" without matching error strings.
type exchange struct {
	// scope is the space-separated scope list to add to the request, or "".
	scope string

	mu          sync.Mutex
	gotResponse bool
	status      int
	bodyErr     error
}

func (ex *exchange) snapshot() (gotResponse bool, status int, bodyErr error) {
	ex.mu.Lock()
	defer ex.mu.Unlock()
	return ex.gotResponse, ex.status, ex.bodyErr
}

// exchangeTransport adds the scope parameter that x/oauth2's refresher never sends
// (RFC 6749 section 6 allows it, provider.Config promises it), and records the response
// status and body-read failures in its exchange. callClient puts it behind
// wire.SingleShot, so it sees at most one request per call.
type exchangeTransport struct {
	base http.RoundTripper // nil: http.DefaultTransport
	ex   *exchange
}

func (t *exchangeTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if t.ex.scope != "" {
		var err error
		if req, err = withScope(req, t.ex.scope); err != nil {
			return nil, err
		}
	}

	base := t.base
	if base == nil {
		base = http.DefaultTransport
	}
	resp, err := base.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	t.ex.mu.Lock()
	t.ex.gotResponse = true
	t.ex.status = resp.StatusCode
	t.ex.mu.Unlock()
	resp.Body = &recordingBody{ReadCloser: resp.Body, ex: t.ex}
	return resp, nil
}

// withScope returns a clone of req whose form body also carries scope. RoundTrippers must
// not modify the request they are given, hence the clone.
func withScope(req *http.Request, scope string) (*http.Request, error) {
	var raw []byte
	if req.Body != nil {
		b, err := io.ReadAll(req.Body)
		req.Body.Close()
		if err != nil {
			return nil, errors.New("oauth2 refresh: reading outgoing token request body failed")
		}
		raw = b
	}
	form, err := url.ParseQuery(string(raw))
	if err != nil {
		return nil, errors.New("oauth2 refresh: outgoing token request body is not form-encoded")
	}
	form.Set("scope", scope)
	body := form.Encode()

	clone := req.Clone(req.Context())
	clone.Body = io.NopCloser(strings.NewReader(body))
	clone.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(strings.NewReader(body)), nil }
	clone.ContentLength = int64(len(body))
	return clone, nil
}

// recordingBody notes a failed read (connection reset mid-body), which x/oauth2 reports
// only as a formatted string.
type recordingBody struct {
	io.ReadCloser
	ex *exchange
}

func (b *recordingBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err != nil && !errors.Is(err, io.EOF) {
		b.ex.mu.Lock()
		if b.ex.bodyErr == nil {
			b.ex.bodyErr = err
		}
		b.ex.mu.Unlock()
	}
	return n, err
}
