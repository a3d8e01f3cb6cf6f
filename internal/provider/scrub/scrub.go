// Package scrub keeps secrets out of error messages built from what providers send back.
//
// Providers echo refresh tokens in error descriptions, proxies answer with HTML pages
// that quote the request, and Go's HTTP client quotes the whole URL in its errors. Every
// adapter passes such text through a Scrubber that knows the call's secrets, and that
// also redacts any long run that looks like a token, before the text reaches an error.
package scrub

import (
	"encoding/json"
	"net/url"
	"regexp"
	"sort"
	"strings"
	"unicode"
)

// MaxDescriptionLen is the longest provider-supplied description kept in an error, in
// runes, after scrubbing.
const MaxDescriptionLen = 200

// MaxCodeLen bounds a provider's error code: codes are short identifiers.
const MaxCodeLen = 64

// Redacted replaces every secret and token-like run.
const Redacted = "[redacted]"

// tokenRun matches runs of characters that tokens are made of (base64, base64url, JWT,
// hex). Whether a run is actually redacted is decided by looksLikeToken.
var tokenRun = regexp.MustCompile(`[A-Za-z0-9_.~+/=-]{20,}`)

// Scrubber removes the secrets of one provider call, and anything token-shaped, from
// text that came back from the provider or from the HTTP stack (whose errors quote URLs,
// query strings included).
type Scrubber struct {
	secrets []string // longest first, so a secret containing another is replaced whole
}

// New returns a Scrubber for the given secrets; empty ones are ignored.
func New(secrets ...string) Scrubber {
	seen := map[string]bool{}
	var forms []string
	for _, s := range secrets {
		if s == "" {
			continue
		}
		// The provider may echo a value decoded, form-encoded, path-encoded or quoted
		// inside JSON; catch every spelling we could have caused.
		js, _ := json.Marshal(s)
		for _, f := range []string{s, url.QueryEscape(s), url.PathEscape(s), strings.Trim(string(js), `"`)} {
			if f != "" && !seen[f] {
				seen[f] = true
				forms = append(forms, f)
			}
		}
	}
	sort.Slice(forms, func(i, j int) bool { return len(forms[i]) > len(forms[j]) })
	return Scrubber{secrets: forms}
}

// Scrub returns s with secrets and token-like runs redacted, control characters turned
// into spaces (no log injection), whitespace collapsed, and the result cut to limit runes.
// Redaction happens before the cut so that truncation never leaves a partial secret.
func (sc Scrubber) Scrub(s string, limit int) string {
	for _, secret := range sc.secrets {
		s = strings.ReplaceAll(s, secret, Redacted)
	}
	s = tokenRun.ReplaceAllStringFunc(s, func(run string) string {
		if looksLikeToken(run) {
			return Redacted
		}
		return run
	})
	s = strings.Join(strings.FieldsFunc(s, func(r rune) bool {
		return unicode.IsSpace(r) || unicode.IsControl(r)
	}), " ")
	return truncate(s, limit)
}

// looksLikeToken reports whether a long run of token characters should be redacted.
// Random tokens almost always contain a digit or a capital letter; snake_case error codes
// ("unsupported_grant_type"), host names and URL paths usually contain neither and are
// worth keeping readable.
func looksLikeToken(run string) bool {
	return strings.ContainsFunc(run, func(r rune) bool {
		return ('0' <= r && r <= '9') || ('A' <= r && r <= 'Z')
	})
}

func truncate(s string, limit int) string {
	if limit <= 0 {
		return ""
	}
	n := 0
	for i := range s {
		if n == limit {
			return s[:i] + "…"
		}
		n++
	}
	return s
}

// Error keeps err in the chain (so errors.Is(err, context.DeadlineExceeded) still works)
// while its text passes through the scrubber, cut to limit runes.
func (sc Scrubber) Error(err error, limit int) error {
	if err == nil {
		return nil
	}
	return &redactedError{msg: sc.Scrub(err.Error(), limit), cause: err}
}

type redactedError struct {
	msg   string
	cause error
}

func (e *redactedError) Error() string { return e.msg }
func (e *redactedError) Unwrap() error { return e.cause }
