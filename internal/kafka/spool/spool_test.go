package spool

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		cfg  Config
		want string // substring of the error, "" for valid
	}{
		{Config{Dir: "d"}, ""},
		{Config{Dir: "d", MaxBytes: 10 << 20}, ""}, // SegmentBytes defaults to MaxBytes
		{Config{Dir: "d", MaxBytes: 100, SegmentBytes: 100}, ""},
		{Config{}, "Dir is empty"},
		{Config{Dir: "d", MaxBytes: -1}, "MaxBytes -1 is negative"},
		{Config{Dir: "d", SegmentBytes: -1}, "SegmentBytes -1 is negative"},
		{Config{Dir: "d", MaxBytes: 100, SegmentBytes: 101}, "SegmentBytes 101 is over MaxBytes 100"},
		{Config{Dir: "d", SegmentBytes: 2 << 30}, "is over MaxBytes 1073741824"},
	} {
		err := tc.cfg.Validate()
		if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("%+v.Validate() = %v, want %q", tc.cfg, err, tc.want)
		}
	}
	if d := (Config{Dir: "d", MaxBytes: 10 << 20}).withDefaults(); d.SegmentBytes != 10<<20 {
		t.Errorf("SegmentBytes default under a 10 MiB MaxBytes = %d", d.SegmentBytes)
	}
	if _, err := Open(Config{}, nil); err == nil {
		t.Error("Open accepted an empty Dir")
	}
}

// TestRoundTrip appends across many segment rolls, reads in small batches
// and commits, checking order, content, append times, files on disk and
// exact Stats all along.
func TestRoundTrip(t *testing.T) {
	dir := t.TempDir()
	s, _ := open(t, dir, Config{SegmentBytes: 4096, MaxBytes: 1 << 20})
	defer s.Close()
	clock := newFakeClock()
	start := clock.t
	s.now = clock.now
	const total = 3000

	if !s.Empty() || s.Stats() != (Stats{Segments: 1}) {
		t.Fatalf("new spool: Empty %v, Stats %+v", s.Empty(), s.Stats())
	}
	sizes := make([]int64, total)
	for i := range total {
		k, v := testRecord(i)
		sizes[i] = frameBytes(k, v)
	}
	appendTest(t, s, 0, total)
	var all int64
	for _, n := range sizes {
		all += n
	}
	st := s.Stats()
	if st.Records != total || st.Bytes != all || st.Oldest != start.Add(time.Millisecond) {
		t.Fatalf("after %d appends: Stats %+v, want %d records, %d bytes, oldest %v", total, st, total, all, start.Add(time.Millisecond))
	}
	if ids := segFiles(t, dir); len(ids) != st.Segments || len(ids) < 50 {
		t.Fatalf("%d segment files, Stats says %d; want many rolls", len(ids), st.Segments)
	}
	for _, id := range segFiles(t, dir) {
		if sz := fileSize(t, segFile(dir, id)); sz > 4096 {
			t.Fatalf("segment %d is %d bytes, over SegmentBytes", id, sz)
		}
	}

	read := 0
	for read < total {
		// Odd batch sizes, so commits land mid-segment and on boundaries.
		got, pos := readN(t, s, 37, 1)
		if len(got) == 0 {
			t.Fatalf("Read returned nothing after %d of %d records", read, total)
		}
		checkRecords(t, got, read)
		for j, r := range got {
			if want := start.Add(time.Duration(read+j+1) * time.Millisecond); !r.t.Equal(want) {
				t.Fatalf("record %d appended at %v, want %v", read+j, r.t, want)
			}
		}
		read += len(got)
		if read%3 != 0 && read < total {
			continue // commit every few batches, from the latest position
		}
		before := len(segFiles(t, dir))
		if err := s.Commit(pos); err != nil {
			t.Fatalf("Commit(%v): %v", pos, err)
		}
		var left int64
		for _, n := range sizes[read:] {
			left += n
		}
		st := s.Stats()
		wantOldest := time.Time{}
		if read < total {
			wantOldest = start.Add(time.Duration(read+1) * time.Millisecond)
		}
		if st.Records != int64(total-read) || st.Bytes != left || !st.Oldest.Equal(wantOldest) {
			t.Fatalf("after committing %d: Stats %+v, want %d records, %d bytes, oldest %v", read, st, total-read, left, wantOldest)
		}
		ids := segFiles(t, dir)
		if len(ids) > before || ids[0] != pos.Segment || len(ids) != st.Segments {
			t.Fatalf("after Commit(%v): segments on disk %v (before: %d), Stats.Segments %d", pos, ids, before, st.Segments)
		}
	}
	if !s.Empty() || s.Stats().Records != 0 || len(segFiles(t, dir)) != 1 {
		t.Fatalf("everything committed: Empty %v, Stats %+v, files %v", s.Empty(), s.Stats(), segFiles(t, dir))
	}
}

