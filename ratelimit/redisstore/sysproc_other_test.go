//go:build !linux

package redisstore

import "syscall"

func dieWithParent() *syscall.SysProcAttr { return nil }
