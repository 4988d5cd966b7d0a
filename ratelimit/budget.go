// Package ratelimit holds budgets: a selector over attribution dimensions, a
// limit in money, tokens or requests, and a calendar window. A request is
// admitted by reserving an estimate on every matching budget at once, and
// settled with the real amount when it ends, so concurrent requests cannot
// all squeeze through on a budget that can afford only some of them.
//
// Counters live in a Store (Badger by default); this package holds the rules
// and knows nothing of Envoy.
package ratelimit

import (
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/tokenmeter/tokenmeter/internal/attribution"
	"github.com/tokenmeter/tokenmeter/internal/money"
)

// Unit is what a budget counts.
type Unit uint8

// The units.
const (
	Money    Unit = iota // nano-units of the budget's currency
	Tokens               // every billed token, all classes
	Requests             // admitted requests
	// Concurrent caps requests in flight: each holds 1 until it ends and is
	// charged nothing, so the counter is the number in flight.
	Concurrent
)

func (u Unit) String() string {
	switch u {
	case Money:
		return "money"
	case Tokens:
		return "tokens"
	case Requests:
		return "requests"
	case Concurrent:
		return "concurrent"
	}
	return "unknown"
}

// Wildcard in a selector keeps one counter per distinct value.
const Wildcard = "*"

// Match is one term of a selector: a dimension and the value it must have,
// or Wildcard.
type Match struct {
	Dimension string
	Value     string
}

// Budget is one limit. It is immutable once built.
type Budget struct {
	Name  string
	Match []Match // all must hold; empty matches every request
	Unit  Unit
	Limit int64 // nano-units of Currency for Money, else a count
	// KeyLimits replace Limit for the keys they name ("user=ann"): with a
	// wildcard selector, Limit is the default for every key not listed.
	KeyLimits map[string]int64
	Window    Window
	// Location is the time zone calendar windows are aligned in (a day
	// budget in Europe/Paris resets at Paris midnight); nil means UTC.
	Location *time.Location
	// Rolling, when set, replaces Window with a rolling window of that
	// length (RPM, TPM): the last Rolling of traffic, counted in RollingBuckets
	// buckets, whatever the calendar says.
	Rolling time.Duration
	// Currency of a Money limit; empty means the currency amounts are
	// given in (the catalog's), which needs no conversion.
	Currency money.Currency
	// Shadow budgets count and report the requests they would deny but deny
	// none: a new limit is tried on real traffic first.
	Shadow bool
	// FailClosed denies the requests the budget matches while its store
	// cannot be reached; by default they go through, counted.
	FailClosed bool
	// AlertAt are soft thresholds, in percent of Limit (ascending): crossing
	// one sends an alert, once per key and window.
	AlertAt []int
}

// Period names what the budget counts over: its window ("day"), "rolling
// 1m0s", or "in flight" for a concurrency cap.
func (b *Budget) Period() string {
	switch {
	case b.Unit == Concurrent:
		return "in flight"
	case b.Rolling > 0:
		return "rolling " + b.Rolling.String()
	}
	return b.Window.String()
}

// RollingBuckets is how many buckets a rolling window is counted in: a
// request leaves the window within Rolling/RollingBuckets of its age
// reaching Rolling.
const RollingBuckets = 60

// bucket is the width of one bucket of a rolling window, at least a second.
func (b *Budget) bucket() time.Duration {
	w := b.Rolling / RollingBuckets
	if w < time.Second {
		w = time.Second
	}
	return w
}

// Span returns the counter range b charges at now: the counter start, the
// first start its check covers (zero for one calendar window), and when the
// counter stops mattering.
func (b *Budget) Span(now time.Time) (start, since, end time.Time) {
	if b.Unit == Concurrent {
		// In-flight counts have no period: one counter, forever.
		return epoch, time.Time{}, farFuture
	}
	if b.Rolling > 0 {
		w := b.bucket()
		start = time.Unix(0, now.UnixNano()-now.UnixNano()%int64(w)).UTC()
		return start, start.Add(w - b.Rolling), start.Add(b.Rolling)
	}
	start, end = b.Window.Bounds(now, b.Location)
	return start, time.Time{}, end
}

