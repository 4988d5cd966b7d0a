package usagedb

import (
	"encoding/binary"
	"errors"
	"fmt"
	"github.com/tokenmeter/tokenmeter/internal/reason"
	"time"

	"github.com/tokenmeter/tokenmeter/internal/attribution"
	"github.com/tokenmeter/tokenmeter/internal/fx"
	"github.com/tokenmeter/tokenmeter/internal/ledger"
	"github.com/tokenmeter/tokenmeter/internal/money"
	"github.com/tokenmeter/tokenmeter/internal/usage"
)

// A stored record is a compact binary encoding rather than JSON: it is
// about a seventh of the size and decodes over ten times faster (see
// BenchmarkRecordCodec), which matters for the raw edges of reports and for
// disk per million records. Export turns it into CSV or JSONL.
//
// Layout (format 1): the format byte, a uvarint of flags, then the fields in
// a fixed order as uvarints, zig-zag varints and uvarint-length-prefixed
// strings. Start is not stored: it is in the key. Dimension names are
// stored once, in the meta table, and a record refers to its list by id (0:
// the names follow inline). Values that usually repeat another field (the
// response and priced model, the reporting cost, the list cost) are a flag
// when they do, and a request id in Envoy's form (a lower-case UUID) is its
// 16 bytes: together they save a quarter of a typical record.
const recordFormat = 1

const (
	flagStream = 1 << iota
	flagPriced
	flagFallback
	flagEstimated
	flagUUID            // RequestID is a canonical lower-case UUID, stored as 16 bytes
	flagRespIsModel     // ResponseModel == Model
	flagPricedIsModel   // PricedModel == Model
	flagPricedIsResp    // PricedModel == ResponseModel (and not Model)
	flagListIsCost      // ListCost == Cost
	flagReportingIsCost // ReportingCurrency == Currency and ReportingCost == Cost
	// flagServiceTier: the service tier follows the budget, at the end.
	// Records written before the field existed lack the flag and decode
	// with an empty tier, so the format did not change.
	flagServiceTier
	// flagClientID, flagClientUUID: the client's x-request-id follows the
	// service tier, as text or (a canonical lower-case UUID, the form
	// Envoy generates) as 16 bytes; at most one is set. Records written
	// before the field existed lack both and decode with no client id.
	flagClientID
	flagClientUUID
)

// flagsKnown is every flag this version reads.
const flagsKnown = flagClientUUID<<1 - 1

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

func appendTime(b []byte, t time.Time) []byte {
	if t.IsZero() {
		return append(b, 0)
	}
	b = append(b, 1)
	b = binary.AppendVarint(b, t.Unix())
	return binary.AppendUvarint(b, uint64(t.Nanosecond()))
}

// appendCounts writes which counts are non-zero and which were reported, then
// the non-zero values: most records use three or four of the ten classes.
func appendCounts(b []byte, cs []usage.Count) []byte {
	var nonzero, reported uint64
	for i, c := range cs {
		if c.N != 0 {
			nonzero |= 1 << i
		}
		if c.Reported {
			reported |= 1 << i
		}
	}
	b = binary.AppendUvarint(b, nonzero)
	b = binary.AppendUvarint(b, reported)
	for _, c := range cs {
		if c.N != 0 {
			b = binary.AppendVarint(b, c.N)
		}
	}
	return b
}

func recordFlags(r *ledger.Record) uint64 {
	var f uint64
	for _, c := range [...]struct {
		on  bool
		bit uint64
	}{
		{r.Stream, flagStream}, {r.Priced, flagPriced}, {r.Fallback, flagFallback}, {r.Usage.Estimated, flagEstimated},
		{isUUID(r.RequestID), flagUUID},
		{r.ResponseModel != "" && r.ResponseModel == r.Model, flagRespIsModel},
		{r.PricedModel != "" && r.PricedModel == r.Model, flagPricedIsModel},
		{r.PricedModel != "" && r.PricedModel != r.Model && r.PricedModel == r.ResponseModel, flagPricedIsResp},
		{r.ListCost == r.Cost, flagListIsCost},
		{r.ReportingCurrency == r.Currency && r.ReportingCost == r.Cost, flagReportingIsCost},
		{r.ServiceTier != "", flagServiceTier},
		{r.ClientRequestID != "" && !isUUID(r.ClientRequestID), flagClientID},
		{isUUID(r.ClientRequestID), flagClientUUID},
	} {
		if c.on {
			f |= c.bit
		}
	}
	return f
}

