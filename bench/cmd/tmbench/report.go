package main

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// The goals of issue 7.
const (
	goalAddedP50  = 150 * time.Microsecond
	goalAddedP99  = time.Millisecond
	goalChunkP50  = 50 * time.Microsecond
	goalRatio     = 0.70
	goalCPUPerReq = 50.0 // µs
)

// report is everything a run writes.
type report struct {
	date, out, command string
	smoke              bool
	machine            machine
	outcomes           []*outcome
	micro              []benchLine
	microErr           error
	microCmd           string
	microFile          string
	took               time.Duration
}

func (rep *report) write() ([]string, error) {
	var files []string
	for _, o := range rep.outcomes {
		path := filepath.Join(rep.out, fmt.Sprintf("%s-%s.md", rep.date, o.sc.Name))
		if err := os.WriteFile(path, []byte(rep.scenarioFile(o)), 0o644); err != nil {
			return files, err
		}
		files = append(files, path)
	}
	path := filepath.Join(rep.out, rep.date+"-summary.md")
	if err := os.WriteFile(path, []byte(rep.summaryFile()), 0o644); err != nil {
		return files, err
	}
	return append(files, path), nil
}

type md struct{ strings.Builder }

func (m *md) p(format string, args ...any) { fmt.Fprintf(m, format+"\n", args...) }

func (m *md) row(cells ...string) { m.p("| %s |", strings.Join(cells, " | ")) }

func (m *md) head(cells ...string) {
	m.row(cells...)
	seps := make([]string, len(cells))
	for i := range seps {
		seps[i] = "---"
	}
	m.row(seps...)
}

// target is the make target that runs this harness so.
func (rep *report) target() string {
	if rep.smoke {
		return "make bench-smoke"
	}
	return "make bench"
}

func (rep *report) preamble(m *md) {
	if rep.smoke {
		m.p("> **Smoke run** (`make bench-smoke`): a handful of requests to check that the harness works. These numbers " +
			"measure nothing; read the files of a full `make bench`.\n")
	}
}

func (rep *report) machineSection(m *md) {
	mc := rep.machine
	m.p("## Machine\n")
	m.head("", "")
	m.row("CPU", fmt.Sprintf("%s, %d cores (`runtime.NumCPU`)", mc.CPU, mc.Cores))
	m.row("memory", memTotal(mc.Memory))
	m.row("kernel", mc.Kernel)
	m.row("Go", mc.Go)
	m.row("Envoy", mc.Envoy)
	m.row("commit", "`"+mc.Commit+"`")
	m.p("")
	m.p("Everything runs on this one machine: the load generator and the mock (one process, this harness), both " +
		"Envoys (`--concurrency 2` each) and tokenmeter share its cores.\n")
}

func (rep *report) scenarioFile(o *outcome) string {
	var m md
	sc := o.sc
	m.p("# %s: %s\n", sc.Name, sc.Title)
	rep.preamble(&m)
	m.p("%s, `%s` (`%s`); this scenario took %s. Summary of all scenarios and the method: [%s-summary.md](%s-summary.md).\n",
		rep.date, rep.target(), rep.command, o.took.Round(time.Second), rep.date, rep.date)
	m.p("%s\n", sc.About)
	if o.err != nil {
		m.p("**This scenario failed:**\n\n```\n%s\n```\n", o.err)
		return m.String()
	}
	m.head("", "bare Envoy", "Envoy + tokenmeter")
	m.row("request body", fmt.Sprintf("%d bytes", o.reqBytes), fmt.Sprintf("%d bytes", o.reqBytes))
	m.row("response body", fmt.Sprintf("%d bytes", o.respBytes[bare]), fmt.Sprintf("%d bytes", o.respBytes[with]))
	m.row("status", fmt.Sprint(sc.Want[bare]), fmt.Sprint(sc.Want[with]))
	if sc.Events > 0 {
		m.row("SSE events", fmt.Sprint(sc.Events), fmt.Sprint(sc.Events))
	}
	m.p("")
	rep.oneClient(&m, o)
	rep.floorSection(&m, o)
	rep.fixedRates(&m, o)
	rep.capacitySection(&m, o)
	rep.resources(&m, o)
	m.p("## Goals\n")
	rep.goalTable(&m, goalsOf(o))
	m.p("")
	rep.profileSection(&m, o)
	rep.machineSection(&m)
	m.p("## Commands\n")
	m.p("The harness: `%s` (what `%s` runs). It started, for this scenario:\n", rep.command, rep.target())
	m.p("```")
	for _, c := range o.cmds {
		m.p("%s", c)
	}
	m.p("```\n")
	m.p("(tokenmeter, then the bare Envoy, then the Envoy with the filter; the mock LLM is `mockllm.Server` under " +
		"`httptest.Server` in the harness. Paths are the run's temporary directory.)")
	return m.String()
}

