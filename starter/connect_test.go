package main

import (
	"bytes"
	"context"
	"errors"
	"net"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tokenwarden/tokenwarden/internal/credential"
	"github.com/tokenwarden/tokenwarden/internal/provider"
	"github.com/tokenwarden/tokenwarden/workflows"
)

func TestConnectStateAndVerifierAreRandomPKCETokens(t *testing.T) {
	seen := map[string]bool{}
	verifierChars := regexp.MustCompile(`^[A-Za-z0-9_-]{43}$`) // RFC 7636 section 4.1, base64url
	for range 50 {
		v, err := randomToken()
		if err != nil {
			t.Fatal(err)
		}
		if !verifierChars.MatchString(v) {
			t.Fatalf("verifier %q is not 43 characters of the unreserved base64url set", v)
		}
		if seen[v] {
			t.Fatalf("randomToken repeated %q", v)
		}
		seen[v] = true
	}
	// S256 is base64url(sha256(ASCII(verifier))) without padding: 43 characters, and a
	// function of the verifier alone.
	c := challengeS256("verifier")
	if c != challengeS256("verifier") || c == challengeS256("verifier2") || len(c) != 43 || strings.ContainsAny(c, "+/=") {
		t.Errorf("challengeS256 = %q", c)
	}
}

func exitCode(t *testing.T, err error) int {
	t.Helper()
	var ce *cliError
	if !errors.As(err, &ce) {
		t.Fatalf("error %v is not a cliError", err)
	}
	return ce.code
}

func TestConnectCheckCallback(t *testing.T) {
	const state = "the-state"
	for _, tc := range []struct {
		name  string
		query string
		code  int // 0: accepted
		want  string
	}{
		{"code", "code=abc&state=the-state", 0, ""},
		{"wrong state", "code=abc&state=other", exitWrongState, "state does not match"},
		{"missing state", "code=abc", exitWrongState, "state does not match"},
		{"prefix of the state", "code=abc&state=the-stat", exitWrongState, "state does not match"},
		{"denied", "error=access_denied&state=the-state", exitDenied, "access denied"},
		{"denied with a forged state", "error=access_denied&state=x", exitWrongState, "state does not match"},
		{"other error", "error=invalid_scope&error_description=no+such+scope&state=the-state", exitRefused, "error=invalid_scope: no such scope"},
		{"neither", "state=the-state", exitRefused, "neither a code nor an error"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			q, _ := url.ParseQuery(tc.query)
			code, err := checkCallback(q, state)
			if tc.code == 0 {
				if err != nil || code != "abc" {
					t.Fatalf("checkCallback = %q, %v", code, err)
				}
				return
			}
			if got := exitCode(t, err); got != tc.code || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("checkCallback: exit %d %v, want exit %d mentioning %q", got, err, tc.code, tc.want)
			}
		})
	}
}

func TestConnectParsePasted(t *testing.T) {
	const redirect, state = "https://app.example.com/oauth/done", "st"
	for _, tc := range []struct {
		name, line string
		code       int
	}{
		{"address", "https://app.example.com/oauth/done?code=c0de&state=st\n", 0},
		{"spaces and CRLF", "  https://app.example.com/oauth/done?state=st&code=c0de \r\n", 0},
		{"host case", "https://APP.example.com/oauth/done?code=c0de&state=st", 0},
		{"other host", "https://evil.example.com/oauth/done?code=c0de&state=st", exitBadInput},
		{"other path", "https://app.example.com/elsewhere?code=c0de&state=st", exitBadInput},
		{"not a URL", "c0de", exitBadInput},
		{"empty", "\n", exitBadInput},
		{"wrong state", "https://app.example.com/oauth/done?code=c0de&state=nope", exitWrongState},
		{"denied", "https://app.example.com/oauth/done?error=access_denied&state=st", exitDenied},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, err := parsePasted(tc.line, redirect, state)
			if tc.code == 0 {
				if err != nil || code != "c0de" {
					t.Fatalf("parsePasted = %q, %v", code, err)
				}
				return
			}
			if got := exitCode(t, err); got != tc.code {
				t.Fatalf("parsePasted: exit %d (%v), want %d", got, err, tc.code)
			}
			if strings.Contains(err.Error(), "c0de") {
				t.Errorf("the error quotes the code: %v", err)
			}
		})
	}
}

