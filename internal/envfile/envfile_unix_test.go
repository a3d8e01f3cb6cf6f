//go:build unix

package envfile

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// A FIFO must be refused at once: reading one blocks until a writer comes, which
// would hold the path's locks past the caller's deadline.
func TestFIFOIsRefusedWithoutBlocking(t *testing.T) {
	fifo := filepath.Join(t.TempDir(), "app.env")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Skipf("mkfifo: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	start := time.Now()
	_, err := Update(ctx, fifo, []Entry{{"A", "2"}})
	if !errors.Is(err, ErrNotRegular) {
		t.Fatalf("Update of a FIFO = %v, want ErrNotRegular", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("Update of a FIFO took %s", d)
	}
	// No lock is left behind: the same path can be locked at once.
	unlock, err := lockPath(ctx, fifo)
	if err != nil {
		t.Fatalf("the path lock is still held: %v", err)
	}
	unlock()
}

// A FIFO swapped in after the lstat is still refused without blocking: the open is
// non-blocking and the fstat checks what was opened.
func TestReadTargetOpensFIFOWithoutBlocking(t *testing.T) {
	fifo := filepath.Join(t.TempDir(), "app.env")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Skipf("mkfifo: %v", err)
	}
	done := make(chan error, 1)
	go func() {
		f, err := os.OpenFile(fifo, os.O_RDONLY|openNoFollow, 0)
		if err == nil {
			fi, serr := f.Stat()
			_ = f.Close()
			if serr == nil {
				err = checkInfo(fifo, fi)
			}
		}
		done <- err
	}()
	select {
	case err := <-done:
		if !errors.Is(err, ErrNotRegular) {
			t.Fatalf("open+fstat of a FIFO = %v, want ErrNotRegular", err)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("opening a FIFO blocked")
	}
}

// The sidecar lock file is opened as carefully as the file: a link there is refused
// and its target untouched.
func TestSidecarLinkIsRefused(t *testing.T) {
	dir := t.TempDir()
	victim := filepath.Join(t.TempDir(), "victim")
	if err := os.WriteFile(victim, []byte("keep\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "app.env")
	if err := os.Symlink(victim, lockFileName(path)); err != nil {
		t.Fatal(err)
	}
	if _, err := Update(context.Background(), path, []Entry{{"A", "1"}}); !errors.Is(err, ErrSymlink) {
		t.Fatalf("Update with a linked lock file = %v, want ErrSymlink", err)
	}
	if b, _ := os.ReadFile(victim); string(b) != "keep\n" {
		t.Fatalf("victim = %q", b)
	}
}
