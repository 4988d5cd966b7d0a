package usagedb

import (
	"context"
	"io"
	"time"

	"github.com/tokenmeter/tokenmeter/internal/ledger"
	"github.com/tokenmeter/tokenmeter/internal/money"
)

// Reader is what reports are read from: a ledger's configured dimensions
// and its Report. Statements and DailyCost are built on it, so every store
// gives the same statements for the same rows.
type Reader interface {
	// Dimensions are the dimension names the ledger's records carry, in
	// order.
	Dimensions() []string
	// Report reads q's rows: see Query and Row. Every store answers the
	// same query with the same rows, to the nano-unit.
	Report(ctx context.Context, q Query) ([]Row, error)
}

// Store is a ledger: it takes records (ledger.Sink: Append never blocks
// and never fails; a record it cannot keep is counted in Stats), and reads
// them back as reports and exports. DB (Badger, one process) is one.
type Store interface {
	ledger.Sink
	Reader
	// Export calls fn with every record that started in [from, to), in
	// start order.
	Export(ctx context.Context, from, to time.Time, fn func(*ledger.Record) error) error
	// Flush returns once every record appended before it is stored (or
	// counted as lost).
	Flush(ctx context.Context) error
	// Stats counts what was written, dropped and failed.
	Stats() Stats
	// Close stores what is queued and releases the store.
	Close() error
}

var _ Store = (*DB)(nil)

// WriteExport streams the records of [from, to) of s to w in format f, with
// the configured dimensions' columns (what `export --format csv|jsonl
// --from --to` needs).
func WriteExport(ctx context.Context, s Store, w io.Writer, f Format, from, to time.Time) error {
	enc, err := NewWriter(f, w, s.Dimensions())
	if err != nil {
		return err
	}
	if err := s.Export(ctx, from, to, enc.Write); err != nil {
		return err
	}
	return enc.Flush()
}

// Ledger gives any Store the reads the admin API and the alerts make:
// statements, daily costs and exports, each built on the Store's Report and
// Export, so they agree across stores.
type Ledger struct{ Store }

// Statement returns Statements of the ledger.
func (l Ledger) Statement(ctx context.Context, month time.Time, dim, value string, loc *time.Location) ([]Statement, error) {
	return Statements(ctx, l.Store, month, dim, value, loc)
}

// DailyCost returns DailyCost of the ledger.
func (l Ledger) DailyCost(ctx context.Context, filter map[string]string, from, to time.Time, loc *time.Location) ([]money.Amount, money.Currency, error) {
	return DailyCost(ctx, l.Store, filter, from, to, loc)
}

// WriteExport writes WriteExport of the ledger.
func (l Ledger) WriteExport(ctx context.Context, w io.Writer, f Format, from, to time.Time) error {
	return WriteExport(ctx, l.Store, w, f, from, to)
}
