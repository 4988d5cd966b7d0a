package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
)

// topOf renders a CPU profile as pprof's top table: by own time (flat) or
// by time including callees (cum).
func topOf(bin, profile string, cum bool) (string, error) {
	args := []string{"tool", "pprof", "-top", "-nodecount=25"}
	if cum {
		args = append(args, "-cum")
	}
	out, err := exec.Command("go", append(args, bin, profile)...).CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("go tool pprof: %w\n%s", err, out)
	}
	// Drop the file path lines, which name a temporary directory.
	var keep []string
	for _, l := range strings.Split(strings.TrimRight(string(out), "\n"), "\n") {
		if strings.HasPrefix(l, "File: ") || strings.HasPrefix(l, "Build ID: ") {
			continue
		}
		keep = append(keep, l)
	}
	return strings.Join(keep, "\n"), nil
}

func (e *env) renderProfile(o *outcome, profile string) error {
	var err error
	if o.flat, err = topOf(e.bin, profile, false); err != nil {
		return err
	}
	if o.cum, err = topOf(e.bin, profile, true); err != nil {
		return err
	}
	if o.shares, err = breakdownOf(e.bin, profile); err != nil {
		return err
	}
	if e.profiles == "" {
		return nil
	}
	if err := os.MkdirAll(e.profiles, 0o755); err != nil {
		return err
	}
	for _, f := range []string{profile, e.bin} {
		b, err := os.ReadFile(f)
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(e.profiles, filepath.Base(f)), b, 0o755); err != nil {
			return err
		}
	}
	return nil
}

// share is one line of the profile breakdown.
type share struct {
	What, Func string
	Flat       bool // own time rather than time including callees
	Pct        float64
}

// breakdownOf sorts tokenmeter's CPU into the places it goes: its own
// logic, gRPC, the Go runtime, system calls. The shares are pprof's
// (inclusive unless Flat) and overlap: system calls happen inside gRPC's
// writer, allocation inside everything.
func breakdownOf(bin, profile string) ([]share, error) {
	out, err := exec.Command("go", "tool", "pprof", "-top", "-cum", "-nodecount=100000", "-nodefraction=0", "-edgefraction=0",
		bin, profile).CombinedOutput()
	if err != nil {
		return nil, fmt.Errorf("go tool pprof: %w\n%s", err, out)
	}
	shares := []share{
		{What: "tokenmeter's own work per message (parse, reserve, decode, price)", Func: "github.com/tokenmeter/tokenmeter/extproc.(*exchange).handle"},
		{What: "settling and recording after the answer", Func: "github.com/tokenmeter/tokenmeter/extproc.(*exchange).afterSend"},
		{What: "gRPC: receiving and unmarshalling messages", Func: "google.golang.org/grpc.(*serverStream).RecvMsg"},
		{What: "gRPC: marshalling and queueing answers", Func: "google.golang.org/grpc.(*serverStream).SendMsg"},
		{What: "gRPC: the reader goroutine (HTTP/2 frames)", Func: "google.golang.org/grpc/internal/transport.(*http2Server).HandleStreams"},
		{What: "gRPC: the writer goroutine (socket writes)", Func: "google.golang.org/grpc/internal/transport.(*loopyWriter).run"},
		{What: "Go scheduler looking for work (idle, wake-ups, netpoll)", Func: "runtime.findRunnable"},
		{What: "heap allocation", Func: "runtime.mallocgc"},
		{What: "garbage collection (background marking)", Func: "runtime.gcBgMarkWorker"},
		{What: "inside system calls (read, write, epoll)", Func: "internal/runtime/syscall/linux.Syscall6", Flat: true},
		{What: "futex (waking and parking threads)", Func: "runtime.futex", Flat: true},
	}
	for _, line := range strings.Split(string(out), "\n") {
		// flat flat% sum% cum cum% name
		f := strings.Fields(line)
		if len(f) < 6 {
			continue
		}
		name := strings.Join(f[5:], " ")
		for i := range shares {
			if shares[i].Func != name {
				continue
			}
			col := f[4]
			if shares[i].Flat {
				col = f[1]
			}
			shares[i].Pct, _ = strconv.ParseFloat(strings.TrimSuffix(col, "%"), 64)
		}
	}
	return shares, nil
}
