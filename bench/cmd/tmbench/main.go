// Command tmbench is the benchmark harness of issue 7: it measures what
// tokenmeter adds to requests through Envoy, as a ratio against the same
// Envoy without the ext_proc filter, and writes the results as Markdown.
//
//	go run ./bench/cmd/tmbench -out bench/results   # make bench: ~10 minutes on 2 cores
//	go run ./bench/cmd/tmbench -smoke -out DIR       # make bench-smoke: checks the harness, < 1 minute
//
// Each scenario starts its own stack through package testbed (the mock
// LLM in this process, tokenmeter, an Envoy with the filter and one
// without) and drives both Envoys alternately at the same rates. The load
// generator is this program rather than a well-known tool because the runs
// must alternate two targets request by request on one open-loop schedule,
// time every SSE event against when the mock sent it, and read tokenmeter's
// CPU and memory from /proc between phases; no common tool does all that.
package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/tokenmeter/tokenmeter/envoy"
	"github.com/tokenmeter/tokenmeter/test/testbed"
)

const module = "github.com/tokenmeter/tokenmeter"

func main() { os.Exit(run(os.Args[1:], os.Stderr)) }

func run(args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("tmbench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	out := fs.String("out", "bench/results", "write the results into `dir`")
	smoke := fs.Bool("smoke", false, "check that the harness works: tiny counts, one rate, one search step, no micro-benchmarks")
	only := fs.String("scenarios", "", "comma-separated `names` to run (default all)")
	micro := fs.Bool("micro", true, "also run the packages' Go micro-benchmarks (never with -smoke)")
	profiles := fs.String("profiles", "", "also keep tokenmeter's CPU profiles and binary in `dir` (not in -out: results are text)")
	benchtime := fs.String("benchtime", "1s", "-benchtime of the micro-benchmarks")
	noopAddr := fs.String("noop-extproc", "", "internal: serve the no-op ext_proc server of the floor measurement on `addr`")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *noopAddr != "" {
		return noopMain(*noopAddr, os.Stdout)
	}
	scs, err := pick(scenarios(), *only)
	if err != nil {
		fmt.Fprintln(stderr, "tmbench:", err)
		return 2
	}
	set := fullSettings()
	if *smoke {
		set = smokeSettings()
		*micro = false
	}
	if err := os.MkdirAll(*out, 0o755); err != nil {
		fmt.Fprintln(stderr, "tmbench:", err)
		return 1
	}
	// The tokenmeters it starts inherit it: chat-json-keys hashes keys with it.
	if err := os.Setenv(benchKeySecretEnv, benchKeySecret); err != nil {
		fmt.Fprintln(stderr, "tmbench:", err)
		return 1
	}

	r, err := newRunner(stderr)
	if err != nil {
		fmt.Fprintln(stderr, "tmbench:", err)
		return 1
	}
	stop := r.onSignal()
	defer stop()
	defer r.cleanupTo(0)

	started := time.Now()
	rep := &report{date: started.Format("2006-01-02"), out: *out, smoke: *smoke,
		command: "go run ./bench/cmd/tmbench " + strings.Join(args, " ")}
	e := &env{set: set, log: stderr, profiles: *profiles}
	if err := r.scope(func() { e.setup(r) }); err != nil {
		fmt.Fprintln(stderr, "tmbench:", err)
		return 1
	}
	rep.machine = describeMachine(e.envoyBin)

	failed := false
	if *micro {
		rep.micro, rep.microErr = runMicro(e, rep, *benchtime)
		failed = rep.microErr != nil
	}
	for _, sc := range scs {
		e.logf("%s: start", sc.Name)
		o := e.runScenario(r, sc)
		if o.err != nil {
			failed = true
			e.logf("%s: FAILED: %v", sc.Name, o.err)
		}
		rep.outcomes = append(rep.outcomes, o)
	}
	rep.took = time.Since(started)
	files, err := rep.write()
	if err != nil {
		fmt.Fprintln(stderr, "tmbench:", err)
		return 1
	}
	for _, f := range files {
		e.logf("wrote %s", f)
	}
	if failed {
		e.logf("FAILED (see above)")
		return 1
	}
	e.logf("done in %s", rep.took.Round(time.Second))
	return 0
}

func pick(all []*scenario, only string) ([]*scenario, error) {
	if only == "" {
		return all, nil
	}
	var out []*scenario
	for _, name := range strings.Split(only, ",") {
		i := slices.IndexFunc(all, func(s *scenario) bool { return s.Name == name })
		if i < 0 {
			return nil, fmt.Errorf("no scenario %q", name)
		}
		out = append(out, all[i])
	}
	return out, nil
}

// setup finds Envoy and builds tokenmeter (without -race) once.
func (e *env) setup(r *runner) {
	bin, err := envoy.Binary()
	if err != nil {
		r.Fatal(err)
	}
	e.envoyBin = bin
	e.logf("building tokenmeter")
	if e.bin, err = testbed.Build(r.TempDir(), false); err != nil {
		r.Fatal(err)
	}
}

// runMicro runs the micro-benchmarks and saves their output.
func runMicro(e *env, rep *report, benchtime string) ([]benchLine, error) {
	root := filepath.Join(envoy.Dir(), "..")
	pkgs, skipped, err := microPackages(root)
	if err != nil {
		return nil, err
	}
	args := microArgs(benchtime, pkgs)
	rep.microCmd = "go " + strings.Join(quoteAll(args), " ")
	e.logf("micro-benchmarks: %d packages (~%d s)", len(pkgs), 3*len(pkgs)+30)
	cmd := exec.Command("go", args...)
	cmd.Dir = root
	out, err := cmd.CombinedOutput()
	path := filepath.Join(rep.out, rep.date+"-micro.txt")
	var b strings.Builder
	fmt.Fprintf(&b, "# %s\n# %s\n", rep.microCmd, time.Now().Format(time.RFC3339))
	if len(skipped) > 0 {
		fmt.Fprintf(&b, "# skipped (their tests read environment variables): %s\n", strings.Join(skipped, " "))
	}
	b.Write(out)
	if werr := os.WriteFile(path, []byte(b.String()), 0o644); werr != nil && err == nil {
		err = werr
	}
	rep.microFile = filepath.Base(path)
	if err != nil {
		return parseBench(out), fmt.Errorf("micro-benchmarks: %w (output in %s)", err, path)
	}
	return parseBench(out), nil
}

func quoteAll(args []string) []string {
	out := make([]string, len(args))
	for i, a := range args {
		if strings.ContainsAny(a, "^$ *") {
			a = "'" + a + "'"
		}
		out[i] = a
	}
	return out
}
