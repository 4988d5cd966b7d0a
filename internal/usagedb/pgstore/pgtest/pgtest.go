// Package pgtest starts a real PostgreSQL server for tests: Debian's
// (/usr/lib/postgresql/<version>/bin), in a temporary directory, on an
// ephemeral loopback port, stopped and removed when the test ends. Without
// Postgres a test fails with the command that installs it (make test-deps
// does): a missing real part is never a skip.
//
// Postgres refuses to run as root. When the test does, initdb and postgres
// run as the "postgres" user Debian's package creates, and the directory is
// theirs.
package pgtest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

const installHint = "make test-deps, or: apt-get install -y postgresql"

// Server is one running (or stopped) Postgres.
type Server struct {
	// DSN connects to its "postgres" database as the superuser "postgres",
	// over TCP, without a password.
	DSN string

	tb      testing.TB // nil when Launched
	durable bool
	bin     string
	dir     string // the data directory's parent: data/ and postgres.log
	port    int
	cred    *syscall.Credential

	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan struct{}
	dbs    int
}

// Start starts a server for the test and returns its DSN.
func Start(tb testing.TB) string {
	tb.Helper()
	return StartServer(tb).DSN
}

// StartServer starts a server for the test; it is stopped and its files
// removed when the test ends.
func StartServer(tb testing.TB) *Server {
	tb.Helper()
	s, err := Launch(Options{})
	if err != nil {
		tb.Fatalf("pgtest: %v", err)
	}
	s.tb = tb
	tb.Cleanup(s.Close)
	return s
}

// Options shape a server started with Launch.
type Options struct {
	// Durable keeps Postgres's defaults (fsync, synchronous commit, full
	// page writes), for measurements; tests trade them for speed.
	Durable bool
}

// Launch starts a server outside a test (a benchmark program); Close stops
// it and removes its files. Errors name what is missing and how to install
// it.
func Launch(o Options) (*Server, error) {
	bin, err := binDir()
	if err != nil {
		return nil, err
	}
	cred, err := credential()
	if err != nil {
		return nil, err
	}
	s := &Server{bin: bin, cred: cred, durable: o.Durable}
	if s.dir, err = os.MkdirTemp("", "pgtest-"); err != nil {
		return nil, err
	}
	if err := s.launch(); err != nil {
		_ = os.RemoveAll(s.dir)
		return nil, err
	}
	s.DSN = s.dsn("postgres")
	return s, nil
}

func (s *Server) launch() error {
	if s.cred != nil {
		if err := os.Chown(s.dir, int(s.cred.Uid), int(s.cred.Gid)); err != nil {
			return fmt.Errorf("chown %s to postgres: %w", s.dir, err)
		}
	}
	if out, err := s.command("initdb", "-D", s.data(), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync", "--locale=C").CombinedOutput(); err != nil {
		return fmt.Errorf("initdb: %w\n%s", err, out)
	}
	var last error
	for range 5 { // the port can be taken between freePort and the bind
		if s.port, last = freePort(); last != nil {
			continue
		}
		if last = s.start(); last == nil {
			return nil
		}
	}
	return last
}

// Close stops the server and removes its files.
func (s *Server) Close() {
	s.Stop()
	_ = os.RemoveAll(s.dir)
}

// binDir finds the newest Debian Postgres.
func binDir() (string, error) {
	vers, _ := filepath.Glob("/usr/lib/postgresql/*/bin/postgres")
	if len(vers) == 0 {
		return "", fmt.Errorf("PostgreSQL is not installed (no /usr/lib/postgresql/*/bin/postgres): %s", installHint)
	}
	slices.SortFunc(vers, func(a, b string) int { return version(a) - version(b) })
	return filepath.Dir(vers[len(vers)-1]), nil
}

func version(bin string) int {
	n, _ := strconv.Atoi(filepath.Base(filepath.Dir(filepath.Dir(bin))))
	return n
}

// credential is nil unless the test runs as root; then it is the postgres
// user's.
func credential() (*syscall.Credential, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		return nil, fmt.Errorf("running as root, and there is no postgres user to run Postgres as (%s): %w", installHint, err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, nil
}

func (s *Server) data() string { return filepath.Join(s.dir, "data") }

func (s *Server) command(name string, args ...string) *exec.Cmd {
	cmd := exec.Command(filepath.Join(s.bin, name), args...)
	cmd.SysProcAttr = sysProcAttr(s.cred)
	cmd.Dir = s.dir
	cmd.Env = append(os.Environ(), "LC_ALL=C")
	return cmd
}

// start runs postgres on s.port and waits until it accepts a query. Tests
// trade durability for speed (fsync off) unless Options.Durable.
func (s *Server) start() error {
	logPath := filepath.Join(s.dir, "postgres.log")
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer logf.Close()
	args := []string{"-D", s.data(), "-p", strconv.Itoa(s.port), "-c", "listen_addresses=127.0.0.1",
		"-c", "unix_socket_directories=", "-c", "max_connections=100"}
	if !s.durable {
		args = append(args, "-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off")
	}
	cmd := s.command("postgres", args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start postgres: %w", err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	if err := waitReady(s.dsn("postgres"), exited); err != nil {
		_ = cmd.Process.Kill()
		<-exited
		log, _ := os.ReadFile(logPath)
		return fmt.Errorf("%w; log:\n%s", err, log)
	}
	s.mu.Lock()
	s.cmd, s.exited = cmd, exited
	s.mu.Unlock()
	return nil
}

func (s *Server) dsn(db string) string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable", s.port, db)
}

// Stop stops the server (a fast shutdown: clients are disconnected, as in
// an outage); Restart starts it again with its data. Stop twice is no-op.
func (s *Server) Stop() {
	s.mu.Lock()
	cmd, exited := s.cmd, s.exited
	s.cmd = nil
	s.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Signal(syscall.SIGINT)
	select {
	case <-exited:
	case <-time.After(10 * time.Second):
		_ = cmd.Process.Kill()
		<-exited
	}
}

// Restart starts a stopped server again on the same port, with its data.
func (s *Server) Restart() {
	if s.tb != nil {
		s.tb.Helper()
	}
	if err := s.start(); err != nil {
		if s.tb == nil {
			panic(fmt.Sprintf("pgtest: restart: %v", err))
		}
		s.tb.Fatalf("pgtest: restart: %v", err)
	}
}

// Database creates a new, empty database on the server and returns its
// DSN: tests that share one server keep apart this way.
func (s *Server) Database(tb testing.TB) string {
	tb.Helper()
	s.mu.Lock()
	s.dbs++
	name := fmt.Sprintf("test%d", s.dbs)
	s.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := pgx.Connect(ctx, s.DSN)
	if err != nil {
		tb.Fatalf("pgtest: %v", err)
	}
	defer c.Close(ctx)
	if _, err := c.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		tb.Fatalf("pgtest: create database %s: %v", name, err)
	}
	return s.dsn(name)
}

func waitReady(dsn string, exited <-chan struct{}) error {
	deadline := time.Now().Add(30 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		c, err := pgx.Connect(ctx, dsn)
		if err == nil {
			err = c.Ping(ctx)
			_ = c.Close(ctx)
		}
		cancel()
		if err == nil {
			return nil
		}
		select {
		case <-exited:
			return errors.New("postgres exited before it accepted connections")
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("postgres not ready in 30s: %w", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
