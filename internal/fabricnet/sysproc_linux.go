package fabricnet

import "syscall"

// sysProcAttr runs a node in its own process group, so that a Ctrl-C on the
// terminal does not reach it before Stop does, and asks the kernel to send it
// SIGTERM if we die without stopping it (kill -9, a test panic).
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
}