func (rep *report) oneClient(m *md, o *outcome) {
	p := o.one
	m.p("## One client\n")
	m.p("Closed loop: %d pairs, each one request to each Envoy, the order swapped every pair; latency is from sending "+
		"the request to its last byte.\n", p.N[bare])
	m.head("", "bare Envoy", "Envoy + tokenmeter", "added")
	for _, q := range []struct {
		name string
		q    float64
	}{{"p50", .50}, {"p99", .99}} {
		m.row("latency "+q.name, us(p.Lat[bare].pct(q.q)), us(p.Lat[with].pct(q.q)), added(p.Lat[with].pct(q.q)-p.Lat[bare].pct(q.q)))
	}
	if o.sc.Events > 0 {
		streamRows(m, p)
	}
	m.p("")
}

// floorSection compares tokenmeter with the no-op ext_proc server.
func (rep *report) floorSection(m *md, o *outcome) {
	f := o.floor
	if f == nil {
		return
	}
	m.p("## The floor: a no-op ext_proc server\n")
	m.p("The same Envoy config in front of a server that answers the same ext_proc messages as tokenmeter and does " +
		"nothing else (`tmbench -noop-extproc`, grpc-go like tokenmeter, its own process), against the bare Envoy, " +
		"one client, as many pairs. What it adds is the cost of the ext_proc protocol on this machine; tokenmeter's " +
		"own work is the rest.\n")
	m.head("", "added by the no-op server", "added by tokenmeter", "tokenmeter's own (difference)")
	for _, q := range []struct {
		name string
		f, t time.Duration
	}{{"latency p50", f.addedP50(), o.one.addedP50()}, {"latency p99", f.addedP99(), o.one.addedP99()}} {
		m.row(q.name, added(q.f), added(q.t), added(q.t-q.f))
	}
	if o.sc.Events > 0 {
		fc, tc := f.Chunk[with].p50()-f.Chunk[bare].p50(), o.one.Chunk[with].p50()-o.one.Chunk[bare].p50()
		m.row("per-chunk transit p50", added(fc), added(tc), added(tc-fc))
	}
	m.row("server CPU µs/request, net of idle", fmt.Sprintf("%.0f", f.tmPerReq()), fmt.Sprintf("%.0f", o.one.tmPerReq()),
		fmt.Sprintf("%.0f", o.one.tmPerReq()-f.tmPerReq()))
	m.row("Envoy CPU µs/request more than the bare one", perReqDiff(f), perReqDiff(o.one), "")
	m.p("")
}

// streamRows are the per-event rows of a stream phase.
func streamRows(m *md, p *phase) {
	for _, r := range []struct {
		name string
		d    [2]dist
		q    float64
	}{
		{"time to first event p50", p.TTFE, .5}, {"time to first event p99", p.TTFE, .99},
		{"first event's transit p50", p.First, .5},
		{"**per-chunk transit p50** (events 2–200)", p.Chunk, .5}, {"per-chunk transit p99", p.Chunk, .99},
		{"the mock's gap between events p50", p.Gap, .5}, {"the mock's gap between events p99", p.Gap, .99},
	} {
		m.row(r.name, us(r.d[bare].pct(r.q)), us(r.d[with].pct(r.q)), added(r.d[with].pct(r.q)-r.d[bare].pct(r.q)))
	}
	m.p("")
	m.p("A chunk's **transit** is the time from the mock's flush of an SSE event (timestamped inside the mock, which "+
		"runs in the harness on the same monotonic clock) to its arrival at the client. Its added delay is the "+
		"difference of the transit percentiles with and without the filter, over every event but the first of every "+
		"stream (%d and %d events); the first event also waits for the response headers. The mock's "+
		"gap is its 1 ms sleep plus whatever kept it from running: it shares the 2 cores with Envoy and tokenmeter, "+
		"so a wider gap with the filter is CPU contention on this machine, which lengthens the whole stream here "+
		"but would not slow a remote provider; the transit is free of it.",
		len(p.Chunk[bare]), len(p.Chunk[with]))
}

