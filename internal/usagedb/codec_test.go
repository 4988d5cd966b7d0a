package usagedb

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/tokenmeter/tokenmeter/internal/attribution"
	"github.com/tokenmeter/tokenmeter/internal/fx"
	"github.com/tokenmeter/tokenmeter/internal/ledger"
	"github.com/tokenmeter/tokenmeter/internal/ledger/ledgergen"
	"github.com/tokenmeter/tokenmeter/internal/money"
	"github.com/tokenmeter/tokenmeter/internal/usage"
)

// testNames resolves id 1 to testDims.
type testNames struct{}

func (testNames) names(id uint64) ([]string, bool) {
	if id == 1 {
		return testDims, true
	}
	return nil, false
}

// fullRecord sets every field, with values that stress the encoding.
func fullRecord() *ledger.Record {
	r := &ledger.Record{
		RequestID: "req,\"quoted\"\nnewline ✓", Start: time.Date(2026, 3, 29, 1, 0, 0, 123456789, time.UTC),
		Duration: 1234567891, TTFT: 1, Dimensions: attribution.Dimensions{Names: testDims, Values: []string{"p,1", "t\"1", "ü"}},
		Provider: "openai", Dialect: "openai_chat", Model: "gpt-4o", ResponseModel: "gpt-4o-2024-08-06", PricedModel: "gpt-4o",
		Status: 200, Stream: true, EstimateMethod: "bpe_o200k_base",
		ListCost: money.MustParse("0.012345678"), Cost: money.MustParse("0.011111111"), Adjustment: "discount", ServiceTier: "flex",
		Currency: money.USD, ReportingCost: money.MustParse("0.010203"), ReportingCurrency: "EUR",
		FX:     fx.Rate{From: money.USD, To: "EUR", Rate: fx.MustParseDecimal("0.918300000001"), EffectiveFrom: time.Date(2026, 1, 1, 0, 0, 0, 5, time.UTC), Source: "ECB"},
		Priced: true, Fallback: true, Outcome: ledger.Partial, Reason: "client_disconnect", Budget: "team-monthly",
		ClientRequestID: "client,\"id\" ✓",
	}
	r.Usage.Set(usage.Input, 1200)
	r.Usage.Set(usage.CacheRead, 0)
	r.Usage.Tokens[usage.Output] = usage.Count{N: 345}
	r.Usage.Set(usage.ImageOutput, math.MaxInt64)
	r.Usage.SetUnit(usage.Images, 2)
	r.Usage.Units[usage.Characters] = usage.Count{N: -1}
	r.Usage.ImageSize, r.Usage.ImageQuality = "1024x1024", "hd"
	r.Usage.Raw = []usage.Field{{Name: "prompt_tokens", Value: 1500}, {Name: "cached_tokens", Value: 300}}
	r.Usage.Estimated = true
	return r
}

func TestRecordCodec(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 7))
	tests := []struct {
		name    string
		r       *ledger.Record
		namesID uint64
	}{
		{"full, names by id", fullRecord(), 1},
		{"full, names inline", fullRecord(), 0},
		{"empty", &ledger.Record{Start: time.Unix(0, 0).UTC()}, 0},
		{"random", ledgergen.Record(rng, time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC), 1), 0},
		{"uuid, models and costs repeating", &ledger.Record{
			RequestID: "0f8fad5b-d9cb-469f-a165-70867728950e", Start: time.Unix(1_772_000_000, 1).UTC(),
			Model: "gpt-4o", ResponseModel: "gpt-4o", PricedModel: "gpt-4o", Cost: 7, ListCost: 7,
			Currency: money.USD, ReportingCurrency: money.USD, ReportingCost: 7}, 0},
		{"client id a uuid, stored as 16 bytes", &ledger.Record{
			RequestID: "tm-1", ClientRequestID: "0f8fad5b-d9cb-469f-a165-70867728950e", Start: time.Unix(1_772_000_000, 1).UTC()}, 0},
		{"client id an upper-case uuid, kept as text", &ledger.Record{
			RequestID: "tm-2", ClientRequestID: "0F8FAD5B-D9CB-469F-A165-70867728950E", Start: time.Unix(1_772_000_000, 1).UTC()}, 0},
		{"priced as the response names it", &ledger.Record{
			RequestID: "0F8FAD5B-D9CB-469F-A165-70867728950E", Start: time.Unix(1_772_000_000, 1).UTC(),
			Model: "gpt-4o-latest", ResponseModel: "gpt-4o", PricedModel: "gpt-4o", Cost: 7, ListCost: 8,
			Currency: money.USD, ReportingCurrency: money.USD, ReportingCost: 6}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			key := recordKey(tt.r.Start.UnixNano(), 42)
			val := encodeRecord(nil, tt.r, tt.namesID)
			if tt.name == "uuid, models and costs repeating" && len(val) != 56 {
				t.Errorf("%d bytes, want 56: the id in 16 bytes, the repeats as flags", len(val))
			}
			got, err := decodeRecord(key, val, testNames{})
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.r) {
				t.Fatalf("round trip\n got %+v\nwant %+v", got, tt.r)
			}
			// Every truncation is an error, never a panic.
			for n := range len(val) {
				if _, err := decodeRecord(key, val[:n], testNames{}); err == nil {
					t.Fatalf("truncated to %d of %d bytes: no error", n, len(val))
				}
			}
			if _, err := decodeRecord(key, append(val, 0), testNames{}); err == nil {
				t.Fatal("trailing byte: no error")
			}
		})
	}
}

