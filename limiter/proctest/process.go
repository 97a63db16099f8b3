package proctest

import (
	"os"
	"os/exec"
	"time"
)

// Process is one started child process whose exit is watched: Done is
// closed when it has exited, and Err is then its exit error.
type Process struct {
	cmd  *exec.Cmd
	done chan struct{}
	err  error // set before done is closed
}

// Start starts cmd, which dies with this process on Linux (DieWithParent).
// The error is cmd.Start's, for the caller to say what it was starting.
func Start(cmd *exec.Cmd) (*Process, error) {
	DieWithParent(cmd)
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	p := &Process{cmd: cmd, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

// Pid is the process id.
func (p *Process) Pid() int { return p.cmd.Process.Pid }

// Done is closed when the process has exited.
func (p *Process) Done() <-chan struct{} { return p.done }

// Exited reports whether the process has exited.
func (p *Process) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Err is the exit error (nil for a clean exit), or nil while it runs.
func (p *Process) Err() error {
	if !p.Exited() {
		return nil
	}
	return p.err
}

// Signal sends sig; a process that has exited is left alone.
func (p *Process) Signal(sig os.Signal) { _ = p.cmd.Process.Signal(sig) }

// Kill ends the process with SIGKILL and waits until it has exited.
func (p *Process) Kill() {
	_ = p.cmd.Process.Kill()
	<-p.done
}

// Stop sends sig (the program's own way to stop: SIGTERM, or SIGINT) and
// kills the process if it has not exited after grace. It returns the exit
// error.
func (p *Process) Stop(sig os.Signal, grace time.Duration) error {
	if p.Exited() {
		return p.err
	}
	p.Signal(sig)
	select {
	case <-p.done:
	case <-time.After(grace):
		p.Kill()
	}
	return p.err
}
