// Package e2e runs tokenwarden for real: the temporal CLI's dev server, the worker and
// starter binaries as separate processes, and the fake OAuth2 provider on loopback.
// `make test` builds bin/temporal first; the tests refuse to run without it rather
// than pass by skipping.
package e2e

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/testsuite"
)

// stack is what TestMain starts once for every test in the package.
var stack struct {
	temporalBin string
	address     string
	client      client.Client
	workerBin   string
	starterBin  string
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

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var serverLog bytes.Buffer
	server, err := testsuite.StartDevServer(ctx, testsuite.DevServerOptions{
		ExistingPath: stack.temporalBin,
		LogLevel:     "error",
		ClientOptions: &client.Options{
			Logger: quietLogger{},
		},
		ExtraArgs: []string{
			"--search-attribute", "TokenState=Keyword",
			"--search-attribute", "TokenProvider=Keyword",
			"--search-attribute", "TokenExpiresAt=Datetime",
		},
		Stdout: &serverLog,
		Stderr: &serverLog,
	})
	if err != nil {
		fmt.Fprintf(os.Stderr, "e2e: start the Temporal dev server: %v\n%s", err, serverLog.String())
		return 1
	}
	defer func() { _ = server.Stop() }()
	stack.address = server.FrontendHostPort()
	stack.client = server.Client()
	return m.Run()
}

type quietLogger struct{}

func (quietLogger) Debug(string, ...any) {}
func (quietLogger) Info(string, ...any)  {}
func (quietLogger) Warn(string, ...any)  {}
func (quietLogger) Error(string, ...any) {}
