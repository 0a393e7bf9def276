package spool

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"go.uber.org/zap"
)

// recover rebuilds the in-memory state from the directory (see format.go):
// the cursor, the segments from the cursor's on (earlier ones are deleted),
// their record counts, and the last segment cut back to its last whole
// frame. It trusts no recorded write position: frames and CRCs are the
// truth, so a crash at any moment recovers to a prefix of what was
// appended.
func (s *Spool) recover() error {
	dir := s.cfg.Dir
	if err := os.Remove(filepath.Join(dir, cursorTmpName)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("spool: cannot remove a stale %s in %s: %w", cursorTmpName, dir, err)
	}
	ids, err := listSegments(dir)
	if err != nil {
		return err
	}
	stored, haveCursor, damaged, err := s.loadCursor()
	if err != nil {
		return err
	}
	c := stored
	if !haveCursor && len(ids) > 0 {
		c = Pos{Segment: ids[0]}
	}

	// Segments before the cursor's were consumed; a crash after the cursor
	// was written and before they were deleted leaves them behind.
	var keep []uint64
	for _, id := range ids {
		if id >= c.Segment {
			keep = append(keep, id)
			continue
		}
		if err := os.Remove(s.segPath(id)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			s.log.Warn("spool: cannot delete a consumed segment", zap.String("segment", s.segPath(id)), zap.Error(err))
		}
	}

	if len(keep) == 0 {
		// Nothing unconsumed: a fresh active segment after the cursor's.
		id := c.Segment
		if c.Offset > 0 {
			id++
		}
		f, err := createSegment(s.segPath(id))
		if err != nil {
			return err
		}
		s.w = f
		s.segs = []segMeta{{id: id, corruptAt: -1}}
		s.dirDirty = true
		c = Pos{Segment: id}
	} else {
		if keep[0] != c.Segment {
			s.log.Warn("spool: the cursor's segment is missing; reading from the next one",
				zap.Stringer("cursor", c), zap.String("next", s.segPath(keep[0])))
			c = Pos{Segment: keep[0]}
		}
		for i, id := range keep {
			m, err := s.scanSegment(id, i == len(keep)-1, &c)
			if err != nil {
				return err
			}
			s.segs = append(s.segs, m)
			s.totalRecords += m.records
			s.totalBytes += m.size
		}
	}
	s.committed = c
	s.rpos, s.ridx = c, s.committedIdx
	s.oldest = s.firstTimeFrom(c)

	if damaged || haveCursor && c != stored {
		// A stale cursor past the recovered end would, once appends reuse
		// those offsets, silently consume new records; a damaged one would
		// replay everything again at every start.
		if err := s.writeCursor(c); err != nil {
			return err
		}
	}
	st := s.statsLocked()
	s.log.Info("spool: opened", zap.String("dir", dir), zap.Stringer("cursor", c),
		zap.Int64("records", st.Records), zap.Int64("bytes", st.Bytes), zap.Int("segments", st.Segments))
	return nil
}

// loadCursor reads the cursor file. A missing one means "from the start";
// a damaged one is logged and also means "from the start": at-least-once
// prefers replaying records twice to losing them.
func (s *Spool) loadCursor() (p Pos, ok, damaged bool, err error) {
	path := filepath.Join(s.cfg.Dir, cursorName)
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return Pos{}, false, false, nil
	}
	if err != nil {
		return Pos{}, false, false, fmt.Errorf("spool: cannot read the cursor %s: %w", path, err)
	}
	p, err = decodeCursor(b)
	if err != nil {
		s.log.Error("spool: damaged cursor; replaying from the first segment (duplicates possible)",
			zap.String("cursor", path), zap.Error(err))
		return Pos{}, false, true, nil
	}
	return p, true, false, nil
}

// scanSegment reads every frame of segment id. In the last segment, an
// invalid frame is a torn tail from a crash: the file is cut back to the
// last whole frame. In a sealed segment it is corruption, left for Read to
// skip (and count). If c is in this segment it is moved to a frame
// boundary (never forward past an unread record), and the records before it
// are counted into s.committedIdx.
func (s *Spool) scanSegment(id uint64, last bool, c *Pos) (segMeta, error) {
	path := s.segPath(id)
	flag := os.O_RDONLY
	if last {
		flag = os.O_RDWR
	}
	f, err := os.OpenFile(path, flag, 0)
	if err != nil {
		return segMeta{}, fmt.Errorf("spool: cannot open segment %s: %w", path, err)
	}
	keep := false
	defer func() {
		if !keep {
			f.Close()
		}
	}()
	fi, err := f.Stat()
	if err != nil {
		return segMeta{}, fmt.Errorf("spool: cannot stat segment %s: %w", path, err)
	}
	size := fi.Size()
	r := &segReader{f: f, id: id}
	m := segMeta{id: id, corruptAt: -1}
	atCursor := c.Segment != id // done, or not this segment's business
	var off int64
	var bad error
	for {
		_, _, t, next, err := r.frame(off, size)
		if errors.Is(err, io.EOF) {
			break
		}
		if errors.Is(err, errFrame) {
			bad = err
			break
		}
		if err != nil {
			return segMeta{}, err
		}
		if !atCursor && c.Offset < next {
			if c.Offset != off {
				s.log.Error("spool: the cursor is inside a frame; replaying that frame",
					zap.Stringer("cursor", *c), zap.Int64("frame", off), zap.String("segment", path))
				c.Offset = off
			}
			s.committedIdx = m.records
			atCursor = true
		}
		if m.records == 0 {
			m.first = t
		}
		m.records++
		off = next
	}
	if !atCursor && c.Offset != off {
		// Past the last whole frame: the records it covered were consumed
		// but their bytes did not survive a power loss, or the tail is
		// corrupt and Read will skip it.
		s.log.Warn("spool: the cursor is past the last whole frame of its segment; moving it back",
			zap.Stringer("cursor", *c), zap.Int64("end", off), zap.String("segment", path))
		c.Offset = off
	}
	if !atCursor {
		s.committedIdx = m.records
	}

	m.size = size
	if bad != nil && last {
		s.log.Warn("spool: cutting off a torn tail of the last segment (a crash during an append)",
			zap.String("segment", path), zap.Int64("offset", off), zap.Int64("bytes", size-off), zap.NamedError("frame", bad))
		if err := f.Truncate(off); err != nil {
			return segMeta{}, fmt.Errorf("spool: cannot cut segment %s back from %d to %d bytes: %w", path, size, off, err)
		}
		s.corrupt.Add(size - off)
		m.size = off
	} else if bad != nil {
		s.log.Warn("spool: corrupt frame in a sealed segment; Read will skip the rest of it",
			zap.String("segment", path), zap.Int64("offset", off), zap.Int64("bytes", size-off), zap.NamedError("frame", bad))
	}
	if last {
		keep = true
		s.w = f
	}
	return m, nil
}

// firstTimeFrom returns the append time of the first readable record at or
// after p at Open, from the recovered metadata and one frame read.
func (s *Spool) firstTimeFrom(p Pos) time.Time {
	t, _ := s.peekTime(p)
	return t
}
