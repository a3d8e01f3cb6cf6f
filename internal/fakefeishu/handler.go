package fakefeishu

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"io"
	"mime"
	"net"
	"net/http"
	"strconv"
	"time"
)

const maxBodyBytes = 64 << 10

type response struct {
	status int
	body   map[string]any
}

func userError(status, code int, errName, description string) response {
	return response{status: status, body: map[string]any{"code": code, "error": errName, "error_description": description}}
}

func tenantError(code int, msg string) response {
	return response{status: http.StatusBadRequest, body: map[string]any{"code": code, "msg": msg}}
}

type userRequest struct {
	GrantType    string `json:"grant_type"`
	ClientID     string `json:"client_id"`
	ClientSecret string `json:"client_secret"`
	RefreshToken string `json:"refresh_token"`
	Scope        string `json:"scope"`
}

type tenantRequest struct {
	AppID     string `json:"app_id"`
	AppSecret string `json:"app_secret"`
}

// readJSON decodes the body into v; ok is false for a non-JSON content type or body.
func readJSON(w http.ResponseWriter, r *http.Request, v any) bool {
	mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	data, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBodyBytes))
	if err != nil || mt != "application/json" {
		return false
	}
	return json.Unmarshal(data, v) == nil
}

func (s *Server) enter(path, presented string) *Fault {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.requests[path]++
	if presented != "" {
		s.presentations++
		s.perToken[presented]++
	}
	s.inFlight++
	return s.takeFaultLocked(path)
}

func (s *Server) leave() {
	s.mu.Lock()
	s.inFlight--
	s.mu.Unlock()
}

func (s *Server) serveUser(w http.ResponseWriter, r *http.Request) {
	var req userRequest
	ok := readJSON(w, r, &req)
	fault := s.enter(UserTokenPath, req.RefreshToken)
	defer s.leave()
	s.serveWithFaults(w, r, fault, func() response {
		if !ok {
			return userError(http.StatusBadRequest, CodeInvalidRequest, "invalid_request", "body must be a JSON object (Content-Type: application/json)")
		}
		return s.userGrant(req)
	})
}

