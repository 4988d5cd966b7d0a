package redisstore

import (
	"context"
	"fmt"
	"math"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tokenmeter/tokenmeter/ratelimit"
	"github.com/tokenmeter/tokenmeter/ratelimit/redisstore/redistest"
	"github.com/tokenmeter/tokenmeter/ratelimit/storetest"
)

var t0 = time.Date(2026, 5, 5, 12, 0, 0, 0, time.UTC)

func openStore(tb testing.TB, o Options) *Store {
	tb.Helper()
	s, err := Open(context.Background(), o)
	if err != nil {
		tb.Fatal(err)
	}
	return s
}

// opener opens each suite case's store under a prefix of its own, so cases
// share one server without flushing it.
func opener(addrs []string, cluster bool) storetest.Open {
	var n atomic.Int64
	return func(t *testing.T, now func() time.Time) ratelimit.Store {
		return openStore(t, Options{Addrs: addrs, Cluster: cluster, KeyPrefix: fmt.Sprintf("case%d", n.Add(1)), Now: now})
	}
}

func TestStore(t *testing.T) {
	storetest.Run(t, opener([]string{redistest.Start(t, false)}, false))
}

// Three replicas, three clients, one Redis: 200 requests spread over them
// never overshoot the shared budget.
func TestReplicas(t *testing.T) {
	addr := redistest.Start(t, false)
	now := func() time.Time { return t0 }
	stores := make([]ratelimit.Store, 3)
	for i := range stores {
		s := openStore(t, Options{Addrs: []string{addr}, KeyPrefix: "replicas", Now: now})
		defer s.Close()
		stores[i] = s
	}
	storetest.RunShared(t, now, stores...)
}

func TestCluster(t *testing.T) {
	addrs := redistest.Cluster(t)
	ctx := context.Background()
	check := openStore(t, Options{Addrs: addrs, Cluster: true})
	defer check.Close()

	// The overshoot case's requests must span slots, and nodes.
	slots, nodes := map[int]bool{}, map[int]bool{}
	for _, id := range storetest.SharedFamilies(t0) {
		f := check.family(id.Budget, id.Key)
		want, err := check.cluster.ClusterKeySlot(ctx, f.keys[0]).Result()
		if err != nil {
			t.Fatal(err)
		}
		if int64(f.slot) != want {
			t.Fatalf("%s/%s: slot %d, Redis says %d", id.Budget, id.Key, f.slot, want)
		}
		slots[f.slot] = true
		nodes[f.slot*3/16384] = true
	}
	if len(slots) < 3 || len(nodes) < 2 {
		t.Fatalf("the shared families span %d slots on %d nodes, want several of each", len(slots), len(nodes))
	}

	t.Run("suite", func(t *testing.T) { storetest.Run(t, opener(addrs, true)) })
	t.Run("records", func(t *testing.T) { storetest.RunRecords(t, recordsOpener(addrs, true)) })
	t.Run("refusal_undoes_lower_slots", func(t *testing.T) { testUndoAcrossSlots(t, addrs) })
	t.Run("replicas", func(t *testing.T) {
		now := func() time.Time { return t0 }
		stores := make([]ratelimit.Store, 3)
		for i := range stores {
			s := openStore(t, Options{Addrs: addrs, Cluster: true, KeyPrefix: "replicas", Now: now})
			defer s.Close()
			stores[i] = s
		}
		storetest.RunShared(t, now, stores...)
	})
}

// A Reserve over three slots whose last slot refuses has reserved the first
// two, and must release them again, reporting their counters before.
func testUndoAcrossSlots(t *testing.T, addrs []string) {
	s := openStore(t, Options{Addrs: addrs, Cluster: true, KeyPrefix: "undo", Now: func() time.Time { return t0 }})
	defer s.Close()
	ctx := context.Background()
	start, end := time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC), time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)
	holds := []ratelimit.Hold{}
	for _, b := range []string{"x", "y", "z"} {
		holds = append(holds, ratelimit.Hold{ID: ratelimit.CounterID{Budget: b, Key: "all", Start: start}, Limit: 100, Amount: 60, End: end})
	}
	slices.SortFunc(holds, func(a, b ratelimit.Hold) int {
		return s.family(b.ID.Budget, b.ID.Key).slot - s.family(a.ID.Budget, a.ID.Key).slot
	})
	// holds[0] has the highest slot: its group runs last.
	if p := s.plan(holds); p.groupCount() != 3 || p.holds[2][0] != 0 {
		t.Fatalf("want three groups, hold 0's last: %+v", p)
	}
	first := ratelimit.Lease{ID: "first", Expires: t0.Add(time.Hour)}
	if res, err := s.Reserve(ctx, first, holds[:1]); err != nil || res.Refused != -1 {
		t.Fatal(res, err)
	}
	res, err := s.Reserve(ctx, ratelimit.Lease{ID: "second", Expires: t0.Add(time.Hour)}, holds)
	if err != nil {
		t.Fatal(err)
	}
	want := []ratelimit.Counter{{Reserved: 60}, {}, {}}
	if res.Refused != 0 || !slices.Equal(res.Counters, want) {
		t.Fatalf("reserve = %+v, want hold 0 refused with counters %+v", res, want)
	}
	for i, h := range holds {
		if c, err := s.Get(ctx, h); err != nil || c != want[i] {
			t.Errorf("%s: %+v %v, want %+v", h.ID.Budget, c, err, want[i])
		}
	}
}

