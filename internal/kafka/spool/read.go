package spool

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"go.uber.org/zap"
)

// Read calls fn for up to max records from the read position, in append
// order, and returns the position after the last record fn accepted and
// how many it accepted. Nothing is consumed until Commit: the read
// position only moves for the next Read (Rewind moves it back). fn's
// slices are valid only during the call (a nil key reads back as empty).
// Records appended concurrently are seen by this Read or a later one.
//
// If fn returns an error, Read stops and returns it; the record fn refused
// is not covered by the returned position, so it is read again after a
// Rewind or a restart. A corrupt frame (bad length or CRC) is logged,
// counted in Corrupt and skipped with the rest of its segment; the
// returned position is then past it even when no record was returned, and
// should be committed. Read never loops forever: every step reads a frame,
// skips a segment or stops at the tail.
func (s *Spool) Read(max int, fn func(key, value []byte, appended time.Time) error) (Pos, int, error) {
	s.rmu.Lock()
	defer s.rmu.Unlock()
	n := 0
	for n < max {
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			return s.rpos, n, ErrClosed
		}
		m, sealed, next, ok := s.segLocked(s.rpos.Segment)
		s.mu.Unlock()
		if !ok {
			panic(fmt.Sprintf("BUG: spool: the read position %v is in no segment", s.rpos))
		}

		switch {
		case m.corruptAt >= 0 && s.rpos.Offset >= m.corruptAt:
			// Skipped before, and read again after a Rewind.
			if err := s.skipRest(nil); err != nil {
				return s.marked(), n, err
			}
			continue
		case s.rpos.Offset > m.size:
			panic(fmt.Sprintf("BUG: spool: the read position %v is past the end %d of its segment", s.rpos, m.size))
		case s.rpos.Offset == m.size:
			if !sealed {
				return s.marked(), n, nil // at the tail
			}
			s.rpos, s.ridx = Pos{Segment: next}, 0
			continue
		}

		if s.r == nil || s.r.id != m.id {
			var buf []byte
			if s.r != nil {
				buf = s.r.buf
				s.r.close()
				s.r = nil
			}
			r, err := openSegReader(s.segPath(m.id), m.id, buf)
			if err != nil {
				return s.marked(), n, err
			}
			s.r = r
		}
		for n < max && s.rpos.Offset < m.size {
			key, value, t, end, err := s.r.frame(s.rpos.Offset, m.size)
			if errors.Is(err, errFrame) {
				if err := s.skipRest(err); err != nil {
					return s.marked(), n, err
				}
				break
			}
			if err != nil {
				return s.marked(), n, err
			}
			if err := fn(key, value, t); err != nil {
				return s.marked(), n, err
			}
			s.rpos.Offset = end
			s.ridx++
			n++
		}
	}
	return s.marked(), n, nil
}

// marked remembers the read position for Commit and returns it.
func (s *Spool) marked() Pos {
	if k := len(s.marks); k == 0 || s.marks[k-1].pos != s.rpos {
		s.marks = append(s.marks, mark{pos: s.rpos, idx: s.ridx})
	}
	return s.rpos
}

// skipRest moves the read position past the rest of its segment after a
// corrupt frame (cause), or after corruption found before (cause nil,
// counted then). The active segment is rolled first: nothing may be
// appended after corruption, and the reader needs a next segment.
func (s *Spool) skipRest(cause error) error {
	s.mu.Lock()
	i := s.segIndexLocked(s.rpos.Segment)
	m := &s.segs[i]
	at := s.rpos
	var skipped, lost int64
	if m.corruptAt < 0 || at.Offset < m.corruptAt {
		end := m.size
		if m.corruptAt >= 0 {
			end = m.corruptAt
		}
		skipped = end - at.Offset
		lost = max(m.records-s.ridx, 0)
		m.records -= lost
		s.totalRecords -= lost
		m.corruptAt = at.Offset
	}
	var err error
	if i == len(s.segs)-1 {
		err = s.rollLocked()
	}
	var next uint64
	if err == nil {
		next = s.segs[i+1].id
	}
	s.mu.Unlock()

	if cause != nil {
		s.corrupt.Add(skipped)
		s.log.Error("spool: corrupt frame; skipping the rest of its segment",
			zap.String("segment", s.segPath(at.Segment)), zap.Int64("offset", at.Offset),
			zap.Int64("bytes_skipped", skipped), zap.Int64("records_lost", lost), zap.NamedError("frame", cause))
	}
	if err != nil {
		return fmt.Errorf("spool: cannot skip corrupt segment %s: %w", s.segPath(at.Segment), err)
	}
	s.rpos, s.ridx = Pos{Segment: next}, 0
	return nil
}

