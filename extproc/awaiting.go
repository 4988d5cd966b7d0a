package extproc

import (
	"context"
	"strings"
	"sync"
	"time"
)

// Every admitted request ends in exactly one record and releases its hold,
// whatever Envoy does after the gate's answer. In split mode the gate hands
// the request to an observer; when no observer comes (its stream was lost,
// its cluster is down, or Envoy never took the gate's answer because it had
// stopped waiting), nobody would settle or record it, and its hold would sit
// until its lease expired.
//
// So the gate keeps each handoff in a table until its observer claims it.
// An observer in the same process takes it from the table (no store call);
// one on another replica claims the handoff's id in the shared store
// (Records.Claim). Past the deadline the gate's sweeper claims it in the
// store too: whoever claims first finishes the request, so it is settled
// and recorded once across replicas. The sweeper settles an unclaimed
// handoff at its admission estimate (outcome unobserved). That includes the
// rare answer that reached Envoy just after its message_timeout fired: a
// cancelled stream after the answer cannot tell that apart from Envoy
// closing a stream it is done with, so it is charged rather than guessed
// free (a cancellation seen before the answer is sent is unambiguous, and
// released: exchange.notSent).

// claimer is the part of a store that says which process finishes a
// handoff (ratelimit.Records).
type claimer interface {
	Claim(ctx context.Context, key string, until time.Time) (bool, error)
}

// handoffClaimTTL is how long a handoff claim is remembered: far longer than
// any observer can arrive after its gate.
const handoffClaimTTL = time.Hour

// awaitingMax bounds the table: past it the oldest handoffs are swept
// before their deadline (at thousands of requests a second, ten seconds of
// handoffs fit).
const awaitingMax = 1 << 16

type awaitEntry struct {
	x        *exchange
	deadline time.Time
}

type awaiting struct {
	mu       sync.Mutex
	m        map[string]*awaitEntry
	order    []string // ids, oldest first; may hold ids already taken
	sweeping bool     // a sweeper goroutine is running
}

func newAwaiting() *awaiting { return &awaiting{m: map[string]*awaitEntry{}} }

// await keeps x, whose answer carries the handoff id, until its observer
// claims it or deadline passes; it starts the sweeper when none runs (an
// idle server runs no timer).
func (s *Server) await(id string, x *exchange, deadline time.Time) {
	// The table must not keep the request body alive (the gate is done with
	// the prompt; the held chunks go when their answers are built).
	x.in.Body.Prompt = ""
	a := s.awaiting
	a.mu.Lock()
	a.m[id] = &awaitEntry{x: x, deadline: deadline}
	a.order = append(a.order, id)
	start := !a.sweeping
	a.sweeping = true
	a.mu.Unlock()
	if start {
		go s.sweepLoop()
	}
}

// takeLocal removes a handoff made by this process; false when it is not
// there any more (the sweeper finished it: the observer must not).
func (s *Server) takeLocal(id string) bool {
	a := s.awaiting
	a.mu.Lock()
	defer a.mu.Unlock()
	if _, ok := a.m[id]; !ok {
		return false
	}
	delete(a.m, id)
	return true
}

// claim decides whether the observer of handoff id finishes the request. A
// handoff from this process is taken from the table; one from another
// process is claimed in the store. A store error lets the observer go on:
// a double record is better than a lost one, and it is logged.
func (s *Server) claim(ctx context.Context, snap *Snapshot, id string) bool {
	if snap.Config.ObserverDeadline <= 0 {
		return true // the gate keeps no table
	}
	if strings.HasPrefix(id, s.idPrefix+"-") {
		return s.takeLocal(id)
	}
	if snap.Claims == nil || id == "" {
		return true
	}
	ok, err := snap.Claims.Claim(ctx, handoffClaimKey(id), s.now().Add(handoffClaimTTL))
	if err != nil {
		s.observer.StoreError("claim")
		s.log.Error("observer cannot claim its handoff; recording it anyway", "id", id, "err", err)
		return true
	}
	return ok
}

func handoffClaimKey(id string) string { return "handoff|" + id }

// sweepLoop finishes expired handoffs until the table is empty, then
// exits.
func (s *Server) sweepLoop() {
	for {
		wait, more := s.sweep(context.Background(), s.now())
		if !more {
			return
		}
		time.Sleep(min(max(wait, 10*time.Millisecond), time.Second))
	}
}

// sweep finishes the handoffs whose deadline has passed at now. It returns
// how long until the next deadline, and false once the table is empty (the
// loop then exits; the next await starts another).
func (s *Server) sweep(ctx context.Context, now time.Time) (time.Duration, bool) {
	a := s.awaiting
	var due []*awaitEntry
	var ids []string
	a.mu.Lock()
	n := 0
	for ; n < len(a.order); n++ {
		id := a.order[n]
		e, ok := a.m[id]
		if !ok {
			continue // taken by its observer
		}
		if now.Before(e.deadline) && len(a.m) <= awaitingMax {
			break
		}
		delete(a.m, id)
		due, ids = append(due, e), append(ids, id)
	}
	a.order = append(a.order[:0], a.order[n:]...)
	var wait time.Duration
	if len(a.order) > 0 {
		wait = a.m[a.order[0]].deadline.Sub(now)
	} else {
		a.sweeping = false
	}
	more := a.sweeping
	a.mu.Unlock()

	var unobserved int
	for i, e := range due {
		if c := e.x.snap.Claims; c != nil {
			ok, err := c.Claim(ctx, handoffClaimKey(ids[i]), now.Add(handoffClaimTTL))
			if err != nil {
				s.observer.StoreError("claim")
			} else if !ok {
				continue // an observer on another replica has it
			}
		}
		unobserved++
		e.x.unobserved(ctx)
	}
	if unobserved > 0 {
		s.log.Warn("admitted requests had no observer by the deadline; settled at their estimates",
			"count", unobserved, "deadline", due[0].x.snap.Config.ObserverDeadline)
	}
	return wait, more
}