func (rep *report) fixedRates(m *md, o *outcome) {
	m.p("## Fixed rates\n")
	m.p("Open loop, both Envoys in the same run at the same rate: slot *i* is scheduled at t₀ + i/(2·rate), the slots "+
		"alternating between the Envoys (order swapped every pair), for %s per rate, whatever the answers. Latency is "+
		"measured from the **scheduled** time, so a stall shows in the percentiles instead of delaying later requests "+
		"out of the sample (no coordinated omission). CPU is µs per request that process served, from /proc utime+stime "+
		"over the phase (1 tick = %s), net of what it uses idle over as long; tokenmeter's raw figure is in brackets.\n",
		rep.rateDur(o), clockTick)
	cols := []string{"rate per Envoy", "bare p50", "bare p99", "with p50", "with p99", "added p50", "added p99"}
	if o.sc.Events > 0 {
		cols = append(cols, "added per-chunk p50", "added per-chunk p99")
	}
	cols = append(cols, "errors", "tokenmeter CPU µs/req", "Envoy CPU µs/req bare → with")
	m.head(cols...)
	for _, p := range append([]*phase{o.one}, o.rates...) {
		cells := []string{p.label(), us(p.Lat[bare].p50()), us(p.Lat[bare].p99()), us(p.Lat[with].p50()), us(p.Lat[with].p99()),
			added(p.addedP50()), added(p.addedP99())}
		if o.sc.Events > 0 {
			cells = append(cells, added(p.Chunk[with].p50()-p.Chunk[bare].p50()), added(p.Chunk[with].p99()-p.Chunk[bare].p99()))
		}
		cells = append(cells, fmt.Sprint(p.errors()), fmt.Sprintf("%s (%s)", perReq(p.Net.tm, p.N[with]), perReq(p.CPU.tm, p.N[with])),
			perReq(p.Net.envoy[bare], p.N[bare])+" → "+perReq(p.Net.envoy[with], p.N[with]))
		m.row(cells...)
	}
	m.p("")
	for _, p := range o.rates {
		if p.errors() > 0 {
			m.p("Errors at %s: %s\n", p.label(), strings.Join(p.ErrTexts, "; "))
		}
	}
}

func (rep *report) rateDur(*outcome) time.Duration {
	if rep.smoke {
		return smokeSettings().rateDur
	}
	return fullSettings().rateDur
}

func (rep *report) capacitySection(m *md, o *outcome) {
	c := o.cap
	m.p("## Highest sustained rate\n")
	m.p("Each Envoy alone, open loop: a step is sustained when every request succeeds and **%s**. Each side "+
		"doubles its rate from %s/s until a step fails, then bisects between its best pass and lowest failure until "+
		"they are within 12.5%%; the sides take turns step by step. Steps last %s; a request past %s is an error. "+
		"Near capacity p99 is noisy: repeated runs move these rates a lot (see the summary's method).\n",
		c.criterion(), fmtRate(firstRate(c)), rep.stepDur(), us(max(time.Second, 5*o.sc.Bound)))
	if c.Chunk {
		m.p("For a stream the bound is on the per-event transit, not the whole response: a stream lasts as long as " +
			"the mock's pacing, and what a proxy must sustain is forwarding each event promptly.\n")
	}
	m.head("", "bare Envoy", "Envoy + tokenmeter", "with / bare")
	m.row("sustained rate", fmtRate(c.Best[bare])+"/s", fmtRate(c.Best[with])+"/s", ratio(c.ratio()))
	m.p("")
	m.p("<details><summary>Steps</summary>\n")
	m.head("side", "rate/s", "p50", "p99", "per-event transit p99", "requests", "result", "tokenmeter CPU µs/req", "harness CPU (cores)")
	for side := range 2 {
		for _, st := range c.Steps[side] {
			res := "sustained"
			if !st.Pass {
				res = "failed: " + st.Why
			}
			cpu := "–"
			if side == with {
				cpu = fmt.Sprintf("%.0f", st.TMCPU)
			}
			chunk := "–"
			if c.Chunk {
				chunk = us(st.ChunkP99)
			}
			m.row(sideName[side], fmtRate(st.Rate), us(st.P50), us(st.P99), chunk, fmt.Sprint(st.N), res, cpu, fmt.Sprintf("%.2f", st.SelfLoad))
		}
	}
	m.p("\n</details>\n")
}

func firstRate(c *capacity) float64 {
	if len(c.Steps[bare]) > 0 {
		return c.Steps[bare][0].Rate
	}
	return 0
}

func (rep *report) stepDur() time.Duration {
	if rep.smoke {
		return smokeSettings().stepDur
	}
	return fullSettings().stepDur
}

