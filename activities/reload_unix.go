//go:build unix

package activities

import (
	"fmt"
	"os"
	"syscall"
)

// signalProcess sends the named reload signal to pid.
func signalProcess(pid int, name string) error {
	var sig syscall.Signal
	switch name {
	case "HUP":
		sig = syscall.SIGHUP
	case "USR1":
		sig = syscall.SIGUSR1
	case "USR2":
		sig = syscall.SIGUSR2
	case "TERM":
		sig = syscall.SIGTERM
	default:
		return &SinkRefusedError{msg: fmt.Sprintf("signal %q is not one a sink may send (%s)", name, reloadSignalNames)}
	}
	// Where the OS has process handles (pidfd), FindProcess takes one, so the signal
	// reaches the process found, not a successor that reused its pid meanwhile.
	p, err := os.FindProcess(pid)
	if err != nil {
		return signalError(pid, name, err)
	}
	defer func() { _ = p.Release() }()
	if err := p.Signal(sig); err != nil {
		return signalError(pid, name, err)
	}
	return nil
}