// Commit consumes every record before pos, a position returned by Read
// since the last Commit: it persists the cursor (tmp file, fsync, rename,
// directory fsync: two fsyncs, so commit batches, not records) and then
// deletes the segment files wholly before pos. Committing the committed
// position again does nothing.
func (s *Spool) Commit(pos Pos) error {
	s.rmu.Lock()
	defer s.rmu.Unlock()
	s.mu.Lock()
	closed, committed := s.closed, s.committed
	i := s.segIndexLocked(pos.Segment)
	valid := i >= 0 && pos.Offset >= 0 && pos.Offset <= s.segs[max(i, 0)].size
	s.mu.Unlock()
	switch {
	case closed:
		return ErrClosed
	case pos == committed:
		return nil
	case pos.less(committed):
		return fmt.Errorf("spool: cannot commit %v: it is before the committed position %v", pos, committed)
	case s.rpos.less(pos) || !valid:
		return fmt.Errorf("spool: cannot commit %v: it is past the read position %v or not in a segment", pos, s.rpos)
	}
	idx, ok := s.markIdx(pos)
	if !ok {
		return fmt.Errorf("spool: cannot commit %v: not a position Read returned since the last Commit", pos)
	}
	if err := s.writeCursor(pos); err != nil {
		return err
	}

	s.mu.Lock()
	k := 0
	for k < len(s.segs) && s.segs[k].id < pos.Segment {
		s.totalRecords -= s.segs[k].records
		s.totalBytes -= s.segs[k].size
		k++
	}
	gone := make([]uint64, 0, k)
	for _, m := range s.segs[:k] {
		gone = append(gone, m.id)
	}
	s.segs = append(s.segs[:0], s.segs[k:]...)
	if len(s.segs) == 0 || s.segs[0].id != pos.Segment {
		s.mu.Unlock()
		panic(fmt.Sprintf("BUG: spool: committed %v but its segment is not the first of %d", pos, len(s.segs)))
	}
	s.committed, s.committedIdx = pos, idx
	left := s.totalRecords - idx
	s.mu.Unlock()

	for _, id := range gone {
		// A segment left behind is deleted by the next Open (it is before
		// the cursor); it only costs disk until then.
		if err := os.Remove(s.segPath(id)); err != nil {
			s.log.Warn("spool: cannot delete a consumed segment", zap.String("segment", s.segPath(id)), zap.Error(err))
		}
	}
	kept := s.marks[:0]
	for _, m := range s.marks {
		if pos.less(m.pos) {
			kept = append(kept, m)
		}
	}
	s.marks = kept
	if left > 0 {
		// Only Commit lowers the count and Append only sets oldest on an
		// empty spool, so no Append races with this.
		if t, ok := s.peekTime(pos); ok {
			s.mu.Lock()
			s.oldest = t
			s.mu.Unlock()
		}
	}
	return nil
}

// markIdx returns the records of pos.Segment before pos, for a position
// Read returned.
func (s *Spool) markIdx(pos Pos) (int64, bool) {
	if pos == s.rpos {
		return s.ridx, true
	}
	if pos.Offset == 0 {
		return 0, true
	}
	for _, m := range s.marks {
		if m.pos == pos {
			return m.idx, true
		}
	}
	return 0, false
}

// Rewind moves the read position back to the committed one: the next Read
// returns again the records read but not committed (after their delivery
// to Kafka failed, say).
func (s *Spool) Rewind() {
	s.rmu.Lock()
	defer s.rmu.Unlock()
	s.mu.Lock()
	s.rpos, s.ridx = s.committed, s.committedIdx
	s.mu.Unlock()
	s.marks = s.marks[:0]
}

// writeCursor replaces the cursor file atomically and durably.
func (s *Spool) writeCursor(p Pos) error {
	dir := s.cfg.Dir
	tmp := filepath.Join(dir, cursorTmpName)
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o640)
	if err == nil {
		_, err = f.Write(encodeCursor(p))
		if err == nil {
			err = f.Sync()
		}
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}
	if err == nil {
		err = os.Rename(tmp, filepath.Join(dir, cursorName))
	}
	if err == nil {
		err = syncDir(dir)
	}
	if err != nil {
		return fmt.Errorf("spool: cannot persist the cursor %v in %s: %w", p, dir, err)
	}
	return nil
}

// peekTime returns the append time of the first readable record at or
// after p, for Stats.Oldest. Corruption it meets is left for Read to count.
func (s *Spool) peekTime(p Pos) (time.Time, bool) {
	for {
		s.mu.Lock()
		m, sealed, next, ok := s.segLocked(p.Segment)
		s.mu.Unlock()
		if !ok {
			return time.Time{}, false
		}

		if (m.corruptAt < 0 || p.Offset < m.corruptAt) && p.Offset < m.size {
			if p.Offset == 0 && !m.first.IsZero() {
				return m.first, true
			}
			r := s.r
			if r == nil || r.id != m.id {
				var err error
				if r, err = openSegReader(s.segPath(m.id), m.id, nil); err != nil {
					return time.Time{}, false
				}
			}
			_, _, t, _, err := r.frame(p.Offset, m.size)
			if r != s.r {
				r.close()
			}
			if err == nil {
				return t, true
			}
		}
		if !sealed {
			return time.Time{}, false
		}
		p = Pos{Segment: next}
	}
}

// segIndexLocked returns the index in segs of segment id, or -1. The
// reader's segments are at the front, so a linear search is short.
func (s *Spool) segIndexLocked(id uint64) int {
	for i := range s.segs {
		if s.segs[i].id == id {
			return i
		}
	}
	return -1
}

// segLocked returns a copy of segment id's metadata, whether a later
// segment exists (id is sealed) and that segment's id; ok is false when no
// segment has that id.
func (s *Spool) segLocked(id uint64) (m segMeta, sealed bool, next uint64, ok bool) {
	i := s.segIndexLocked(id)
	if i < 0 {
		return segMeta{}, false, 0, false
	}
	if sealed = i < len(s.segs)-1; sealed {
		next = s.segs[i+1].id
	}
	return s.segs[i], sealed, next, true
}
