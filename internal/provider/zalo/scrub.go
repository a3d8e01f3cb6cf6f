package zalo

import (
	"encoding/json"
	"net/url"
	"regexp"
	"sort"
	"strings"
	"unicode"
)

// MaxDescriptionLen is the longest Zalo-supplied description kept in an error, in runes,
// after scrubbing.
const MaxDescriptionLen = 200

// maxCodeLen bounds a textual error code.
const maxCodeLen = 64

const redacted = "[redacted]"

// tokenRun matches runs of the characters Zalo tokens are made of (base64url with '-' and
// '_', sometimes '.', '+', '/', '='). Whether a run is redacted is decided by looksLikeToken.
var tokenRun = regexp.MustCompile(`[A-Za-z0-9_.~+/=-]{20,}`)

// scrubber removes one call's secrets, and anything token-shaped, from text that came
// back from Zalo or from the network stack.
type scrubber struct {
	secrets []string // longest first, so a secret containing another is replaced whole
}

func newScrubber(secrets ...string) scrubber {
	seen := map[string]bool{}
	var forms []string
	for _, s := range secrets {
		if s == "" {
			continue
		}
		// Zalo (or a proxy) may echo a value decoded, form-encoded or JSON-quoted.
		js, _ := json.Marshal(s)
		for _, f := range []string{s, url.QueryEscape(s), url.PathEscape(s), strings.Trim(string(js), `"`)} {
			if f != "" && !seen[f] {
				seen[f] = true
				forms = append(forms, f)
			}
		}
	}
	sort.Slice(forms, func(i, j int) bool { return len(forms[i]) > len(forms[j]) })
	return scrubber{secrets: forms}
}

// scrub returns s with secrets and token-like runs redacted, control characters turned
// into spaces, whitespace collapsed, and the result cut to limit runes. Redaction comes
// before the cut, so a cut never leaves part of a secret behind.
func (sc scrubber) scrub(s string, limit int) string {
	for _, secret := range sc.secrets {
		s = strings.ReplaceAll(s, secret, redacted)
	}
	s = tokenRun.ReplaceAllStringFunc(s, func(run string) string {
		if looksLikeToken(run) {
			return redacted
		}
		return run
	})
	s = strings.Join(strings.FieldsFunc(s, func(r rune) bool {
		return unicode.IsSpace(r) || unicode.IsControl(r)
	}), " ")
	return truncate(s, limit)
}

// looksLikeToken: random tokens contain a digit or a capital letter; snake_case names,
// host names and URL paths usually contain neither and stay readable.
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

// scrubbedError keeps err in the chain (errors.Is(err, context.DeadlineExceeded) still
// works) while its text passes through the scrubber.
func scrubbedError(err error, sc scrubber) error {
	if err == nil {
		return nil
	}
	return &redactedError{msg: sc.scrub(err.Error(), 4*MaxDescriptionLen), cause: err}
}

type redactedError struct {
	msg   string
	cause error
}

func (e *redactedError) Error() string { return e.msg }
func (e *redactedError) Unwrap() error { return e.cause }
