// Package spool is the gateway's local disk spool: when Kafka is slow or
// down, records go to an append-only log of checksummed segment files in a
// directory instead of being refused or dropped, and a replayer (one
// reader) produces them later, also after a restart, committing a cursor
// as Kafka acknowledges them. Only a full spool or a failing disk makes
// the gateway refuse a record.
//
// Durability: a record is in the operating system's page cache when
// Append returns (it survives the process being killed) and on disk when a
// later Sync returns (it survives a power loss). Delivery to the reader is
// at-least-once: records read but not committed before a restart are read
// again.
//
// The design follows nsqio/go-diskqueue (numbered segment files, an
// atomically replaced cursor, skipping a corrupt file) with a CRC per
// frame, a recovered torn tail instead of a trusted write position, and no
// goroutine of its own.
package spool

import (
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
)

// Defaults for the zero Config fields.
const (
	DefaultMaxBytes     = 1 << 30
	DefaultSegmentBytes = 64 << 20
)

var (
	// ErrFull is wrapped by Append's error when the record would take the
	// unconsumed bytes past Config.MaxBytes; a Commit frees space.
	ErrFull = errors.New("spool full")
	// ErrTooLarge is wrapped by Append's error for a record whose frame
	// body would be over 16 MiB; it will never fit.
	ErrTooLarge = errors.New("record too large for the spool")
	// ErrClosed is returned by every method called after Close.
	ErrClosed = errors.New("spool closed")
)

// Config says where the spool lives and how large it may grow. The zero
// value is usable except for Dir.
type Config struct {
	// Dir holds the segment files and the cursor; created (0750) if
	// missing. One process at a time: Open locks it.
	Dir string
	// MaxBytes bounds the unconsumed bytes in segment files (default
	// 1 GiB); Append beyond it fails with ErrFull. Consumed bytes of a
	// segment are freed when the whole segment is consumed, so the
	// directory can hold up to MaxBytes+SegmentBytes.
	MaxBytes int64
	// SegmentBytes is the size past which appends go to a new segment
	// file (default 64 MiB, or MaxBytes if smaller). A record larger than
	// it gets a segment of its own.
	SegmentBytes int64
}

func (c Config) withDefaults() Config {
	if c.MaxBytes == 0 {
		c.MaxBytes = DefaultMaxBytes
	}
	if c.SegmentBytes == 0 {
		c.SegmentBytes = min(DefaultSegmentBytes, c.MaxBytes)
	}
	return c
}

// Validate reports the first invalid field, with defaults applied.
func (c Config) Validate() error {
	if c.Dir == "" {
		return errors.New("spool: Dir is empty")
	}
	if c.MaxBytes < 0 {
		return fmt.Errorf("spool: MaxBytes %d is negative", c.MaxBytes)
	}
	if c.SegmentBytes < 0 {
		return fmt.Errorf("spool: SegmentBytes %d is negative", c.SegmentBytes)
	}
	if d := c.withDefaults(); d.SegmentBytes > d.MaxBytes {
		return fmt.Errorf("spool: SegmentBytes %d is over MaxBytes %d", d.SegmentBytes, d.MaxBytes)
	}
	return nil
}

// Pos is a position in the spool: a segment id and a byte offset in it.
// Read returns them and Commit takes them; they order like the records.
type Pos struct {
	Segment uint64
	Offset  int64
}

func (p Pos) less(q Pos) bool {
	return p.Segment < q.Segment || p.Segment == q.Segment && p.Offset < q.Offset
}

// String is for logs and errors: segment:offset.
func (p Pos) String() string { return fmt.Sprintf("%d:%d", p.Segment, p.Offset) }

// Stats describes the unconsumed part of the spool.
type Stats struct {
	Records  int64     // readable records after the committed position
	Bytes    int64     // unconsumed bytes (ErrFull counts these), including corrupt ones not yet skipped
	Oldest   time.Time // append time of the oldest unconsumed record; zero if Records is 0
	Segments int       // segment files on disk
}

