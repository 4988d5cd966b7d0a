package pgstore

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tokenmeter/tokenmeter/internal/usagedb"
)

// setupLock is the advisory lock key replicas take while they create the
// tables or rebuild the rollups, so that two starting at once do it once.
const setupLock = 0x746f6b6d6574 // "tokmet"

// setup creates the tables and the meta row, and rebuilds the rollups when
// the dimension list changed.
func (s *Store) setup(ctx context.Context) error {
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("pgstore: connect: %w", err)
	}
	defer conn.Release()
	return pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", int64(setupLock)); err != nil {
			return fmt.Errorf("pgstore: lock: %w", err)
		}
		for _, q := range ddl() {
			if _, err := tx.Exec(ctx, q); err != nil {
				return fmt.Errorf("pgstore: create tables: %w", err)
			}
		}
		var format int
		var dims []string
		err := tx.QueryRow(ctx, "SELECT format, dims FROM "+tableMeta+" WHERE id = 1 FOR UPDATE").Scan(&format, &dims)
		switch {
		case err == pgx.ErrNoRows:
			_, err = tx.Exec(ctx, "INSERT INTO "+tableMeta+" (id, format, dims) VALUES (1, $1, $2)", schemaFormat, s.dims)
			if err != nil {
				return fmt.Errorf("pgstore: write meta: %w", err)
			}
			return nil
		case err != nil:
			return fmt.Errorf("pgstore: read meta: %w", err)
		case format != schemaFormat:
			return fmt.Errorf("pgstore: the ledger's tables are format %d; this version reads %d", format, schemaFormat)
		case equal(dims, s.dims):
			return nil
		}
		s.log.Warn("usage ledger dimensions changed; rebuilding the rollups from the records", "was", dims, "now", s.dims)
		return s.rebuild(ctx, tx)
	})
}

// rebuild replaces the rollups with sums of every record under s.dims,
// one UTC day of records at a time, so memory holds one day's groups.
func (s *Store) rebuild(ctx context.Context, tx pgx.Tx) error {
	if _, err := tx.Exec(ctx, "TRUNCATE "+tableHour+", "+tableDay); err != nil {
		return fmt.Errorf("pgstore: rebuild: %w", err)
	}
	if _, err := tx.Exec(ctx, "UPDATE "+tableMeta+" SET dims = $1 WHERE id = 1", s.dims); err != nil {
		return fmt.Errorf("pgstore: rebuild: %w", err)
	}
	var conv usagedb.Converter
	day := int64(-1 << 63)
	var n int64
	for {
		var next *int64
		if err := tx.QueryRow(ctx, "SELECT min(start_ns) FROM "+tableRecords+" WHERE start_ns >= $1", day).Scan(&next); err != nil {
			return fmt.Errorf("pgstore: rebuild: %w", err)
		}
		if next == nil {
			break
		}
		day = floor(*next, usagedb.NanosPerDay)
		hours, days := map[string]*group{}, map[string]*group{}
		err := s.scan(ctx, tx, day, day+usagedb.NanosPerDay, func(start int64, body []byte) error {
			r, err := usagedb.DecodeRecord(start, body)
			if err != nil {
				return err
			}
			k, v := conv.Contribution(r, s.dims)
			n++
			if err := addGroup(hours, floor(start, usagedb.NanosPerHour), k, &v); err != nil {
				return err
			}
			return addGroup(days, day, k, &v)
		})
		if err != nil {
			return fmt.Errorf("pgstore: rebuild: %w", err)
		}
		for t, g := range map[string]map[string]*group{tableHour: hours, tableDay: days} {
			if _, err := tx.CopyFrom(ctx, pgx.Identifier{t}, append([]string{"period"}, append(keyColumns, sumColumns...)...), groupRows(g)); err != nil {
				return fmt.Errorf("pgstore: rebuild: %w", err)
			}
		}
		day += usagedb.NanosPerDay
	}
	s.log.Info("usage ledger rollups rebuilt", "records", n)
	return nil
}

// group is one rollup row being summed.
type group struct {
	period int64
	key    usagedb.RollupKey
	sums   usagedb.Sums
}

func addGroup(m map[string]*group, period int64, k usagedb.RollupKey, v *usagedb.Sums) error {
	id := fmt.Sprintf("%d\x00%s\x00%s\x00%s\x00%s\x00%s\x00%s", period, k.Currency, strings.Join(k.Dimensions, "\x01"),
		k.Provider, k.Model, k.Dialect, k.Outcome)
	g, ok := m[id]
	if !ok {
		m[id] = &group{period: period, key: k, sums: *v}
		return nil
	}
	return g.sums.Add(v)
}

func groupRows(m map[string]*group) pgx.CopyFromSource {
	rows := make([][]any, 0, len(m))
	for _, g := range m {
		k, v := g.key, g.sums
		row := []any{g.period, string(k.Currency), k.Dimensions, k.Provider, k.Model, k.Dialect, k.Outcome, v.Requests, v.Unpriced}
		for _, t := range v.Tokens {
			row = append(row, t)
		}
		for _, u := range v.Units {
			row = append(row, u)
		}
		rows = append(rows, append(row, int64(v.Cost), int64(v.ListCost)))
	}
	return pgx.CopyFromRows(rows)
}

// Sweep applies retention now: it drops every month partition that ended
// before Now()-Retention, and deletes that month's rollups, in one
// transaction. The writer also sweeps every SweepInterval.
func (s *Store) Sweep(ctx context.Context) error {
	if s.retention <= 0 {
		return nil
	}
	cutoff := s.now().Add(-s.retention).UnixNano()
	rows, err := s.pool.Query(ctx, `SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
		JOIN pg_class p ON p.oid = i.inhparent WHERE p.relname = $1 ORDER BY 1`, tableRecords)
	if err != nil {
		return fmt.Errorf("pgstore: list partitions: %w", err)
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return fmt.Errorf("pgstore: list partitions: %w", err)
	}
	for _, name := range names {
		var y, mo int
		if _, err := fmt.Sscanf(strings.TrimPrefix(name, tableRecords+"_p"), "%4d%2d", &y, &mo); err != nil {
			continue // not one of ours
		}
		m := time.Date(y, time.Month(mo), 1, 0, 0, 0, 0, time.UTC)
		end := m.AddDate(0, 1, 0).UnixNano()
		if end > cutoff {
			continue
		}
		if err := s.dropMonth(ctx, name, m.UnixNano(), end); err != nil {
			return err
		}
		s.partMu.Lock()
		delete(s.partitions, m)
		s.partMu.Unlock()
	}
	return nil
}

func (s *Store) dropMonth(ctx context.Context, name string, from, to int64) error {
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var n int64
		if err := tx.QueryRow(ctx, "SELECT count(*) FROM "+pgx.Identifier{name}.Sanitize()).Scan(&n); err != nil {
			return fmt.Errorf("pgstore: retention: %w", err)
		}
		for _, q := range []string{
			"DROP TABLE " + pgx.Identifier{name}.Sanitize(),
			"DELETE FROM " + tableHour + " WHERE period >= $1 AND period < $2",
			"DELETE FROM " + tableDay + " WHERE period >= $1 AND period < $2",
		} {
			var args []any
			if strings.HasPrefix(q, "DELETE") {
				args = []any{from, to}
			}
			if _, err := tx.Exec(ctx, q, args...); err != nil {
				return fmt.Errorf("pgstore: retention %s: %w", name, err)
			}
		}
		s.expired.Add(n)
		s.log.Info("usage ledger month expired", "partition", name, "records", n)
		return nil
	})
}
