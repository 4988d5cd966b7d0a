package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// syncBuffer is written by serve's goroutine and read by the test.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// --cpuprofile profiles from start-up to shutdown and writes the profile
// when serve returns.
func TestServeCPUProfile(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "tokenmeter.yaml")
	if err := os.WriteFile(cfg, []byte(`listen: {grpc: "127.0.0.1:0", admin: "127.0.0.1:0"}
store: {dir: "`+filepath.Join(dir, "badger")+`"}
ledger: {dir: "`+filepath.Join(dir, "ledger")+`"}
shutdown: {drain: 0s}
`), 0o600); err != nil {
		t.Fatal(err)
	}
	prof := filepath.Join(dir, "cpu.pprof")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stdout, stderr syncBuffer
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"serve", "--config", cfg, "--log-level", "error", "--cpuprofile", prof}, &stdout, &stderr)
	}()
	for !strings.Contains(stdout.String(), "tokenmeter ready") {
		select {
		case err := <-done:
			t.Fatalf("serve returned %v before ready; stderr %s", err, stderr.String())
		case <-time.After(10 * time.Millisecond): // polling for an event; this measures nothing
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("serve: %v; stderr %s", err, stderr.String())
	}
	b, err := os.ReadFile(prof)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) < 2 || b[0] != 0x1f || b[1] != 0x8b { // pprof profiles are gzipped protobuf
		t.Fatalf("profile is %d bytes, not gzip", len(b))
	}
}

func TestServeCPUProfileUnwritable(t *testing.T) {
	cfg := filepath.Join(t.TempDir(), "tokenmeter.yaml")
	dir := filepath.Dir(cfg)
	if err := os.WriteFile(cfg, []byte("listen: {grpc: \"127.0.0.1:0\", admin: \"127.0.0.1:0\"}\nstore: {dir: \""+dir+"/b\"}\nledger: {dir: \""+dir+"/l\"}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	err := run(context.Background(), []string{"serve", "--config", cfg, "--cpuprofile", "/nonexistent/dir/cpu.pprof"}, &stdout, &stderr)
	if err == nil || !strings.Contains(err.Error(), "cpu profile") {
		t.Fatalf("err = %v, want a cpu profile error", err)
	}
}
