// Command ledgerbench measures the ledger stores (make bench-ledger): the
// records per second one writer ingests through Append, the disk a million
// records take, and the time of month reports, for the embedded Badger
// ledger and for Postgres (Debian's, started in a temporary directory with
// its durable defaults). The traffic is ledgergen.Traffic: 50 projects, 10
// models, Zipf-skewed, 7% not ok, a UUID request id and the provider's raw
// numbers in every record. It also checks that both stores answer every
// report with the same rows. It is not part of make test: a month of
// 100,000 records a day takes minutes.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/tokenmeter/tokenmeter/internal/ledger/ledgergen"
	"github.com/tokenmeter/tokenmeter/internal/usagedb"
	"github.com/tokenmeter/tokenmeter/internal/usagedb/pgstore"
	"github.com/tokenmeter/tokenmeter/internal/usagedb/pgstore/pgtest"
)

func main() {
	if err := run(os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "ledgerbench:", err)
		os.Exit(1)
	}
}

type options struct {
	out     string
	days    int
	perDay  int
	runs    int
	stores  []string
	command string
}

func run(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("ledgerbench", flag.ContinueOnError)
	var o options
	var stores string
	fs.StringVar(&o.out, "out", "", "write the results (markdown) to a dated file in this directory too")
	fs.IntVar(&o.days, "days", 30, "days of traffic")
	fs.IntVar(&o.perDay, "per-day", 100_000, "records a day")
	fs.IntVar(&o.runs, "runs", 5, "runs of each report")
	fs.StringVar(&stores, "stores", "badger,postgres", "the stores to measure")
	if err := fs.Parse(args); err != nil {
		return err
	}
	o.stores = strings.Split(stores, ",")
	o.command = strings.TrimSpace("go run ./bench/cmd/ledgerbench " + strings.Join(args, " "))
	var b strings.Builder
	w := io.MultiWriter(stdout, &b)
	fmt.Fprintf(w, "# Ledger stores: ingest, disk, month reports\n\n")
	fmt.Fprintf(w, "`make bench-ledger` (`%s`), %s, %d CPUs (GOMAXPROCS %d), load average %s.\n\n",
		strings.TrimSpace(o.command), time.Now().UTC().Format("2006-01-02 15:04 MST"), runtime.NumCPU(), runtime.GOMAXPROCS(0), loadAvg())
	fmt.Fprintf(w, "%d days × %d records (%d), ledgergen.Traffic, appended in start order by one goroutine.\n\n", o.days, o.perDay, o.days*o.perDay)
	var first []result
	for _, name := range o.stores {
		res, err := measure(name, o, w)
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		if first == nil {
			first = res
			continue
		}
		for i := range res {
			if !reflect.DeepEqual(res[i].rows, first[i].rows) {
				return fmt.Errorf("%s: report %q differs from %s's", name, res[i].name, o.stores[0])
			}
		}
		fmt.Fprintf(w, "Every report of %s gave the same rows as %s's.\n\n", name, o.stores[0])
	}
	if o.out == "" {
		return nil
	}
	if err := os.MkdirAll(o.out, 0o755); err != nil {
		return err
	}
	path := filepath.Join(o.out, time.Now().UTC().Format("2006-01-02")+"-ledger.md")
	return os.WriteFile(path, []byte(b.String()), 0o644)
}

func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	return strings.Join(strings.Fields(string(b))[:3], " ")
}

// target is one store under measurement.
type target struct {
	store usagedb.Store
	// disk returns the bytes the ledger takes, and a note of what they are;
	// it may reopen the store (Badger's files are final once closed).
	disk  func() (int64, string, error)
	close func()
}

type result struct {
	name string
	rows []usagedb.Row
}