func (s *Server) userGrant(req userRequest) response {
	switch {
	case req.GrantType == "":
		return userError(http.StatusBadRequest, CodeInvalidRequest, "invalid_request", "grant_type is required")
	case req.GrantType != "refresh_token":
		return userError(http.StatusBadRequest, CodeInvalidRequest, "unsupported_grant_type", "only refresh_token is supported")
	case req.ClientID != s.opts.AppID || subtle.ConstantTimeCompare([]byte(req.ClientSecret), []byte(s.opts.AppSecret)) != 1:
		return userError(http.StatusBadRequest, CodeInvalidClient, "invalid_client", "client_secret is invalid")
	case req.RefreshToken == "":
		return userError(http.StatusBadRequest, CodeInvalidRequest, "invalid_request", "refresh_token is required")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.processed[req.RefreshToken]++
	rt := s.refresh[req.RefreshToken]
	switch {
	case rt == nil:
		return userError(http.StatusBadRequest, CodeRefreshTokenInvalid, "invalid_grant", "The refresh token passed is invalid. Please check the value.")
	case rt.used:
		s.reuseDetections++
		if s.opts.RevokeOnReuse {
			s.revokeLocked(rt.family)
		}
		return userError(http.StatusBadRequest, CodeRefreshTokenUsed, "invalid_grant", "The refresh token has been used. Please note that a refresh token can only be used once.")
	case rt.revoked || rt.family.revoked:
		return userError(http.StatusBadRequest, CodeRefreshTokenRevoked, "invalid_grant", "The refresh token has been revoked.")
	case s.expiredLocked(rt.expiresAt):
		return userError(http.StatusBadRequest, CodeRefreshTokenExpired, "invalid_grant", "The refresh token has expired.")
	}
	rt.used = true
	f := rt.family
	body := map[string]any{
		"code":          0,
		"access_token":  s.mintAccessLocked(f),
		"expires_in":    ceilSeconds(s.opts.UserAccessLifetime),
		"refresh_token": s.mintRefreshLocked(f),
		"token_type":    "Bearer",
		"scope":         req.Scope,
	}
	if s.opts.RefreshLifetime > 0 {
		body["refresh_token_expires_in"] = ceilSeconds(s.opts.RefreshLifetime)
	}
	s.refreshes++
	return response{status: http.StatusOK, body: body}
}

func (s *Server) serveTenant(w http.ResponseWriter, r *http.Request) {
	var req tenantRequest
	ok := readJSON(w, r, &req)
	fault := s.enter(TenantTokenPath, "")
	defer s.leave()
	s.serveWithFaults(w, r, fault, func() response {
		if !ok || req.AppID == "" || req.AppSecret == "" {
			return tenantError(CodeInvalidParam, "invalid param")
		}
		if req.AppID != s.opts.AppID || subtle.ConstantTimeCompare([]byte(req.AppSecret), []byte(s.opts.AppSecret)) != 1 {
			return tenantError(CodeAppSecretInvalid, "app secret invalid")
		}
		return s.mintTenant()
	})
}

// mintTenant applies the 30-minute rule: re-issue the current token while at least
// ReissueWindow of it is left, else mint a new one (the old one stays valid).
func (s *Server) mintTenant() response {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.opts.Now()
	if cur := s.tenant[s.current]; cur != nil && s.opts.ReissueWindow > 0 {
		if left := cur.expiresAt.Sub(now); left >= s.opts.ReissueWindow {
			s.tenantReissues++
			return response{status: http.StatusOK, body: map[string]any{
				"code": 0, "msg": "ok", "tenant_access_token": s.current, "expire": int64(left / time.Second),
			}}
		}
	}
	t := TenantTokenPrefix + randomString()
	s.tenant[t] = &expiring{expiresAt: now.Add(s.opts.TenantLifetime)}
	s.current = t
	s.tenantMints++
	return response{status: http.StatusOK, body: map[string]any{
		"code": 0, "msg": "ok", "tenant_access_token": t, "expire": ceilSeconds(s.opts.TenantLifetime),
	}}
}

// serveWithFaults runs decide between the two phases of fault. Dropped requests end in
// panic(http.ErrAbortHandler), which closes the connection without an answer.
func (s *Server) serveWithFaults(w http.ResponseWriter, r *http.Request, fault *Fault, decide func() response) {
	if fault != nil && fault.Phase == BeforeGrant {
		if !s.wait(r.Context(), fault.Delay) {
			panic(http.ErrAbortHandler)
		}
		if fault.Kind != FaultLatency {
			s.misbehave(w, r, *fault)
			return
		}
		if r.Context().Err() != nil {
			panic(http.ErrAbortHandler)
		}
	}
	res := decide()
	if fault != nil && fault.Phase == AfterGrant {
		if !s.wait(r.Context(), fault.Delay) {
			panic(http.ErrAbortHandler)
		}
		if fault.Kind != FaultLatency {
			s.misbehave(w, r, *fault)
			return
		}
	}
	writeJSON(w, res)
}

func (s *Server) wait(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return true
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	case <-s.done:
		return false
	}
}

func (s *Server) misbehave(w http.ResponseWriter, r *http.Request, f Fault) {
	if f.RetryAfter > 0 {
		w.Header().Set("Retry-After", strconv.FormatInt(ceilSeconds(f.RetryAfter), 10))
	}
	switch f.Kind {
	case FaultStatus:
		status := f.Status
		if status == 0 {
			status = http.StatusServiceUnavailable
		}
		body := f.Body
		if body == "" {
			body = "fakefeishu: injected failure"
		}
		if body[0] == '{' {
			w.Header().Set("Content-Type", "application/json; charset=utf-8")
		} else {
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		}
		w.WriteHeader(status)
		_, _ = io.WriteString(w, body)
	case FaultErrorCode:
		status, code := f.Status, f.Code
		if status == 0 {
			status = http.StatusOK
		}
		if code == 0 {
			code = CodeRateLimited
		}
		writeJSON(w, response{status: status, body: map[string]any{"code": code, "msg": "fakefeishu: injected error code"}})
	case FaultMalformedJSON:
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
		w.WriteHeader(http.StatusOK)
		_, _ = io.WriteString(w, `{"code":0,"access_token": <html>not json</html>`)
	case FaultHang:
		select {
		case <-r.Context().Done():
		case <-s.done:
		}
		panic(http.ErrAbortHandler)
	case FaultCloseConnection:
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

func writeJSON(w http.ResponseWriter, res response) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(res.status)
	_ = json.NewEncoder(w).Encode(res.body)
}

// ceilSeconds renders d as whole seconds, rounded up.
func ceilSeconds(d time.Duration) int64 {
	if d <= 0 {
		return 0
	}
	return int64((d + time.Second - 1) / time.Second)
}
