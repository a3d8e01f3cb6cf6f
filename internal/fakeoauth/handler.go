package fakeoauth

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"log/slog"
	"mime"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// maxFormBytes bounds a token request body; real ones are a few hundred bytes.
const maxFormBytes = 64 << 10

// tokenResponse is an answer the grant logic decided on, before faults may replace it.
type tokenResponse struct {
	status  int
	body    map[string]any
	basic   bool   // the client tried HTTP Basic; a 401 must then carry WWW-Authenticate
	outcome string // short label for the log
}

func errorResponse(status int, code, description string) tokenResponse {
	return tokenResponse{
		status:  status,
		body:    map[string]any{"error": code, "error_description": description},
		outcome: code,
	}
}

// requestRecord collects what one request's log line says.
type requestRecord struct {
	endpoint  string // TokenPath or IntrospectionPath
	presented string // the refresh token, or the introspected token
	family    string
	fault     *Fault
	status    int
	outcome   string // "refreshed", "active", "inactive", an error code, "not_processed"
	dropped   string // why no answer was sent, if none was
}

func (s *Server) serveToken(w http.ResponseWriter, r *http.Request) {
	started := time.Now()
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	formErr := r.ParseForm()
	mediaType, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	presented := r.PostForm.Get("refresh_token")

	s.mu.Lock()
	s.requests++
	if presented != "" {
		s.presentations++
		s.perToken[presented]++
	}
	familyName := ""
	if rt := s.refresh[presented]; rt != nil {
		familyName = rt.family.name
	}
	s.enterLocked(familyName)
	fault := s.takeFaultLocked(TokenPath)
	s.mu.Unlock()
	// Deferred first so it runs last: when InFlight drops, the request is completely
	// handled, log record included.
	defer s.leave(familyName)

	rec := &requestRecord{endpoint: TokenPath, presented: presented, fault: fault, outcome: "not_processed"}
	defer func() { s.logRequest(r, rec, time.Since(started)) }()

	s.serveWithFaults(w, r, fault, rec, func() tokenResponse {
		switch {
		case mediaType != "application/x-www-form-urlencoded":
			return errorResponse(http.StatusBadRequest, "invalid_request", "body must be application/x-www-form-urlencoded")
		case formErr != nil:
			return errorResponse(http.StatusBadRequest, "invalid_request", "body is not a valid form")
		default:
			return s.grant(r, rec)
		}
	})
}

func (s *Server) serveIntrospect(w http.ResponseWriter, r *http.Request) {
	started := time.Now()
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	formErr := r.ParseForm()
	mediaType, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	token := r.PostForm.Get("token")

	// Deliberately none of the token-endpoint counters: asking is not presenting.
	s.mu.Lock()
	s.introspections++
	fault := s.takeFaultLocked(IntrospectionPath)
	s.mu.Unlock()

	rec := &requestRecord{endpoint: IntrospectionPath, presented: token, fault: fault, outcome: "not_processed"}
	defer func() { s.logRequest(r, rec, time.Since(started)) }()

	s.serveWithFaults(w, r, fault, rec, func() tokenResponse {
		switch {
		case mediaType != "application/x-www-form-urlencoded":
			return errorResponse(http.StatusBadRequest, "invalid_request", "body must be application/x-www-form-urlencoded")
		case formErr != nil:
			return errorResponse(http.StatusBadRequest, "invalid_request", "body is not a valid form")
		default:
			return s.introspect(r, rec)
		}
	})
}

