package zalotest

import (
	"crypto/subtle"
	"log/slog"
	"mime"
	"net/http"
	"strconv"
	"time"

	"github.com/tokenwarden/tokenwarden/internal/provider/providertest"
	"github.com/tokenwarden/tokenwarden/internal/provider/providertest/consent"
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
	outcome   string
	x         providertest.Exchange // status sent, or why none was
}

func (s *Server) serveToken(w http.ResponseWriter, r *http.Request, kind Kind) {
	started := time.Now()
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	formErr := r.ParseForm()
	mediaType, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	presented := r.PostForm.Get("refresh_token")

	var fault *providertest.Fault
	var full Fault
	leave := s.ledger.Arrive(kind.Path(), presented, func() { fault, full = s.faults.Take(kind.Path()) })
	defer leave()

	rec := &requestRecord{path: kind.Path(), grantType: r.PostForm.Get("grant_type"), presented: presented, outcome: "not_processed"}
	defer func() { s.logRequest(r, rec, time.Since(started)) }()

	var decided answer
	rec.x = providertest.Exchange{
		Fault: fault,
		Rules: &faultRules,
		Done:  s.Done(),
		Decide: func() providertest.Answer {
			switch {
			case mediaType != "application/x-www-form-urlencoded" || formErr != nil:
				decided = zaloError(ErrInvalidParameter, "Invalid parameter", "body must be an application/x-www-form-urlencoded form")
			default:
				decided = s.grant(r, kind, rec)
			}
			rec.outcome = decided.outcome
			return providertest.JSON(http.StatusOK, decided.body)
		},
		Custom: func(after *providertest.Answer) (providertest.Answer, bool) {
			return s.faultAnswer(full, after != nil && decided.ok, decided)
		},
	}
	providertest.Serve(w, r, &rec.x)
}

// faultAnswer builds the answers of the kinds only this fake knows. granted says an
// AfterGrant fault follows a successful grant, whose answer is decided.
func (s *Server) faultAnswer(f Fault, granted bool, decided answer) (providertest.Answer, bool) {
	switch f.Kind {
	case FaultErrorIn200:
		code := f.ErrorCode
		if code == 0 {
			code = DefaultFaultErrorCode
		}
		name := f.ErrorName
		if name == "" {
			name = "fakezalo: injected error"
		}
		return providertest.JSON(http.StatusOK, zaloError(code, name, "injected by fakezalo").body), true
	case FaultMissingAccessToken:
		body := map[string]any{"expires_in": s.lifetime(s.opts.AccessLifetime)}
		if granted {
			for _, k := range []string{"refresh_token", "refresh_token_expires_in"} {
				if v, ok := decided.body[k]; ok {
					body[k] = v
				}
			}
		}
		return providertest.JSON(http.StatusOK, body), true
	}
	return providertest.Answer{}, false
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

	// A token of the other kind is unknown on this path. Whether Zalo revokes the
	// family on reuse is not documented: only with Options.RevokeOnReuse.
	red := s.ledger.Redeem(presented, providertest.Policy{Kind: int(kind), RevokeOnReuse: s.opts.RevokeOnReuse})
	rec.family = red.Family
	switch red.Outcome {
	case providertest.Unknown:
		return invalid("refresh token is unknown")
	case providertest.Reused:
		res := invalid("refresh token was already used")
		res.outcome = "reuse_detected"
		return res
	case providertest.Revoked:
		return invalid("refresh token was revoked")
	case providertest.Expired:
		return invalid("refresh token has expired")
	}
	return s.tokens(red.Access, red.Refresh, "refreshed")
}

func (s *Server) codeGrant(r *http.Request, kind Kind, rec *requestRecord) answer {
	code := r.PostForm.Get("code")
	if code == "" {
		return zaloError(ErrInvalidParameter, "Invalid parameter", "code is required")
	}
	invalid := func(why string) answer { return zaloError(ErrInvalidCode, "Invalid code", why) }

	// The app was checked in grant when Options.AppID is set; without one, any app's
	// code is this app's.
	g, outcome := s.codes.Redeem(code, consent.Presented{Kind: int(kind), ClientID: s.opts.AppID, Verifier: r.PostForm.Get("code_verifier")})
	rec.family = g.Family
	switch {
	case outcome == consent.Unknown:
		return invalid("authorization code is unknown")
	case outcome == consent.Used:
		return invalid("authorization code was already used")
	case outcome == consent.Expired:
		return invalid("authorization code has expired")
	case outcome != consent.OK:
		return invalid(outcome.String())
	}
	s.mu.Lock()
	s.exchanges++
	s.mu.Unlock()
	access, refresh := s.ledger.Start(g.Family, int(kind))
	return s.tokens(access, refresh, "exchanged")
}

// tokens builds the answer carrying a new access and refresh token.
func (s *Server) tokens(access, refresh, outcome string) answer {
	body := map[string]any{
		"access_token":  access,
		"refresh_token": refresh,
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
	}
	attrs = append(attrs, rec.x.LogAttrs(rec.outcome, elapsed)...)
	s.opts.Logger.LogAttrs(r.Context(), slog.LevelInfo, "zalo token request", attrs...)
}
