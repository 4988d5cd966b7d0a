package usagedb

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/tokenmeter/tokenmeter/internal/ledger"
	"github.com/tokenmeter/tokenmeter/internal/ledger/ledgergen"
	"github.com/tokenmeter/tokenmeter/internal/money"
	"github.com/tokenmeter/tokenmeter/internal/usage"
)

func mustLoad(t testing.TB, name string) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation(name)
	if err != nil {
		t.Fatal(err)
	}
	return loc
}

// TestStatementTotals checks that each statement's total is the sum of its
// records' charged costs to the nano-unit, and its lines sum to it.
func TestStatementTotals(t *testing.T) {
	march := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	// Records from mid-February to mid-April, so the month's edges matter.
	recs := ledgergen.Month(2, 3000, march.AddDate(0, 0, -15))
	recs = append(recs, ledgergen.Month(3, 3000, march.AddDate(0, 0, 14))...)
	db := openTest(t, Options{})
	appendAll(t, db, recs)
	for _, loc := range []*time.Location{time.UTC, mustLoad(t, "Europe/Paris"), mustLoad(t, "Asia/Kolkata")} {
		for _, key := range []struct{ dim, value string }{{"project", "p3"}, {"team", "t0"}, {"user", "unknown"}} {
			t.Run(loc.String()+"/"+key.dim+"="+key.value, func(t *testing.T) {
				from := time.Date(2026, 3, 1, 0, 0, 0, 0, loc)
				to := from.AddDate(0, 1, 0)
				wantTotal := map[money.Currency]money.Amount{}
				wantReq := map[money.Currency]int64{}
				for _, r := range recs {
					if !r.Start.Before(from) && r.Start.Before(to) && dimValue(r, key.dim) == key.value && r.Outcome.Charged() {
						cur, cost, _ := ledgergen.ExpectedMoney(r)
						wantTotal[cur] += cost
						wantReq[cur]++
					}
				}
				sts, err := Statements(context.Background(), db, from.Add(17*24*time.Hour), key.dim, key.value, loc)
				if err != nil {
					t.Fatal(err)
				}
				if len(sts) != len(wantTotal) {
					t.Fatalf("%d statements, want one per currency: %v", len(sts), wantTotal)
				}
				for _, s := range sts {
					if !s.Month.Equal(from) || s.Dimension != key.dim || s.Value != key.value {
						t.Errorf("statement header %v %s=%s", s.Month, s.Dimension, s.Value)
					}
					if s.Total != wantTotal[s.Currency] || s.Requests != wantReq[s.Currency] {
						t.Errorf("%s: total %s over %d requests, want %s over %d", s.Currency, s.Total, s.Requests, wantTotal[s.Currency], wantReq[s.Currency])
					}
					var lines money.Amount
					var n int64
					for _, l := range s.Lines {
						lines += l.Cost
						n += l.Requests
					}
					if lines != s.Total || n != s.Requests {
						t.Errorf("%s: lines sum to %s over %d, total says %s over %d", s.Currency, lines, n, s.Total, s.Requests)
					}
				}
			})
		}
	}
}

func TestStatementErrors(t *testing.T) {
	db := openTest(t, Options{})
	_, err := Statements(context.Background(), db, time.Now(), "provider", "openai", nil)
	const msg = `usagedb: bad query: statement dimension "provider": not a configured dimension; want one of project, team, user`
	if !errors.Is(err, ErrBadQuery) || err.Error() != msg {
		t.Fatalf("err = %v, want %s", err, msg)
	}
	sts, err := Statements(context.Background(), db, time.Now(), "project", "none", nil)
	if err != nil || len(sts) != 0 {
		t.Fatalf("empty month: %v, %v; want no statements", sts, err)
	}
}

