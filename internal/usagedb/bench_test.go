package usagedb

import (
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/tokenmeter/tokenmeter/internal/attribution"
	"github.com/tokenmeter/tokenmeter/internal/ledger"
	"github.com/tokenmeter/tokenmeter/internal/money"
	"github.com/tokenmeter/tokenmeter/internal/usage"
)

// benchModels: 10 models of 4 providers, with prices per million tokens.
var benchModels = []struct {
	provider, dialect, model string
	in, out                  money.PerMillion
}{
	{"openai", "openai_chat", "gpt-4o", mpm("2.5"), mpm("10")},
	{"openai", "openai_chat", "gpt-4o-mini", mpm("0.15"), mpm("0.6")},
	{"openai", "openai_responses", "o3", mpm("2"), mpm("8")},
	{"anthropic", "anthropic_messages", "claude-sonnet-4", mpm("3"), mpm("15")},
	{"anthropic", "anthropic_messages", "claude-haiku-4", mpm("1"), mpm("5")},
	{"anthropic", "anthropic_messages", "claude-opus-4", mpm("15"), mpm("75")},
	{"google", "gemini", "gemini-2.5-pro", mpm("1.25"), mpm("10")},
	{"google", "gemini", "gemini-2.5-flash", mpm("0.3"), mpm("2.5")},
	{"bedrock", "bedrock_converse", "amazon.nova-pro-v1:0", mpm("0.8"), mpm("3.2")},
	{"bedrock", "bedrock_converse", "meta.llama3-3-70b-instruct-v1:0", mpm("0.72"), mpm("0.72")},
}

func mpm(s string) money.PerMillion { return money.PerMillion(money.MustParse(s)) }

var benchOutcomes = []ledger.Outcome{ledger.Denied, ledger.UpstreamError, ledger.Partial, ledger.Estimated}

// benchGen makes realistic traffic: 5 teams of 4 users, each team with 10
// projects (50 in all), 10 models of 4 providers. Real traffic is skewed,
// so projects and models are drawn from Zipf distributions, and a user
// works on their team's projects; 93% of requests end ok.
type benchGen struct {
	rng            *rand.Rand
	project, model *rand.Zipf
	n              int
}

func newBenchGen(seed uint64) *benchGen {
	rng := rand.New(rand.NewPCG(seed, seed))
	return &benchGen{rng: rng, project: rand.NewZipf(rng, 1.2, 2, 49), model: rand.NewZipf(rng, 1.1, 1, 9)}
}

func (g *benchGen) record(start time.Time) *ledger.Record {
	g.n++
	rng := g.rng
	p := int(g.project.Uint64())
	team := p % 5
	m := benchModels[g.model.Uint64()]
	r := &ledger.Record{
		RequestID: fmt.Sprintf("%08x-%04x-%04x-%04x-%012x", rng.Uint32(), rng.Uint32()&0xffff, rng.Uint32()&0xffff, rng.Uint32()&0xffff, rng.Uint64()&0xffffffffffff),
		Start:     start, Duration: time.Duration(200+rng.IntN(20_000)) * time.Millisecond,
		Dimensions: attribution.Dimensions{Names: benchDims, Values: []string{
			fmt.Sprintf("project-%02d", p), fmt.Sprintf("team-%d", team), fmt.Sprintf("user-%02d", team*4+rng.IntN(4))}},
		Provider: m.provider, Dialect: m.dialect, Model: m.model, ResponseModel: m.model, PricedModel: m.model,
		Status: 200, Stream: rng.IntN(3) != 0, Outcome: ledger.OK, Priced: true, Currency: money.USD, ReportingCurrency: money.USD,
	}
	r.TTFT = r.Duration / 10
	if x := rng.IntN(100); x < 7 {
		r.Outcome = benchOutcomes[x%len(benchOutcomes)]
	}
	if r.Outcome == ledger.Denied {
		r.Status, r.Budget, r.Reason = 0, "team-monthly", "budget"
		return r
	}
	in, out := int64(100+rng.IntN(6000)), int64(50+rng.IntN(1500))
	r.Usage.Set(usage.Input, in)
	r.Usage.Set(usage.Output, out)
	if rng.IntN(3) == 0 {
		r.Usage.Set(usage.CacheRead, int64(rng.IntN(20_000)))
	}
	r.Usage.Raw = []usage.Field{{Name: "prompt_tokens", Value: in}, {Name: "completion_tokens", Value: out}}
	var s money.Sum
	s.Add(in, m.in)
	s.Add(r.Usage.Get(usage.CacheRead), m.in/10)
	s.Add(out, m.out)
	r.ListCost, _ = s.Amount()
	r.Cost, r.ReportingCost = r.ListCost, r.ListCost
	return r
}

