package oauth2test

import (
	"crypto/subtle"
	"errors"
	"log/slog"
	"mime"
	"net/http"
	"net/url"
	"time"

	"github.com/tokenwarden/tokenwarden/internal/provider/providertest"
	"github.com/tokenwarden/tokenwarden/internal/provider/providertest/consent"
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

// answer renders res for the wire.
func (res tokenResponse) answer() providertest.Answer {
	a := providertest.JSON(res.status, res.body)
	a.Header = http.Header{}
	a.Header.Set("Content-Type", "application/json")
	// RFC 6749 section 5.1: token responses must not be cached.
	a.Header.Set("Cache-Control", "no-store")
	a.Header.Set("Pragma", "no-cache")
	if res.status == http.StatusUnauthorized && res.basic {
		a.Header.Set("WWW-Authenticate", `Basic realm="fakeoauth"`)
	}
	return a
}

// requestRecord collects what one request's log line says.
type requestRecord struct {
	endpoint  string // TokenPath or IntrospectionPath
	presented string // the refresh token, or the introspected token
	family    string
	fault     *providertest.Fault
	outcome   string                // "refreshed", "active", "inactive", an error code, "not_processed"
	x         providertest.Exchange // status sent, or why none was
}

func (s *Server) serveToken(w http.ResponseWriter, r *http.Request) {
	started := time.Now()
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	formErr := r.ParseForm()
	mediaType, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	presented := r.PostForm.Get("refresh_token")

	var fault *providertest.Fault
	var full Fault
	leave := s.ledger.Arrive(TokenPath, presented, func() { fault, full = s.faults.Take(TokenPath) })
	// Deferred first so it runs last: when InFlight drops, the request is completely
	// handled, log record included.
	defer leave()

	rec := &requestRecord{endpoint: TokenPath, presented: presented, fault: fault, outcome: "not_processed"}
	defer func() { s.logRequest(r, rec, time.Since(started)) }()

	s.serveWithFaults(w, r, rec, full, func() tokenResponse {
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
	var fault *providertest.Fault
	var full Fault
	s.ledger.Count(IntrospectionPath, func() { fault, full = s.faults.Take(IntrospectionPath) })

	rec := &requestRecord{endpoint: IntrospectionPath, presented: token, fault: fault, outcome: "not_processed"}
	defer func() { s.logRequest(r, rec, time.Since(started)) }()

	s.serveWithFaults(w, r, rec, full, func() tokenResponse {
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
// phases of the request's fault (see providertest.Serve), and answers.
func (s *Server) serveWithFaults(w http.ResponseWriter, r *http.Request, rec *requestRecord, full Fault, decide func() tokenResponse) {
	var decided tokenResponse
	rec.x = providertest.Exchange{
		Fault: rec.fault,
		Rules: &faultRules,
		Done:  s.Done(),
		Decide: func() providertest.Answer {
			decided = decide()
			rec.outcome = decided.outcome
			return decided.answer()
		},
		Custom: func(after *providertest.Answer) (providertest.Answer, bool) {
			return s.faultAnswer(rec.endpoint, full, after != nil, decided)
		},
	}
	providertest.Serve(w, r, &rec.x)
}

// faultAnswer builds the answers of the kinds only this fake knows. decided is the
// grant's answer when after is true (AfterGrant faults).
func (s *Server) faultAnswer(endpoint string, f Fault, after bool, decided tokenResponse) (providertest.Answer, bool) {
	switch f.Kind {
	case FaultErrorIn200:
		code := f.ErrorCode
		if code == "" {
			code = "server_error"
		}
		return tokenResponse{
			status: http.StatusOK,
			body:   map[string]any{"error": code, "error_description": "fakeoauth: injected error in 200"},
		}.answer(), true
	case FaultMissingAccessToken:
		if endpoint == IntrospectionPath {
			// The introspection analogue: a 200 without the required "active" member.
			return tokenResponse{status: http.StatusOK, body: map[string]any{"token_type": "refresh_token"}}.answer(), true
		}
		body := map[string]any{"token_type": "Bearer", "expires_in": providertest.CeilSeconds(s.currentAccessLifetime())}
		if after && decided.status == http.StatusOK {
			for _, k := range []string{"refresh_token", "refresh_token_expires_in"} {
				if v, ok := decided.body[k]; ok {
					body[k] = v
				}
			}
		}
		return tokenResponse{status: http.StatusOK, body: body}.answer(), true
	}
	return providertest.Answer{}, false
}

// grant authenticates the client and applies the refresh_token grant rules.
func (s *Server) grant(r *http.Request, rec *requestRecord) tokenResponse {
	if res, ok := s.authenticateClient(r); !ok {
		return res
	}
	switch gt := r.PostForm.Get("grant_type"); gt {
	case "refresh_token":
	case "authorization_code":
		return s.codeGrant(r, rec)
	case "client_credentials":
		return s.clientCredentialsGrant(r, rec)
	case "":
		return errorResponse(http.StatusBadRequest, "invalid_request", "grant_type is required")
	default:
		return errorResponse(http.StatusBadRequest, "unsupported_grant_type", "only refresh_token, authorization_code and client_credentials are supported")
	}
	presented := r.PostForm.Get("refresh_token")
	if presented == "" {
		return errorResponse(http.StatusBadRequest, "invalid_request", "refresh_token is required")
	}

	// From here on the provider acts on the token, whatever the outcome. RFC 9700
	// section 4.14.2: on reuse the server cannot tell the legitimate client from an
	// attacker, so it revokes the whole family, the live successor included.
	red := s.ledger.Redeem(presented, providertest.Policy{RevokeOnReuse: true, NoRotation: s.opts.NoRotation})
	rec.family = red.Family
	switch red.Outcome {
	case providertest.Unknown:
		return errorResponse(http.StatusBadRequest, "invalid_grant", "unknown refresh token")
	case providertest.Reused:
		res := errorResponse(http.StatusBadRequest, "invalid_grant", "refresh token was already used; token family revoked")
		res.outcome = "reuse_detected"
		return res
	case providertest.Revoked:
		return errorResponse(http.StatusBadRequest, "invalid_grant", "refresh token revoked")
	case providertest.Expired:
		return errorResponse(http.StatusBadRequest, "invalid_grant", "refresh token expired")
	}

	body := map[string]any{
		"access_token": red.Access,
		"token_type":   "Bearer",
		"expires_in":   providertest.CeilSeconds(s.currentAccessLifetime()),
	}
	if s.opts.NoRotation {
		if !red.ExpiresAt.IsZero() {
			body["refresh_token_expires_in"] = providertest.CeilSeconds(red.ExpiresAt.Sub(s.opts.Now()))
		}
	} else {
		body["refresh_token"] = red.Refresh
		if s.opts.RefreshLifetime > 0 {
			body["refresh_token_expires_in"] = providertest.CeilSeconds(s.opts.RefreshLifetime)
		}
	}
	return tokenResponse{status: http.StatusOK, body: body, outcome: "refreshed"}
}

// parseAuthorization reads an RFC 6749 section 4.1.1 request for the consent page. PKCE
// with S256 is required (RFC 9700 section 2.1.1); a wrong client or redirect URI is an
// error page, never a redirect.
func (s *Server) parseAuthorization(q url.Values, account string) (consent.Request, error) {
	clientID, redirect := q.Get("client_id"), q.Get("redirect_uri")
	switch {
	case clientID == "" || (s.opts.ClientID != "" && clientID != s.opts.ClientID):
		return consent.Request{}, errors.New("unknown client_id")
	case !consent.RedirectAllowed(s.opts.RedirectURIs, redirect):
		return consent.Request{}, errors.New("redirect_uri is not registered for this client")
	case q.Get("response_type") != "code":
		return consent.Request{}, errors.New("response_type must be code")
	case q.Get("code_challenge") == "" || q.Get("code_challenge_method") != "S256":
		return consent.Request{}, errors.New("PKCE is required: code_challenge with code_challenge_method=S256")
	}
	return consent.Request{
		Grant: consent.Grant{Family: clientID + ":" + account, ClientID: clientID, RedirectURI: redirect,
			Scope: q.Get("scope"), Challenge: q.Get("code_challenge")},
		State:    q.Get("state"),
		Describe: []string{"client " + clientID, "scope: " + q.Get("scope")},
	}, nil
}

// codeGrant applies RFC 6749 section 4.1.3 to an authenticated request: the code, once,
// for its client and redirect URI, with the PKCE verifier. It starts the family the
// approval named.
func (s *Server) codeGrant(r *http.Request, rec *requestRecord) tokenResponse {
	code := r.PostForm.Get("code")
	if code == "" {
		return errorResponse(http.StatusBadRequest, "invalid_request", "code is required")
	}
	clientID := r.PostForm.Get("client_id")
	if user, _, ok := r.BasicAuth(); ok {
		clientID, _ = url.QueryUnescape(user)
	}
	g, outcome := s.codes.Redeem(code, consent.Presented{ClientID: clientID, RedirectURI: r.PostForm.Get("redirect_uri"),
		CheckRedirect: true, Verifier: r.PostForm.Get("code_verifier")})
	rec.family = g.Family
	if outcome != consent.OK {
		return errorResponse(http.StatusBadRequest, "invalid_grant", outcome.String())
	}
	access, refresh := s.ledger.Start(g.Family, 0)
	body := map[string]any{
		"access_token": access,
		"token_type":   "Bearer",
		"expires_in":   providertest.CeilSeconds(s.currentAccessLifetime()),
	}
	body["refresh_token"] = refresh
	if g.Scope != "" {
		body["scope"] = g.Scope
	}
	return tokenResponse{status: http.StatusOK, body: body, outcome: "exchanged"}
}

// clientCredentialsGrant applies RFC 6749 section 4.4 to an authenticated request: an
// access token and no refresh token (section 4.4.3). Each mint starts the client's
// family afresh, so the previous access token stops being the valid one.
func (s *Server) clientCredentialsGrant(r *http.Request, rec *requestRecord) tokenResponse {
	if s.opts.ClientID == "" {
		return errorResponse(http.StatusUnauthorized, "invalid_client", "client_credentials needs client authentication")
	}
	rec.family = "client:" + s.opts.ClientID
	access, _ := s.ledger.Start(rec.family, 0)
	body := map[string]any{
		"access_token": access,
		"token_type":   "Bearer",
		"expires_in":   providertest.CeilSeconds(s.currentAccessLifetime()),
	}
	if scope := r.PostForm.Get("scope"); scope != "" {
		body["scope"] = scope
	}
	s.mints.Add(1)
	return tokenResponse{status: http.StatusOK, body: body, outcome: "minted"}
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

	// token_type_hint is ignored (section 2.1 allows it): both kinds are searched, and
	// token values never collide across them. A refresh token is active exactly when a
	// refresh grant would accept it and it is its family's current one.
	t := s.ledger.Inspect(token)
	rec.family = t.Family
	switch {
	case t.Refresh && t.Active:
		// RFC 7662 token_type nominally names an access token type; "refresh_token" makes
		// the answer self-describing for the only thing tokenwarden asks about.
		return active("refresh_token", t.ExpiresAt)
	case t.Access && t.Active:
		return active("Bearer", t.ExpiresAt)
	}
	return tokenResponse{status: http.StatusOK, body: map[string]any{"active": false}, outcome: "inactive"}
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
	attrs = append(attrs, slog.String("family", rec.family))
	attrs = append(attrs, rec.x.LogAttrs(rec.outcome, elapsed)...)
	s.opts.Logger.LogAttrs(r.Context(), slog.LevelInfo, msg, attrs...)
}
