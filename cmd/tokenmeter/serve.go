package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime/pprof"

	"github.com/tokenmeter/tokenmeter/internal/daemon"
)

func serve(ctx context.Context, args []string, stdout, stderr io.Writer) (err error) {
	var level slog.Level
	var cpuProfile string
	cfg, err := loadConfig("serve", args, stderr, func(fs *flag.FlagSet) {
		fs.TextVar(&level, "log-level", slog.LevelInfo, "log `level`: debug, info, warn, error")
		// Opt-in, for the benchmark harness (bench/cmd/tmbench): the
		// profile covers the whole run and is written on shutdown.
		fs.StringVar(&cpuProfile, "cpuprofile", "", "write a CPU profile to `file` until shutdown")
	})
	if err != nil {
		return err
	}
	if cpuProfile != "" {
		stop, err := startCPUProfile(cpuProfile)
		if err != nil {
			return err
		}
		defer func() {
			if serr := stop(); err == nil {
				err = serr
			}
		}()
	}
	log := slog.New(slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: level}))
	return daemon.Run(ctx, cfg, log, func(a daemon.Addrs) {
		// One line on stdout once both listeners are bound, for scripts and tests.
		fmt.Fprintf(stdout, "tokenmeter ready grpc=%s admin=%s\n", a.GRPC, a.Admin)
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
