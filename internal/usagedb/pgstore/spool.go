package pgstore

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/tokenmeter/tokenmeter/internal/ledger"
	"github.com/tokenmeter/tokenmeter/internal/usagedb"
)

// The spool is where the writer puts batches while Postgres is away: one
// file per batch, written to a temporary name, synced and renamed, so a
// segment is whole or absent after a crash. Segments are named by the
// instant they were spooled (unix nanoseconds) and a sequence number, and
// replayed oldest first when the database answers again. A replay is an
// ordinary ingest, which stores a record once however often it is written,
// so a crash between a replay's commit and the segment's removal counts
// nothing twice.
//
// A segment is spoolMagic, then each record as a uvarint length and that
// many bytes: its start (8 bytes, big-endian two's complement unix
// nanoseconds) and usagedb.EncodeRecord.
const spoolMagic = "tokenmeter-ledger-spool-1\n"

const segmentExt = ".batch"

// errSpoolFull is a batch the spool had no room for: lost, counted and
// logged.
var errSpoolFull = errors.New("pgstore: spool full")

type spool struct {
	dir string
	max int64

	mu       sync.Mutex
	segments []segment // oldest first
	bytes    int64
	records  int64
	seq      uint64
}

type segment struct {
	name    string
	at      time.Time
	size    int64
	records int64
}

// openSpool creates dir if needed and lists the segments a previous run
// left.
func openSpool(dir string, max int64) (*spool, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("pgstore: spool: %w", err)
	}
	sp := &spool{dir: dir, max: max}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("pgstore: spool: %w", err)
	}
	for _, e := range ents {
		name := e.Name()
		if strings.HasSuffix(name, ".tmp") {
			_ = os.Remove(filepath.Join(dir, name)) // a write a crash cut short: never renamed, never counted
			continue
		}
		at, ok := segmentTime(name)
		if !ok {
			continue
		}
		info, err := e.Info()
		if err != nil {
			return nil, fmt.Errorf("pgstore: spool: %w", err)
		}
		// Counting reads each segment once; a damaged one is counted as
		// nothing here and set aside when its replay reads it.
		recs, _ := sp.read(name)
		sp.segments = append(sp.segments, segment{name, at, info.Size(), int64(len(recs))})
		sp.bytes += info.Size()
		sp.records += int64(len(recs))
	}
	slices.SortFunc(sp.segments, func(a, b segment) int { return strings.Compare(a.name, b.name) })
	return sp, nil
}

// segmentTime parses a segment's name: <unix nanos, 20 digits>-<seq>.batch.
func segmentTime(name string) (time.Time, bool) {
	base, ok := strings.CutSuffix(name, segmentExt)
	if !ok {
		return time.Time{}, false
	}
	ts, _, ok := strings.Cut(base, "-")
	n, err := strconv.ParseInt(ts, 10, 64)
	if !ok || err != nil {
		return time.Time{}, false
	}
	return time.Unix(0, n), true
}

// write stores recs as one segment, or fails (errSpoolFull when it would
// pass the bound).
func (sp *spool) write(recs []*ledger.Record, now time.Time) error {
	data := encodeSegment(recs)
	sp.mu.Lock()
	defer sp.mu.Unlock()
	if sp.bytes+int64(len(data)) > sp.max {
		return fmt.Errorf("%w: %d bytes held, %d more would pass the bound of %d", errSpoolFull, sp.bytes, len(data), sp.max)
	}
	sp.seq++
	name := fmt.Sprintf("%020d-%08d%s", now.UnixNano(), sp.seq, segmentExt)
	if err := writeFileSync(filepath.Join(sp.dir, name), data); err != nil {
		return fmt.Errorf("pgstore: spool: %w", err)
	}
	sp.segments = append(sp.segments, segment{name, now, int64(len(data)), int64(len(recs))})
	sp.bytes += int64(len(data))
	sp.records += int64(len(recs))
	return nil
}

func writeFileSync(path string, data []byte) error {
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		_ = os.Remove(tmp)
		return err
	}
	if d, err := os.Open(filepath.Dir(path)); err == nil { // the rename, durable
		_ = d.Sync()
		_ = d.Close()
	}
	return nil
}

// oldest returns the oldest segment, if any.
func (sp *spool) oldest() (segment, bool) {
	sp.mu.Lock()
	defer sp.mu.Unlock()
	if len(sp.segments) == 0 {
		return segment{}, false
	}
	return sp.segments[0], true
}

// remove deletes the oldest segment, replayed.
func (sp *spool) remove(seg segment) error {
	sp.mu.Lock()
	defer sp.mu.Unlock()
	if err := os.Remove(filepath.Join(sp.dir, seg.name)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("pgstore: spool: %w", err)
	}
	sp.segments = slices.DeleteFunc(sp.segments, func(s segment) bool { return s.name == seg.name })
	sp.bytes -= seg.size
	sp.records -= seg.records
	return nil
}

func (sp *spool) read(name string) ([]*ledger.Record, error) {
	data, err := os.ReadFile(filepath.Join(sp.dir, name))
	if err != nil {
		return nil, fmt.Errorf("pgstore: spool: %w", err)
	}
	recs, err := decodeSegment(data)
	if err != nil {
		return nil, fmt.Errorf("pgstore: spool segment %s: %w", name, err)
	}
	return recs, nil
}

// SpoolStats describe the spool now.
type SpoolStats struct {
	Records, Bytes int64
	Oldest         time.Time // when the oldest waiting segment was spooled; zero when empty
}

func (sp *spool) stats() SpoolStats {
	if sp == nil {
		return SpoolStats{}
	}
	sp.mu.Lock()
	defer sp.mu.Unlock()
	st := SpoolStats{Records: sp.records, Bytes: sp.bytes}
	if len(sp.segments) > 0 {
		st.Oldest = sp.segments[0].at
	}
	return st
}

func encodeSegment(recs []*ledger.Record) []byte {
	b := []byte(spoolMagic)
	var rec []byte
	for _, r := range recs {
		rec = binary.BigEndian.AppendUint64(rec[:0], uint64(r.Start.UnixNano()))
		rec = usagedb.EncodeRecord(rec, r)
		b = binary.AppendUvarint(b, uint64(len(rec)))
		b = append(b, rec...)
	}
	return b
}

// decodeSegment decodes a segment; a damaged one is an error, never a
// partial list.
func decodeSegment(data []byte) ([]*ledger.Record, error) {
	rest, ok := strings.CutPrefix(string(data), spoolMagic)
	if !ok {
		return nil, errors.New("not a spool segment (bad magic)")
	}
	r := bufio.NewReader(strings.NewReader(rest))
	var recs []*ledger.Record
	for {
		n, err := binary.ReadUvarint(r)
		if err == io.EOF {
			return recs, nil
		}
		if err != nil {
			return nil, fmt.Errorf("record %d: length: %w", len(recs), err)
		}
		if n < 8 || n > uint64(r.Buffered())+uint64(len(rest)) {
			return nil, fmt.Errorf("record %d: length %d out of range", len(recs), n)
		}
		buf := make([]byte, n)
		if _, err := io.ReadFull(r, buf); err != nil {
			return nil, fmt.Errorf("record %d: %w", len(recs), err)
		}
		rec, err := usagedb.DecodeRecord(int64(binary.BigEndian.Uint64(buf)), buf[8:])
		if err != nil {
			return nil, fmt.Errorf("record %d: %w", len(recs), err)
		}
		recs = append(recs, rec)
	}
}
