// Package retryafter reads the Retry-After header a receiver (or a proxy
// in front of it) answers with, for the senders that retry: the webhook
// alerts and the CloudEvents records.
package retryafter

import (
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Parse reads a Retry-After value (RFC 9110, 10.2.3: delay-seconds or an
// HTTP-date) as a wait from now, capped at limit; -1 when absent or
// unreadable, so the caller's own backoff applies.
func Parse(v string, now time.Time, limit time.Duration) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return -1
	}
	if secs, err := strconv.ParseUint(v, 10, 64); err == nil {
		if secs >= uint64(limit/time.Second) {
			return limit
		}
		return time.Duration(secs) * time.Second
	}
	if at, err := http.ParseTime(v); err == nil {
		return min(max(at.Sub(now), 0), limit)
	}
	return -1
}
