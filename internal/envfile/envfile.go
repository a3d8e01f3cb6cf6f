// Package envfile updates KEY=value lines of dotenv files (the .env files that Docker
// Compose, systemd's EnvironmentFile, and shell scripts read) in place, the way a person
// editing the file would: other lines, comments, blank lines, ordering, line endings and
// the file's mode and owner are kept; a key that is missing is added at the end.
//
// Every write replaces the file atomically: the new content goes to a temporary file in
// the same directory, which gets the original's mode and owner, is synced to disk, and
// is renamed over the original. A reader sees the old file or the new one, never a
// mixture, and a crash at any point leaves the old file intact (at worst a stray
// temporary file ".NAME.tmp-*" next to it).
//
// Update refuses a symbolic link, anything but a regular file, and a file over
// MaxFileSize (see Update for what is checked and when).
//
// Writers of one file exclude each other twice over: an in-process lock keyed by the
// file's path (credentials of one worker that share a file), and an OS-level
// flock(2) on a sidecar lock file ".NAME.lock" in the same directory (two worker
// processes on one machine). The sidecar exists because the file itself is replaced on
// every write: a lock on the old inode would not exclude a writer that opened the new
// one. Each writer reads the file under the locks, so concurrent updates of different
// keys never lose each other's.
//
// Because the file is replaced, a process that holds it open keeps reading the old
// content, and a Docker bind mount of the single file keeps showing the old inode:
// mount the directory instead.
package envfile

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// Entry is one key and the value to give it.
type Entry struct {
	Key   string
	Value string
}

// MaxKeyLen bounds a key.
const MaxKeyLen = 256

// NewFileMode is the mode of a file that did not exist: it holds secrets.
const NewFileMode fs.FileMode = 0o600

// ValidKey reports whether k may be written: a shell variable name, [A-Za-z_][A-Za-z0-9_]*.
func ValidKey(k string) bool {
	if k == "" || len(k) > MaxKeyLen {
		return false
	}
	for i := 0; i < len(k); i++ {
		c := k[i]
		if c == '_' || 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || (i > 0 && '0' <= c && c <= '9') {
			continue
		}
		return false
	}
	return true
}

// CheckValue refuses values that no dotenv reader can take on one line: control
// characters (newlines included) and NUL.
func CheckValue(v string) error {
	if strings.ContainsFunc(v, func(r rune) bool { return r < ' ' || r == 0x7f }) {
		return errors.New("value contains a control character or newline")
	}
	return nil
}

// Quote renders v for the right-hand side of KEY=. The rule, chosen so that Docker
// Compose, systemd, `docker run --env-file` (which takes the rest of the line literally)
// and a POSIX shell that sources the file all read the same value whenever they can:
//
//   - empty, or made only of letters, digits and _ - . : / + = @ % , ~ ^ (every
//     base64, base64url, hex and JWT token): written bare;
//   - otherwise, if it holds no " \ $ ` (e.g. spaces, # or '): in double quotes;
//   - otherwise, if it holds no ': in single quotes (no interpolation anywhere);
//   - otherwise: in double quotes, with \ " $ ` escaped by a backslash.
//
// Only bare values are read identically by `docker run --env-file`, which does not
// strip quotes; tokens are always bare.
func Quote(v string) string {
	bare := true
	for i := 0; i < len(v); i++ {
		c := v[i]
		if 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || strings.IndexByte("_-.:/+=@%,~^", c) >= 0 {
			continue
		}
		bare = false
		break
	}
	switch {
	case bare:
		return v
	case !strings.ContainsAny(v, "\"\\$`"):
		return `"` + v + `"`
	case !strings.Contains(v, "'"):
		return "'" + v + "'"
	default:
		var b strings.Builder
		b.WriteByte('"')
		for _, r := range v {
			if strings.ContainsRune("\"\\$`", r) {
				b.WriteByte('\\')
			}
			b.WriteRune(r)
		}
		b.WriteByte('"')
		return b.String()
	}
}

// MaxFileSize bounds the file Update reads and rewrites. A dotenv file holds a few
// dozen short lines; a megabyte is thousands of times that, yet small enough that a
// sink pointed by mistake at a log or a database is refused instead of being read
// into memory and rewritten on every refresh.
const MaxFileSize = 1 << 20

