package main

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"time"

	envoygateway "github.com/tokenmeter/tokenmeter/deploy/envoy-gateway"
	"github.com/tokenmeter/tokenmeter/test/testbed"
)

// settings are the sizes of a run.
type settings struct {
	smoke    bool
	warm     int           // warm-up pairs
	idle     time.Duration // measuring idle CPU
	rateDur  time.Duration // each fixed-rate phase
	stepDur  time.Duration // each capacity-search step
	maxSteps int           // per side
}

func fullSettings() settings {
	return settings{warm: 50, idle: 5 * time.Second, rateDur: 8 * time.Second, stepDur: 4 * time.Second, maxSteps: 9}
}

// smokeSettings check that the harness works, measuring nothing worth
// reading: a few requests, one low rate, one search step per side.
func smokeSettings() settings {
	return settings{smoke: true, warm: 3, idle: time.Second, rateDur: time.Second, stepDur: time.Second, maxSteps: 1}
}

// env is what every scenario shares.
type env struct {
	bin, envoyBin string
	set           settings
	profiles      string // where to keep profiles, if anywhere
	log           io.Writer
}

// outcome is one scenario's measurements.
type outcome struct {
	sc        *scenario
	err       error
	reqBytes  int
	respBytes [2]int
	one       *phase   // one client
	floor     *phase   // one client, a no-op ext_proc server instead of tokenmeter (floor.go); nil for a deny
	rates     []*phase // fixed rates
	cap       *capacity
	mem       memory // tokenmeter at the end
	idle      cpu    // per second
	mallocs   float64
	cmds      []string // the exact command lines of the processes
	flat, cum string   // tokenmeter's CPU profile
	shares    []share
	took      time.Duration
}

func (e *env) logf(format string, args ...any) {
	fmt.Fprintf(e.log, "tmbench: "+format+"\n", args...)
}

// runScenario starts a stack of its own for sc, measures, stops the stack,
// and renders tokenmeter's CPU profile, which is written at its shutdown.
func (e *env) runScenario(r *runner, sc *scenario) *outcome {
	o := &outcome{sc: sc}
	start := time.Now()
	profile := filepath.Join(r.TempDir(), sc.Name+".pprof")
	o.err = r.scope(func() { e.measureScenario(r, sc, o, profile) })
	if o.err == nil {
		o.err = e.renderProfile(o, profile)
	}
	o.took = time.Since(start)
	return o
}

func (e *env) measureScenario(r *runner, sc *scenario, o *outcome, profile string) {
	s, pr, d := e.startStack(r, sc, o, profile)
	defer d.close()
	e.oneClient(r, sc, o, s, pr, d)
	if sc.Want[with] == 200 { // a no-op server denies nothing
		e.floor(r, o, s, pr, d)
	}
	e.fixedRates(r, sc, o, pr, d)
	from := sc.SearchFrom
	if e.set.smoke {
		from = sc.Rates[0]
	}
	o.cap = search(r, d, pr, o.idle, from, e.set.stepDur, e.set.maxSteps)
	if e.set.smoke {
		for side, steps := range o.cap.Steps {
			for _, st := range steps {
				if st.Errs > 0 {
					r.Fatalf("search step %s at %s/s: %s", sideName[side], fmtRate(st.Rate), st.Why)
				}
			}
		}
	}
	e.logf("%s: sustained with %s: bare %s/s, with %s/s", sc.Name, o.cap.criterion(),
		fmtRate(o.cap.Best[bare]), fmtRate(o.cap.Best[with]))
	mem, err := memoryOf(pr.tm)
	if err != nil {
		r.Fatal(err)
	}
	o.mem = mem
}

