//go:build linux

package pgtest

import "syscall"

// sysProcAttr kills the server with the test binary, and runs it as cred
// when not nil (Postgres refuses to run as root).
func sysProcAttr(cred *syscall.Credential) *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Credential: cred}
}
