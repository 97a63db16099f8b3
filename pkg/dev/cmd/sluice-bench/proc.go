package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"syscall"
	"time"

	"github.com/sluice-ingest/sluice/limiter/proctest"
)

// proc is one server process the benchmark started and measures.
type proc struct {
	name    string
	process *proctest.Process
	log     string // file holding its output
}

// startProc runs bin with args and the environment env (on top of PATH and
// HOME), its output going to dir/<name>.log. The kernel kills it if this
// process dies (Pdeathsig), so nothing outlives the benchmark.
func startProc(name, dir, bin string, args []string, env map[string]string) (*proc, error) {
	logPath := filepath.Join(dir, name+".log")
	lf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME")}
	keys := make([]string, 0, len(env))
	for k := range env {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		cmd.Env = append(cmd.Env, k+"="+env[k])
	}
	cmd.Stdout, cmd.Stderr = lf, lf
	defer lf.Close() // the child has its own descriptor
	pp, err := proctest.Start(cmd)
	if err != nil {
		return nil, fmt.Errorf("start %s (%s): %w", name, bin, err)
	}
	return &proc{name: name, process: pp, log: logPath}, nil
}

func (p *proc) pid() int { return p.process.Pid() }

// exited reports whether the process has ended.
func (p *proc) exited() bool { return p.process.Exited() }

// stop sends SIGTERM and kills the process after grace.
func (p *proc) stop(grace time.Duration) {
	if p != nil {
		_ = p.process.Stop(syscall.SIGTERM, grace)
	}
}

// tail is the end of the process's output, for error messages.
func (p *proc) tail() string {
	b, _ := os.ReadFile(p.log)
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return string(b)
}

// waitHTTP polls url until it answers 200, the process exits or ctx ends.
func (p *proc) waitHTTP(ctx context.Context, url string) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	err := proctest.WaitHTTP(ctx, url, 50*time.Millisecond, p.process.Done())
	switch {
	case errors.Is(err, proctest.ErrExited):
		return fmt.Errorf("%s exited before it was ready (%v):\n%s", p.name, p.process.Err(), p.tail())
	case err != nil:
		return fmt.Errorf("%s not ready at %s: %w\n%s", p.name, url, err, p.tail())
	}
	return nil
}