// startStack starts the scenario's mock, Envoys and tokenmeter, finds their
// processes, and checks one answer from each side.
func (e *env) startStack(r *runner, sc *scenario, o *outcome, profile string) (*testbed.Stack, procs, *driver) {
	fl := newFlushes()
	opts := testbed.Options{
		Bin: e.bin, Bare: true, Budgets: budgetsYAML, Upstream: fl.wrap, UpstreamFilters: sc.Arrangement == upstream,
		// Info, not testbed's debug: debug logs every record, which is work
		// on the measured path that a deployment does not do.
		ServeArgs: []string{"--log-level", "info", "--cpuprofile", profile},
		Extra:     sc.Config,
	}
	if sc.Arrangement == envoyGateway {
		opts.Arrangement = envoygateway.Arrangement
	}
	s := testbed.New(r, opts)
	pr := procs{tm: s.TM.PID(), self: os.Getpid()}
	for side, dir := range [2]string{"bare", "with"} {
		pid, err := envoyPID(dir)
		if err != nil {
			r.Fatal(err)
		}
		pr.envoy[side] = pid
	}
	o.cmds = []string{cmdline(pr.tm), cmdline(pr.envoy[bare]), cmdline(pr.envoy[with])}
	if sc.Prepare != nil {
		sc.Prepare(r, s)
	}
	d := newDriver(sc, s.Bare.URL, s.Proxy.URL, fl)
	o.reqBytes = len(sc.Body)
	for side := range 2 {
		o.respBytes[side] = responseBytes(r, d, side)
	}
	return s, pr, d
}

// strict fails the scenario on any error in p.
func strict(r *runner, what string, p *phase) {
	if p.errors() > 0 {
		r.Fatalf("%s: %d errors, e.g. %s", what, p.errors(), firstOr(p.ErrTexts, ""))
	}
}

// oneClient warms up, measures idle CPU, then runs the closed-loop phase,
// counting tokenmeter's heap allocations over it.
func (e *env) oneClient(r *runner, sc *scenario, o *outcome, s *testbed.Stack, pr procs, d *driver) {
	pairs, warm := sc.Pairs, e.set.warm
	if sc.Events > 0 {
		warm = min(warm, 5) // a pair of streams takes half a second
	}
	if e.set.smoke {
		pairs = min(pairs, 10)
		if sc.Events > 0 {
			pairs = 3
		}
	}
	e.logf("%s: warm-up, then %d pairs from one client", sc.Name, pairs)
	strict(r, "warm-up", measure(r, pr, cpu{}, 0, func() []result { return d.closedLoop(warm) }))
	o.idle = idleCPU(r, pr, e.set.idle)

	scrape := func() float64 {
		v, _ := testbed.Value(testbed.MetricsAt(r, s.TM.Admin), "go_memstats_mallocs_total", nil)
		return v
	}
	m0 := scrape()
	m1 := scrape() // m1 - m0 is what a scrape allocates
	o.one = measure(r, pr, o.idle, 0, func() []result { return d.closedLoop(pairs) })
	o.mallocs = (scrape() - m1 - (m1 - m0)) / float64(o.one.N[with])
	strict(r, "one client", o.one)
	e.logf("%s: 1 client: added p50 %s p99 %s, tokenmeter %.0f µs CPU/request", sc.Name,
		added(o.one.addedP50()), added(o.one.addedP99()), o.one.tmPerReq())
}

// fixedRates drives both Envoys at each of the scenario's rates.
func (e *env) fixedRates(r *runner, sc *scenario, o *outcome, pr procs, d *driver) {
	rates := sc.Rates
	if e.set.smoke {
		rates = rates[:1]
	}
	for _, rate := range rates {
		p := measure(r, pr, o.idle, rate, func() []result {
			return d.openLoop([]int{bare, with}, rate, e.set.rateDur, 30*time.Second)
		})
		if e.set.smoke {
			strict(r, fmt.Sprintf("%s/s", fmtRate(rate)), p)
		}
		o.rates = append(o.rates, p)
		e.logf("%s: %s/s per Envoy: added p50 %s p99 %s, %d errors", sc.Name, fmtRate(rate),
			added(p.addedP50()), added(p.addedP99()), p.errors())
	}
}

// responseBytes sends one request to side and measures its answer.
func responseBytes(r *runner, d *driver, side int) int {
	req, err := http.NewRequest("POST", d.url[side]+d.sc.Path, bytes.NewReader(d.sc.Body))
	if err != nil {
		r.Fatal(err)
	}
	req.Header = d.sc.Header.Clone()
	resp, err := d.client[side].Do(req)
	if err != nil {
		r.Fatal(err)
	}
	b := testbed.ReadAll(r, resp)
	if resp.StatusCode != d.sc.Want[side] {
		r.Fatalf("%s: status %d, want %d: %.300s", sideName[side], resp.StatusCode, d.sc.Want[side], b)
	}
	return len(b)
}
