// Command starter is tokenwarden's operator CLI.
//
//	starter connect CREDENTIAL.json|ID [-secrets FILE|-]  authorize in a browser, then start or reseed
//	starter start  CREDENTIAL.json -secrets FILE|-   start a credential workflow
//	starter status ID [-json]                        show one credential's status
//	starter list [-state S] [-provider P]            list credentials, with counts per state
//	starter stats [-since 30d] [-json]               per provider: total, live, failing, retired and started
//	starter refresh ID                               refresh now (the "refresh" update) and wait
//	starter reseed ID -secrets FILE|-                hand in new grant material (the "reseed" update)
//	starter seal CREDENTIAL.json -secrets FILE|-     print the workflow input with the seed sealed, for the temporal CLI
//	starter retire ID -yes                           delete the secrets and end the workflow
//	starter setup                                    register the search attributes on the namespace
//	starter token ID                                 print the current access token (token API, TOKENWARDEN_API_KEY)
//	starter apikey create NAME -credential ID[,ID]   create a token API key; prints it alone on stdout, once
//	starter apikey revoke NAME|ID                    revoke a token API key
//	starter apikey list [-json]                      list the token API keys (never a key or its hash)
//
// Secrets (refresh token, client secret) are read from a file or standard input,
// never from the command line, where other users could see them in the process list.
// The apikey commands work on the worker's token store with its key file, never on
// Temporal (starter/apikey.go), from the worker's settings: TOKENWARDEN_DATA_DIR,
// TOKENWARDEN_KEY_FILE, TOKENWARDEN_STORE, TOKENWARDEN_SQLITE_PATH or
// TOKENWARDEN_POSTGRES_DSN.
// The exit codes are the exit* constants below; the usage text tells users what each
// means for each command.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"os"
	"time"

	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	sdklog "go.temporal.io/sdk/log"

	"github.com/tokenwarden/tokenwarden/internal/codec"
	"github.com/tokenwarden/tokenwarden/internal/config"
	"github.com/tokenwarden/tokenwarden/internal/keyring"
)

// Exit codes, distinct so that scripts can react.
const (
	exitOK          = 0
	exitFailure     = 1
	exitBadInput    = 2
	exitUnreachable = 3
	exitUnknown     = 4
	exitExists      = 5
	// exitRejected: the workflow's update validator refused the request (a refresh
	// while NEEDS_REAUTH, malformed grant material, a retired credential).
	exitRejected = 6
	// The connect flow's own outcomes (starter/connect.go).
	exitDenied     = 7  // the user declined in the browser (error=access_denied)
	exitWrongState = 8  // the callback's state is not this request's
	exitTimeout    = 9  // the browser did not come back (nothing pasted) in time
	exitRefused    = 10 // the provider refused the code or the authorization request
	exitPortInUse  = 11 // the callback's port is taken
)

// cliError carries an exit code with its message.
type cliError struct {
	code int
	msg  string
}

func (e *cliError) Error() string { return e.msg }

func fail(code int, format string, args ...any) error {
	return &cliError{code: code, msg: fmt.Sprintf(format, args...)}
}

