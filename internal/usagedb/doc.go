// Package usagedb is the usage ledger: one ledger.Record per metered
// request, stored in Badger, and the reports finance needs from it —
// usage and cost grouped by dimensions, provider, model and time bucket,
// monthly statements that reconcile to the ledger to the nano-unit, and
// CSV or JSONL exports.
//
// # Writing
//
// DB implements ledger.Sink. Append copies the record into a bounded queue
// (Options.QueueSize) and returns at once: it never blocks traffic. When the
// queue is full the record is dropped, counted (Stats.Dropped) and logged,
// at most once a second with the count. One writer goroutine takes records
// in batches of up to 1,000 and commits each batch in one Badger
// transaction together with the hour and day aggregates it changes, so the
// aggregates are always the exact sums of the stored records, across
// crashes too. Flush waits for what was appended before it; Close drains
// the queue. After Flush, Stats.Written + Stats.Dropped + Stats.WriteErrors
// is the number of records appended.
//
// # Storage layout
//
// Keys start with one byte naming what they hold:
//
//	r | start unix nanos (8, big-endian) | sequence (8)   → the record (compact binary, see codec.go)
//	h | UTC hour start unix seconds (8) | fields          → hour aggregate
//	d | UTC day start unix seconds (8) | fields           → day aggregate
//	m | name                                             → meta: format, sequence, dimension-name lists
//
// An aggregate's fields are the reporting currency, the value of every
// configured dimension, provider, model (see ModelLabel), dialect and
// outcome; its value is varint-encoded exact sums: requests, unpriced
// requests, tokens per class, units, cost and list cost. Records are keyed
// by start, then by a sequence number that keeps equal starts apart, so a
// time range is one key range and an export is one scan.
//
// # Reports
//
// Report never scans a month of records. It covers [From, To), bucket by
// bucket: each UTC day's part of a bucket from the day aggregate when it is
// the whole day, from the day aggregate minus the hour aggregates outside
// the part when that is most of the day (15 hours or more), else from hour
// aggregates; and partial hours at the edges (an odd From or To, or a
// bucket that does not start on a UTC hour) from the records themselves.
// Every record is counted once, in its own bucket, so reports are exact
// whatever the edges: the sums are integers, so subtracting is exact too.
//
// A row counts every record, by outcome, and sums tokens, units and costs
// over the records whose outcome carries a charge (ledger.Outcome.Charged)
// only. The outcome is a field of every aggregate key, so the rule applies
// when reading, alike to aggregates and records, whatever version wrote
// them; a statement bills the charged records alone and counts the
// others by outcome (StatementLine.Denied, Failed).
//
// Buckets align in Query.Location: Day at local midnight (a DST day is 23
// or 25 hours), Week at Monday 00:00 (ISO), Month at the first of the
// month, Hour at the top of the local hour.
// In a zone whose offset is not a whole hour (Asia/Kolkata, +05:30) the
// half hours around each local midnight are read from the records: exact,
// at the cost of one hour of records per day; Hour buckets there read
// records throughout.
//
// Costs are in the reporting currency: Record.ReportingCost in
// Record.ReportingCurrency, or Cost in Currency when the record has none.
// ListCost is converted with the record's own rate (Record.FX) at its start,
// rounded once, as Cost was; a record whose rate cannot convert it is
// reported in its catalog currency. Currency is part of every row's
// identity: amounts in different currencies are never summed.
//
// A malformed query (an unknown key, From not before To, a range longer
// than five years, too many buckets or rows) is an error wrapping
// ErrBadQuery that names the field, its value and the reason. Memory is
// bounded by the rows of the answer (at most MaxGroups per worker).
//
// # Retention
//
// Options.Retention deletes records and their aggregates together, in whole
// UTC days: a day goes once it ended before Now()-Retention, so a record
// lives at least Retention and less than Retention+24h, and no report ever
// sees part of a day. The writer sweeps at Open and every SweepInterval
// (not Badger TTLs, so a fake clock can test it); Sweep sweeps at once.
// Badger reclaims the space as it compacts.
//
// # Dimensions
//
// Aggregates are keyed by Options.Dimensions, in order. A record made under
// another list is aggregated by name, with attribution.Unknown for a
// dimension it lacks. When the configured list changes, Open rebuilds the
// aggregates from the records (logged; it reads every stored record once).
//
// # Other stores
//
// DB is one process's ledger; package pgstore is one ledger on PostgreSQL
// for a fleet. Both implement Store, and engine.go exports what pgstore
// shares with DB rather than re-derives: the record encoding, a record's
// contribution (Converter), the plan of rollups and edge records that
// answers a query (Plan) and the accumulator that makes rows of them, so
// the two agree to the nano-unit. Package ledgertest is the suite both
// pass.
//
// # Exports
//
// Export streams records in start order from one snapshot; WriteExport
// encodes them as CSV or JSONL with these columns (docs/ledger-export.md
// documents each):
//
//	request_id, start, duration_ms, ttft_ms, dim_<name> per configured dimension,
//	provider, dialect, model, response_model, priced_model, status, stream, outcome,
//	reason, budget, <class>_tokens per usage class (input, cache_read, cache_write,
//	cache_write_1h, output, reasoning, audio_input, audio_output, image_input,
//	image_output), images, audio_ms, characters, image_size, image_quality,
//	estimated, list_cost, cost, currency, adjustment, reporting_cost,
//	reporting_currency, fx_rate, fx_from, fx_to, fx_effective_from, fx_source,
//	priced, fallback, service_tier, client_request_id
//
// Instants are RFC 3339 UTC with nanoseconds, durations milliseconds as an
// exact decimal, money exact decimals (money.Amount.String). JSONL uses the
// same names as flat keys, money as strings.
//
// # Measurements
//
// On the project's machine (2 cores, AMD EPYC, shared with other work, so
// the ranges are over runs at load averages 1.4 to 2.6), with the realistic
// traffic of bench_test.go (50 projects of 5 teams, 20 users, 10 models of
// 4 providers, Zipf-skewed, 7% not ok, a UUID request id and the
// provider's raw numbers in every record):
//
//	go test -run '^$' -bench 'RecordCodec|Append' -benchmem ./usagedb/
//
//	stored record             152 bytes, encode 0.28 µs, decode 0.8–1.5 µs
//	  (the same record as JSON 1,143 bytes, encode 3.6–4.1 µs, decode 21–24 µs)
//	Append → queue → disk     95,000–124,000 records/s (BenchmarkAppend)
//
//	USAGEDB_BENCH_DIR=/tmp/usagedb-bench go test -run '^$' -bench ReportMonth -benchmem -timeout 30m ./usagedb/
//
// seeds 30 days × 100,000 records (3M) through Append at 62,000–81,000
// records/s, closes Badger and measures the directory, then times reports
// over the month (ns/op of each sub-benchmark):
//
//	disk                                   114.5 MiB per million records
//	                                       (records 97–98, aggregates 11.5–13, the rest Badger's files)
//	aggregate keys                         944,284 hour, 143,287 day
//	project × model × day, UTC             55–97 ms (15,000 rows)
//	project × model × day, Europe/Paris    78–146 ms
//	project × model × day, Asia/Kolkata    300–630 ms (reads one hour of records a day)
//	team × provider, whole month           38–75 ms
//	user × model × hour, UTC               480–1,000 ms (143,840 rows)
//	monthly statement, Europe/Paris        25–55 ms
//
// Aggregates cost little disk because they are few: about 1,300 keys an
// hour for this traffic; their number, not the number of records, sets a
// report's time. A report splits its work by UTC day over GOMAXPROCS
// workers. A local day that covers most of a UTC day (Paris) reads that
// UTC day's aggregate minus the hours outside, which integer sums make
// exact.
package usagedb