// fakeAuthorizer records what the flow asks of a provider.
type fakeAuthorizer struct {
	mu        sync.Mutex
	exchanges int
	code      string
	verifier  string
	redirect  string
	challenge string
	refuse    bool
}

func (f *fakeAuthorizer) CanAuthorize(provider.Config) error { return nil }

func (f *fakeAuthorizer) AuthCodeURL(_ provider.Config, redirectURI, state, challenge string) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.redirect, f.challenge = redirectURI, challenge
	return "https://provider.example/authorize?" + url.Values{"redirect_uri": {redirectURI}, "state": {state}, "code_challenge": {challenge}}.Encode(), nil
}

func (f *fakeAuthorizer) Exchange(_ context.Context, _ provider.Config, _ provider.Grant, redirectURI, code, verifier string) (provider.TokenSet, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.exchanges++
	f.code, f.verifier = code, verifier
	if redirectURI != f.redirect {
		return provider.TokenSet{}, &provider.Error{Kind: provider.Permanent, Code: "invalid_grant", Description: "redirect_uri mismatch"}
	}
	if f.refuse || challengeS256(verifier) != f.challenge {
		return provider.TokenSet{}, &provider.Error{Kind: provider.Permanent, Code: "invalid_grant", Description: "code refused"}
	}
	return provider.TokenSet{AccessToken: "at", RefreshToken: "rt"}, nil
}

// browser answers the authorization URL as a provider's page would: it sends the
// "browser" back to the redirect URI with the query respond makes from the request's
// state. It returns the page the callback served.
func browser(t *testing.T, respond func(state string) url.Values) (open func(string) bool, pageText func() string) {
	var mu sync.Mutex
	var text string
	done := make(chan struct{})
	open = func(authURL string) bool {
		u, err := url.Parse(authURL)
		if err != nil {
			t.Error(err)
			return false
		}
		go func() {
			defer close(done)
			back := u.Query().Get("redirect_uri") + "?" + respond(u.Query().Get("state")).Encode()
			resp, err := http.Get(back)
			if err != nil {
				t.Errorf("the browser's callback request: %v", err)
				return
			}
			defer resp.Body.Close()
			var b bytes.Buffer
			_, _ = b.ReadFrom(resp.Body)
			mu.Lock()
			text = b.String()
			mu.Unlock()
		}()
		return true
	}
	return open, func() string {
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Error("the browser's request did not finish")
		}
		mu.Lock()
		defer mu.Unlock()
		return text
	}
}

func testApp(stdin string) (*app, *bytes.Buffer) {
	var out bytes.Buffer
	return &app{stdin: strings.NewReader(stdin), stdout: &out, stderr: &out}, &out
}

func TestConnectLoopbackRoundTrip(t *testing.T) {
	f := &fakeAuthorizer{}
	open, pageText := browser(t, func(state string) url.Values { return url.Values{"code": {"the-code"}, "state": {state}} })
	a, out := testApp("")
	ts, finish, err := a.authorize(context.Background(), f, provider.Config{}, provider.Grant{}, connectOptions{timeout: 10 * time.Second, open: open})
	if err != nil {
		t.Fatalf("authorize: %v\n%s", err, out)
	}
	finish(nil)
	if ts.RefreshToken != "rt" || f.exchanges != 1 || f.code != "the-code" {
		t.Errorf("token set %+v after %d exchanges of %q", ts, f.exchanges, f.code)
	}
	if !strings.HasPrefix(f.redirect, "http://127.0.0.1:") || !strings.HasSuffix(f.redirect, callbackPath) {
		t.Errorf("redirect URI %q, want the loopback callback", f.redirect)
	}
	if got := pageText(); !strings.Contains(got, "received the authorization") {
		t.Errorf("browser page: %q", got)
	}
	for _, secret := range []string{"the-code", f.verifier, "rt", "at\n"} {
		if strings.Contains(out.String(), secret) {
			t.Errorf("output holds %q:\n%s", secret, out)
		}
	}
}