// Resets is when b's counter for now frees capacity: the window's end, or
// for a rolling window the end of the current bucket (the earliest moment the
// oldest traffic can leave the window).
func (b *Budget) Resets(now time.Time) time.Time {
	if b.Unit == Concurrent {
		return now.Add(time.Second) // in-flight requests end at any moment
	}
	if b.Rolling > 0 {
		start, _, _ := b.Span(now)
		return start.Add(b.bucket())
	}
	_, end := b.Window.Bounds(now, b.Location)
	return end
}

// farFuture ends windows that never end (Total, Concurrent): far enough
// never to arrive, near enough that the time until it (a store's TTL) fits
// in a time.Duration, which spans 292 years.
var farFuture = time.Date(2200, 1, 1, 0, 0, 0, 0, time.UTC)

// epoch starts windows that never started. Not the zero time.Time: stores
// key counters by UnixNano, which is undefined before 1678.
var epoch = time.Unix(0, 0).UTC()

// LimitFor is the limit of one counter key: its own, or the default.
func (b *Budget) LimitFor(key string) int64 {
	if v, ok := b.KeyLimits[key]; ok {
		return v
	}
	return b.Limit
}

// CheckKey reports whether key is a counter key b can have, as Key writes
// them: "dim=value" terms in the selector's order, comma-separated, with the
// selector's fixed values where it has them.
func (b *Budget) CheckKey(key string) error {
	if len(b.Match) == 0 {
		if key != "all" {
			return fmt.Errorf("a budget without match has one key, \"all\"")
		}
		return nil
	}
	var want []string
	for _, m := range b.Match {
		want = append(want, m.Dimension+"=")
	}
	shape := strings.Join(want, "VALUE,") + "VALUE"
	terms := strings.Split(key, ",")
	if len(terms) != len(b.Match) {
		return fmt.Errorf("want a key of the form %s (a ',', '=' or '%%' in a value written %%2C, %%3D, %%25)", shape)
	}
	for i, m := range b.Match {
		v, ok := strings.CutPrefix(terms[i], m.Dimension+"=")
		if !ok || v == "" {
			return fmt.Errorf("want a key of the form %s (a ',', '=' or '%%' in a value written %%2C, %%3D, %%25)", shape)
		}
		if u, err := url.PathUnescape(v); err == nil {
			v = u
		}
		if m.Value != Wildcard && v != m.Value {
			return fmt.Errorf("%s is %q in this budget's match", m.Dimension, m.Value)
		}
	}
	return nil
}

// Format writes an amount of the budget's unit: a decimal for money
// ("0.25"), an integer otherwise ("1000").
func (b *Budget) Format(v int64) string {
	if b.Unit == Money {
		return money.Amount(v).String()
	}
	return fmt.Sprint(v)
}

// Key returns the counter key d falls under, and false when the budget does
// not apply to d. The key names the selector's values, e.g.
// "project=demo,user=ann"; a budget with no selector has key "all".
func (b *Budget) Key(d attribution.Dimensions) (string, bool) {
	if len(b.Match) == 0 {
		return "all", true
	}
	var sb strings.Builder
	for i, m := range b.Match {
		v := d.Get(m.Dimension)
		if m.Value != Wildcard && v != m.Value {
			return "", false
		}
		if i > 0 {
			sb.WriteByte(',')
		}
		sb.WriteString(m.Dimension)
		sb.WriteByte('=')
		escapeValue(&sb, v)
	}
	return sb.String(), true
}