// TestBuckets pins bucket boundaries where they are easy to get wrong: the
// 23- and 25-hour days of Paris, its doubled 02:00 hour, ISO weeks, month
// starts, and Kolkata's days that start at 18:30 UTC.
func TestBuckets(t *testing.T) {
	paris, kolkata := mustLoad(t, "Europe/Paris"), mustLoad(t, "Asia/Kolkata")
	utc := func(s string) time.Time {
		v, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	type bucket struct {
		label    string // RFC 3339 in the location
		requests int64
	}
	tests := []struct {
		name     string
		starts   []string
		bucket   Bucket
		loc      *time.Location
		from, to string
		want     []bucket
	}{
		{"Paris spring forward: a 23-hour day", []string{
			"2026-03-28T22:59:59.999999999Z", "2026-03-28T23:00:00Z", "2026-03-29T00:59:00Z", "2026-03-29T01:00:00Z",
			"2026-03-29T21:59:59Z", "2026-03-29T22:00:00Z"},
			Day, paris, "2026-03-28T00:00:00Z", "2026-03-31T00:00:00Z",
			[]bucket{{"2026-03-28T00:00:00+01:00", 1}, {"2026-03-29T00:00:00+01:00", 4}, {"2026-03-30T00:00:00+02:00", 1}}},
		{"Paris fall back: a 25-hour day", []string{
			"2026-10-24T21:59:59Z", "2026-10-24T22:00:00Z", "2026-10-25T22:59:59Z", "2026-10-25T23:00:00Z"},
			Day, paris, "2026-10-24T00:00:00Z", "2026-10-27T00:00:00Z",
			[]bucket{{"2026-10-24T00:00:00+02:00", 1}, {"2026-10-25T00:00:00+02:00", 2}, {"2026-10-26T00:00:00+01:00", 1}}},
		{"Paris fall back: 02:00 twice", []string{
			"2026-10-25T00:30:00Z", "2026-10-25T01:30:00Z", "2026-10-25T01:45:00Z"},
			Hour, paris, "2026-10-25T00:00:00Z", "2026-10-25T02:00:00Z",
			[]bucket{{"2026-10-25T02:00:00+02:00", 1}, {"2026-10-25T02:00:00+01:00", 2}}},
		{"Paris spring forward: no 02:00", []string{"2026-03-29T00:59:59Z", "2026-03-29T01:00:00Z"},
			Hour, paris, "2026-03-29T00:00:00Z", "2026-03-29T02:00:00Z",
			[]bucket{{"2026-03-29T01:00:00+01:00", 1}, {"2026-03-29T03:00:00+02:00", 1}}},
		{"ISO weeks start on Monday", []string{"2026-03-08T22:59:59Z", "2026-03-08T23:00:00Z"}, // Sunday 23:59:59, Monday 00:00 in Paris
			Week, paris, "2026-03-01T00:00:00Z", "2026-03-15T00:00:00Z",
			[]bucket{{"2026-03-02T00:00:00+01:00", 1}, {"2026-03-09T00:00:00+01:00", 1}}},
		{"first week starts before from", []string{"2026-03-01T10:00:00Z"},
			Week, time.UTC, "2026-03-01T00:00:00Z", "2026-03-02T00:00:00Z",
			[]bucket{{"2026-02-23T00:00:00Z", 1}}},
		{"months in Paris", []string{"2026-02-28T22:59:59Z", "2026-02-28T23:00:00Z", "2026-03-31T21:59:59Z", "2026-03-31T22:00:00Z"},
			Month, paris, "2026-02-01T00:00:00Z", "2026-04-30T00:00:00Z",
			[]bucket{{"2026-02-01T00:00:00+01:00", 1}, {"2026-03-01T00:00:00+01:00", 2}, {"2026-04-01T00:00:00+02:00", 1}}},
		{"Kolkata days start at 18:30 UTC", []string{
			"2026-03-09T18:29:59.999999999Z", "2026-03-09T18:30:00Z", "2026-03-09T18:45:00Z", "2026-03-09T19:00:00Z",
			"2026-03-10T18:29:00Z", "2026-03-10T18:30:00Z", "2026-03-10T18:59:59Z"},
			Day, kolkata, "2026-03-09T00:00:00Z", "2026-03-12T00:00:00Z",
			[]bucket{{"2026-03-09T00:00:00+05:30", 1}, {"2026-03-10T00:00:00+05:30", 4}, {"2026-03-11T00:00:00+05:30", 2}}},
		{"Kolkata hours start at :30 UTC", []string{"2026-03-09T18:29:59Z", "2026-03-09T18:30:00Z", "2026-03-09T19:29:59Z", "2026-03-09T19:30:00Z"},
			Hour, kolkata, "2026-03-09T18:00:00Z", "2026-03-09T20:00:00Z",
			[]bucket{{"2026-03-09T23:00:00+05:30", 1}, {"2026-03-10T00:00:00+05:30", 2}, {"2026-03-10T01:00:00+05:30", 1}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			db := openTest(t, Options{})
			var recs []*ledger.Record
			for i, s := range tt.starts {
				recs = append(recs, &ledger.Record{RequestID: fmt.Sprint(i), Start: utc(s), Currency: money.USD, Outcome: ledger.OK})
			}
			appendAll(t, db, recs)
			rows, err := db.Report(context.Background(), Query{From: utc(tt.from), To: utc(tt.to), Bucket: tt.bucket, Location: tt.loc})
			if err != nil {
				t.Fatal(err)
			}
			var got []bucket
			for _, r := range rows {
				got = append(got, bucket{r.Bucket.Format(time.RFC3339), r.Requests})
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("buckets\n got %v\nwant %v", got, tt.want)
			}
		})
	}
}

func TestDailyCost(t *testing.T) {
	db := openTest(t, Options{})
	paris := mustLoad(t, "Europe/Paris")
	day := time.Date(2026, 3, 28, 0, 0, 0, 0, paris)
	rec := func(at time.Time, cost string, cur money.Currency) *ledger.Record {
		return &ledger.Record{Start: at, Cost: money.MustParse(cost), Currency: cur, Priced: true, Outcome: ledger.OK,
			Dimensions: dimsOf(testDims)}
	}
	appendAll(t, db, []*ledger.Record{
		rec(day.Add(time.Hour), "1.5", money.USD),
		rec(day.Add(23*time.Hour+59*time.Minute), "0.000000001", money.USD),
		rec(day.AddDate(0, 0, 1).Add(22*time.Hour+59*time.Minute), "2", money.USD), // the 23-hour day's last minute
		rec(day.AddDate(0, 0, 3), "7", money.USD),
		rec(day.AddDate(0, 0, 1), "9", "EUR"),
	})
	got, cur, err := DailyCost(context.Background(), db, map[string]string{"currency": "USD"}, day, day.AddDate(0, 0, 3), paris)
	if err != nil {
		t.Fatal(err)
	}
	want := []money.Amount{money.MustParse("1.500000001"), 2 * money.Scale, 0}
	if cur != money.USD || !reflect.DeepEqual(got, want) {
		t.Fatalf("DailyCost = %v %s, want %v USD", got, cur, want)
	}
	_, _, err = DailyCost(context.Background(), db, nil, day, day.AddDate(0, 0, 3), paris)
	if !errors.Is(err, ErrMixedCurrencies) || err.Error() != "usagedb: costs in more than one currency: USD and EUR; filter by currency" {
		t.Fatalf("err = %v, want mixed currencies", err)
	}
}

func TestValidate(t *testing.T) {
	from := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	to := from.AddDate(0, 1, 0)
	tests := []struct {
		name string
		q    Query
		want string
	}{
		{"ok", Query{From: from, To: to, GroupBy: []string{"project", "model", "currency"}, Bucket: Day, Filter: map[string]string{"outcome": "ok"}}, ""},
		{"no from", Query{To: to}, "usagedb: bad query: from is required"},
		{"no to", Query{From: from}, "usagedb: bad query: to is required"},
		{"from after to", Query{From: to, To: from}, "usagedb: bad query: from 2026-04-01T00:00:00Z is not before to 2026-03-01T00:00:00Z"},
		{"empty range", Query{From: from, To: from}, "usagedb: bad query: from 2026-03-01T00:00:00Z is not before to 2026-03-01T00:00:00Z"},
		{"six years", Query{From: from, To: from.AddDate(6, 0, 0)}, "usagedb: bad query: from 2026-03-01T00:00:00Z to 2032-03-01T00:00:00Z: range of 52608h0m0s is longer than 5 years"},
		{"before 1970", Query{From: time.Date(1969, 12, 31, 0, 0, 0, 0, time.UTC), To: to}, "usagedb: bad query: from 1969-12-31T00:00:00Z: outside 1970..2262"},
		{"unknown dimension", Query{From: from, To: to, GroupBy: []string{"project", "cost_center"}},
			`usagedb: bad query: group_by "cost_center": unknown; want one of project, team, user, provider, model, dialect, outcome, currency`},
		{"twice", Query{From: from, To: to, GroupBy: []string{"model", "model"}}, `usagedb: bad query: group_by "model": listed twice`},
		{"unknown filter", Query{From: from, To: to, Filter: map[string]string{"env": "prod"}},
			`usagedb: bad query: filter "env": unknown; want one of project, team, user, provider, model, dialect, outcome, currency`},
		{"bad bucket", Query{From: from, To: to, Bucket: 9}, "usagedb: bad query: bucket 9: want none, hour, day, week or month"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.q.Validate(testDims)
			if tt.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if !errors.Is(err, ErrBadQuery) || err.Error() != tt.want {
				t.Fatalf("err = %v\nwant %s", err, tt.want)
			}
		})
	}
	if _, err := ParseBucket("fortnight"); err == nil || err.Error() != `usagedb: bad query: bucket "fortnight": want one of none, hour, day, week, month` {
		t.Errorf("ParseBucket: %v", err)
	}
}

