//go:build !unix

package activities

import "fmt"

// signalProcess: this platform has no POSIX signals; a reload_signal is refused (a
// reload_url works everywhere).
func signalProcess(pid int, name string) error {
	return &SinkRefusedError{msg: fmt.Sprintf("signal %s to pid %d: signals are not supported on this platform (use reload_url)", name, pid)}
}
