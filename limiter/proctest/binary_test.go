package proctest

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// FindBinary looks in the named variable, then the repository's .bin/,
// then PATH.
func TestFindBinaryOrder(t *testing.T) {
	const name, env = "sluice-test-binary", "SLUICE_TEST_BINARY"
	repo, onPath := t.TempDir(), t.TempDir()
	for _, f := range []string{filepath.Join(repo, "go.work"), filepath.Join(repo, ".bin", name), filepath.Join(onPath, name)} {
		if err := os.MkdirAll(filepath.Dir(f), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(f, nil, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	sub := filepath.Join(repo, "pkg", "x")
	if err := os.MkdirAll(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Chdir(sub)
	t.Setenv("PATH", onPath)

	t.Setenv(env, "/from/the/variable")
	if p, err := FindBinary(name, env); err != nil || p != "/from/the/variable" {
		t.Errorf("with %s set: %q, %v", env, p, err)
	}
	t.Setenv(env, "")
	if p, err := FindBinary(name, env); err != nil || p != filepath.Join(repo, ".bin", name) {
		t.Errorf("with .bin/%s: %q, %v", name, p, err)
	}
	if err := os.Remove(filepath.Join(repo, ".bin", name)); err != nil {
		t.Fatal(err)
	}
	if p, err := FindBinary(name, env); err != nil || p != filepath.Join(onPath, name) {
		t.Errorf("on PATH: %q, %v", p, err)
	}
	t.Setenv("PATH", t.TempDir())
	_, err := FindBinary(name, env)
	if !errors.Is(err, ErrNotFound) {
		t.Errorf("nowhere: err = %v, want ErrNotFound", err)
	}
}

// recorder is a testing.TB that records Skipf and Fatalf, each ending the
// goroutine that called it as the real ones do, instead of ending the test.
type recorder struct {
	testing.TB
	skipped, failed string
}

func (r *recorder) Helper() {}

func (r *recorder) Skipf(f string, args ...any) {
	r.skipped = fmt.Sprintf(f, args...)
	runtime.Goexit()
}

func (r *recorder) Fatalf(f string, args ...any) {
	r.failed = fmt.Sprintf(f, args...)
	runtime.Goexit()
}

// A missing binary skips the test naming it, and fails it when CI is set to
// anything.
func TestMissingRule(t *testing.T) {
	err := fmt.Errorf("%w: redis-server", ErrNotFound)
	for ci, wantFail := range map[string]bool{"": false, "true": true, "1": true, "yes": true} {
		t.Setenv("CI", ci)
		r := &recorder{TB: t}
		done := make(chan struct{})
		go func() { defer close(done); Missing(r, err) }()
		<-done
		got := r.skipped
		if wantFail {
			got = r.failed
		}
		if got == "" || (r.skipped != "") == (r.failed != "") {
			t.Errorf("CI=%q: skipped %q, failed %q", ci, r.skipped, r.failed)
		}
		if !strings.Contains(got, "redis-server") {
			t.Errorf("CI=%q: %q does not name the binary", ci, got)
		}
	}
}
