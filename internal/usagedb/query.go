package usagedb

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// ErrBadQuery is wrapped by every error about a malformed query; the text
// after it names the field, the value and the reason.
var ErrBadQuery = errors.New("usagedb: bad query")

// Query limits.
const (
	// MaxRange is the longest query range: five years of 365.25 days.
	MaxRange = 5 * 8766 * time.Hour
	// MaxBuckets bounds the buckets of one query.
	MaxBuckets = 100_000
	// MaxGroups bounds the rows of one report, and so its memory.
	MaxGroups = 1_000_000
)

// Bucket is the time granularity of a report.
type Bucket uint8

// The buckets. Day, Week and Month align to midnight in Query.Location;
// weeks are ISO weeks, starting on Monday; Hour aligns to the top of the
// local hour (Asia/Kolkata's hours start at :30 UTC).
const (
	None Bucket = iota
	Hour
	Day
	Week
	Month
	numBuckets
)

var bucketNames = [numBuckets]string{"none", "hour", "day", "week", "month"}

func (b Bucket) String() string {
	if b < numBuckets {
		return bucketNames[b]
	}
	return fmt.Sprintf("Bucket(%d)", uint8(b))
}

// ParseBucket is the inverse of String, for command lines and APIs.
func ParseBucket(s string) (Bucket, error) {
	for i, n := range bucketNames {
		if n == s {
			return Bucket(i), nil
		}
	}
	return 0, fmt.Errorf("%w: bucket %q: want one of %s", ErrBadQuery, s, strings.Join(bucketNames[:], ", "))
}

// Query selects and groups ledger records for Report.
type Query struct {
	// From and To bound the records' start: [From, To). Both are required,
	// From before To, at most MaxRange apart, within 1970..2262.
	From, To time.Time
	// GroupBy lists the keys rows are grouped by: configured dimension
	// names, "provider", "model" (see ModelLabel), "dialect", "outcome" and
	// "currency". Rows are always split by currency, listed or not.
	GroupBy []string
	// Bucket splits rows by time; None gives one bucket for the range.
	Bucket Bucket
	// Location aligns buckets; nil is UTC.
	Location *time.Location
	// Filter keeps only records whose value of each key (the keys GroupBy
	// accepts) equals the one given.
	Filter map[string]string
}

func (q Query) loc() *time.Location {
	if q.Location == nil {
		return time.UTC
	}
	return q.Location
}

func badQuery(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrBadQuery}, args...)...)
}

// Validate checks q against the configured dimension names. Every error
// wraps ErrBadQuery and names the field, its value and the reason.
func (q Query) Validate(dims []string) error {
	if err := checkTimes(q.From, q.To, MaxRange); err != nil {
		return err
	}
	if q.Bucket >= numBuckets {
		return badQuery("bucket %d: want none, hour, day, week or month", uint8(q.Bucket))
	}
	keys := groupKeys(dims)
	seen := map[string]bool{}
	for _, k := range q.GroupBy {
		if !slices.Contains(keys, k) {
			return badQuery("group_by %q: unknown; want one of %s", k, strings.Join(keys, ", "))
		}
		if seen[k] {
			return badQuery("group_by %q: listed twice", k)
		}
		seen[k] = true
	}
	for _, k := range slices.Sorted(mapKeys(q.Filter)) {
		if !slices.Contains(keys, k) {
			return badQuery("filter %q: unknown; want one of %s", k, strings.Join(keys, ", "))
		}
	}
	if n := estimateBuckets(q.Bucket, q.To.Sub(q.From)); n > MaxBuckets {
		return badQuery("bucket %s from %s to %s: up to %d buckets, more than %d", q.Bucket,
			q.From.Format(time.RFC3339Nano), q.To.Format(time.RFC3339Nano), n, MaxBuckets)
	}
	return nil
}