// Refusals: the file at the path is not one Update will touch. Retrying cannot help;
// the operator must change the file or the sink.
var (
	// ErrSymlink: the path's final component is a symbolic link.
	ErrSymlink = errors.New("is a symbolic link, which is not followed")
	// ErrNotRegular: the path names a directory, FIFO, socket or device.
	ErrNotRegular = errors.New("is not a regular file")
	// ErrTooLarge: the file is bigger than MaxFileSize.
	ErrTooLarge = fmt.Errorf("is larger than %d bytes", MaxFileSize)
)

// IsRefusal reports whether err is one of Update's refusals (ErrSymlink,
// ErrNotRegular, ErrTooLarge), as opposed to a failure a retry may cure.
func IsRefusal(err error) bool {
	return errors.Is(err, ErrSymlink) || errors.Is(err, ErrNotRegular) || errors.Is(err, ErrTooLarge)
}

// Update sets each entry's key in the dotenv file at path and reports whether the file
// changed (it is not rewritten when every key already has its value). path must be
// absolute; its directory must exist. A missing file is created with mode 0600.
//
// What is checked, before anything is read: the final component must not be a
// symbolic link (lstat, then open with O_NOFOLLOW, so a link swapped in between is
// refused too), the file must be a regular file (lstat, then fstat of what was opened,
// which must be the file lstat saw; the open is non-blocking, so a FIFO swapped in
// cannot hang it), and it must hold at most MaxFileSize bytes. Links among the
// directories above are followed: a caller that restricts where files may be written
// resolves the directory first and passes the resolved path (activities/sinkpath.go).
//
// The caller's context bounds the wait for the locks; every return releases them.
func Update(ctx context.Context, path string, entries []Entry) (changed bool, err error) {
	if !filepath.IsAbs(path) {
		return false, fmt.Errorf("envfile: %s: path must be absolute", path)
	}
	for _, e := range entries {
		if !ValidKey(e.Key) {
			return false, fmt.Errorf("envfile: key %q is not a variable name ([A-Za-z_][A-Za-z0-9_]*)", e.Key)
		}
		if err := CheckValue(e.Value); err != nil {
			return false, fmt.Errorf("envfile: %s: %s: %w", path, e.Key, err)
		}
	}
	target := filepath.Clean(path)
	// Refuse what is plainly unfit before taking a lock: a link or a FIFO is never
	// worth a sidecar lock file beside it.
	if _, err := statTarget(target); err != nil {
		return false, err
	}
	unlock, err := lockPath(ctx, target)
	if err != nil {
		return false, err
	}
	defer unlock()

	old, info, err := readTarget(target)
	if err != nil {
		return false, err
	}
	exists := info != nil
	updated := Rewrite(old, entries)
	if exists && bytes.Equal(updated, old) {
		return false, nil
	}
	if len(updated) > MaxFileSize {
		return false, fmt.Errorf("envfile: %s: the updated file %w", target, ErrTooLarge)
	}
	if err := writeAtomic(target, updated, info); err != nil {
		return false, err
	}
	return true, nil
}

// statTarget lstats target and refuses a link, anything but a regular file, and a
// file over MaxFileSize. A missing target is fine (nil info) if its directory exists.
func statTarget(target string) (fs.FileInfo, error) {
	li, err := os.Lstat(target)
	if errors.Is(err, fs.ErrNotExist) {
		if _, err := os.Stat(filepath.Dir(target)); err != nil {
			return nil, fmt.Errorf("envfile: directory of %s: %w", target, err)
		}
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("envfile: %w", err)
	}
	if err := checkInfo(target, li); err != nil {
		return nil, err
	}
	return li, nil
}

func checkInfo(target string, fi fs.FileInfo) error {
	switch {
	case fi.Mode()&fs.ModeSymlink != 0:
		return fmt.Errorf("envfile: %s %w", target, ErrSymlink)
	case !fi.Mode().IsRegular():
		return fmt.Errorf("envfile: %s %w (%s)", target, ErrNotRegular, fi.Mode().Type())
	case fi.Size() > MaxFileSize:
		return fmt.Errorf("envfile: %s %w (%d bytes)", target, ErrTooLarge, fi.Size())
	}
	return nil
}

