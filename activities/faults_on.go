//go:build faultinject

package activities

import (
	"fmt"
	"os"
	"strings"
	"syscall"
	"time"
)

// FaultEnv names the environment variable that arms fault points in a worker built with
// -tags faultinject: a comma-separated list of point names. An armed point kills the
// process with SIGKILL, as abruptly as a power cut: no deferred function runs.
const FaultEnv = "TOKENWARDEN_FAULT_POINTS"

// ClockSkewEnv names the environment variable that skews a faultinject worker's clock: a
// Go duration (e.g. "30s", "-30s") added to time.Now. A worker process cannot change the
// host's clock without privileges, so the skew is applied where tokenwarden reads the
// time itself: the activities' clock (lease deadlines, commit retries) and the SQLite
// store's, which times the leases. A PostgreSQL store times leases on the server's clock
// and is not affected; the provider's expiry arithmetic keeps the real clock.
const ClockSkewEnv = "TOKENWARDEN_FAULT_CLOCK_SKEW"

func faultPoint(name string) {
	for _, armed := range strings.Split(os.Getenv(FaultEnv), ",") {
		if strings.TrimSpace(armed) == name {
			_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
			select {} // never returns: the signal is on its way
		}
	}
}

// FaultClock returns the clock ClockSkewEnv asks for and its skew; a nil clock (the real
// one) when the variable is unset.
func FaultClock() (func() time.Time, time.Duration, error) {
	v := strings.TrimSpace(os.Getenv(ClockSkewEnv))
	if v == "" {
		return nil, 0, nil
	}
	skew, err := time.ParseDuration(v)
	if err != nil {
		return nil, 0, fmt.Errorf("%s: %w", ClockSkewEnv, err)
	}
	return func() time.Time { return time.Now().Add(skew) }, skew, nil
}
