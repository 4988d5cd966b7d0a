package badgerstore_test

import (
	"context"
	"testing"
	"time"

	"github.com/tokenmeter/tokenmeter/ratelimit"
	"github.com/tokenmeter/tokenmeter/ratelimit/badgerstore"
	"github.com/tokenmeter/tokenmeter/ratelimit/storetest"
)

var _ ratelimit.Records = (*badgerstore.Store)(nil)

// TestRecords runs the shared suite of ratelimit.Records on the in-memory
// store.
func TestRecords(t *testing.T) {
	storetest.RunRecords(t, func(t *testing.T, now func() time.Time) ratelimit.Records {
		s, err := badgerstore.Open(badgerstore.Options{InMemory: true, Now: now})
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}

// Records are durable: what the suite cannot see on an in-memory store.
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