func TestConnectErrorPaths(t *testing.T) {
	for _, tc := range []struct {
		name    string
		respond func(state string) url.Values
		refuse  bool
		code    int
		page    string
	}{
		{"denied", func(s string) url.Values { return url.Values{"error": {"access_denied"}, "state": {s}} }, false, exitDenied, "access denied"},
		{"wrong state", func(string) url.Values { return url.Values{"code": {"c"}, "state": {"forged"}} }, false, exitWrongState, "state does not match"},
		{"code refused", func(s string) url.Values { return url.Values{"code": {"c"}, "state": {s}} }, true, exitRefused, "refused the authorization code"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := &fakeAuthorizer{refuse: tc.refuse}
			open, pageText := browser(t, tc.respond)
			a, out := testApp("")
			_, _, err := a.authorize(context.Background(), f, provider.Config{}, provider.Grant{}, connectOptions{timeout: 10 * time.Second, open: open})
			if got := exitCode(t, err); got != tc.code {
				t.Fatalf("exit %d (%v), want %d\n%s", got, err, tc.code, out)
			}
			if want := map[bool]int{true: 1, false: 0}[tc.refuse]; f.exchanges != want {
				t.Errorf("%d exchanges, want %d", f.exchanges, want)
			}
			if got := pageText(); !strings.Contains(got, tc.page) {
				t.Errorf("browser page %q does not say %q", got, tc.page)
			}
		})
	}
}

func TestConnectTimeout(t *testing.T) {
	f := &fakeAuthorizer{}
	a, _ := testApp("")
	start := time.Now()
	_, _, err := a.authorize(context.Background(), f, provider.Config{}, provider.Grant{}, connectOptions{timeout: 200 * time.Millisecond})
	if got := exitCode(t, err); got != exitTimeout || time.Since(start) > 5*time.Second {
		t.Fatalf("exit %d after %s (%v), want %d promptly", got, time.Since(start), err, exitTimeout)
	}
	if f.exchanges != 0 {
		t.Errorf("%d exchanges after a timeout", f.exchanges)
	}
	if err := (connectOptions{timeout: time.Second}).check(); err == nil || exitCode(t, err) != exitBadInput {
		t.Errorf("a 1s -timeout passed the floor: %v", err)
	}
}

func TestConnectPortInUse(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	port := ln.Addr().(*net.TCPAddr).Port
	a, _ := testApp("")
	_, _, err = a.authorize(context.Background(), &fakeAuthorizer{}, provider.Config{}, provider.Grant{}, connectOptions{port: port, timeout: time.Second})
	if got := exitCode(t, err); got != exitPortInUse {
		t.Fatalf("exit %d (%v), want %d", got, err, exitPortInUse)
	}
}

// TestConnectSecondCallbackIsNotExchanged: only the first request to the callback is
// taken; a replayed one is told so and never reaches the provider.
func TestConnectSecondCallbackIsNotExchanged(t *testing.T) {
	f := &fakeAuthorizer{}
	var replay string
	open, pageText := browser(t, func(state string) url.Values {
		return url.Values{"code": {"c"}, "state": {state}}
	})
	wrapped := func(u string) bool {
		parsed, _ := url.Parse(u)
		replay = parsed.Query().Get("redirect_uri") + "?code=c&state=" + parsed.Query().Get("state")
		return open(u)
	}
	a, _ := testApp("")
	_, finish, err := a.authorize(context.Background(), f, provider.Config{}, provider.Grant{}, connectOptions{timeout: 10 * time.Second, open: wrapped})
	if err != nil {
		t.Fatal(err)
	}
	// The listener still serves until finish: a second request now is refused.
	resp, err := http.Get(replay)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusConflict {
		t.Errorf("replayed callback: HTTP %d, want 409", resp.StatusCode)
	}
	finish(nil)
	pageText()
	if f.exchanges != 1 {
		t.Errorf("%d exchanges, want 1", f.exchanges)
	}
}

