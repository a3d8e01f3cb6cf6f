package activities

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/tokenwarden/tokenwarden/internal/credential"
)

// An env sink may tell the consumer of its file that the file changed: the seeds'
// cron jobs restart the container that reads .env after writing it. Both ways are
// non-secret by design, since the spec travels in workflow history: a pid file's path
// and a signal name, or a URL that must carry no credentials (user info and queries
// are refused) and is sent no token.

// reloadSignalNames lists the signals a sink may send, for messages: those daemons use
// for "re-read your configuration" or "stop, to be restarted". Anything stronger (KILL)
// or stranger is refused.
const reloadSignalNames = "HUP, USR1, USR2 or TERM"

// Limits of a reload.
const (
	// MaxPIDFileSize bounds what is read of a pid file; a larger one is not a pid file.
	MaxPIDFileSize = 64
	// MaxReloadURLLen bounds a reload URL.
	MaxReloadURLLen = 2048
	// DefaultReloadTimeout bounds one reload POST, connection included.
	DefaultReloadTimeout = 5 * time.Second
	// maxReloadResponse is how much of a reload answer is read (and discarded) before
	// the connection is closed.
	maxReloadResponse = 4 << 10
)

// ReloadNotice is the JSON body POSTed to a reload URL. It carries no token: the
// receiver re-reads the file.
type ReloadNotice struct {
	Event        string `json:"event"` // "env_file_changed"
	CredentialID string `json:"credential_id"`
	Provider     string `json:"provider"`
	Version      int64  `json:"version"`
	Path         string `json:"path"`
}

// checkFilePath validates an absolute file path for the field named field; the
// messages are those the env sink's path has always had.
func checkFilePath(field, p string) error {
	switch {
	case p == "":
		return fmt.Errorf("%s: required", field)
	case strings.ContainsFunc(p, func(r rune) bool { return r < ' ' || r == 0x7f }):
		return fmt.Errorf("%s: contains a control character", field)
	case !filepath.IsAbs(p):
		return fmt.Errorf("%s: must be absolute, got %q", field, p)
	case filepath.Clean(p) != p:
		return fmt.Errorf("%s: must be clean (no '..', '.', '//' or trailing '/'): %q is %q", field, p, filepath.Clean(p))
	case len(p) > 4096:
		return fmt.Errorf("%s: longer than 4096 bytes", field)
	case p == "/":
		return fmt.Errorf("%s: must name a file", field)
	}
	return nil
}

// checkReloadSignal validates a reload signal; its errors name the field
// ("reload_signal.signal: ...").
func checkReloadSignal(r credential.ReloadSignal) error {
	var errs []error
	if err := checkFilePath("reload_signal.pid_file", r.PIDFile); err != nil {
		errs = append(errs, err)
	} else if base := filepath.Base(r.PIDFile); !strings.HasSuffix(base, ".pid") || base == ".pid" {
		// Only a file made to hold a pid: not any file that happens to hold a number.
		errs = append(errs, fmt.Errorf("reload_signal.pid_file: must be a file named *.pid, got %q", r.PIDFile))
	}
	switch {
	case r.Signal == "":
		errs = append(errs, fmt.Errorf("reload_signal.signal: required (%s)", reloadSignalNames))
	case !validReloadSignal(r.Signal):
		errs = append(errs, fmt.Errorf("reload_signal.signal: must be %s, got %q", reloadSignalNames, r.Signal))
	}
	return errors.Join(errs...)
}

func validReloadSignal(name string) bool {
	switch name {
	case "HUP", "USR1", "USR2", "TERM":
		return true
	}
	return false
}

// CheckReloadURL validates a reload URL: https, or plain http to a loopback address;
// a host; no user info, query or fragment (the URL travels in history: it must hold
// no credentials).
func CheckReloadURL(raw string) error {
	if len(raw) > MaxReloadURLLen {
		return fmt.Errorf("reload_url: longer than %d bytes", MaxReloadURLLen)
	}
	if strings.ContainsFunc(raw, func(r rune) bool { return r <= ' ' || r == 0x7f }) {
		return errors.New("reload_url: contains a space or control character")
	}
	u, err := url.Parse(raw)
	if err != nil {
		return errors.New("reload_url: not a valid URL")
	}
	switch {
	case u.Scheme != "http" && u.Scheme != "https":
		return fmt.Errorf("reload_url: must be an https URL (http only to a loopback address), got scheme %q", u.Scheme)
	case u.Opaque != "" || u.Host == "" || u.Hostname() == "":
		return errors.New("reload_url: must be an absolute URL with a host")
	case u.User != nil:
		return errors.New("reload_url: must not carry user info (it travels in history: no credentials in it)")
	case u.RawQuery != "" || u.ForceQuery:
		return errors.New("reload_url: must not carry a query (it travels in history: no credentials in it)")
	case u.Fragment != "" || strings.Contains(raw, "#"):
		return errors.New("reload_url: must not carry a fragment")
	case u.Scheme == "http" && !isLoopback(u.Hostname()):
		return fmt.Errorf("reload_url: plain http only to a loopback address (127.0.0.0/8, ::1, localhost), got host %q; use https", u.Hostname())
	}
	return nil
}

