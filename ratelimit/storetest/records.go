package storetest

import (
	"bytes"
	"context"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tokenmeter/tokenmeter/ratelimit"
)

// OpenRecords returns a new, empty store of records whose clock is now.
// RunRecords calls it once per case and, when the store has a Close() error
// method, closes it when the case ends.
type OpenRecords func(t *testing.T, now func() time.Time) ratelimit.Records

// RunRecords runs the cases of ratelimit.Records, each on a store of its own.
func RunRecords(t *testing.T, open OpenRecords) {
	cases := []struct {
		name string
		run  func(*testing.T, *recordsFixture)
	}{
		{"put_list_delete", testPutListDelete},
		{"kinds_are_separate", testKindsSeparate},
		{"binary_safe", testBinarySafe},
		{"claim_once", testClaimOnce},
		{"claim_past", testClaimPast},
		{"claim_expires", testClaimExpires},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			clk := newClock(t0)
			s := open(t, clk.Now)
			if c, ok := s.(interface{ Close() error }); ok {
				t.Cleanup(func() {
					if err := c.Close(); err != nil {
						t.Errorf("close: %v", err)
					}
				})
			}
			c.run(t, &recordsFixture{t: t, ctx: context.Background(), clk: clk, s: s})
		})
	}
}

// recordsFixture is one case's store and clock, with helpers that fail the
// test on a store error.
type recordsFixture struct {
	t   *testing.T
	ctx context.Context
	clk *clock
	s   ratelimit.Records
}

func (f *recordsFixture) put(kind, name string, data []byte) {
	f.t.Helper()
	if err := f.s.PutRecord(f.ctx, kind, name, data); err != nil {
		f.t.Fatalf("put %s %q: %v", kind, name, err)
	}
}

func (f *recordsFixture) del(kind, name string) {
	f.t.Helper()
	if err := f.s.DeleteRecord(f.ctx, kind, name); err != nil {
		f.t.Fatalf("delete %s %q: %v", kind, name, err)
	}
}

// wantRecords checks ListRecords(kind) against want, by name.
func (f *recordsFixture) wantRecords(kind string, want map[string][]byte) {
	f.t.Helper()
	got, err := f.s.ListRecords(f.ctx, kind)
	if err != nil {
		f.t.Fatalf("list %s: %v", kind, err)
	}
	names := map[string]bool{}
	for n := range got {
		names[n] = true
	}
	for n := range want {
		names[n] = true
	}
	sorted := make([]string, 0, len(names))
	for n := range names {
		sorted = append(sorted, n)
	}
	sort.Strings(sorted)
	for _, n := range sorted {
		g, gok := got[n]
		w, wok := want[n]
		switch {
		case !gok:
			f.t.Errorf("list %s: %q missing", kind, n)
		case !wok:
			f.t.Errorf("list %s: %q = %q, want none", kind, n, g)
		case !bytes.Equal(g, w):
			f.t.Errorf("list %s: %q = %q, want %q", kind, n, g, w)
		}
	}
}

func (f *recordsFixture) claim(key string, until time.Time) bool {
	f.t.Helper()
	ok, err := f.s.Claim(f.ctx, key, until)
	if err != nil {
		f.t.Fatalf("claim %q: %v", key, err)
	}
	return ok
}

func testPutListDelete(t *testing.T, f *recordsFixture) {
	f.wantRecords("budget", nil)
	f.put("budget", "a", []byte(`{"x":1}`))
	f.put("budget", "b", []byte(`{"y":2}`))
	f.wantRecords("budget", map[string][]byte{"a": []byte(`{"x":1}`), "b": []byte(`{"y":2}`)})

	f.put("budget", "a", []byte(`{"x":3}`))
	f.wantRecords("budget", map[string][]byte{"a": []byte(`{"x":3}`), "b": []byte(`{"y":2}`)})

	f.del("budget", "b")
	f.wantRecords("budget", map[string][]byte{"a": []byte(`{"x":3}`)})
	// Deleting nothing is not an error: a missing name, again, of a kind
	// never written.
	f.del("budget", "b")
	f.del("budget", "never")
	f.del("nothing", "a")
	f.wantRecords("budget", map[string][]byte{"a": []byte(`{"x":3}`)})

	f.del("budget", "a")
	f.wantRecords("budget", nil)
	f.put("budget", "a", []byte("again"))
	f.wantRecords("budget", map[string][]byte{"a": []byte("again")})
}

