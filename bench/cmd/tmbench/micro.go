package main

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// microPackages lists the packages with Go benchmarks, minus the Envoy
// ones under bench/ (this harness measures those) and minus any whose tests
// read the environment (benchmarks that need a variable set, such as an
// external store, would skip or fail here).
func microPackages(root string) (pkgs, skipped []string, err error) {
	cmd := exec.Command("go", "list", "-f", "{{.ImportPath}}|{{.Dir}}|{{join .TestGoFiles \",\"}},{{join .XTestGoFiles \",\"}}", "./...")
	cmd.Dir = root
	out, err := cmd.Output()
	if err != nil {
		return nil, nil, fmt.Errorf("go list: %w", err)
	}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		parts := strings.SplitN(line, "|", 3)
		if len(parts) != 3 {
			continue
		}
		path, dir := parts[0], parts[1]
		if path == module+"/bench" || strings.HasPrefix(path, module+"/bench/") {
			continue
		}
		var hasBench, readsEnv bool
		for _, f := range strings.Split(parts[2], ",") {
			if f == "" {
				continue
			}
			b, err := os.ReadFile(filepath.Join(dir, f))
			if err != nil {
				return nil, nil, err
			}
			hasBench = hasBench || bytes.Contains(b, []byte("func Benchmark"))
			readsEnv = readsEnv || bytes.Contains(b, []byte("os.Getenv(")) || bytes.Contains(b, []byte("os.LookupEnv("))
		}
		switch {
		case !hasBench:
		case readsEnv:
			skipped = append(skipped, path)
		default:
			pkgs = append(pkgs, path)
		}
	}
	return pkgs, skipped, nil
}

// microArgs is the go test command line of the micro-benchmarks.
func microArgs(benchtime string, pkgs []string) []string {
	return append([]string{"test", "-run", "^$", "-bench", ".", "-benchmem", "-count", "1", "-benchtime", benchtime}, pkgs...)
}

// benchLine is one benchmark's metrics by unit.
type benchLine struct {
	Pkg, Name string
	Metrics   map[string]float64
}

var benchRe = regexp.MustCompile(`^(Benchmark\S+?)(-\d+)?\s+\d+\s+(.*)$`)

func parseBench(out []byte) []benchLine {
	var lines []benchLine
	pkg := ""
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		line := sc.Text()
		if p, ok := strings.CutPrefix(line, "pkg: "); ok {
			pkg = p
			continue
		}
		m := benchRe.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		bl := benchLine{Pkg: pkg, Name: m[1], Metrics: map[string]float64{}}
		f := strings.Fields(m[3])
		for i := 0; i+1 < len(f); i += 2 {
			if v, err := strconv.ParseFloat(f[i], 64); err == nil {
				bl.Metrics[f[i+1]] = v
			}
		}
		lines = append(lines, bl)
	}
	return lines
}

// sseAlloc is one SSE decoder's steady-state allocations per chunk.
type sseAlloc struct {
	Bench  string
	Allocs float64
	How    string
}

// sseAllocs picks the SSE decoders' allocations per chunk out of the
// micro-benchmarks: the dialect ones report allocs/chunk past a warm-up;
// framing's BenchmarkSSE reuses one decoder, so allocs/op ÷ chunks/op.
func sseAllocs(lines []benchLine) []sseAlloc {
	var out []sseAlloc
	for _, l := range lines {
		if !strings.Contains(l.Name, "SSE") {
			continue
		}
		short := l.Pkg[strings.LastIndexByte(l.Pkg, '/')+1:] + "." + l.Name
		if v, ok := l.Metrics["allocs/chunk"]; ok {
			out = append(out, sseAlloc{short, v, "allocs/chunk after warm-up"})
		} else if c, ok := l.Metrics["chunks/op"]; ok && c > 0 {
			out = append(out, sseAlloc{short, l.Metrics["allocs/op"] / c, "allocs/op ÷ chunks/op"})
		}
	}
	slices.SortFunc(out, func(a, b sseAlloc) int { return strings.Compare(a.Bench, b.Bench) })
	return out
}
