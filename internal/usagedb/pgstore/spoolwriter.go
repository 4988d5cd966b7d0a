package pgstore

import (
	"context"
	"os"
	"path/filepath"
	"time"

	"github.com/tokenmeter/tokenmeter/internal/ledger"
)

// replayEvery is how often the writer looks at a waiting spool when no
// batch comes to try the database with.
const replayEvery = time.Second

// maxBackoff bounds the wait between tries of an absent database: the
// spool's replay starts at most this long after it returns.
const maxBackoff = 5 * time.Second

// writeOrSpool writes recs when the database is thought up, after what
// the spool holds (so the spool drains before it grows); otherwise, or
// when the write fails, it spools them.
func (s *Store) writeOrSpool(recs []*ledger.Record) {
	if s.dbUp() && s.replay() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		err := s.ingest(ctx, s.stage(recs))
		cancel()
		if err == nil {
			s.written.Add(int64(len(recs)))
			return
		}
		s.failed(err)
	}
	if err := s.spool.write(recs, time.Now()); err != nil {
		s.writeErrors.Add(int64(len(recs)))
		s.log.Error("usage ledger: Postgres unavailable and the spool refused the batch; records lost", "records", len(recs), "err", err)
	}
}

func (s *Store) dbUp() bool { return !time.Now().Before(s.nextTry) }

// failed notes a failed write: the next tries wait, doubling up to
// maxBackoff, and batches meanwhile go straight to the spool.
func (s *Store) failed(err error) {
	s.backoff = min(max(2*s.backoff, 100*time.Millisecond), maxBackoff)
	s.nextTry = time.Now().Add(s.backoff)
	s.log.Warn("usage ledger: Postgres write failed; spooling", "err", err, "retry_in", s.backoff.String())
}

// replay writes the spool's segments, oldest first, removing each once
// written. It reports whether the spool is now empty; it stops at the first
// failure. A segment that cannot be read is set aside (renamed .damaged,
// its records counted lost and logged), since it would never replay.
func (s *Store) replay() (empty bool) {
	for {
		seg, ok := s.spool.oldest()
		if !ok {
			return true
		}
		recs, err := s.spool.read(seg.name)
		if err != nil {
			s.setAside(seg, err)
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		err = s.ingest(ctx, s.stage(recs))
		cancel()
		if err != nil {
			s.failed(err)
			return false
		}
		s.backoff, s.nextTry = 0, time.Time{}
		s.written.Add(int64(len(recs)))
		if err := s.spool.remove(seg); err != nil {
			// Written; a later replay of it stores nothing twice.
			s.log.Error("usage ledger: spool segment written but not removed", "segment", seg.name, "err", err)
			return false
		}
		s.log.Info("usage ledger: spooled batch written", "segment", seg.name, "records", len(recs),
			"waited", time.Since(seg.at).Round(time.Millisecond).String())
	}
}

func (s *Store) setAside(seg segment, err error) {
	s.writeErrors.Add(seg.records)
	s.log.Error("usage ledger: damaged spool segment set aside; its records are lost", "segment", seg.name, "records", seg.records, "err", err)
	p := filepath.Join(s.spool.dir, seg.name)
	_ = os.Rename(p, p+".damaged")
	_ = s.spool.remove(seg)
}