// Names with the layout's special characters survive the round trip through
// key names, and Reset of one budget spares its neighbours.
func TestNamesRoundTrip(t *testing.T) {
	s := openStore(t, Options{Addrs: []string{redistest.Start(t, false)}, Now: func() time.Time { return t0 }})
	defer s.Close()
	ctx := context.Background()
	start, end := time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC), time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)
	names := [][2]string{
		{"b", "team={x}*,user=%41?[a]\\"},
		{"b", "all"},
		{"b.c", "all"}, // a Reset of "b" must spare "b.c" and "bc"
		{"bc", "all"},
	}
	for i, n := range names {
		h := ratelimit.Hold{ID: ratelimit.CounterID{Budget: n[0], Key: n[1], Start: start}, Limit: 100, Amount: 1, End: end}
		lease := ratelimit.Lease{ID: fmt.Sprint(i), Expires: t0.Add(time.Hour)}
		if res, err := s.Reserve(ctx, lease, []ratelimit.Hold{h}); err != nil || res.Refused != -1 {
			t.Fatal(res, err)
		}
		if err := s.Settle(ctx, lease, []ratelimit.Hold{h}, []int64{int64(i + 1)}); err != nil {
			t.Fatal(err)
		}
	}
	list := func() map[[2]string]int64 {
		states, err := s.List(ctx, t0)
		if err != nil {
			t.Fatal(err)
		}
		out := map[[2]string]int64{}
		for _, st := range states {
			if !st.ID.Start.Equal(start) {
				t.Errorf("%v: start %v", st.ID, st.ID.Start)
			}
			out[[2]string{st.ID.Budget, st.ID.Key}] = st.Spent
		}
		return out
	}
	got := list()
	for i, n := range names {
		if got[n] != int64(i+1) {
			t.Errorf("%q: listed spent %d, want %d (list %v)", n, got[n], i+1, got)
		}
	}
	if err := s.Reset(ctx, "b", ""); err != nil {
		t.Fatal(err)
	}
	got = list()
	if len(got) != 2 || got[names[2]] != 3 || got[names[3]] != 4 {
		t.Errorf("after reset of b: %v", got)
	}
}

// Keys get a TTL past their window's end, from the store's clock, and a new
// window drops the ended one's counters.
func TestKeysExpireAndPrune(t *testing.T) {
	clk := t0
	addr := redistest.Start(t, false)
	s := openStore(t, Options{Addrs: []string{addr}, Now: func() time.Time { return clk }})
	defer s.Close()
	rc := redistest.Client(addr)
	defer rc.Close()
	ctx := context.Background()
	hold := func(now time.Time) ratelimit.Hold {
		start := now.Truncate(time.Minute)
		return ratelimit.Hold{ID: ratelimit.CounterID{Budget: "m", Key: "all", Start: start}, Limit: 10, Amount: 1, End: start.Add(time.Minute)}
	}
	lease := ratelimit.Lease{ID: "one", Expires: t0.Add(time.Hour)}
	h := hold(clk)
	if _, err := s.Reserve(ctx, lease, []ratelimit.Hold{h}); err != nil {
		t.Fatal(err)
	}
	f := s.family("m", "all")
	for _, k := range f.keys {
		ttl, err := rc.PTTL(ctx, k).Result()
		if err != nil {
			t.Fatal(err)
		}
		// The window ends in a minute: the key lives one to two hours more.
		if lo, hi := time.Minute+grace, time.Minute+2*grace; ttl < lo-time.Minute || ttl > hi {
			t.Errorf("%q: TTL %v, want in [%v, %v]", k, ttl, lo, hi)
		}
	}
	if err := s.Settle(ctx, lease, []ratelimit.Hold{h}, []int64{1}); err != nil {
		t.Fatal(err)
	}
	clk = t0.Add(time.Minute)
	next := ratelimit.Lease{ID: "two", Expires: clk.Add(time.Hour)}
	if _, err := s.Reserve(ctx, next, []ratelimit.Hold{hold(clk)}); err != nil {
		t.Fatal(err)
	}
	fields, err := rc.HKeys(ctx, f.keys[0]).Result()
	if err != nil {
		t.Fatal(err)
	}
	want := "r" + ms(clk) + " e" + ms(clk)
	if got := strings.Join(fields, " "); len(fields) != 2 || !strings.Contains(want, fields[0]) || !strings.Contains(want, fields[1]) {
		t.Errorf("fields after the minute: %q, want %q", got, want)
	}
}

