package oauth2provider

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

// maxCodeLen bounds the provider's error code; RFC 6749 codes are short identifiers.
const maxCodeLen = 64

const redacted = "[redacted]"

// tokenRun matches runs of characters that tokens are made of (base64, base64url, JWT,
// hex). Whether a run is actually redacted is decided by looksLikeToken.
var tokenRun = regexp.MustCompile(`[A-Za-z0-9_.~+/=-]{20,}`)

// scrubber removes the secrets of one Refresh call, and anything token-shaped, from text
// that came back from the provider.
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
	return scrubber{secrets: forms}
}

// scrub returns s with secrets and token-like runs redacted, control characters turned
// into spaces (no log injection), whitespace collapsed, and the result cut to limit runes.
// Redaction happens before the cut so that truncation never leaves a partial secret.
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
