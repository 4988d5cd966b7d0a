package pgstore

import (
	"fmt"
	"strings"
	"time"

	"github.com/tokenmeter/tokenmeter/internal/usage"
)

// Table names. Every replica of a fleet uses the same ones, in the
// database (and search_path schema) the DSN names.
const (
	tableMeta    = "tokenmeter_ledger_meta"
	tableRecords = "tokenmeter_ledger_records"
	tableHour    = "tokenmeter_ledger_hour"
	tableDay     = "tokenmeter_ledger_day"
	tableStaging = "tokenmeter_ledger_staging" // a temporary table, one per writer connection
)

// schemaFormat is stored in the meta row; a store refuses a database
// written in another.
const schemaFormat = 1

// keyColumns are a rollup row's group: the reporting currency, the values of
// the configured dimensions in order, provider, model (usagedb.ModelLabel),
// dialect and outcome.
var keyColumns = []string{"currency", "dims", "provider", "model", "dialect", "outcome"}

// sumColumns are a rollup row's exact sums, usagedb.Sums field by field:
// requests, unpriced, one per token class, one per unit, cost, list cost.
var sumColumns = func() []string {
	c := []string{"requests", "unpriced"}
	for i := range usage.NumClasses {
		c = append(c, "t_"+usage.Class(i).String())
	}
	for i := range usage.NumUnits {
		c = append(c, "u_"+usage.Unit(i).String())
	}
	return append(c, "cost", "list_cost")
}()

// ddl creates the tables. Records are partitioned by month of their start
// (unix nanoseconds, so nothing of the start is rounded) and identified by
// (start, request id): the primary key is what makes a retried batch, or one
// record written by two replicas' retries, count once, and Postgres
// requires the partition key in it. Rollups are small (their number is set
// by the groups, not the records) and are not partitioned.
func ddl() []string {
	sums := make([]string, len(sumColumns))
	for i, c := range sumColumns {
		sums[i] = c + " bigint NOT NULL"
	}
	rollup := func(name string) string {
		return fmt.Sprintf(`CREATE TABLE IF NOT EXISTS %s (
	period bigint NOT NULL, currency text NOT NULL, dims text[] NOT NULL, provider text NOT NULL,
	model text NOT NULL, dialect text NOT NULL, outcome text NOT NULL, %s,
	PRIMARY KEY (period, %s))`, name, strings.Join(sums, ", "), strings.Join(keyColumns, ", "))
	}
	return []string{
		`CREATE TABLE IF NOT EXISTS ` + tableMeta + ` (id int PRIMARY KEY CHECK (id = 1), format int NOT NULL, dims text[] NOT NULL)`,
		`CREATE TABLE IF NOT EXISTS ` + tableRecords + ` (start_ns bigint NOT NULL, request_id text NOT NULL,
	body bytea NOT NULL, PRIMARY KEY (start_ns, request_id)) PARTITION BY RANGE (start_ns)`,
		rollup(tableHour),
		rollup(tableDay),
	}
}

// stagingDDL is the writer's COPY target: a record, its encoding, and its
// contribution to the rollups, computed in Go by usagedb.Converter exactly
// as DB computes it.
func stagingDDL() string {
	sums := make([]string, len(sumColumns))
	for i, c := range sumColumns {
		sums[i] = c + " bigint"
	}
	return fmt.Sprintf(`CREATE TEMP TABLE IF NOT EXISTS %s (start_ns bigint, request_id text, body bytea,
	hour bigint, day bigint, currency text, dims text[], provider text, model text, dialect text, outcome text, %s)
	ON COMMIT DELETE ROWS`, tableStaging, strings.Join(sums, ", "))
}

// stagingColumns are the staging table's columns, in CopyFrom's order.
func stagingColumns() []string {
	c := []string{"start_ns", "request_id", "body", "hour", "day"}
	c = append(c, keyColumns...)
	return append(c, sumColumns...)
}

// ingestSQL moves the staged batch into the records and rolls up exactly
// the rows inserted, in one statement: ON CONFLICT DO NOTHING skips a
// record already stored (a retried batch, another replica's retry), and
// only the rows RETURNING names reach the rollups. Rollup rows are upserted
// in key order, so that replicas writing the same groups lock them in the
// same order. sum() of bigints is numeric; the cast to bigint, and the
// bigint additions, fail on overflow rather than wrap.
func ingestSQL() string {
	keys := strings.Join(keyColumns, ", ")
	var sums, upd []string
	for _, c := range sumColumns {
		sums = append(sums, "sum("+c+")::bigint")
		upd = append(upd, fmt.Sprintf("%s = t.%s + excluded.%s", c, c, c))
	}
	cols := strings.Join(sumColumns, ", ")
	rollup := func(table, period string) string {
		return fmt.Sprintf(`INSERT INTO %s AS t (period, %s, %s)
	SELECT %s, %s, %s FROM c GROUP BY %s, %s ORDER BY %s, %s
	ON CONFLICT (period, %s) DO UPDATE SET %s`,
			table, keys, cols, period, keys, strings.Join(sums, ", "), period, keys, period, keys, keys, strings.Join(upd, ", "))
	}
	return fmt.Sprintf(`WITH ins AS (
	INSERT INTO %s (start_ns, request_id, body) SELECT start_ns, request_id, body FROM %s
	ON CONFLICT DO NOTHING RETURNING start_ns, request_id),
c AS (SELECT s.* FROM %s s JOIN ins USING (start_ns, request_id)),
h AS (%s),
d AS (%s)
SELECT count(*) FROM ins`, tableRecords, tableStaging, tableStaging, rollup(tableHour, "hour"), rollup(tableDay, "day"))
}

// partitionName is the records partition of the month starting at m (UTC).
func partitionName(m time.Time) string {
	return fmt.Sprintf("%s_p%04d%02d", tableRecords, m.Year(), int(m.Month()))
}

// monthOf is the start of the UTC month holding unix nanos t.
func monthOf(t int64) time.Time {
	u := time.Unix(0, t).UTC()
	return time.Date(u.Year(), u.Month(), 1, 0, 0, 0, 0, time.UTC)
}

func partitionDDL(m time.Time) string {
	return fmt.Sprintf("CREATE TABLE IF NOT EXISTS %s PARTITION OF %s FOR VALUES FROM (%d) TO (%d)",
		partitionName(m), tableRecords, m.UnixNano(), m.AddDate(0, 1, 0).UnixNano())
}