func TestOpenErrors(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name string
		o    Options
		want string
	}{
		{"no_address", Options{}, "no address"},
		{"several_addresses_without_cluster", Options{Addrs: []string{"a:1", "b:1"}}, "cluster mode"},
		{"db_in_cluster", Options{Addrs: []string{"a:1"}, Cluster: true, DB: 2}, "db 0"},
		{"brace_in_prefix", Options{Addrs: []string{"a:1"}, KeyPrefix: "t{m}"}, "prefix"},
		{"nothing_listening", Options{Addrs: []string{fmt.Sprintf("127.0.0.1:%d", redistest.FreePort(t))}, DialTimeout: time.Second}, "ping 127.0.0.1:"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := Open(ctx, tt.o)
			if err == nil {
				s.Close()
				t.Fatal("Open succeeded")
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %q does not say %q", err, tt.want)
			}
		})
	}
}

func TestOptionsHidePassword(t *testing.T) {
	o := Options{Addrs: []string{"r:6379"}, Username: "tm", Password: "hunter2"}
	for _, s := range []string{o.String(), fmt.Sprint(o), fmt.Sprintf("%+v", o), o.LogValue().String()} {
		if strings.Contains(s, "hunter2") {
			t.Errorf("password shown: %s", s)
		}
	}
}

// Replies of the wrong shape are errors, never panics.
func TestDecodeWeirdReplies(t *testing.T) {
	replies := []any{
		nil, "OK", int64(1), []any{}, []any{"1", "-1"}, []any{int64(1)},
		[]any{int64(1), int64(-1), int64(0)},                              // short counters
		[]any{int64(0), int64(5), int64(0), int64(0), int64(0), int64(0)}, // refused index out of range
		[]any{int64(0), int64(0)},                                         // refused index 0
		[]any{int64(7), int64(0)},                                         // unknown status
		[]any{int64(1), int64(-1), int64(0), int64(0), int64(0), nil},
	}
	for _, r := range replies {
		if _, err := decodeReserve(r, 1); err == nil {
			t.Errorf("decodeReserve(%#v) accepted", r)
		}
	}
	for _, r := range []any{nil, []any{"1", "2"}, []any{"1", "2", int64(3)}, []any{"a", "0", "0"}} {
		if _, err := decodeList(r); err == nil {
			t.Errorf("decodeList(%#v) accepted", r)
		}
	}
}

func TestJoin(t *testing.T) {
	tests := []struct{ hi, lo, want int64 }{
		{0, 0, 0},
		{1, 5, 1_000_000_005},
		{-1, 999_999_999, -1},
		{9_223_372_036, 854_775_807, math.MaxInt64},
		{9_223_372_036, 854_775_808, math.MaxInt64},
		{20_000_000_000, 0, math.MaxInt64},
		{-9_223_372_037, 145_224_192, math.MinInt64},
		{-30_000_000_000, 0, math.MinInt64},
	}
	for _, tt := range tests {
		if got := join(tt.hi, tt.lo); got != tt.want {
			t.Errorf("join(%d, %d) = %d, want %d", tt.hi, tt.lo, got, tt.want)
		}
	}
}

// BenchmarkReserveSettle is one request's admission and settlement through
// the Limiter, with 1, 5 and 20 matching budgets, on a local redis-server:
// two round trips whatever the number of budgets.
func BenchmarkReserveSettle(b *testing.B) {
	addr := redistest.Start(b, false)
	for _, parallel := range []bool{false, true} {
		for _, n := range []int{1, 5, 20} {
			b.Run(fmt.Sprintf("parallel=%t/budgets=%d", parallel, n), func(b *testing.B) {
				s := openStore(b, Options{Addrs: []string{addr}, KeyPrefix: fmt.Sprintf("bench%t%d", parallel, n)})
				defer s.Close()
				storetest.BenchReserveSettle(b, s, n, parallel)
			})
		}
	}
}