// Spool is an open spool directory. Append, Sync, Stats, Empty and Corrupt
// are safe for concurrent use; Read, Commit and Rewind belong to one
// reader at a time (they are serialised, not interleaved).
type Spool struct {
	cfg  Config
	log  *zap.Logger
	now  func() time.Time
	lock *os.File

	// Group commit (sync.go). Lock order: rmu, then syncMu, then mu.
	syncMu      sync.Mutex
	syncCond    sync.Cond    // L is &syncMu; broadcast after every fsync round
	syncing     bool         // a round is in progress, without syncMu held
	synced      uint64       // appendSeq made durable by the last successful round
	failedSeq   uint64       // appendSeq the last failed round could not make durable
	failedErr   error        // and why
	syncWaiting int          // Syncs waiting for a round (tests)
	fsyncs      atomic.Int64 // fsyncs of segment files (tests, benchmarks)
	writes      atomic.Int64 // pwrites of frames (tests, benchmarks)

	mu           sync.Mutex
	closed       bool
	segs         []segMeta // the committed position's segment .. the active one (last)
	w            *os.File  // the active segment, appended to with pwrite
	needRoll     bool      // the active segment must not be appended to again
	unsynced     []uint64  // segments rolled away from, not yet fsynced
	dirDirty     bool      // a segment was created since the last directory fsync
	appendSeq    uint64    // records appended by this process
	wbuf         []byte    // frame being written; reused, hence 0 allocs per Append
	totalRecords int64     // sum of segs[].records
	totalBytes   int64     // sum of segs[].size
	committed    Pos
	committedIdx int64     // records in committed.Segment before committed.Offset
	oldest       time.Time // valid while totalRecords > committedIdx

	corrupt atomic.Int64

	// The reader's state.
	rmu   sync.Mutex
	r     *segReader // open on rpos.Segment, or nil
	rpos  Pos        // next frame to read
	ridx  int64      // records in rpos.Segment before rpos.Offset
	marks []mark     // positions Read returned since the last Commit
}

// mark remembers a position Read returned and how many records of its
// segment precede it, so Commit can keep Stats.Records exact.
type mark struct {
	pos Pos
	idx int64
}

// Open opens the spool in cfg.Dir, creating it if needed, and recovers its
// state: a torn tail of the last segment (a crash mid-append) is cut off,
// segments already consumed are deleted, and the unconsumed records are
// counted. log may be nil.
func Open(cfg Config, log *zap.Logger) (*Spool, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	if log == nil {
		log = zap.NewNop()
	}
	if err := os.MkdirAll(cfg.Dir, 0o750); err != nil {
		return nil, fmt.Errorf("spool: cannot create directory %s: %w", cfg.Dir, err)
	}
	lock, err := lockDir(cfg.Dir)
	if err != nil {
		return nil, err
	}
	s := &Spool{cfg: cfg, log: log, now: time.Now, lock: lock}
	s.syncCond.L = &s.syncMu
	if err := s.recover(); err != nil {
		s.closeFiles()
		return nil, err
	}
	return s, nil
}

// Append writes one record at the tail. key may be nil or empty. The
// record is visible to Read and in the page cache when Append returns; it
// is on disk after the next Sync. A failed write is cut back (or, if even
// that fails, the segment is abandoned for a new one), so it never leaves
// a half frame before later records; errors are not sticky.
func (s *Spool) Append(key, value []byte) error {
	return s.AppendBatch(1, func(int) ([]byte, []byte) { return key, value })
}

// batchChunk bounds the bytes AppendBatch writes with one pwrite, so that
// a huge batch does not grow (and pin) the frame buffer without bound.
const batchChunk = 256 << 10

