//go:build unix && !linux

package fabricnet

import "syscall"

// sysProcAttr runs a node in its own process group. Only Linux has a
// parent-death signal; elsewhere a killed parent leaves the nodes running.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}
