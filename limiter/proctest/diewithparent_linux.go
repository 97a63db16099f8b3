package proctest

import (
	"os/exec"
	"syscall"
)

// DieWithParent makes the kernel kill the child when this process dies (a
// test timeout, a crash, SIGKILL), so a crashed test or dev stack leaves no
// server behind. Elsewhere (macOS) it does nothing: a parent killed with
// SIGKILL leaves its children running, and only a graceful stop ends them.
func DieWithParent(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