// AppendBatch writes n records at the tail, all or none: rec(i) returns
// the i-th record's key and value. It is Append for many records with one
// pwrite per 256 KiB instead of one per record. That matters when a
// request's batch is spooled: a write of one 2 KB frame costs a system
// call, and the kernel zeroes the rest of every page cache page a write
// starts in the middle of, so per-record writes zeroed about as many bytes
// as they wrote; one write per batch zeroes only its first and last page.
// Either every record is visible to Read when it returns nil, or none is
// (a failed write is cut back like Append's), and ErrFull and ErrTooLarge
// are judged on the whole batch before anything is written. All records
// of a batch carry the same append time.
func (s *Spool) AppendBatch(n int, rec func(i int) (key, value []byte)) error {
	if n <= 0 {
		return nil
	}
	var size int64
	for i := range n {
		key, value := rec(i)
		fs := frameSize(len(key), len(value))
		if fs < 0 {
			return fmt.Errorf("spool: cannot append a record (%d of %d) with a %d-byte key and a %d-byte value: %w (frame body limit %d bytes)",
				i+1, n, len(key), len(value), ErrTooLarge, maxBody)
		}
		size += fs
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	if used := s.totalBytes - s.committed.Offset; used+size > s.cfg.MaxBytes {
		what := fmt.Sprintf("a %d-byte frame", size)
		if n > 1 {
			what = fmt.Sprintf("%d records in %d bytes of frames", n, size)
		}
		return fmt.Errorf("spool: cannot append %s to %s: %d of %d bytes used: %w",
			what, s.cfg.Dir, used, s.cfg.MaxBytes, ErrFull)
	}
	a := &s.segs[len(s.segs)-1]
	if s.needRoll || (a.size > 0 && a.size+size > s.cfg.SegmentBytes) {
		// A batch larger than a segment gets one of its own, as a record
		// larger than a segment does: a batch never spans two segments.
		if err := s.rollLocked(); err != nil {
			return err
		}
		a = &s.segs[len(s.segs)-1]
	}
	now := time.UnixMicro(s.now().UnixMicro())
	off := a.size
	s.wbuf = s.wbuf[:0]
	for i := range n {
		key, value := rec(i)
		s.wbuf = appendFrame(s.wbuf, key, value, now)
		if len(s.wbuf) < batchChunk && i < n-1 {
			continue
		}
		s.writes.Add(1)
		if _, err := s.w.WriteAt(s.wbuf, off); err != nil {
			return s.writeFailedLocked(a, size, err)
		}
		off += int64(len(s.wbuf))
		s.wbuf = s.wbuf[:0]
	}
	if cap(s.wbuf) > 1<<20 {
		s.wbuf = nil // one huge record must not pin its buffer
	}
	if a.size == 0 {
		a.first = now
	}
	if s.totalRecords == s.committedIdx {
		s.oldest = now
	}
	a.size += size
	a.records += int64(n)
	s.totalBytes += size
	s.totalRecords += int64(n)
	s.appendSeq += uint64(n)
	return nil
}

// writeFailedLocked undoes a failed or partial write of frames (size
// bytes) at the end of the active segment a.
func (s *Spool) writeFailedLocked(a *segMeta, size int64, err error) error {
	path := s.segPath(a.id)
	werr := fmt.Errorf("spool: cannot append %d bytes of frames at offset %d of %s: %w", size, a.size, path, err)
	if terr := s.w.Truncate(a.size); terr != nil {
		// The bytes past a.size may be half a frame: never append after
		// them. Readers stop at a.size; Open sees them as corruption of a
		// sealed segment and Read skips them.
		s.needRoll = true
		s.log.Error("spool: cannot cut a failed append back; later appends go to a new segment",
			zap.String("segment", path), zap.Int64("offset", a.size), zap.NamedError("write_error", err), zap.Error(terr))
	}
	return werr
}

// rollLocked starts a new active segment. The old one is closed at once
// (an open file would pin its disk space after Commit deletes it, and
// descriptors would pile up without Syncs); the next Sync reopens it to
// fsync it. fsync flushes the inode whatever descriptor wrote it, and
// Linux (4.16 on) reports a write-back error not yet reported to anyone to
// a descriptor opened after it.
func (s *Spool) rollLocked() error {
	old := s.segs[len(s.segs)-1].id
	id := old + 1
	f, err := createSegment(s.segPath(id))
	if err != nil {
		return err
	}
	s.w.Close()
	s.unsynced = append(s.unsynced, old)
	s.w = f
	s.segs = append(s.segs, segMeta{id: id, corruptAt: -1})
	s.needRoll = false
	s.dirDirty = true
	return nil
}

// Stats returns the unconsumed records and bytes, the oldest record's
// append time and the segment count, exact at the time of the call.
func (s *Spool) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.statsLocked()
}

func (s *Spool) statsLocked() Stats {
	st := Stats{
		Records:  s.totalRecords - s.committedIdx,
		Bytes:    s.totalBytes - s.committed.Offset,
		Segments: len(s.segs),
	}
	if st.Records > 0 {
		st.Oldest = s.oldest
	}
	return st
}

// Empty reports whether nothing is left to consume. While it is false a
// Read makes progress: it returns records, or skips corrupt bytes and
// returns a position to Commit.
func (s *Spool) Empty() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.totalBytes == s.committed.Offset
}

// Corrupt returns the bytes discarded as unreadable since Open: a torn
// tail cut off by Open (a crash in the middle of an append) and corrupt
// frames Read skipped (with the rest of their segment). Records in them
// are lost; anything above 0 deserves a look at the log.
func (s *Spool) Corrupt() int64 { return s.corrupt.Load() }

// Close syncs and closes the spool; it waits for a Read or Commit in
// progress. Later calls return nil.
func (s *Spool) Close() error {
	s.rmu.Lock()
	defer s.rmu.Unlock()
	s.syncMu.Lock()
	for s.syncing {
		s.syncCond.Wait()
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		s.syncMu.Unlock()
		return nil
	}
	s.closed = true // no Append from here on, so the round covers all
	s.mu.Unlock()
	err := s.lead()
	s.syncMu.Unlock()
	s.closeFiles()
	return err
}

// closeFiles closes every file without syncing: Close after its Sync, a
// failed Open, and tests simulating a crash.
func (s *Spool) closeFiles() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	if s.w != nil {
		s.w.Close()
		s.w = nil
	}
	s.r.close()
	s.r = nil
	if s.lock != nil {
		s.lock.Close() // releases the flock
		s.lock = nil
	}
}
