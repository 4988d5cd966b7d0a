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
	"strings"
	"time"

	"github.com/tokenmeter/tokenmeter/attribution"
	"github.com/tokenmeter/tokenmeter/money"
)

// Unit is what a budget counts.
type Unit uint8

// The units.
const (
	Money    Unit = iota // nano-units of the catalog currency
	Tokens               // every billed token, all classes
	Requests             // admitted requests
)

func (u Unit) String() string {
	switch u {
	case Money:
		return "money"
	case Tokens:
		return "tokens"
	case Requests:
		return "requests"
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
	Name   string
	Match  []Match // all must hold; empty matches every request
	Unit   Unit
	Limit  int64 // nano-units of Currency for Money, else a count
	Window Window
	// Currency of a Money limit; empty means the currency amounts are
	// given in (the catalog's), which needs no conversion.
	Currency money.Currency
}

// LimitString formats the limit in its unit, e.g. "5" dollars or "1000".
func (b *Budget) LimitString() string {
	if b.Unit == Money {
		return money.Amount(b.Limit).String()
	}
	return fmt.Sprint(b.Limit)
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
		sb.WriteString(v)
	}
	return sb.String(), true
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
	case Requests:
		return a.Requests
	}
	return 0
}

// Window is a calendar-aligned period in UTC.
type Window uint8

// The windows.
const (
	Minute Window = iota
	Hour
	Day
	Month
)

var windowNames = []string{"minute", "hour", "day", "month"}

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

// Bounds returns the window [start, end) that contains t, in UTC.
func (w Window) Bounds(t time.Time) (start, end time.Time) {
	t = t.UTC()
	switch w {
	case Minute:
		start = t.Truncate(time.Minute)
		return start, start.Add(time.Minute)
	case Hour:
		start = t.Truncate(time.Hour)
		return start, start.Add(time.Hour)
	case Day:
		start = time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, time.UTC)
		return start, start.AddDate(0, 0, 1)
	default:
		start = time.Date(t.Year(), t.Month(), 1, 0, 0, 0, 0, time.UTC)
		return start, start.AddDate(0, 1, 0)
	}
}
