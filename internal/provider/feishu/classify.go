package feishu

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/tokenwarden/tokenwarden/internal/provider"
	"github.com/tokenwarden/tokenwarden/internal/provider/internal/wire"
	"github.com/tokenwarden/tokenwarden/internal/provider/scrub"
)

// MaxDescriptionLen is the longest provider-supplied description kept in an error, in
// runes, after scrubbing.
const MaxDescriptionLen = scrub.MaxDescriptionLen

// MaxRetryAfter caps the delay Feishu can ask for.
const MaxRetryAfter = wire.MaxRetryAfter

// Codes of our own, used when Feishu gave none.
const (
	CodeNetwork           = wire.CodeNetwork
	CodeMalformedResponse = wire.CodeMalformedResponse
	CodeInvalidConfig     = wire.CodeInvalidConfig
	// ConfigCodePrefix marks Feishu codes that mean "the app configuration is wrong"
	// (Code "config_20002"), so a human reading the status looks at client_id and the
	// app secret rather than re-authorizing the user.
	ConfigCodePrefix = "config_"
)

// Feishu error codes the adapters treat specially. Any other non-zero code is Permanent.
const (
	// CodeRefreshTokenInvalid: the refresh token is malformed or unknown.
	CodeRefreshTokenInvalid = 20026
	// CodeRefreshTokenExpired: the refresh token outlived refresh_token_expires_in.
	CodeRefreshTokenExpired = 20037
	// CodeRefreshTokenRevoked: revoked (also what Feishu answered to the reused token in
	// the seed report).
	CodeRefreshTokenRevoked = 20064
	// CodeRefreshTokenUsed: the single-use refresh token was already presented.
	CodeRefreshTokenUsed = 20073
	// CodeServerError: Feishu's internal error; retry.
	CodeServerError = 20050
	// CodeRateLimited: request frequency limit; retry later.
	CodeRateLimited = 99991400
	// CodeClientSecretInvalid: client_id/client_secret rejected (v2 OAuth).
	CodeClientSecretInvalid = 20002
	// CodeAppCredentialInvalid: app credential rejected by the gateway.
	CodeAppCredentialInvalid = 99991543
	// CodeInvalidParam and CodeAppSecretInvalid: v3 auth's answers to a bad app_id or
	// app_secret.
	CodeInvalidParam     = 10003
	CodeAppSecretInvalid = 10014
)

var transientCodes = map[int64]string{
	CodeServerError: "Feishu server error",
	CodeRateLimited: "rate limited",
}

var configCodes = map[int64]string{
	CodeClientSecretInvalid:  "configuration: the app credentials were rejected; check config.client_id (App ID) and the seed's client_secret (App Secret)",
	CodeAppCredentialInvalid: "configuration: the app credentials were rejected; check config.client_id (App ID) and the seed's client_secret (App Secret)",
	CodeInvalidParam:         "configuration: Feishu rejected the request parameters; check config.client_id (App ID) and the seed's client_secret (App Secret)",
	CodeAppSecretInvalid:     "configuration: the App Secret was rejected; check the seed's client_secret and config.client_id",
}

var permanentMeanings = map[int64]string{
	CodeRefreshTokenInvalid: "refresh token invalid",
	CodeRefreshTokenExpired: "refresh token expired",
	CodeRefreshTokenRevoked: "refresh token revoked",
	CodeRefreshTokenUsed:    "refresh token already used (single-use)",
	20024:                   "refresh token does not belong to this app",
	20074:                   "the app may not refresh user tokens (enable refresh in the developer console)",
	20010:                   "the user may not use this app",
	20008:                   "the user does not exist",
	20066:                   "the user's status does not allow access",
}

// answer is a decoded Feishu response: either error fields or token fields.
type answer struct {
	json    bool // the body was a JSON object
	code    int64
	hasCode bool
	text    string // error/error_description/msg, joined

	accessToken      string
	expiresIn        int64
	refreshToken     string
	refreshExpiresIn int64
	tokenType        string
}

// decode reads a Feishu JSON body leniently: numbers may arrive as numbers or numeric
// strings, unknown fields are ignored.
func decode(body []byte) answer {
	var m map[string]json.RawMessage
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	if err := dec.Decode(&m); err != nil || m == nil {
		return answer{}
	}
	a := answer{json: true}
	if raw, ok := m["code"]; ok {
		if n, ok := number(raw); ok {
			a.code, a.hasCode = n, true
		}
	}
	var parts []string
	if e := str(m["error"]); e != "" {
		parts = append(parts, e)
	}
	for _, k := range []string{"error_description", "msg", "message"} {
		if s := str(m[k]); s != "" && !(k != "error_description" && strings.EqualFold(s, "ok")) {
			parts = append(parts, s)
			break
		}
	}
	a.text = strings.Join(parts, ": ")
	a.accessToken = str(m["access_token"])
	if a.accessToken == "" {
		a.accessToken = str(m["tenant_access_token"])
	}
	a.expiresIn, _ = number(m["expires_in"])
	if a.expiresIn == 0 {
		a.expiresIn, _ = number(m["expire"])
	}
	a.refreshToken = str(m["refresh_token"])
	a.refreshExpiresIn, _ = number(m["refresh_token_expires_in"])
	a.tokenType = str(m["token_type"])
	return a
}