// checkTimes checks a [from, to) range; limit 0 is no length limit.
func checkTimes(from, to time.Time, limit time.Duration) error {
	const layout = time.RFC3339Nano
	switch {
	case from.IsZero():
		return badQuery("from is required")
	case to.IsZero():
		return badQuery("to is required")
	case from.Before(minStart) || from.After(maxStart):
		return badQuery("from %s: outside 1970..2262", from.Format(layout))
	case to.Before(minStart) || to.After(maxStart):
		return badQuery("to %s: outside 1970..2262", to.Format(layout))
	case !from.Before(to):
		return badQuery("from %s is not before to %s", from.Format(layout), to.Format(layout))
	case limit > 0 && to.Sub(from) > limit:
		return badQuery("from %s to %s: range of %v is longer than 5 years", from.Format(layout), to.Format(layout), to.Sub(from))
	}
	return nil
}

func mapKeys(m map[string]string) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// groupKeys are the keys a query may group or filter by, in aggregate-key
// order after the currency.
func groupKeys(dims []string) []string {
	return append(slices.Clone(dims), KeyProvider, KeyModel, KeyDialect, KeyOutcome, KeyCurrency)
}

// fieldIndex maps a group key to its field in a parsed aggregate key.
func fieldIndex(dims []string, k string) int {
	if i := slices.Index(dims, k); i >= 0 {
		return 1 + i
	}
	switch k {
	case KeyCurrency:
		return fieldCurrency
	case KeyProvider:
		return 1 + len(dims)
	case KeyModel:
		return 2 + len(dims)
	case KeyDialect:
		return 3 + len(dims)
	case KeyOutcome:
		return 4 + len(dims)
	}
	return -1
}

// estimateBuckets bounds the bucket count from above, using each bucket's
// shortest possible length (a DST day is 23 hours).
func estimateBuckets(b Bucket, d time.Duration) int64 {
	shortest := map[Bucket]time.Duration{
		None: 0, Hour: 30 * time.Minute, Day: 23 * time.Hour, Week: 7*24*time.Hour - time.Hour, Month: 28*24*time.Hour - time.Hour,
	}[b]
	if shortest == 0 {
		return 1
	}
	return int64(d/shortest) + 2
}

// bucketStart returns the start of the bucket holding t, in loc.
func bucketStart(b Bucket, t time.Time, loc *time.Location) time.Time {
	t = t.In(loc)
	switch b {
	case Hour:
		// Subtracting the local minutes keeps apart the two hours a
		// fall-back night labels alike (02:00 twice in Paris), which
		// time.Date cannot.
		return t.Add(-time.Duration(t.Minute())*time.Minute - time.Duration(t.Second())*time.Second - time.Duration(t.Nanosecond()))
	case Day:
		return time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, loc)
	case Week:
		back := (int(t.Weekday()) + 6) % 7 // days since Monday
		return time.Date(t.Year(), t.Month(), t.Day()-back, 0, 0, 0, 0, loc)
	case Month:
		return time.Date(t.Year(), t.Month(), 1, 0, 0, 0, 0, loc)
	}
	return t
}

// nextBucket returns the start of the bucket after the one starting at s.
func nextBucket(b Bucket, s time.Time, loc *time.Location) time.Time {
	var n time.Time
	switch b {
	case Hour:
		n = bucketStart(b, s.Add(time.Hour), loc)
	case Day:
		n = time.Date(s.Year(), s.Month(), s.Day()+1, 0, 0, 0, 0, loc)
	case Week:
		n = time.Date(s.Year(), s.Month(), s.Day()+7, 0, 0, 0, 0, loc)
	case Month:
		n = time.Date(s.Year(), s.Month()+1, 1, 0, 0, 0, 0, loc)
	}
	if !n.After(s) {
		// A zone whose clock jumps back over a bucket start; never loop.
		n = s.Add(time.Hour)
	}
	return n
}

// span is a half-open range of unix nanoseconds.
type span struct{ from, to int64 }

// plan is how a query is answered: its buckets, the ranges read from
// records, and the aggregates added or subtracted. Together they count
// every record of [From, To) exactly once, in its bucket, and nothing else.
type plan struct {
	starts []int64     // bucket i covers [starts[i], starts[i+1]); the last entry is To
	labels []time.Time // bucket i's aligned start (zero for None)
	raw    []span      // records, each counted in the bucket of its start
	aggs   []aggSpan
}

