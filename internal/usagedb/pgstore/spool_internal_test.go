package pgstore

import (
	"reflect"
	"testing"
	"time"

	"github.com/tokenmeter/tokenmeter/internal/ledger/ledgergen"
)

func TestSegmentRoundTrip(t *testing.T) {
	recs := ledgergen.Month(1, 300, time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC))
	for _, r := range recs {
		r.Start = r.Start.UTC()
	}
	got, err := decodeSegment(encodeSegment(recs))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, recs) {
		t.Fatal("segment does not decode to its records")
	}
	data := encodeSegment(recs[:3])
	for _, bad := range [][]byte{nil, []byte("tokenmeter"), data[:len(data)-1], append([]byte(spoolMagic), 0xff)} {
		if _, err := decodeSegment(bad); err == nil {
			t.Errorf("%q decoded without error", bad)
		}
	}
}

// FuzzSegment: a spool file is read back from disk; whatever its bytes, a
// decode returns records or an error, never panics, and what decodes
// encodes back to the same bytes.
func FuzzSegment(f *testing.F) {
	recs := ledgergen.Month(2, 3, time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC))
	f.Add(encodeSegment(recs))
	f.Add([]byte(spoolMagic))
	f.Fuzz(func(t *testing.T, data []byte) {
		got, err := decodeSegment(data)
		if err != nil {
			return
		}
		if _, err := decodeSegment(encodeSegment(got)); err != nil {
			t.Fatalf("re-encoded segment does not decode: %v", err)
		}
	})
}
