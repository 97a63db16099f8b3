package devstack

import (
	"os/exec"
	"syscall"
)

// dieWithParent makes the kernel kill the child when this process dies, so a
// crashed test or dev stack leaves no server behind.
func dieWithParent(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
