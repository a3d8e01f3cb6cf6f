package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"html"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"

	"github.com/tokenwarden/tokenwarden/internal/config"
	"github.com/tokenwarden/tokenwarden/internal/credential"
	"github.com/tokenwarden/tokenwarden/internal/provider"
	"github.com/tokenwarden/tokenwarden/internal/provider/catalog"
	"github.com/tokenwarden/tokenwarden/workflows"
)

// The connect flow's timings. A human logs in and approves within the timeout; less
// than the floor is never enough for that, and would only turn into a spurious failure.
const (
	defaultConnectTimeout = 5 * time.Minute
	minConnectTimeout     = 30 * time.Second
	// callbackPath is the path of the loopback redirect URI when the configuration
	// names none.
	callbackPath = "/callback"
	// exchangeTimeout bounds the one code exchange.
	exchangeTimeout = 30 * time.Second
	// pageWait is how long the browser's callback request waits for the outcome (the
	// exchange and the start or reseed) before its page says "see the terminal".
	pageWait = 2 * time.Minute
	// maxPasteBytes bounds the pasted address: a URL with a code and a state.
	maxPasteBytes = 16 << 10
)

// connectOptions are connect's flags after checking, and the browser opener (a field,
// so that tests drive the flow without a desktop).
type connectOptions struct {
	port      int
	paste     bool
	timeout   time.Duration
	noBrowser bool
	open      func(authURL string) bool
}

// connect runs the authorization code flow with PKCE for a new credential (FILE) or an
// existing one (ID), then starts or reseeds it with the result sealed, exactly as start
// and reseed do. The code is exchanged at most once.
func (a *app) connect(ctx context.Context, args []string) (err error) {
	fs := a.newFlags("connect", "connect CREDENTIAL.json|ID [-secrets FILE|-] [-port N] [-paste] [-timeout D] [-no-browser]")
	secretsPath := fs.String("secrets", "", `JSON file with the app's client secret, {"client_secret":"..."}, for confidential clients; - reads standard input`)
	port := fs.Int("port", 0, "loopback port of the callback listener (0: a free one; a loopback config.redirect_uri's port otherwise)")
	paste := fs.Bool("paste", false, "for a non-loopback config.redirect_uri: read the address the browser landed on from standard input")
	timeout := fs.Duration("timeout", defaultConnectTimeout, "how long to wait for the browser to come back (at least 30s)")
	noBrowser := fs.Bool("no-browser", false, "only print the authorization URL; never try to open a browser")
	updateTimeout := fs.Duration("update-timeout", defaultUpdateTimeout, "connect ID: how long to wait for the seed to be stored and the refresh that follows")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		fs.Usage()
		return fail(exitBadInput, "expected one credential file or credential ID, got %d arguments", len(pos))
	}
	opts := connectOptions{port: *port, paste: *paste, timeout: *timeout, noBrowser: *noBrowser, open: openBrowser}
	if err := opts.check(); err != nil {
		return err
	}
	if err := checkTimeout(*updateTimeout); err != nil {
		return err
	}
	if *paste && *secretsPath == "-" {
		return fail(exitBadInput, "-paste reads the address from standard input: give -secrets a file")
	}
	secret, err := a.readClientSecret(*secretsPath)
	if err != nil {
		return err
	}

	// Everything that can fail without the user is checked before the browser opens:
	// the credential, Temporal, the sealing path. An authorization code spent on a
	// credential that then cannot be stored is a wasted consent.
	var in workflows.CredentialInput
	var cur workflows.Status
	fresh := isFile(pos[0])
	if fresh {
		if in, err = a.readConnectInput(pos[0]); err != nil {
			return err
		}
	} else if err := credential.ValidateID(pos[0]); err != nil {
		return fail(exitBadInput, "%s is neither a credential file nor a credential ID: %v", pos[0], err)
	}
	c, err := a.dial(ctx)
	if err != nil {
		return err
	}
	defer c.Close()
	if fresh {
		if err := ensureAbsent(ctx, c, in.ID); err != nil {
			return err
		}
		cur = workflows.Status{ID: in.ID, Provider: in.Provider, Config: in.Config}
	} else if cur, err = queryStatus(ctx, c, pos[0]); err != nil {
		return err
	}
	auth, err := authorizerFor(cur.Provider, cur.Config)
	if err != nil {
		return err
	}
	if secret == "" && cur.Provider != catalog.OAuth2 {
		return fail(exitBadInput, "-secrets is required for %s: the code exchange needs the app secret, {\"client_secret\":\"...\"} in a file or on standard input", cur.Provider)
	}
	scfg, err := config.LoadStarter()
	if err != nil {
		return fail(exitBadInput, "%v", err)
	}
	if _, err := newSeedSealer(scfg); err != nil {
		return err
	}

	fmt.Fprintf(a.stdout, "Connecting credential %s (provider %s).\n", cur.ID, cur.Provider)
	ts, finish, err := a.authorize(ctx, auth, cur.Config, provider.Grant{ClientSecret: secret}, opts)
	if err != nil {
		return err
	}
	defer func() { finish(err) }()
	seed := workflows.Seed{RefreshToken: ts.RefreshToken, ClientSecret: secret, AccessToken: ts.AccessToken, AccessExpiresAt: ts.AccessExpiresAt}
	if err := workflows.ValidateSeed(cur.Provider, cur.Config, seed); err != nil {
		return fail(exitFailure, "the provider's tokens cannot seed a %s credential: %v\n"+
			"(no refresh token usually means a missing scope, such as offline_access; nothing was stored)", cur.Provider, err)
	}
	if fresh {
		in.Seed = &workflows.SeedEnvelope{Seed: seed}
		if err := sealInput(ctx, &in); err != nil {
			return err
		}
		return a.startInput(ctx, c, in)
	}
	return a.reseedWith(ctx, c, cur.ID, cur, seed, *updateTimeout)
}

