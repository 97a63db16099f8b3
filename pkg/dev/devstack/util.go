package devstack

import (
	"context"
	"os/exec"

	"github.com/sluice-ingest/sluice/limiter/proctest"
)

// The process and port helpers are limiter/proctest's, the one
// implementation every Sluice helper that runs servers shares; these names
// let the dev stack's programs and tests reach them through the dev stack.

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func FreePort() (int, error) { return proctest.FreePort() }

// FreeAddr returns 127.0.0.1:port for a port that was free a moment ago.
func FreeAddr() (string, error) { return proctest.FreeAddr() }

// RepoRoot finds the directory holding go.work, walking up from the working
// directory.
func RepoRoot() (string, error) { return proctest.RepoRoot() }

// ErrNotFound is returned by FindBinary when a program is nowhere to be found.
var ErrNotFound = proctest.ErrNotFound

// FindBinary locates a program: the path in envVar if set, then the
// repository's .bin/ (where the Makefile builds pinned tools), then PATH.
func FindBinary(name, envVar string) (string, error) { return proctest.FindBinary(name, envVar) }

// DieWithParent makes the kernel kill the child when this process dies, on
// Linux; elsewhere it does nothing (proctest.DieWithParent).
func DieWithParent(cmd *exec.Cmd) { proctest.DieWithParent(cmd) }

// WaitTCP waits until addr accepts TCP connections or ctx ends.
func WaitTCP(ctx context.Context, addr string) error { return proctest.WaitTCP(ctx, addr) }