func TestReadSeesNewAppends(t *testing.T) {
	dir := t.TempDir()
	s, _ := open(t, dir, Config{SegmentBytes: 1024})
	defer s.Close()
	appendTest(t, s, 0, 10)
	got, pos := readN(t, s, 100, 10)
	if len(got) != 10 {
		t.Fatalf("read %d records, want 10", len(got))
	}
	p, n, err := s.Read(100, func(k, v []byte, _ time.Time) error { return errors.New("called at the tail") })
	if n != 0 || err != nil || p != pos {
		t.Fatalf("Read at the tail = %v, %d, %v; want %v, 0, nil", p, n, err, pos)
	}
	appendTest(t, s, 10, 50) // rolls several segments
	got, _ = readN(t, s, 7, 40)
	if len(got) != 40 {
		t.Fatalf("read %d new records, want 40", len(got))
	}
	checkRecords(t, got, 10)
	if p, n, _ := s.Read(0, nil); n != 0 || p.less(pos) {
		t.Fatalf("Read(0) = %v, %d", p, n)
	}
}

func TestReadFnErrorAndRewind(t *testing.T) {
	s, _ := open(t, t.TempDir(), Config{SegmentBytes: 512})
	defer s.Close()
	appendTest(t, s, 0, 20)
	refuse := errors.New("producer queue full")
	calls := 0
	pos, n, err := s.Read(10, func(k, v []byte, _ time.Time) error {
		calls++
		if calls == 3 {
			return refuse
		}
		return nil
	})
	if !errors.Is(err, refuse) || n != 2 {
		t.Fatalf("Read with fn failing on the 3rd record = %v, %d, %v", pos, n, err)
	}
	got, _ := readN(t, s, 1, 1) // the refused record comes again
	checkRecords(t, got, 2)
	if err := s.Commit(pos); err != nil { // an earlier position Read returned
		t.Fatal(err)
	}
	if st := s.Stats(); st.Records != 18 {
		t.Fatalf("after committing 2 records: %+v", st)
	}
	s.Rewind()
	got, _ = readN(t, s, 100, 18)
	if len(got) != 18 {
		t.Fatalf("after Rewind read %d records, want 18", len(got))
	}
	checkRecords(t, got, 2)

	// Positions Commit must refuse.
	if err := s.Commit(Pos{Segment: pos.Segment, Offset: pos.Offset + 1}); err == nil {
		t.Error("Commit of a position Read never returned succeeded")
	}
	if err := s.Commit(Pos{}); err == nil || !strings.Contains(err.Error(), "before the committed position") {
		t.Errorf("Commit before the committed position: %v", err)
	}
	if err := s.Commit(Pos{Segment: 1 << 40}); err == nil {
		t.Error("Commit past the read position succeeded")
	}
	if err := s.Commit(pos); err != nil {
		t.Errorf("committing the committed position again: %v", err)
	}
}

