package fakezalo

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"log/slog"
	"mime"
	"net"
	"net/http"
	"strconv"
	"time"
)

// maxFormBytes bounds a request body; real ones are a few hundred bytes.
const maxFormBytes = 64 << 10

// answer is what the grant logic decided, before faults may replace it. Zalo answers
// everything with HTTP 200.
type answer struct {
	body    map[string]any
	outcome string // short label for the log
	ok      bool
}

func zaloError(code int, name, description string) answer {
	return answer{
		body: map[string]any{
			"error":             code,
			"error_name":        name,
			"error_description": description,
			"error_reason":      "",
			"ref_doc":           "",
		},
		outcome: strconv.Itoa(code),
	}
}

type requestRecord struct {
	path      string
	grantType string
	presented string
	family    string
	fault     *Fault
	status    int
	outcome   string
	dropped   string
}

func (s *Server) serveToken(w http.ResponseWriter, r *http.Request, kind Kind) {
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
	s.inFlight++
	s.maxInFlight = max(s.maxInFlight, s.inFlight)
	fault := s.takeFaultLocked(kind.Path())
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		s.inFlight--
		s.mu.Unlock()
	}()

	rec := &requestRecord{path: kind.Path(), grantType: r.PostForm.Get("grant_type"), presented: presented, fault: fault, outcome: "not_processed"}
	defer func() { s.logRequest(r, rec, time.Since(started)) }()

	s.serveWithFaults(w, r, fault, rec, func() answer {
		switch {
		case mediaType != "application/x-www-form-urlencoded" || formErr != nil:
			return zaloError(ErrInvalidParameter, "Invalid parameter", "body must be an application/x-www-form-urlencoded form")
		default:
			return s.grant(r, kind, rec)
		}
	})
}

// serveWithFaults runs decide between the two phases of fault and answers. A dropped
// request ends in panic(http.ErrAbortHandler), which closes the connection unanswered.
func (s *Server) serveWithFaults(w http.ResponseWriter, r *http.Request, fault *Fault, rec *requestRecord, decide func() answer) {
	if fault != nil && fault.Phase == BeforeGrant {
		if !s.wait(r.Context(), fault.Delay, rec) {
			panic(http.ErrAbortHandler)
		}
		if fault.Kind != FaultLatency {
			s.misbehave(w, r, *fault, nil, rec)
			return
		}
		// The timer and the client's departure may be ready together; a client gone
		// before the grant must leave its token untouched.
		if r.Context().Err() != nil {
			rec.dropped = "client_gone"
			panic(http.ErrAbortHandler)
		}
	}
	res := decide()
	rec.outcome = res.outcome
	if fault != nil && fault.Phase == AfterGrant {
		if !s.wait(r.Context(), fault.Delay, rec) {
			panic(http.ErrAbortHandler)
		}
		if fault.Kind != FaultLatency {
			s.misbehave(w, r, *fault, &res, rec)
			return
		}
	}
	s.write(w, http.StatusOK, res.body, rec)
}

// grant checks the app and dispatches on grant_type.
func (s *Server) grant(r *http.Request, kind Kind, rec *requestRecord) answer {
	if s.opts.AppID != "" {
		if r.PostForm.Get("app_id") != s.opts.AppID {
			return zaloError(ErrInvalidAppID, "Invalid appId", "app_id is missing or unknown")
		}
		secret := r.Header.Get(SecretKeyHeader)
		if secret == "" || subtle.ConstantTimeCompare([]byte(secret), []byte(s.opts.AppSecret)) != 1 {
			return zaloError(ErrInvalidSecretKey, "Invalid secret key", "the secret_key header does not match the app")
		}
	}
	switch r.PostForm.Get("grant_type") {
	case "refresh_token":
		return s.refreshGrant(r, kind, rec)
	case "authorization_code":
		return s.codeGrant(r, kind, rec)
	default:
		return zaloError(ErrInvalidGrantType, "Invalid grant type", "grant_type must be refresh_token or authorization_code")
	}
}

func (s *Server) refreshGrant(r *http.Request, kind Kind, rec *requestRecord) answer {
	presented := r.PostForm.Get("refresh_token")
	if presented == "" {
		return zaloError(ErrInvalidParameter, "Invalid parameter", "refresh_token is required")
	}
	invalid := func(why string) answer { return zaloError(ErrInvalidRefreshToken, "Invalid refresh token", why) }

	s.mu.Lock()
	defer s.mu.Unlock()
	s.processed[presented]++
	rt := s.refresh[presented]
	if rt == nil || rt.family.kind != kind {
		return invalid("refresh token is unknown")
	}
	rec.family = rt.family.name
	switch {
	case rt.used:
		s.reuseDetections++
		if s.opts.RevokeOnReuse {
			s.revokeLocked(rt.family)
		}
		res := invalid("refresh token was already used")
		res.outcome = "reuse_detected"
		return res
	case rt.revoked:
		return invalid("refresh token was revoked")
	case s.expiredLocked(rt.expiresAt):
		return invalid("refresh token has expired")
	}
	rt.used = true
	s.refreshes++
	return s.tokensLocked(rt.family, "refreshed")
}

