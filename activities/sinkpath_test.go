//go:build unix

package activities_test

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tokenwarden/tokenwarden/activities"
	"github.com/tokenwarden/tokenwarden/internal/credential"
	"github.com/tokenwarden/tokenwarden/internal/envfile"
	"github.com/tokenwarden/tokenwarden/internal/provider/catalog"
)

// sinkLayout is a worker's directories as a test builds them:
//
//	root/                allowed (TOKENWARDEN_SINK_DIRS)
//	root/app/.env        an ordinary sink file
//	root/data/           the data directory (protected), inside the allowed one
//	root/data/keys.json  the key file
//	root/data/tokens.db  the SQLite store file
//	elsewhere/           outside every allowed directory
type sinkLayout struct {
	root, app, data, keyFile, storeFile, elsewhere string
}

func newSinkLayout(t *testing.T, h *harness) sinkLayout {
	t.Helper()
	root := t.TempDir()
	l := sinkLayout{
		root:      root,
		app:       filepath.Join(root, "app"),
		data:      filepath.Join(root, "data"),
		elsewhere: t.TempDir(),
	}
	l.keyFile = filepath.Join(l.data, "keys.json")
	l.storeFile = filepath.Join(l.data, "tokens.db")
	for _, d := range []string{l.app, l.data} {
		if err := os.Mkdir(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	for _, f := range []string{l.keyFile, l.storeFile} {
		if err := os.WriteFile(f, []byte(`{"keys":"not a dotenv file"}`), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	h.acts.EnvSinkDirs = []string{l.root}
	h.acts.EnvSinkProtected = []string{l.data}
	return l
}

// sinkAt runs one env sink at path and returns its error.
func (h *harness) sinkAt(path string) error {
	h.t.Helper()
	_, err := h.sink(activities.SinkRequest{CredentialID: credID, Provider: catalog.OAuth2, Version: 2,
		Sinks: []credential.Sink{{Type: credential.SinkEnv, Path: path, Key: "TOKEN"}}})
	return err
}

// wantRefused checks that err is a non-retryable refusal whose message holds want
// and no secret.
func (h *harness) wantRefused(err error, want string) {
	h.t.Helper()
	appErr := appError(h.t, err, activities.ErrTypeSinkRefused, true)
	if !strings.Contains(appErr.Message(), want) {
		h.t.Errorf("message %q, want it to mention %q", appErr.Message(), want)
	}
	h.assertNoSecrets(err, h.secrets(credID, "fam")...)
}

func unchanged(t *testing.T, path, want string) {
	t.Helper()
	if got := readFile(t, path); got != want {
		t.Errorf("%s = %q, want it unchanged (%q)", path, got, want)
	}
}

func TestEnvSinkWhereItMayWrite(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	_, v := h.seed(credID, "fam", testClientSecret)
	h.mustRefresh(h.request(credID, v))
	l := newSinkLayout(t, h)
	keyBefore := readFile(t, l.keyFile)

	t.Run("normal", func(t *testing.T) {
		path := filepath.Join(l.app, ".env")
		if err := os.WriteFile(path, []byte("# keep\nOTHER=1\n"), 0o640); err != nil {
			t.Fatal(err)
		}
		if err := h.sinkAt(path); err != nil {
			t.Fatalf("Sink in an allowed directory: %v", err)
		}
		got := readFile(t, path)
		if !strings.HasPrefix(got, "# keep\nOTHER=1\nTOKEN=") || !strings.Contains(got, h.get(credID).Secrets.AccessToken) {
			t.Fatalf("file = %q", got)
		}
		if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o640 {
			t.Fatalf("mode %v, want 0640 kept", fi.Mode().Perm())
		}
	})
	t.Run("the key file", func(t *testing.T) {
		h.wantRefused(h.sinkAt(l.keyFile), "holds the worker's token store or key file")
		unchanged(t, l.keyFile, keyBefore)
	})
	t.Run("the store file", func(t *testing.T) {
		h.wantRefused(h.sinkAt(l.storeFile), "holds the worker's token store or key file")
		unchanged(t, l.storeFile, keyBefore)
	})
	t.Run("a new file in the data directory", func(t *testing.T) {
		path := filepath.Join(l.data, ".env")
		h.wantRefused(h.sinkAt(path), "holds the worker's token store or key file")
		if _, err := os.Lstat(path); !os.IsNotExist(err) {
			t.Errorf("%s was created: %v", path, err)
		}
	})
	t.Run("the data directory itself", func(t *testing.T) {
		h.wantRefused(h.sinkAt(l.data), "holds the worker's token store or key file")
	})
	t.Run("the key file through a linked directory", func(t *testing.T) {
		link := filepath.Join(l.app, "conf")
		if err := os.Symlink(l.data, link); err != nil {
			t.Fatal(err)
		}
		defer os.Remove(link)
		h.wantRefused(h.sinkAt(filepath.Join(link, "keys.json")), "holds the worker's token store or key file")
		unchanged(t, l.keyFile, keyBefore)
	})
	t.Run("outside the allowed directories", func(t *testing.T) {
		path := filepath.Join(l.elsewhere, ".env")
		h.wantRefused(h.sinkAt(path), "outside the directories env sinks may write in (TOKENWARDEN_SINK_DIRS)")
		if _, err := os.Lstat(path); !os.IsNotExist(err) {
			t.Errorf("%s was created: %v", path, err)
		}
	})
	t.Run("a name that only starts like an allowed directory", func(t *testing.T) {
		lookalike := l.root + "x"
		if err := os.Mkdir(lookalike, 0o700); err != nil {
			t.Fatal(err)
		}
		defer os.RemoveAll(lookalike)
		h.wantRefused(h.sinkAt(filepath.Join(lookalike, ".env")), "outside the directories")
	})
	t.Run("a linked directory leading outside", func(t *testing.T) {
		link := filepath.Join(l.app, "out")
		if err := os.Symlink(l.elsewhere, link); err != nil {
			t.Fatal(err)
		}
		defer os.Remove(link)
		h.wantRefused(h.sinkAt(filepath.Join(link, ".env")), "once its directory's links are followed")
		if _, err := os.Lstat(filepath.Join(l.elsewhere, ".env")); !os.IsNotExist(err) {
			t.Errorf("a file was created outside: %v", err)
		}
	})
	t.Run("a symlink", func(t *testing.T) {
		target := filepath.Join(l.app, "real.env")
		if err := os.WriteFile(target, []byte("TOKEN=old\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		link := filepath.Join(l.app, "link.env")
		if err := os.Symlink(target, link); err != nil {
			t.Fatal(err)
		}
		h.wantRefused(h.sinkAt(link), "is a symbolic link")
		unchanged(t, target, "TOKEN=old\n")
		if fi, err := os.Lstat(link); err != nil || fi.Mode()&os.ModeSymlink == 0 {
			t.Errorf("the link was replaced: %v", err)
		}
	})
	t.Run("a symlink to the key file", func(t *testing.T) {
		link := filepath.Join(l.app, "keys.env")
		if err := os.Symlink(l.keyFile, link); err != nil {
			t.Fatal(err)
		}
		h.wantRefused(h.sinkAt(link), "is a symbolic link")
		unchanged(t, l.keyFile, keyBefore)
	})
	t.Run("a FIFO", func(t *testing.T) {
		fifo := filepath.Join(l.app, "fifo.env")
		if err := syscall.Mkfifo(fifo, 0o600); err != nil {
			t.Skipf("mkfifo: %v", err)
		}
		start := time.Now()
		h.wantRefused(h.sinkAt(fifo), "is not a regular file")
		if d := time.Since(start); d > 2*time.Second {
			t.Errorf("the FIFO sink took %s", d)
		}
		// The path lock is free again: a second run is refused as promptly.
		start = time.Now()
		h.wantRefused(h.sinkAt(fifo), "is not a regular file")
		if d := time.Since(start); d > 2*time.Second {
			t.Errorf("the second FIFO sink took %s", d)
		}
	})
	t.Run("a directory", func(t *testing.T) {
		dir := filepath.Join(l.app, "dir.env")
		if err := os.Mkdir(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		h.wantRefused(h.sinkAt(dir), "is not a regular file")
	})
	t.Run("an oversized file", func(t *testing.T) {
		path := filepath.Join(l.app, "big.env")
		big := "TOKEN=old\n" + strings.Repeat("#", envfile.MaxFileSize) + "\n"
		if err := os.WriteFile(path, []byte(big), 0o600); err != nil {
			t.Fatal(err)
		}
		h.wantRefused(h.sinkAt(path), "is larger than")
		unchanged(t, path, big)
	})
	t.Run("no directories configured", func(t *testing.T) {
		dirs := h.acts.EnvSinkDirs
		h.acts.EnvSinkDirs = nil
		defer func() { h.acts.EnvSinkDirs = dirs }()
		h.wantRefused(h.sinkAt(filepath.Join(l.app, ".env")), "env sinks are off on this worker: set TOKENWARDEN_SINK_DIRS")
	})
	t.Run("a refusal and a good sink together", func(t *testing.T) {
		good := filepath.Join(l.app, "both.env")
		_, err := h.sink(activities.SinkRequest{CredentialID: credID, Provider: catalog.OAuth2, Version: 2, Sinks: []credential.Sink{
			{Type: credential.SinkEnv, Path: l.keyFile, Key: "TOKEN"},
			{Type: credential.SinkEnv, Path: good, Key: "TOKEN"},
		}})
		h.wantRefused(err, "sinks[0]")
		unchanged(t, l.keyFile, keyBefore)
		if !strings.Contains(readFile(t, good), "TOKEN=") {
			t.Error("the good sink was not written")
		}
	})
}
