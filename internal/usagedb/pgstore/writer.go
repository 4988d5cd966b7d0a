package pgstore

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/tokenmeter/tokenmeter/internal/ledger"
	"github.com/tokenmeter/tokenmeter/internal/usagedb"
)

// run is the writer goroutine.
func (s *Store) run() {
	defer close(s.exited)
	var tick <-chan time.Time
	if s.retention > 0 {
		t := time.NewTicker(s.sweep)
		defer t.Stop()
		tick = t.C
	}
	var replay <-chan time.Time
	if s.spool != nil {
		t := time.NewTicker(replayEvery)
		defer t.Stop()
		replay = t.C
		s.replay() // what a previous run left
	}
	batch := make([]*ledger.Record, 0, s.batchSize)
	for {
		select {
		case it := <-s.queue:
			if stop := s.handle(it, &batch); stop {
				return
			}
		case <-tick:
			if err := s.Sweep(context.Background()); err != nil {
				s.log.Error("usage ledger retention failed", "err", err)
			}
		case <-replay:
			if _, ok := s.spool.oldest(); ok && s.dbUp() {
				s.replay()
			}
		}
	}
}

// handle takes first and whatever else is queued, up to a batch, writes
// the records and answers flush markers in queue order.
func (s *Store) handle(first item, batch *[]*ledger.Record) (stop bool) {
	b := (*batch)[:0]
	defer func() { clear(b[:cap(b)]); *batch = b[:0] }()
	it := first
	for {
		switch {
		case it.rec != nil:
			b = append(b, it.rec)
		case it.stop:
			s.writeRecords(b)
			return true
		default:
			s.writeRecords(b)
			b = b[:0]
			it.done <- nil
		}
		if len(b) >= s.batchSize {
			break
		}
		more := false
		select {
		case it = <-s.queue:
			more = true
		default:
		}
		if !more {
			break
		}
	}
	s.writeRecords(b)
	return false
}

// writeRecords writes recs, retrying with backoff for RetryFor, and counts
// them written or lost.
func (s *Store) writeRecords(recs []*ledger.Record) {
	if len(recs) == 0 {
		return
	}
	if s.spool != nil {
		s.writeOrSpool(recs)
		return
	}
	rows := s.stage(recs)
	deadline := time.Now().Add(s.retryFor)
	wait := 50 * time.Millisecond
	for attempt := 1; ; attempt++ {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		err := s.ingest(ctx, rows)
		cancel()
		if err == nil {
			s.written.Add(int64(len(recs)))
			return
		}
		if time.Now().Add(wait).After(deadline) {
			s.writeErrors.Add(int64(len(recs)))
			s.log.Error("usage ledger write failed; records lost", "records", len(recs), "attempts", attempt, "err", err)
			return
		}
		s.log.Warn("usage ledger write failed; retrying", "records", len(recs), "attempt", attempt, "err", err)
		time.Sleep(wait)
		wait = min(2*wait, 2*time.Second)
	}
}

// stage turns recs into staging rows: each record once (a batch can hold
// the same record twice, and a join on its identity must not count it
// twice), with its encoding and its rollup contribution.
func (s *Store) stage(recs []*ledger.Record) [][]any {
	type id struct {
		start int64
		rid   string
	}
	seen := make(map[id]bool, len(recs))
	rows := make([][]any, 0, len(recs))
	for _, r := range recs {
		start := r.Start.UnixNano()
		if seen[id{start, r.RequestID}] {
			continue
		}
		seen[id{start, r.RequestID}] = true
		k, v := s.conv.Contribution(r, s.dims)
		row := make([]any, 0, 11+len(sumColumns))
		row = append(row, start, r.RequestID, usagedb.EncodeRecord(nil, r),
			floor(start, usagedb.NanosPerHour), floor(start, usagedb.NanosPerDay),
			string(k.Currency), k.Dimensions, k.Provider, k.Model, k.Dialect, k.Outcome,
			v.Requests, v.Unpriced)
		for _, t := range v.Tokens {
			row = append(row, t)
		}
		for _, u := range v.Units {
			row = append(row, u)
		}
		rows = append(rows, append(row, int64(v.Cost), int64(v.ListCost)))
	}
	return rows
}

func floor(n, unit int64) int64 {
	q := n / unit
	if n%unit < 0 {
		q--
	}
	return q * unit
}

// ingest writes the staged rows in one transaction. After a failure the
// partition cache is forgotten: another replica's retention may have
// dropped a month this one still thought was there.
func (s *Store) ingest(ctx context.Context, rows [][]any) (err error) {
	defer func() {
		if err != nil {
			s.partMu.Lock()
			clear(s.partitions)
			s.partMu.Unlock()
		}
	}()
	if err := s.ensurePartitions(ctx, rows); err != nil {
		return err
	}
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("pgstore: %w", err)
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, stagingDDL()); err != nil {
		return fmt.Errorf("pgstore: staging table: %w", err)
	}
	return pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		if err := s.checkDims(ctx, tx, "FOR SHARE"); err != nil {
			return err
		}
		if _, err := tx.CopyFrom(ctx, pgx.Identifier{tableStaging}, stagingColumns(), pgx.CopyFromRows(rows)); err != nil {
			return fmt.Errorf("pgstore: copy: %w", err)
		}
		var n int64
		if err := tx.QueryRow(ctx, ingestSQL()).Scan(&n); err != nil {
			return fmt.Errorf("pgstore: insert: %w", err)
		}
		return nil
	})
}

// errDims is a batch refused because the stored rollups are keyed by
// another dimension list: another replica runs another configuration.
var errDims = errors.New("pgstore: the ledger's rollups are keyed by another dimension list (replicas configured differently?)")

func (s *Store) checkDims(ctx context.Context, tx pgx.Tx, lock string) error {
	var dims []string
	if err := tx.QueryRow(ctx, "SELECT dims FROM "+tableMeta+" WHERE id = 1 "+lock).Scan(&dims); err != nil {
		return fmt.Errorf("pgstore: read meta: %w", err)
	}
	if !equal(dims, s.dims) {
		return fmt.Errorf("%w: stored %q, configured %q", errDims, dims, s.dims)
	}
	return nil
}

func equal(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// ensurePartitions creates the month partitions rows need. Two replicas
// can race to create one: the loser's "already exists" is success.
func (s *Store) ensurePartitions(ctx context.Context, rows [][]any) error {
	s.partMu.Lock()
	defer s.partMu.Unlock()
	for _, r := range rows {
		m := monthOf(r[0].(int64))
		if s.partitions[m] {
			continue
		}
		_, err := s.pool.Exec(ctx, partitionDDL(m))
		var pgErr *pgconn.PgError
		if err != nil && !(errors.As(err, &pgErr) && (pgErr.Code == "42P07" || pgErr.Code == "23505")) {
			return fmt.Errorf("pgstore: create partition %s: %w", partitionName(m), err)
		}
		s.partitions[m] = true
	}
	return nil
}
