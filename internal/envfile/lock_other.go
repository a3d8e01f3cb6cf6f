//go:build !unix

package envfile

import (
	"context"
	"io/fs"
	"os"
)

// openNoFollow: no such flags here; Update's lstat and fstat checks still apply.
const openNoFollow = 0

func isLinkRefusal(error) bool { return false }

// flockSidecar: no OS-level lock on this platform; the in-process lock still applies.
func flockSidecar(context.Context, string) (func(), error) { return func() {}, nil }

func keepOwner(*os.File, fs.FileInfo) error { return nil }
