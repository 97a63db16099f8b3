package devtest

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/sluice-ingest/sluice/pkg/dev/devstack"
)

// Proc is a program started by a test, with its output captured.
type Proc struct {
	Name string
	bin  string
	env  []string
	out  *syncBuffer

	mu   sync.Mutex // guards the current run, which Restart replaces
	cmd  *exec.Cmd
	done chan struct{}
	err  error
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
	devstack.DieWithParent(cmd)
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", p.Name, err)
	}
	done := make(chan struct{})
	p.mu.Lock()
	p.cmd, p.done, p.err = cmd, done, nil
	p.mu.Unlock()
	go func() {
		err := cmd.Wait()
		p.mu.Lock()
		if p.cmd == cmd {
			p.err = err
		}
		p.mu.Unlock()
		close(done)
	}()
	return nil
}

// run is the current run: its process and the channel closed when it
// exits.
func (p *Proc) run() (*exec.Cmd, chan struct{}) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.cmd, p.done
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
func (p *Proc) Signal(sig os.Signal) {
	cmd, _ := p.run()
	_ = cmd.Process.Signal(sig)
}

// Kill ends the process with SIGKILL and waits for it.
func (p *Proc) Kill() {
	cmd, done := p.run()
	_ = cmd.Process.Kill()
	<-done
}

// Stop sends SIGTERM and waits up to grace before killing. It returns the
// process's exit error (nil for a clean exit).
func (p *Proc) Stop(grace time.Duration) error {
	_, done := p.run()
	select {
	case <-done:
		return p.exitErr()
	default:
	}
	p.Signal(syscall.SIGTERM)
	select {
	case <-done:
	case <-time.After(grace):
		p.Kill()
	}
	return p.exitErr()
}

func (p *Proc) exitErr() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.err
}

// PeakRSS is the process's peak resident set so far (VmHWM in
// /proc/<pid>/status), in bytes.
func (p *Proc) PeakRSS() (int64, error) {
	cmd, _ := p.run()
	b, err := os.ReadFile("/proc/" + strconv.Itoa(cmd.Process.Pid) + "/status")
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
	return 0, fmt.Errorf("peak RSS of %s: no VmHWM in /proc/%d/status", p.Name, cmd.Process.Pid)
}

// Done is closed when the process (its current run) has exited.
func (p *Proc) Done() <-chan struct{} {
	_, done := p.run()
	return done
}

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
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		resp, err := http.DefaultClient.Do(req)
		last := fmt.Sprint(err)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			last = resp.Status
		}
		select {
		case <-p.Done():
			return fmt.Errorf("%s exited before it was ready: %v", p.Name, p.exitErr())
		case <-ctx.Done():
			return fmt.Errorf("%s not ready at %s: %s", p.Name, url, last)
		case <-time.After(50 * time.Millisecond):
		}
	}
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
	a, err := devstack.FreeAddr()
	if err != nil {
		t.Fatal(err)
	}
	return a
}
