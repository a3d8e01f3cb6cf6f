// Package consent is the authorization half that the fake providers (oauth2test,
// zalotest, feishutest) share: a consent page with an Approve and a Deny button, and
// the authorization codes it issues, with the rules real providers apply to them.
//
// # The page
//
// GET on the fake's authorization path checks the request (each fake has its own
// parameter names and error answers, see Request) and shows a form that repeats the
// request in hidden fields; POST of that form with decision=approve issues a code and
// redirects (302) to redirect_uri?code=...&state=...; decision=deny redirects with
// error=access_denied&state=... (RFC 6749 section 4.1.2.1). A request whose client or
// redirect URI is wrong is answered with an error page and never redirected: sending
// the browser to an unverified address is what an open redirector does (section
// 4.1.2.1 again).
//
// # Codes
//
// A code is single-use: the first exchange that finds it burns it, whatever the
// outcome (a wrong verifier or redirect URI included; section 4.1.2 says a code used
// twice must be refused). It expires after Lifetime (default one minute; providers
// document one to ten). With a challenge (PKCE, RFC 7636) the exchange must present
// the verifier whose S256 challenge it is; only S256 is accepted. A code is bound to
// the client and the redirect URI it was issued for.
package consent

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"fmt"
	"html"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/tokenwarden/tokenwarden/internal/provider/providertest"
)

// DefaultLifetime is a code's lifetime when Codes.Lifetime is 0.
const DefaultLifetime = time.Minute

// Grant is what an approved request authorizes: the token family to start and what
// the code is bound to.
type Grant struct {
	// Family names the token family the exchange starts (the approving account).
	Family string
	// Kind is the fake's family kind (zalotest: OA or user), 0 when it has one.
	Kind        int
	ClientID    string
	RedirectURI string
	Scope       string
	// Challenge is the S256 code_challenge, "" when the request had none.
	Challenge string
}

// Outcome is what an exchange found.
type Outcome int

// Exchange outcomes; every one but OK is a refusal.
const (
	OK Outcome = iota
	Unknown
	Used
	Expired
	WrongClient
	WrongRedirect
	WrongVerifier
)

func (o Outcome) String() string {
	return [...]string{"ok", "unknown code", "code already used", "code expired", "code issued to another client",
		"redirect_uri differs from the authorization request's", "code_verifier does not match the code_challenge"}[o]
}

// Codes issues and redeems authorization codes. The zero value is not usable; set
// Prefix and Now or use NewCodes.
type Codes struct {
	prefix   string
	lifetime time.Duration
	now      func() time.Time

	mu     sync.Mutex
	codes  map[string]*code
	issued int
	denied int
}

type code struct {
	grant     Grant
	expiresAt time.Time
	used      bool
}

// NewCodes returns a code book whose codes start with prefix and live lifetime (0:
// DefaultLifetime) on the clock now (nil: time.Now).
func NewCodes(prefix string, lifetime time.Duration, now func() time.Time) *Codes {
	if lifetime <= 0 {
		lifetime = DefaultLifetime
	}
	if now == nil {
		now = time.Now
	}
	return &Codes{prefix: prefix, lifetime: lifetime, now: now, codes: map[string]*code{}}
}

// Issue returns a new code for g.
func (c *Codes) Issue(g Grant) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	v := c.prefix + providertest.RandomString()
	c.codes[v] = &code{grant: g, expiresAt: c.now().Add(c.lifetime)}
	c.issued++
	return v
}

// Presented is what an exchange presents with a code.
type Presented struct {
	// Kind is the kind of the path the code arrived on: a code of another kind is
	// unknown there, and is not burnt.
	Kind int
	// ClientID, when not empty, must be the client the code was issued to.
	ClientID string
	// RedirectURI must equal the authorization request's when CheckRedirect is set
	// (providers whose token endpoint takes no redirect_uri, as Zalo's, leave it unset).
	RedirectURI   string
	CheckRedirect bool
	Verifier      string
}

// Redeem looks code up and burns it. A non-OK outcome still returns the grant the code
// was for, when there was one (for the log).
func (c *Codes) Redeem(v string, p Presented) (Grant, Outcome) {
	c.mu.Lock()
	defer c.mu.Unlock()
	k := c.codes[v]
	switch {
	case k == nil || k.grant.Kind != p.Kind:
		return Grant{}, Unknown
	case k.used:
		return k.grant, Used
	case !c.now().Before(k.expiresAt):
		k.used = true
		return k.grant, Expired
	}
	k.used = true
	switch {
	case p.ClientID != "" && p.ClientID != k.grant.ClientID:
		return k.grant, WrongClient
	case p.CheckRedirect && p.RedirectURI != k.grant.RedirectURI:
		return k.grant, WrongRedirect
	case k.grant.Challenge != "" && subtle.ConstantTimeCompare([]byte(ChallengeS256(p.Verifier)), []byte(k.grant.Challenge)) != 1:
		return k.grant, WrongVerifier
	}
	return k.grant, OK
}

// Issued and Denied count approvals and refusals on the page.
func (c *Codes) Issued() int { c.mu.Lock(); defer c.mu.Unlock(); return c.issued }

// Denied counts Deny clicks.
func (c *Codes) Denied() int { c.mu.Lock(); defer c.mu.Unlock(); return c.denied }