func TestConnectPasteMode(t *testing.T) {
	const redirect = "https://app.example.com/cb"
	f := &fakeAuthorizer{}
	// The pasted line needs the state, which only the printed URL tells: a reader that
	// produces it once the URL is out.
	pr := &pasteReader{ready: make(chan string, 1)}
	a := &app{stdin: pr, stdout: &urlWatcher{found: pr.ready}, stderr: &bytes.Buffer{}}
	ts, finish, err := a.authorize(context.Background(), f, provider.Config{RedirectURI: redirect}, provider.Grant{},
		connectOptions{paste: true, timeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	finish(nil)
	if f.redirect != redirect || f.exchanges != 1 || ts.RefreshToken != "rt" {
		t.Errorf("redirect %q, %d exchanges, %+v", f.redirect, f.exchanges, ts)
	}
	if _, _, err := a.authorize(context.Background(), f, provider.Config{}, provider.Grant{}, connectOptions{paste: true, timeout: time.Second}); exitCode(t, err) != exitBadInput {
		t.Errorf("-paste without redirect_uri: %v", err)
	}
	if _, _, err := a.authorize(context.Background(), f, provider.Config{RedirectURI: redirect}, provider.Grant{}, connectOptions{timeout: time.Second}); exitCode(t, err) != exitBadInput {
		t.Errorf("a non-loopback redirect_uri without -paste: %v", err)
	}
}

// urlWatcher passes on the first authorization URL written to it, as the user's eyes.
type urlWatcher struct {
	buf   bytes.Buffer
	found chan string
	sent  bool
}

func (w *urlWatcher) Write(p []byte) (int, error) {
	w.buf.Write(p)
	if m := regexp.MustCompile(`https://provider\.example/authorize\?\S+`).FindString(w.buf.String()); m != "" && !w.sent {
		w.sent = true
		w.found <- m
	}
	return len(p), nil
}

// pasteReader types the address the browser landed on once the URL is known.
type pasteReader struct {
	ready chan string
	rest  *strings.Reader
}

func (r *pasteReader) Read(p []byte) (int, error) {
	if r.rest == nil {
		u, _ := url.Parse(<-r.ready)
		r.rest = strings.NewReader(u.Query().Get("redirect_uri") + "?code=pasted&state=" + u.Query().Get("state") + "\n")
	}
	return r.rest.Read(p)
}

func TestConnectRefusesBadInputBeforeDialling(t *testing.T) {
	setTemporalEnv(t)
	dir := t.TempDir()
	cred := dir + "/cred.json"
	writeTestFile(t, cred, `{"id":"c1","provider":"oauth2","config":{"token_url":"https://idp.example/token","client_id":"app","authorize_url":"https://idp.example/authorize"}}`)
	withTokens := dir + "/secrets.json"
	writeTestFile(t, withTokens, `{"client_secret":"s3cret-value","refresh_token":"rt-value"}`)
	for _, tc := range []struct {
		name  string
		stdin string
		args  []string
		want  string
	}{
		{"no argument", "", []string{"connect"}, "expected one credential file or credential ID"},
		{"timeout below the floor", "", []string{"connect", cred, "-timeout", "5s"}, "-timeout: must be at least 30s"},
		{"port out of range", "", []string{"connect", cred, "-port", "70000"}, "-port: must be between"},
		{"paste and secrets on stdin", "", []string{"connect", cred, "-paste", "-secrets", "-"}, "give -secrets a file"},
		{"secrets with tokens", "", []string{"connect", cred, "-secrets", withTokens}, "holds only client_secret"},
		{"secrets without a client secret", `{}`, []string{"connect", cred, "-secrets", "-"}, "client_secret: required"},
		{"not a file nor an ID", "", []string{"connect", "no such/file"}, "neither a credential file nor a credential ID"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := runStarter(t, tc.stdin, tc.args...)
			r.check(t, exitBadInput, tc.want)
			r.checkNoDial(t)
			for _, secret := range []string{"s3cret-value", "rt-value"} {
				if strings.Contains(r.stdout+r.stderr, secret) {
					t.Errorf("output holds a secret:\n%s%s", r.stdout, r.stderr)
				}
			}
		})
	}
}

func writeTestFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestStatusNamesTheFixingCommand(t *testing.T) {
	var b bytes.Buffer
	st := workflows.Status{ID: "zalo-oa-main", Provider: "zalo-oa", Config: provider.Config{ClientID: "1234"}, State: credential.StateNeedsReauth}
	printStatus(&b, st, time.Now())
	if !strings.Contains(b.String(), "starter connect zalo-oa-main") {
		t.Errorf("status of a NEEDS_REAUTH zalo-oa credential:\n%s", b.String())
	}
	err := (&app{stdout: &b}).reportRound(st, "reseeded")
	if err == nil || !strings.Contains(err.Error(), "`starter connect zalo-oa-main`") {
		t.Errorf("reseed's hint: %v", err)
	}
	b.Reset()
	st.State = credential.StateActive
	printStatus(&b, st, time.Now())
	if strings.Contains(b.String(), "to fix") {
		t.Errorf("an ACTIVE credential gets a fix:\n%s", b.String())
	}
}