func ratio(r float64) string {
	if math.IsNaN(r) {
		return "–"
	}
	return fmt.Sprintf("%.0f%%", 100*r)
}

func (rep *report) resources(m *md, o *outcome) {
	m.p("## tokenmeter's resources\n")
	m.head("", "value")
	m.row("idle CPU: tokenmeter; Envoy bare, with; harness", fmt.Sprintf("%s; %s, %s; %s (ms per second)",
		msPerS(o.idle.tm), msPerS(o.idle.envoy[bare]), msPerS(o.idle.envoy[with]), msPerS(o.idle.self)))
	for _, p := range append([]*phase{o.one}, o.rates...) {
		v := fmt.Sprintf("%.0f µs (raw %.0f µs)", p.tmPerReq(), p.tmRawPerReq())
		if o.sc.Events > 0 {
			v += fmt.Sprintf("; %.1f µs per event", p.tmPerReq()/float64(o.sc.Events))
		}
		m.row("CPU per request net of idle, "+p.label(), v)
	}
	for _, p := range append([]*phase{o.one}, o.rates...) {
		m.row("Envoy CPU the filter adds per request, "+p.label(), perReqDiff(p))
	}
	m.row("heap allocations per request (Go runtime counter, 1 client)", fmt.Sprintf("%.0f", o.mallocs))
	if o.sc.Events > 0 {
		m.row("heap allocations per SSE event, whole process (the above ÷ events)", fmt.Sprintf("%.1f", o.mallocs/float64(o.sc.Events)))
	}
	m.row("RSS at the end of the scenario", mib(o.mem.RSS))
	m.row("peak RSS (VmHWM)", mib(o.mem.HWM))
	m.p("")
	m.p("CPU is /proc/<pid>/stat utime+stime over the phase, less the process's idle CPU over as long (measured for " +
		"a few seconds with no traffic after the warm-up), divided by the requests sent through the Envoy with the " +
		"filter; it includes the Go runtime's work (scheduler, GC). RSS is VmRSS from /proc/<pid>/status after the " +
		"last search step.\n")
}

// perReqDiff is the Envoy CPU per request with the filter minus without.
func perReqDiff(p *phase) string {
	if p.N[bare] == 0 || p.N[with] == 0 {
		return "–"
	}
	d := float64(p.Net.envoy[with])/float64(p.N[with]) - float64(p.Net.envoy[bare])/float64(p.N[bare])
	return fmt.Sprintf("%+.0f µs", d/1e3)
}

func (rep *report) profileSection(m *md, o *outcome) {
	m.p("## Where tokenmeter's time goes\n")
	m.p("tokenmeter's CPU profile over the whole scenario (`tokenmeter serve --cpuprofile`, rendered with " +
		"`go tool pprof -top -nodecount=25`, then with `-cum`). It covers every phase, the overloaded search steps " +
		"included.\n")
	shareTable(m, o.shares)
	m.p("```\n%s\n```\n", o.flat)
	m.p("<details><summary>By cumulative time</summary>\n\n```\n%s\n```\n\n</details>\n", o.cum)
}

// goal is one of the goals, measured.
type goal struct {
	What, Target, Measured string
	Met                    bool
	By                     string // how far off, when missed
}

