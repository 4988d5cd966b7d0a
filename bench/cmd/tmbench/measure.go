package main

import (
	"fmt"
	"math"
	"time"
)

// procs are the processes whose CPU a phase accounts for.
type procs struct {
	tm    int    // tokenmeter
	envoy [2]int // the bare Envoy and the one with the filter
	self  int    // this harness: load generator and mock
}

// cpu is the CPU each process had used at one moment.
type cpu struct {
	tm, self time.Duration
	envoy    [2]time.Duration
}

func (p procs) snapshot(r *runner) cpu {
	var c cpu
	var err error
	read := func(pid int, dst *time.Duration) {
		if err == nil {
			*dst, err = cpuTime(pid)
		}
	}
	read(p.tm, &c.tm)
	read(p.envoy[bare], &c.envoy[bare])
	read(p.envoy[with], &c.envoy[with])
	read(p.self, &c.self)
	if err != nil {
		r.Fatalf("reading CPU times: %v", err)
	}
	return c
}

func (c cpu) minus(o cpu) cpu {
	return cpu{tm: c.tm - o.tm, self: c.self - o.self,
		envoy: [2]time.Duration{c.envoy[bare] - o.envoy[bare], c.envoy[with] - o.envoy[with]}}
}

// scaled is c times f (idle CPU per second times a phase's seconds).
func (c cpu) scaled(f float64) cpu {
	s := func(d time.Duration) time.Duration { return time.Duration(float64(d) * f) }
	return cpu{tm: s(c.tm), self: s(c.self), envoy: [2]time.Duration{s(c.envoy[bare]), s(c.envoy[with])}}
}

// phase is what one measured phase saw, per side.
type phase struct {
	Rate     float64 // per Envoy, requests/s; 0 means one client, closed loop
	Wall     time.Duration
	N        [2]int
	Errors   [2]int
	ErrTexts []string // the first few
	Lat      [2]dist
	TTFE     [2]dist // streams
	First    [2]dist // streams: the first event's transit
	Chunk    [2]dist // streams: every later event's transit
	Gap      [2]dist // streams: between the mock's flushes
	CPU      cpu     // used during the phase
	// Net is CPU minus what each process uses idle over as long (timers,
	// background work), which dominates per-request figures at low rates.
	Net cpu
}

func summarise(rate float64, wall time.Duration, rs []result, used cpu) *phase {
	p := &phase{Rate: rate, Wall: wall, CPU: used, Net: used}
	var lat, ttfe, first, chunk, gap [2][]time.Duration
	for _, r := range rs {
		p.N[r.side]++
		if r.err != nil {
			p.Errors[r.side]++
			if len(p.ErrTexts) < 3 {
				p.ErrTexts = append(p.ErrTexts, r.err.Error())
			}
			continue
		}
		lat[r.side] = append(lat[r.side], r.latency)
		if r.chunks != nil {
			ttfe[r.side] = append(ttfe[r.side], r.ttfe)
			first[r.side] = append(first[r.side], r.first)
			chunk[r.side] = append(chunk[r.side], r.chunks...)
			gap[r.side] = append(gap[r.side], r.gaps...)
		}
	}
	for s := range 2 {
		p.Lat[s], p.TTFE[s], p.First[s], p.Chunk[s] = newDist(lat[s]), newDist(ttfe[s]), newDist(first[s]), newDist(chunk[s])
		p.Gap[s] = newDist(gap[s])
	}
	return p
}

func (p *phase) errors() int { return p.Errors[bare] + p.Errors[with] }

func (p *phase) addedP50() time.Duration { return p.Lat[with].p50() - p.Lat[bare].p50() }
func (p *phase) addedP99() time.Duration { return p.Lat[with].p99() - p.Lat[bare].p99() }

// tmPerReq is tokenmeter's CPU, net of idle, per request it saw, in µs.
func (p *phase) tmPerReq() float64 {
	if p.N[with] == 0 {
		return math.NaN()
	}
	return float64(p.Net.tm) / 1e3 / float64(p.N[with])
}

// tmRawPerReq is the same without taking idle CPU off.
func (p *phase) tmRawPerReq() float64 {
	if p.N[with] == 0 {
		return math.NaN()
	}
	return float64(p.CPU.tm) / 1e3 / float64(p.N[with])
}

func (p *phase) label() string {
	if p.Rate == 0 {
		return "1 client"
	}
	return fmt.Sprintf("%s/s", fmtRate(p.Rate))
}

// measure runs one phase, accounting the CPU the processes used during it;
// idle is what they use per second doing nothing.
func measure(r *runner, pr procs, idle cpu, rate float64, run func() []result) *phase {
	before, start := pr.snapshot(r), time.Now()
	rs := run()
	wall := time.Since(start)
	p := summarise(rate, wall, rs, pr.snapshot(r).minus(before))
	p.Net = p.CPU.minus(idle.scaled(wall.Seconds()))
	return p
}

