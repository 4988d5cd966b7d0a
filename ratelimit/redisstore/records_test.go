package redisstore

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tokenmeter/tokenmeter/ratelimit"
	"github.com/tokenmeter/tokenmeter/ratelimit/redisstore/redistest"
	"github.com/tokenmeter/tokenmeter/ratelimit/storetest"
)

// recordsOpener opens each records case's store under a prefix of its own.
func recordsOpener(addrs []string, cluster bool) storetest.OpenRecords {
	var n atomic.Int64
	return func(t *testing.T, now func() time.Time) ratelimit.Records {
		return openStore(t, Options{Addrs: addrs, Cluster: cluster, KeyPrefix: fmt.Sprintf("records%d", n.Add(1)), Now: now})
	}
}

func TestRecords(t *testing.T) {
	storetest.RunRecords(t, recordsOpener([]string{redistest.Start(t, false)}, false))
}

// Records and claims live at the documented keys, out of reach of the
// counters' SCANs: a Reset of budgets named like their tags, and List, leave
// them alone. A claim's TTL is until minus the store's (fake) clock.
func TestRecordsLayout(t *testing.T) {
	addr := redistest.Start(t, false)
	s := openStore(t, Options{Addrs: []string{addr}, Now: func() time.Time { return t0 }})
	defer s.Close()
	rc := redistest.Client(addr)
	defer rc.Close()
	ctx := context.Background()

	if err := s.PutRecord(ctx, "budget", "b", []byte("def")); err != nil {
		t.Fatal(err)
	}
	if ok, err := s.Claim(ctx, "alert", t0.Add(time.Hour+time.Nanosecond)); err != nil || !ok {
		t.Fatal(ok, err)
	}
	recKey, claimKey := "tm:{rec\x1ebudget}:h", "tm:{claim\x1ealert}:k"
	if v, err := rc.HGet(ctx, recKey, "b").Result(); err != nil || v != "def" {
		t.Fatalf("HGET %q b = %q %v", recKey, v, err)
	}
	// Rounded up to the millisecond; Redis's clock has run a little since.
	if ttl, err := rc.PTTL(ctx, claimKey).Result(); err != nil || ttl <= time.Hour-time.Minute || ttl > time.Hour+time.Millisecond {
		t.Fatalf("PTTL %q = %v %v, want just under 1h", claimKey, ttl, err)
	}

	for _, b := range []string{"rec", "claim", "rec\x1ebudget", ""} {
		if err := s.Reset(ctx, b, ""); err != nil {
			t.Fatal(err)
		}
	}
	if states, err := s.List(ctx, t0); err != nil || len(states) != 0 {
		t.Fatalf("list = %v %v, want no counters", states, err)
	}
	if got, err := s.ListRecords(ctx, "budget"); err != nil || string(got["b"]) != "def" {
		t.Fatalf("after resets: records %q %v", got, err)
	}
	if ok, err := s.Claim(ctx, "alert", t0.Add(time.Hour)); err != nil || ok {
		t.Fatalf("after resets: claim %v %v, want still claimed", ok, err)
	}
}

// Another program's key of the wrong type at a records key is an error that
// names the operation, not a panic or an empty list.
func TestRecordsWrongType(t *testing.T) {
	addr := redistest.Start(t, false)
	s := openStore(t, Options{Addrs: []string{addr}})
	defer s.Close()
	rc := redistest.Client(addr)
	defer rc.Close()
	ctx := context.Background()
	if err := rc.Set(ctx, "tm:{rec\x1ebudget}:h", "not a hash", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if err := rc.HSet(ctx, "tm:{claim\x1ek}:k", "f", "v").Err(); err != nil {
		t.Fatal(err)
	}
	checks := map[string]error{}
	_, checks["list budget records"] = s.ListRecords(ctx, "budget")
	checks[`put budget record "a"`] = s.PutRecord(ctx, "budget", "a", nil)
	checks[`delete budget record "a"`] = s.DeleteRecord(ctx, "budget", "a")
	for op, err := range checks {
		if err == nil || !strings.Contains(err.Error(), op) || !strings.Contains(err.Error(), "WRONGTYPE") {
			t.Errorf("%s: error %v", op, err)
		}
	}
	// SET NX does not look at the type of what is there: taken is taken.
	if ok, err := s.Claim(ctx, "k", time.Now().Add(time.Hour)); err != nil || ok {
		t.Errorf("claim over a hash: %v %v", ok, err)
	}
}
