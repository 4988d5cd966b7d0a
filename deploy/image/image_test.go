package image

import (
	"bufio"
	"bytes"
	"context"
	"crypto/x509"
	"debug/buildinfo"
	"debug/elf"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	v1 "github.com/opencontainers/image-spec/specs-go/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// imageName is what `make image` tags last. `make test` builds it first;
// `go test ./deploy/image` alone tests the image last built, and builds one
// when there is none.
const imageName = "localhost/tokenmeter:latest"

// The image `make image` built, run as built: its OCI config (user,
// entrypoint, cmd, working directory, version label), its files (these and
// nothing else), and its entrypoint run by buildah with runc, as the
// image's user in namespaces of its own: `version` prints the label's
// version, `check` reads a budget's time zone with no zoneinfo in the image,
// and the default command serves /healthz, /readyz and gRPC health on
// ephemeral ports, writes only under its working directory, and stops on
// SIGTERM as PID 1.
func TestImage(t *testing.T) {
	img := ensureImage(t)
	if _, err := exec.LookPath("runc"); err != nil {
		t.Fatal("runc is not installed; run: make image-deps (as root), or apt-get install -y runc")
	}
	ctr := newContainer(t)
	t.Run("config", func(t *testing.T) { checkConfig(t, img.Config) })
	t.Run("files", func(t *testing.T) { checkFiles(t, ctr) })

	cfgDir := configDir(t, map[string]string{
		"tokenmeter.yaml": "listen: {grpc: \"127.0.0.1:0\", admin: \"127.0.0.1:0\"}\nshutdown: {drain: 0s, grace: 2s}\n",
		"tz.yaml":         "budgets:\n  - {name: paris, limit: {requests: 10}, window: day, time_zone: Europe/Paris}\n",
	})
	t.Run("version", func(t *testing.T) {
		out, err := run(ctr, cfgDir, append(img.Config.Entrypoint, "version")...).Output()
		if want := "tokenmeter " + img.Config.Labels["org.opencontainers.image.version"] + "\n"; err != nil || string(out) != want {
			t.Fatalf("version: %q (%v), want %q", out, err, want)
		}
	})
	t.Run("time zone without zoneinfo", func(t *testing.T) {
		out, err := run(ctr, cfgDir, append(img.Config.Entrypoint, "check", "--config", "/etc/tokenmeter/tz.yaml")...).CombinedOutput()
		if err != nil || !strings.Contains(string(out), "/etc/tokenmeter/tz.yaml: ok") {
			t.Fatalf("check: %s (%v)", out, err)
		}
	})
	t.Run("serve", func(t *testing.T) { checkServe(t, ctr, cfgDir, append(img.Config.Entrypoint, img.Config.Cmd...)) })
	t.Run("writes only its working directory", func(t *testing.T) { checkWrites(t, ctr) })
}

// ensureImage inspects the image, building it with `make image` when there
// is none; a missing buildah fails with the command that installs it.
func ensureImage(t *testing.T) v1.Image {
	t.Helper()
	if _, err := exec.LookPath("buildah"); err != nil {
		t.Fatal("buildah is not installed; run: make image-deps (as root), or apt-get install -y buildah runc")
	}
	out, err := exec.Command("buildah", "inspect", "--type", "image", imageName).Output()
	if err != nil {
		t.Logf("no %s; building it: make image", imageName)
		if out, err := exec.Command("make", "-C", "../..", "image").CombinedOutput(); err != nil {
			t.Fatalf("make image: %v\n%s", err, out)
		}
		if out, err = exec.Command("buildah", "inspect", "--type", "image", imageName).Output(); err != nil {
			t.Fatalf("buildah inspect %s: %v", imageName, err)
		}
	}
	var inspect struct{ OCIv1 v1.Image }
	if err := json.Unmarshal(out, &inspect); err != nil {
		t.Fatalf("buildah inspect: %v", err)
	}
	return inspect.OCIv1
}

// newContainer is a working container of the image, removed at the end.
func newContainer(t *testing.T) string {
	t.Helper()
	name := fmt.Sprintf("tokenmeter-imagetest-%d", os.Getpid())
	if out, err := exec.Command("buildah", "from", "--pull=never", "--name", name, imageName).CombinedOutput(); err != nil {
		t.Fatalf("buildah from: %v\n%s", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("buildah", "rm", name).CombinedOutput(); err != nil {
			t.Errorf("buildah rm: %v\n%s", err, out)
		}
	})
	return name
}

func checkConfig(t *testing.T, c v1.ImageConfig) {
	want := v1.ImageConfig{
		User:         "65532:65532",
		ExposedPorts: map[string]struct{}{"50051/tcp": {}, "9464/tcp": {}},
		Env:          []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}, // buildah's default; nothing reads it
		Entrypoint:   []string{"/tokenmeter"},
		Cmd:          []string{"serve", "--config", "/etc/tokenmeter/tokenmeter.yaml"},
		WorkingDir:   "/var/lib/tokenmeter",
		Labels:       c.Labels,
	}
	got, _ := json.Marshal(c)
	if w, _ := json.Marshal(want); !bytes.Equal(got, w) {
		t.Errorf("config\n got %s\nwant %s", got, w)
	}
	if v := c.Labels["org.opencontainers.image.version"]; v == "" || v == "dev" {
		t.Errorf("version label %q: want the build's version", v)
	}
}

