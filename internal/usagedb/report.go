package usagedb

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"sync"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/tokenmeter/tokenmeter/internal/ledger"
	"github.com/tokenmeter/tokenmeter/internal/money"
	"github.com/tokenmeter/tokenmeter/internal/usage"
)

// Row is one group of one bucket of a report. Costs are in Currency, the
// records' reporting currency (see the package doc, Reports): rows of
// different currencies are never summed.
type Row struct {
	// Bucket is the bucket's start in Query.Location, even when From cuts
	// into it; zero for Bucket None.
	Bucket time.Time
	// Group holds the values of Query.GroupBy, in its order.
	Group    []string
	Currency money.Currency

	Requests int64 // records
	// Charged counts the records whose outcome carries a charge
	// (ledger.Outcome.Charged); the other Requests - Charged carried none.
	Charged int64
	// Outcomes counts records by outcome, indexed as ledger.Outcomes (read
	// one with Outcome). A record whose outcome that list lacks (written by
	// a later version) counts in Requests only.
	Outcomes [NumOutcomes]int64
	// Unpriced counts records whose model had no price (Priced false) or
	// was priced at the fallback model's prices.
	Unpriced int64
	// Tokens, Units, Cost and ListCost sum the charged records only: a
	// record whose outcome carries no charge counts in Requests and
	// Outcomes, never in what was charged. The rule is the outcome's
	// (Charged), applied when reading, so aggregates written by any version
	// agree with their records.
	Tokens [usage.NumClasses]int64
	Units  [usage.NumUnits]int64
	// Cost is the charged cost; ListCost the cost at catalog prices.
	Cost, ListCost money.Amount
}

// NumOutcomes is the length of ledger.Outcomes, so that a row's counts by
// outcome are an array, not a map per row.
const NumOutcomes = len(ledger.Outcomes)

// Outcome returns the number of records in r with outcome o.
func (r *Row) Outcome(o ledger.Outcome) int64 {
	if i := outcomeIndex(o); i >= 0 {
		return r.Outcomes[i]
	}
	return 0
}

// outcomeIndex is o's position in ledger.Outcomes, or -1. It takes []byte
// or Outcome so that a report's millions of aggregate keys are looked up
// without converting (and allocating) each one.
func outcomeIndex[S ~[]byte | ~string](o S) int {
	for i, known := range ledger.Outcomes {
		if string(o) == string(known) {
			return i
		}
	}
	return -1
}

// add adds one aggregate (or one record's contribution) with outcome.
func (r *Row) add(outcome []byte, v *aggVal) error {
	var a adder
	a.add(&r.Requests, v.requests)
	a.add(&r.Unpriced, v.unpriced)
	i := outcomeIndex(outcome)
	if i < 0 {
		return a.err()
	}
	a.add(&r.Outcomes[i], v.requests)
	if !ledger.Outcomes[i].Charged() {
		return a.err()
	}
	a.add(&r.Charged, v.requests)
	for i := range r.Tokens {
		a.add(&r.Tokens[i], v.tokens[i])
	}
	for i := range r.Units {
		a.add(&r.Units[i], v.units[i])
	}
	a.addAmount(&r.Cost, v.cost)
	a.addAmount(&r.ListCost, v.list)
	return a.err()
}

// merge adds o, a row of the same bucket, group and currency, into r.
func (r *Row) merge(o *Row) error {
	var a adder
	a.add(&r.Requests, o.Requests)
	a.add(&r.Charged, o.Charged)
	a.add(&r.Unpriced, o.Unpriced)
	for i := range r.Outcomes {
		a.add(&r.Outcomes[i], o.Outcomes[i])
	}
	for i := range r.Tokens {
		a.add(&r.Tokens[i], o.Tokens[i])
	}
	for i := range r.Units {
		a.add(&r.Units[i], o.Units[i])
	}
	a.addAmount(&r.Cost, o.Cost)
	a.addAmount(&r.ListCost, o.ListCost)
	return a.err()
}

// Report answers q from the hour and day aggregates, reading records only
// for the partial hours at the edges of the range and of its buckets. Rows
// are sorted by bucket, then group, then currency.
//
// The work is split by UTC day and shared by up to GOMAXPROCS workers,
// each summing into its own rows, merged at the end; all read one
// snapshot. Integer sums do not depend on the order they are taken in, so
// the answer is the same whatever the split.
func (db *DB) Report(ctx context.Context, q Query) ([]Row, error) {
	if err := q.Validate(db.dims); err != nil {
		return nil, err
	}
	var rows []Row
	err := db.read(func() (err error) {
		rows, err = db.report(ctx, q)
		return err
	})
	return rows, err
}