func TestFull(t *testing.T) {
	dir := t.TempDir()
	k, v := "key", strings.Repeat("x", 100)
	frame := frameBytes(k, v)
	s, _ := open(t, dir, Config{MaxBytes: 10 * frame, SegmentBytes: 3 * frame})
	defer s.Close()
	for i := range 10 {
		if err := s.Append([]byte(k), []byte(v)); err != nil {
			t.Fatalf("Append %d: %v", i, err)
		}
	}
	err := s.Append([]byte(k), []byte(v))
	if !errors.Is(err, ErrFull) {
		t.Fatalf("Append past MaxBytes = %v, want ErrFull", err)
	}
	want := fmt.Sprintf("cannot append a %d-byte frame to %s: %d of %d bytes used", frame, dir, 10*frame, 10*frame)
	if !strings.Contains(err.Error(), want) {
		t.Fatalf("ErrFull says %q, want it to contain %q", err, want)
	}
	if st := s.Stats(); st.Records != 10 || st.Bytes != 10*frame {
		t.Fatalf("a refused Append changed Stats: %+v", st)
	}
	// Commit frees space, even in the middle of a segment.
	_, pos := readN(t, s, 4, 4)
	if err := s.Commit(pos); err != nil {
		t.Fatal(err)
	}
	for i := range 4 {
		if err := s.Append([]byte(k), []byte(v)); err != nil {
			t.Fatalf("Append %d after freeing 4 frames: %v", i, err)
		}
	}
	if err := s.Append([]byte(k), []byte(v)); !errors.Is(err, ErrFull) {
		t.Fatalf("full again: %v", err)
	}

	huge := make([]byte, maxBody)
	if err := s.Append(nil, huge); !errors.Is(err, ErrTooLarge) || errors.Is(err, ErrFull) {
		t.Fatalf("Append of a %d-byte value = %v, want ErrTooLarge", len(huge), err)
	}
}

// TestReopen: what was appended and synced survives a crash (no Close),
// the cursor survives, records read but not committed come again and
// committed ones do not.
func TestReopen(t *testing.T) {
	dir := t.TempDir()
	cfg := Config{SegmentBytes: 2048}
	s, _ := open(t, dir, cfg)
	appendTest(t, s, 0, 100)
	if err := s.Sync(); err != nil {
		t.Fatal(err)
	}
	_, pos40 := readN(t, s, 40, 1)
	readN(t, s, 20, 1) // read up to 60, not committed
	if err := s.Commit(pos40); err != nil {
		t.Fatal(err)
	}
	crash(s)

	s, _ = open(t, dir, cfg)
	st := s.Stats()
	if st.Records != 60 || st.Segments != len(segFiles(t, dir)) || st.Oldest.IsZero() {
		t.Fatalf("after the crash: Stats %+v, want 60 records", st)
	}
	got, pos := readN(t, s, 1000, 60)
	if len(got) != 60 {
		t.Fatalf("read %d records after reopening, want 60", len(got))
	}
	checkRecords(t, got, 40)
	if !st.Oldest.Equal(got[0].t) {
		t.Fatalf("Oldest %v, want the first unconsumed record's time %v", st.Oldest, got[0].t)
	}
	if err := s.Commit(pos); err != nil {
		t.Fatal(err)
	}
	appendTest(t, s, 100, 105)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Append(nil, []byte("x")); !errors.Is(err, ErrClosed) {
		t.Fatalf("Append after Close = %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}

	s, _ = open(t, dir, cfg)
	defer s.Close()
	if st := s.Stats(); st.Records != 5 {
		t.Fatalf("after Close and Open: %+v, want 5 records", st)
	}
	got, _ = readN(t, s, 1000, 5)
	checkRecords(t, got, 100)
	if len(got) != 5 {
		t.Fatalf("read %d, want 5", len(got))
	}
}

func TestLocked(t *testing.T) {
	dir := t.TempDir()
	s, _ := open(t, dir, Config{})
	defer s.Close()
	if _, err := Open(Config{Dir: dir}, nil); err == nil || !strings.Contains(err.Error(), "in use") {
		t.Fatalf("second Open of %s = %v, want in use", dir, err)
	}
}

// TestTornTail: a crash in the middle of an append leaves part of a frame
// (or, on some file systems, zeros or garbage) at the end of the last
// segment; Open keeps every whole frame before it and appends go on.
func TestTornTail(t *testing.T) {
	hugeHeader := binary.LittleEndian.AppendUint32(nil, 1<<30)
	hugeHeader = append(hugeHeader, 1, 2, 3, 4, 5, 6, 7, 8)
	for _, tc := range []struct {
		name   string
		damage func(path string, size int64) int64 // returns the bytes Open must cut
		keep   int                                 // records left of 50
	}{
		{"cut_mid_frame", func(path string, size int64) int64 {
			k, v := testRecord(49)
			must(t, os.Truncate(path, size-5))
			return frameBytes(k, v) - 5
		}, 49},
		{"cut_mid_header", func(path string, size int64) int64 {
			k, v := testRecord(49)
			cut := size - frameBytes(k, v) + 3
			must(t, os.Truncate(path, cut))
			return 3
		}, 49},
		{"garbage", func(path string, size int64) int64 {
			return appendFile(t, path, []byte("\x17garbage after the last frame\xff\x00"))
		}, 50},
		{"zeros", func(path string, size int64) int64 {
			return appendFile(t, path, make([]byte, 4096))
		}, 50},
		{"huge_length", func(path string, size int64) int64 {
			return appendFile(t, path, hugeHeader)
		}, 50},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			cfg := Config{SegmentBytes: 8192}
			s, _ := open(t, dir, cfg)
			appendTest(t, s, 0, 50)
			must(t, s.Sync())
			crash(s)
			path := segFile(dir, lastSeg(t, dir))
			cut := tc.damage(path, fileSize(t, path))

			s, logs := open(t, dir, cfg)
			if s.Corrupt() != cut {
				t.Errorf("Corrupt() = %d, want the %d bytes cut", s.Corrupt(), cut)
			}
			if logs.FilterMessageSnippet("torn tail").Len() != 1 {
				t.Errorf("no torn-tail warning in %v", logs.All())
			}
			if st := s.Stats(); st.Records != int64(tc.keep) {
				t.Fatalf("Stats after recovery %+v, want %d records", st, tc.keep)
			}
			appendTest(t, s, tc.keep, 60)
			got, _ := readN(t, s, 1000, 60)
			if len(got) != 60 {
				t.Fatalf("read %d records, want 60", len(got))
			}
			checkRecords(t, got, 0)
			must(t, s.Close())

			s, _ = open(t, dir, cfg)
			defer s.Close()
			if s.Corrupt() != 0 || s.Stats().Records != 60 {
				t.Fatalf("clean reopen: Corrupt %d, Stats %+v", s.Corrupt(), s.Stats())
			}
		})
	}
}

