package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"runtime/pprof"

	"github.com/tokenmeter/tokenmeter/internal/daemon"
)

// serveCmd runs the ext_proc server until ctx ends.
type serveCmd struct {
	configFlag
	LogLevel slog.Level `name:"log-level" default:"info" placeholder:"LEVEL" help:"Log level: debug, info, warn, error (default: ${default})."`
	// Opt-in, for the benchmark harness (bench/cmd/tmbench): the profile
	// covers the whole run and is written on shutdown.
	CPUProfile string `name:"cpuprofile" placeholder:"FILE" help:"Write a CPU profile to FILE until shutdown."`
}

func (c *serveCmd) Run(ctx context.Context, s stdio) (err error) {
	cfg, err := c.load()
	if err != nil {
		return err
	}
	if c.CPUProfile != "" {
		stop, err := startCPUProfile(c.CPUProfile)
		if err != nil {
			return err
		}
		defer func() {
			if serr := stop(); err == nil {
				err = serr
			}
		}()
	}
	log := slog.New(slog.NewJSONHandler(s.err, &slog.HandlerOptions{Level: c.LogLevel}))
	return daemon.Run(ctx, cfg, log, func(a daemon.Addrs) {
		// One line on stdout once both listeners are bound, for scripts and tests.
		fmt.Fprintf(s.out, "tokenmeter ready grpc=%s admin=%s\n", a.GRPC, a.Admin)
	})
}

// startCPUProfile profiles into path; the returned func stops and closes it.
func startCPUProfile(path string) (func() error, error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("cpu profile: %w", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("cpu profile: %w", err)
	}
	return func() error {
		pprof.StopCPUProfile()
		if err := f.Close(); err != nil {
			return fmt.Errorf("cpu profile: %w", err)
		}
		return nil
	}, nil
}