func goalsOf(o *outcome) []goal {
	if o.err != nil || o.sc.Arrangement != split || o.sc.Beside != "" {
		return nil // the goals are split mode's, as shipped
	}
	var gs []goal
	name := o.sc.Name
	lat := func(what string, got, want time.Duration) goal {
		g := goal{What: what, Target: "≤ " + us(want), Measured: added(got), Met: got <= want}
		if !g.Met {
			g.By = fmt.Sprintf("%s over (%.1f×)", us(got-want), float64(got)/float64(want))
		}
		return g
	}
	withFloor := func(g goal, floor time.Duration) goal {
		if !g.Met && o.floor != nil {
			g.By += fmt.Sprintf("; a no-op ext_proc server adds %s", added(floor))
		}
		return g
	}
	switch {
	case strings.HasPrefix(name, "chat-json"): // in split mode or upstream
		var f50, f99 time.Duration
		if o.floor != nil {
			f50, f99 = o.floor.addedP50(), o.floor.addedP99()
		}
		gs = append(gs, withFloor(lat("added p50, non-streaming, 1 client", o.one.addedP50(), goalAddedP50), f50),
			withFloor(lat("added p99, non-streaming, 1 client", o.one.addedP99(), goalAddedP99), f99))
	case o.sc.Events > 0:
		for _, p := range o.judged() {
			gs = append(gs, lat("added per-chunk delay p50, "+p.label(), p.Chunk[with].p50()-p.Chunk[bare].p50(), goalChunkP50))
		}
	}
	if name != "denied" {
		r := o.cap.ratio()
		g := goal{What: fmt.Sprintf("sustained rate with the filter ÷ bare (%s)", name), Target: "≥ 70%", Measured: ratio(r),
			Met: r >= goalRatio}
		if !g.Met {
			g.By = fmt.Sprintf("%.0f points under", 100*(goalRatio-r))
		}
		gs = append(gs, g)
	}
	for _, p := range o.judged() {
		if name == "denied" {
			break
		}
		v := p.tmPerReq()
		g := goal{What: fmt.Sprintf("tokenmeter CPU per request, net of idle (%s, %s)", name, p.label()), Target: "≤ 50 µs",
			Measured: fmt.Sprintf("%.0f µs", v), Met: v <= goalCPUPerReq}
		if o.sc.Events > 0 {
			g.Measured += fmt.Sprintf(" (%.0f µs per event)", v/float64(o.sc.Events))
		}
		if !g.Met {
			g.By = fmt.Sprintf("%.0f µs over (%.1f×)", v-goalCPUPerReq, v/goalCPUPerReq)
			if o.floor != nil && p == o.one {
				g.By += fmt.Sprintf("; the no-op ext_proc server uses %.0f µs", o.floor.tmPerReq())
			}
		}
		gs = append(gs, g)
	}
	return gs
}

// judged are the phases goals are judged on: one client, and the highest
// fixed rate.
func (o *outcome) judged() []*phase {
	ps := []*phase{o.one}
	if len(o.rates) > 0 {
		ps = append(ps, o.rates[len(o.rates)-1])
	}
	return ps
}

func (rep *report) goalTable(m *md, gs []goal) {
	m.head("goal", "target", "measured", "met?")
	for _, g := range gs {
		met := "**met**"
		if !g.Met {
			met = "missed: " + g.By
		}
		m.row(g.What, g.Target, g.Measured, met)
	}
}

func (rep *report) summaryFile() string {
	var m md
	m.p("# Benchmark summary, %s\n", rep.date)
	rep.preamble(&m)
	m.p("What tokenmeter adds to a request through Envoy, against the physical floor: the same Envoy, same config, "+
		"without the ext_proc filter, driven alternately at the same rates in the same run (issue 7). One file per "+
		"scenario beside this one has the details, the exact commands and tokenmeter's CPU profile. The whole run "+
		"took %s.\n", rep.took.Round(time.Second))
	m.p("Command: `%s`, which runs `%s` (after `make tools build`, which the target depends on).\n", rep.target(), rep.command)
	m.p("## Results\n")
	m.head("scenario", "added p50, 1 client", "added p99, 1 client", "no-op ext_proc server: added p50 / p99, 1 client", "added p50 / p99 at the highest fixed rate",
		"sustained bare → with (criterion)", "with / bare", "tokenmeter CPU µs/req, net of idle (1 client; highest fixed rate)", "tokenmeter RSS", "added per-chunk p50 (1 client; highest fixed rate)")
	for _, o := range rep.outcomes {
		if o.err != nil {
			m.row(fmt.Sprintf("[%s](%s-%s.md)", o.sc.Name, rep.date, o.sc.Name), "**failed**", "", "", "", "", "", "", "", "")
			continue
		}
		last := o.one
		if len(o.rates) > 0 {
			last = o.rates[len(o.rates)-1]
		}
		chunk := "–"
		if o.sc.Events > 0 {
			chunk = fmt.Sprintf("%s; %s (%s)", added(o.one.Chunk[with].p50()-o.one.Chunk[bare].p50()),
				added(last.Chunk[with].p50()-last.Chunk[bare].p50()), last.label())
		}
		floor := "–"
		if o.floor != nil {
			floor = added(o.floor.addedP50()) + " / " + added(o.floor.addedP99())
		}
		m.row(fmt.Sprintf("[%s](%s-%s.md)", o.sc.Name, rep.date, o.sc.Name), added(o.one.addedP50()), added(o.one.addedP99()), floor,
			fmt.Sprintf("%s / %s (%s)", added(last.addedP50()), added(last.addedP99()), last.label()),
			fmt.Sprintf("%s → %s/s (%s)", fmtRate(o.cap.Best[bare]), fmtRate(o.cap.Best[with]), o.cap.criterion()),
			ratio(o.cap.ratio()), fmt.Sprintf("%.0f; %.0f", o.one.tmPerReq(), last.tmPerReq()), mib(o.mem.RSS), chunk)
	}
	m.p("")
	m.p("`denied` compares different work: the bare Envoy forwards the request to the mock, tokenmeter refuses it " +
		"at the request headers; a negative added latency there means a deny is faster than a round trip to the " +
		"provider. Elsewhere a negative p99 difference means the bare side had the worse tail in that sample: p99 over " +
		"a few hundred requests is one of the few slowest, and stalls of the shared machine land on either side.\n")

	rep.arrangementSection(&m)
	m.p("## Goals\n")
	var all []goal
	for _, o := range rep.outcomes {
		all = append(all, goalsOf(o)...)
	}
	all = append(all, rep.allocGoals()...)
	rep.goalTable(&m, all)
	m.p("")
	rep.allocSection(&m)
	rep.whereSection(&m)
	rep.methodSection(&m)
	rep.machineSection(&m)
	return m.String()
}

