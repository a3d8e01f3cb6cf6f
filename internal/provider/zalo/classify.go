package zalo

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

// MaxDescriptionLen is the longest Zalo-supplied description kept in an error, in runes,
// after scrubbing.
const MaxDescriptionLen = scrub.MaxDescriptionLen

// MaxRetryAfter caps the delay a Retry-After header can ask for.
const MaxRetryAfter = wire.MaxRetryAfter

// Codes of our own, used when Zalo gave none.
const (
	CodeNetwork           = wire.CodeNetwork
	CodeMalformedResponse = wire.CodeMalformedResponse
)

// Zalo OAuth v4 error codes this adapter knows by number. Zalo's public pages do not
// give one authoritative table for the token endpoint; these are the codes seen in
// Zalo's answers as reported by integrators (see the package documentation).
const (
	ErrInvalidAppID        = -14002 // "Invalid appId": app_id unknown or app inactive
	ErrInvalidSecretKey    = -14004 // the secret_key header does not match the app
	ErrInvalidCode         = -14005 // authorization code invalid, expired or already used
	ErrInvalidRefreshToken = -14014 // refresh token invalid, expired or already used
	ErrInvalidGrantType    = -14018 // grant_type not accepted
	ErrRateLimited         = -32    // believed to be Zalo's API-wide "request limit exceeded"
)

// permanentCodes need a human: the grant or the app is rejected.
var permanentCodes = map[int64]bool{
	ErrInvalidAppID:        true,
	ErrInvalidSecretKey:    true,
	ErrInvalidCode:         true,
	ErrInvalidRefreshToken: true,
	ErrInvalidGrantType:    true,
}

// transientCodes say "not now".
var transientCodes = map[int64]bool{
	ErrRateLimited: true,
}

// transientNames are textual codes with which a server says "later" (RFC 6749 names,
// in case a proxy or a future Zalo answers in OAuth2 style).
var transientNames = map[string]bool{
	"server_error":            true,
	"temporarily_unavailable": true,
	"slow_down":               true,
}

// answer is a decoded Zalo token endpoint response.
type answer struct {
	hasError    bool   // an "error" member that is not 0 / "" / null
	errNum      int64  // the numeric error code, when numeric
	errNumeric  bool   // errNum is meaningful
	errText     string // the error code as sent, when it was a non-numeric string
	name        string // error_name
	description string // error_description, or message
	access      string
	refresh     string
	expiresIn   int64 // seconds, 0 when absent or unusable
	refreshIn   int64 // refresh_token_expires_in, 0 when absent or unusable
}

// decode reads a JSON object answer. ok is false when the body is not a JSON object.
func decode(raw []byte) (a answer, ok bool) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil || m == nil {
		return answer{}, false
	}
	switch v := m["error"].(type) {
	case json.Number:
		if n, err := strconv.ParseInt(v.String(), 10, 64); err == nil {
			a.errNum, a.errNumeric, a.hasError = n, true, n != 0
		} else {
			a.errText, a.hasError = v.String(), true
		}
	case string:
		s := strings.TrimSpace(v)
		if n, err := strconv.ParseInt(s, 10, 64); err == nil {
			a.errNum, a.errNumeric, a.hasError = n, true, n != 0
		} else if s != "" {
			a.errText, a.hasError = s, true
		}
	case nil:
	case bool:
		a.hasError = v
		a.errText = "error"
	default:
		a.errText, a.hasError = "error", true
	}
	a.name = stringField(m["error_name"])
	a.description = stringField(m["error_description"])
	if a.description == "" {
		a.description = stringField(m["message"])
	}
	a.access = stringField(m["access_token"])
	a.refresh = stringField(m["refresh_token"])
	// Zalo sends lifetimes as JSON numbers or as numeric strings ("90000").
	a.expiresIn = wire.Seconds(m["expires_in"])
	a.refreshIn = wire.Seconds(m["refresh_token_expires_in"])
	return a, true
}

func stringField(v any) string {
	s, _ := v.(string)
	return s
}