// idleCPU is what the processes use per second with no traffic.
func idleCPU(r *runner, pr procs, dur time.Duration) cpu {
	before, start := pr.snapshot(r), time.Now()
	time.Sleep(dur)
	return pr.snapshot(r).minus(before).scaled(1 / time.Since(start).Seconds())
}

// step is one rung of the capacity search, on one side alone.
type step struct {
	Rate     float64
	P50, P99 time.Duration
	ChunkP99 time.Duration // streams: per-event transit
	N, Errs  int
	Pass     bool
	Why      string  // why it failed
	TMCPU    float64 // tokenmeter CPU µs per request (with side)
	SelfLoad float64 // this harness's CPU, in cores
}

// capacity is the highest rate each side sustained with p99 ≤ bound.
type capacity struct {
	Bound time.Duration
	Chunk bool // the bound is on the per-event transit
	Best  [2]float64
	Steps [2][]step
}

func (c *capacity) ratio() float64 {
	if c.Best[bare] == 0 {
		return math.NaN()
	}
	return c.Best[with] / c.Best[bare]
}

// ladder decides a side's next rate: double from start until a step
// fails, then bisect between the best pass and the lowest failure until they
// are within 12.5% of each other.
type ladder struct {
	start, lo, hi float64 // hi 0: no failure yet
	steps, max    int
}

func (l *ladder) next() (float64, bool) {
	if l.steps >= l.max {
		return 0, false
	}
	switch {
	case l.hi == 0 && l.lo == 0:
		return l.start, true
	case l.hi == 0:
		return l.lo * 2, true
	case l.lo == 0:
		if l.hi <= 2 {
			return 0, false
		}
		return math.Round(l.hi / 2), true
	case (l.hi-l.lo)/l.lo <= 0.125:
		return 0, false
	default:
		return math.Round((l.lo + l.hi) / 2), true
	}
}

func (l *ladder) record(rate float64, pass bool) {
	l.steps++
	if pass {
		l.lo = max(l.lo, rate)
	} else if l.hi == 0 || rate < l.hi {
		l.hi = rate
	}
}

// search finds each side's capacity, alone: both climb their own ladder
// from the same start, taking turns step by step (the order swapped every
// round) so that drift of the machine reaches both alike.
func search(r *runner, d *driver, pr procs, idle cpu, start float64, dur time.Duration, maxSteps int) *capacity {
	sc := d.sc
	c := &capacity{Bound: sc.Bound}
	if sc.ChunkBound > 0 {
		c.Bound, c.Chunk = sc.ChunkBound, true
	}
	ls := [2]*ladder{{start: start, max: maxSteps}, {start: start, max: maxSteps}}
	timeout := max(time.Second, 5*sc.Bound)
	for round := 0; ; round++ {
		progressed := false
		for turn := range 2 {
			side := (turn + round) % 2
			rate, ok := ls[side].next()
			if !ok {
				continue
			}
			progressed = true
			p := measure(r, pr, idle, rate, func() []result { return d.openLoop([]int{side}, rate, dur, timeout) })
			st := step{Rate: rate, P50: p.Lat[side].p50(), P99: p.Lat[side].p99(), ChunkP99: p.Chunk[side].p99(),
				N: p.N[side], Errs: p.Errors[side], SelfLoad: p.CPU.self.Seconds() / p.Wall.Seconds()}
			judged := st.P99
			if c.Chunk {
				judged = st.ChunkP99
			}
			if side == with {
				st.TMCPU = p.tmPerReq()
			}
			switch {
			case st.Errs > 0:
				st.Why = fmt.Sprintf("%d errors (%s)", st.Errs, firstOr(p.ErrTexts, ""))
			case judged > c.Bound:
				st.Why = "p99 over the bound"
			default:
				st.Pass = true
			}
			ls[side].record(rate, st.Pass)
			c.Steps[side] = append(c.Steps[side], st)
			time.Sleep(300 * time.Millisecond) // let the last step's connections and queues settle
		}
		if !progressed {
			break
		}
	}
	c.Best = [2]float64{ls[bare].lo, ls[with].lo}
	return c
}

func firstOr(s []string, def string) string {
	if len(s) == 0 {
		return def
	}
	return s[0]
}

// criterion says what a sustained step kept under its bound.
func (c *capacity) criterion() string {
	if c.Chunk {
		return "per-event transit p99 ≤ " + us(c.Bound)
	}
	return "p99 ≤ " + us(c.Bound)
}