// serveWithFaults runs decide (the grant, or the introspection lookup) between the two
// phases of fault, and answers. A request dropped by a fault ends in a
// panic(http.ErrAbortHandler): net/http then closes the connection without an answer,
// and the caller's deferred bookkeeping still runs.
func (s *Server) serveWithFaults(w http.ResponseWriter, r *http.Request, fault *Fault, rec *requestRecord, decide func() tokenResponse) {
	if fault != nil && fault.Phase == BeforeGrant {
		if !s.wait(r.Context(), fault.Delay, rec) {
			panic(http.ErrAbortHandler)
		}
		if fault.Kind != FaultLatency {
			s.misbehave(w, r, *fault, nil, rec)
			return
		}
		// The timer and the client's departure can become ready together, and select
		// picks either. The promise is that a client gone before the grant is processed
		// leaves its token untouched, so check once more.
		if r.Context().Err() != nil {
			rec.dropped = "client_gone"
			panic(http.ErrAbortHandler)
		}
	}

	res := decide()
	rec.outcome = res.outcome

	if fault != nil && fault.Phase == AfterGrant {
		// The grant is already processed: whatever happens now, the token is consumed.
		if !s.wait(r.Context(), fault.Delay, rec) {
			panic(http.ErrAbortHandler)
		}
		if fault.Kind != FaultLatency {
			s.misbehave(w, r, *fault, &res, rec)
			return
		}
	}
	s.writeResponse(w, res, rec)
}