// encodeRecord appends r's encoding. namesID is the id of r's dimension
// names in the meta table, or 0 to write them inline.
func encodeRecord(b []byte, r *ledger.Record, namesID uint64) []byte {
	flags := recordFlags(r)
	b = append(b, recordFormat)
	b = binary.AppendUvarint(b, flags)
	if flags&flagUUID != 0 {
		b = appendUUID(b, r.RequestID)
	} else {
		b = appendString(b, r.RequestID)
	}
	b = binary.AppendVarint(b, int64(r.Duration))
	b = binary.AppendVarint(b, int64(r.TTFT))
	b = binary.AppendUvarint(b, namesID)
	if namesID == 0 {
		b = binary.AppendUvarint(b, uint64(len(r.Dimensions.Names)))
		for _, n := range r.Dimensions.Names {
			b = appendString(b, n)
		}
	}
	b = binary.AppendUvarint(b, uint64(len(r.Dimensions.Values)))
	for _, v := range r.Dimensions.Values {
		b = appendString(b, v)
	}
	b = appendString(b, r.Provider)
	b = appendString(b, r.Dialect)
	b = appendString(b, r.Model)
	if flags&flagRespIsModel == 0 {
		b = appendString(b, r.ResponseModel)
	}
	if flags&(flagPricedIsModel|flagPricedIsResp) == 0 {
		b = appendString(b, r.PricedModel)
	}
	b = binary.AppendVarint(b, int64(r.Status))
	b = appendCounts(b, r.Usage.Tokens[:])
	b = appendCounts(b, r.Usage.Units[:])
	b = appendString(b, r.Usage.ImageSize)
	b = appendString(b, r.Usage.ImageQuality)
	b = binary.AppendUvarint(b, uint64(len(r.Usage.Raw)))
	for _, f := range r.Usage.Raw {
		b = appendString(b, f.Name)
		b = binary.AppendVarint(b, f.Value)
	}
	b = appendString(b, r.EstimateMethod)
	b = binary.AppendVarint(b, int64(r.Cost))
	if flags&flagListIsCost == 0 {
		b = binary.AppendVarint(b, int64(r.ListCost))
	}
	b = appendString(b, r.Adjustment)
	b = appendString(b, string(r.Currency))
	if flags&flagReportingIsCost == 0 {
		b = binary.AppendVarint(b, int64(r.ReportingCost))
		b = appendString(b, string(r.ReportingCurrency))
	}
	b = appendString(b, string(r.FX.From))
	b = appendString(b, string(r.FX.To))
	b = binary.AppendVarint(b, int64(r.FX.Rate))
	b = appendTime(b, r.FX.EffectiveFrom)
	b = appendString(b, r.FX.Source)
	b = appendString(b, string(r.Outcome))
	b = appendString(b, string(r.Reason))
	b = appendString(b, r.Budget)
	if flags&flagServiceTier != 0 {
		b = appendString(b, r.ServiceTier)
	}
	switch {
	case flags&flagClientUUID != 0:
		b = appendUUID(b, r.ClientRequestID)
	case flags&flagClientID != 0:
		b = appendString(b, r.ClientRequestID)
	}
	return b
}

// isUUID reports whether s is a UUID in canonical lower-case form, the
// form Envoy generates for x-request-id; only that form is stored as 16
// bytes, so that decoding gives back exactly the string.
func isUUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
				return false
			}
		}
	}
	return true
}