// entry is a file of the image as checkFiles sees it.
type entry struct {
	mode     fs.FileMode
	uid, gid uint32
}

// imageFiles are the image's files: these and no others.
var imageFiles = map[string]entry{
	"tokenmeter": {0o755, 0, 0},
	"etc":        {fs.ModeDir | 0o755, 0, 0}, "etc/ssl": {fs.ModeDir | 0o755, 0, 0}, "etc/ssl/certs": {fs.ModeDir | 0o755, 0, 0},
	"etc/ssl/certs/ca-certificates.crt": {0o644, 0, 0},
	"var":                               {fs.ModeDir | 0o755, 0, 0}, "var/lib": {fs.ModeDir | 0o755, 0, 0},
	"var/lib/tokenmeter": {fs.ModeDir | 0o755, 65532, 65532},
}

// runtimeMounts are what buildah run adds to a container's root as mount
// points, as any container runtime (and Kubernetes) does.
var runtimeMounts = []string{"dev", "proc", "sys", "run", "etc/hostname", "etc/hosts", "etc/resolv.conf", "etc/tokenmeter"}

// checkFiles: the image's files; the binary static, built without cgo and
// with -trimpath; the CA bundle exactly Debian's Mozilla set.
func checkFiles(t *testing.T, ctr string) {
	got := rootFiles(t, ctr, func(root string) {
		checkBinary(t, filepath.Join(root, "tokenmeter"))
		checkCABundle(t, filepath.Join(root, "etc/ssl/certs/ca-certificates.crt"))
	})
	if fmt.Sprint(got) != fmt.Sprint(imageFiles) {
		t.Errorf("files\n got %v\nwant %v", got, imageFiles)
	}
}

// checkWrites, after the container has served: it wrote under its working
// directory (the store and the ledger) and nowhere else, so its root file
// system can be mounted read-only with a volume there.
func checkWrites(t *testing.T, ctr string) {
	got := rootFiles(t, ctr, nil)
	for p, e := range got {
		switch {
		case strings.HasPrefix(p, "var/lib/tokenmeter/"), slices.Contains(runtimeMounts, p):
		case e != imageFiles[p]:
			t.Errorf("%s: %v, not one of the image's files as built (%v)", p, e, imageFiles[p])
		}
	}
	for _, dir := range []string{"var/lib/tokenmeter/data", "var/lib/tokenmeter/data/ledger"} {
		if e, ok := got[dir]; !ok || e.uid != 65532 {
			t.Errorf("%s: %v, %v; want the store's and the ledger's directories, the user's", dir, e, ok)
		}
	}
}

// rootFiles mounts the container's root and lists it; inspect, when not
// nil, looks at the root while it is mounted.
func rootFiles(t *testing.T, ctr string, inspect func(root string)) map[string]entry {
	t.Helper()
	out, err := exec.Command("buildah", "mount", ctr).Output()
	if err != nil {
		t.Fatalf("buildah mount: %v", err)
	}
	root := strings.TrimSpace(string(out))
	defer exec.Command("buildah", "umount", ctr).Run()
	got := map[string]entry{}
	err = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == root {
			return err
		}
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		st := fi.Sys().(*syscall.Stat_t)
		rel, _ := filepath.Rel(root, p)
		got[rel] = entry{fi.Mode(), st.Uid, st.Gid}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if inspect != nil {
		inspect(root)
	}
	return got
}

func checkBinary(t *testing.T, path string) {
	f, err := elf.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Error("the binary names a dynamic loader: not static")
		}
	}
	info, err := buildinfo.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	settings := map[string]string{}
	for _, s := range info.Settings {
		settings[s.Key] = s.Value
	}
	// (-ldflags is not recorded with -trimpath; the version test shows the
	// -X took.)
	if settings["CGO_ENABLED"] != "0" || settings["-trimpath"] != "true" {
		t.Errorf("built with %v; want CGO_ENABLED=0 and -trimpath", settings)
	}
}

