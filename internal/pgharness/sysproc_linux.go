package pgharness

import "syscall"

// sysProcAttr runs the child in its own process group, so that a Ctrl-C on
// the terminal (SIGINT to the foreground group) does not reach postgres
// before we stop it cleanly, and asks the kernel to send it SIGINT (fast
// shutdown) if its parent dies without stopping it, e.g. on kill -9 or a test
// panic. Pdeathsig is tied to the forking thread, not the process: see the
// LockOSThread in launch. The kernel clears Pdeathsig when credentials
// change, but Go sets it after switching to cred, so it survives.
func sysProcAttr(cred *syscall.Credential) *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGINT, Credential: cred}
}
