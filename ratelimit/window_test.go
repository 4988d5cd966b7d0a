package ratelimit_test

import (
	"context"
	"testing"
	"time"
	_ "time/tzdata" // the zones below, whatever the machine has installed

	"github.com/tokenmeter/tokenmeter/internal/attribution"
	"github.com/tokenmeter/tokenmeter/ratelimit"
	"github.com/tokenmeter/tokenmeter/ratelimit/badgerstore"
)

func zone(t *testing.T, name string) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation(name)
	if err != nil {
		t.Fatal(err)
	}
	return loc
}

func utc(s string) time.Time {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return t.UTC()
}

// Every window, in UTC and in zones with daylight saving and with half-hour
// offsets: the start and end are local calendar boundaries.
func TestWindowBounds(t *testing.T) {
	paris, kolkata, nyc := zone(t, "Europe/Paris"), zone(t, "Asia/Kolkata"), zone(t, "America/New_York")
	tests := []struct {
		name       string
		w          ratelimit.Window
		loc        *time.Location
		at         string
		start, end string
	}{
		{"minute", ratelimit.Minute, nil, "2026-03-01T10:04:59.999Z", "2026-03-01T10:04:00Z", "2026-03-01T10:05:00Z"},
		{"hour", ratelimit.Hour, nil, "2026-03-01T10:59:59Z", "2026-03-01T10:00:00Z", "2026-03-01T11:00:00Z"},
		{"hour in a half-hour zone", ratelimit.Hour, kolkata, "2026-03-01T10:20:00Z", "2026-03-01T09:30:00Z", "2026-03-01T10:30:00Z"},
		{"day", ratelimit.Day, nil, "2026-03-01T23:59:59Z", "2026-03-01T00:00:00Z", "2026-03-02T00:00:00Z"},
		{"day in Paris", ratelimit.Day, paris, "2026-11-22T23:30:00Z", "2026-11-22T23:00:00Z", "2026-11-23T23:00:00Z"},
		{"23-hour day: spring forward", ratelimit.Day, paris, "2026-03-29T12:00:00Z", "2026-03-28T23:00:00Z", "2026-03-29T22:00:00Z"},
		{"25-hour day: fall back", ratelimit.Day, paris, "2026-10-25T12:00:00Z", "2026-10-24T22:00:00Z", "2026-10-25T23:00:00Z"},
		{"week from Monday", ratelimit.Week, nil, "2026-11-22T12:00:00Z", "2026-11-16T00:00:00Z", "2026-11-23T00:00:00Z"},
		{"week on a Monday", ratelimit.Week, nil, "2026-11-23T00:00:00Z", "2026-11-23T00:00:00Z", "2026-11-30T00:00:00Z"},
		{"week across a year", ratelimit.Week, nyc, "2027-01-01T12:00:00Z", "2026-12-28T05:00:00Z", "2027-01-04T05:00:00Z"},
		{"month, leap February", ratelimit.Month, nil, "2028-02-29T23:00:00Z", "2028-02-01T00:00:00Z", "2028-03-01T00:00:00Z"},
		{"month in New York", ratelimit.Month, nyc, "2026-12-01T03:00:00Z", "2026-11-01T04:00:00Z", "2026-12-01T05:00:00Z"},
		{"year", ratelimit.Year, nil, "2026-12-31T23:59:59Z", "2026-01-01T00:00:00Z", "2027-01-01T00:00:00Z"},
		{"year in Paris", ratelimit.Year, paris, "2026-12-31T23:30:00Z", "2026-12-31T23:00:00Z", "2027-12-31T23:00:00Z"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			start, end := tt.w.Bounds(utc(tt.at), tt.loc)
			if !start.Equal(utc(tt.start)) || !end.Equal(utc(tt.end)) {
				t.Fatalf("Bounds(%s) = [%s, %s), want [%s, %s)", tt.at, start.Format(time.RFC3339), end.Format(time.RFC3339), tt.start, tt.end)
			}
		})
	}
	if start, end := ratelimit.Total.Bounds(time.Now(), nil); start.Unix() != 0 || end.Year() < 2100 {
		t.Fatalf("total: [%s, %s)", start, end)
	}
}

type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time { return c.t }