// grant authenticates the client and applies the refresh_token grant rules.
func (s *Server) grant(r *http.Request, rec *requestRecord) tokenResponse {
	if res, ok := s.authenticateClient(r); !ok {
		return res
	}
	switch gt := r.PostForm.Get("grant_type"); gt {
	case "refresh_token":
	case "":
		return errorResponse(http.StatusBadRequest, "invalid_request", "grant_type is required")
	default:
		return errorResponse(http.StatusBadRequest, "unsupported_grant_type", "only refresh_token is supported")
	}
	presented := r.PostForm.Get("refresh_token")
	if presented == "" {
		return errorResponse(http.StatusBadRequest, "invalid_request", "refresh_token is required")
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	// From here on the provider acts on the token, whatever the outcome.
	s.processed[presented]++
	rt := s.refresh[presented]
	if rt == nil {
		return errorResponse(http.StatusBadRequest, "invalid_grant", "unknown refresh token")
	}
	rec.family = rt.family.name
	switch {
	case rt.used:
		// RFC 9700 section 4.14.2: the server cannot tell the legitimate client from an
		// attacker, so it revokes the whole family, the live successor included.
		s.reuseDetections++
		s.revokeLocked(rt.family)
		res := errorResponse(http.StatusBadRequest, "invalid_grant", "refresh token was already used; token family revoked")
		res.outcome = "reuse_detected"
		return res
	case rt.revoked:
		return errorResponse(http.StatusBadRequest, "invalid_grant", "refresh token revoked")
	case s.expiredLocked(rt.expiresAt):
		return errorResponse(http.StatusBadRequest, "invalid_grant", "refresh token expired")
	}

	f := rt.family
	body := map[string]any{
		"access_token": s.mintAccessLocked(f),
		"token_type":   "Bearer",
		"expires_in":   ceilSeconds(s.opts.AccessLifetime),
	}
	if s.opts.NoRotation {
		if !rt.expiresAt.IsZero() {
			body["refresh_token_expires_in"] = ceilSeconds(rt.expiresAt.Sub(s.opts.Now()))
		}
	} else {
		rt.used = true
		body["refresh_token"] = s.mintRefreshLocked(f)
		if s.opts.RefreshLifetime > 0 {
			body["refresh_token_expires_in"] = ceilSeconds(s.opts.RefreshLifetime)
		}
	}
	s.refreshes++
	return tokenResponse{status: http.StatusOK, body: body, outcome: "refreshed"}
}

// introspect answers an RFC 7662 request. It reads state and never changes it: no token
// is consumed, no family revoked, no presentation or processing counted.
func (s *Server) introspect(r *http.Request, rec *requestRecord) tokenResponse {
	// RFC 7662 section 2.1: the endpoint requires authorization; reuse the token
	// endpoint's client authentication (section 2.3 answers a failure with 401).
	if res, ok := s.authenticateClient(r); !ok {
		return res
	}
	token := r.PostForm.Get("token")
	if token == "" {
		return errorResponse(http.StatusBadRequest, "invalid_request", "token is required")
	}
	inactive := tokenResponse{status: http.StatusOK, body: map[string]any{"active": false}, outcome: "inactive"}
	active := func(tokenType string, expiresAt time.Time) tokenResponse {
		body := map[string]any{"active": true, "token_type": tokenType}
		if s.opts.ClientID != "" {
			body["client_id"] = s.opts.ClientID
		}
		if !expiresAt.IsZero() {
			body["exp"] = expiresAt.Unix()
		}
		return tokenResponse{status: http.StatusOK, body: body, outcome: "active"}
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	// token_type_hint is ignored (section 2.1 allows it): both tables are searched, and
	// token values never collide across them.
	if rt := s.refresh[token]; rt != nil {
		f := rt.family
		rec.family = f.name
		// Exactly the tokens a refresh grant would accept (see grant), plus "is the
		// family's current one", which rotation already implies.
		if rt.used || rt.revoked || f.revoked || f.live != token || s.expiredLocked(rt.expiresAt) {
			return inactive
		}
		// RFC 7662 token_type nominally names an access token type; "refresh_token" makes
		// the answer self-describing for the only thing tokenwarden asks about.
		return active("refresh_token", rt.expiresAt)
	}
	if at := s.access[token]; at != nil {
		rec.family = at.family.name
		if at.revoked || s.expiredLocked(at.expiresAt) {
			return inactive
		}
		return active("Bearer", at.expiresAt)
	}
	return inactive
}

// authenticateClient implements RFC 6749 section 2.3.1 for the one configured client.
func (s *Server) authenticateClient(r *http.Request) (tokenResponse, bool) {
	if s.opts.ClientID == "" {
		return tokenResponse{}, true
	}
	user, pass, basic := r.BasicAuth()
	if basic && r.PostForm.Has("client_secret") {
		return errorResponse(http.StatusBadRequest, "invalid_request", "use one client authentication method, not Basic and form fields together"), false
	}
	var id, secret string
	if basic {
		// Section 2.3.1: Basic credentials are form-urlencoded before base64.
		var err1, err2 error
		id, err1 = url.QueryUnescape(user)
		secret, err2 = url.QueryUnescape(pass)
		if err1 != nil || err2 != nil {
			id, secret = "", ""
		}
	} else {
		id, secret = r.PostForm.Get("client_id"), r.PostForm.Get("client_secret")
	}
	if id == "" || id != s.opts.ClientID || subtle.ConstantTimeCompare([]byte(secret), []byte(s.opts.ClientSecret)) != 1 {
		res := errorResponse(http.StatusUnauthorized, "invalid_client", "client authentication failed")
		res.basic = basic
		return res, false
	}
	return tokenResponse{}, true
}

// wait sleeps d unless the client leaves or the Server closes. It reports whether the
// request should go on; when it should not, the caller drops it without an answer.
func (s *Server) wait(ctx context.Context, d time.Duration, rec *requestRecord) bool {
	if d <= 0 {
		return true
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		rec.dropped = "client_gone"
		return false
	case <-s.done:
		rec.dropped = "server_closed"
		return false
	}
}

// misbehave answers the request as fault f says. res is the grant's answer for
// AfterGrant faults (nil for BeforeGrant ones).
func (s *Server) misbehave(w http.ResponseWriter, r *http.Request, f Fault, res *tokenResponse, rec *requestRecord) {
	switch f.Kind {
	case FaultStatus:
		status := f.Status
		if status == 0 {
			status = http.StatusServiceUnavailable
		}
		if f.RetryAfter > 0 {
			w.Header().Set("Retry-After", strconv.FormatInt(ceilSeconds(f.RetryAfter), 10))
		}
		body := f.Body
		if body == "" {
			body = "fakeoauth: injected failure"
		}
		if body[0] == '{' {
			w.Header().Set("Content-Type", "application/json")
		} else {
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		}
		w.WriteHeader(status)
		_, _ = w.Write([]byte(body))
		rec.status = status
	case FaultRateLimit:
		if f.RetryAfter > 0 {
			w.Header().Set("Retry-After", strconv.FormatInt(ceilSeconds(f.RetryAfter), 10))
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.WriteHeader(http.StatusTooManyRequests)
		_, _ = w.Write([]byte("fakeoauth: rate limited"))
		rec.status = http.StatusTooManyRequests
	case FaultHang:
		select {
		case <-r.Context().Done():
			rec.dropped = "client_gone"
		case <-s.done:
			rec.dropped = "server_closed"
		}
		// Returning normally would make net/http send an empty 200; drop the connection.
		panic(http.ErrAbortHandler)
	case FaultMalformedJSON:
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write([]byte(`{"access_token": <html>not json</html>`))
		rec.status = http.StatusOK
	case FaultErrorIn200:
		code := f.ErrorCode
		if code == "" {
			code = "server_error"
		}
		s.writeResponse(w, tokenResponse{
			status: http.StatusOK,
			body:   map[string]any{"error": code, "error_description": "fakeoauth: injected error in 200"},
		}, rec)
	case FaultMissingAccessToken:
		if rec.endpoint == IntrospectionPath {
			// The introspection analogue: a 200 without the required "active" member.
			s.writeResponse(w, tokenResponse{status: http.StatusOK, body: map[string]any{"token_type": "refresh_token"}}, rec)
			return
		}
		body := map[string]any{"token_type": "Bearer", "expires_in": ceilSeconds(s.opts.AccessLifetime)}
		if res != nil && res.status == http.StatusOK {
			for _, k := range []string{"refresh_token", "refresh_token_expires_in"} {
				if v, ok := res.body[k]; ok {
					body[k] = v
				}
			}
		}
		s.writeResponse(w, tokenResponse{status: http.StatusOK, body: body}, rec)
	case FaultCloseConnection:
		rec.dropped = "connection_reset"
		resetConnection(w)
	}
}

// resetConnection drops the client's connection without a response, with a TCP RST when
// the connection allows it, so the client sees "connection reset by peer".
func resetConnection(w http.ResponseWriter) {
	hj, ok := w.(http.Hijacker)
	if !ok {
		panic(http.ErrAbortHandler) // HTTP/2: resets the stream
	}
	conn, _, err := hj.Hijack()
	if err != nil {
		panic(http.ErrAbortHandler)
	}
	if tc, ok := conn.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	_ = conn.Close()
}

func (s *Server) writeResponse(w http.ResponseWriter, res tokenResponse, rec *requestRecord) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	// RFC 6749 section 5.1: token responses must not be cached.
	h.Set("Cache-Control", "no-store")
	h.Set("Pragma", "no-cache")
	if res.status == http.StatusUnauthorized && res.basic {
		h.Set("WWW-Authenticate", `Basic realm="fakeoauth"`)
	}
	w.WriteHeader(res.status)
	_ = json.NewEncoder(w).Encode(res.body)
	rec.status = res.status
}

func (s *Server) logRequest(r *http.Request, rec *requestRecord, elapsed time.Duration) {
	if s.opts.Logger == nil {
		return
	}
	msg := "token request"
	attrs := []slog.Attr{slog.String("remote", r.RemoteAddr)}
	if rec.endpoint == IntrospectionPath {
		msg = "introspection request"
		attrs = append(attrs,
			slog.String("token_type_hint", r.PostForm.Get("token_type_hint")),
			slog.String("token", Fingerprint(rec.presented)))
	} else {
		attrs = append(attrs,
			slog.String("grant_type", r.PostForm.Get("grant_type")),
			slog.String("refresh_token", Fingerprint(rec.presented)))
	}
	attrs = append(attrs,
		slog.String("family", rec.family),
		slog.Int("status", rec.status),
		slog.String("outcome", rec.outcome),
	)
	if rec.fault != nil {
		attrs = append(attrs, slog.String("fault", rec.fault.Kind.String()), slog.String("phase", rec.fault.Phase.String()))
	}
	if rec.dropped != "" {
		attrs = append(attrs, slog.String("dropped", rec.dropped))
	}
	attrs = append(attrs, slog.Duration("elapsed", elapsed))
	s.opts.Logger.LogAttrs(r.Context(), slog.LevelInfo, msg, attrs...)
}

// ceilSeconds renders a duration as whole seconds, rounded up, at least 1 for any
// positive duration (a lifetime of "0" would read as "none").
func ceilSeconds(d time.Duration) int64 {
	if d <= 0 {
		return 0
	}
	return int64((d + time.Second - 1) / time.Second)
}
