package usagedb

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tokenmeter/tokenmeter/internal/attribution"
	"github.com/tokenmeter/tokenmeter/internal/ledger"
	"github.com/tokenmeter/tokenmeter/internal/ledger/ledgergen"
	"github.com/tokenmeter/tokenmeter/internal/money"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/")

// exportable is r as an export carries it: without the provider's raw
// numbers and the reported flags, Estimated derived from the method, and
// times in UTC (see docs/ledger-export.md).
func exportable(r *ledger.Record) *ledger.Record {
	c := r.Clone()
	c.Usage.Raw = nil
	for i := range c.Usage.Tokens {
		c.Usage.Tokens[i].Reported = false
	}
	for i := range c.Usage.Units {
		c.Usage.Units[i].Reported = false
	}
	c.Usage.Estimated = c.EstimateMethod != ""
	c.Start = c.Start.UTC()
	return c
}

// goldenRecords covers every column with awkward values: CSV quoting,
// non-ASCII, sub-microsecond durations, a converted cost with its rate,
// and a record of another dimension list.
func goldenRecords() []*ledger.Record {
	plain := &ledger.Record{
		RequestID: "b", Start: time.Date(2026, 3, 29, 1, 0, 0, 0, time.UTC), Duration: 1500 * time.Millisecond,
		Dimensions: attribution.Dimensions{Names: []string{"user"}, Values: []string{"u1"}},
		Provider:   "anthropic", Dialect: "anthropic_messages", Model: "claude-sonnet-4", Status: 429,
		Currency: money.USD, Outcome: ledger.Denied, Reason: "budget", Budget: "team-daily",
	}
	return []*ledger.Record{fullRecord(), plain}
}

func TestCSVRoundTrip(t *testing.T) {
	march := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	recs := append(goldenRecords(), ledgergen.Month(8, 500, march)...)
	db := openTest(t, Options{})
	appendAll(t, db, recs)
	var buf bytes.Buffer
	if err := WriteExport(context.Background(), db, &buf, CSV, march, march.AddDate(0, 1, 0)); err != nil {
		t.Fatal(err)
	}
	got, err := ReadCSV(&buf)
	if err != nil {
		t.Fatal(err)
	}
	want := byStart(recs)
	if len(got) != len(want) {
		t.Fatalf("%d records back, want %d", len(got), len(want))
	}
	for i := range want {
		w := exportable(want[i])
		// Dimensions come back under the configured names: by name, as
		// the dim_ columns carry them.
		w.Dimensions = dimsOf(testDims)
		for j, n := range testDims {
			w.Dimensions.Values[j] = want[i].Dimensions.Get(n)
		}
		if !reflect.DeepEqual(got[i], w) {
			t.Fatalf("record %d:\n got %+v\nwant %+v", i, got[i], w)
		}
	}
}

// byStart orders records as Export does: by start, then write order.
func byStart(recs []*ledger.Record) []*ledger.Record {
	out := slices.Clone(recs)
	slices.SortStableFunc(out, func(a, b *ledger.Record) int { return a.Start.Compare(b.Start) })
	return out
}

// TestExportGolden pins the exact bytes of both formats, so a changed
// column name or format is a reviewed change to testdata/ and the docs.
func TestExportGolden(t *testing.T) {
	for _, f := range []Format{CSV, JSONL} {
		t.Run(string(f), func(t *testing.T) {
			var buf bytes.Buffer
			enc, err := NewWriter(f, &buf, testDims)
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range goldenRecords() {
				if err := enc.Write(r); err != nil {
					t.Fatal(err)
				}
			}
			if err := enc.Flush(); err != nil {
				t.Fatal(err)
			}
			path := filepath.Join("testdata", "export", "records."+string(f))
			if *update {
				if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			golden, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(buf.Bytes(), golden) {
				t.Fatalf("%s differs from %s (go test -run TestExportGolden -update to accept):\n%s", f, path, buf.Bytes())
			}
		})
	}
}

// TestJSONL checks that every line parses, with the CSV column names in
// CSV order, money as exact strings and counts as numbers.
func TestJSONL(t *testing.T) {
	var buf bytes.Buffer
	w := NewJSONLWriter(&buf, testDims)
	for _, r := range goldenRecords() {
		if err := w.Write(r); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(&buf)
	var lines []map[string]any
	for sc.Scan() {
		dec := json.NewDecoder(strings.NewReader(sc.Text()))
		dec.UseNumber()
		var keys []string
		if _, err := dec.Token(); err != nil {
			t.Fatal(err)
		}
		for dec.More() {
			k, err := dec.Token()
			if err != nil {
				t.Fatal(err)
			}
			keys = append(keys, k.(string))
			var v any
			if err := dec.Decode(&v); err != nil {
				t.Fatal(err)
			}
		}
		if !reflect.DeepEqual(keys, Columns(testDims)) {
			t.Fatalf("keys %v, want %v", keys, Columns(testDims))
		}
		var m map[string]any
		d := json.NewDecoder(strings.NewReader(sc.Text()))
		d.UseNumber()
		if err := d.Decode(&m); err != nil {
			t.Fatal(err)
		}
		lines = append(lines, m)
	}
	first := lines[0]
	for k, want := range map[string]any{
		"request_id": "req,\"quoted\"\nnewline ✓", "start": "2026-03-29T01:00:00.123456789Z", "duration_ms": json.Number("1234.567891"),
		"dim_project": "p,1", "input_tokens": json.Number("1200"), "image_output_tokens": json.Number("9223372036854775807"),
		"characters": json.Number("-1"), "cost": "0.011111111", "reporting_cost": "0.010203", "fx_rate": "0.918300000001",
		"fx_effective_from": "2026-01-01T00:00:00.000000005Z", "stream": true, "priced": true, "estimated": "bpe_o200k_base",
	} {
		if !reflect.DeepEqual(first[k], want) {
			t.Errorf("%s = %#v, want %#v", k, first[k], want)
		}
	}
	if second := lines[1]; second["dim_user"] != "u1" || second["dim_project"] != "" || second["fx_rate"] != "" || second["ttft_ms"] != json.Number("0") {
		t.Errorf("second line %v", second)
	}
}

func TestCSVReaderErrors(t *testing.T) {
	header := strings.Join(Columns(nil), ",")
	row := func(edit func([]string)) string {
		var buf bytes.Buffer
		w := NewCSVWriter(&buf, nil)
		if err := w.Write(&ledger.Record{Start: time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)}); err != nil {
			t.Fatal(err)
		}
		_ = w.Flush()
		lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
		cells := strings.Split(lines[1], ",")
		edit(cells)
		return header + "\n" + strings.Join(cells, ",") + "\n"
	}
	col := func(name string) int {
		for i, c := range Columns(nil) {
			if c == name {
				return i
			}
		}
		t.Fatalf("no column %s", name)
		return -1
	}
	tests := []struct {
		name, in, want string
	}{
		{"unknown column", header + ",colour\n", `csv header: unknown column "colour"`},
		{"missing column", strings.Replace(header, ",fallback", "", 1) + "\n", `csv header: column "fallback" missing`},
		{"bad money", row(func(c []string) { c[col("cost")] = "1e-3" }), `csv line 2 column cost: "1e-3": not a decimal number`},
		{"bad duration", row(func(c []string) { c[col("duration_ms")] = "1.2345678" }), `csv line 2 column duration_ms: "1.2345678": want milliseconds as a decimal with at most 6 places`},
		{"bad flag", row(func(c []string) { c[col("priced")] = "yes" }), `csv line 2 column priced: want true or false`},
		{"bad currency", row(func(c []string) { c[col("currency")] = "usd" }), `csv line 2 column currency: currency "usd": want a three-letter upper-case ISO 4217 code such as USD`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ReadCSV(strings.NewReader(tt.in))
			if err == nil || err.Error() != tt.want {
				t.Fatalf("err = %v\nwant %s", err, tt.want)
			}
		})
	}
}

