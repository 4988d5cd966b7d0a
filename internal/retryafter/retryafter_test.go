package retryafter

import (
	"testing"
	"time"
)

func TestParse(t *testing.T) {
	const limit = 30 * time.Second
	now := time.Date(2026, 11, 17, 12, 0, 0, 0, time.UTC)
	for v, want := range map[string]time.Duration{
		"": -1, "x": -1, "-3": -1, "0": 0, "7": 7 * time.Second, "31": limit, "99999999999999999999": -1,
		"Tue, 17 Nov 2026 12:00:10 GMT": 10 * time.Second, "Tue, 17 Nov 2026 11:00:00 GMT": 0,
		"Tue, 17 Nov 2026 13:00:00 GMT": limit,
	} {
		if got := Parse(v, now, limit); got != want {
			t.Errorf("Parse(%q) = %v, want %v", v, got, want)
		}
	}
}

// Retry-After is a header any receiver (or a proxy before it) writes.
func FuzzParse(f *testing.F) {
	for _, s := range []string{"", "7", "Tue, 17 Nov 2026 12:00:10 GMT", "18446744073709551616"} {
		f.Add(s)
	}
	now := time.Date(2026, 11, 17, 12, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, v string) {
		if d := Parse(v, now, time.Minute); d < -1 || d > time.Minute {
			t.Errorf("Parse(%q) = %v", v, d)
		}
	})
}