// interpret turns one HTTP answer into a TokenSet or a classified, scrubbed error,
// following the table in the package documentation.
func (p *Provider) interpret(status int, header http.Header, raw []byte, sc scrub.Scrubber, presented string) (provider.TokenSet, error) {
	a, isJSON := decode(raw)
	e := &provider.Error{HTTPStatus: status}
	transient := func() (provider.TokenSet, error) {
		e.Kind = provider.Transient
		e.RetryAfter = wire.ParseRetryAfter(header.Get("Retry-After"), p.clock())
		return provider.TokenSet{}, e
	}
	if isJSON && a.hasError {
		e.Code, e.Description = errorCode(a, sc), describe(a, sc)
	}

	switch {
	case status >= 300 && status < 400:
		e.Code = fmt.Sprintf("http_%d", status)
		e.Description = "the token endpoint redirected (redirects are not followed; check base_url)"
		e.Kind = provider.Permanent
		return provider.TokenSet{}, e
	case wire.IsTransientStatus(status):
		if e.Code == "" {
			e.Code = fmt.Sprintf("http_%d", status)
			e.Description = sc.Scrub(string(raw), MaxDescriptionLen)
		}
		return transient()
	case isJSON && a.hasError:
		if permanentError(a) {
			e.Kind = provider.Permanent
			return provider.TokenSet{}, e
		}
		return transient()
	case status >= 400:
		e.Code = fmt.Sprintf("http_%d", status)
		e.Description = sc.Scrub(string(raw), MaxDescriptionLen)
		if status == http.StatusBadRequest {
			// Zalo answers its errors with 200 and a body; a 400 without one is most
			// likely a proxy speaking for it.
			return transient()
		}
		e.Kind = provider.Permanent // 401, 403, 404, 405, 410...: base_url or the app is wrong
		return provider.TokenSet{}, e
	case status < 200:
		e.Code = fmt.Sprintf("http_%d", status)
		return transient()
	case !isJSON || a.access == "":
		// Not quoted: an almost-successful answer is where fresh tokens would be.
		e.Code = CodeMalformedResponse
		e.Description = "Zalo answered without a usable token response"
		return transient()
	}

	now := p.clock()
	ts := provider.TokenSet{AccessToken: a.access, TokenType: "Bearer"}
	if a.refresh != "" && a.refresh != presented {
		ts.RefreshToken = a.refresh
		if a.refreshIn > 0 {
			ts.RefreshExpiresAt = now.Add(time.Duration(a.refreshIn) * time.Second)
		} else {
			ts.RefreshExpiresAt = now.Add(DefaultRefreshLifetime)
		}
	} else if a.refreshIn > 0 {
		ts.RefreshExpiresAt = now.Add(time.Duration(a.refreshIn) * time.Second)
	}
	if a.expiresIn > 0 {
		ts.AccessExpiresAt = now.Add(time.Duration(a.expiresIn) * time.Second)
	}
	return ts, nil
}

// permanentError decides an error answer (a non-zero "error") that came with a 2xx or
// 4xx status.
func permanentError(a answer) bool {
	if a.errNumeric {
		if permanentCodes[a.errNum] {
			return true
		}
		if transientCodes[a.errNum] {
			return false
		}
	} else if transientNames[strings.ToLower(a.errText)] {
		return false
	}
	// Unknown code: only Zalo's own words can say the grant or the app is dead.
	text := strings.ToLower(a.name + " " + a.errText)
	if !a.errNumeric || a.errNum < 0 {
		for _, w := range []string{"refresh_token", "refresh token", "invalid", "expired"} {
			if strings.Contains(text, w) {
				return true
			}
		}
	}
	return false
}

// errorCode renders Zalo's code for provider.Error.Code: the number ("-14014") or the
// scrubbed text.
func errorCode(a answer, sc scrub.Scrubber) string {
	if a.errNumeric {
		return strconv.FormatInt(a.errNum, 10)
	}
	return sc.Scrub(a.errText, scrub.MaxCodeLen)
}

// describe joins error_name and error_description, scrubbed and truncated.
func describe(a answer, sc scrub.Scrubber) string {
	d := strings.TrimSpace(a.name)
	if desc := strings.TrimSpace(a.description); desc != "" && desc != d {
		if d != "" {
			d += ": "
		}
		d += desc
	}
	return sc.Scrub(d, MaxDescriptionLen)
}
