package usagedb

import (
	"errors"
	"fmt"
	"github.com/tokenmeter/tokenmeter/internal/reason"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/tokenmeter/tokenmeter/internal/fx"
	"github.com/tokenmeter/tokenmeter/internal/ledger"
	"github.com/tokenmeter/tokenmeter/internal/money"
	"github.com/tokenmeter/tokenmeter/internal/usage"
)

// The export columns are one table, so CSV, JSONL and the CSV reader
// cannot drift apart; docs/ledger-export.md documents it and a test keeps
// the two in step.

type kind uint8

const (
	kindString kind = iota // CSV text; a JSON string
	kindInt                // a decimal integer; a JSON number
	kindBool               // true or false; a JSON boolean
	kindNumber             // a plain decimal such as 12.5; a JSON number
)

type column struct {
	name string
	kind kind
	get  func(r *ledger.Record, b []byte) []byte
	set  func(r *ledger.Record, s string) error
}

// DimensionColumn is the export column of a configured dimension.
func DimensionColumn(name string) string { return "dim_" + name }

// Columns returns the export column names for the configured dimensions,
// in order. They are the CSV header and the JSONL keys.
func Columns(dims []string) []string {
	cols := columns(dims)
	names := make([]string, len(cols))
	for i, c := range cols {
		names[i] = c.name
	}
	return names
}

func columns(dims []string) []column {
	cols := []column{
		str("request_id", func(r *ledger.Record) *string { return &r.RequestID }),
		{"start", kindString, func(r *ledger.Record, b []byte) []byte {
			return r.Start.UTC().AppendFormat(b, time.RFC3339Nano)
		}, func(r *ledger.Record, s string) (err error) {
			r.Start, err = parseInstant(s)
			return err
		}},
		millis("duration_ms", func(r *ledger.Record) *time.Duration { return &r.Duration }),
		millis("ttft_ms", func(r *ledger.Record) *time.Duration { return &r.TTFT }),
	}
	for i, d := range dims {
		cols = append(cols, dimColumn(dims, i, d))
	}
	cols = append(cols,
		str("provider", func(r *ledger.Record) *string { return &r.Provider }),
		str("dialect", func(r *ledger.Record) *string { return &r.Dialect }),
		str("model", func(r *ledger.Record) *string { return &r.Model }),
		str("response_model", func(r *ledger.Record) *string { return &r.ResponseModel }),
		str("priced_model", func(r *ledger.Record) *string { return &r.PricedModel }),
		column{"status", kindInt, func(r *ledger.Record, b []byte) []byte { return strconv.AppendInt(b, int64(r.Status), 10) },
			func(r *ledger.Record, s string) (err error) { r.Status, err = strconv.Atoi(s); return err }},
		boolean("stream", func(r *ledger.Record) *bool { return &r.Stream }),
		column{"outcome", kindString, func(r *ledger.Record, b []byte) []byte { return append(b, r.Outcome...) },
			func(r *ledger.Record, s string) error { r.Outcome = ledger.Outcome(s); return nil }},
		str("reason", func(r *ledger.Record) *reason.Reason { return &r.Reason }),
		str("budget", func(r *ledger.Record) *string { return &r.Budget }),
	)
	for c := usage.Class(0); c < usage.NumClasses; c++ {
		cols = append(cols, count(c.String()+"_tokens", func(r *ledger.Record) *usage.Count { return &r.Usage.Tokens[c] }))
	}
	for u := usage.Unit(0); u < usage.NumUnits; u++ {
		cols = append(cols, count(u.String(), func(r *ledger.Record) *usage.Count { return &r.Usage.Units[u] }))
	}
	return append(cols, costColumns()...)
}

func costColumns() []column {
	return []column{
		str("image_size", func(r *ledger.Record) *string { return &r.Usage.ImageSize }),
		str("image_quality", func(r *ledger.Record) *string { return &r.Usage.ImageQuality }),
		{"estimated", kindString, func(r *ledger.Record, b []byte) []byte { return append(b, r.EstimateMethod...) },
			func(r *ledger.Record, s string) error {
				r.EstimateMethod, r.Usage.Estimated = s, s != ""
				return nil
			}},
		amount("list_cost", func(r *ledger.Record) *money.Amount { return &r.ListCost }),
		amount("cost", func(r *ledger.Record) *money.Amount { return &r.Cost }),
		currency("currency", func(r *ledger.Record) *money.Currency { return &r.Currency }),
		str("adjustment", func(r *ledger.Record) *string { return &r.Adjustment }),
		amount("reporting_cost", func(r *ledger.Record) *money.Amount { return &r.ReportingCost }),
		currency("reporting_currency", func(r *ledger.Record) *money.Currency { return &r.ReportingCurrency }),
		{"fx_rate", kindString, func(r *ledger.Record, b []byte) []byte {
			if r.FX.Rate == 0 {
				return b
			}
			return r.FX.Rate.AppendText(b)
		}, func(r *ledger.Record, s string) (err error) {
			if s != "" {
				r.FX.Rate, err = fx.ParseDecimal(s)
			}
			return err
		}},
		currency("fx_from", func(r *ledger.Record) *money.Currency { return &r.FX.From }),
		currency("fx_to", func(r *ledger.Record) *money.Currency { return &r.FX.To }),
		{"fx_effective_from", kindString, func(r *ledger.Record, b []byte) []byte {
			if r.FX.EffectiveFrom.IsZero() {
				return b
			}
			return r.FX.EffectiveFrom.UTC().AppendFormat(b, time.RFC3339Nano)
		}, func(r *ledger.Record, s string) (err error) {
			if s != "" {
				r.FX.EffectiveFrom, err = parseInstant(s)
			}
			return err
		}},
		str("fx_source", func(r *ledger.Record) *string { return &r.FX.Source }),
		boolean("priced", func(r *ledger.Record) *bool { return &r.Priced }),
		boolean("fallback", func(r *ledger.Record) *bool { return &r.Fallback }),
		// Added after the first release of the format: last, so that
		// importers reading columns by position keep working.
		str("service_tier", func(r *ledger.Record) *string { return &r.ServiceTier }),
		str("client_request_id", func(r *ledger.Record) *string { return &r.ClientRequestID }),
	}
}

