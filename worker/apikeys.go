package main

// The worker's API key flags -apikey-create, -apikey-revoke and -apikey-list, kept so
// that scripts written before `starter apikey` keep working. They are thin wrappers:
// the operations and their output are internal/apikeys', shared with the starter, and
// the store is opened by store.Open from the same settings. Only the exit codes stay
// the worker's own: 0 done, 1 failed, 2 refused (bad input, unknown key, name taken).

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/tokenwarden/tokenwarden/internal/apikeys"
	"github.com/tokenwarden/tokenwarden/internal/config"
)

// apiKeyCommands are the API key flags; at most one command may be given.
type apiKeyCommands struct {
	create      string // name
	credentials string // for create: ID[,ID...]
	revoke      string // name or ID
	list        bool
}

func (c *apiKeyCommands) register(flags *flag.FlagSet) {
	flags.StringVar(&c.create, "apikey-create", "", "create a token API key `NAME` scoped to -credential, print it once and exit (as starter apikey create)")
	flags.StringVar(&c.credentials, "credential", "", "with -apikey-create: the credential `ID[,ID...]` the key may read")
	flags.StringVar(&c.revoke, "apikey-revoke", "", "revoke the token API key `NAME|ID` and exit (as starter apikey revoke)")
	flags.BoolVar(&c.list, "apikey-list", false, "list the token API keys (never the keys themselves) and exit (as starter apikey list)")
}

func (c apiKeyCommands) count() int {
	n := 0
	for _, set := range []bool{c.create != "", c.revoke != "", c.list} {
		if set {
			n++
		}
	}
	return n
}

// runAPIKeyCommand runs the command c names and returns its exit code.
func runAPIKeyCommand(c apiKeyCommands, cfg config.Worker, stdout, stderr io.Writer) int {
	if c.credentials != "" && c.create == "" {
		fmt.Fprintln(stderr, "worker: -credential goes with -apikey-create")
		return 2
	}
	var credIDs []string
	if c.create != "" {
		// Checked before the key file and the store, so that a typo costs nothing.
		if err := apikeys.ValidName(c.create); err != nil {
			fmt.Fprintf(stderr, "worker: -apikey-create: %v\n", err)
			return 2
		}
		var err error
		if credIDs, err = apikeys.ParseCredentialIDs(c.credentials); err != nil {
			fmt.Fprintf(stderr, "worker: -apikey-create: %v\n", err)
			return 2
		}
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	tokens, _, desc, code := openCommandStore(ctx, cfg, stderr)
	if tokens == nil {
		return code
	}
	defer tokens.Close()

	var what string
	var err error
	switch {
	case c.create != "":
		what = "-apikey-create"
		var created apikeys.Created
		if created, err = apikeys.Create(ctx, tokens, c.create, credIDs); err == nil {
			err = apikeys.WriteCreated(stdout, stderr, created, desc)
		}
	case c.revoke != "":
		what = "-apikey-revoke"
		var revoked apikeys.Revoked
		if revoked, err = apikeys.Revoke(ctx, tokens, c.revoke, time.Now()); err == nil {
			_, err = fmt.Fprintln(stdout, revoked.Message())
		}
	default:
		what = "-apikey-list"
		var keys []apikeys.Info
		if keys, err = apikeys.List(ctx, tokens); err == nil {
			err = apikeys.WriteTable(stdout, keys)
		}
	}
	if err == nil {
		return 0
	}
	fmt.Fprintf(stderr, "worker: %s: %v\n", what, err)
	for _, refused := range []error{apikeys.ErrInvalidInput, apikeys.ErrNameTaken, apikeys.ErrUnknownKey, apikeys.ErrAmbiguous} {
		if errors.Is(err, refused) {
			return 2
		}
	}
	return 1
}