func (s *Server) codeGrant(r *http.Request, kind Kind, rec *requestRecord) answer {
	code := r.PostForm.Get("code")
	if code == "" {
		return zaloError(ErrInvalidParameter, "Invalid parameter", "code is required")
	}
	invalid := func(why string) answer { return zaloError(ErrInvalidCode, "Invalid code", why) }

	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.codes[code]
	if c == nil || c.kind != kind {
		return invalid("authorization code is unknown")
	}
	rec.family = c.family
	switch {
	case c.used:
		return invalid("authorization code was already used")
	case s.expiredLocked(c.expiresAt):
		return invalid("authorization code has expired")
	}
	c.used = true // a failed verifier check burns the code too
	if c.challenge != "" && subtle.ConstantTimeCompare([]byte(CodeChallenge(r.PostForm.Get("code_verifier"))), []byte(c.challenge)) != 1 {
		return invalid("code_verifier does not match the code_challenge")
	}
	s.exchanges++
	return s.tokensLocked(s.newFamilyLocked(kind, c.family), "exchanged")
}

// tokensLocked mints a new access and refresh token for f and builds the answer.
func (s *Server) tokensLocked(f *family, outcome string) answer {
	body := map[string]any{
		"access_token":  s.mintAccessLocked(f),
		"refresh_token": s.mintRefreshLocked(f),
		"expires_in":    s.lifetime(s.opts.AccessLifetime),
	}
	if s.opts.SendRefreshTokenExpiresIn && s.opts.RefreshLifetime > 0 {
		body["refresh_token_expires_in"] = s.lifetime(s.opts.RefreshLifetime)
	}
	return answer{body: body, outcome: outcome, ok: true}
}

// lifetime renders whole seconds (rounded up) as a number or, with
// ExpiresInAsString, a string.
func (s *Server) lifetime(d time.Duration) any {
	secs := int64((d + time.Second - 1) / time.Second)
	if s.opts.ExpiresInAsString {
		return strconv.FormatInt(secs, 10)
	}
	return secs
}

// wait sleeps d unless the client leaves or the Server closes; it reports whether the
// request should go on.
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

// misbehave answers as f says. res is the grant's answer for AfterGrant faults.
func (s *Server) misbehave(w http.ResponseWriter, r *http.Request, f Fault, res *answer, rec *requestRecord) {
	switch f.Kind {
	case FaultStatus:
		status := f.Status
		if status == 0 {
			status = http.StatusBadGateway
		}
		if f.RetryAfter > 0 {
			w.Header().Set("Retry-After", strconv.FormatInt(int64((f.RetryAfter+time.Second-1)/time.Second), 10))
		}
		body := f.Body
		if body == "" {
			body = "fakezalo: injected failure"
		}
		if body[0] == '{' {
			w.Header().Set("Content-Type", "application/json")
		} else {
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		}
		w.WriteHeader(status)
		_, _ = w.Write([]byte(body))
		rec.status = status
	case FaultErrorIn200:
		code := f.ErrorCode
		if code == 0 {
			code = DefaultFaultErrorCode
		}
		name := f.ErrorName
		if name == "" {
			name = "fakezalo: injected error"
		}
		s.write(w, http.StatusOK, zaloError(code, name, "injected by fakezalo").body, rec)
	case FaultMalformedJSON:
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write([]byte(`{"access_token": <html>not json</html>`))
		rec.status = http.StatusOK
	case FaultEmptyBody:
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusOK)
		rec.status = http.StatusOK
	case FaultMissingAccessToken:
		body := map[string]any{"expires_in": s.lifetime(s.opts.AccessLifetime)}
		if res != nil && res.ok {
			for _, k := range []string{"refresh_token", "refresh_token_expires_in"} {
				if v, ok := res.body[k]; ok {
					body[k] = v
				}
			}
		}
		s.write(w, http.StatusOK, body, rec)
	case FaultHang:
		select {
		case <-r.Context().Done():
			rec.dropped = "client_gone"
		case <-s.done:
			rec.dropped = "server_closed"
		}
		panic(http.ErrAbortHandler)
	case FaultCloseConnection:
		rec.dropped = "connection_reset"
		hj, ok := w.(http.Hijacker)
		if !ok {
			panic(http.ErrAbortHandler)
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
}

func (s *Server) write(w http.ResponseWriter, status int, body map[string]any, rec *requestRecord) {
	h := w.Header()
	h.Set("Content-Type", "application/json; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(body)
	rec.status = status
}

func (s *Server) logRequest(r *http.Request, rec *requestRecord, elapsed time.Duration) {
	if s.opts.Logger == nil {
		return
	}
	attrs := []slog.Attr{
		slog.String("remote", r.RemoteAddr),
		slog.String("path", rec.path),
		slog.String("grant_type", rec.grantType),
		slog.String("refresh_token", Fingerprint(rec.presented)),
		slog.String("family", rec.family),
		slog.Int("status", rec.status),
		slog.String("outcome", rec.outcome),
	}
	if rec.fault != nil {
		attrs = append(attrs, slog.String("fault", rec.fault.Kind.String()), slog.String("phase", rec.fault.Phase.String()))
	}
	if rec.dropped != "" {
		attrs = append(attrs, slog.String("dropped", rec.dropped))
	}
	attrs = append(attrs, slog.Duration("elapsed", elapsed))
	s.opts.Logger.LogAttrs(r.Context(), slog.LevelInfo, "zalo token request", attrs...)
}