func measure(name string, o options, w io.Writer) ([]result, error) {
	ctx := context.Background()
	t, err := openTarget(ctx, name)
	if err != nil {
		return nil, err
	}
	defer t.close()
	n := o.days * o.perDay
	rate, err := seed(ctx, t.store, o)
	if err != nil {
		return nil, err
	}
	size, note, err := t.disk()
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(w, "## %s\n\n", name)
	fmt.Fprintf(w, "| measure | value |\n| --- | --- |\n")
	fmt.Fprintf(w, "| ingest, one writer (Append → queue → store, until Flush) | %.0f records/s |\n", rate)
	fmt.Fprintf(w, "| disk per million records | %.1f MiB (%s) |\n", float64(size)/(1<<20)/(float64(n)/1e6), note)
	var out []result
	for _, rq := range reports(o) {
		var times []time.Duration
		var rows []usagedb.Row
		for range o.runs {
			t0 := time.Now()
			rows, err = t.store.Report(ctx, rq.q)
			if err != nil {
				return nil, fmt.Errorf("report %s: %w", rq.name, err)
			}
			times = append(times, time.Since(t0))
		}
		slices.Sort(times)
		fmt.Fprintf(w, "| report: %s (%d rows) | median %v (min %v, max %v, %d runs) |\n", rq.name, len(rows),
			times[len(times)/2].Round(time.Millisecond), times[0].Round(time.Millisecond), times[len(times)-1].Round(time.Millisecond), len(times))
		out = append(out, result{rq.name, rows})
	}
	fmt.Fprintln(w)
	return out, nil
}

type report struct {
	name string
	q    usagedb.Query
}

var march = time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)

func reports(o options) []report {
	paris, _ := time.LoadLocation("Europe/Paris")
	end := march.AddDate(0, 0, o.days)
	return []report{
		{"project × model × day, UTC", usagedb.Query{From: march, To: end, GroupBy: []string{"project", "model"}, Bucket: usagedb.Day}},
		{"project × model × day, Europe/Paris", usagedb.Query{From: march, To: end, GroupBy: []string{"project", "model"}, Bucket: usagedb.Day, Location: paris}},
		{"team × provider, whole range", usagedb.Query{From: march, To: end, GroupBy: []string{"team", "provider"}}},
	}
}

// seed appends the month in start order from one goroutine and returns
// the records per second until the last is stored. Append never blocks and
// drops when the queue is full, so the appender waits for room instead:
// what is measured is the store's pace, not the queue's size.
func seed(ctx context.Context, s usagedb.Store, o options) (float64, error) {
	g := ledgergen.NewTraffic(3)
	step := 24 * time.Hour / time.Duration(o.perDay)
	n := o.days * o.perDay
	high := int64(pgstore.DefaultQueueSize - 2*pgstore.DefaultBatchSize)
	t0 := time.Now()
	for i := range n {
		for s.Stats().Queued > high {
			time.Sleep(200 * time.Microsecond)
		}
		s.Append(g.Record(march.Add(time.Duration(i)*step + g.Jitter(step))))
	}
	if err := s.Flush(ctx); err != nil {
		return 0, err
	}
	el := time.Since(t0)
	if st := s.Stats(); st.Written != int64(n) {
		return 0, fmt.Errorf("seeded %+v, want %d written", st, n)
	}
	return float64(n) / el.Seconds(), nil
}

func openTarget(ctx context.Context, name string) (*target, error) {
	switch name {
	case "badger":
		dir, err := os.MkdirTemp("", "ledgerbench-badger-")
		if err != nil {
			return nil, err
		}
		o := usagedb.Options{Dir: dir, Dimensions: ledgergen.TrafficDims}
		db, err := usagedb.Open(o)
		if err != nil {
			return nil, err
		}
		t := &target{store: db}
		t.close = func() { t.store.Close(); os.RemoveAll(dir) }
		t.disk = func() (int64, string, error) {
			if err := t.store.Close(); err != nil {
				return 0, "", err
			}
			n := dirSize(dir)
			db, err := usagedb.Open(o)
			if err != nil {
				return 0, "", err
			}
			t.store = db
			return n, "the Badger directory, closed", nil
		}
		return t, nil
	case "postgres":
		srv, err := pgtest.Launch(pgtest.Options{Durable: true})
		if err != nil {
			return nil, err
		}
		s, err := pgstore.Open(ctx, pgstore.Options{DSN: srv.DSN, Dimensions: ledgergen.TrafficDims})
		if err != nil {
			srv.Close()
			return nil, err
		}
		return &target{store: s, close: func() { s.Close(); srv.Close() },
			disk: func() (int64, string, error) { return pgSize(ctx, srv.DSN) }}, nil
	}
	return nil, errors.New("unknown store (want badger or postgres)")
}

func dirSize(dir string) int64 {
	var n int64
	_ = filepath.Walk(dir, func(_ string, fi os.FileInfo, err error) error {
		if err == nil && !fi.IsDir() {
			n += fi.Size()
		}
		return nil
	})
	return n
}
