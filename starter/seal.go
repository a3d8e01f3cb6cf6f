package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"io/fs"
	"net/http"
	"strings"
	"time"

	"github.com/tokenwarden/tokenwarden/internal/config"
	"github.com/tokenwarden/tokenwarden/internal/keyring"
	"github.com/tokenwarden/tokenwarden/internal/provider"
	"github.com/tokenwarden/tokenwarden/internal/seal"
	"github.com/tokenwarden/tokenwarden/workflows"
)

// seedSealer seals a seed for one credential and its configuration (internal/seal).
type seedSealer func(ctx context.Context, req seal.Request) (workflows.SeedEnvelope, error)

// newSeedSealer seals with the worker's key file when this user can read it, so that
// the seed never leaves this process in plaintext; otherwise through the worker's
// sealing endpoint (TOKENWARDEN_SEAL_ENDPOINT with TOKENWARDEN_SEAL_BEARER_TOKEN). With
// neither it refuses (exit 2): a seed is never sent unsealed.
func newSeedSealer(scfg config.Starter) (seedSealer, error) {
	ring, keyErr := keyring.LoadFile(scfg.KeyFile)
	if keyErr == nil {
		s, err := seal.NewSealer(ring, nil)
		if err != nil {
			return nil, fail(exitBadInput, "%v", err)
		}
		return func(_ context.Context, req seal.Request) (workflows.SeedEnvelope, error) { return s.SealFor(req) }, nil
	}
	if !errors.Is(keyErr, fs.ErrNotExist) && !errors.Is(keyErr, fs.ErrPermission) {
		return nil, fail(exitBadInput, "%v", keyErr)
	}
	if scfg.SealEndpoint == "" || scfg.SealBearerToken == "" {
		return nil, fail(exitBadInput, "cannot seal the seed, refusing to send it in plaintext: the key file %s is not readable (%v), "+
			"and sealing through the worker needs %s_SEAL_ENDPOINT and %s_SEAL_BEARER_TOKEN (the worker's); "+
			"point %s_KEY_FILE at the worker's key file or set both",
			scfg.KeyFile, keyErr, config.Prefix, config.Prefix, config.Prefix)
	}
	c := seal.Client{URL: scfg.SealEndpoint, Token: scfg.SealBearerToken, HTTP: &http.Client{Timeout: 30 * time.Second}}
	return func(ctx context.Context, req seal.Request) (workflows.SeedEnvelope, error) {
		env, err := c.SealFor(ctx, req)
		if err != nil {
			return workflows.SeedEnvelope{}, fail(exitBadInput, "cannot seal the seed: the key file %s is not readable and %v", scfg.KeyFile, err)
		}
		return env, nil
	}, nil
}

// sealedPlaceholder stands for a sealed seed while an input is checked before its seed
// is sealed (or, for connect, obtained).
const sealedPlaceholder = seal.Prefix + "check:AA"

// sealSeed seals seed for the credential id of the named provider with cfg.
func sealSeed(ctx context.Context, id, providerName string, cfg provider.Config, seed workflows.Seed) (workflows.SeedEnvelope, error) {
	scfg, err := config.LoadStarter()
	if err != nil {
		return workflows.SeedEnvelope{}, fail(exitBadInput, "%v", err)
	}
	sealer, err := newSeedSealer(scfg)
	if err != nil {
		return workflows.SeedEnvelope{}, err
	}
	return sealer(ctx, seal.Request{ID: id, Provider: providerName, Config: cfg, Seed: seed})
}

// readCredential reads a credential file and its secrets file and checks them together,
// as the workflow will: the input of start and seal, its seed still in plaintext.
func (a *app) readCredential(path, secretsPath string) (workflows.CredentialInput, error) {
	if secretsPath == "" {
		return workflows.CredentialInput{}, fail(exitBadInput, "-secrets is required: a JSON file with at least refresh_token, or - for standard input")
	}
	var in workflows.CredentialInput
	if err := readJSON(path, a.stdin, &in); err != nil {
		return in, fail(exitBadInput, "credential file %s: %v", path, err)
	}
	if in.Seed != nil || in.Carried != nil {
		return in, fail(exitBadInput, "credential file %s: secrets belong in the -secrets file, not under \"seed\"; \"carried\" is internal", path)
	}
	var seed workflows.Seed
	if err := readJSON(secretsPath, a.stdin, &seed); err != nil {
		// Never echo the content: it is secret.
		return in, fail(exitBadInput, "secrets %s: %v", displayPath(secretsPath), err)
	}
	if in.ID == "" {
		return in, fail(exitBadInput, "credential file %s: id: required", path)
	}
	// The input as the workflow will see it (its seed sealed: a placeholder here), and
	// the seed as the Seed activity will (some providers, such as a ChatHub operator,
	// need no secret at all).
	in.Seed = &workflows.SeedEnvelope{Sealed: sealedPlaceholder}
	err := in.Validate(in.ID)
	if err == nil {
		err = workflows.ValidateSeed(in.Provider, in.Config, seed)
	}
	if err != nil {
		return in, fail(exitBadInput, "invalid credential:\n  %s", strings.ReplaceAll(err.Error(), "\n", "\n  "))
	}
	in.Seed = &workflows.SeedEnvelope{Seed: seed}
	return in, nil
}

// secretsFlag declares the -secrets flag of the commands that read a credential file.
func secretsFlag(fs *flag.FlagSet) *string {
	return fs.String("secrets", "", "JSON file with the grant's secrets (refresh_token, client_secret, ...); - reads standard input")
}

// sealedCredential parses the command line of start and seal (one credential file and
// the -secrets flag), reads and checks the input (readCredential) and seals its seed.
func (a *app) sealedCredential(ctx context.Context, fs *flag.FlagSet, args []string, secretsPath *string) (workflows.CredentialInput, error) {
	pos, err := parse(fs, args)
	if err != nil {
		return workflows.CredentialInput{}, err
	}
	if len(pos) != 1 {
		fs.Usage()
		return workflows.CredentialInput{}, fail(exitBadInput, "expected exactly one credential file, got %d arguments", len(pos))
	}
	in, err := a.readCredential(pos[0], *secretsPath)
	if err == nil {
		err = sealInput(ctx, &in)
	}
	if err != nil {
		return workflows.CredentialInput{}, err // nothing of a plaintext seed leaves here
	}
	return in, nil
}

// sealInput replaces the plaintext seed of a checked input by its sealed envelope.
func sealInput(ctx context.Context, in *workflows.CredentialInput) error {
	env, err := sealSeed(ctx, in.ID, in.Provider, in.Config, in.Seed.Seed)
	if err != nil {
		return err
	}
	in.Seed = &env
	return nil
}

// seal prints what the temporal CLI needs to start or reseed a credential without the
// starter: the whole workflow input with its seed sealed, or (-seed-only) the sealed
// seed alone, the argument of the reseed signal. Nothing it prints is secret.
func (a *app) seal(ctx context.Context, args []string) error {
	fs := a.newFlags("seal", "seal CREDENTIAL.json -secrets FILE|- [-seed-only]")
	secrets := secretsFlag(fs)
	seedOnly := fs.Bool("seed-only", false, `print only the sealed seed, {"sealed":"tw1:..."}: the input of the reseed signal`)
	in, err := a.sealedCredential(ctx, fs, args, secrets)
	if err != nil {
		return err
	}
	var out any = in
	if *seedOnly {
		out = in.Seed
	}
	return json.NewEncoder(a.stdout).Encode(out)
}