func (o connectOptions) check() error {
	if o.timeout < minConnectTimeout {
		return fail(exitBadInput, "-timeout: must be at least %s (a person has to log in and approve), got %s", minConnectTimeout, o.timeout)
	}
	if o.port < 0 || o.port > 65535 {
		return fail(exitBadInput, "-port: must be between 0 and 65535, got %d", o.port)
	}
	return nil
}

// isFile tells a credential file from a credential ID: what names an existing file is
// a file.
func isFile(arg string) bool {
	st, err := os.Stat(arg)
	return err == nil && !st.IsDir()
}

// readClientSecret reads {"client_secret":"..."} from path ("" = no secret, "-" =
// standard input). The tokens come from the provider; a secrets file that brings some
// is refused rather than half-used.
func (a *app) readClientSecret(path string) (string, error) {
	if path == "" {
		return "", nil
	}
	var seed workflows.Seed
	if err := readJSON(path, a.stdin, &seed); err != nil {
		// Never echo the content: it is secret.
		return "", fail(exitBadInput, "secrets %s: %v", displayPath(path), err)
	}
	if seed.ClientSecret == "" {
		return "", fail(exitBadInput, "secrets %s: client_secret: required", displayPath(path))
	}
	if seed != (workflows.Seed{ClientSecret: seed.ClientSecret}) {
		return "", fail(exitBadInput, "secrets %s: connect obtains the tokens itself; the file holds only client_secret", displayPath(path))
	}
	return seed.ClientSecret, nil
}

// readConnectInput reads a credential file for connect and checks it as the workflow
// will, its seed still to come from the provider.
func (a *app) readConnectInput(path string) (workflows.CredentialInput, error) {
	var in workflows.CredentialInput
	if err := readJSON(path, a.stdin, &in); err != nil {
		return in, fail(exitBadInput, "credential file %s: %v", path, err)
	}
	if in.Seed != nil || in.Carried != nil {
		return in, fail(exitBadInput, "credential file %s: connect obtains the seed; \"seed\" and \"carried\" do not belong here", path)
	}
	if in.ID == "" {
		return in, fail(exitBadInput, "credential file %s: id: required", path)
	}
	in.Seed = &workflows.SeedEnvelope{Sealed: sealedPlaceholder}
	err := in.Validate(in.ID)
	in.Seed = nil
	if err != nil {
		return in, fail(exitBadInput, "invalid credential:\n  %s", strings.ReplaceAll(err.Error(), "\n", "\n  "))
	}
	return in, nil
}

// ensureAbsent refuses to spend a consent on a credential that is already running.
func ensureAbsent(ctx context.Context, c client.Client, id string) error {
	dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	d, err := c.DescribeWorkflow(dctx, id, "")
	var notFound *serviceerror.NotFound
	switch {
	case errors.As(err, &notFound):
		return nil
	case err != nil:
		return classifyServerError(err, "describe credential %q", id)
	case d.RawResponse.GetWorkflowExecutionInfo().GetStatus() == enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING:
		return fail(exitExists, "credential %q is already running; reconnect it with `starter connect %s`", id, id)
	}
	return nil
}