// TestCursorPastEnd: records were read and committed but their segment
// was not synced before a power loss, so the file is shorter than the
// cursor. Open must move the cursor back and persist it, or new appends
// at those offsets would count as consumed.
func TestCursorPastEnd(t *testing.T) {
	dir := t.TempDir()
	s, _ := open(t, dir, Config{})
	appendTest(t, s, 0, 10)
	_, pos := readN(t, s, 100, 10)
	must(t, s.Commit(pos))
	crash(s)
	must(t, os.Truncate(segFile(dir, pos.Segment), pos.Offset/2))

	s, logs := open(t, dir, Config{})
	if logs.FilterMessageSnippet("cursor is past").Len() != 1 {
		t.Errorf("no warning about the cursor in %v", logs.All())
	}
	appendTest(t, s, 100, 103)
	if s.Stats().Records != 3 {
		t.Fatalf("Stats %+v, want the 3 new records", s.Stats())
	}
	crash(s)
	s, _ = open(t, dir, Config{})
	defer s.Close()
	got, _ := readN(t, s, 100, 3)
	if len(got) != 3 {
		t.Fatalf("read %d records after the second crash, want the 3 new ones", len(got))
	}
	checkRecords(t, got, 100)
}

func TestDamagedCursor(t *testing.T) {
	dir := t.TempDir()
	s, _ := open(t, dir, Config{SegmentBytes: 1024})
	appendTest(t, s, 0, 30)
	_, pos := readN(t, s, 10, 10)
	must(t, s.Commit(pos))
	must(t, s.Close())
	must(t, os.WriteFile(filepath.Join(dir, cursorName), []byte("not a cursor"), 0o640))

	s, logs := open(t, dir, Config{SegmentBytes: 1024})
	defer func() { s.Close() }()
	if logs.FilterMessageSnippet("damaged cursor").Len() != 1 {
		t.Errorf("no error about the cursor in %v", logs.All())
	}
	// Segments wholly before the old cursor are gone; the rest is replayed.
	got, _ := readN(t, s, 100, 30)
	if len(got) < 20 {
		t.Fatalf("read %d records, want at least the 20 uncommitted", len(got))
	}
	checkRecords(t, got, 30-len(got))
	crash(s)
	s, logs = open(t, dir, Config{SegmentBytes: 1024})
	if logs.FilterMessageSnippet("damaged cursor").Len() != 0 {
		t.Error("Open did not replace the damaged cursor")
	}
}