// A name in one kind is not the same name in another, whatever the kinds
// share as text.
func testKindsSeparate(t *testing.T, f *recordsFixture) {
	kinds := []string{"budget", "budgets", "budge", "budget|a", "budget\x1fa", "a"}
	for _, k := range kinds {
		f.put(k, "a", []byte(k))
	}
	for _, k := range kinds {
		f.wantRecords(k, map[string][]byte{"a": []byte(k)})
	}
	f.del("budget", "a")
	f.wantRecords("budget", nil)
	for _, k := range kinds[1:] {
		f.wantRecords(k, map[string][]byte{"a": []byte(k)})
	}
}

// Data is any bytes, names any string: neither is a key's text to escape
// wrongly or a separator to split on.
func testBinarySafe(t *testing.T, f *recordsFixture) {
	all := make([]byte, 256)
	for i := range all {
		all[i] = byte(i)
	}
	want := map[string][]byte{
		"bytes":   all,
		"empty":   {},
		"a|b":     []byte("pipe"),
		"x\x1fy":  []byte("unit separator"),
		"x\x1ey":  []byte("record separator"),
		"x\x00y":  []byte("nul"),
		"{b}*?[%": []byte("tag and glob"),
		"ünï—☃":   []byte("unicode"),
		"x":       []byte("a prefix of the others"),
	}
	for n, d := range want {
		f.put("bin\x1fkind{%}", n, d)
	}
	f.wantRecords("bin\x1fkind{%}", want)
}

// Of many racing claims of one key, exactly one wins; other keys are not
// taken by it.
func testClaimOnce(t *testing.T, f *recordsFixture) {
	const key, racers = "threshold|b|k|0|50", 32
	until := f.clk.Now().Add(time.Hour)
	var won atomic.Int64
	var wg sync.WaitGroup
	for range racers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ok, err := f.s.Claim(f.ctx, key, until)
			if err != nil {
				t.Error(err)
			}
			if ok {
				won.Add(1)
			}
		}()
	}
	wg.Wait()
	if n := won.Load(); n != 1 {
		t.Fatalf("%d of %d racing claims won, want 1", n, racers)
	}
	if f.claim(key, until.Add(time.Hour)) {
		t.Error("a claimed key was claimed again")
	}
	for _, k := range []string{"threshold|b|k|0|80", "threshold|b|k|0|5", "x\x1fy", "{claim}*", "ünï"} {
		if !f.claim(k, until) {
			t.Errorf("claim %q: taken by another key's claim", k)
		}
	}
}

// A claim for a window already over is refused, and takes nothing.
func testClaimPast(t *testing.T, f *recordsFixture) {
	now := f.clk.Now()
	for _, until := range []time.Time{now.Add(-time.Second), now, {}} {
		if f.claim("k", until) {
			t.Errorf("a claim until %v at %v was granted", until, now)
		}
	}
	if !f.claim("k", now.Add(time.Hour)) {
		t.Error("a refused claim in the past took the key")
	}
}

// A claim ends at until. Both stores expire claims by a TTL that the
// backend counts in real time (Redis by its own clock, Badger by the
// process's), so this case cannot move the fake clock alone: it claims a
// few hundred milliseconds ahead and polls real time, bounded, for the end.
func testClaimExpires(t *testing.T, f *recordsFixture) {
	const key = "threshold|b|k|0|90"
	until := f.clk.Now().Add(500 * time.Millisecond)
	if !f.claim(key, until) {
		t.Fatal("first claim refused")
	}
	if f.claim(key, f.clk.Now().Add(time.Hour)) {
		t.Fatal("claimed twice before until")
	}
	f.clk.Set(until.Add(time.Second))
	start := time.Now()
	for !f.claim(key, f.clk.Now().Add(time.Hour)) {
		if time.Since(start) > 3*time.Second {
			t.Fatal("the claim had not expired 3s (real time) after until")
		}
		time.Sleep(25 * time.Millisecond)
	}
	if f.claim(key, f.clk.Now().Add(time.Hour)) {
		t.Fatal("the renewed claim was granted twice")
	}
}