// authorizerFor returns the named provider's Authorizer, or why it has none for cfg.
func authorizerFor(name string, cfg provider.Config) (provider.Authorizer, error) {
	p, err := catalog.Registry(&http.Client{Timeout: exchangeTimeout}, nil).Lookup(name)
	if err != nil {
		return nil, fail(exitBadInput, "%v", err)
	}
	auth, ok := p.(provider.Authorizer)
	if !ok {
		return nil, fail(exitBadInput, "provider %s has no authorization flow to connect with; use `starter start` or `starter reseed` with a secrets file", name)
	}
	if err := auth.CanAuthorize(cfg); err != nil {
		return nil, fail(exitBadInput, "cannot connect: config.%v", err)
	}
	return auth, nil
}

// authorize runs one authorization round trip and the one code exchange.
// finish, called once with the command's final error, shows the outcome on the
// browser's page and stops the listener.
func (a *app) authorize(ctx context.Context, auth provider.Authorizer, cfg provider.Config, grant provider.Grant, opts connectOptions) (_ provider.TokenSet, finish func(error), _ error) {
	none := func(error) {}
	state, err := randomToken()
	if err != nil {
		return provider.TokenSet{}, none, err
	}
	verifier, err := randomToken()
	if err != nil {
		return provider.TokenSet{}, none, err
	}
	ep, err := openCallback(cfg.RedirectURI, opts)
	if err != nil {
		return provider.TokenSet{}, none, err
	}
	authURL, err := auth.AuthCodeURL(cfg, ep.redirectURI, state, challengeS256(verifier))
	if err != nil {
		ep.shutdown()
		return provider.TokenSet{}, none, fail(exitBadInput, "cannot build the authorization URL: config.%v", err)
	}
	fmt.Fprintf(a.stdout, "Open this address in a browser and approve the access:\n\n  %s\n\n", authURL)
	if !opts.noBrowser && opts.open != nil && opts.open(authURL) {
		fmt.Fprintln(a.stdout, "(a browser was asked to open it)")
	}

	var code string
	finish = func(error) {}
	if opts.paste {
		fmt.Fprintf(a.stdout, "After approving, the browser lands on %s?code=...; copy that whole address from its address bar and paste it here (it is not echoed anywhere else), then press Enter:\n", ep.redirectURI)
		code, err = readPasted(ctx, a.stdin, ep.redirectURI, state, opts.timeout)
	} else {
		fmt.Fprintf(a.stdout, "Waiting up to %s for the browser to come back to %s ...\n", opts.timeout, ep.redirectURI)
		var cb *pendingCallback
		cb, err = ep.await(ctx, state, opts.timeout)
		if cb != nil {
			code = cb.code
			finish = func(err error) { cb.finish(err); ep.shutdown() }
		}
	}
	if err != nil {
		finish(err)
		ep.shutdown()
		return provider.TokenSet{}, func(error) {}, err
	}
	fmt.Fprintln(a.stdout, "Authorization received; exchanging the code (once).")
	xctx, cancel := context.WithTimeout(ctx, exchangeTimeout)
	defer cancel()
	ts, err := auth.Exchange(xctx, cfg, grant, ep.redirectURI, code, verifier)
	if err != nil {
		if provider.IsPermanent(err) {
			err = fail(exitRefused, "the provider refused the authorization code: %v\nnothing was stored; run connect again for a new code", err)
		} else {
			err = fail(exitFailure, "the code exchange failed: %v\nnothing was stored; the code cannot be presented again, run connect again for a new one", err)
		}
		finish(err)
		return provider.TokenSet{}, none, err
	}
	return ts, finish, nil
}