func TestTooManyGroups(t *testing.T) {
	defer func(n int) { maxGroups = n }(maxGroups)
	maxGroups = 3
	db := openTest(t, Options{})
	march := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	appendAll(t, db, ledgergen.Month(4, 200, march))
	_, err := db.Report(context.Background(), Query{From: march, To: march.AddDate(0, 1, 0), GroupBy: []string{"project"}})
	const msg = "usagedb: bad query: too many groups: more than 3 rows; group by fewer keys, filter, or use a coarser bucket"
	if !errors.Is(err, ErrBadQuery) || err.Error() != msg {
		t.Fatalf("err = %v, want %s", err, msg)
	}
}

// TestChargedByOutcome writes one record of every outcome, each carrying a
// cost and tokens (as an older writer's upstream_error with usage did), an
// hour apart so that both the aggregates and the edge records are read: a
// report counts every record by its outcome and sums only the charged ones,
// and the statement is what was charged.
func TestChargedByOutcome(t *testing.T) {
	day := time.Date(2026, 3, 2, 0, 0, 0, 0, time.UTC)
	var recs []*ledger.Record
	for i, o := range ledger.Outcomes {
		r := &ledger.Record{
			RequestID: fmt.Sprint(i), Start: day.Add(time.Duration(i)*time.Hour + 30*time.Minute),
			Dimensions: dimsOf(testDims), Provider: "openai", Dialect: "openai_chat", Model: "gpt-4o", PricedModel: "gpt-4o",
			Priced: true, Cost: money.MustParse("0.001"), ListCost: money.MustParse("0.002"), Currency: money.USD, Outcome: o,
		}
		r.Dimensions.Values[0] = "p"
		r.Usage.Set(usage.Output, 10)
		recs = append(recs, r)
	}
	db := openTest(t, Options{})
	appendAll(t, db, recs)
	for _, q := range []Query{
		{From: day, To: day.AddDate(0, 0, 1)},                          // whole hours: aggregates
		{From: day.Add(10 * time.Minute), To: day.Add(23 * time.Hour)}, // edges: records
	} {
		rows, err := db.Report(context.Background(), q)
		if err != nil || len(rows) != 1 {
			t.Fatalf("%v..%v: %d rows, %v", q.From, q.To, len(rows), err)
		}
		r := rows[0]
		const charged = 5 // ok, estimated, partial, provider_error, unobserved
		if r.Requests != 9 || r.Charged != charged || r.Cost != money.MustParse("0.005") || r.ListCost != money.MustParse("0.01") ||
			r.Tokens[usage.Output] != 10*charged {
			t.Errorf("%v..%v: %d requests, %d charged, cost %s list %s, %d output tokens; want 9, 5, 0.005, 0.01, 50",
				q.From, q.To, r.Requests, r.Charged, r.Cost, r.ListCost, r.Tokens[usage.Output])
		}
		for _, o := range ledger.Outcomes {
			if r.Outcome(o) != 1 {
				t.Errorf("%s: %d records, want 1", o, r.Outcome(o))
			}
		}
		if r.Outcome("retired") != 0 {
			t.Error("an outcome outside the vocabulary counts")
		}
	}
	checkOutcomeStatements(t, db, recs, day)
}

