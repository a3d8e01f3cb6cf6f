package envfile

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

const sample = `# app settings
APP_NAME=chat-bot   # the name
export DB_URL="postgres://db/app"

ZALO_ACCESS_TOKEN=old-token
  INDENTED = keep me
MULTI="line one
ZALO_ACCESS_TOKEN=inside-a-quoted-value
line three"
LAST=1
`

func write(t *testing.T, content string, mode os.FileMode) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), ".env")
	if err := os.WriteFile(path, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil { // past the umask
		t.Fatal(err)
	}
	return path
}

func read(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func update(t *testing.T, path string, kv ...string) bool {
	t.Helper()
	var es []Entry
	for i := 0; i+1 < len(kv); i += 2 {
		es = append(es, Entry{Key: kv[i], Value: kv[i+1]})
	}
	changed, err := Update(context.Background(), path, es)
	if err != nil {
		t.Fatalf("Update: %v", err)
	}
	return changed
}

func TestUpdateKeepsEverythingElse(t *testing.T) {
	path := write(t, sample, 0o640)
	if !update(t, path, "ZALO_ACCESS_TOKEN", "eyJhbGciOi.J9-new_token+/=") {
		t.Fatal("Update reported no change")
	}
	want := strings.Replace(sample, "ZALO_ACCESS_TOKEN=old-token\n", "ZALO_ACCESS_TOKEN=eyJhbGciOi.J9-new_token+/=\n", 1)
	if got := read(t, path); got != want {
		t.Fatalf("file =\n%s\nwant\n%s", got, want)
	}
	fi, _ := os.Stat(path)
	if fi.Mode().Perm() != 0o640 {
		t.Fatalf("mode %v, want 0640", fi.Mode().Perm())
	}
	// The same value again: nothing to write.
	if update(t, path, "ZALO_ACCESS_TOKEN", "eyJhbGciOi.J9-new_token+/=") {
		t.Fatal("an unchanged value rewrote the file")
	}
	// No temporary file left behind; only the sidecar lock beside the file.
	entries, _ := os.ReadDir(filepath.Dir(path))
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if strings.Join(names, ",") != "..env.lock,.env" {
		t.Fatalf("directory holds %v", names)
	}
}

func TestUpdateOtherForms(t *testing.T) {
	path := write(t, sample, 0o600)
	update(t, path, "APP_NAME", "bot2", "DB_URL", "x", "INDENTED", "y", "MULTI", "z", "NEW_KEY", "added")
	want := `# app settings
APP_NAME=bot2   # the name
export DB_URL=x

ZALO_ACCESS_TOKEN=old-token
  INDENTED = y
MULTI=z
LAST=1
NEW_KEY=added
`
	if got := read(t, path); got != want {
		t.Fatalf("file =\n%s\nwant\n%s", got, want)
	}
}

func TestAddedKeyAndLineEndings(t *testing.T) {
	path := write(t, "A=1", 0o600) // no final newline
	update(t, path, "B", "2")
	if got := read(t, path); got != "A=1\nB=2\n" {
		t.Fatalf("file = %q", got)
	}
	path = write(t, "A=1\r\n# c\r\n", 0o600)
	update(t, path, "A", "3", "B", "2")
	if got := read(t, path); got != "A=3\r\n# c\r\nB=2\r\n" {
		t.Fatalf("file = %q", got)
	}
}

func TestDuplicateKeysAllSet(t *testing.T) {
	path := write(t, "K=1\nX=0\nK=2\n", 0o600)
	update(t, path, "K", "9")
	if got := read(t, path); got != "K=9\nX=0\nK=9\n" {
		t.Fatalf("file = %q", got)
	}
}

func TestNewFileIs0600(t *testing.T) {
	path := filepath.Join(t.TempDir(), "app.env")
	update(t, path, "TOKEN", "abc")
	if got := read(t, path); got != "TOKEN=abc\n" {
		t.Fatalf("file = %q", got)
	}
	fi, _ := os.Stat(path)
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v, want 0600", fi.Mode().Perm())
	}
}

func TestSymlinkIsRefused(t *testing.T) {
	real := write(t, "A=1\n", 0o644)
	link := filepath.Join(t.TempDir(), "link.env")
	if err := os.Symlink(real, link); err != nil {
		t.Fatal(err)
	}
	changed, err := Update(context.Background(), link, []Entry{{"A", "2"}})
	if !errors.Is(err, ErrSymlink) || !IsRefusal(err) || changed {
		t.Fatalf("Update through a link = %v, %v; want ErrSymlink", changed, err)
	}
	if fi, err := os.Lstat(link); err != nil || fi.Mode()&os.ModeSymlink == 0 {
		t.Fatalf("the link was replaced: %v", err)
	}
	if got := read(t, real); got != "A=1\n" {
		t.Fatalf("target = %q, want it unchanged", got)
	}
}

