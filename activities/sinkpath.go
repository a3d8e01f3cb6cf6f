package activities

import (
	"fmt"
	"path/filepath"

	"github.com/tokenwarden/tokenwarden/internal/config"
)

// envSinkPath decides whether an env sink may write the file at path on this worker,
// and returns the path to hand to envfile.Update: path with its directory's symbolic
// links resolved. A refusal is a *SinkRefusedError; a directory that cannot be
// resolved (missing, say: a mount that is not there yet) is a plain error, retried.
//
// CheckSinks has checked path's form when the workflow started; only the worker knows
// its own directories, so the rest is checked here, on every write:
//
//   - the resolved directory must lie inside one of EnvSinkDirs (each resolved too),
//     comparing whole components: a link in an allowed directory that points outside
//     it does not let a sink out;
//   - neither path nor its resolved form may lie inside one of EnvSinkProtected (as
//     given or resolved), even when an allowed directory contains it;
//   - the final component is left to envfile.Update, which never follows a link
//     there.
//
// A directory swapped for a link between this check and the write is not caught:
// whoever can do that can already write in an allowed directory.
func (a *Activities) envSinkPath(path string) (string, error) {
	if len(a.EnvSinkDirs) == 0 {
		return "", &SinkRefusedError{msg: fmt.Sprintf("env sinks are off on this worker: set %s_SINK_DIRS to the directories they may write in", config.Prefix)}
	}
	path = filepath.Clean(path)
	dir, err := filepath.EvalSymlinks(filepath.Dir(path))
	if err != nil {
		return "", fmt.Errorf("directory of %s: %w", path, err)
	}
	resolved := filepath.Join(dir, filepath.Base(path))
	for _, p := range a.EnvSinkProtected {
		if config.PathWithin(p, path) || config.PathWithin(p, resolved) ||
			config.PathWithin(resolvedOrSelf(p), path) || config.PathWithin(resolvedOrSelf(p), resolved) {
			return "", &SinkRefusedError{msg: fmt.Sprintf("%s is inside %s, which holds the worker's token store or key file: env sinks never write there", path, p)}
		}
	}
	for _, d := range a.EnvSinkDirs {
		rd := resolvedOrSelf(d)
		if config.PathWithin(rd, resolved) && resolved != rd {
			return resolved, nil
		}
	}
	msg := fmt.Sprintf("%s is outside the directories env sinks may write in (%s_SINK_DIRS)", path, config.Prefix)
	if resolved != path {
		msg = fmt.Sprintf("%s (%s once its directory's links are followed) is outside the directories env sinks may write in (%s_SINK_DIRS)", path, resolved, config.Prefix)
	}
	return "", &SinkRefusedError{msg: msg}
}

// resolvedOrSelf is p with its links followed, or p itself if that fails (it does
// not exist yet, say): a protected directory is then still compared as written.
func resolvedOrSelf(p string) string {
	if r, err := filepath.EvalSymlinks(p); err == nil {
		return r
	}
	return p
}