// escapeValue writes v with '%', ',' and '=' percent-encoded. Attribution
// values may hold them, and unescaped they would let two different pairs of
// values make one key ("a,user=b" + "c" and "a" + "b,user=c"), so that one
// caller could spend another's budget.
func escapeValue(sb *strings.Builder, v string) {
	if !strings.ContainsAny(v, "%,=") {
		sb.WriteString(v)
		return
	}
	for i := 0; i < len(v); i++ {
		switch c := v[i]; c {
		case '%', ',', '=':
			fmt.Fprintf(sb, "%%%02X", c)
		default:
			sb.WriteByte(c)
		}
	}
}

// KeyTerms splits a counter key into its dimensions and values, undoing the
// escaping of Key. The key "all" has none.
func KeyTerms(key string) map[string]string {
	if key == "all" || key == "" {
		return nil
	}
	out := map[string]string{}
	for _, term := range strings.Split(key, ",") {
		k, v, _ := strings.Cut(term, "=")
		if u, err := url.PathUnescape(v); err == nil {
			v = u
		}
		out[k] = v
	}
	return out
}

// Amounts is what a request costs, in every unit at once; a budget takes the
// one it counts.
type Amounts struct {
	Money    money.Amount
	Tokens   int64
	Requests int64
}

// Of returns the amount in unit u.
func (a Amounts) Of(u Unit) int64 {
	switch u {
	case Money:
		return int64(a.Money)
	case Tokens:
		return a.Tokens
	case Requests, Concurrent:
		return a.Requests
	}
	return 0
}

// Window is a calendar-aligned period in a budget's time zone.
type Window uint8

// The windows.
const (
	Minute Window = iota
	Hour
	Day
	Month
	Week  // Monday 00:00 to Monday 00:00, as ISO 8601 weeks
	Year  // 1 January to 1 January
	Total // never resets
)

var windowNames = []string{"minute", "hour", "day", "month", "week", "year", "total"}

func (w Window) String() string {
	if int(w) < len(windowNames) {
		return windowNames[w]
	}
	return "unknown"
}

// ParseWindow is the inverse of String.
func ParseWindow(s string) (Window, bool) {
	for i, n := range windowNames {
		if n == s {
			return Window(i), true
		}
	}
	return 0, false
}

// WindowNames lists the windows, for messages.
func WindowNames() []string { return windowNames }

// Bounds returns the window [start, end) that contains t, aligned to the
// calendar of loc (UTC when nil), returned in UTC. Days, weeks, months and
// years start at local midnight, so a day can last 23 or 25 hours across a
// daylight-saving change; hours and minutes are local too, which matters in
// zones offset by a half or quarter hour.
func (w Window) Bounds(t time.Time, loc *time.Location) (start, end time.Time) {
	if loc == nil {
		loc = time.UTC
	}
	t = t.In(loc)
	switch w {
	case Minute:
		start = time.Date(t.Year(), t.Month(), t.Day(), t.Hour(), t.Minute(), 0, 0, loc)
		end = start.Add(time.Minute)
	case Hour:
		start = time.Date(t.Year(), t.Month(), t.Day(), t.Hour(), 0, 0, 0, loc)
		end = start.Add(time.Hour)
	case Day:
		start = time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, loc)
		end = time.Date(t.Year(), t.Month(), t.Day()+1, 0, 0, 0, 0, loc)
	case Week:
		back := (int(t.Weekday()) + 6) % 7 // days since Monday
		start = time.Date(t.Year(), t.Month(), t.Day()-back, 0, 0, 0, 0, loc)
		end = time.Date(t.Year(), t.Month(), t.Day()-back+7, 0, 0, 0, 0, loc)
	case Month:
		start = time.Date(t.Year(), t.Month(), 1, 0, 0, 0, 0, loc)
		end = time.Date(t.Year(), t.Month()+1, 1, 0, 0, 0, 0, loc)
	case Year:
		start = time.Date(t.Year(), 1, 1, 0, 0, 0, 0, loc)
		end = time.Date(t.Year()+1, 1, 1, 0, 0, 0, 0, loc)
	default: // Total
		return epoch, farFuture
	}
	return start.UTC(), end.UTC()
}
