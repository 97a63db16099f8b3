package devstack

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"time"

	"github.com/sluice-ingest/sluice/limiter/redistest"
)

// The process helpers are limiter/redistest's, the one implementation every
// Sluice test helper shares; these names let the dev stack's programs use
// them without importing a test package.

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func FreePort() (int, error) { return redistest.FreePort() }

// FreeAddr returns 127.0.0.1:port for a port that was free a moment ago.
func FreeAddr() (string, error) { return redistest.FreeAddr() }

// RepoRoot finds the directory holding go.work, walking up from the working
// directory.
func RepoRoot() (string, error) { return redistest.RepoRoot() }

// ErrNotFound is returned by FindBinary when a program is nowhere to be found.
var ErrNotFound = redistest.ErrNotFound

// FindBinary locates a program: the path in envVar if set, then the
// repository's .bin/ (where the Makefile builds pinned tools), then PATH.
func FindBinary(name, envVar string) (string, error) { return redistest.FindBinary(name, envVar) }

// DieWithParent makes the kernel kill the child when this process dies, on
// Linux; elsewhere it does nothing (redistest.DieWithParent).
func DieWithParent(cmd *exec.Cmd) { redistest.DieWithParent(cmd) }

// WaitTCP waits until addr accepts TCP connections or ctx ends.
func WaitTCP(ctx context.Context, addr string) error {
	var d net.Dialer
	for {
		c, err := d.DialContext(ctx, "tcp", addr)
		if err == nil {
			return c.Close()
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait for %s: %w", addr, err)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// stopProcess asks a child to stop with an interrupt (SIGINT, which
// versitygw stops on) and kills it after grace.
func stopProcess(cmd *exec.Cmd, done <-chan struct{}, grace time.Duration) {
	if cmd.Process == nil {
		return
	}
	_ = cmd.Process.Signal(os.Interrupt)
	select {
	case <-done:
	case <-time.After(grace):
		_ = cmd.Process.Kill()
		<-done
	}
}