// ChallengeS256 is base64url(sha256(verifier)) without padding (RFC 7636 section 4.2).
func ChallengeS256(verifier string) string {
	sum := sha256.Sum256([]byte(verifier))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// Request is a fake's reading of an authorization request: the grant it asks for and
// the redirect target, or why it cannot be honoured (shown on an error page, with no
// redirect).
type Request struct {
	Grant Grant
	State string
	// Describe lists what the page shows the user (app, scopes).
	Describe []string
}

// Page serves the consent page of one fake.
type Page struct {
	// Provider names the fake on the page ("fakeoauth", "Zalo (fake)").
	Provider string
	Codes    *Codes
	// Parse reads the request's parameters (the query of the GET, the hidden fields of
	// the POST) and the approving account.
	Parse func(params url.Values, account string) (Request, error)
}

// ServeHTTP shows the page (GET) or applies the decision (POST).
func (p *Page) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var params url.Values
	switch r.Method {
	case http.MethodGet:
		params = r.URL.Query()
	case http.MethodPost:
		r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
		if err := r.ParseForm(); err != nil {
			p.errorPage(w, "the form could not be read")
			return
		}
		params = r.PostForm
	default:
		w.Header().Set("Allow", "GET, POST")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	account := params.Get("account")
	if account == "" {
		account = "alice"
	}
	req, err := p.Parse(params, account)
	if err != nil {
		p.errorPage(w, err.Error())
		return
	}
	if r.Method == http.MethodGet {
		p.form(w, params, req)
		return
	}
	target, _ := url.Parse(req.Grant.RedirectURI) // Parse checked it
	q := target.Query()
	switch params.Get("decision") {
	case "approve":
		q.Set("code", p.Codes.Issue(req.Grant))
	case "deny":
		p.Codes.mu.Lock()
		p.Codes.denied++
		p.Codes.mu.Unlock()
		q.Set("error", "access_denied")
		q.Set("error_description", "the user denied the request")
	default:
		p.errorPage(w, "decision must be approve or deny")
		return
	}
	if req.State != "" {
		q.Set("state", req.State)
	}
	target.RawQuery = q.Encode()
	w.Header().Set("Cache-Control", "no-store")
	http.Redirect(w, r, target.String(), http.StatusFound)
}

func (p *Page) form(w http.ResponseWriter, params url.Values, req Request) {
	var b strings.Builder
	fmt.Fprintf(&b, "<!doctype html><html><head><meta charset=\"utf-8\"><title>%s: authorize</title></head><body>\n", html.EscapeString(p.Provider))
	fmt.Fprintf(&b, "<h1>%s</h1>\n<p>An application asks for access to your account.</p>\n<ul>\n", html.EscapeString(p.Provider))
	for _, d := range req.Describe {
		fmt.Fprintf(&b, "<li>%s</li>\n", html.EscapeString(d))
	}
	b.WriteString("</ul>\n<form method=\"post\">\n")
	keys := make([]string, 0, len(params))
	for k := range params {
		if k != "decision" && k != "account" {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Fprintf(&b, "<input type=\"hidden\" name=\"%s\" value=\"%s\">\n", html.EscapeString(k), html.EscapeString(params.Get(k)))
	}
	b.WriteString("<label>Account <input name=\"account\" value=\"alice\"></label>\n")
	b.WriteString("<button type=\"submit\" name=\"decision\" value=\"approve\">Approve</button>\n")
	b.WriteString("<button type=\"submit\" name=\"decision\" value=\"deny\">Deny</button>\n</form>\n</body></html>\n")
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	_, _ = w.Write([]byte(b.String()))
}

func (p *Page) errorPage(w http.ResponseWriter, msg string) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(http.StatusBadRequest)
	fmt.Fprintf(w, "<!doctype html><title>%s: error</title><p>%s</p>\n", html.EscapeString(p.Provider), html.EscapeString(msg))
}

// RedirectAllowed applies the registered redirect URIs: an exact match, or (RFC 8252
// section 7.3) a loopback http URI that differs from a registered loopback one only in
// its port, since a native app's listener takes whatever port is free. No registered
// URI at all admits any loopback http URI, which is how the tests run.
func RedirectAllowed(registered []string, uri string) bool {
	u, err := url.Parse(uri)
	if err != nil || !u.IsAbs() || u.Fragment != "" {
		return false
	}
	loopback := u.Scheme == "http" && (u.Hostname() == "127.0.0.1" || u.Hostname() == "::1" || u.Hostname() == "localhost")
	if len(registered) == 0 {
		return loopback
	}
	for _, r := range registered {
		if r == uri {
			return true
		}
		ru, err := url.Parse(r)
		if err == nil && loopback && ru.Scheme == u.Scheme && ru.Hostname() == u.Hostname() && ru.Path == u.Path && ru.RawQuery == u.RawQuery {
			return true
		}
	}
	return false
}

// hiddenField matches the hidden inputs form writes (its own markup, nothing else).
var hiddenField = regexp.MustCompile(`<input type="hidden" name="([^"]*)" value="([^"]*)">`)

// Submit does what a browser does with the consent page at authURL when its user clicks
// decision ("approve" or "deny"): it loads the page, posts the form, and returns where
// the answer redirects to, without following it. For tests without a browser.
func Submit(client *http.Client, authURL, decision string) (*url.URL, error) {
	resp, err := client.Get(authURL)
	if err != nil {
		return nil, fmt.Errorf("load the consent page: %w", err)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	resp.Body.Close()
	if err != nil {
		return nil, fmt.Errorf("read the consent page: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("consent page: HTTP %d: %s", resp.StatusCode, strings.TrimSpace(string(body)))
	}
	form := url.Values{"decision": {decision}}
	for _, m := range hiddenField.FindAllStringSubmatch(string(body), -1) {
		form.Set(html.UnescapeString(m[1]), html.UnescapeString(m[2]))
	}
	noFollow := *client
	noFollow.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	resp, err = noFollow.PostForm(authURL, form)
	if err != nil {
		return nil, fmt.Errorf("post the decision: %w", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusFound {
		return nil, fmt.Errorf("decision: HTTP %d, want a redirect", resp.StatusCode)
	}
	return resp.Location()
}
