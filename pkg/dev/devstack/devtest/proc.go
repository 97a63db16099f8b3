package devtest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/sluice-ingest/sluice/limiter/proctest"
)

// Proc is a program started by a test, with its output captured.
type Proc struct {
	Name string
	bin  string
	env  []string
	out  *syncBuffer

	mu   sync.Mutex        // guards the current run, which Restart replaces
	proc *proctest.Process // the current run
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// Start runs bin with env (see Env). The process is stopped at cleanup, and
// its output is logged when the test failed.
func Start(t testing.TB, name, bin string, env map[string]string) *Proc {
	t.Helper()
	p := &Proc{Name: name, bin: bin, env: Env(env), out: &syncBuffer{}}
	if err := p.start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		p.Stop(10 * time.Second)
		if t.Failed() {
			t.Logf("--- output of %s:\n%s", name, p.Output())
		}
	})
	return p
}

func (p *Proc) start() error {
	cmd := exec.Command(p.bin)
	cmd.Env = p.env
	cmd.Stdout, cmd.Stderr = p.out, p.out
	proc, err := proctest.Start(cmd)
	if err != nil {
		return fmt.Errorf("start %s: %w", p.Name, err)
	}
	p.mu.Lock()
	p.proc = proc
	p.mu.Unlock()
	return nil
}

// run is the current run.
func (p *Proc) run() *proctest.Process {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.proc
}

// Restart kills the process if it still runs and starts the program again
// with the same environment (so on the same ports and files); its output
// goes on in the same log, after a line saying so. The caller waits for it
// to be ready (WaitReady).
func (p *Proc) Restart(t testing.TB) {
	t.Helper()
	p.Kill()
	fmt.Fprintf(p.out, "--- %s restarted at %s\n", p.Name, time.Now().UTC().Format(time.RFC3339Nano))
	if err := p.start(); err != nil {
		t.Fatal(err)
	}
}

// Output is what the process printed so far.
func (p *Proc) Output() string { return p.out.String() }

// Tail is the last n lines of a log.
func Tail(log string, n int) string {
	lines := strings.Split(strings.TrimRight(log, "\n"), "\n")
	if len(lines) > n {
		lines = append([]string{fmt.Sprintf("[%d earlier lines]", len(lines)-n)}, lines[len(lines)-n:]...)
	}
	return strings.Join(lines, "\n")
}

// Signal sends sig to the process.
func (p *Proc) Signal(sig os.Signal) { p.run().Signal(sig) }

// Kill ends the process with SIGKILL and waits for it.
func (p *Proc) Kill() { p.run().Kill() }

// Stop sends SIGTERM and waits up to grace before killing. It returns the
// process's exit error (nil for a clean exit).
func (p *Proc) Stop(grace time.Duration) error {
	return p.run().Stop(syscall.SIGTERM, grace)
}

// PeakRSS is the process's peak resident set so far (VmHWM in
// /proc/<pid>/status), in bytes.
func (p *Proc) PeakRSS() (int64, error) {
	pid := p.run().Pid()
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0, fmt.Errorf("peak RSS of %s: %w", p.Name, err)
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err != nil {
				return 0, fmt.Errorf("peak RSS of %s: %q: %w", p.Name, line, err)
			}
			return kb << 10, nil
		}
	}
	return 0, fmt.Errorf("peak RSS of %s: no VmHWM in /proc/%d/status", p.Name, pid)
}

// Done is closed when the process (its current run) has exited.
func (p *Proc) Done() <-chan struct{} { return p.run().Done() }

// WaitReady polls url until it answers 200, the process exits or 30s pass,
// and fails the test if it does not.
func WaitReady(t testing.TB, p *Proc, url string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	if err := Ready(ctx, p, url); err != nil {
		t.Fatalf("%v\n%s", err, p.Output())
	}
}

// Ready polls url until it answers 200 (nil), the process exits or ctx
// ends; for a caller that must not stop the test (a goroutine, or a test
// that reports more before failing).
func Ready(ctx context.Context, p *Proc, url string) error {
	run := p.run()
	err := proctest.WaitHTTP(ctx, url, 50*time.Millisecond, run.Done())
	switch {
	case errors.Is(err, proctest.ErrExited):
		return fmt.Errorf("%s exited before it was ready: %v", p.Name, run.Err())
	case err != nil:
		return fmt.Errorf("%s not ready at %s: %w", p.Name, url, err)
	}
	return nil
}

// Eventually polls cond every interval until it returns true or timeout
// passes, then fails with msg.
func Eventually(t testing.TB, timeout, interval time.Duration, cond func() bool, msg string) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after %s: %s", timeout, msg)
		}
		time.Sleep(interval)
	}
}

// Addr returns a free 127.0.0.1:port.
func Addr(t testing.TB) string {
	t.Helper()
	a, err := proctest.FreeAddr()
	if err != nil {
		t.Fatal(err)
	}
	return a
}
