package webhook

import (
	"container/heap"
	"time"
)

// DefaultDedupTTL is how long a Key is remembered when its alert has no
// WindowEnd (or one already past, e.g. an alert for a window that just
// closed).
const DefaultDedupTTL = 24 * time.Hour

// defaultMaxKeys caps the remembered keys. Reached only with a great many
// counter keys per window; the key evicted then is the one expiring first,
// so the worst case is one repeated alert, never a lost one.
const defaultMaxKeys = 100_000

// seenKeys remembers sent keys until they expire. A min-heap on expiry makes
// pruning O(log n) per expired key with no periodic sweep. Not safe for
// concurrent use: Sender guards it with its mutex.
type seenKeys struct {
	max     int
	expires map[string]time.Time
	order   expiryHeap
}

func newSeenKeys(max int) *seenKeys {
	return &seenKeys{max: max, expires: make(map[string]time.Time)}
}

// seen reports whether key is remembered at now, first forgetting the keys
// that expired.
func (s *seenKeys) seen(key string, now time.Time) bool {
	for len(s.order) > 0 && !s.order[0].expires.After(now) {
		delete(s.expires, heap.Pop(&s.order).(seenKey).key)
	}
	_, ok := s.expires[key]
	return ok
}

// add remembers key until expires. The caller has checked seen(key) first,
// so each key is in the heap once.
func (s *seenKeys) add(key string, expires time.Time) {
	for len(s.order) > 0 && len(s.order) >= s.max {
		delete(s.expires, heap.Pop(&s.order).(seenKey).key)
	}
	s.expires[key] = expires
	heap.Push(&s.order, seenKey{key: key, expires: expires})
}

type seenKey struct {
	key     string
	expires time.Time
}

type expiryHeap []seenKey

func (h expiryHeap) Len() int           { return len(h) }
func (h expiryHeap) Less(i, j int) bool { return h[i].expires.Before(h[j].expires) }
func (h expiryHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *expiryHeap) Push(x any)        { *h = append(*h, x.(seenKey)) }
func (h *expiryHeap) Pop() any {
	old := *h
	n := len(old)
	x := old[n-1]
	old[n-1] = seenKey{} // let the key string be collected
	*h = old[:n-1]
	return x
}