// arrangementSection puts each arrangement's scenario beside its split-mode
// one, at 1 client: the latency against the bare Envoy of the same config,
// the added latency against what the no-op ext_proc server adds in the same
// config (the floor), and against split mode's.
func (rep *report) arrangementSection(m *md) {
	byName := map[string]*outcome{}
	for _, o := range rep.outcomes {
		byName[o.sc.Name] = o
	}
	var rows [][]string
	for _, o := range rep.outcomes {
		sp := byName[o.sc.Beside]
		if o.sc.Beside == "" || sp == nil || o.err != nil || sp.err != nil || o.floor == nil || sp.floor == nil {
			continue
		}
		for _, q := range []float64{.50, .99} {
			for _, x := range []*outcome{sp, o} {
				b, w := x.one.Lat[bare].pct(q), x.one.Lat[with].pct(q)
				floor := x.floor.Lat[with].pct(q) - x.floor.Lat[bare].pct(q)
				vsSplit := "–"
				if x != sp {
					vsSplit = times(w-b, sp.one.Lat[with].pct(q)-sp.one.Lat[bare].pct(q))
				}
				arr := x.sc.Arrangement
				switch {
				case x.sc.Variant != "":
					arr = x.sc.Variant
				case arr == split:
					arr = "split"
				}
				rows = append(rows, []string{fmt.Sprintf("[%s](%s-%s.md)", x.sc.Name, rep.date, x.sc.Name), arr,
					fmt.Sprintf("p%.0f", 100*q), us(b), us(w), added(w - b), times(w, b), added(floor), times(w-b, floor), vsSplit})
			}
		}
	}
	if len(rows) == 0 {
		return
	}
	m.p("## Arrangements beside split mode\n")
	m.p("The same requests through another arrangement of tokenmeter in Envoy, 1 client. `envoy-gateway` is the " +
		"Envoy that Envoy Gateway makes of `deploy/envoy-gateway`: its gate takes two round trips (the request " +
		"headers, then the Buffered body), where split mode (`envoy/envoy.yaml`) takes one. `upstream` is split mode's " +
		"gate and observer in the provider cluster's filter chain (`envoy/upstream-filter.yaml`). `split, API keys` is split " +
		"mode attributing each request by its API key (`chat-json-keys`). Each arrangement has its " +
		"own bare Envoy (its config without the ext_proc filters) and its own floor (its config in front of the no-op " +
		"ext_proc server).\n")
	m.head("scenario", "arrangement", "", "bare Envoy", "with tokenmeter", "added", "with ÷ bare",
		"no-op server adds", "added ÷ no-op's", "added ÷ split's")
	for _, r := range rows {
		m.row(r...)
	}
	m.p("")
}

// times is a ÷ b, as a ratio.
func times(a, b time.Duration) string {
	if b <= 0 {
		return "–"
	}
	return fmt.Sprintf("%.2f×", float64(a)/float64(b))
}

// allocGoals judge "zero allocations per SSE chunk in the steady state" on
// the decoders' micro-benchmarks.
func (rep *report) allocGoals() []goal {
	if rep.micro == nil {
		return nil
	}
	var gs []goal
	for _, a := range sseAllocs(rep.micro) {
		g := goal{What: "allocations per SSE chunk, " + a.Bench, Target: "0", Measured: fmt.Sprintf("%.4g", a.Allocs), Met: a.Allocs == 0}
		if !g.Met {
			g.By = fmt.Sprintf("%.4g allocs/chunk (one per %.0f chunks)", a.Allocs, 1/a.Allocs)
		}
		gs = append(gs, g)
	}
	return gs
}

