package pgstore

import (
	"cmp"
	"context"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tokenmeter/tokenmeter/internal/ledger"
	"github.com/tokenmeter/tokenmeter/internal/money"
	"github.com/tokenmeter/tokenmeter/internal/usagedb"
)

// Report implements usagedb.Reader: see the package doc, Reports.
func (s *Store) Report(ctx context.Context, q usagedb.Query) ([]usagedb.Row, error) {
	if err := q.Validate(s.dims); err != nil {
		return nil, err
	}
	plan := usagedb.NewPlan(q)
	acc := usagedb.NewAccumulator(q, s.dims, plan)
	err := pgx.BeginTxFunc(ctx, s.pool, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		for _, day := range []bool{false, true} {
			for _, neg := range []bool{false, true} {
				periods, buckets := expand(plan.Rollups(), day, neg)
				if err := s.addRollups(ctx, tx, q, day, neg, periods, buckets, acc); err != nil {
					return err
				}
			}
		}
		for _, sp := range plan.Records() {
			err := s.scan(ctx, tx, sp.From, sp.To, func(start int64, body []byte) error {
				r, err := usagedb.DecodeRecord(start, body)
				if err != nil {
					return err
				}
				return acc.AddRecord(r)
			})
			if err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return acc.Rows(), nil
}

// expand lists the periods (hour or day starts) of the plan's rollup spans
// of one table and sign, in order, with the bucket each is counted in.
// Within one table and sign the spans do not overlap, so each period is
// listed once.
func expand(spans []usagedb.RollupSpan, day, neg bool) ([]int64, []int32) {
	step := int64(usagedb.NanosPerHour)
	if day {
		step = usagedb.NanosPerDay
	}
	var periods []int64
	var buckets []int32
	for _, sp := range spans {
		if sp.Day != day || sp.Neg != neg {
			continue
		}
		for p := sp.From; p < sp.To; p += step {
			periods = append(periods, p)
			buckets = append(buckets, int32(sp.Bucket))
		}
	}
	if !slices.IsSorted(periods) { // the plan lists them in time order; width_bucket needs it
		idx := make([]int, len(periods))
		for i := range idx {
			idx[i] = i
		}
		slices.SortFunc(idx, func(a, b int) int { return cmp.Compare(periods[a], periods[b]) })
		p2, b2 := make([]int64, len(idx)), make([]int32, len(idx))
		for i, j := range idx {
			p2[i], b2[i] = periods[j], buckets[j]
		}
		periods, buckets = p2, b2
	}
	return periods, buckets
}

// addRollups sums, in SQL, the rollup rows of the listed periods by
// bucket, currency and q.GroupBy, filtered by q.Filter, and adds (or, neg,
// subtracts) the sums. The periods are an index lookup (period = ANY), and
// width_bucket, a binary search of the sorted list, finds each row's
// bucket: a join on period ranges led the planner to a nested loop over the
// whole table. Outcomes are counted, and the charged rule applied, in SQL
// too (FILTER, with the charged outcomes Go's rule lists), so a row per
// group comes back rather than one per outcome.
func (s *Store) addRollups(ctx context.Context, tx pgx.Tx, q usagedb.Query, day, neg bool, periods []int64, buckets []int32, acc *usagedb.Accumulator) error {
	if len(periods) == 0 {
		return nil
	}
	table := tableHour
	if day {
		table = tableDay
	}
	sql, args := s.rollupSQL(table, q, periods, buckets)
	rows, err := tx.Query(ctx, sql, args...)
	if err != nil {
		return fmt.Errorf("pgstore: report: %w", err)
	}
	defer rows.Close()
	var (
		bucket int32
		cur    string
		group  = make([]string, len(q.GroupBy))
		row    usagedb.Row
		cost   int64
		list   int64
	)
	dest := []any{&bucket, &cur}
	for i := range group {
		dest = append(dest, &group[i])
	}
	dest = append(dest, &row.Requests, &row.Unpriced)
	for i := range row.Outcomes {
		dest = append(dest, &row.Outcomes[i])
	}
	dest = append(dest, &row.Charged)
	for i := range row.Tokens {
		dest = append(dest, &row.Tokens[i])
	}
	for i := range row.Units {
		dest = append(dest, &row.Units[i])
	}
	dest = append(dest, &cost, &list)
	for rows.Next() {
		if err := rows.Scan(dest...); err != nil {
			return fmt.Errorf("pgstore: report: %w", err)
		}
		row.Cost, row.ListCost = money.Amount(cost), money.Amount(list)
		if err := acc.AddRow(int(bucket), money.Currency(cur), group, &row, neg); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("pgstore: report: %w", err)
	}
	return nil
}

// rollupSQL is addRollups's query: $1 the periods, $2 their buckets, $3 the
// outcomes counted apart (ledger.Outcomes), $4 the charged ones, then the
// filter's values.
func (s *Store) rollupSQL(table string, q usagedb.Query, periods []int64, buckets []int32) (string, []any) {
	outcomes := make([]string, len(ledger.Outcomes))
	for i, o := range ledger.Outcomes {
		outcomes[i] = string(o)
	}
	args := []any{periods, buckets, outcomes, usagedb.ChargedOutcomes()}
	sel := []string{"($2::int[])[width_bucket(r.period, $1::bigint[])]", "r.currency"}
	for _, k := range q.GroupBy {
		sel = append(sel, s.column(k))
	}
	groups := len(sel)
	where := []string{"r.period = ANY($1::bigint[])"}
	for _, k := range slices.Sorted(maps.Keys(q.Filter)) {
		args = append(args, q.Filter[k])
		where = append(where, s.column(k)+" = $"+strconv.Itoa(len(args)))
	}
	sum := func(col, filter string) string {
		if filter == "" {
			return "sum(r." + col + ")::bigint"
		}
		return "coalesce(sum(r." + col + ") FILTER (WHERE " + filter + "), 0)::bigint"
	}
	sel = append(sel, sum("requests", ""), sum("unpriced", ""))
	for i := range outcomes {
		sel = append(sel, sum("requests", "r.outcome = ($3::text[])["+strconv.Itoa(i+1)+"]"))
	}
	charged := "r.outcome = ANY($4::text[])"
	sel = append(sel, sum("requests", charged))
	for _, c := range sumColumns[2:] { // tokens, units, cost, list cost
		sel = append(sel, sum(c, charged))
	}
	return "SELECT " + strings.Join(sel, ", ") + " FROM " + table + " r WHERE " + strings.Join(where, " AND ") +
		" GROUP BY " + groupList(groups), args
}

func groupList(n int) string {
	s := make([]string, n)
	for i := range s {
		s[i] = strconv.Itoa(i + 1)
	}
	return strings.Join(s, ", ")
}

// column is the rollup expression of a group key (validated by the query).
func (s *Store) column(k string) string {
	if i := slices.Index(s.dims, k); i >= 0 {
		return "r.dims[" + strconv.Itoa(i+1) + "]"
	}
	return "r." + map[string]string{usagedb.KeyProvider: "provider", usagedb.KeyModel: "model",
		usagedb.KeyDialect: "dialect", usagedb.KeyOutcome: "outcome", usagedb.KeyCurrency: "currency"}[k]
}

// scan calls fn with the records that started in [from, to), in start
// order (then request id), streaming.
func (s *Store) scan(ctx context.Context, tx pgx.Tx, from, to int64, fn func(start int64, body []byte) error) error {
	rows, err := tx.Query(ctx, "SELECT start_ns, body FROM "+tableRecords+
		" WHERE start_ns >= $1 AND start_ns < $2 ORDER BY start_ns, request_id", from, to)
	if err != nil {
		return fmt.Errorf("pgstore: read records: %w", err)
	}
	defer rows.Close()
	var start int64
	var body []byte
	for rows.Next() {
		if err := rows.Scan(&start, &body); err != nil {
			return fmt.Errorf("pgstore: read records: %w", err)
		}
		if err := fn(start, body); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("pgstore: read records: %w", err)
	}
	return nil
}

// Export implements usagedb.Store: the records that started in [from, to),
// in start order (records with the same start in request-id order),
// streamed from one snapshot.
func (s *Store) Export(ctx context.Context, from, to time.Time, fn func(*ledger.Record) error) error {
	if err := usagedb.ValidateExportRange(from, to); err != nil {
		return err
	}
	return pgx.BeginTxFunc(ctx, s.pool, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		return s.scan(ctx, tx, from.UnixNano(), to.UnixNano(), func(start int64, body []byte) error {
			r, err := usagedb.DecodeRecord(start, body)
			if err != nil {
				return err
			}
			return fn(r)
		})
	})
}