// randomToken returns 32 random bytes, base64url without padding: 43 characters, valid
// as a PKCE code_verifier (RFC 7636 section 4.1) and unguessable as a state.
func randomToken() (string, error) {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("random state or verifier: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b[:]), nil
}

// challengeS256 is the PKCE S256 code_challenge of verifier (RFC 7636 section 4.2).
func challengeS256(verifier string) string {
	sum := sha256.Sum256([]byte(verifier))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// checkCallback reads a redirect's query: the state first (a wrong one means the answer
// belongs to another request, whatever else it says), then the provider's error, then
// the code.
func checkCallback(q url.Values, state string) (string, error) {
	if subtle.ConstantTimeCompare([]byte(q.Get("state")), []byte(state)) != 1 {
		return "", fail(exitWrongState, "the callback's state does not match this authorization request: it answers another request "+
			"(an old browser tab, or a forged link); nothing was exchanged, run connect again")
	}
	if e := q.Get("error"); e != "" {
		desc := printable(q.Get("error_description"), 200)
		if desc != "" {
			desc = ": " + desc
		}
		if e == "access_denied" {
			return "", fail(exitDenied, "access denied in the browser (error=access_denied%s); nothing was stored", desc)
		}
		return "", fail(exitRefused, "the provider refused the authorization request (error=%s%s); nothing was stored", printable(e, 64), desc)
	}
	code := q.Get("code")
	if code == "" {
		return "", fail(exitRefused, "the callback carried neither a code nor an error; nothing was stored")
	}
	return code, nil
}

// printable keeps a provider's words fit for a terminal: printable ASCII, cut to n.
func printable(s string, n int) string {
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || r > 0x7e {
			return -1
		}
		return r
	}, s)
	if len(s) > n {
		s = s[:n] + "..."
	}
	return s
}

// parsePasted takes code and state from the address the browser landed on, which must
// be on redirectURI. It never quotes the address: it holds the code.
func parsePasted(line, redirectURI, state string) (string, error) {
	line = strings.TrimSpace(line)
	if line == "" {
		return "", fail(exitBadInput, "nothing was pasted; run connect again")
	}
	got, err := url.Parse(line)
	want, werr := url.Parse(redirectURI)
	if err != nil || werr != nil || !got.IsAbs() ||
		!strings.EqualFold(got.Scheme, want.Scheme) || !strings.EqualFold(got.Host, want.Host) ||
		strings.TrimRight(got.Path, "/") != strings.TrimRight(want.Path, "/") {
		return "", fail(exitBadInput, "the pasted text is not an address on the redirect URI %s; paste the whole address the browser landed on", redirectURI)
	}
	return checkCallback(got.Query(), state)
}

// readPasted reads one line from r within timeout and parses it.
func readPasted(ctx context.Context, r io.Reader, redirectURI, state string, timeout time.Duration) (string, error) {
	type read struct {
		line string
		err  error
	}
	ch := make(chan read, 1)
	go func() {
		br := bufio.NewReaderSize(io.LimitReader(r, maxPasteBytes), 4096)
		line, err := br.ReadString('\n')
		if errors.Is(err, io.EOF) && line != "" {
			err = nil
		}
		ch <- read{line, err}
	}()
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case got := <-ch:
		if got.err != nil {
			return "", fail(exitBadInput, "reading the pasted address from standard input: %v", got.err)
		}
		return parsePasted(got.line, redirectURI, state)
	case <-t.C:
		return "", fail(exitTimeout, "no address was pasted within %s; nothing was stored, run connect again", timeout)
	case <-ctx.Done():
		return "", ctx.Err()
	}
}

// callback is where the browser comes back: a loopback listener, or (paste mode) only
// the redirect URI the user will copy from.
type callback struct {
	redirectURI string
	path        string
	ln          net.Listener // nil in paste mode
	srv         *http.Server
	arrived     chan *pendingCallback
	taken       chan struct{} // closed by the first callback request with a query
}

// pendingCallback is an accepted callback request, waiting for the outcome that its
// page will show.
type pendingCallback struct {
	code    string
	err     error
	outcome chan error
}

func (p *pendingCallback) finish(err error) { p.outcome <- err }

