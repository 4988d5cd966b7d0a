package admin_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/tokenmeter/tokenmeter/internal/admin"
	"github.com/tokenmeter/tokenmeter/internal/ledger/ledgergen"
	"github.com/tokenmeter/tokenmeter/internal/usagedb"
)

// The benchmark's month: 30 days of 100,000 records (ledgergen.Traffic),
// the 3 million.
const (
	consoleBenchDays   = 30
	consoleBenchPerDay = 100_000
	consoleSeededFile  = "seeded-console-bench"
)

var consoleBenchMonth = time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)

// seedConsoleBench appends the month to a Badger ledger in dir, once: a
// later run with the same TOKENMETER_CONSOLE_BENCH_DIR reuses it.
func seedConsoleBench(b *testing.B, dir string) {
	b.Helper()
	if _, err := os.Stat(filepath.Join(dir, consoleSeededFile)); err == nil {
		return
	}
	db, err := usagedb.Open(usagedb.Options{Dir: dir, Dimensions: ledgergen.TrafficDims,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		b.Fatal(err)
	}
	g := ledgergen.NewTraffic(3)
	const step = 24 * time.Hour / consoleBenchPerDay
	for i := range consoleBenchDays * consoleBenchPerDay {
		db.Append(g.Record(consoleBenchMonth.Add(time.Duration(i)*step + g.Jitter(step))))
		// Append drops when its queue is full: flush at half of it.
		if i%(usagedb.DefaultQueueSize/2) == 0 {
			if err := db.Flush(context.Background()); err != nil {
				b.Fatal(err)
			}
		}
	}
	if err := db.Flush(context.Background()); err != nil {
		b.Fatal(err)
	}
	if s := db.Stats(); s.Written != consoleBenchDays*consoleBenchPerDay {
		b.Fatalf("seeded %+v", s)
	}
	if err := db.Close(); err != nil {
		b.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, consoleSeededFile), nil, 0o644); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkConsoleFirstRender measures the server's time for a view's
// first render against a month of 3 million records: the API calls the
// page makes on load, issued at once as the browser's Promise.all does,
// through the admin handler (no network). make bench-console runs it; set
// TOKENMETER_CONSOLE_BENCH_DIR to keep the seeded ledger between runs.
func BenchmarkConsoleFirstRender(b *testing.B) {
	dir := os.Getenv("TOKENMETER_CONSOLE_BENCH_DIR")
	if dir == "" {
		dir = b.TempDir()
	}
	seedConsoleBench(b, dir)
	book, err := usagedb.Open(usagedb.Options{Dir: dir, Dimensions: ledgergen.TrafficDims,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		b.Fatal(err)
	}
	defer book.Close()
	srv := admin.New(http.NotFoundHandler(), "").WithUsage(usagedb.Ledger{Store: book}, nil)
	const month = "from=2026-03-01&to=2026-04-01"
	for _, v := range []struct {
		name  string
		calls []string
	}{
		// The spend view's load (console.js loadSpend): by day, by the first
		// dimension, by model.
		{"spend", []string{"/", "/ui/console.js", "/ui/views.js", "/ui/console.css", "/v1/console/config",
			"/v1/usage/report?" + month + "&bucket=day", "/v1/usage/report?" + month + "&group_by=project",
			"/v1/usage/report?" + month + "&group_by=model"}},
		// The statement view's (views.js loadStatement): the month's values,
		// then the busiest project's statement (Zipf: project-00).
		{"statement", []string{"/v1/console/config", "/v1/usage/report?" + month + "&group_by=project",
			"/v1/usage/statement?month=2026-03&dimension=project&value=project-00"}},
	} {
		b.Run(v.name, func(b *testing.B) {
			for b.Loop() {
				var wg sync.WaitGroup
				for _, path := range v.calls {
					wg.Go(func() {
						rec := httptest.NewRecorder()
						srv.ServeHTTP(rec, httptest.NewRequest("GET", path, nil))
						if rec.Code != http.StatusOK {
							b.Errorf("%s: %d %s", path, rec.Code, rec.Body)
						}
					})
				}
				wg.Wait()
			}
		})
	}
}
