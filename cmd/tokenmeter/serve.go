package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"

	"github.com/tokenmeter/tokenmeter/daemon"
)

func serve(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var level slog.Level
	cfg, err := loadConfig("serve", args, stderr, func(fs *flag.FlagSet) {
		fs.TextVar(&level, "log-level", slog.LevelInfo, "log `level`: debug, info, warn, error")
	})
	if err != nil {
		return err
	}
	log := slog.New(slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: level}))
	return daemon.Run(ctx, cfg, log, func(a daemon.Addrs) {
		// One line on stdout once both listeners are bound, for scripts and tests.
		fmt.Fprintf(stdout, "tokenmeter ready grpc=%s admin=%s\n", a.GRPC, a.Admin)
	})
}
