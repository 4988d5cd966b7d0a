package usagedb

import (
	"encoding/binary"
	"fmt"
	"time"
)

// Key prefixes. Every key starts with one byte naming what it holds; the
// time-ordered ones follow it with a big-endian instant, so a time range is
// one contiguous key range.
const (
	prefixRecord = 'r' // 'r' | start unix nanos (8) | sequence (8)  → encoded record
	prefixHour   = 'h' // 'h' | UTC hour start unix seconds (8) | fields → aggregate
	prefixDay    = 'd' // 'd' | UTC day start unix seconds (8) | fields  → aggregate
	prefixMeta   = 'm' // 'm' | name                                     → meta value
)

// signBit makes a signed instant sort correctly as big-endian unsigned bytes.
const signBit = 1 << 63

// Meta keys.
var (
	metaFormat  = []byte("m\x00format")    // the storage format version (one byte)
	metaSeq     = []byte("m\x00seq")       // the last record sequence number used
	metaAggDims = []byte("m\x00aggdims")   // the dimension names the aggregates were built with
	metaNames   = []byte("m\x00names\x00") // + uvarint id → a dimension-name list records refer to
)

// storageFormat is bumped when a stored layout changes incompatibly.
const storageFormat = 1

func recordKey(startNanos int64, seq uint64) []byte {
	k := make([]byte, 0, 17)
	k = append(k, prefixRecord)
	k = binary.BigEndian.AppendUint64(k, uint64(startNanos)^signBit)
	return binary.BigEndian.AppendUint64(k, seq)
}

// recordBound is the first record key at or after nanos.
func recordBound(nanos int64) []byte { return recordKey(nanos, 0) }

func parseRecordKey(k []byte) (nanos int64, seq uint64, ok bool) {
	if len(k) != 17 || k[0] != prefixRecord {
		return 0, 0, false
	}
	return int64(binary.BigEndian.Uint64(k[1:9]) ^ signBit), binary.BigEndian.Uint64(k[9:]), true
}

// periodKey is the first aggregate key of a period (an hour or a day) that
// starts at unix second sec.
func periodKey(prefix byte, sec int64) []byte {
	k := make([]byte, 0, 9)
	k = append(k, prefix)
	return binary.BigEndian.AppendUint64(k, uint64(sec)^signBit)
}

func parsePeriod(k []byte) (sec int64, ok bool) {
	if len(k) < 9 {
		return 0, false
	}
	return int64(binary.BigEndian.Uint64(k[1:9]) ^ signBit), true
}

// keyString names a key in an error so that an operator can find the bad
// entry: the kind of key and its instant, not raw bytes.
func keyString(k []byte) string {
	if len(k) == 0 {
		return `""`
	}
	switch k[0] {
	case prefixRecord:
		if n, seq, ok := parseRecordKey(k); ok {
			return fmt.Sprintf("record %s #%d", time.Unix(0, n).UTC().Format(time.RFC3339Nano), seq)
		}
	case prefixHour, prefixDay:
		if sec, ok := parsePeriod(k); ok {
			kind := "hour"
			if k[0] == prefixDay {
				kind = "day"
			}
			return fmt.Sprintf("%s aggregate %s %q", kind, time.Unix(sec, 0).UTC().Format(time.RFC3339), k[9:])
		}
	}
	return fmt.Sprintf("%q", k)
}

// floorDiv is a/b rounded toward minus infinity (b > 0).
func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && a < 0 {
		q--
	}
	return q
}

const (
	nanosPerHour = int64(time.Hour)
	nanosPerDay  = 24 * nanosPerHour
)

func floorTo(nanos, unit int64) int64 { return floorDiv(nanos, unit) * unit }

func ceilTo(nanos, unit int64) int64 {
	f := floorTo(nanos, unit)
	if f == nanos {
		return f
	}
	return f + unit
}
