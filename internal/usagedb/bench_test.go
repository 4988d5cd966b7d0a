package usagedb

import (
	"context"
	"encoding/json"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/tokenmeter/tokenmeter/internal/ledger"
	"github.com/tokenmeter/tokenmeter/internal/ledger/ledgergen"
)

// BenchmarkRecordCodec compares the stored binary encoding of a record with
// JSON (the alternative the design allowed).
func BenchmarkRecordCodec(b *testing.B) {
	r := ledgergen.NewTraffic(1).Record(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC))
	key := recordKey(r.Start.UnixNano(), 1)
	names := &nameTable{byID: map[uint64][]string{1: ledgergen.TrafficDims}}
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
	db, err := Open(Options{Dir: b.TempDir(), Dimensions: ledgergen.TrafficDims})
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	g := ledgergen.NewTraffic(2)
	start := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	recs := make([]*ledger.Record, 10_000)
	for i := range recs {
		recs[i] = g.Record(start.Add(time.Duration(i) * 864 * time.Millisecond))
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
	db, err := Open(Options{Dir: dir, Dimensions: ledgergen.TrafficDims})
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
	db, err := Open(Options{Dir: dir, Dimensions: ledgergen.TrafficDims})
	if err != nil {
		b.Fatal(err)
	}
	g := ledgergen.NewTraffic(3)
	t0 := time.Now()
	const step = 24 * time.Hour / benchPerDay
	for i := range benchDays * benchPerDay {
		jitter := g.Jitter(step)
		db.Append(g.Record(march.Add(time.Duration(i)*step + jitter)))
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
