package redistest

import "syscall"

// dieWithParent kills a test's redis-server when the test process dies
// without running its cleanups (a panic, a timeout).
func dieWithParent() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
