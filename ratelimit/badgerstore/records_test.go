package badgerstore_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tokenmeter/tokenmeter/ratelimit"
	"github.com/tokenmeter/tokenmeter/ratelimit/badgerstore"
)

var _ ratelimit.Records = (*badgerstore.Store)(nil)

func TestRecordsSurviveReopen(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	s, err := badgerstore.Open(badgerstore.Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	for name, v := range map[string]string{"a": `{"x":1}`, "b": `{"y":2}`} {
		if err := s.PutRecord(ctx, "budget", name, []byte(v)); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.PutRecord(ctx, "other", "a", []byte("z")); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteRecord(ctx, "budget", "b"); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s, err = badgerstore.Open(badgerstore.Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	got, err := s.ListRecords(ctx, "budget")
	if err != nil || len(got) != 1 || string(got["a"]) != `{"x":1}` {
		t.Fatalf("records %v %v", got, err)
	}
}

// Of many racing claims of one key, exactly one wins.
func TestClaimOnce(t *testing.T) {
	s, err := badgerstore.Open(badgerstore.Options{InMemory: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var won atomic.Int64
	var wg sync.WaitGroup
	for i := 0; i < 32; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ok, err := s.Claim(context.Background(), "threshold|b|k|0|50", time.Now().Add(time.Hour))
			if err != nil {
				t.Error(err)
			}
			if ok {
				won.Add(1)
			}
		}()
	}
	wg.Wait()
	if won.Load() != 1 {
		t.Fatalf("%d claims won, want 1", won.Load())
	}
	if ok, _ := s.Claim(context.Background(), "other", time.Now().Add(-time.Second)); ok {
		t.Fatal("a claim for a window already over was granted")
	}
}