// checkOutcomeStatements: the statement bills the charged records and
// counts the denied and failed ones apart; a project with only a denied
// request still has a statement, with no money.
func checkOutcomeStatements(t *testing.T, db *DB, recs []*ledger.Record, day time.Time) {
	t.Helper()
	sts, err := Statements(context.Background(), db, day, "project", "p", nil)
	if err != nil || len(sts) != 1 {
		t.Fatalf("%d statements, %v", len(sts), err)
	}
	if s := sts[0]; s.Requests != 5 || s.Denied != 1 || s.Failed != 3 || s.Total != money.MustParse("0.005") || len(s.Lines) != 1 ||
		s.Lines[0].Requests != 5 || s.Lines[0].Denied != 1 || s.Lines[0].Failed != 3 {
		t.Fatalf("statement %+v: want 5 served, 1 denied, 3 failed, total 0.005", s)
	}
	// A project with only a denied request has a statement: a line with
	// no money, its request counted as denied, never as served.
	recs[5].Dimensions.Values[0] = "refused" // denied
	recs[5].Start = day.AddDate(0, 1, 0)
	appendAll(t, db, recs[5:6])
	sts, err = Statements(context.Background(), db, day.AddDate(0, 1, 0), "project", "refused", nil)
	if err != nil || len(sts) != 1 {
		t.Fatalf("only a denied record: %+v, %v; want one statement", sts, err)
	}
	if s := sts[0]; s.Requests != 0 || s.Denied != 1 || s.Total != 0 || len(s.Lines) != 1 || s.Lines[0].Denied != 1 || s.Lines[0].Cost != 0 {
		t.Fatalf("only a denied record: %+v; want one line, 1 denied, no money", s)
	}
}