// aggSpan is a range of hour or day aggregates counted in one bucket: added,
// or subtracted (neg) from a day aggregate that covers more than the
// bucket's part of that day.
type aggSpan struct {
	prefix byte // prefixHour or prefixDay
	span
	bucket int
	neg    bool
}

// subtractFrom is the least part of a UTC day, in whole hours, read as the
// day aggregate minus the hours outside the part rather than as its hours:
// in the benchmark's traffic a day aggregate has about four hours' worth of
// keys, so past 14 hours the subtraction reads fewer. Integer sums make it
// exact.
const subtractFrom = 15 * nanosPerHour

func makePlan(q Query) plan {
	loc := q.loc()
	var p plan
	if q.Bucket == None {
		p.labels = []time.Time{{}}
		p.starts = []int64{q.From.UnixNano(), q.To.UnixNano()}
		p.cover(0, q.From.UnixNano(), q.To.UnixNano())
		return p
	}
	for b := bucketStart(q.Bucket, q.From, loc); b.Before(q.To); {
		next := nextBucket(q.Bucket, b, loc)
		s, e := max(b.UnixNano(), q.From.UnixNano()), min(next.UnixNano(), q.To.UnixNano())
		if len(p.starts) == 0 {
			s = q.From.UnixNano() // even if a zone's odd midnight put b after From
		}
		p.labels = append(p.labels, b)
		p.starts = append(p.starts, s)
		p.cover(len(p.starts)-1, s, e)
		b = next
	}
	p.starts = append(p.starts, q.To.UnixNano())
	return p
}

// cover adds [s, e), the part of bucket i in the query, to the plan:
// partial hours at the edges from records, each UTC day's whole hours from
// aggregates.
func (p *plan) cover(i int, s, e int64) {
	h1, h2 := ceilTo(s, nanosPerHour), floorTo(e, nanosPerHour)
	if h1 >= h2 {
		p.raw = addSpan(p.raw, s, e)
		return
	}
	p.raw = addSpan(p.raw, s, h1)
	for a := h1; a < h2; {
		day := floorTo(a, nanosPerDay)
		b := min(h2, day+nanosPerDay)
		p.segment(i, day, a, b)
		a = b
	}
	p.raw = addSpan(p.raw, h2, e)
}

// segment adds the whole hours [a, b) of the UTC day starting at day.
func (p *plan) segment(i int, day, a, b int64) {
	switch n := b - a; {
	case n == nanosPerDay:
		p.addAgg(aggSpan{prefixDay, span{a, b}, i, false})
	case n >= subtractFrom:
		p.addAgg(aggSpan{prefixDay, span{day, day + nanosPerDay}, i, false})
		p.addAgg(aggSpan{prefixHour, span{day, a}, i, true})
		p.addAgg(aggSpan{prefixHour, span{b, day + nanosPerDay}, i, true})
	default:
		p.addAgg(aggSpan{prefixHour, span{a, b}, i, false})
	}
}

// addAgg appends a, merged into the last span when it continues it.
func (p *plan) addAgg(a aggSpan) {
	if a.from >= a.to {
		return
	}
	if n := len(p.aggs); n > 0 {
		l := &p.aggs[n-1]
		if l.prefix == a.prefix && l.bucket == a.bucket && l.neg == a.neg && l.to == a.from {
			l.to = a.to
			return
		}
	}
	p.aggs = append(p.aggs, a)
}

// addSpan appends [s, e), merging it with the last span when they touch, so
// that the records of many buckets are one iterator pass.
func addSpan(spans []span, s, e int64) []span {
	if s >= e {
		return spans
	}
	if n := len(spans); n > 0 && spans[n-1].to == s {
		spans[n-1].to = e
		return spans
	}
	return append(spans, span{s, e})
}

// bucketOf returns the bucket holding instant t (unix nanos), or -1.
func (p *plan) bucketOf(t int64) int {
	i, found := slices.BinarySearch(p.starts, t)
	if !found {
		i--
	}
	if i < 0 || i >= len(p.starts)-1 {
		return -1
	}
	return i
}
