package feishutest

import (
	"crypto/subtle"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/tokenwarden/tokenwarden/internal/provider/providertest"
	"github.com/tokenwarden/tokenwarden/internal/provider/providertest/consent"
)

const maxBodyBytes = 64 << 10

// userErrorBody keeps the members in the order Feishu sends them (seed 001's answer).
type userErrorBody struct {
	Error            string `json:"error"`
	ErrorDescription string `json:"error_description"`
	Code             int    `json:"code"`
}

func userError(status, code int, errName, description string) providertest.Answer {
	return providertest.JSON(status, userErrorBody{Error: errName, ErrorDescription: description, Code: code})
}

// Descriptions of the two answers to a reused refresh token. The 20064 one is the
// seed report's text.
const (
	reusedRevokedDescription = "The refresh token has been revoked. Please note that a refresh token can only be used once."
	reusedUsedDescription    = "The refresh token has been used. Please note that a refresh token can only be used once."
)

func tenantError(code int, msg string) providertest.Answer {
	return providertest.JSON(http.StatusBadRequest, map[string]any{"code": code, "msg": msg})
}

type userRequest struct {
	GrantType    string `json:"grant_type"`
	ClientID     string `json:"client_id"`
	ClientSecret string `json:"client_secret"`
	RefreshToken string `json:"refresh_token"`
	Scope        string `json:"scope"`
	// The authorization_code grant's fields.
	Code         string `json:"code"`
	RedirectURI  string `json:"redirect_uri"`
	CodeVerifier string `json:"code_verifier"`
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

// serveWithFaults counts the request to path (carrying refresh token presented, or "")
// and runs decide between the two phases of its fault (see providertest.Serve).
func (s *Server) serveWithFaults(w http.ResponseWriter, r *http.Request, path, presented string, decide func() providertest.Answer) {
	var fault *providertest.Fault
	var full Fault
	leave := s.ledger.Arrive(path, presented, func() { fault, full = s.faults.Take(path) })
	defer leave()
	providertest.Serve(w, r, &providertest.Exchange{
		Fault:  fault,
		Rules:  &faultRules,
		Done:   s.Done(),
		Decide: decide,
		Custom: func(*providertest.Answer) (providertest.Answer, bool) { return faultAnswer(full) },
	})
}

func (s *Server) serveUser(w http.ResponseWriter, r *http.Request) {
	var req userRequest
	ok := readJSON(w, r, &req)
	s.serveWithFaults(w, r, UserTokenPath, req.RefreshToken, func() providertest.Answer {
		if !ok {
			return userError(http.StatusBadRequest, CodeInvalidRequest, "invalid_request", "body must be a JSON object (Content-Type: application/json)")
		}
		return s.userGrant(req)
	})
}

func (s *Server) userGrant(req userRequest) providertest.Answer {
	switch {
	case req.GrantType == "":
		return userError(http.StatusBadRequest, CodeInvalidRequest, "invalid_request", "grant_type is required")
	case req.GrantType != "refresh_token" && req.GrantType != "authorization_code":
		return userError(http.StatusBadRequest, CodeInvalidRequest, "unsupported_grant_type", "only refresh_token and authorization_code are supported")
	case req.ClientID != s.opts.AppID || subtle.ConstantTimeCompare([]byte(req.ClientSecret), []byte(s.opts.AppSecret)) != 1:
		return userError(http.StatusBadRequest, CodeInvalidClient, "invalid_client", "client_secret is invalid")
	case req.GrantType == "authorization_code":
		return s.codeGrant(req)
	case req.RefreshToken == "":
		return userError(http.StatusBadRequest, CodeInvalidRequest, "invalid_request", "refresh_token is required")
	}
	red := s.ledger.Redeem(req.RefreshToken, providertest.Policy{RevokeOnReuse: s.opts.RevokeOnReuse})
	switch red.Outcome {
	case providertest.Unknown:
		return userError(http.StatusBadRequest, CodeRefreshTokenInvalid, "invalid_grant", "The refresh token passed is invalid. Please check the value.")
	case providertest.Reused:
		if s.opts.ReuseCode == CodeRefreshTokenUsed {
			return userError(http.StatusBadRequest, CodeRefreshTokenUsed, "invalid_grant", reusedUsedDescription)
		}
		return userError(http.StatusBadRequest, CodeRefreshTokenRevoked, "invalid_grant", reusedRevokedDescription)
	case providertest.Revoked:
		return userError(http.StatusBadRequest, CodeRefreshTokenRevoked, "invalid_grant", "The refresh token has been revoked.")
	case providertest.Expired:
		return userError(http.StatusBadRequest, CodeRefreshTokenExpired, "invalid_grant", "The refresh token has expired.")
	}
	body := map[string]any{
		"code":          0,
		"access_token":  red.Access,
		"expires_in":    providertest.CeilSeconds(s.opts.UserAccessLifetime),
		"refresh_token": red.Refresh,
		"token_type":    "Bearer",
		"scope":         req.Scope,
	}
	if s.opts.RefreshLifetime > 0 {
		body["refresh_token_expires_in"] = providertest.CeilSeconds(s.opts.RefreshLifetime)
	}
	return providertest.JSON(http.StatusOK, body)
}

// codeGrant exchanges an authorization code from the consent page: once, within
// CodeLifetime, for the app and redirect_uri it was issued for, with the PKCE verifier
// when the authorization carried a challenge.
func (s *Server) codeGrant(req userRequest) providertest.Answer {
	if req.Code == "" {
		return userError(http.StatusBadRequest, CodeInvalidRequest, "invalid_request", "code is required")
	}
	g, outcome := s.codes.Redeem(req.Code, consent.Presented{ClientID: req.ClientID, RedirectURI: req.RedirectURI,
		CheckRedirect: true, Verifier: req.CodeVerifier})
	switch outcome {
	case consent.OK:
	case consent.Unknown, consent.WrongClient:
		return userError(http.StatusBadRequest, CodeInvalidCode, "invalid_grant", "The authorization code is invalid.")
	case consent.Expired:
		return userError(http.StatusBadRequest, CodeCodeExpired, "invalid_grant", "The authorization code has expired.")
	case consent.Used:
		return userError(http.StatusBadRequest, CodeCodeUsed, "invalid_grant", "The authorization code has been used.")
	case consent.WrongVerifier:
		return userError(http.StatusBadRequest, CodePKCEFailed, "invalid_grant", "code_verifier does not match the code_challenge.")
	case consent.WrongRedirect:
		return userError(http.StatusBadRequest, CodeRedirectMismatch, "invalid_grant", "redirect_uri differs from the authorization request's.")
	}
	access, refresh := s.ledger.Start(g.Family, 0)
	body := map[string]any{
		"code":         0,
		"access_token": access,
		"expires_in":   providertest.CeilSeconds(s.opts.UserAccessLifetime),
		"token_type":   "Bearer",
		"scope":        g.Scope,
	}
	// Without offline_access Feishu issues no refresh token.
	if strings.Contains(" "+g.Scope+" ", " offline_access ") {
		body["refresh_token"] = refresh
		if s.opts.RefreshLifetime > 0 {
			body["refresh_token_expires_in"] = providertest.CeilSeconds(s.opts.RefreshLifetime)
		}
	}
	return providertest.JSON(http.StatusOK, body)
}

// parseAuthorization reads a v1 authorize request for the consent page: the app,
// response_type=code, a registered redirect_uri, the scope, state and an optional PKCE
// challenge (S256 only here).
func (s *Server) parseAuthorization(q url.Values, account string) (consent.Request, error) {
	clientID, redirect := q.Get("client_id"), q.Get("redirect_uri")
	switch {
	case clientID != s.opts.AppID:
		return consent.Request{}, errors.New("the app (client_id) does not exist")
	case !consent.RedirectAllowed(s.opts.RedirectURIs, redirect):
		return consent.Request{}, errors.New("redirect_uri is not in the app's redirect URL list")
	case q.Get("response_type") != "code":
		return consent.Request{}, errors.New("response_type must be code")
	case q.Get("code_challenge") != "" && q.Get("code_challenge_method") != "S256":
		return consent.Request{}, errors.New("code_challenge_method must be S256")
	}
	return consent.Request{
		Grant: consent.Grant{Family: account, ClientID: clientID, RedirectURI: redirect, Scope: q.Get("scope"),
			Challenge: q.Get("code_challenge")},
		State:    q.Get("state"),
		Describe: []string{"app " + clientID, "scope: " + q.Get("scope")},
	}, nil
}

func (s *Server) serveTenant(w http.ResponseWriter, r *http.Request) {
	var req tenantRequest
	ok := readJSON(w, r, &req)
	s.serveWithFaults(w, r, TenantTokenPath, "", func() providertest.Answer {
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
func (s *Server) mintTenant() providertest.Answer {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.opts.Now()
	if exp, ok := s.tenant[s.current]; ok && s.opts.ReissueWindow > 0 {
		if left := exp.Sub(now); left >= s.opts.ReissueWindow {
			s.tenantReissues++
			return providertest.JSON(http.StatusOK, map[string]any{
				"code": 0, "msg": "ok", "tenant_access_token": s.current, "expire": int64(left / time.Second),
			})
		}
	}
	t := TenantTokenPrefix + providertest.RandomString()
	s.tenant[t] = now.Add(s.opts.TenantLifetime)
	s.current = t
	s.tenantMints++
	return providertest.JSON(http.StatusOK, map[string]any{
		"code": 0, "msg": "ok", "tenant_access_token": t, "expire": providertest.CeilSeconds(s.opts.TenantLifetime),
	})
}
