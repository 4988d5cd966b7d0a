package usagedb

import (
	"context"
	"testing"
	"time"

	"github.com/tokenmeter/tokenmeter/internal/attribution"
	"github.com/tokenmeter/tokenmeter/internal/ledger"
	"github.com/tokenmeter/tokenmeter/internal/money"
)

// A statement's columns: served requests and the unpriced among them (a
// refused unpriced model is denied, not unpriced), denied and failed ones
// apart; records in no currency join the asked currency's statement; parts
// split the cost by the split dimension and by day, and sum to it.
func TestStatementColumns(t *testing.T) {
	day := time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)
	rec := func(i int, team string, o ledger.Outcome, cost string) *ledger.Record {
		r := &ledger.Record{RequestID: string(rune('a' + i)), Start: day.Add(time.Duration(i) * 24 * time.Hour / 2), Outcome: o,
			Provider: "openai", Dialect: "openai_chat", Model: "gpt-4o",
			Dimensions: attribution.Dimensions{Names: testDims, Values: []string{"p", team, "u"}}}
		if cost != "" {
			r.PricedModel, r.Priced, r.Currency = "gpt-4o", true, money.USD
			r.Cost, r.ListCost = money.MustParse(cost), money.MustParse(cost)
		}
		return r
	}
	recs := []*ledger.Record{
		rec(0, "a", ledger.OK, "1.5"), rec(1, "a", ledger.OK, "0.25"), rec(2, "b", ledger.Partial, "2"),
		rec(3, "b", ledger.OK, ""), rec(4, "a", ledger.Denied, ""), rec(5, "a", ledger.UpstreamError, ""),
	}
	db := openTest(t, Options{})
	appendAll(t, db, recs)
	sts, err := StatementsOf(context.Background(), db, StatementQuery{Month: day, Dimension: "project", Value: "p",
		SplitBy: []string{"team"}, Daily: true, Currency: money.USD})
	if err != nil || len(sts) != 1 {
		t.Fatalf("%d statements, %v; want one (USD)", len(sts), err)
	}
	s := sts[0]
	if s.Currency != money.USD || s.Requests != 4 || s.Unpriced != 1 || s.Denied != 1 || s.Failed != 1 || s.Total != money.MustParse("3.75") || len(s.Lines) != 1 {
		t.Fatalf("statement %+v: want USD, 4 served (1 unpriced), 1 denied, 1 failed, 3.75, one line", s)
	}
	want := []StatementPart{
		{Day: time.Date(2026, 3, 2, 0, 0, 0, 0, time.UTC), Values: []string{"a"}, Cost: money.MustParse("1.75")},
		{Day: time.Date(2026, 3, 3, 0, 0, 0, 0, time.UTC), Values: []string{"b"}, Cost: money.MustParse("2")},
	}
	got := s.Lines[0].Parts
	if len(got) != len(want) {
		t.Fatalf("parts %+v, want %+v", got, want)
	}
	for i := range want {
		if !got[i].Day.Equal(want[i].Day) || got[i].Values[0] != want[i].Values[0] || got[i].Cost != want[i].Cost {
			t.Errorf("part %d: %+v, want %+v", i, got[i], want[i])
		}
	}
	if _, err := StatementsOf(context.Background(), db, StatementQuery{Month: day, Dimension: "project", Value: "p", SplitBy: []string{"entity"}}); err == nil {
		t.Error("an unknown split dimension has no error")
	}
}