func str[S ~string](name string, f func(*ledger.Record) *S) column {
	return column{name, kindString,
		func(r *ledger.Record, b []byte) []byte { return append(b, *f(r)...) },
		func(r *ledger.Record, s string) error { *f(r) = S(s); return nil }}
}

func millis(name string, f func(*ledger.Record) *time.Duration) column {
	return column{name, kindNumber,
		func(r *ledger.Record, b []byte) []byte { return appendMillis(b, *f(r)) },
		func(r *ledger.Record, s string) (err error) { *f(r), err = parseMillis(s); return err }}
}

func boolean(name string, f func(*ledger.Record) *bool) column {
	return column{name, kindBool,
		func(r *ledger.Record, b []byte) []byte { return strconv.AppendBool(b, *f(r)) },
		func(r *ledger.Record, s string) error {
			switch s {
			case "true", "false":
				*f(r) = s == "true"
				return nil
			}
			return errors.New("want true or false")
		}}
}

// count columns carry the number only: whether the provider reported it
// is not exported (see docs/ledger-export.md).
func count(name string, f func(*ledger.Record) *usage.Count) column {
	return column{name, kindInt,
		func(r *ledger.Record, b []byte) []byte { return strconv.AppendInt(b, f(r).N, 10) },
		func(r *ledger.Record, s string) (err error) {
			f(r).N, err = strconv.ParseInt(s, 10, 64)
			return err
		}}
}

func amount(name string, f func(*ledger.Record) *money.Amount) column {
	return column{name, kindString,
		func(r *ledger.Record, b []byte) []byte { return f(r).AppendText(b) },
		func(r *ledger.Record, s string) (err error) { *f(r), err = money.Parse(s); return err }}
}

func currency(name string, f func(*ledger.Record) *money.Currency) column {
	return column{name, kindString,
		func(r *ledger.Record, b []byte) []byte { return append(b, *f(r)...) },
		func(r *ledger.Record, s string) (err error) {
			if s != "" {
				*f(r), err = money.ParseCurrency(s)
			}
			return err
		}}
}

// dimColumn exports the configured dimension i by name, so a record made
// under another dimension list still lands in the right column.
func dimColumn(dims []string, i int, name string) column {
	return column{DimensionColumn(name), kindString,
		func(r *ledger.Record, b []byte) []byte {
			for i, n := range r.Dimensions.Names {
				if n == name && i < len(r.Dimensions.Values) {
					return append(b, r.Dimensions.Values[i]...)
				}
			}
			return b
		},
		func(r *ledger.Record, s string) error {
			if r.Dimensions.Values == nil {
				r.Dimensions = dimsOf(dims)
			}
			r.Dimensions.Values[i] = s
			return nil
		}}
}

func parseInstant(s string) (time.Time, error) {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, err
	}
	return t.UTC(), nil
}

// appendMillis writes d in milliseconds as a plain decimal with the
// trailing zeros of its six decimals removed: exact to the nanosecond,
// never an exponent (1.5s is 1500, 1234567ns is 1.234567).
func appendMillis(b []byte, d time.Duration) []byte {
	u := uint64(d)
	if d < 0 {
		b = append(b, '-')
		u = -u
	}
	b = strconv.AppendUint(b, u/1e6, 10)
	frac := u % 1e6
	if frac == 0 {
		return b
	}
	var digits [6]byte
	for i := len(digits) - 1; i >= 0; i-- {
		digits[i] = byte('0' + frac%10)
		frac /= 10
	}
	n := len(digits)
	for digits[n-1] == '0' {
		n--
	}
	return append(append(b, '.'), digits[:n]...)
}

// parseMillis reads appendMillis's form.
func parseMillis(s string) (time.Duration, error) {
	neg := strings.HasPrefix(s, "-")
	whole, frac, _ := strings.Cut(strings.TrimPrefix(s, "-"), ".")
	if whole == "" || len(frac) > 6 || !digitsOnly(whole) || !digitsOnly(frac) {
		return 0, fmt.Errorf("%q: want milliseconds as a decimal with at most 6 places", s)
	}
	w, err := strconv.ParseInt(whole, 10, 64)
	f, _ := strconv.ParseInt(frac+strings.Repeat("0", 6-len(frac)), 10, 64)
	if err != nil || w > math.MaxInt64/1_000_000 || w*1_000_000 > math.MaxInt64-f {
		return 0, fmt.Errorf("%q: out of range", s)
	}
	d := time.Duration(w*1e6 + f)
	if neg {
		d = -d
	}
	return d, nil
}

func digitsOnly(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}
