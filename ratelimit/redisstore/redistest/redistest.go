// Package redistest starts real redis-server processes for tests: one
// server, or a three-node Cluster, on ephemeral loopback ports, stopped when
// the test ends. Without redis-server on PATH a test fails (make test
// installs it): a missing real part is never a skip.
package redistest

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"
)

// serverBinary returns the redis-server binary. Without one the test fails:
// a missing real part is never a silent skip (make test-deps installs it).
func serverBinary(tb testing.TB) string {
	tb.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		tb.Fatalf("redis-server is not installed (make test-deps, or: apt-get install redis-server): %v", err)
	}
	return bin
}

// FreePort returns a port that was free a moment ago.
func FreePort(tb testing.TB) int {
	tb.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// Start starts a redis-server on an ephemeral port, without
// persistence, and stops it when the test ends. cluster starts it in cluster
// mode, with a cluster bus port of its own. It returns the address.
func Start(tb testing.TB, cluster bool) string {
	tb.Helper()
	bin := serverBinary(tb)
	var last error
	for range 5 { // the port can be taken between FreePort and the bind
		dir := tb.TempDir()
		port := FreePort(tb)
		args := []string{
			"--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--daemonize", "no",
			"--save", "", "--appendonly", "no", "--dir", dir, "--logfile", filepath.Join(dir, "redis.log"),
		}
		if cluster {
			args = append(args, "--cluster-enabled", "yes", "--cluster-port", strconv.Itoa(FreePort(tb)),
				"--cluster-config-file", filepath.Join(dir, "nodes.conf"), "--cluster-node-timeout", "5000")
		}
		cmd := exec.Command(bin, args...)
		cmd.SysProcAttr = dieWithParent()
		if err := cmd.Start(); err != nil {
			tb.Fatalf("start redis-server: %v", err)
		}
		exited := make(chan struct{})
		go func() { _ = cmd.Wait(); close(exited) }()
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		if last = waitPing(addr, exited); last == nil {
			tb.Cleanup(func() {
				_ = cmd.Process.Kill()
				<-exited
			})
			return addr
		}
		_ = cmd.Process.Kill()
		<-exited
		log, _ := os.ReadFile(filepath.Join(dir, "redis.log"))
		last = fmt.Errorf("%w; log:\n%s", last, log)
	}
	tb.Fatalf("start redis-server: %v", last)
	return ""
}

// waitPing waits until the server at addr answers PING, or exits.
func waitPing(addr string, exited <-chan struct{}) error {
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := ping(addr)
		if err == nil {
			return nil
		}
		select {
		case <-exited:
			return fmt.Errorf("redis-server exited: %v", err)
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("no PONG from %s in 10s: %v", addr, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func ping(addr string) error {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(time.Second))
	if _, err := c.Write([]byte("PING\r\n")); err != nil {
		return err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return err
	}
	if line != "+PONG\r\n" {
		return fmt.Errorf("PING answered %q", line)
	}
	return nil
}

// Client is a go-redis client for addr, without the maintenance-notification
// handshake, which the servers of Debian's package do not speak.
func Client(addr string) *redis.Client {
	return redis.NewClient(&redis.Options{
		Addr:                     addr,
		MaintNotificationsConfig: &maintnotifications.Config{Mode: maintnotifications.ModeDisabled},
	})
}

// Cluster starts three cluster-mode servers, gives each a third of the
// hash slots, introduces them and waits until all three report the cluster
// ok. It returns their addresses.
func Cluster(tb testing.TB) []string {
	tb.Helper()
	ctx := context.Background()
	addrs := make([]string, 3)
	clients := make([]*redis.Client, 3)
	for i := range addrs {
		addrs[i] = Start(tb, true)
		clients[i] = Client(addrs[i])
		defer clients[i].Close()
	}
	for i, c := range clients {
		lo, hi := i*16384/3, (i+1)*16384/3-1
		if err := c.Do(ctx, "CLUSTER", "ADDSLOTSRANGE", lo, hi).Err(); err != nil {
			tb.Fatalf("node %d: CLUSTER ADDSLOTSRANGE %d %d: %v", i, lo, hi, err)
		}
	}
	for i, c := range clients[1:] {
		bus, err := busPort(ctx, c)
		if err != nil {
			tb.Fatal(err)
		}
		host, port, _ := net.SplitHostPort(addrs[i+1])
		if err := clients[0].Do(ctx, "CLUSTER", "MEET", host, port, bus).Err(); err != nil {
			tb.Fatalf("CLUSTER MEET %s: %v", addrs[i+1], err)
		}
	}
	deadline := time.Now().Add(30 * time.Second)
	for i := 0; i < len(clients); {
		info, err := clients[i].ClusterInfo(ctx).Result()
		if err == nil && strings.Contains(info, "cluster_state:ok") && strings.Contains(info, "cluster_known_nodes:3") {
			i++
			continue
		}
		if time.Now().After(deadline) {
			tb.Fatalf("node %d: cluster not ok after 30s: %v\n%s", i, err, info)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return addrs
}

// busPort reads a node's cluster bus port, which CLUSTER MEET needs when it
// is not the client port + 10000.
func busPort(ctx context.Context, c *redis.Client) (string, error) {
	v, err := c.ConfigGet(ctx, "cluster-port").Result()
	if err != nil {
		return "", fmt.Errorf("CONFIG GET cluster-port: %w", err)
	}
	return v["cluster-port"], nil
}