// openCallback decides the redirect URI and, unless pasting, listens on it. Without a
// configured redirect_uri it is http://127.0.0.1:PORT/callback; a loopback
// redirect_uri is listened on as it is (-port replaces its port); any other one needs
// -paste.
func openCallback(configured string, opts connectOptions) (*callback, error) {
	cb := &callback{path: callbackPath}
	host, port := "127.0.0.1", strconv.Itoa(opts.port)
	scheme := "http"
	var rawQuery string
	if configured != "" {
		u, err := url.Parse(configured)
		if err != nil {
			return nil, fail(exitBadInput, "config.redirect_uri: not a URL")
		}
		if opts.paste {
			cb.redirectURI = configured
			return cb, nil
		}
		if u.Scheme != "http" || !isLoopback(u.Hostname()) {
			return nil, fail(exitBadInput, "config.redirect_uri %s is not a loopback http address this machine can listen on: "+
				"run `starter connect -paste` and paste the address the browser lands on", configured)
		}
		host, cb.path, rawQuery = u.Hostname(), u.Path, u.RawQuery
		if cb.path == "" {
			cb.path = "/"
		}
		if opts.port == 0 {
			if port = u.Port(); port == "" {
				port = "80"
			}
		}
	} else if opts.paste {
		return nil, fail(exitBadInput, "-paste needs config.redirect_uri: the registered address the provider sends the browser to")
	}
	listenHost := host
	if strings.EqualFold(listenHost, "localhost") {
		listenHost = "127.0.0.1"
	}
	ln, err := net.Listen("tcp", net.JoinHostPort(listenHost, port))
	if err != nil {
		if errors.Is(err, syscall.EADDRINUSE) {
			return nil, fail(exitPortInUse, "port %s on %s is in use: choose another with -port N (a free one when the configuration names none)", port, listenHost)
		}
		return nil, fail(exitFailure, "listen for the callback: %v", err)
	}
	_, port, _ = net.SplitHostPort(ln.Addr().String())
	u := url.URL{Scheme: scheme, Host: net.JoinHostPort(host, port), Path: cb.path, RawQuery: rawQuery}
	cb.redirectURI, cb.ln = u.String(), ln
	cb.arrived = make(chan *pendingCallback, 1)
	cb.taken = make(chan struct{})
	return cb, nil
}

func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.Unmap().IsLoopback()
}

// await serves the callback until the first request with a query arrives (or the
// timeout), and returns it checked. Only that first request counts: whatever comes
// later is told the authorization was already handled, so a code is never taken twice.
func (cb *callback) await(ctx context.Context, state string, timeout time.Duration) (*pendingCallback, error) {
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) { cb.serve(w, r, state) })
	cb.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = cb.srv.Serve(cb.ln) }()
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case p := <-cb.arrived:
		if p.err != nil {
			return p, p.err
		}
		return p, nil
	case <-t.C:
		return nil, fail(exitTimeout, "the browser did not come back within %s; nothing was stored, run connect again (-timeout sets the wait)", timeout)
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (cb *callback) serve(w http.ResponseWriter, r *http.Request, state string) {
	if r.URL.Path != cb.path || r.Method != http.MethodGet || r.URL.RawQuery == "" {
		http.NotFound(w, r)
		return
	}
	select {
	case <-cb.taken:
		page(w, http.StatusConflict, "This authorization was already handled. Return to the terminal.")
		return
	default:
		close(cb.taken)
	}
	code, err := checkCallback(r.URL.Query(), state)
	p := &pendingCallback{code: code, err: err, outcome: make(chan error, 1)}
	cb.arrived <- p
	if err != nil {
		page(w, http.StatusBadRequest, "tokenwarden: "+err.Error())
		return
	}
	select {
	case err := <-p.outcome:
		if err != nil {
			page(w, http.StatusBadGateway, "tokenwarden: "+err.Error())
			return
		}
		page(w, http.StatusOK, "tokenwarden received the authorization. You can close this tab; the terminal tells how it went on.")
	case <-time.After(pageWait):
		page(w, http.StatusOK, "tokenwarden received the authorization; the terminal tells how it went on.")
	case <-r.Context().Done():
	}
}

// page writes a minimal HTML page. msg is ours (no code or token is ever in it).
func page(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	// The callback URL holds the code: it must not leak to another origin.
	w.Header().Set("Referrer-Policy", "no-referrer")
	w.WriteHeader(status)
	fmt.Fprintf(w, "<!doctype html><title>tokenwarden connect</title><p id=\"result\">%s</p>\n", html.EscapeString(msg))
}

// shutdown stops the listener, after the page of a pending callback request is written
// (the process exits right after, which would cut it off).
func (cb *callback) shutdown() {
	if cb.srv == nil {
		if cb.ln != nil {
			_ = cb.ln.Close()
		}
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = cb.srv.Shutdown(ctx)
}

// openBrowser asks the desktop to open authURL, only where there is one (never fatal:
// the URL is printed anyway). The URL holds no secret, so its place in argv is fine.
func openBrowser(authURL string) bool {
	var name string
	switch {
	case runtime.GOOS == "darwin":
		name = "open"
	case os.Getenv("DISPLAY") != "" || os.Getenv("WAYLAND_DISPLAY") != "":
		name = "xdg-open"
	default:
		return false
	}
	path, err := exec.LookPath(name)
	if err != nil {
		return false
	}
	cmd := exec.Command(path, authURL)
	if cmd.Start() != nil {
		return false
	}
	go func() { _ = cmd.Wait() }()
	return true
}
