package daemon

import (
	"context"
	"fmt"
	"time"

	"github.com/tokenmeter/tokenmeter/internal/attribution"
	"github.com/tokenmeter/tokenmeter/internal/usagedb"
	"github.com/tokenmeter/tokenmeter/ratelimit"
)

// ledgerHistory answers the forecaster's questions from the stored ledger.
type ledgerHistory struct{ db usagedb.Reader }

// days lists the starts of the days of [from, to) in loc.
func days(from, to time.Time, loc *time.Location) []time.Time {
	var out []time.Time
	for d := from.In(loc); d.Before(to); d = d.AddDate(0, 0, 1) {
		out = append(out, d)
	}
	return out
}

func dayIndex(starts []time.Time, t time.Time) int {
	for i := len(starts) - 1; i >= 0; i-- {
		if !t.Before(starts[i]) {
			return i
		}
	}
	return -1
}

// Daily implements alerting.History. Money is the reporting cost; a ledger
// that holds costs in several currencies (a reporting currency changed
// mid-window) is refused rather than summed.
func (h ledgerHistory) Daily(ctx context.Context, filter map[string]string, unit ratelimit.Unit, from, to time.Time, loc *time.Location) ([]int64, error) {
	if loc == nil {
		loc = time.UTC
	}
	rows, err := h.db.Report(ctx, usagedb.Query{From: from, To: to, Bucket: usagedb.Day, Location: loc, Filter: filter})
	if err != nil {
		return nil, err
	}
	starts := days(from, to, loc)
	out := make([]int64, len(starts))
	var cur string
	for _, r := range rows {
		i := dayIndex(starts, r.Bucket)
		if i < 0 {
			continue
		}
		switch unit {
		case ratelimit.Money:
			if cur != "" && string(r.Currency) != cur {
				return nil, fmt.Errorf("%w: %s and %s", usagedb.ErrMixedCurrencies, cur, r.Currency)
			}
			cur = string(r.Currency)
			out[i] += int64(r.Cost)
		case ratelimit.Tokens:
			for _, n := range r.Tokens {
				out[i] += n
			}
		default:
			// What a request budget counted: the charged requests (a refusal, a
			// gate timeout or an upstream error released its hold).
			out[i] += r.Charged
		}
	}
	return out, nil
}

// DailyByGroup implements alerting.History.
func (h ledgerHistory) DailyByGroup(ctx context.Context, groupBy []string, from, to time.Time, loc *time.Location) (map[string][]int64, error) {
	if loc == nil {
		loc = time.UTC
	}
	rows, err := h.db.Report(ctx, usagedb.Query{From: from, To: to, Bucket: usagedb.Day, Location: loc, GroupBy: groupBy})
	if err != nil {
		return nil, err
	}
	starts := days(from, to, loc)
	// Groups are keyed as a budget over groupBy keys its counters.
	b := ratelimit.Budget{}
	for _, g := range groupBy {
		b.Match = append(b.Match, ratelimit.Match{Dimension: g, Value: ratelimit.Wildcard})
	}
	out := map[string][]int64{}
	for _, r := range rows {
		i := dayIndex(starts, r.Bucket)
		if i < 0 {
			continue
		}
		key, _ := b.Key(attribution.Dimensions{Names: groupBy, Values: r.Group})
		if out[key] == nil {
			out[key] = make([]int64, len(starts))
		}
		out[key][i] += int64(r.Cost)
	}
	return out, nil
}