var benchDims = []string{"project", "team", "user"}

// BenchmarkRecordCodec compares the stored binary encoding of a record with
// JSON (the alternative the design allowed).
func BenchmarkRecordCodec(b *testing.B) {
	r := newBenchGen(1).record(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC))
	key := recordKey(r.Start.UnixNano(), 1)
	names := &nameTable{byID: map[uint64][]string{1: benchDims}}
	bin := encodeRecord(nil, r, 1)
	js, err := json.Marshal(r)
	if err != nil {
		b.Fatal(err)
	}
	b.Run("binary/encode", func(b *testing.B) {
		var buf []byte
		for b.Loop() {
			buf = encodeRecord(buf[:0], r, 1)
		}
		b.ReportMetric(float64(len(bin)), "bytes/rec")
	})
	b.Run("binary/decode", func(b *testing.B) {
		for b.Loop() {
			if _, err := decodeRecord(key, bin, names); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("json/encode", func(b *testing.B) {
		for b.Loop() {
			if _, err := json.Marshal(r); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(len(js)), "bytes/rec")
	})
	b.Run("json/decode", func(b *testing.B) {
		for b.Loop() {
			var got ledger.Record
			if err := json.Unmarshal(js, &got); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkAppend measures records per second through Append, the queue
// and the writer to a Badger directory on disk, flushing every half queue
// so that nothing is dropped.
func BenchmarkAppend(b *testing.B) {
	db, err := Open(Options{Dir: b.TempDir(), Dimensions: benchDims})
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	g := newBenchGen(2)
	start := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	recs := make([]*ledger.Record, 10_000)
	for i := range recs {
		recs[i] = g.record(start.Add(time.Duration(i) * 864 * time.Millisecond))
	}
	b.ResetTimer()
	t0 := time.Now()
	for i := range b.N {
		r := recs[i%len(recs)]
		r.Start = start.Add(time.Duration(i) * 864 * time.Millisecond) // 100k a day
		db.Append(r)
		if i%(DefaultQueueSize/2) == DefaultQueueSize/2-1 {
			if err := db.Flush(context.Background()); err != nil {
				b.Fatal(err)
			}
		}
	}
	if err := db.Flush(context.Background()); err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(b.N)/time.Since(t0).Seconds(), "rec/s")
	if s := db.Stats(); s.Dropped != 0 || s.WriteErrors != 0 || s.Written != int64(b.N) {
		b.Fatalf("stats %+v", s)
	}
}

const (
	benchDays       = 30
	benchPerDay     = 100_000
	benchSeededFile = "usagedb-bench-seeded"
)

// BenchmarkReportMonth seeds 30 days × 100,000 records (3M) through the
// normal write path, reports the directory size per million records, then
// times month reports. Seeding is most of the run: set USAGEDB_BENCH_DIR to a
// directory to keep the seed between runs (it is reused when complete);
// otherwise a temporary one is deleted at the end.
func BenchmarkReportMonth(b *testing.B) {
	dir := os.Getenv("USAGEDB_BENCH_DIR")
	if dir == "" {
		tmp, err := os.MkdirTemp("", "usagedb-bench-")
		if err != nil {
			b.Fatal(err)
		}
		defer os.RemoveAll(tmp)
		dir = tmp
	}
	march := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	seedRate := 0.0
	if _, err := os.Stat(filepath.Join(dir, benchSeededFile)); err != nil {
		seedRate = seedBench(b, dir, march)
	}
	size := dirSize(b, dir)
	db, err := Open(Options{Dir: dir, Dimensions: benchDims})
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	b.Run("disk", func(b *testing.B) {
		for b.Loop() {
		}
		reportDisk(b, db, size)
		if seedRate > 0 {
			b.ReportMetric(seedRate, "seed-rec/s")
		}
	})
	paris, kolkata := mustLoad(b, "Europe/Paris"), mustLoad(b, "Asia/Kolkata")
	localMonth := func(loc *time.Location) (time.Time, time.Time) {
		from := time.Date(2026, 3, 1, 0, 0, 0, 0, loc)
		return from, from.AddDate(0, 0, benchDays)
	}
	for _, bc := range []struct {
		name    string
		groupBy []string
		bucket  Bucket
		loc     *time.Location
	}{
		{"project×model×day/UTC", []string{"project", "model"}, Day, time.UTC},
		{"project×model×day/Paris", []string{"project", "model"}, Day, paris},
		{"project×model×day/Kolkata", []string{"project", "model"}, Day, kolkata},
		{"team×provider/month", []string{"team", "provider"}, None, time.UTC},
		{"user×model×hour/UTC", []string{"user", "model"}, Hour, time.UTC},
	} {
		b.Run(bc.name, func(b *testing.B) {
			from, to := localMonth(bc.loc)
			q := Query{From: from, To: to, GroupBy: bc.groupBy, Bucket: bc.bucket, Location: bc.loc}
			var rows []Row
			for b.Loop() {
				if rows, err = db.Report(context.Background(), q); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(len(rows)), "rows")
			// The records of the range, counted without buckets or groups (so
			// mostly from day aggregates): every path must agree.
			total, err := db.Report(context.Background(), Query{From: from, To: to})
			if err != nil {
				b.Fatal(err)
			}
			if n, want := sumRequests(rows), sumRequests(total); n != want || (bc.loc == time.UTC && n != benchDays*benchPerDay) {
				b.Fatalf("the report counts %d requests, want %d", n, want)
			}
		})
	}
	b.Run("statement/project/Paris", func(b *testing.B) {
		for b.Loop() {
			if _, err := Statements(context.Background(), db, march.AddDate(0, 0, 10), "project", "project-02", paris); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// reportDisk reports the directory's size per million records, and how much
// of it records and aggregates take: tables hold sorted keys, so nearly
// all hold one kind.
func reportDisk(b *testing.B, db *DB, size int64) {
	var recBytes, aggBytes int64
	for _, t := range db.bdb.Tables() {
		switch {
		case len(t.Left) == 0 || len(t.Right) == 0:
		case t.Left[0] == prefixRecord && t.Right[0] == prefixRecord:
			recBytes += int64(t.OnDiskSize)
		case t.Left[0] != prefixRecord && t.Right[0] != prefixRecord:
			aggBytes += int64(t.OnDiskSize)
		}
	}
	const mrec = benchDays * benchPerDay / 1e6
	b.ReportMetric(float64(size)/(1<<20)/mrec, "disk-MB/Mrec")
	b.ReportMetric(float64(recBytes)/(1<<20)/mrec, "records-MB/Mrec")
	b.ReportMetric(float64(aggBytes)/(1<<20)/mrec, "aggs-MB/Mrec")
	b.ReportMetric(float64(countKeys(b, db, prefixHour)), "hour-aggs")
	b.ReportMetric(float64(countKeys(b, db, prefixDay)), "day-aggs")
}

// seedBench writes the month through Append and returns the records per
// second it sustained; it closes the DB so that the files are final.
func seedBench(b *testing.B, dir string, march time.Time) float64 {
	b.Helper()
	db, err := Open(Options{Dir: dir, Dimensions: benchDims})
	if err != nil {
		b.Fatal(err)
	}
	g := newBenchGen(3)
	t0 := time.Now()
	const step = 24 * time.Hour / benchPerDay
	for i := range benchDays * benchPerDay {
		jitter := time.Duration(g.rng.Int64N(int64(step)))
		db.Append(g.record(march.Add(time.Duration(i)*step + jitter)))
		if i%(DefaultQueueSize/2) == 0 {
			if err := db.Flush(context.Background()); err != nil {
				b.Fatal(err)
			}
		}
	}
	if err := db.Flush(context.Background()); err != nil {
		b.Fatal(err)
	}
	rate := float64(benchDays*benchPerDay) / time.Since(t0).Seconds()
	if s := db.Stats(); s.Written != benchDays*benchPerDay {
		b.Fatalf("seeded %+v", s)
	}
	if err := db.Close(); err != nil {
		b.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, benchSeededFile), nil, 0o644); err != nil {
		b.Fatal(err)
	}
	return rate
}

func dirSize(b *testing.B, dir string) int64 {
	var n int64
	err := filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		n += info.Size()
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	return n
}

func countKeys(b *testing.B, db *DB, prefix byte) int {
	n := 0
	err := db.bdb.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte{prefix}})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			n++
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	return n
}