const usage = `usage: starter <command> [flags]

commands:
  connect CREDENTIAL.json|ID [-secrets FILE|-] [-port N] [-paste] [-timeout D] [-no-browser]
                                         authorize in a browser (authorization code with PKCE) and
                                         start the credential, or reseed the running one ID; the
                                         secrets file holds only client_secret
  start CREDENTIAL.json -secrets FILE|-   start a credential (secrets JSON from FILE or stdin)
  status ID [-json]                      show a credential's status
  list [-state S] [-provider P] [-json]  list credentials and count them per state
  stats [-since D] [-json]               per provider: running credentials (total, live = ACTIVE or
                                         REFRESHING, failing = DEGRADED, EXPIRED or NEEDS_REAUTH,
                                         seeding), and those retired and started within the period
                                         D (whole days "30d" or a Go duration "36h"; default 30d,
                                         at least 1m)
  refresh ID                             refresh now and wait; prints the new expiry
  reseed ID -secrets FILE|-              store new grant material (secrets JSON from FILE or stdin)
  seal CREDENTIAL.json -secrets FILE|- [-seed-only]
                                         print the workflow input with its seed sealed (or, with
                                         -seed-only, the sealed seed alone) for the temporal CLI
  retire ID -yes                         delete the credential's secrets and complete its workflow
  setup                                  register the search attributes TokenState, TokenProvider,
                                         TokenExpiresAt on the namespace (idempotent)
  cleanup -dry-run [-within D] [-json]   list the credentials retire_after_unused will retire, and why
  token ID [-json]                       print the credential's current access token, from the
                                         worker's token API (TOKENWARDEN_TOKEN_API, default
                                         http://127.0.0.1:8234) with the key in TOKENWARDEN_API_KEY
  apikey create NAME -credential ID[,ID...]
                                         create a token API key that may read these credentials;
                                         prints the key alone on stdout, once
  apikey revoke NAME|ID                  revoke a token API key (revoking twice is not an error)
  apikey list [-json]                    list the token API keys (never a key or its hash)

Exit codes: 0 ok, 1 failure, 2 bad input, 3 Temporal (token: the token API) unreachable,
4 unknown credential (apikey: unknown key), 5 credential already exists (apikey: name
taken), 6 update rejected by the workflow (token: API key unauthorized or not scoped to
the credential); connect: 7 access denied in the browser, 8 wrong state, 9 timeout,
10 code or authorization refused by the provider, 11 callback port in use.

The Temporal connection is read as the temporal CLI reads it: the profile of its
configuration file (TEMPORAL_CONFIG_FILE, TEMPORAL_PROFILE), then TEMPORAL_ADDRESS,
TEMPORAL_NAMESPACE, TEMPORAL_API_KEY and TEMPORAL_TLS_* (client certificate and key,
server CA, server name); TOKENWARDEN_TEMPORAL_ADDRESS and TOKENWARDEN_TEMPORAL_NAMESPACE
override them when set (defaults: localhost:7233, "default"). TOKENWARDEN_TASK_QUEUE
names the task queue.
Payloads are encrypted with the worker's key file (TOKENWARDEN_KEY_FILE, default
TOKENWARDEN_DATA_DIR/keys.json, i.e. data/keys.json) when it is readable, otherwise
through the worker's codec endpoint (TOKENWARDEN_CODEC_ENDPOINT, default
http://127.0.0.1:8234/codec, with TOKENWARDEN_CODEC_BEARER_TOKEN); with neither the
starter refuses to run (exit 2) rather than send secrets in plaintext. Seeds are
sealed besides (internal/seal): with the key file, or through the worker's sealing
endpoint (TOKENWARDEN_SEAL_ENDPOINT, default http://127.0.0.1:8234/seal, with
TOKENWARDEN_SEAL_BEARER_TOKEN), so that not even the codec endpoint can open them.
The apikey commands need no Temporal: they open the worker's token store with its key
file, from the worker's settings (TOKENWARDEN_DATA_DIR, TOKENWARDEN_KEY_FILE,
TOKENWARDEN_STORE, TOKENWARDEN_SQLITE_PATH, TOKENWARDEN_POSTGRES_DSN).
Run "starter <command> -h" for a command's flags.
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

// app is one invocation: its streams and a lazily dialled client.
type app struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	cfg            config.Temporal
}

func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "-help" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprint(stderr, usage)
		if len(args) == 0 {
			return exitBadInput
		}
		return exitOK
	}
	cfg, err := config.LoadTemporal()
	if err != nil {
		fmt.Fprintf(stderr, "starter: %v\n", err)
		return exitBadInput
	}
	a := &app{stdin: stdin, stdout: stdout, stderr: stderr, cfg: cfg}
	ctx := context.Background()
	var cmdErr error
	switch args[0] {
	case "connect":
		cmdErr = a.connect(ctx, args[1:]) // starter/connect.go
	case "start":
		cmdErr = a.start(ctx, args[1:])
	case "status":
		cmdErr = a.status(ctx, args[1:])
	case "list":
		cmdErr = a.list(ctx, args[1:])
	case "stats":
		cmdErr = a.stats(ctx, args[1:]) // starter/stats.go
	case "refresh":
		cmdErr = a.refresh(ctx, args[1:])
	case "reseed":
		cmdErr = a.reseed(ctx, args[1:])
	case "seal":
		cmdErr = a.seal(ctx, args[1:]) // starter/seal.go
	case "retire":
		cmdErr = a.retire(ctx, args[1:])
	case "setup":
		cmdErr = a.setup(ctx, args[1:])
	case "token":
		cmdErr = a.token(ctx, args[1:]) // starter/token.go
	case "cleanup":
		cmdErr = a.cleanup(ctx, args[1:]) // starter/cleanup.go
	case "apikey":
		cmdErr = a.apikey(ctx, args[1:]) // starter/apikey.go
	default:
		fmt.Fprintf(stderr, "starter: unknown command %q\n\n%s", args[0], usage)
		return exitBadInput
	}
	if cmdErr == nil {
		return exitOK
	}
	var ce *cliError
	if errors.As(cmdErr, &ce) {
		if ce.msg != "" {
			fmt.Fprintf(stderr, "starter %s: %s\n", args[0], ce.msg)
		}
		return ce.code
	}
	fmt.Fprintf(stderr, "starter %s: %v\n", args[0], cmdErr)
	return exitFailure
}

// dial connects to Temporal, failing within a few seconds when it is unreachable, with
// a client whose every payload is encrypted (see payloadConverter). It refuses (exit
// 2) when it has no way to encrypt: the seed would otherwise reach Temporal's history
// in plaintext.
func (a *app) dial(ctx context.Context) (client.Client, error) {
	scfg, err := config.LoadStarter()
	if err != nil {
		return nil, fail(exitBadInput, "%v", err)
	}
	dc, remote, err := payloadConverter(scfg)
	if err != nil {
		return nil, err
	}
	dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	// The same options as the worker's (config.Temporal.ClientOptions): profile,
	// TEMPORAL_*, then the TOKENWARDEN_TEMPORAL_* overrides.
	opts, err := a.cfg.ClientOptions(nil)
	if err != nil {
		return nil, fail(exitBadInput, "%v", err)
	}
	conn := config.DescribeConnection(opts)
	opts.Logger = sdklog.NewStructuredLogger(slog.New(slog.DiscardHandler)) // the CLI reports errors itself
	opts.DataConverter = dc
	opts.FailureConverter = codec.FailureConverter(dc)
	c, err := client.DialContext(dctx, opts)
	if err != nil {
		return nil, fail(exitUnreachable, "cannot reach the Temporal server at %s: %v\n"+
			"is it running? `make run` starts a development server; for a cluster or Temporal Cloud see the README's \"Temporal Cloud\" section", conn, err)
	}
	if remote != nil {
		// Try the endpoint before anything is sent, so that a stopped worker or a wrong
		// token is reported as such instead of as a failed start.
		if _, err := remote.Encode(nil); err != nil {
			c.Close()
			return nil, fail(exitBadInput, "cannot encrypt payloads: the key file %s is not readable and the codec endpoint %s failed: %v\n"+
				"run the starter where it can read the worker's key file (%s_KEY_FILE), or start the worker (its %s_HTTP_ADDR serves the endpoint) and check %s_CODEC_ENDPOINT and %s_CODEC_BEARER_TOKEN",
				scfg.KeyFile, scfg.CodecEndpoint, err, config.Prefix, config.Prefix, config.Prefix, config.Prefix)
		}
	}
	return c, nil
}

// payloadConverter chooses how the starter encrypts payloads, in this order:
//
//  1. the key file (TOKENWARDEN_KEY_FILE, default DATA_DIR/keys.json), when it exists and
//     this user may read it: payloads are encrypted in this process, and the secrets
//     never leave it in plaintext;
//  2. otherwise the worker's codec endpoint (TOKENWARDEN_CODEC_ENDPOINT, default
//     http://127.0.0.1:8234/codec) with TOKENWARDEN_CODEC_BEARER_TOKEN if set; remote is
//     then the codec to probe.
//
// A key file that exists and is readable but is refused (group- or world-readable,
// malformed) is an error to fix, not a reason to fall back. With neither a key file
// nor an endpoint (TOKENWARDEN_CODEC_ENDPOINT set to empty) it fails with exit 2.
func payloadConverter(scfg config.Starter) (dc converter.DataConverter, remote converter.PayloadCodec, err error) {
	ring, keyErr := keyring.LoadFile(scfg.KeyFile)
	if keyErr == nil {
		return codec.DataConverter(ring), nil, nil
	}
	if !errors.Is(keyErr, fs.ErrNotExist) && !errors.Is(keyErr, fs.ErrPermission) {
		return nil, nil, fail(exitBadInput, "%v", keyErr)
	}
	if scfg.CodecEndpoint == "" {
		return nil, nil, fail(exitBadInput, "cannot encrypt payloads, refusing to send secrets in plaintext: the key file %s is not readable (%v) "+
			"and %s_CODEC_ENDPOINT is empty; point %s_KEY_FILE at the worker's key file or %s_CODEC_ENDPOINT at the worker's codec endpoint (%s)",
			scfg.KeyFile, keyErr, config.Prefix, config.Prefix, config.Prefix, config.DefaultCodecEndpoint)
	}
	opts := converter.RemoteDataConverterOptions{
		Endpoint: scfg.CodecEndpoint,
		Client:   http.Client{Timeout: 30 * time.Second},
		ModifyRequest: func(r *http.Request) error {
			r.Header.Set(codec.NamespaceHeader, scfg.TemporalNamespace)
			if scfg.CodecBearerToken != "" {
				r.Header.Set("Authorization", "Bearer "+scfg.CodecBearerToken)
			}
			return nil
		},
	}
	dc = converter.NewRemoteDataConverter(converter.GetDefaultDataConverter(), opts)
	return dc, converter.NewRemotePayloadCodec(converter.RemotePayloadCodecOptions(opts)), nil
}

// newFlags makes a flag set whose errors become exit code 2.
func (a *app) newFlags(name, synopsis string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(a.stderr)
	fs.Usage = func() {
		fmt.Fprintf(a.stderr, "usage: starter %s\n", synopsis)
		fs.PrintDefaults()
	}
	return fs
}

// parse parses flags that may come before or after positional arguments.
func parse(fs *flag.FlagSet, args []string) ([]string, error) {
	var positional []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, &cliError{code: exitOK}
			}
			return nil, &cliError{code: exitBadInput}
		}
		args = fs.Args()
		if len(args) == 0 {
			return positional, nil
		}
		positional = append(positional, args[0])
		args = args[1:]
	}
}