// readTarget reads target under the locks: its content and its fstat info, or
// (nil, nil) if it does not exist. It opens without following a link and without
// blocking, and checks what it opened before reading a byte.
func readTarget(target string) ([]byte, fs.FileInfo, error) {
	li, err := statTarget(target)
	if err != nil || li == nil {
		return nil, nil, err
	}
	f, err := os.OpenFile(target, os.O_RDONLY|openNoFollow, 0)
	if err != nil {
		if isLinkRefusal(err) {
			return nil, nil, fmt.Errorf("envfile: %s %w", target, ErrSymlink)
		}
		return nil, nil, fmt.Errorf("envfile: open %s: %w", target, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, nil, fmt.Errorf("envfile: %w", err)
	}
	if err := checkInfo(target, fi); err != nil {
		return nil, nil, err
	}
	if !os.SameFile(li, fi) {
		// Replaced between the lstat and the open: a retry looks again.
		return nil, nil, fmt.Errorf("envfile: %s was replaced while being opened", target)
	}
	// The file may grow after the fstat: read one byte more than allowed to see it.
	data, err := io.ReadAll(io.LimitReader(f, MaxFileSize+1))
	if err != nil {
		return nil, nil, fmt.Errorf("envfile: read %s: %w", target, err)
	}
	if len(data) > MaxFileSize {
		return nil, nil, fmt.Errorf("envfile: %s %w", target, ErrTooLarge)
	}
	return data, fi, nil
}

// locks holds one in-process lock per path: a channel of capacity one, so a
// waiter can give up when its context ends.
var locks sync.Map // string -> chan struct{}

// lockPoll is how often a writer waiting for another process's flock tries again.
const lockPoll = 5 * time.Millisecond

func lockPath(ctx context.Context, target string) (unlock func(), err error) {
	v, _ := locks.LoadOrStore(target, make(chan struct{}, 1))
	sem := v.(chan struct{})
	select {
	case sem <- struct{}{}:
	case <-ctx.Done():
		return nil, fmt.Errorf("envfile: waiting for the lock on %s: %w", target, ctx.Err())
	}
	release, err := flockSidecar(ctx, lockFileName(target))
	if err != nil {
		<-sem
		return nil, err
	}
	return func() {
		release()
		<-sem
	}, nil
}

// lockFileName is the sidecar lock file of target: ".NAME.lock" in the same directory.
func lockFileName(target string) string {
	return filepath.Join(filepath.Dir(target), "."+filepath.Base(target)+".lock")
}

// beforeRename, when set by a test, runs between writing the temporary file and the
// rename; an error aborts the write there, as a crash would.
var beforeRename func(tmp string) error

// writeAtomic replaces target with data. info is the original file's (nil if none):
// its mode and owner are given to the new file.
func writeAtomic(target string, data []byte, info fs.FileInfo) (err error) {
	dir := filepath.Dir(target)
	f, err := os.CreateTemp(dir, "."+filepath.Base(target)+".tmp-*")
	if err != nil {
		return fmt.Errorf("envfile: create a temporary file next to %s: %w", target, err)
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			_ = f.Close()
			_ = os.Remove(tmp)
		}
	}()
	mode := NewFileMode
	if info != nil {
		mode = info.Mode() & (fs.ModePerm | fs.ModeSetuid | fs.ModeSetgid | fs.ModeSticky)
		if err := keepOwner(f, info); err != nil {
			return fmt.Errorf("envfile: %s: keep the owner: %w (run the worker as the file's owner, or as root)", target, err)
		}
	}
	// Chmod after chown: chown may clear the set-id bits. Chmod is exact (no umask).
	if err := f.Chmod(mode); err != nil {
		return fmt.Errorf("envfile: %s: set the mode: %w", target, err)
	}
	if _, err := f.Write(data); err != nil {
		return fmt.Errorf("envfile: write %s: %w", tmp, err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("envfile: sync %s: %w", tmp, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("envfile: close %s: %w", tmp, err)
	}
	if beforeRename != nil {
		if err := beforeRename(tmp); err != nil {
			return err
		}
	}
	if err := os.Rename(tmp, target); err != nil {
		return fmt.Errorf("envfile: replace %s: %w", target, err)
	}
	// Make the rename itself durable. A failure here is reported but the file is
	// already in place.
	if d, err := os.Open(dir); err == nil {
		serr := d.Sync()
		_ = d.Close()
		if serr != nil && !errors.Is(serr, errors.ErrUnsupported) {
			return fmt.Errorf("envfile: sync the directory of %s: %w", target, serr)
		}
	}
	return nil
}

// Rewrite returns data with every entry's key set: each KEY= line (also "export KEY=",
// indented, or with spaces before "=") gets the new value, keeping an inline comment
// after it; every occurrence of a duplicated key is set, so no stale one survives.
// Keys not found are appended, in order, with the file's line ending. A quoted value
// that spans lines is treated as one value.
func Rewrite(data []byte, entries []Entry) []byte {
	want := map[string]string{}
	var order []string
	for _, e := range entries {
		if _, dup := want[e.Key]; !dup {
			order = append(order, e.Key)
		}
		want[e.Key] = e.Value
	}
	eol := "\n"
	if bytes.Contains(data, []byte("\r\n")) {
		eol = "\r\n"
	}
	var out strings.Builder
	done := map[string]bool{}
	lines := strings.SplitAfter(string(data), "\n")
	var inQuote byte // a value of another key continues on this line
	skip := false    // the continuation belongs to a replaced value: drop it
	for _, line := range lines {
		if line == "" {
			continue
		}
		body, term := splitEOL(line)
		if inQuote != 0 {
			if closes(body, inQuote) {
				inQuote = 0
			}
			if !skip {
				out.WriteString(line)
			}
			continue
		}
		skip = false
		key, prefix, value, ok := parseAssignment(body)
		if !ok {
			out.WriteString(line)
			continue
		}
		open, rest := splitValue(value)
		if v, hit := want[key]; hit {
			out.WriteString(prefix + Quote(v) + rest + term)
			done[key] = true
			if open != 0 {
				inQuote, skip = open, true
				if term == "" {
					inQuote = 0
				}
			}
			continue
		}
		out.WriteString(line)
		inQuote = open
	}
	s := out.String()
	for _, k := range order {
		if done[k] {
			continue
		}
		if s != "" && !strings.HasSuffix(s, "\n") {
			s += eol
		}
		s += k + "=" + Quote(want[k]) + eol
	}
	return []byte(s)
}

func splitEOL(line string) (body, term string) {
	switch {
	case strings.HasSuffix(line, "\r\n"):
		return line[:len(line)-2], "\r\n"
	case strings.HasSuffix(line, "\n"):
		return line[:len(line)-1], "\n"
	}
	return line, ""
}

// parseAssignment splits `  export KEY = value` into the key, the text up to and
// including "=" (kept as written), and the value text.
func parseAssignment(body string) (key, prefix, value string, ok bool) {
	i := 0
	for i < len(body) && (body[i] == ' ' || body[i] == '\t') {
		i++
	}
	if strings.HasPrefix(body[i:], "export ") {
		i += len("export ")
		for i < len(body) && (body[i] == ' ' || body[i] == '\t') {
			i++
		}
	}
	start := i
	for i < len(body) && (body[i] == '_' || 'A' <= body[i] && body[i] <= 'Z' || 'a' <= body[i] && body[i] <= 'z' || '0' <= body[i] && body[i] <= '9') {
		i++
	}
	key = body[start:i]
	if !ValidKey(key) {
		return "", "", "", false
	}
	for i < len(body) && (body[i] == ' ' || body[i] == '\t') {
		i++
	}
	if i >= len(body) || body[i] != '=' {
		return "", "", "", false
	}
	i++
	for i < len(body) && (body[i] == ' ' || body[i] == '\t') {
		i++
	}
	return key, body[:i], body[i:], true
}

// splitValue finds where an existing value ends. It returns the quote character if a
// quoted value does not close on this line, and what follows the value (an inline
// comment with the blanks before it, or nothing).
func splitValue(v string) (open byte, rest string) {
	if v == "" {
		return 0, ""
	}
	if q := v[0]; q == '"' || q == '\'' {
		end := closingQuote(v[1:], q)
		if end < 0 {
			return q, ""
		}
		return 0, trailingComment(v[1+end+1:])
	}
	// Unquoted: a comment starts at a '#' preceded by a blank.
	for i := 1; i < len(v); i++ {
		if v[i] == '#' && (v[i-1] == ' ' || v[i-1] == '\t') {
			j := i
			for j > 0 && (v[j-1] == ' ' || v[j-1] == '\t') {
				j--
			}
			return 0, v[j:]
		}
	}
	return 0, ""
}

// trailingComment keeps what follows a closing quote if it is a comment.
func trailingComment(s string) string {
	t := strings.TrimLeft(s, " \t")
	if strings.HasPrefix(t, "#") {
		return s
	}
	return ""
}

// closingQuote is the index in s of the quote q that ends a value, honouring
// backslash escapes inside double quotes; -1 if none.
func closingQuote(s string, q byte) int {
	for i := 0; i < len(s); i++ {
		if q == '"' && s[i] == '\\' {
			i++
			continue
		}
		if s[i] == q {
			return i
		}
	}
	return -1
}

func closes(body string, q byte) bool { return closingQuote(body, q) >= 0 }
