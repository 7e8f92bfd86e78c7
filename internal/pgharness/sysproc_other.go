//go:build unix && !linux

package pgharness

import "syscall"

// sysProcAttr runs the child in its own process group so that a Ctrl-C on the
// terminal does not reach postgres before we stop it. Without Linux's
// Pdeathsig, a postgres whose parent is killed -9 keeps running.
func sysProcAttr(cred *syscall.Credential) *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Credential: cred}
}
