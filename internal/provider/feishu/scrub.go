package feishu

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

const redacted = "[redacted]"

// tokenRun matches runs of token characters; looksLikeToken decides whether one goes.
var tokenRun = regexp.MustCompile(`[A-Za-z0-9_.~+/=-]{20,}`)

// scrubber removes one call's secrets, and anything token-shaped, from provider text.
type scrubber struct {
	secrets []string // longest first, so a secret containing another goes whole
}

func newScrubber(secrets ...string) scrubber {
	seen := map[string]bool{}
	var forms []string
	for _, s := range secrets {
		if s == "" {
			continue
		}
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

// scrub redacts secrets and token-like runs, turns control characters into spaces,
// collapses whitespace and cuts the result to limit runes, in that order.
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

// looksLikeToken: random tokens contain a digit or a capital letter; snake_case error
// names, host names and paths usually do not and stay readable.
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

// redactedError keeps err in the chain (errors.Is still sees context.DeadlineExceeded)
// while its text is scrubbed.
type redactedError struct {
	msg   string
	cause error
}

func (e *redactedError) Error() string { return e.msg }
func (e *redactedError) Unwrap() error { return e.cause }

func scrubbedError(err error, sc scrubber) error {
	if err == nil {
		return nil
	}
	return &redactedError{msg: sc.scrub(err.Error(), 4*MaxDescriptionLen), cause: err}
}
