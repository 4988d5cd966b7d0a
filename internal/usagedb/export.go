package usagedb

import (
	"bufio"
	"bytes"
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/dgraph-io/badger/v4"

	"github.com/tokenmeter/tokenmeter/internal/attribution"
	"github.com/tokenmeter/tokenmeter/internal/ledger"
)

// Export calls fn with each record that started in [from, to), in start
// order (records with equal starts in the order they were written). It
// streams from one read snapshot: memory does not grow with the range. fn
// owns each record; an error from fn stops the export and is returned.
func (db *DB) Export(ctx context.Context, from, to time.Time, fn func(*ledger.Record) error) error {
	if err := checkTimes(from, to, 0); err != nil { // no length limit: exports stream
		return err
	}
	names := db.names.Load()
	return db.read(func() error { return db.export(ctx, from, to, names, fn) })
}

func (db *DB) export(ctx context.Context, from, to time.Time, names *nameTable, fn func(*ledger.Record) error) error {
	return db.bdb.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte{prefixRecord}, PrefetchValues: true})
		defer it.Close()
		end := recordBound(to.UnixNano())
		n := 0
		for it.Seek(recordBound(from.UnixNano())); it.Valid(); it.Next() {
			item := it.Item()
			if bytes.Compare(item.Key(), end) >= 0 {
				break
			}
			if n++; n%1024 == 0 && ctx.Err() != nil {
				return ctx.Err()
			}
			var r *ledger.Record
			err := item.Value(func(v []byte) (err error) {
				r, err = decodeRecord(item.Key(), v, names)
				return err
			})
			if err != nil {
				return err
			}
			if err := fn(r); err != nil {
				return err
			}
		}
		return nil
	})
}

// ValidateExportRange checks an export's [from, to) as Export will, so that
// a caller streaming to HTTP can refuse before it writes a header: both
// required, from before to, within 1970..2262; no length limit, since
// exports stream. Errors wrap ErrBadQuery.
func ValidateExportRange(from, to time.Time) error { return checkTimes(from, to, 0) }

// Format is an export format.
type Format string

// The export formats.
const (
	CSV   Format = "csv"
	JSONL Format = "jsonl"
)

// ParseFormat reads "csv" or "jsonl".
func ParseFormat(s string) (Format, error) {
	switch Format(s) {
	case CSV, JSONL:
		return Format(s), nil
	}
	return "", fmt.Errorf("export format %q: want csv or jsonl", s)
}

// RecordWriter is an export encoder.
type RecordWriter interface {
	Write(r *ledger.Record) error
	Flush() error
}

// NewWriter returns the encoder of format f writing to w.
func NewWriter(f Format, w io.Writer, dims []string) (RecordWriter, error) {
	switch f {
	case CSV:
		return NewCSVWriter(w, dims), nil
	case JSONL:
		return NewJSONLWriter(w, dims), nil
	}
	return nil, fmt.Errorf("export format %q: want csv or jsonl", f)
}

// CSVWriter writes records as CSV (RFC 4180, comma, a header line first).
type CSVWriter struct {
	w      *csv.Writer
	cols   []column
	header bool
	row    []string
	buf    []byte
}

// NewCSVWriter returns a CSV encoder with a column per configured dimension.
func NewCSVWriter(w io.Writer, dims []string) *CSVWriter {
	return &CSVWriter{w: csv.NewWriter(w), cols: columns(dims)}
}

func (c *CSVWriter) writeHeader() error {
	if c.header {
		return nil
	}
	c.header = true
	names := make([]string, len(c.cols))
	for i, col := range c.cols {
		names[i] = col.name
	}
	return c.w.Write(names)
}

// Write writes r, after the header on the first call.
func (c *CSVWriter) Write(r *ledger.Record) error {
	if err := c.writeHeader(); err != nil {
		return err
	}
	c.row = c.row[:0]
	for _, col := range c.cols {
		c.buf = col.get(r, c.buf[:0])
		c.row = append(c.row, string(c.buf))
	}
	return c.w.Write(c.row)
}

// Flush writes the header if no record came, then buffered data.
func (c *CSVWriter) Flush() error {
	if err := c.writeHeader(); err != nil {
		return err
	}
	c.w.Flush()
	return c.w.Error()
}

// CSVReader reads what CSVWriter wrote, one record at a time.
type CSVReader struct {
	r    *csv.Reader
	cols []column // in header order
	dims []string
}

