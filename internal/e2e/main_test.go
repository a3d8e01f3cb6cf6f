// Package e2e runs tokenwarden for real: the temporal CLI's dev server, the worker and
// starter binaries as separate processes, and the fake OAuth2 provider on loopback.
// `make test` builds bin/temporal first; the tests refuse to run without it rather
// than pass by skipping.
package e2e

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"testing"
	"time"

	"go.temporal.io/sdk/client"
	sdklog "go.temporal.io/sdk/log"
	"go.temporal.io/sdk/testsuite"

	"github.com/tokenwarden/tokenwarden/internal/codec"
	"github.com/tokenwarden/tokenwarden/internal/keyring"
)

// stack is what TestMain starts once for every test in the package.
var stack struct {
	temporalBin string
	address     string
	client      client.Client
	workerBin   string
	starterBin  string
	// faultWorkerBin is the worker built with -tags faultinject: it kills itself with
	// SIGKILL at the fault points named in TOKENWARDEN_FAULT_POINTS.
	faultWorkerBin string
	// keyFile is the one key file every test worker uses (TOKENWARDEN_KEY_FILE), so
	// that client, whose data converter encrypts with it, reads every test's payloads.
	keyFile string
	ring    *keyring.Keyring
}

func TestMain(m *testing.M) {
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	root, err := filepath.Abs("../..")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	stack.temporalBin = os.Getenv("TOKENWARDEN_TEST_TEMPORAL_BIN")
	if stack.temporalBin == "" {
		stack.temporalBin = filepath.Join(root, "bin", "temporal")
	}
	if _, err := os.Stat(stack.temporalBin); err != nil {
		fmt.Fprintf(os.Stderr, "e2e: the temporal CLI is missing at %s: run `make test`, which builds it\n", stack.temporalBin)
		return 1
	}
	tmp, err := os.MkdirTemp("", "tokenwarden-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(tmp)

	build := exec.Command("go", "build", "-o", tmp+string(filepath.Separator), "./worker", "./starter")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "e2e: build worker and starter: %v\n%s", err, out)
		return 1
	}
	stack.workerBin = filepath.Join(tmp, "worker")
	stack.starterBin = filepath.Join(tmp, "starter")

	faultDir := filepath.Join(tmp, "faultinject")
	build = exec.Command("go", "build", "-tags", "faultinject", "-o", faultDir+string(filepath.Separator), "./worker")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "e2e: build the faultinject worker: %v\n%s", err, out)
		return 1
	}
	stack.faultWorkerBin = filepath.Join(faultDir, "worker")

	stack.keyFile = filepath.Join(tmp, "keys", "keys.json")
	if _, err := keyring.GenerateFile(stack.keyFile); err != nil {
		fmt.Fprintf(os.Stderr, "e2e: create the shared key file: %v\n", err)
		return 1
	}
	if stack.ring, err = keyring.LoadFile(stack.keyFile); err != nil {
		fmt.Fprintf(os.Stderr, "e2e: load the shared key file: %v\n", err)
		return 1
	}

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var serverLog bytes.Buffer
	server, err := testsuite.StartDevServer(ctx, testsuite.DevServerOptions{
		ExistingPath: stack.temporalBin,
		LogLevel:     "error",
		ClientOptions: &client.Options{
			Logger:           quietLogger(),
			DataConverter:    codec.DataConverter(stack.ring),
			FailureConverter: codec.FailureConverter(codec.DataConverter(stack.ring)),
		},
		ExtraArgs: searchAttributeArgs,
		Stdout:    &serverLog,
		Stderr:    &serverLog,
	})
	if err != nil {
		fmt.Fprintf(os.Stderr, "e2e: start the Temporal dev server: %v\n%s", err, serverLog.String())
		return 1
	}
	defer func() { _ = server.Stop() }()
	stack.address = server.FrontendHostPort()
	stack.client = server.Client()
	raiseParallelism()
	return m.Run()
}

// searchAttributeArgs registers tokenwarden's search attributes with a dev server.
var searchAttributeArgs = []string{
	"--search-attribute", "TokenState=Keyword",
	"--search-attribute", "TokenProvider=Keyword",
	"--search-attribute", "TokenExpiresAt=Datetime",
}

// e2eParallel is how many parallel tests run at once unless -test.parallel says
// otherwise. The fault tests spend their time waiting for leases, heartbeat timeouts
// and token lifetimes in separate processes, not on the CPU, so the default (GOMAXPROCS)
// would serialise them needlessly on a small machine.
const e2eParallel = 6

// raiseParallelism sets -test.parallel to e2eParallel when the command line left it at
// its default and the default is lower.
func raiseParallelism() {
	explicit := false
	flag.Visit(func(f *flag.Flag) { explicit = explicit || f.Name == "test.parallel" })
	if !explicit && runtime.GOMAXPROCS(0) < e2eParallel {
		_ = flag.Set("test.parallel", strconv.Itoa(e2eParallel))
	}
}

// quietLogger drops the SDK's own log lines.
func quietLogger() sdklog.Logger { return sdklog.NewStructuredLogger(slog.New(slog.DiscardHandler)) }
