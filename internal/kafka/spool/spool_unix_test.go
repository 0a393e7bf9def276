//go:build unix

package spool

import (
	"errors"
	"syscall"
	"testing"
)

// TestAppendBatchFailsMidway: the file size limit (RLIMIT_FSIZE) lets the
// first 256 KiB write of a batch through and fails the second (EFBIG);
// the first write is cut back, so no record of the batch is read, and the
// next batch goes where it would have. The limit is the whole process's:
// no test of this package runs in parallel.
func TestAppendBatchFailsMidway(t *testing.T) {
	s, _ := open(t, t.TempDir(), Config{})
	defer s.Close()
	must(t, appendBatchTest(t, s, 0, 10))
	s.mu.Lock()
	end := s.segs[len(s.segs)-1].size
	s.mu.Unlock()

	var old syscall.Rlimit
	must(t, syscall.Getrlimit(syscall.RLIMIT_FSIZE, &old))
	lim := old
	lim.Cur = uint64(end) + 300<<10
	if lim.Cur > old.Max { // RLIM_INFINITY is the largest value
		t.Skipf("RLIMIT_FSIZE hard limit %d is too low", old.Max)
	}
	must(t, syscall.Setrlimit(syscall.RLIMIT_FSIZE, &lim))
	before := s.writes.Load()
	big := make([]byte, 30<<10)
	err := s.AppendBatch(20, func(int) ([]byte, []byte) { return nil, big }) // ~600 KiB
	must(t, syscall.Setrlimit(syscall.RLIMIT_FSIZE, &old))
	if !errors.Is(err, syscall.EFBIG) {
		t.Fatalf("a batch past RLIMIT_FSIZE = %v, want EFBIG", err)
	}
	if n := s.writes.Load() - before; n != 2 {
		t.Fatalf("the failed batch did %d writes, want 2 (the first succeeds)", n)
	}
	if st := s.Stats(); st.Records != 10 {
		t.Fatalf("a failed batch changed Stats: %+v", st)
	}
	must(t, appendBatchTest(t, s, 10, 30))
	got, _ := readN(t, s, 1000, 30)
	if len(got) != 30 || s.Corrupt() != 0 {
		t.Fatalf("read %d records (want 30), Corrupt %d", len(got), s.Corrupt())
	}
	checkRecords(t, got, 0)
}