// TestCorruptSealedSegment: a flipped byte in a segment that is not the
// last one. Read skips the rest of that segment, counts it, logs, and
// goes on with the next segments.
func TestCorruptSealedSegment(t *testing.T) {
	for _, reopen := range []bool{true, false} {
		t.Run(fmt.Sprintf("reopen=%v", reopen), func(t *testing.T) {
			dir := t.TempDir()
			cfg := Config{SegmentBytes: 2048}
			s, logs := open(t, dir, cfg)
			appendTest(t, s, 0, 100)
			must(t, s.Sync())
			ids := segFiles(t, dir)
			if len(ids) < 4 {
				t.Fatalf("want at least 4 segments, have %v", ids)
			}
			victim := ids[1]
			// Records in ids[0], and the offset of the 3rd frame of the victim.
			first, inVictim, off := countFrames(t, dir, ids[0]), countFrames(t, dir, victim), int64(0)
			for i := range 2 {
				k, v := testRecord(first + i)
				off += frameBytes(k, v)
			}
			flipByte(t, segFile(dir, victim), off+headerSize+3)
			if reopen {
				crash(s)
				s, logs = open(t, dir, cfg)
			}
			defer s.Close()
			before := s.Stats()

			got, pos := readN(t, s, 1000, 100)
			lost := inVictim - 2
			if len(got) != 100-lost {
				t.Fatalf("read %d records, want %d (100 minus the %d after the flipped byte)", len(got), 100-lost, lost)
			}
			checkRecords(t, got[:first+2], 0)
			checkRecords(t, got[first+2:], first+inVictim)
			wantCorrupt := fileSize(t, segFile(dir, victim)) - off
			if s.Corrupt() != wantCorrupt {
				t.Errorf("Corrupt() = %d, want %d", s.Corrupt(), wantCorrupt)
			}
			if logs.FilterMessageSnippet("corrupt frame; skipping").Len() != 1 {
				t.Errorf("want one error log about the skip, have %v", logs.All())
			}
			if !reopen && before.Records != 100 {
				t.Errorf("before reading: %+v", before)
			}
			if st := s.Stats(); st.Records != int64(len(got)) {
				t.Errorf("after the skip Stats.Records = %d, want %d readable", st.Records, len(got))
			}
			// Read again from the start: no second count, same records.
			s.Rewind()
			again, _ := readN(t, s, 1000, 100)
			if len(again) != len(got) || s.Corrupt() != wantCorrupt {
				t.Fatalf("after Rewind: %d records, Corrupt %d", len(again), s.Corrupt())
			}
			must(t, s.Commit(pos))
			if st := s.Stats(); st.Records != 0 || st.Bytes != 0 || !s.Empty() {
				t.Fatalf("all committed: %+v", st)
			}
			if slices.Contains(segFiles(t, dir), victim) {
				t.Fatal("the corrupt segment was not deleted by the Commit past it")
			}
		})
	}
}

// TestCorruptActiveSegment: corruption found in the segment being
// appended to. The reader skips it, appends go to a new segment, nothing
// after the corruption is appended to the damaged file.
func TestCorruptActiveSegment(t *testing.T) {
	dir := t.TempDir()
	s, _ := open(t, dir, Config{})
	defer s.Close()
	appendTest(t, s, 0, 10)
	active := lastSeg(t, dir)
	k, v := testRecord(0)
	flipByte(t, segFile(dir, active), frameBytes(k, v)+headerSize) // the 2nd frame's time
	got, _ := readN(t, s, 100, 10)
	if len(got) != 1 || s.Corrupt() == 0 {
		t.Fatalf("read %d records (want 1), Corrupt %d", len(got), s.Corrupt())
	}
	if st := s.Stats(); st.Records != 1 {
		t.Fatalf("9 of 10 records lost, 1 read but not committed; Stats says %+v", st)
	}
	appendTest(t, s, 10, 15)
	if lastSeg(t, dir) == active {
		t.Fatal("appends went on in the corrupt segment")
	}
	got, pos := readN(t, s, 100, 5)
	checkRecords(t, got, 10)
	if len(got) != 5 {
		t.Fatalf("read %d after the skip, want 5", len(got))
	}
	must(t, s.Commit(pos))
	if !s.Empty() {
		t.Fatalf("not empty: %+v", s.Stats())
	}
}