func appendUUID(b []byte, s string) []byte {
	for i := 0; i < len(s); i += 2 {
		if s[i] == '-' {
			i++
		}
		b = append(b, unhex(s[i])<<4|unhex(s[i+1]))
	}
	return b
}

func unhex(c byte) byte {
	if c <= '9' {
		return c - '0'
	}
	return c - 'a' + 10
}

func (d *reader) uuid() string {
	if len(d.b) < 16 {
		d.fail(errTruncated)
		return ""
	}
	const digits = "0123456789abcdef"
	var s [36]byte
	j := 0
	for i, c := range d.b[:16] {
		if i == 4 || i == 6 || i == 8 || i == 10 {
			s[j] = '-'
			j++
		}
		s[j], s[j+1] = digits[c>>4], digits[c&0xf]
		j += 2
	}
	d.b = d.b[16:]
	return string(s[:])
}

var errTruncated = errors.New("truncated")

// reader decodes what the appenders wrote. The first error sticks and every
// later read returns zero, so a decoder checks once at the end and corrupt
// input can never index out of range.
type reader struct {
	b   []byte
	err error
}

func (d *reader) fail(err error) {
	if d.err == nil {
		d.err = err
	}
	d.b = nil
}

func (d *reader) byte() byte {
	if len(d.b) == 0 {
		d.fail(errTruncated)
		return 0
	}
	c := d.b[0]
	d.b = d.b[1:]
	return c
}

func (d *reader) uvarint() uint64 {
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail(errTruncated)
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *reader) varint() int64 {
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.fail(errTruncated)
		return 0
	}
	d.b = d.b[n:]
	return v
}

// count reads a length that is about to be used to allocate: it cannot
// exceed the bytes left, since every element takes at least one.
func (d *reader) count() int {
	n := d.uvarint()
	if n > uint64(len(d.b)) {
		d.fail(fmt.Errorf("count %d exceeds the %d bytes left", n, len(d.b)))
		return 0
	}
	return int(n)
}

func (d *reader) bytes() []byte {
	n := d.count()
	s := d.b[:n:n]
	d.b = d.b[n:]
	return s
}

func (d *reader) str() string { return string(d.bytes()) }

func (d *reader) time() time.Time {
	switch d.byte() {
	case 0:
		return time.Time{}
	case 1:
		sec := d.varint()
		nsec := d.uvarint()
		if nsec >= 1e9 {
			d.fail(fmt.Errorf("nanoseconds %d out of range", nsec))
			return time.Time{}
		}
		return time.Unix(sec, int64(nsec)).UTC()
	default:
		d.fail(errors.New("bad time tag"))
		return time.Time{}
	}
}

func (d *reader) counts(cs []usage.Count) {
	nonzero, reported := d.uvarint(), d.uvarint()
	if (nonzero|reported)>>len(cs) != 0 {
		d.fail(fmt.Errorf("count mask %#x/%#x has bits past %d", nonzero, reported, len(cs)))
		return
	}
	for i := range cs {
		cs[i] = usage.Count{Reported: reported&(1<<i) != 0}
		if nonzero&(1<<i) != 0 {
			cs[i].N = d.varint()
		}
	}
}

func (d *reader) done() error {
	if d.err == nil && len(d.b) != 0 {
		return fmt.Errorf("%d trailing bytes", len(d.b))
	}
	return d.err
}

// nameSets resolves the dimension-name list ids records refer to.
type nameSets interface {
	names(id uint64) ([]string, bool)
}

// decodeRecord decodes the record stored under key. Its Start is UTC.
func decodeRecord(key, val []byte, ns nameSets) (*ledger.Record, error) {
	nanos, _, ok := parseRecordKey(key)
	if !ok {
		return nil, fmt.Errorf("usagedb: %s: malformed record key", keyString(key))
	}
	r := &ledger.Record{Start: time.Unix(0, nanos).UTC()}
	if err := decodeRecordValue(val, r, ns); err != nil {
		return nil, fmt.Errorf("usagedb: %s: corrupt value: %w", keyString(key), err)
	}
	return r, nil
}

