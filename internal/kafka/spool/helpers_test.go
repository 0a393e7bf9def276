package spool

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
)

// rec is a record as the tests see it.
type rec struct {
	key, value string
	t          time.Time
}

// open opens dir with cfg (Dir filled in) and a log the test can search.
func open(t testing.TB, dir string, cfg Config) (*Spool, *observer.ObservedLogs) {
	t.Helper()
	core, logs := observer.New(zap.DebugLevel)
	cfg.Dir = dir
	s, err := Open(cfg, zap.New(core))
	if err != nil {
		t.Fatalf("Open(%s): %v", dir, err)
	}
	return s, logs
}

// crash abandons s the way a killed process does: file descriptors and the
// lock are released, nothing is synced or written.
func crash(s *Spool) {
	s.rmu.Lock()
	defer s.rmu.Unlock()
	s.closeFiles()
}

// fakeClock makes append times distinct and predictable: each call is one
// millisecond after the previous one.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{t: time.UnixMicro(1_767_225_600_000_000)} }

func (c *fakeClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(time.Millisecond)
	return c.t
}

// readN reads until it has want records or a Read returns none, failing
// the test after too many Reads (an infinite loop would be a bug).
func readN(t testing.TB, s *Spool, max, want int) ([]rec, Pos) {
	t.Helper()
	var got []rec
	var pos Pos
	for i := 0; len(got) < want; i++ {
		if i > want+1000 {
			t.Fatalf("%d Reads for %d records: the reader does not progress", i, want)
		}
		p, n, err := s.Read(max, func(k, v []byte, at time.Time) error {
			got = append(got, rec{string(k), string(v), at})
			return nil
		})
		if err != nil {
			t.Fatalf("Read: %v", err)
		}
		if n > max {
			t.Fatalf("Read(%d) returned %d records", max, n)
		}
		if p.less(pos) {
			t.Fatalf("Read returned %v, before the previous %v", p, pos)
		}
		pos = p
		if n == 0 {
			break
		}
	}
	return got, pos
}

// segFiles returns the segment ids on disk.
func segFiles(t testing.TB, dir string) []uint64 {
	t.Helper()
	ids, err := listSegments(dir)
	if err != nil {
		t.Fatal(err)
	}
	return ids
}

func segFile(dir string, id uint64) string { return filepath.Join(dir, segName(id)) }

// frameBytes is the on-disk size of a record.
func frameBytes(key, value string) int64 { return frameSize(len(key), len(value)) }

// testRecord is record i of a test sequence: nil, empty and varied keys,
// values of varied sizes.
func testRecord(i int) (key, value string) {
	switch i % 7 {
	case 0:
		key = "" // appended as nil
	case 1:
		key = "" // appended as empty
	default:
		key = fmt.Sprintf("user-%d", i%97)
	}
	pad := make([]byte, (i*31)%300)
	for j := range pad {
		pad[j] = byte('a' + (i+j)%26)
	}
	return key, fmt.Sprintf("v%06d:", i) + string(pad)
}

func appendTest(t testing.TB, s *Spool, from, to int) int64 {
	t.Helper()
	var bytes int64
	for i := from; i < to; i++ {
		k, v := testRecord(i)
		var kb []byte
		if i%7 != 0 {
			kb = []byte(k)
		}
		if err := s.Append(kb, []byte(v)); err != nil {
			t.Fatalf("Append(%d): %v", i, err)
		}
		bytes += frameBytes(k, v)
	}
	return bytes
}

// checkRecords checks that got is records from..from+len(got) in order.
func checkRecords(t testing.TB, got []rec, from int) {
	t.Helper()
	for j, r := range got {
		k, v := testRecord(from + j)
		if r.key != k || r.value != v {
			t.Fatalf("record %d: got key %q value %.20q…, want record %d (key %q value %.20q…)", from+j, r.key, r.value, from+j, k, v)
		}
	}
}

func fileSize(t testing.TB, path string) int64 {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}

func lastSeg(t testing.TB, dir string) uint64 {
	t.Helper()
	ids := segFiles(t, dir)
	if len(ids) == 0 {
		t.Fatal("no segment files")
	}
	return slices.Max(ids)
}

// appendBatchTest appends records from..to-1 of the test sequence as one
// batch.
func appendBatchTest(t testing.TB, s *Spool, from, to int) error {
	t.Helper()
	return s.AppendBatch(to-from, func(i int) ([]byte, []byte) {
		k, v := testRecord(from + i)
		var key []byte
		if (from+i)%7 != 0 { // as appendTest: nil and empty keys
			key = []byte(k)
		}
		return key, []byte(v)
	})
}