func TestDirectoryIsRefused(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "app.env")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if _, err := Update(context.Background(), dir, []Entry{{"A", "2"}}); !errors.Is(err, ErrNotRegular) {
		t.Fatalf("Update of a directory = %v, want ErrNotRegular", err)
	}
}

func TestOversizedFileIsRefused(t *testing.T) {
	path := write(t, "A=1\n"+strings.Repeat("# padding\n", MaxFileSize/10+1), 0o600)
	before := read(t, path)
	_, err := Update(context.Background(), path, []Entry{{"A", "2"}})
	if !errors.Is(err, ErrTooLarge) || !IsRefusal(err) {
		t.Fatalf("Update of a %d-byte file = %v, want ErrTooLarge", len(before), err)
	}
	if read(t, path) != before {
		t.Fatal("the oversized file was changed")
	}
	// Just under the cap is fine.
	small := write(t, "A=1\n"+strings.Repeat("#", MaxFileSize-100)+"\n", 0o600)
	update(t, small, "A", "2")
}

func TestQuote(t *testing.T) {
	for v, want := range map[string]string{
		"":                        "",
		"abc.DEF-123_x+/=":        "abc.DEF-123_x+/=",
		"a b":                     `"a b"`,
		"a#b":                     `"a#b"`,
		"it's":                    `"it's"`,
		"cost $5":                 `'cost $5'`,
		`back\slash`:              `'back\slash'`,
		`say "hi"`:                `'say "hi"'`,
		`it's "$HOME" \ ` + "`x`": `"it's \"\$HOME\" \\ \` + "`x\\`" + `"`,
	} {
		if got := Quote(v); got != want {
			t.Errorf("Quote(%q) = %s, want %s", v, got, want)
		}
	}
	path := write(t, "# x\n", 0o600)
	update(t, path, "SPACED", "a value # not a comment")
	if got := read(t, path); got != "# x\nSPACED=\"a value # not a comment\"\n" {
		t.Fatalf("file = %q", got)
	}
	// What was written is read back as the same value on the next update.
	update(t, path, "SPACED", "plain")
	if got := read(t, path); got != "# x\nSPACED=plain\n" {
		t.Fatalf("file = %q", got)
	}
}

func TestRefusesBadInput(t *testing.T) {
	path := write(t, "A=1\n", 0o600)
	for _, es := range [][]Entry{
		{{Key: "1A", Value: "x"}},
		{{Key: "A-B", Value: "x"}},
		{{Key: "A", Value: "line\nINJECTED=1"}},
	} {
		if _, err := Update(context.Background(), path, es); err == nil {
			t.Errorf("Update(%v) accepted", es)
		}
	}
	if _, err := Update(context.Background(), "relative/.env", []Entry{{Key: "A", Value: "x"}}); err == nil {
		t.Error("a relative path was accepted")
	}
	if _, err := Update(context.Background(), filepath.Join(t.TempDir(), "no-such-dir", ".env"), []Entry{{Key: "A", Value: "x"}}); err == nil {
		t.Error("a missing directory was accepted")
	}
	if got := read(t, path); got != "A=1\n" {
		t.Fatalf("file changed to %q", got)
	}
}

// A write that dies after the temporary file is complete but before the rename leaves
// the old file as it was, and no temporary file.
func TestCrashBeforeRenameKeepsOldFile(t *testing.T) {
	path := write(t, sample, 0o640)
	crash := errors.New("simulated crash")
	var tmpSeen string
	beforeRename = func(tmp string) error {
		tmpSeen = tmp
		b, _ := os.ReadFile(tmp)
		if !strings.Contains(string(b), "ZALO_ACCESS_TOKEN=new") {
			t.Errorf("temporary file lacks the new value")
		}
		return crash
	}
	defer func() { beforeRename = nil }()
	_, err := Update(context.Background(), path, []Entry{{Key: "ZALO_ACCESS_TOKEN", Value: "new"}})
	if !errors.Is(err, crash) {
		t.Fatalf("Update = %v, want the crash", err)
	}
	if got := read(t, path); got != sample {
		t.Fatalf("old file changed:\n%s", got)
	}
	if _, err := os.Stat(tmpSeen); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("temporary file %s left behind: %v", tmpSeen, err)
	}
	fi, _ := os.Stat(path)
	if fi.Mode().Perm() != 0o640 {
		t.Fatalf("mode %v", fi.Mode().Perm())
	}
}