func (rep *report) allocSection(m *md) {
	m.p("## Allocations per SSE chunk\n")
	if rep.micro == nil {
		m.p("Micro-benchmarks not run (`-smoke` or `-micro=false`).\n")
		return
	}
	m.p("From the micro-benchmarks (`%s`, output in [%s](%s)). The dialect benchmarks report `allocs/chunk`: the "+
		"heap allocations over the Feed calls of a long stream after a 10%% warm-up, divided exactly by the chunks, "+
		"in the steady state of a server (one earlier stream has finished and returned its pooled text pages); "+
		"framing's `BenchmarkSSE` reuses one decoder.\n", rep.microCmd, rep.microFile, rep.microFile)
	m.head("benchmark", "allocs per chunk", "how")
	for _, a := range sseAllocs(rep.micro) {
		m.row(a.Bench, fmt.Sprintf("%.4g", a.Allocs), a.How)
	}
	m.p("")
	for _, o := range rep.outcomes {
		if o.err == nil && o.sc.Events > 0 {
			m.p("The whole tokenmeter process, by contrast, allocated %.0f times per %d-event stream in `%s` (%.1f per "+
				"event, the Go runtime's malloc counter): the gRPC and protobuf handling of each ext_proc message, not "+
				"the decoder.\n", o.mallocs, o.sc.Events, o.sc.Name, o.mallocs/float64(o.sc.Events))
		}
	}
	if rep.microErr != nil {
		m.p("**The micro-benchmarks failed:** `%v`\n", rep.microErr)
	}
}

func (rep *report) whereSection(m *md) {
	var o *outcome
	for _, x := range rep.outcomes {
		if x.sc.Name == "chat-json" && x.err == nil {
			o = x
		}
	}
	if o == nil {
		return
	}
	p := o.one
	own := 0.0
	for _, s := range o.shares {
		if strings.HasPrefix(s.Func, "github.com/tokenmeter/") {
			own += s.Pct
		}
	}
	m.p("## Where the time goes\n")
	m.p("tokenmeter runs as two ext_proc filters (split mode, DESIGN.md). For a request, Envoy waits for one exchange "+
		"with the gate: the request headers and body go out back to back and tokenmeter answers both once it has read "+
		"the body. The observer's messages (request headers, response headers, each response body chunk) go out "+
		"without Envoy waiting. For one non-streaming request at 1 client (`chat-json`), tokenmeter adds %s at p50.\n",
		added(p.addedP50()))
	if f := o.floor; f != nil {
		m.p("A server that answers the same messages and does nothing else adds %s at p50 and %s at p99, using %.0f µs "+
			"of CPU per request (Envoy with its filters %s more than the bare one): that is the floor of ext_proc on this "+
			"machine, Envoy's filter and a gRPC stream on each side, and most of what tokenmeter adds. tokenmeter's own "+
			"work adds %s at p50 and %.0f µs of CPU per request (%.0f in all).\n",
			added(f.addedP50()), added(f.addedP99()), f.tmPerReq(), perReqDiff(f),
			added(p.addedP50()-f.addedP50()), p.tmPerReq()-f.tmPerReq(), p.tmPerReq())
	}
	m.p("Within tokenmeter, its own code (`exchange.handle`, `observe` and `afterSend`) is about %.0f%% of its CPU; "+
		"gRPC's HTTP/2 transport, protobuf, goroutine and thread wake-ups and system calls take most of the rest:\n", own)
	shareTable(m, o.shares)
	m.p("That is tokenmeter's CPU profile over the whole chat-json scenario, by layer; the top-25 tables are in "+
		"[%s-chat-json.md](%s-chat-json.md#where-tokenmeters-time-goes), and each scenario file has its own.\n",
		rep.date, rep.date)
	for _, x := range rep.outcomes {
		if x.err != nil || x.sc.Events == 0 {
			continue
		}
		q := x.one
		m.p("For a stream (`%s`), each response chunk goes to the observer without Envoy waiting for an answer: %s "+
			"per event at p50 (1 client), while tokenmeter spends %.0f µs of CPU per event and %.1f heap allocations "+
			"per event in the whole process (the decoders' own allocations per chunk are in the section above).\n",
			x.sc.Name, added(q.Chunk[with].p50()-q.Chunk[bare].p50()),
			q.tmPerReq()/float64(x.sc.Events), x.mallocs/float64(x.sc.Events))
	}
}

