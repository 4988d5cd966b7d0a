package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"syscall"
)

// runner implements testbed.T for a program: Fatal panics with a fatal value
// that scope recovers, and cleanups run LIFO when their scope ends, when the
// program ends, or on SIGINT/SIGTERM, so no mock, Envoy or tokenmeter is
// left running whatever happens. Fatal must be called on the goroutine that
// runs the scope; the load goroutines never call it.
type runner struct {
	log    io.Writer
	tmp    string
	ntmp   atomic.Int64
	failed atomic.Bool

	mu       sync.Mutex
	cleanups []func()
}

type fatal struct{ msg string }

func newRunner(log io.Writer) (*runner, error) {
	tmp, err := os.MkdirTemp("", "tmbench-")
	if err != nil {
		return nil, err
	}
	r := &runner{log: log, tmp: tmp}
	r.Cleanup(func() { os.RemoveAll(tmp) }) // first in, so it runs last
	return r, nil
}

func (r *runner) Helper() {}

func (r *runner) Fatal(args ...any) { r.fail(fmt.Sprint(args...)) }

func (r *runner) Fatalf(format string, args ...any) { r.fail(fmt.Sprintf(format, args...)) }

func (r *runner) fail(msg string) {
	r.failed.Store(true)
	panic(fatal{msg})
}

// Logf keeps the tail of long messages (testbed dumps whole process
// outputs on failure, and Envoy's access log has a line per request).
func (r *runner) Logf(format string, args ...any) {
	const keep = 16 << 10
	s := fmt.Sprintf(format, args...)
	if len(s) > keep {
		s = fmt.Sprintf("[... %d bytes cut ...]\n%s", len(s)-keep, s[len(s)-keep:])
	}
	fmt.Fprintln(r.log, s)
}

func (r *runner) Cleanup(f func()) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.cleanups = append(r.cleanups, f)
}

func (r *runner) TempDir() string {
	dir, err := os.MkdirTemp(r.tmp, fmt.Sprintf("%03d-", r.ntmp.Add(1)))
	if err != nil {
		r.Fatal(err)
	}
	return dir
}

func (r *runner) Failed() bool { return r.failed.Load() }

func (r *runner) mark() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.cleanups)
}

// cleanupTo runs, newest first, the cleanups registered after mark. Each
// runs once even when the signal handler races the main goroutine.
func (r *runner) cleanupTo(mark int) {
	for {
		r.mu.Lock()
		if len(r.cleanups) <= mark {
			r.mu.Unlock()
			return
		}
		f := r.cleanups[len(r.cleanups)-1]
		r.cleanups = r.cleanups[:len(r.cleanups)-1]
		r.mu.Unlock()
		func() {
			defer func() {
				if v := recover(); v != nil {
					fmt.Fprintf(r.log, "cleanup: %v\n", v)
				}
			}()
			f()
		}()
	}
}

// scope runs fn and then the cleanups it registered; a Fatal or a panic in
// fn becomes the error.
func (r *runner) scope(fn func()) (err error) {
	mark := r.mark()
	r.failed.Store(false)
	defer r.cleanupTo(mark)
	defer func() {
		switch v := recover().(type) {
		case nil:
		case fatal:
			err = errors.New(v.msg)
		default:
			r.failed.Store(true)
			err = fmt.Errorf("panic: %v\n%s", v, debug.Stack())
		}
	}()
	fn()
	return nil
}

// onSignal stops everything on SIGINT or SIGTERM and exits.
func (r *runner) onSignal() (stop func()) {
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, os.Interrupt, syscall.SIGTERM)
	done := make(chan struct{})
	go func() {
		select {
		case sig := <-ch:
			fmt.Fprintf(r.log, "tmbench: %v: stopping the stack\n", sig)
			r.cleanupTo(0)
			os.Exit(130)
		case <-done:
		}
	}()
	return func() { signal.Stop(ch); close(done) }
}