// 20 goroutines update 5 keys of one file (4 goroutines per key, 10 writes each): no
// update may be lost to another's read-modify-write, and nothing else may change.
func TestConcurrentWritersLoseNothing(t *testing.T) {
	const header = "# shared by five credentials\nOTHER=keep\n"
	path := write(t, header, 0o640)
	const goroutines, keys, rounds = 20, 5, 10
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			key := fmt.Sprintf("KEY_%d", g%keys)
			for r := range rounds {
				v := fmt.Sprintf("g%02d-r%02d", g, r)
				beforeRenameHookFree(t)
				if _, err := Update(context.Background(), path, []Entry{{Key: key, Value: v}}); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	got := read(t, path)
	if !strings.HasPrefix(got, header) {
		t.Fatalf("other lines changed:\n%s", got)
	}
	lines := strings.Split(strings.TrimSuffix(strings.TrimPrefix(got, header), "\n"), "\n")
	if len(lines) != keys {
		t.Fatalf("want %d key lines after the header, got:\n%s", keys, got)
	}
	seen := map[string]string{}
	for _, l := range lines {
		k, v, _ := strings.Cut(l, "=")
		seen[k] = v
	}
	for k := range keys {
		key := fmt.Sprintf("KEY_%d", k)
		v, ok := seen[key]
		if !ok {
			t.Errorf("%s lost", key)
			continue
		}
		// The value is one its own goroutines wrote in their final round.
		if !strings.HasSuffix(v, fmt.Sprintf("-r%02d", rounds-1)) {
			t.Errorf("%s=%s, want a final-round value", key, v)
		}
		var g int
		if _, err := fmt.Sscanf(v, "g%02d", &g); err != nil || g%keys != k {
			t.Errorf("%s=%s was written by another key's goroutine", key, v)
		}
	}
}

func beforeRenameHookFree(t *testing.T) {
	if beforeRename != nil {
		t.Error("test hook left set")
	}
}

// Two processes (this test binary run again as a helper) update different keys of one
// file at once: the flock on the sidecar keeps either from losing the other's keys.
func TestTwoProcessesLoseNothing(t *testing.T) {
	if os.Getenv("ENVFILE_HELPER_PATH") != "" {
		t.Skip("helper mode")
	}
	path := write(t, "# two processes\n", 0o600)
	const rounds = 40
	start := time.Now().Add(300 * time.Millisecond)
	var cmds []*exec.Cmd
	for _, prefix := range []string{"P", "Q"} {
		cmd := exec.Command(os.Args[0], "-test.run=^TestHelperProcess$")
		cmd.Env = append(os.Environ(), "ENVFILE_HELPER_PATH="+path, "ENVFILE_HELPER_PREFIX="+prefix,
			fmt.Sprintf("ENVFILE_HELPER_ROUNDS=%d", rounds), fmt.Sprintf("ENVFILE_HELPER_START=%d", start.UnixNano()))
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		cmds = append(cmds, cmd)
	}
	for _, c := range cmds {
		if err := c.Wait(); err != nil {
			t.Fatalf("helper: %v", err)
		}
	}
	got := read(t, path)
	for _, p := range []string{"P", "Q"} {
		for i := range rounds {
			if !strings.Contains(got, fmt.Sprintf("%s_%02d=v\n", p, i)) {
				t.Fatalf("%s_%02d lost:\n%s", p, i, got)
			}
		}
	}
}

// TestHelperProcess is the other process of TestTwoProcessesLoseNothing.
func TestHelperProcess(t *testing.T) {
	path := os.Getenv("ENVFILE_HELPER_PATH")
	if path == "" {
		t.Skip("only run as a helper")
	}
	var rounds int
	var startNs int64
	fmt.Sscan(os.Getenv("ENVFILE_HELPER_ROUNDS"), &rounds)
	fmt.Sscan(os.Getenv("ENVFILE_HELPER_START"), &startNs)
	time.Sleep(time.Until(time.Unix(0, startNs)))
	for i := range rounds {
		key := fmt.Sprintf("%s_%02d", os.Getenv("ENVFILE_HELPER_PREFIX"), i)
		if _, err := Update(context.Background(), path, []Entry{{Key: key, Value: "v"}}); err != nil {
			t.Fatal(err)
		}
	}
}

func TestWaitForLockEndsWithContext(t *testing.T) {
	path := write(t, "A=1\n", 0o600)
	unlock, err := lockPath(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	defer unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := Update(ctx, path, []Entry{{Key: "A", Value: "2"}}); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Update = %v, want a deadline error", err)
	}
}