func checkCABundle(t *testing.T, path string) {
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for block, rest := pem.Decode(data); block != nil; block, rest = pem.Decode(rest) {
		if _, err := x509.ParseCertificate(block.Bytes); err != nil {
			t.Fatalf("certificate %d: %v", n, err)
		}
		n++
	}
	mozilla, err := filepath.Glob("/usr/share/ca-certificates/mozilla/*.crt")
	if err != nil || n == 0 || n != len(mozilla) {
		t.Errorf("%d certificates in the bundle, %d in Debian's Mozilla set (%v)", n, len(mozilla), err)
	}
}

// configDir writes files into a directory the image's user can read, for
// /etc/tokenmeter.
func configDir(t *testing.T, files map[string]string) string {
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// run is argv run in ctr by buildah with runc, as the image's user, in its
// working directory, with its environment (the working container carries
// the image's config), on the host's network so that the test reaches the
// ephemeral ports, with cfgDir mounted at /etc/tokenmeter.
func run(ctr, cfgDir string, argv ...string) *exec.Cmd {
	args := []string{"run", "--runtime", "runc", "--network", "host", "--volume", cfgDir + ":/etc/tokenmeter:ro", ctr, "--"}
	return exec.Command("buildah", append(args, argv...)...)
}

// checkServe runs the default command: ready on ephemeral ports, healthy
// and ready, as user 65532 and PID 1 of its namespace; SIGTERM stops it
// cleanly.
func checkServe(t *testing.T, ctr, cfgDir string, argv []string) {
	cmd := run(ctr, cfgDir, argv...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	ready := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if strings.HasPrefix(sc.Text(), "tokenmeter ready ") {
				ready <- sc.Text()
			}
		}
		exited <- cmd.Wait()
	}()
	defer func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			<-exited
		}
	}()
	var line string
	select {
	case line = <-ready:
	case err := <-exited:
		t.Fatalf("exited before ready: %v\n%s", err, &stderr)
	case <-time.After(60 * time.Second):
		t.Fatalf("not ready in 60 s\n%s", &stderr)
	}
	var grpcAddr, adminAddr string
	for _, f := range strings.Fields(line) {
		if v, ok := strings.CutPrefix(f, "grpc="); ok {
			grpcAddr = v
		}
		if v, ok := strings.CutPrefix(f, "admin="); ok {
			adminAddr = v
		}
	}
	for _, path := range []string{"/healthz", "/readyz"} {
		resp, err := http.Get("http://" + adminAddr + path)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("%s: %v %v", path, resp, err)
		}
		resp.Body.Close()
	}
	checkGRPCHealth(t, grpcAddr)
	pid := containerPID(t, cmd.Process.Pid)
	checkProcess(t, pid)
	if err := syscall.Kill(pid, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		if err != nil || !strings.Contains(stderr.String(), `"msg":"shutdown: servers stopped; closing the ledger and the store"`) {
			t.Fatalf("after SIGTERM: %v\n%s", err, &stderr)
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("still running 30 s after SIGTERM\n%s", &stderr)
	}
}

func checkGRPCHealth(t *testing.T, addr string) {
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	h, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{})
	if err != nil || h.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("gRPC health: %v %v", h.GetStatus(), err)
	}
}

// containerPID finds the container's process: the descendant of the
// buildah process whose command is the image's binary.
func containerPID(t *testing.T, buildah int) int {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		if !bytes.HasPrefix(cmdline, []byte("/tokenmeter\x00")) {
			continue
		}
		for p := pid; p > 1; p = parent(p) {
			if p == buildah {
				return pid
			}
		}
	}
	t.Fatal("no /tokenmeter process under buildah run")
	return 0
}

func parent(pid int) int {
	status, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	for _, l := range strings.Split(string(status), "\n") {
		if v, ok := strings.CutPrefix(l, "PPid:"); ok {
			p, _ := strconv.Atoi(strings.TrimSpace(v))
			return p
		}
	}
	return 0
}

// checkProcess: the image's user, and PID 1 in the container's own PID
// namespace (so SIGTERM reaches tokenmeter's handler, not a shell).
func checkProcess(t *testing.T, pid int) {
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	fields := map[string]string{}
	for _, l := range strings.Split(string(status), "\n") {
		if k, v, ok := strings.Cut(l, ":"); ok {
			fields[k] = strings.Join(strings.Fields(v), " ")
		}
	}
	if fields["Uid"] != "65532 65532 65532 65532" || fields["Gid"] != "65532 65532 65532 65532" {
		t.Errorf("runs as uid %q gid %q, want 65532", fields["Uid"], fields["Gid"])
	}
	if ns := strings.Fields(fields["NSpid"]); len(ns) != 2 || ns[1] != "1" {
		t.Errorf("NSpid %q: want PID 1 in a namespace of its own", fields["NSpid"])
	}
}