// NewCSVReader reads the header. Every column of Columns must be there,
// each once; dim_ columns give the dimension names, in header order; any
// other column is an error (a typo or a newer format).
func NewCSVReader(r io.Reader) (*CSVReader, error) {
	cr := csv.NewReader(r)
	cr.ReuseRecord = true
	header, err := cr.Read()
	if err != nil {
		return nil, fmt.Errorf("csv header: %w", err)
	}
	header = append([]string(nil), header...)
	var dims []string
	for _, h := range header {
		if d, ok := strings.CutPrefix(h, "dim_"); ok {
			dims = append(dims, d)
		}
	}
	byName := map[string]column{}
	for _, c := range columns(dims) {
		byName[c.name] = c
	}
	rd := &CSVReader{r: cr, dims: dims}
	seen := map[string]bool{}
	for _, h := range header {
		c, ok := byName[h]
		if !ok {
			return nil, fmt.Errorf("csv header: unknown column %q", h)
		}
		if seen[h] {
			return nil, fmt.Errorf("csv header: column %q twice", h)
		}
		seen[h] = true
		rd.cols = append(rd.cols, c)
	}
	for _, c := range columns(dims) {
		if !seen[c.name] {
			return nil, fmt.Errorf("csv header: column %q missing", c.name)
		}
	}
	return rd, nil
}

// Read returns the next record, or io.EOF.
func (c *CSVReader) Read() (*ledger.Record, error) {
	row, err := c.r.Read()
	if err != nil {
		return nil, err // io.EOF, or a *csv.ParseError naming the line
	}
	line, _ := c.r.FieldPos(0)
	r := &ledger.Record{Dimensions: dimsOf(c.dims)}
	for i, col := range c.cols {
		if err := col.set(r, row[i]); err != nil {
			return nil, fmt.Errorf("csv line %d column %s: %w", line, col.name, err)
		}
	}
	return r, nil
}

// ReadCSV reads every record of a CSV export.
func ReadCSV(r io.Reader) ([]*ledger.Record, error) {
	cr, err := NewCSVReader(r)
	if err != nil {
		return nil, err
	}
	var out []*ledger.Record
	for {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, err
		}
		out = append(out, rec)
	}
}

func dimsOf(names []string) attribution.Dimensions {
	if len(names) == 0 {
		return attribution.Dimensions{}
	}
	return attribution.Dimensions{Names: names, Values: make([]string, len(names))}
}

// JSONLWriter writes one JSON object per line, with the CSV column names
// as keys in the CSV column order: text columns (money and rates too, so
// they stay exact) are strings, integer and millisecond columns numbers,
// flags booleans.
type JSONLWriter struct {
	w    *bufio.Writer
	cols []column
	buf  []byte
	val  []byte
}

// NewJSONLWriter returns a JSONL encoder with a key per configured dimension.
func NewJSONLWriter(w io.Writer, dims []string) *JSONLWriter {
	return &JSONLWriter{w: bufio.NewWriter(w), cols: columns(dims)}
}

// Write writes r as one line.
func (j *JSONLWriter) Write(r *ledger.Record) error {
	b := append(j.buf[:0], '{')
	for i, col := range j.cols {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendJSONString(b, col.name)
		b = append(b, ':')
		j.val = col.get(r, j.val[:0])
		if col.kind == kindString {
			b = appendJSONString(b, string(j.val))
		} else {
			b = append(b, j.val...)
		}
	}
	b = append(b, '}', '\n')
	j.buf = b
	_, err := j.w.Write(b)
	return err
}

// Flush writes buffered data.
func (j *JSONLWriter) Flush() error { return j.w.Flush() }

// appendJSONString quotes s as encoding/json does: control characters
// escaped, invalid UTF-8 replaced by U+FFFD.
func appendJSONString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '"' || c == '\\':
				b = append(b, '\\', c)
			case c == '\n':
				b = append(b, '\\', 'n')
			case c == '\r':
				b = append(b, '\\', 'r')
			case c == '\t':
				b = append(b, '\\', 't')
			case c < 0x20:
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			default:
				b = append(b, c)
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			b = append(b, `\ufffd`...)
		case r == '\u2028' || r == '\u2029':
			// Valid JSON, but JavaScript before ES2019 ends a line there.
			b = append(b, '\\', 'u', '2', '0', '2', hex[r&0xf])
		default:
			b = append(b, s[i:i+size]...)
		}
		i += size
	}
	return append(b, '"')
}