// TestWriteFailure: a write that fails and cannot even be cut back (here,
// the active file is read-only) makes appends move to a new segment; no
// half frame is ever read.
func TestWriteFailure(t *testing.T) {
	dir := t.TempDir()
	s, logs := open(t, dir, Config{})
	defer s.Close()
	appendTest(t, s, 0, 5)
	s.mu.Lock()
	good := s.w
	ro, err := os.Open(good.Name())
	must(t, err)
	s.w = ro
	s.mu.Unlock()
	defer good.Close()

	err = s.Append(nil, []byte("lost"))
	if err == nil || errors.Is(err, ErrFull) || !strings.Contains(err.Error(), "cannot append") {
		t.Fatalf("Append to a read-only file = %v", err)
	}
	if logs.FilterMessageSnippet("cannot cut a failed append back").Len() != 1 {
		t.Fatalf("no error log, have %v", logs.All())
	}
	appendTest(t, s, 5, 10)
	got, _ := readN(t, s, 100, 10)
	if len(got) != 10 || s.Corrupt() != 0 {
		t.Fatalf("read %d records (want 10), Corrupt %d", len(got), s.Corrupt())
	}
	checkRecords(t, got, 0)
	must(t, s.Sync())
}

// TestConcurrent: 8 appenders while one reader reads and commits, with
// rolls and deletes along the way (run it with -race). Every record
// arrives once, each appender's in order.
func TestConcurrent(t *testing.T) {
	const writers, each = 8, 1500
	dir := t.TempDir()
	s, _ := open(t, dir, Config{SegmentBytes: 16 << 10, MaxBytes: 64 << 20})
	defer s.Close()

	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			key := []byte{byte(w)}
			val := make([]byte, 8+w*50)
			for i := range each {
				binary.LittleEndian.PutUint64(val, uint64(i))
				if err := s.Append(key, val); err != nil {
					t.Errorf("writer %d, record %d: %v", w, i, err)
					return
				}
				if i%500 == 499 {
					if err := s.Sync(); err != nil {
						t.Errorf("Sync: %v", err)
						return
					}
				}
			}
		})
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()

	next := make([]uint64, writers)
	total, finished := 0, false
	for reads := 0; total < writers*each; reads++ {
		if reads > 10*writers*each {
			t.Fatalf("%d Reads and only %d records", reads, total)
		}
		pos, n, err := s.Read(97, func(k, v []byte, _ time.Time) error {
			w := int(k[0])
			if got := binary.LittleEndian.Uint64(v); got != next[w] || len(v) != 8+w*50 {
				return fmt.Errorf("writer %d: got record %d (%d bytes), want %d", w, got, len(v), next[w])
			}
			next[w]++
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		total += n
		if n > 0 && reads%3 == 0 {
			must(t, s.Commit(pos))
		}
		if n == 0 {
			if finished {
				t.Fatalf("appenders done, read %d of %d", total, writers*each)
			}
			select {
			case <-done:
				finished = true
			case <-time.After(time.Millisecond):
			}
		}
	}
	<-done
	pos, n, err := s.Read(10, func(_, _ []byte, _ time.Time) error { return nil })
	if n != 0 || err != nil {
		t.Fatalf("extra records: %d, %v", n, err)
	}
	must(t, s.Commit(pos))
	if st := s.Stats(); st.Records != 0 || st.Bytes != 0 || st.Segments != 1 || len(segFiles(t, dir)) != 1 {
		t.Fatalf("all consumed: Stats %+v, files %v", st, segFiles(t, dir))
	}
}

// TestSyncGroupCommit: Syncs waiting while another fsyncs share the next
// fsync instead of doing one each.
func TestSyncGroupCommit(t *testing.T) {
	s, _ := open(t, t.TempDir(), Config{})
	defer s.Close()
	appendTest(t, s, 0, 3)
	s.syncMu.Lock()
	s.syncing = true // a round in progress
	s.syncMu.Unlock()
	const callers = 8
	var wg sync.WaitGroup
	errs := make(chan error, callers)
	for range callers {
		wg.Go(func() { errs <- s.Sync() })
	}
	for {
		s.syncMu.Lock()
		n := s.syncWaiting
		s.syncMu.Unlock()
		if n == callers {
			break
		}
		time.Sleep(time.Millisecond)
	}
	before := s.fsyncs.Load()
	s.syncMu.Lock()
	s.syncing = false // the round ends without covering the callers' records
	s.syncCond.Broadcast()
	s.syncMu.Unlock()
	wg.Wait()
	close(errs)
	for err := range errs {
		must(t, err)
	}
	if n := s.fsyncs.Load() - before; n != 1 {
		t.Fatalf("%d waiting Syncs did %d fsyncs, want 1", callers, n)
	}
	must(t, s.Sync())
	if n := s.fsyncs.Load() - before; n != 1 {
		t.Fatalf("a Sync with nothing appended did an fsync (%d in all)", n)
	}
	appendTest(t, s, 3, 4)
	must(t, s.Sync())
	if n := s.fsyncs.Load() - before; n != 2 {
		t.Fatalf("a Sync after an Append did %d fsyncs, want 1", n-1)
	}
}

// TestAppendAllocs holds the hot path to 0 allocations.
func TestAppendAllocs(t *testing.T) {
	s, _ := open(t, t.TempDir(), Config{})
	defer s.Close()
	key, value := []byte("site-42:u-8f14e45fceea167a5a36dedd4bea2543"), bytes.Repeat([]byte("v"), 900)
	if n := testing.AllocsPerRun(200, func() {
		if err := s.Append(key, value); err != nil {
			t.Fatal(err)
		}
	}); n != 0 {
		t.Fatalf("Append allocates %.1f times per call", n)
	}
}

// TestOpenLeftovers: consumed segments left by a crash between the cursor
// write and their deletion are deleted, and a cursor whose segment is
// gone starts a new one after it.
func TestOpenLeftovers(t *testing.T) {
	dir := t.TempDir()
	cfg := Config{SegmentBytes: 1024}
	s, _ := open(t, dir, cfg)
	appendTest(t, s, 0, 40)
	_, pos := readN(t, s, 1000, 40)
	must(t, s.Commit(pos))
	must(t, s.Close())
	must(t, os.WriteFile(segFile(dir, pos.Segment-1), []byte("consumed"), 0o640))
	must(t, os.WriteFile(filepath.Join(dir, cursorTmpName), []byte("half"), 0o640))

	s, _ = open(t, dir, cfg)
	if ids := segFiles(t, dir); !slices.Equal(ids, []uint64{pos.Segment}) {
		t.Fatalf("segments after Open: %v, want only %d", ids, pos.Segment)
	}
	if _, err := os.Stat(filepath.Join(dir, cursorTmpName)); err == nil {
		t.Fatal("cursor.tmp left behind")
	}
	must(t, s.Close())

	must(t, os.Remove(segFile(dir, pos.Segment)))
	s, _ = open(t, dir, cfg)
	defer s.Close()
	if ids := segFiles(t, dir); len(ids) != 1 || ids[0] <= pos.Segment {
		t.Fatalf("segments after Open without the cursor's: %v", ids)
	}
	appendTest(t, s, 0, 3)
	got, _ := readN(t, s, 10, 3)
	if len(got) != 3 {
		t.Fatalf("read %d, want 3", len(got))
	}
}

func countFrames(t testing.TB, dir string, id uint64) int {
	t.Helper()
	f, err := os.Open(segFile(dir, id))
	must(t, err)
	defer f.Close()
	r := &segReader{f: f, id: id}
	size := fileSize(t, f.Name())
	n := 0
	for off := int64(0); off < size; n++ {
		_, _, _, next, err := r.frame(off, size)
		must(t, err)
		off = next
	}
	return n
}

func flipByte(t testing.TB, path string, off int64) {
	t.Helper()
	b, err := os.ReadFile(path)
	must(t, err)
	b[off] ^= 0x40
	must(t, os.WriteFile(path, b, 0o640))
}

func appendFile(t testing.TB, path string, b []byte) int64 {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	must(t, err)
	_, err = f.Write(b)
	must(t, err)
	must(t, f.Close())
	return int64(len(b))
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// TestAppendBatch: a batch is written with one pwrite per 256 KiB of
// frames, not one per record (why: AppendBatch's comment), and reads back
// like records appended one by one, in order, batches and single appends
// interleaved.
func TestAppendBatch(t *testing.T) {
	s, _ := open(t, t.TempDir(), Config{})
	defer s.Close()
	before := s.writes.Load()
	must(t, appendBatchTest(t, s, 0, 20))
	if n := s.writes.Load() - before; n != 1 {
		t.Fatalf("a batch of 20 records did %d writes, want 1", n)
	}
	appendTest(t, s, 20, 21)
	// About 1.2 MiB of frames: five writes of at most 256 KiB.
	before = s.writes.Load()
	big := make([]byte, 60<<10)
	must(t, s.AppendBatch(20, func(int) ([]byte, []byte) { return []byte("k"), big }))
	if n := s.writes.Load() - before; n < 4 || n > 5 {
		t.Fatalf("a batch of 1.2 MiB did %d writes, want 4 or 5 (at most 256 KiB each)", n)
	}
	if cap(s.wbuf) > 1<<20 {
		t.Fatalf("the frame buffer kept %d bytes after a large batch", cap(s.wbuf))
	}
	must(t, appendBatchTest(t, s, 21, 40))
	if st := s.Stats(); st.Records != 60 {
		t.Fatalf("Stats after 60 records: %+v", st)
	}
	got, _ := readN(t, s, 1000, 60)
	if len(got) != 60 {
		t.Fatalf("read %d records, want 60", len(got))
	}
	for i, r := range got[21:41] {
		if r.key != "k" || len(r.value) != len(big) {
			t.Fatalf("record %d of the large batch: key %q, %d-byte value", i, r.key, len(r.value))
		}
	}
	checkRecords(t, got[:21], 0)
	checkRecords(t, got[41:], 21)
}

// TestAppendBatchAllOrNone: a batch that does not fit, holds a record too
// large, or whose write fails after its first 256 KiB leaves the spool as
// it was; later appends work.
func TestAppendBatchAllOrNone(t *testing.T) {
	k, v := "key", strings.Repeat("x", 100)
	frame := frameBytes(k, v)
	s, _ := open(t, t.TempDir(), Config{MaxBytes: 10 * frame, SegmentBytes: 4 * frame})
	defer s.Close()
	recs := func(n int) (int, func(int) ([]byte, []byte)) {
		return n, func(int) ([]byte, []byte) { return []byte(k), []byte(v) }
	}
	must(t, s.AppendBatch(recs(7)))
	if err := s.AppendBatch(recs(4)); !errors.Is(err, ErrFull) || !strings.Contains(err.Error(), "4 records in") {
		t.Fatalf("a batch past MaxBytes = %v, want ErrFull naming 4 records", err)
	}
	if st := s.Stats(); st.Records != 7 || st.Bytes != 7*frame {
		t.Fatalf("a refused batch changed Stats: %+v", st)
	}
	huge := make([]byte, maxBody)
	err := s.AppendBatch(2, func(i int) ([]byte, []byte) {
		if i == 1 {
			return nil, huge
		}
		return []byte(k), []byte(v)
	})
	if !errors.Is(err, ErrTooLarge) {
		t.Fatalf("a batch with a %d-byte record = %v, want ErrTooLarge", len(huge), err)
	}
	must(t, s.AppendBatch(recs(3)))
	if st := s.Stats(); st.Records != 10 {
		t.Fatalf("Stats after 10 records: %+v", st)
	}
}
