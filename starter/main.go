// Command starter is tokenwarden's operator CLI.
//
//	starter start  CREDENTIAL.json -secrets FILE|-   start a credential workflow
//	starter status ID [-json]                        show one credential's status
//	starter list [-state S] [-provider P]            list credentials, with counts per state
//	starter refresh ID                               refresh now (the "refresh" update) and wait
//	starter reseed ID -secrets FILE|-                hand in new grant material (the "reseed" update)
//	starter retire ID -yes                           delete the secrets and end the workflow
//	starter setup                                    register the search attributes on the namespace
//
// Secrets (refresh token, client secret) are read from a file or standard input,
// never from the command line, where other users could see them in the process list.
// Exit codes: 0 ok, 1 other failure, 2 bad input, 3 Temporal unreachable,
// 4 unknown credential, 5 credential already exists, 6 update rejected by the workflow.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"go.temporal.io/sdk/client"

	"github.com/tokenwarden/tokenwarden/internal/config"
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
  start CREDENTIAL.json -secrets FILE|-   start a credential (secrets JSON from FILE or stdin)
  status ID [-json]                      show a credential's status
  list [-state S] [-provider P] [-json]  list credentials and count them per state
  refresh ID                             refresh now and wait; prints the new expiry
  reseed ID -secrets FILE|-              store new grant material (secrets JSON from FILE or stdin)
  retire ID -yes                         delete the credential's secrets and complete its workflow
  setup                                  register the search attributes TokenState, TokenProvider,
                                         TokenExpiresAt on the namespace (idempotent)

Exit codes: 0 ok, 1 failure, 2 bad input, 3 Temporal unreachable, 4 unknown credential,
5 credential already exists, 6 update rejected by the workflow.

Connection settings come from TOKENWARDEN_TEMPORAL_ADDRESS (default localhost:7233),
TOKENWARDEN_TEMPORAL_NAMESPACE (default "default") and TOKENWARDEN_TASK_QUEUE.
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
	case "start":
		cmdErr = a.start(ctx, args[1:])
	case "status":
		cmdErr = a.status(ctx, args[1:])
	case "list":
		cmdErr = a.list(ctx, args[1:])
	case "refresh":
		cmdErr = a.refresh(ctx, args[1:])
	case "reseed":
		cmdErr = a.reseed(ctx, args[1:])
	case "retire":
		cmdErr = a.retire(ctx, args[1:])
	case "setup":
		cmdErr = a.setup(ctx, args[1:])
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

// dial connects to Temporal, failing within a few seconds when it is unreachable.
func (a *app) dial(ctx context.Context) (client.Client, error) {
	dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	c, err := client.DialContext(dctx, client.Options{
		HostPort:  a.cfg.TemporalAddress,
		Namespace: a.cfg.TemporalNamespace,
		Logger:    quietLogger{},
	})
	if err != nil {
		return nil, fail(exitUnreachable, "cannot reach the Temporal server at %s (namespace %q): %v\n"+
			"is it running? `make run` starts a development server", a.cfg.TemporalAddress, a.cfg.TemporalNamespace, err)
	}
	return c, nil
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

// quietLogger drops the SDK's own logging; the CLI reports errors itself.
type quietLogger struct{}

func (quietLogger) Debug(string, ...any) {}
func (quietLogger) Info(string, ...any)  {}
func (quietLogger) Warn(string, ...any)  {}
func (quietLogger) Error(string, ...any) {}
