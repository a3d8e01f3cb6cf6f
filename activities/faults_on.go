//go:build faultinject

package activities

import (
	"os"
	"strings"
	"syscall"
)

// FaultEnv names the environment variable that arms fault points in a worker built with
// -tags faultinject: a comma-separated list of point names. An armed point kills the
// process with SIGKILL, as abruptly as a power cut: no deferred function runs.
const FaultEnv = "TOKENWARDEN_FAULT_POINTS"

func faultPoint(name string) {
	for _, armed := range strings.Split(os.Getenv(FaultEnv), ",") {
		if strings.TrimSpace(armed) == name {
			_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
			select {} // never returns: the signal is on its way
		}
	}
}