func (rep *report) methodSection(m *md) {
	m.p("## Method\n")
	m.WriteString(`- **Stack.** Per scenario, package testbed starts the mock LLM (` + "`mockllm.Server`" + ` under httptest, in the
  harness process), the tokenmeter binary (built without -race, ` + "`--log-level info`" + `, Badger store, a money
  budget every request reserves on and settles), an Envoy from the shipped ` + "`envoy/envoy.yaml`" + ` (tokenmeter's gate and observer filters) and a
  second one from the same file with the ext_proc filters removed (` + "`envoy.WithoutExtProc`" + `). Both Envoys run
  ` + "`--concurrency 2`" + ` and forward to the same mock. For the floor, a third one from the same file talks to a
  no-op ext_proc server (` + "`tmbench -noop-extproc`" + `), one client, right after tokenmeter's 1-client phase.
  The ` + "`eg-`" + ` scenarios replace ` + "`envoy.yaml`" + ` with what Envoy Gateway makes of ` + "`deploy/envoy-gateway`" + ` (` + "`egctl x translate`" + `,
  static bootstrap by ` + "`envoygateway.Static`" + `), for all three Envoys.
- **Load generator: an in-repo Go client** (` + "`bench/cmd/tmbench`" + `), because the runs must alternate two targets
  request by request on one open-loop schedule at the same fixed rates, time each SSE event against the moment the
  mock flushed it, and read tokenmeter's and each Envoy's CPU and memory from /proc between phases. wrk2, vegeta,
  k6 or Fortio do parts of this (open-loop rates, or coordinated-omission correction) but not two alternating
  targets in one schedule with per-event timing against the upstream.
- **1 client**: closed loop, pairs of requests (bare, with), the order swapped every pair.
- **Fixed rates**: open loop; slot i at t₀ + i/(2·rate) alternates between the Envoys, so each gets the rate.
  Latency is measured from the scheduled time: if the system (or the generator) stalls, late requests count their
  wait instead of dropping out of the sample (no coordinated omission).
- **Added latency** is the difference of the percentiles: p50(with) − p50(bare), p99(with) − p99(bare).
- **Sustained rate**: each Envoy alone, doubling from a start rate until a step has an error or p99 over the
  scenario's bound, then bisecting to within 12.5%; the sides take turns step by step. Near the bound p99 climbs
  slowly with the rate, so the result is noisy: in four runs of chat-json while the harness was built, the bare
  Envoy sustained 2,800–4,400/s and the one with the filter 1,600–3,000/s (ratio 40–68%). Read the ratio as a
  range, and repeat the run before trusting a change of less than that.
- **Per-chunk delay**: the mock's handler is wrapped (` + "`testbed.Options.Upstream`" + `) to timestamp each flush — one
  per SSE event — and the client timestamps each event's arrival on the same clock. Transit = arrival − flush, per
  event; the added delay is the difference of its percentiles with and without the filter (events 2–200; the first
  also waits for the response headers).
- **CPU** per request: utime+stime from /proc/<pid>/stat (clock ticks, ` + clockTick.String() + ` each; the kernel
  derives the sum from its exact runtime) before and after a phase, less what the process uses idle over as long
  (measured with no traffic after the warm-up), over the requests that process served. **RSS**: VmRSS from
  /proc/<pid>/status.
- **Allocations**: ` + "`go_memstats_mallocs_total`" + ` from tokenmeter's /metrics before and after the 1-client phase (the
  scrape's own allocations subtracted); the decoders' steady state from the micro-benchmarks.
- A benchmark is never a timed test: ` + "`make test`" + ` runs only ` + "`make bench-smoke`" + `, which checks that every
  scenario runs and every answer is right, and fails otherwise.
`)
}

func shareTable(m *md, shares []share) {
	m.head("where", "function", "share of tokenmeter's CPU")
	for _, s := range shares {
		kind := "incl. callees"
		if s.Flat {
			kind = "own time"
		}
		m.row(s.What, "`"+s.Func+"`", fmt.Sprintf("%.1f%% (%s)", s.Pct, kind))
	}
	m.p("")
	m.p("The shares overlap (system calls happen inside gRPC's goroutines, allocation everywhere); they say which " +
		"layer the time is spent in, not a partition.\n")
}

func msPerS(d time.Duration) string { return fmt.Sprintf("%.1f", float64(d)/1e6) }

// memTotal turns /proc/meminfo's "24683656 kB" into GiB.
func memTotal(s string) string {
	var kb int64
	if _, err := fmt.Sscanf(s, "%d kB", &kb); err != nil {
		return s
	}
	return fmt.Sprintf("%.1f GiB", float64(kb)/(1<<20))
}