// TestRecordWrittenBeforeClientRequestID decodes bytes written by the
// encoder before the client's x-request-id was stored (the fixture is
// fullRecord as that version encoded it): the field is a flag at the end,
// so older records read as before, with no client id.
func TestRecordWrittenBeforeClientRequestID(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("testdata", "codec", "written_before_client_request_id.hex"))
	if err != nil {
		t.Fatal(err)
	}
	val, err := hex.DecodeString(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	want := fullRecord()
	want.ClientRequestID = ""
	got, err := decodeRecord(recordKey(want.Start.UnixNano(), 42), val, testNames{})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("decoded\n got %+v\nwant %+v", got, want)
	}
	// And the encoder still writes exactly those bytes for such a record.
	if enc := encodeRecord(nil, want, 0); !bytes.Equal(enc, val) {
		t.Fatalf("a record without a client id encodes as %x, want the old %x", enc, val)
	}
}

func TestRecordFlagsRefused(t *testing.T) {
	for _, tt := range []struct {
		name  string
		flags uint64
	}{
		{"a flag past the known ones", flagsKnown + 1},
		{"client id both text and uuid", flagClientID | flagClientUUID},
	} {
		t.Run(tt.name, func(t *testing.T) {
			val := binary.AppendUvarint([]byte{recordFormat}, tt.flags)
			val = append(val, make([]byte, 64)...)
			_, err := decodeRecord(recordKey(1, 1), val, testNames{})
			if err == nil || !strings.Contains(err.Error(), "unknown flags") {
				t.Fatalf("err %v, want unknown flags", err)
			}
		})
	}
}

func TestAggCodec(t *testing.T) {
	v := aggVal{requests: 3, unpriced: 1, cost: money.MustParse("-0.5"), list: money.Max}
	v.tokens[usage.Input], v.tokens[usage.ImageOutput], v.units[usage.AudioMillis] = 10, math.MaxInt64, 7
	b := encodeAgg(nil, &v)
	var got aggVal
	if err := decodeAgg(b, &got); err != nil || got != v {
		t.Fatalf("round trip: %+v, %v; want %+v", got, err, v)
	}
	for n := range len(b) {
		if err := decodeAgg(b[:n], &got); err == nil {
			t.Fatalf("truncated to %d: no error", n)
		}
	}
	if err := v.merge(&aggVal{list: 1}); err == nil {
		t.Fatal("list cost past MaxInt64: no overflow error")
	}
}

func FuzzDecodeRecord(f *testing.F) {
	f.Add(encodeRecord(nil, fullRecord(), 1))
	f.Add(encodeRecord(nil, fullRecord(), 0))
	f.Add([]byte{recordFormat})
	withUUID := fullRecord()
	withUUID.ClientRequestID = "0f8fad5b-d9cb-469f-a165-70867728950e"
	f.Add(encodeRecord(nil, withUUID, 0))
	key := recordKey(1, 1)
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := decodeRecord(key, b, testNames{})
		if err != nil {
			return
		}
		// What decodes re-encodes to the same bytes (the encoding is canonical
		// up to the names id, which decoding resolves to names).
		id := uint64(0)
		if len(r.Dimensions.Names) > 0 && &r.Dimensions.Names[0] == &testDims[0] {
			id = 1
		}
		if _, err := decodeRecord(key, encodeRecord(nil, r, id), testNames{}); err != nil {
			t.Fatalf("re-encoded record does not decode: %v", err)
		}
	})
}

func FuzzDecodeAgg(f *testing.F) {
	v := aggVal{requests: 3, unpriced: 1, cost: 5, list: 6}
	v.tokens[2] = 9
	f.Add(encodeAgg(nil, &v))
	f.Fuzz(func(t *testing.T, b []byte) {
		var got aggVal
		_ = decodeAgg(b, &got)
		_, _, _ = parseAggKey(b, 8, nil)
	})
}

func TestParseAggKeyRoundTrip(t *testing.T) {
	r := fullRecord()
	k := appendAggKey(nil, prefixHour, 1_772_326_800, "EUR", r, testDims)
	sec, fields, err := parseAggKey(k, 1+len(testDims)+fieldsAfterDims, nil)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, f := range fields {
		got = append(got, string(f))
	}
	want := []string{"EUR", "p,1", "t\"1", "ü", "openai", "gpt-4o", "openai_chat", "partial"}
	if sec != 1_772_326_800 || !reflect.DeepEqual(got, want) {
		t.Fatalf("parsed %d %q, want %q", sec, got, want)
	}
	if _, _, err := parseAggKey(append(k, 'x'), len(want), nil); err == nil {
		t.Fatal("trailing byte: no error")
	}
}