func str(raw json.RawMessage) string {
	var s string
	if len(raw) == 0 || json.Unmarshal(raw, &s) != nil {
		return ""
	}
	return s
}

// number reads an integer given as a JSON number or a numeric string.
func number(raw json.RawMessage) (int64, bool) {
	if len(raw) == 0 {
		return 0, false
	}
	var v any
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if err := dec.Decode(&v); err != nil {
		return 0, false
	}
	var s string
	switch x := v.(type) {
	case json.Number:
		s = x.String()
	case string:
		s = strings.TrimSpace(x)
	default:
		return 0, false
	}
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		return n, true
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || f != f || f > 1e15 || f < -1e15 {
		return 0, false
	}
	return int64(f), true
}

// classify applies the package documentation's table to an HTTP answer. It returns nil
// when the answer is a success candidate (2xx, code 0 or absent); the caller then checks
// that it carries a token.
func classify(status int, header http.Header, body []byte, a answer, now time.Time, sc scrub.Scrubber) *provider.Error {
	e := &provider.Error{HTTPStatus: status}
	transientStatus := wire.IsTransientStatus(status)
	switch {
	case status >= 300 && status < 400:
		e.Kind, e.Code = provider.Permanent, fmt.Sprintf("http_%d", status)
		e.Description = "redirect not followed: base_url must name the Feishu/Lark API host itself"
		if loc := header.Get("Location"); loc != "" {
			e.Description += " (Location: " + sc.Scrub(loc, 80) + ")"
		}
		return e
	case a.hasCode && a.code != 0:
		e.Code = strconv.FormatInt(a.code, 10)
		meaning := ""
		switch {
		case transientStatus:
			e.Kind = provider.Transient
			meaning = transientCodes[a.code]
		case transientCodes[a.code] != "":
			e.Kind, meaning = provider.Transient, transientCodes[a.code]
		case configCodes[a.code] != "":
			e.Kind, meaning = provider.Permanent, configCodes[a.code]
			e.Code = ConfigCodePrefix + e.Code
		default:
			e.Kind, meaning = provider.Permanent, permanentMeanings[a.code]
		}
		e.Description = describe(meaning, sc.Scrub(a.text, MaxDescriptionLen))
	case transientStatus:
		e.Kind, e.Code = provider.Transient, fmt.Sprintf("http_%d", status)
		e.Description = sc.Scrub(string(body), MaxDescriptionLen)
	case status >= 200 && status < 300:
		return nil
	case status == http.StatusBadRequest:
		e.Kind, e.Code = provider.Transient, "http_400"
		e.Description = sc.Scrub(string(body), MaxDescriptionLen)
	default:
		e.Kind, e.Code = provider.Permanent, fmt.Sprintf("http_%d", status)
		e.Description = sc.Scrub(string(body), MaxDescriptionLen)
	}
	if e.Kind == provider.Transient {
		e.RetryAfter = retryAfter(header, now)
	}
	return e
}

// describe puts our meaning of a code before Feishu's text. text comes from the
// scrubber, already cut to MaxDescriptionLen runes, so the result needs no further cut.
func describe(meaning, text string) string {
	switch {
	case meaning == "":
		return text
	case text == "":
		return meaning
	default:
		return meaning + ": " + text
	}
}

// retryAfter reads Retry-After (delta-seconds or HTTP-date) or, failing that, Feishu's
// x-ogw-ratelimit-reset (seconds until the window resets), capped at MaxRetryAfter.
func retryAfter(h http.Header, now time.Time) time.Duration {
	if d := parseDelay(h.Get("Retry-After"), now); d > 0 {
		return d
	}
	return parseDelay(h.Get("X-Ogw-Ratelimit-Reset"), time.Time{})
}

// parseDelay reads a delay in seconds or, when now is not zero, an HTTP-date relative to
// now (see wire.ParseRetryAfter). Unlike the RFC, a leading '+' is accepted ("+30" is
// 30 seconds), as this adapter always has.
func parseDelay(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if digits, ok := strings.CutPrefix(v, "+"); ok && wire.IsDigits(digits) {
		v = digits
	}
	if now.IsZero() {
		return wire.ParseDelaySeconds(v)
	}
	return wire.ParseRetryAfter(v, now)
}