// readPID reads a pid file and returns the pid it holds. Anything but a small regular
// file holding one positive decimal integer, other than the worker's own pid, is
// refused: a signal sent on a guess may reach the wrong process.
func readPID(path string) (int, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		// The consumer may be starting and not have written it yet: worth a retry.
		return 0, fmt.Errorf("pid file %s does not exist (is the process running?)", path)
	}
	if err != nil {
		return 0, &SinkRefusedError{msg: fmt.Sprintf("open the pid file: %v", err), err: err}
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return 0, fmt.Errorf("pid file %s: %w", path, err)
	}
	if !fi.Mode().IsRegular() {
		return 0, &SinkRefusedError{msg: fmt.Sprintf("pid file %s is not a regular file", path)}
	}
	b, err := io.ReadAll(io.LimitReader(f, MaxPIDFileSize+1))
	if err != nil {
		return 0, fmt.Errorf("read the pid file %s: %w", path, err)
	}
	if len(b) > MaxPIDFileSize {
		return 0, &SinkRefusedError{msg: fmt.Sprintf("pid file %s is larger than %d bytes: not a pid file", path, MaxPIDFileSize)}
	}
	s := strings.TrimRight(string(b), "\r\n")
	digits := s != "" && !strings.ContainsFunc(s, func(r rune) bool { return r < '0' || r > '9' })
	pid, err := strconv.ParseInt(s, 10, 32)
	if !digits || err != nil || pid <= 0 {
		// The content is not shown: it is not a pid, so it may be anything.
		return 0, &SinkRefusedError{msg: fmt.Sprintf("pid file %s does not hold a positive decimal pid (%d bytes)", path, len(b))}
	}
	if int(pid) == os.Getpid() {
		return 0, &SinkRefusedError{msg: fmt.Sprintf("pid file %s names the worker itself (pid %d)", path, pid)}
	}
	return int(pid), nil
}

// sendReloadSignal signals the process of r's pid file.
func sendReloadSignal(r credential.ReloadSignal) (pid int, err error) {
	pid, err = readPID(r.PIDFile)
	if err != nil {
		return 0, err
	}
	if err := signalProcess(pid, r.Signal); err != nil {
		return pid, err
	}
	return pid, nil
}

// signalError describes a failed signal; a stale pid file is worth a retry (the
// consumer may be restarting and will write a new one), a refusal by the kernel is not.
func signalError(pid int, sig string, err error) error {
	switch {
	case errors.Is(err, os.ErrProcessDone), errors.Is(err, syscall.ESRCH):
		return fmt.Errorf("signal %s to pid %d: no process has that pid (stale pid file?): %w", sig, pid, err)
	case errors.Is(err, syscall.EPERM):
		return &SinkRefusedError{msg: fmt.Sprintf("signal %s to pid %d: not permitted (run the worker as the process's user, or as root): %v", sig, pid, err), err: err}
	}
	return fmt.Errorf("signal %s to pid %d: %w", sig, pid, err)
}

// postReload POSTs notice to rawURL (checked by CheckReloadURL) and wants a 2xx. It
// follows no redirects, sends no credentials, reads at most maxReloadResponse bytes of
// the answer, and a plain-http URL only ever connects to a loopback address (a host
// name such as localhost is checked after it resolves).
func postReload(ctx context.Context, rawURL string, notice ReloadNotice, timeout time.Duration) error {
	if err := CheckReloadURL(rawURL); err != nil {
		return &SinkRefusedError{msg: err.Error(), err: err}
	}
	u, _ := url.Parse(rawURL)
	where := u.Scheme + "://" + u.Host
	body, err := json.Marshal(notice)
	if err != nil {
		return fmt.Errorf("reload_url %s: encode the body: %w", where, err)
	}
	dialer := &net.Dialer{Timeout: timeout}
	transport := &http.Transport{
		DialContext:            dialer.DialContext,
		TLSHandshakeTimeout:    timeout,
		ResponseHeaderTimeout:  timeout,
		MaxResponseHeaderBytes: maxReloadResponse,
		DisableKeepAlives:      true,
	}
	if u.Scheme == "http" {
		dialer.Control = func(_, address string, _ syscall.RawConn) error {
			host, _, err := net.SplitHostPort(address)
			if err != nil {
				return err
			}
			if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
				return fmt.Errorf("plain http only to a loopback address, and %s resolves to %s", u.Hostname(), host)
			}
			return nil
		}
	} else {
		transport.Proxy = http.ProxyFromEnvironment
	}
	defer transport.CloseIdleConnections()
	client := &http.Client{
		Transport:     transport,
		Timeout:       timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, rawURL, bytes.NewReader(body))
	if err != nil {
		return &SinkRefusedError{msg: fmt.Sprintf("reload_url %s: cannot build the request: %v", where, err), err: err}
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "tokenwarden-reload")
	resp, err := client.Do(req)
	if err != nil {
		// Keep the cause without Go's quoting of method and URL.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		// The deadline can reach the transport as its own timeout first.
		var ne net.Error
		if ctx.Err() != nil || (errors.As(err, &ne) && ne.Timeout()) {
			return fmt.Errorf("reload_url %s: no answer within %s", where, timeout)
		}
		return fmt.Errorf("reload_url %s: post: %w", where, err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxReloadResponse))
	if resp.StatusCode >= 200 && resp.StatusCode <= 299 {
		return nil
	}
	msg := fmt.Sprintf("reload_url %s answered %s", where, resp.Status)
	if resp.StatusCode >= 300 && resp.StatusCode <= 399 {
		msg += " (redirects are not followed)"
	}
	return errors.New(msg)
}
