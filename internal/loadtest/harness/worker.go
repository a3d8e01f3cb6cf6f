package harness

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/tokenwarden/tokenwarden/internal/keyring"
	"github.com/tokenwarden/tokenwarden/internal/store"
)

// Worker runs the worker binary as a subprocess, one at a time, in a process group of
// its own (a Ctrl-C at the terminal must not stop it before the summary), appending its
// output to a log file.
type Worker struct {
	name string
	bin  string
	env  []string
	log  *os.File

	mu     sync.Mutex
	p      *proc
	starts int
}

type proc struct {
	cmd    *exec.Cmd
	exited chan struct{}
	err    error
}

// NewWorker returns a stopped worker; name prefixes its markers in the log and its
// messages.
func NewWorker(name, bin string, log *os.File, env []string) *Worker {
	return &Worker{name: name, bin: bin, env: env, log: log}
}

// Start starts the worker binary (with -init-dev-key).
func (w *Worker) Start() error { return w.StartWith(nil) }

// StartWith starts the worker binary with extra NAME=value settings for this start only
// (the soak's clock skew, which changes from one start to the next).
func (w *Worker) StartWith(extra []string) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.starts++
	fmt.Fprintf(w.log, "=== %s: worker start #%d at %s %s\n", w.name, w.starts, time.Now().Format(time.RFC3339Nano), strings.Join(extra, " "))
	cmd := exec.Command(w.bin, "-init-dev-key")
	cmd.Env = append(slices.Clip(w.env), extra...)
	cmd.Stdout, cmd.Stderr = w.log, w.log
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start the worker: %w", err)
	}
	p := &proc{cmd: cmd, exited: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.exited)
	}()
	w.p = p
	return nil
}

// Kill9 ends the worker with SIGKILL and waits for it.
func (w *Worker) Kill9() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.p == nil {
		return
	}
	_ = w.p.cmd.Process.Signal(syscall.SIGKILL)
	<-w.p.exited
	fmt.Fprintf(w.log, "=== %s: worker killed with SIGKILL at %s\n", w.name, time.Now().Format(time.RFC3339Nano))
	w.p = nil
}

// Stop asks the worker to stop (SIGTERM) and waits up to 30 s before SIGKILL.
func (w *Worker) Stop() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.p == nil {
		return
	}
	_ = w.p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-w.p.exited:
		if w.p.err != nil {
			fmt.Printf("%s: the worker did not exit cleanly: %v\n", w.name, w.p.err)
		}
	case <-time.After(30 * time.Second):
		fmt.Printf("%s: the worker did not stop within 30s of SIGTERM; killing it\n", w.name)
		_ = w.p.cmd.Process.Kill()
		<-w.p.exited
	}
	w.p = nil
}

// Running reports whether a worker process has been started and not stopped, killed or
// reaped.
func (w *Worker) Running() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.p != nil
}

// Exited is closed when the running worker exits; nil (never ready) when none runs.
func (w *Worker) Exited() <-chan struct{} {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.p == nil {
		return nil
	}
	return w.p.exited
}

// Reap forgets a worker that exited by itself and returns how it exited.
func (w *Worker) Reap() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.p == nil {
		return nil
	}
	err := w.p.err
	w.p = nil
	return err
}

// Pid is the running worker's process ID, 0 when none runs.
func (w *Worker) Pid() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.p == nil {
		return 0
	}
	return w.p.cmd.Process.Pid
}

// ProcStats is what /proc says about a process (Linux).
type ProcStats struct {
	PeakRSS int64         // VmHWM, bytes
	RSS     int64         // VmRSS, bytes
	CPU     time.Duration // utime + stime
}

// clockTicks is USER_HZ, the unit of utime and stime in /proc/<pid>/stat: 100 on every
// Linux architecture Go supports (sysconf(_SC_CLK_TCK) is not reachable without cgo).
const clockTicks = 100

// ReadProcStats reads /proc/<pid>/status (VmHWM, VmRSS) and /proc/<pid>/stat (utime,
// stime) of a running process.
func ReadProcStats(pid int) (ProcStats, error) {
	var ps ProcStats
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return ps, err
	}
	for _, line := range strings.Split(string(status), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok || (k != "VmHWM" && k != "VmRSS") {
			continue
		}
		f := strings.Fields(v) // "123456 kB"
		if len(f) < 1 {
			continue
		}
		kb, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			return ps, fmt.Errorf("/proc/%d/status %s: %w", pid, k, err)
		}
		if k == "VmHWM" {
			ps.PeakRSS = kb << 10
		} else {
			ps.RSS = kb << 10
		}
	}
	// utime and stime are fields 14 and 15.
	f, err := statFields(pid, 15)
	if err != nil {
		return ps, err
	}
	utime, err1 := strconv.ParseInt(f[11], 10, 64)
	stime, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return ps, fmt.Errorf("/proc/%d/stat: bad utime/stime", pid)
	}
	ps.CPU = time.Duration(utime+stime) * time.Second / clockTicks
	return ps, nil
}

// storeOnce opens the worker's token store once.
type storeOnce struct {
	mu sync.Mutex
	st *store.SQLite
}

func (o *storeOnce) open(ctx context.Context, dataDir string) (*store.SQLite, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.st != nil {
		return o.st, nil
	}
	ring, err := keyring.LoadFile(filepath.Join(dataDir, "keys.json"))
	if err != nil {
		return nil, err
	}
	st, err := store.OpenSQLite(ctx, filepath.Join(dataDir, "tokens.db"), ring, nil)
	if err != nil {
		return nil, err
	}
	o.st = st
	return st, nil
}

func (o *storeOnce) close() {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.st != nil {
		_ = o.st.Close()
	}
}

// statFields reads /proc/<pid>/stat and returns its fields from field 3 (state) on, so
// that field n is at index n-3, checking that field last is there. The command name
// (field 2) is in parentheses and may hold spaces, so the fields are those after the
// last ')'.
func statFields(pid, last int) ([]string, error) {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return nil, err
	}
	s := string(stat)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < last-2 {
		return nil, fmt.Errorf("/proc/%d/stat: too few fields", pid)
	}
	return f, nil
}