func decodeRecordValue(val []byte, r *ledger.Record, ns nameSets) error {
	d := reader{b: val}
	if f := d.byte(); d.err == nil && f != recordFormat {
		return fmt.Errorf("record format %d, want %d", f, recordFormat)
	}
	flags := d.uvarint()
	if flags&^flagsKnown != 0 || flags&(flagClientID|flagClientUUID) == flagClientID|flagClientUUID {
		d.fail(fmt.Errorf("unknown flags %#x", flags))
	}
	if flags&flagUUID != 0 {
		r.RequestID = d.uuid()
	} else {
		r.RequestID = d.str()
	}
	r.Duration = time.Duration(d.varint())
	r.TTFT = time.Duration(d.varint())
	d.dimensions(&r.Dimensions, ns)
	r.Provider, r.Dialect, r.Model = d.str(), d.str(), d.str()
	if r.ResponseModel = r.Model; flags&flagRespIsModel == 0 {
		r.ResponseModel = d.str()
	}
	switch {
	case flags&flagPricedIsModel != 0:
		r.PricedModel = r.Model
	case flags&flagPricedIsResp != 0:
		r.PricedModel = r.ResponseModel
	default:
		r.PricedModel = d.str()
	}
	r.Status = int(d.varint())
	r.Stream, r.Priced = flags&flagStream != 0, flags&flagPriced != 0
	r.Fallback, r.Usage.Estimated = flags&flagFallback != 0, flags&flagEstimated != 0
	d.counts(r.Usage.Tokens[:])
	d.counts(r.Usage.Units[:])
	r.Usage.ImageSize, r.Usage.ImageQuality = d.str(), d.str()
	if n := d.count(); n > 0 {
		r.Usage.Raw = make([]usage.Field, n)
		for i := range r.Usage.Raw {
			r.Usage.Raw[i] = usage.Field{Name: d.str(), Value: d.varint()}
		}
	}
	r.EstimateMethod = d.str()
	r.Cost = money.Amount(d.varint())
	if r.ListCost = r.Cost; flags&flagListIsCost == 0 {
		r.ListCost = money.Amount(d.varint())
	}
	r.Adjustment = d.str()
	r.Currency = money.Currency(d.str())
	if r.ReportingCost, r.ReportingCurrency = r.Cost, r.Currency; flags&flagReportingIsCost == 0 {
		r.ReportingCost = money.Amount(d.varint())
		r.ReportingCurrency = money.Currency(d.str())
	}
	r.FX = fx.Rate{From: money.Currency(d.str()), To: money.Currency(d.str()), Rate: fx.Decimal(d.varint())}
	r.FX.EffectiveFrom = d.time()
	r.FX.Source = d.str()
	r.Outcome = ledger.Outcome(d.str())
	r.Reason, r.Budget = reason.Reason(d.str()), d.str()
	if flags&flagServiceTier != 0 {
		r.ServiceTier = d.str()
	}
	switch {
	case flags&flagClientUUID != 0:
		r.ClientRequestID = d.uuid()
	case flags&flagClientID != 0:
		r.ClientRequestID = d.str()
	}
	return d.done()
}

func (d *reader) dimensions(dims *attribution.Dimensions, ns nameSets) {
	id := d.uvarint()
	if id == 0 {
		if n := d.count(); n > 0 {
			dims.Names = make([]string, n)
			for i := range dims.Names {
				dims.Names[i] = d.str()
			}
		}
	} else if names, ok := ns.names(id); ok {
		dims.Names = names // shared and read-only, as attribution.Dimensions documents
	} else {
		d.fail(fmt.Errorf("unknown dimension-name list %d", id))
		return
	}
	n := d.count()
	if d.err == nil && n != len(dims.Names) {
		d.fail(fmt.Errorf("%d dimension values for %d names", n, len(dims.Names)))
		return
	}
	if n > 0 {
		dims.Values = make([]string, n)
		for i := range dims.Values {
			dims.Values[i] = d.str()
		}
	}
}