func limiter(t *testing.T, clk *fakeClock, budgets ...ratelimit.Budget) *ratelimit.Limiter {
	t.Helper()
	store, err := badgerstore.Open(badgerstore.Options{InMemory: true, Now: clk.now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	return ratelimit.New(budgets, store, ratelimit.Options{Now: clk.now})
}

func admit(t *testing.T, l *ratelimit.Limiter, a ratelimit.Amounts) (*ratelimit.Reservation, *ratelimit.Denial) {
	t.Helper()
	r, den, err := l.Reserve(context.Background(), attribution.Dimensions{}, a)
	if err != nil {
		t.Fatal(err)
	}
	return r, den
}

// A rolling minute (RPM) forgets a request sixty seconds after it, to the
// bucket, whatever the calendar minute.
func TestRollingWindow(t *testing.T) {
	t0 := utc("2026-11-22T10:00:30Z")
	clk := &fakeClock{t0}
	l := limiter(t, clk, ratelimit.Budget{Name: "rpm", Unit: ratelimit.Requests, Limit: 3, Rolling: time.Minute})
	one := ratelimit.Amounts{Requests: 1}
	for i := 0; i < 3; i++ {
		r, den := admit(t, l, one)
		if den != nil {
			t.Fatalf("request %d denied: %v", i, den)
		}
		if err := l.Settle(context.Background(), r, one); err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			clk.t = t0.Add(20 * time.Second) // the next two are later
		}
	}
	// At t0+59.999s the first request is still inside the last minute.
	clk.t = t0.Add(time.Minute - time.Millisecond)
	_, den := admit(t, l, one)
	if den == nil {
		t.Fatal("a 4th request inside the rolling minute was admitted")
	}
	if den.RetryAfter != time.Second {
		t.Fatalf("retry after %v, want the bucket's 1s", den.RetryAfter)
	}
	// At t0+60s the first has left; the other two are 40s old.
	clk.t = t0.Add(time.Minute)
	if _, den := admit(t, l, one); den != nil {
		t.Fatalf("after the first left the window: %v", den)
	}
	if _, den := admit(t, l, one); den == nil {
		t.Fatal("two in the window plus two more exceeds 3")
	}
	st, err := l.Status(context.Background())
	if err != nil || len(st) != 1 || st[0].Counter != (ratelimit.Counter{Spent: 2, Reserved: 1}) {
		t.Fatalf("status = %+v %v, want spent 2 (summed buckets) reserved 1", st, err)
	}
}

// A concurrency cap counts requests in flight and charges nothing.
func TestConcurrencyCap(t *testing.T) {
	clk := &fakeClock{utc("2026-11-22T10:00:00Z")}
	l := limiter(t, clk, ratelimit.Budget{Name: "inflight", Unit: ratelimit.Concurrent, Limit: 2})
	one := ratelimit.Amounts{Requests: 1, Tokens: 500}
	a, _ := admit(t, l, one)
	if _, den := admit(t, l, one); den != nil {
		t.Fatal(den)
	}
	if _, den := admit(t, l, one); den == nil {
		t.Fatal("a third request in flight was admitted")
	}
	if err := l.Settle(context.Background(), a, one); err != nil {
		t.Fatal(err)
	}
	if _, den := admit(t, l, one); den != nil {
		t.Fatalf("after one ended: %v", den)
	}
	st, _ := l.Status(context.Background())
	if len(st) != 1 || st[0].Counter != (ratelimit.Counter{Reserved: 2}) {
		t.Fatalf("status = %+v, want 2 in flight, nothing spent", st)
	}
}

// A shadow budget admits everything and reports what it would have denied.
func TestShadowBudget(t *testing.T) {
	clk := &fakeClock{utc("2026-11-22T10:00:00Z")}
	l := limiter(t, clk, ratelimit.Budget{Name: "trial", Unit: ratelimit.Tokens, Limit: 100, Window: ratelimit.Day, Shadow: true})
	var shadowed []int64
	for i := 0; i < 3; i++ {
		r, den := admit(t, l, ratelimit.Amounts{Tokens: 40})
		if den != nil {
			t.Fatalf("shadow budget denied request %d", i)
		}
		for _, s := range r.Shadowed {
			shadowed = append(shadowed, s.Spent+s.Reserved)
		}
		if rem := l.Remaining(r); len(rem) != 0 {
			t.Fatalf("shadow budgets send no remaining headers: %+v", rem)
		}
	}
	// 40 and 80 fit; the third (80 held + 40) would have been denied.
	if len(shadowed) != 1 || shadowed[0] != 80 {
		t.Fatalf("shadowed = %v, want one would-be denial at 80 used", shadowed)
	}
	if den, err := l.Precheck(context.Background(), attribution.Dimensions{}); den != nil || err != nil {
		t.Fatalf("precheck must skip shadow budgets: %v %v", den, err)
	}
}

func TestRemaining(t *testing.T) {
	clk := &fakeClock{utc("2026-11-22T10:00:00Z")}
	l := limiter(t, clk,
		ratelimit.Budget{Name: "day", Unit: ratelimit.Tokens, Limit: 1000, Window: ratelimit.Day, Location: zone(t, "Europe/Paris")},
		ratelimit.Budget{Name: "tpm", Unit: ratelimit.Tokens, Limit: 300, Rolling: time.Minute})
	r, den := admit(t, l, ratelimit.Amounts{Tokens: 120})
	if den != nil {
		t.Fatal(den)
	}
	rem := l.Remaining(r)
	want := []struct {
		name   string
		left   int64
		resets time.Time
	}{{"day", 880, utc("2026-11-22T23:00:00Z")}, {"tpm", 180, utc("2026-11-22T10:00:01Z")}}
	if len(rem) != len(want) {
		t.Fatalf("remaining = %+v", rem)
	}
	for i, w := range want {
		if rem[i].Budget.Name != w.name || rem[i].Remaining != w.left || !rem[i].Resets.Equal(w.resets) {
			t.Errorf("%d: %s %d %s, want %s %d %s", i, rem[i].Budget.Name, rem[i].Remaining, rem[i].Resets, w.name, w.left, w.resets)
		}
	}
}

// A wildcard budget's limit is the default for keys it has not seen; a key
// with a limit of its own gets that one.
func TestKeyLimits(t *testing.T) {
	clk := &fakeClock{utc("2026-11-22T10:00:00Z")}
	store, err := badgerstore.Open(badgerstore.Options{InMemory: true, Now: clk.now})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	b := ratelimit.Budget{Name: "per-user", Match: []ratelimit.Match{{Dimension: "user", Value: ratelimit.Wildcard}},
		Unit: ratelimit.Requests, Limit: 1, KeyLimits: map[string]int64{"user=ann": 3}, Window: ratelimit.Day}
	l := ratelimit.New([]ratelimit.Budget{b}, store, ratelimit.Options{Now: clk.now})
	ctx := context.Background()
	admitted := map[string]int{}
	for _, user := range []string{"ann", "bob", "cy"} {
		d := attribution.Dimensions{Names: []string{"user"}, Values: []string{user}}
		for i := 0; i < 5; i++ {
			r, den, err := l.Reserve(ctx, d, ratelimit.Amounts{Requests: 1})
			if err != nil {
				t.Fatal(err)
			}
			if den != nil {
				if den.Limit != b.LimitFor("user="+user) {
					t.Fatalf("%s denied at limit %d", user, den.Limit)
				}
				continue
			}
			admitted[user]++
			if err := l.Settle(ctx, r, ratelimit.Amounts{Requests: 1}); err != nil {
				t.Fatal(err)
			}
		}
	}
	if admitted["ann"] != 3 || admitted["bob"] != 1 || admitted["cy"] != 1 {
		t.Fatalf("admitted %v, want ann 3, bob 1, cy 1", admitted)
	}
	for _, tt := range []struct {
		key, err string
	}{
		{"user=ann", ""},
		{"ann", "want a key of the form user=VALUE (a ',', '=' or '%' in a value written %2C, %3D, %25)"},
		{"user=", "want a key of the form user=VALUE (a ',', '=' or '%' in a value written %2C, %3D, %25)"},
	} {
		err := b.CheckKey(tt.key)
		if (err == nil) != (tt.err == "") || err != nil && err.Error() != tt.err {
			t.Errorf("CheckKey(%q) = %v, want %q", tt.key, err, tt.err)
		}
	}
}

// Values holding ',' or '=' cannot make two callers share a counter.
func TestKeyEscaping(t *testing.T) {
	b := ratelimit.Budget{Name: "b", Match: []ratelimit.Match{{Dimension: "project", Value: ratelimit.Wildcard}, {Dimension: "user", Value: ratelimit.Wildcard}}}
	dims := func(p, u string) attribution.Dimensions {
		return attribution.Dimensions{Names: []string{"project", "user"}, Values: []string{p, u}}
	}
	k1, _ := b.Key(dims("a,user=b", "c"))
	k2, _ := b.Key(dims("a", "b,user=c"))
	if k1 == k2 {
		t.Fatalf("two callers share the key %q", k1)
	}
	if k1 != "project=a%2Cuser%3Db,user=c" {
		t.Fatalf("key %q", k1)
	}
	terms := ratelimit.KeyTerms(k1)
	if terms["project"] != "a,user=b" || terms["user"] != "c" || len(terms) != 2 {
		t.Fatalf("terms %v", terms)
	}
	if err := b.CheckKey(k1); err != nil {
		t.Fatal(err)
	}
}
