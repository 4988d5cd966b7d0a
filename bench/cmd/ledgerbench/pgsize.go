package main

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// pgSize is the ledger's tables with their indexes and TOAST (records
// partitions, rollups), without the WAL.
func pgSize(ctx context.Context, dsn string) (int64, string, error) {
	c, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return 0, "", err
	}
	defer c.Close(ctx)
	if _, err := c.Exec(ctx, "VACUUM ANALYZE"); err != nil {
		return 0, "", err
	}
	var recs, rollups int64
	err = c.QueryRow(ctx, `SELECT
		coalesce(sum(pg_total_relation_size(c.oid)) FILTER (WHERE c.relname LIKE 'tokenmeter_ledger_records_p%'), 0)::bigint,
		coalesce(sum(pg_total_relation_size(c.oid)) FILTER (WHERE c.relname IN ('tokenmeter_ledger_hour', 'tokenmeter_ledger_day')), 0)::bigint
		FROM pg_class c WHERE c.relkind = 'r'`).Scan(&recs, &rollups)
	if err != nil {
		return 0, "", err
	}
	return recs + rollups, fmt.Sprintf("tables and indexes: records %.1f MiB, rollups %.1f MiB in all; WAL not counted", float64(recs)/(1<<20), float64(rollups)/(1<<20)), nil
}
