//go:build unix

package envfile

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"syscall"
	"time"
)

// openNoFollow opens without following a symbolic link in the final component and
// without blocking: opening a FIFO for reading would otherwise wait for a writer.
const openNoFollow = syscall.O_NOFOLLOW | syscall.O_NONBLOCK

// isLinkRefusal reports whether an open with O_NOFOLLOW failed because the final
// component is a link: ELOOP on Linux, EMLINK on the BSDs.
func isLinkRefusal(err error) bool {
	return errors.Is(err, syscall.ELOOP) || errors.Is(err, syscall.EMLINK)
}

// flockSidecar takes an exclusive flock(2) on the sidecar lock file, creating it
// (mode 0600) if needed, polling so that the wait ends with ctx. Like the file
// itself, the sidecar is opened without following a link or blocking, and must be a
// regular file.
func flockSidecar(ctx context.Context, name string) (release func(), err error) {
	f, err := os.OpenFile(name, os.O_RDWR|os.O_CREATE|openNoFollow, 0o600)
	if err != nil {
		if isLinkRefusal(err) {
			return nil, fmt.Errorf("envfile: the lock file %s %w", name, ErrSymlink)
		}
		return nil, fmt.Errorf("envfile: open the lock file %s: %w", name, err)
	}
	if fi, err := f.Stat(); err != nil || !fi.Mode().IsRegular() {
		_ = f.Close()
		if err != nil {
			return nil, fmt.Errorf("envfile: the lock file %s: %w", name, err)
		}
		return nil, fmt.Errorf("envfile: the lock file %s %w", name, ErrNotRegular)
	}
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			break
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) && !errors.Is(err, syscall.EINTR) {
			_ = f.Close()
			return nil, fmt.Errorf("envfile: lock %s: %w", name, err)
		}
		select {
		case <-ctx.Done():
			_ = f.Close()
			return nil, fmt.Errorf("envfile: waiting for the lock %s: %w", name, ctx.Err())
		case <-time.After(lockPoll):
		}
	}
	return func() {
		_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		_ = f.Close()
	}, nil
}

// keepOwner gives f the owner and group of the original file, if they differ from
// f's. Only root, or the owner for a group it belongs to, may do so.
func keepOwner(f *os.File, orig fs.FileInfo) error {
	want, ok := orig.Sys().(*syscall.Stat_t)
	if !ok {
		return nil
	}
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	have, ok := fi.Sys().(*syscall.Stat_t)
	if !ok || (have.Uid == want.Uid && have.Gid == want.Gid) {
		return nil
	}
	return f.Chown(int(want.Uid), int(want.Gid))
}
