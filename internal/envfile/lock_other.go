//go:build !unix

package envfile

import (
	"context"
	"io/fs"
	"os"
)

// flockSidecar: no OS-level lock on this platform; the in-process lock still applies.
func flockSidecar(context.Context, string) (func(), error) { return func() {}, nil }

func keepOwner(*os.File, fs.FileInfo) error { return nil }
