// Command mockllm serves the deterministic mock OpenAI Chat Completions API
// of package mockllm, for `make run` and end-to-end tests.
//
// It prints "mockllm listening on http://ADDR" to stdout once the socket is
// bound, so a harness can start it with -listen 127.0.0.1:0 and read the port.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/tokenmeter/tokenmeter/test/mockllm"
)

// shutdownGrace bounds how long in-flight streams (possibly slowed by
// -chunk-delay) may finish after a signal before connections are cut.
const shutdownGrace = 5 * time.Second

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "mockllm:", err)
		stop()
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("mockllm", flag.ContinueOnError)
	fs.SetOutput(stderr)
	listen := fs.String("listen", "127.0.0.1:8081", "address to listen on (port 0 picks a free one)")
	chunkDelay := fs.Duration("chunk-delay", 0, "delay between stream events, e.g. 50ms")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return fmt.Errorf("parse flags: %w", err)
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments: %q", fs.Args())
	}
	if *chunkDelay < 0 {
		return fmt.Errorf("-chunk-delay must not be negative, got %v", *chunkDelay)
	}

	log := slog.New(slog.NewTextHandler(stderr, nil))
	srv := &http.Server{
		Handler:           mockllm.New(mockllm.Options{ChunkDelay: *chunkDelay, Logger: log}),
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}

	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", *listen)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	// Only now is the port real; anything waiting on this line may connect.
	fmt.Fprintf(stdout, "mockllm listening on http://%s\n", ln.Addr())
	log.Info("listening", "addr", ln.Addr().String(), "chunk_delay", *chunkDelay)

	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()

	select {
	case err := <-serveErr:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	log.Info("shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		_ = srv.Close()
		return fmt.Errorf("shutdown: %w", err)
	}
	if err := <-serveErr; !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve: %w", err)
	}
	return nil
}