func (db *DB) report(ctx context.Context, q Query) ([]Row, error) {
	p := makePlan(q)
	tasks := p.tasks()
	txn := db.bdb.NewTransaction(false)
	defer txn.Discard()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	workers := make([]*reporter, max(1, min(runtime.GOMAXPROCS(0), maxWorkers, len(tasks))))
	errs := make([]error, len(workers))
	queue := make(chan task)
	var wg sync.WaitGroup
	for i := range workers {
		workers[i] = newReporter(db, q, &p)
		wg.Go(func() {
			defer workers[i].close()
			for t := range queue {
				if errs[i] = workers[i].run(ctx, txn, t); errs[i] != nil {
					cancel()
					for range queue { // let the feeder finish
					}
					return
				}
			}
		})
	}
feed:
	for _, t := range tasks {
		select {
		case queue <- t:
		case <-ctx.Done():
			break feed
		}
	}
	close(queue)
	wg.Wait()
	if err := firstError(errs); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	all := workers[0]
	for _, w := range workers[1:] {
		if err := all.absorb(w); err != nil {
			return nil, err
		}
	}
	return all.rows(), nil
}

// maxWorkers bounds a report's goroutines.
const maxWorkers = 8

func firstError(errs []error) error {
	for _, err := range errs {
		if err != nil && !errors.Is(err, context.Canceled) {
			return err
		}
	}
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// task is one range of one key space: records, or hour or day aggregates
// counted in one bucket.
type task struct {
	prefix byte
	span
	bucket int  // for aggregates; records go to the bucket of their start
	neg    bool // subtract the aggregates
}

// tasks splits the plan's spans at UTC midnights: a day is the unit of
// work the report's workers share.
func (p *plan) tasks() []task {
	var out []task
	split := func(t task) {
		for from, to := t.from, t.to; from < to; {
			t.from, t.to = from, min(to, floorTo(from, nanosPerDay)+nanosPerDay)
			out = append(out, t)
			from = t.to
		}
	}
	for _, a := range p.aggs {
		split(task(a))
	}
	for _, sp := range p.raw {
		split(task{prefix: prefixRecord, span: sp})
	}
	return out
}

// reporter accumulates a report. It reuses its buffers across aggregates:
// a month is hundreds of thousands of them.
type reporter struct {
	plan    *plan
	dims    []string
	nfields int
	outcome int   // field index of the outcome
	group   []int // field indices of GroupBy
	filter  []filterField
	groups  map[string]*bucketRow
	names   *nameTable
	conv    converter
	kb, rk  []byte
	fields  [][]byte
	val     aggVal
	iters   map[byte]*badger.Iterator
}

// maxGroups is MaxGroups; a test lowers it.
var maxGroups = MaxGroups

type filterField struct {
	idx int
	val string
}

type bucketRow struct {
	idx int
	Row
}

func newReporter(db *DB, q Query, p *plan) *reporter {
	rp := &reporter{
		plan: p, dims: db.dims, nfields: 1 + len(db.dims) + fieldsAfterDims,
		outcome: fieldIndex(db.dims, KeyOutcome), groups: map[string]*bucketRow{}, names: db.names.Load(),
		iters: map[byte]*badger.Iterator{},
	}
	for _, k := range q.GroupBy {
		rp.group = append(rp.group, fieldIndex(db.dims, k))
	}
	for _, k := range slices.Sorted(mapKeys(q.Filter)) {
		rp.filter = append(rp.filter, filterField{fieldIndex(db.dims, k), q.Filter[k]})
	}
	return rp
}

func (rp *reporter) match(fields [][]byte) bool {
	for _, f := range rp.filter {
		if string(fields[f.idx]) != f.val {
			return false
		}
	}
	return true
}

// run adds the aggregates or records of t.
func (rp *reporter) run(ctx context.Context, txn *badger.Txn, t task) error {
	it := rp.iters[t.prefix]
	if it == nil {
		it = txn.NewIterator(badger.IteratorOptions{Prefix: []byte{t.prefix}})
		rp.iters[t.prefix] = it
	}
	if t.prefix == prefixRecord {
		return rp.scanRecords(ctx, it, t.span)
	}
	return rp.scanAggregates(ctx, it, t)
}

func (rp *reporter) close() {
	for _, it := range rp.iters {
		it.Close()
	}
}

func (rp *reporter) scanAggregates(ctx context.Context, it *badger.Iterator, t task) error {
	end := periodKey(t.prefix, t.to/1e9)
	n := 0
	for it.Seek(periodKey(t.prefix, t.from/1e9)); it.Valid(); it.Next() {
		item := it.Item()
		k := item.Key()
		if bytes.Compare(k, end) >= 0 {
			break
		}
		if n++; n%4096 == 0 && ctx.Err() != nil {
			return ctx.Err()
		}
		_, fields, err := parseAggKey(k, rp.nfields, rp.fields)
		if err != nil {
			return fmt.Errorf("usagedb: %s: malformed key: %w", keyString(k), err)
		}
		rp.fields = fields
		if !rp.match(fields) {
			continue
		}
		if err := item.Value(func(v []byte) error { return decodeAgg(v, &rp.val) }); err != nil {
			return fmt.Errorf("usagedb: %s: corrupt value: %w", keyString(k), err)
		}
		if t.neg {
			rp.val.negate()
		}
		if err := rp.add(t.bucket, fields, &rp.val); err != nil {
			return keyError(k, err)
		}
	}
	return nil
}

// scanRecords adds the records of sp, each through the same key and
// contribution the writer aggregates it with, so edges and aggregates
// cannot disagree.
func (rp *reporter) scanRecords(ctx context.Context, it *badger.Iterator, sp span) error {
	end := recordBound(sp.to)
	n := 0
	for it.Seek(recordBound(sp.from)); it.Valid(); it.Next() {
		item := it.Item()
		if bytes.Compare(item.Key(), end) >= 0 {
			break
		}
		if n++; n%4096 == 0 && ctx.Err() != nil {
			return ctx.Err()
		}
		var r *ledger.Record
		err := item.Value(func(v []byte) (err error) {
			r, err = decodeRecord(item.Key(), v, rp.names)
			return err
		})
		if err != nil {
			return err
		}
		if err := rp.addRecord(r); err != nil {
			return keyError(item.Key(), err)
		}
	}
	return nil
}

// keyError names the key a sum failed at, unless the query itself is at
// fault (too many groups).
func keyError(k []byte, err error) error {
	if errors.Is(err, ErrBadQuery) {
		return err
	}
	return fmt.Errorf("usagedb: %s: %w", keyString(k), err)
}

func (rp *reporter) addRecord(r *ledger.Record) error {
	cur, c := rp.conv.contribution(r)
	rp.rk = appendAggKey(rp.rk[:0], prefixHour, 0, cur, r, rp.dims)
	_, fields, err := parseAggKey(rp.rk, rp.nfields, rp.fields)
	if err != nil {
		return err
	}
	rp.fields = fields
	if !rp.match(fields) {
		return nil
	}
	idx := rp.plan.bucketOf(r.Start.UnixNano())
	if idx < 0 {
		return fmt.Errorf("record at %d outside the query", r.Start.UnixNano()) // the plan says otherwise: a bug
	}
	return rp.add(idx, fields, &c)
}

// add adds v to its row of bucket idx.
func (rp *reporter) add(idx int, fields [][]byte, v *aggVal) error {
	row, err := rp.lookup(idx, fields)
	if err != nil {
		return err
	}
	return row.add(fields[rp.outcome], v)
}

// lookup returns the row of bucket idx for fields' currency and groups,
// made when new.
func (rp *reporter) lookup(idx int, fields [][]byte) (*bucketRow, error) {
	kb := binary.AppendUvarint(rp.kb[:0], uint64(idx))
	kb = appendField(kb, fields[fieldCurrency])
	for _, g := range rp.group {
		kb = appendField(kb, fields[g])
	}
	rp.kb = kb
	row, ok := rp.groups[string(kb)]
	if !ok {
		if len(rp.groups) >= maxGroups {
			return nil, errTooManyGroups()
		}
		row = &bucketRow{idx: idx, Row: Row{Bucket: rp.plan.labels[idx], Currency: money.Currency(fields[fieldCurrency])}}
		row.Group = make([]string, len(rp.group))
		for i, g := range rp.group {
			row.Group[i] = string(fields[g])
		}
		rp.groups[string(kb)] = row
	}
	return row, nil
}

// absorb merges o's rows into rp's.
func (rp *reporter) absorb(o *reporter) error {
	for k, r := range o.groups {
		mine, ok := rp.groups[k]
		if !ok {
			if len(rp.groups) >= maxGroups {
				return errTooManyGroups()
			}
			rp.groups[k] = r
			continue
		}
		if err := mine.merge(&r.Row); err != nil {
			return fmt.Errorf("usagedb: report row %s %q: %w", r.Currency, r.Group, err)
		}
	}
	return nil
}

func errTooManyGroups() error {
	return badQuery("too many groups: more than %d rows; group by fewer keys, filter, or use a coarser bucket", maxGroups)
}

func appendField(b, f []byte) []byte {
	b = binary.AppendUvarint(b, uint64(len(f)))
	return append(b, f...)
}

func (rp *reporter) rows() []Row {
	// Sorting compares order-preserving byte keys, not []string: a month
	// by hour can be a hundred thousand rows.
	type keyed struct {
		key []byte
		row *bucketRow
	}
	all := make([]keyed, 0, len(rp.groups))
	var buf []byte
	for _, r := range rp.groups {
		if r.Requests == 0 {
			// Only a subtraction leaves a row with no record: every record
			// counts one request, so such a row is zero throughout.
			continue
		}
		start := len(buf)
		buf = binary.BigEndian.AppendUint32(buf, uint32(r.idx))
		for _, g := range r.Group {
			buf = appendOrdered(buf, g)
		}
		buf = appendOrdered(buf, string(r.Currency))
		all = append(all, keyed{row: r, key: buf[start:len(buf):len(buf)]})
	}
	slices.SortFunc(all, func(a, b keyed) int { return bytes.Compare(a.key, b.key) })
	rows := make([]Row, len(all))
	for i, r := range all {
		rows[i] = r.row.Row
	}
	return rows
}

// appendOrdered appends s so that byte order of the results is the order
// of sequences of strings: NUL is escaped as 00 FF and each string ends in
// 00 00.
func appendOrdered(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if s[i] == 0 {
			b = append(b, 0, 0xff)
		} else {
			b = append(b, s[i])
		}
	}
	return append(b, 0, 0)
}