// TestPlanCovers checks the reading plan of random queries: added and
// subtracted aggregates net to each whole hour of the range exactly once,
// in the bucket holding that hour; record ranges cover the rest; nothing
// outside [From, To) is left counted.
func TestPlanCovers(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 11))
	locs := []*time.Location{time.UTC, mustLoad(t, "Europe/Paris"), mustLoad(t, "Asia/Kolkata"), mustLoad(t, "America/St_Johns")}
	base := time.Date(2026, 2, 20, 0, 0, 0, 0, time.UTC).UnixNano()
	subtracted := 0
	for i := range 500 {
		c := planCheck{t: t, i: i, q: randomPlanQuery(rng, base, locs)}
		c.p, c.from, c.to = makePlan(c.q), c.q.From.UnixNano(), c.q.To.UnixNano()
		subtracted += c.check()
	}
	if subtracted == 0 {
		t.Fatal("no plan subtracted: the test misses that path")
	}
}

// randomPlanQuery is a query of up to 60 days starting within 40 days of
// base, on an hour a third of the time, in a random bucket and location.
func randomPlanQuery(rng *rand.Rand, base int64, locs []*time.Location) Query {
	from := base + rng.Int64N(int64(40*24*time.Hour))
	if rng.IntN(3) == 0 {
		from = floorTo(from, nanosPerHour)
	}
	to := from + 1 + rng.Int64N(int64(60*24*time.Hour))
	return Query{From: time.Unix(0, from), To: time.Unix(0, to), Bucket: Bucket(rng.IntN(int(numBuckets))), Location: locs[rng.IntN(len(locs))]}
}

// planCheck is the plan p of query number i, q, over [from, to) in nanoseconds.
type planCheck struct {
	t        *testing.T
	i        int
	q        Query
	p        plan
	from, to int64
}

func (c *planCheck) fail(format string, args ...any) {
	c.t.Helper()
	c.t.Fatalf("query %d (%s in %s, %v..%v): %s", c.i, c.q.Bucket, c.q.loc(), c.q.From.UTC(), c.q.To.UTC(), fmt.Sprintf(format, args...))
}

// check checks the plan covers [from, to) exactly once and returns how
// many aggregates it subtracts.
func (c *planCheck) check() int {
	c.t.Helper()
	covered := c.rawCoverage()
	weight, subtracted := c.aggWeights()
	covered += c.wholeHours(weight)
	if covered != c.to-c.from {
		c.fail("covers %d of %d ns", covered, c.to-c.from)
	}
	return subtracted
}

// rawCoverage checks the record ranges lie in the query, in order, and
// returns the nanoseconds they cover.
func (c *planCheck) rawCoverage() int64 {
	c.t.Helper()
	covered := int64(0)
	for j, a := range c.p.raw {
		covered += a.to - a.from
		if a.from < c.from || a.to > c.to || (j > 0 && c.p.raw[j-1].to > a.from) {
			c.fail("record range %v outside the query or out of order", a)
		}
	}
	return covered
}

// aggWeights checks each aggregate is aligned (hours, or days for a day
// aggregate) and returns the net count of each hour in each bucket, and how
// many aggregates are subtracted.
func (c *planCheck) aggWeights() (weight map[int64]map[int]int, subtracted int) {
	c.t.Helper()
	weight = map[int64]map[int]int{} // hour → bucket → net count
	for _, a := range c.p.aggs {
		if a.from%nanosPerHour != 0 || a.to%nanosPerHour != 0 || (a.prefix == prefixDay && (a.from%nanosPerDay != 0 || a.to%nanosPerDay != 0)) {
			c.fail("%+v not aligned", a)
		}
		if a.neg {
			subtracted++
		}
		for h := a.from; h < a.to; h += nanosPerHour {
			if weight[h] == nil {
				weight[h] = map[int]int{}
			}
			if a.neg {
				weight[h][a.bucket]--
			} else {
				weight[h][a.bucket]++
			}
		}
	}
	return weight, subtracted
}

// wholeHours checks each hour nets to 0, or to 1 when it lies whole in the
// query and in one bucket (the one that holds it) and no record range reads
// it too, and returns the nanoseconds of the hours counted once.
func (c *planCheck) wholeHours(weight map[int64]map[int]int) int64 {
	c.t.Helper()
	covered := int64(0)
	for h, bs := range weight {
		for b, w := range bs {
			switch {
			case w == 0:
			case w == 1 && h >= c.from && h+nanosPerHour <= c.to && c.p.bucketOf(h) == b && c.p.bucketOf(h+nanosPerHour-1) == b:
				covered += nanosPerHour
				for _, r := range c.p.raw {
					if r.from < h+nanosPerHour && h < r.to {
						c.fail("hour %v is read twice", time.Unix(0, h).UTC())
					}
				}
			default:
				c.fail("hour %v counts %d times in bucket %d", time.Unix(0, h).UTC(), w, b)
			}
		}
	}
	return covered
}