func TestMillis(t *testing.T) {
	for _, tt := range []struct {
		d time.Duration
		s string
	}{
		{0, "0"}, {1, "0.000001"}, {1500 * time.Millisecond, "1500"}, {1234567, "1.234567"}, {-2500, "-0.0025"},
		{time.Duration(1<<63 - 1), "9223372036854.775807"},
	} {
		if got := string(appendMillis(nil, tt.d)); got != tt.s {
			t.Errorf("appendMillis(%d) = %s, want %s", tt.d, got, tt.s)
		}
		if got, err := parseMillis(tt.s); err != nil || got != tt.d {
			t.Errorf("parseMillis(%s) = %d, %v; want %d", tt.s, got, err, tt.d)
		}
	}
}

func TestExportStopsOnError(t *testing.T) {
	db := openTest(t, Options{})
	march := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	appendAll(t, db, ledgergen.Month(9, 100, march))
	stop := errors.New("stop")
	n := 0
	err := db.Export(context.Background(), march, march.AddDate(0, 1, 0), func(*ledger.Record) error {
		if n++; n == 10 {
			return stop
		}
		return nil
	})
	if !errors.Is(err, stop) || n != 10 {
		t.Fatalf("err %v after %d records", err, n)
	}
	err = db.Export(context.Background(), march, march, func(*ledger.Record) error { return nil })
	if !errors.Is(err, ErrBadQuery) {
		t.Fatalf("empty range: %v", err)
	}
	// Exports have no length limit: they stream.
	if err := db.Export(context.Background(), march.AddDate(-10, 0, 0), march, func(*ledger.Record) error { return nil }); err != nil {
		t.Fatal(err)
	}
}

// TestDocsListEveryColumn keeps docs/ledger-export.md in step with the
// columns: each must appear there as `name`.
func TestDocsListEveryColumn(t *testing.T) {
	doc, err := os.ReadFile(filepath.Join("..", "..", "docs", "ledger-export.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range Columns(nil) {
		if !bytes.Contains(doc, []byte("`"+c+"`")) {
			t.Errorf("docs/ledger-export.md does not document column %s", c)
		}
	}
}

// outcomeRow is a row of an outcome table: | `name` | yes or no | meaning |.
var outcomeRow = regexp.MustCompile("(?m)^\\| `([a-z_]+)` \\| (yes|no) \\| [^|]*\\S[^|]* \\|$")

// TestDocsOutcomeTable holds the outcome tables of docs/ledger-export.md
// and docs/ledger.md to the vocabulary: every outcome once, in ledger.Outcomes
// order, charged exactly when Outcome.Charged says so.
func TestDocsOutcomeTable(t *testing.T) {
	for _, path := range []string{filepath.Join("..", "..", "docs", "ledger-export.md"), filepath.Join("..", "..", "docs", "ledger.md")} {
		t.Run(filepath.Base(path), func(t *testing.T) {
			doc, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, m := range outcomeRow.FindAllStringSubmatch(string(doc), -1) {
				got = append(got, m[1]+" "+m[2])
			}
			var want []string
			for _, o := range ledger.Outcomes {
				charged := "no"
				if o.Charged() {
					charged = "yes"
				}
				want = append(want, string(o)+" "+charged)
			}
			if !slices.Equal(got, want) {
				t.Fatalf("%s's outcome table:\n%s\nwant (outcome, charged):\n%s", path, strings.Join(got, "\n"), strings.Join(want, "\n"))
			}
		})
	}
}
