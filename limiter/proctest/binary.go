package proctest

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// ErrNotFound is returned by FindBinary when a program is nowhere to be found.
var ErrNotFound = errors.New("binary not found")

// FindBinary locates a program: the path in envVar if set, then the
// repository's .bin/ (where the Makefile builds pinned tools), then PATH.
func FindBinary(name, envVar string) (string, error) {
	if p := os.Getenv(envVar); p != "" {
		return p, nil
	}
	if root, err := RepoRoot(); err == nil {
		p := filepath.Join(root, ".bin", name)
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	return "", fmt.Errorf("%w: %s (set %s, put it in the repository's .bin/ or on PATH)", ErrNotFound, name, envVar)
}

// RepoRoot finds the directory holding go.work, walking up from the working
// directory.
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.work")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("go.work not found above the working directory")
		}
		dir = parent
	}
}

// Missing is the one rule for a test whose binary is missing (err from
// FindBinary, which names it): when CI is set to anything the test fails,
// so a green CI run cannot hide a skipped suite; elsewhere it is skipped.
func Missing(tb testing.TB, err error) {
	tb.Helper()
	if os.Getenv("CI") != "" {
		tb.Fatalf("%v (CI is set: a missing binary fails the test)", err)
	}
	tb.Skipf("skipped: %v", err)
}
