package spool

import (
	"bytes"
	"errors"
	"sync"
	"testing"
	"time"
)

// A typical spooled record: a shard key and a ~900-byte Beacon.
var (
	benchKey   = []byte("site-42:u-8f14e45fceea167a5a36dedd4bea2543")
	benchValue = bytes.Repeat([]byte{0x5a}, 900)
)

// skipToTail consumes everything without reading it, the cheapest way to
// make room in a benchmark: only the cursor write and the unlinks.
func skipToTail(s *Spool) error {
	s.rmu.Lock()
	s.mu.Lock()
	last := s.segs[len(s.segs)-1]
	s.rpos, s.ridx = Pos{Segment: last.id, Offset: last.size}, last.records
	pos := s.rpos
	s.mu.Unlock()
	s.rmu.Unlock()
	return s.Commit(pos)
}

// BenchmarkAppend is the cost of spooling one record on the request path
// (page cache, no fsync), from parallel handlers. When MaxBytes is
// reached the spool is emptied (rarely: once per 256 MiB), so the
// benchmark's disk use stays bounded.
func BenchmarkAppend(b *testing.B) {
	s, _ := open(b, b.TempDir(), Config{MaxBytes: 256 << 20, SegmentBytes: 64 << 20})
	defer s.Close()
	var drain sync.Mutex
	b.ReportAllocs()
	b.SetBytes(frameBytes(string(benchKey), string(benchValue)))
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			err := s.Append(benchKey, benchValue)
			if errors.Is(err, ErrFull) {
				drain.Lock()
				if s.Stats().Bytes > 128<<20 {
					err = skipToTail(s)
				}
				drain.Unlock()
				if err == nil || errors.Is(err, ErrFull) {
					err = s.Append(benchKey, benchValue)
				}
			}
			if err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkRead is the replayer's cost per record (page cache, CRC check,
// BenchmarkAppendBatch is the cost of spooling a request's batch of 20
// server events of ~2 KB (the seed 001 shape) with one AppendBatch, per
// record; the per-record sub-benchmark appends the same records one
// Append at a time, as the relay did before AppendBatch.
func BenchmarkAppendBatch(b *testing.B) {
	value := bytes.Repeat([]byte{0x5a}, 2048)
	for _, mode := range []string{"batch", "per-record"} {
		b.Run(mode, func(b *testing.B) {
			s, _ := open(b, b.TempDir(), Config{MaxBytes: 256 << 20, SegmentBytes: 64 << 20})
			defer s.Close()
			b.ReportAllocs()
			b.SetBytes(frameBytes(string(benchKey), string(value)))
			const batch = 20
			for i := 0; i < b.N; i += batch {
				var err error
				if mode == "batch" {
					err = s.AppendBatch(batch, func(int) ([]byte, []byte) { return benchKey, value })
				} else {
					for range batch {
						if err = s.Append(benchKey, value); err != nil {
							break
						}
					}
				}
				if errors.Is(err, ErrFull) {
					err = skipToTail(s)
				}
				if err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// the callback), over 64 MiB of records read again and again.
func BenchmarkRead(b *testing.B) {
	s, _ := open(b, b.TempDir(), Config{MaxBytes: 128 << 20, SegmentBytes: 16 << 20})
	defer s.Close()
	frame := frameBytes(string(benchKey), string(benchValue))
	for range (64 << 20) / frame {
		if err := s.Append(benchKey, benchValue); err != nil {
			b.Fatal(err)
		}
	}
	var sum int
	fn := func(k, v []byte, _ time.Time) error { sum += len(k) + len(v); return nil }
	b.ReportAllocs()
	b.SetBytes(frame)
	b.ResetTimer()
	for left := b.N; left > 0; {
		_, n, err := s.Read(min(left, 1000), fn)
		if err != nil {
			b.Fatal(err)
		}
		if n == 0 {
			s.Rewind()
			continue
		}
		left -= n
	}
	if sum == 0 {
		b.Fatal("nothing read")
	}
}

// BenchmarkSync is the cost of making one appended record durable:
// serial (one fsync per op) and from 16 goroutines, where group commit
// shares fsyncs (see fsyncs/op).
func BenchmarkSync(b *testing.B) {
	op := func(s *Spool) error {
		if err := s.Append(benchKey, benchValue); err != nil {
			return err
		}
		return s.Sync()
	}
	b.Run("serial", func(b *testing.B) {
		s, _ := open(b, b.TempDir(), Config{})
		defer s.Close()
		b.ReportAllocs()
		for b.Loop() {
			if err := op(s); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("parallel16", func(b *testing.B) {
		s, _ := open(b, b.TempDir(), Config{})
		defer s.Close()
		before := s.fsyncs.Load()
		b.ReportAllocs()
		b.SetParallelism(8) // 8 × GOMAXPROCS goroutines
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if err := op(s); err != nil {
					b.Error(err)
					return
				}
			}
		})
		b.ReportMetric(float64(s.fsyncs.Load()-before)/float64(b.N), "fsyncs/op")
	})
}

// BenchmarkCommit is the cost of one Commit (the cursor's two fsyncs),
// which the replayer pays per batch.
func BenchmarkCommit(b *testing.B) {
	s, _ := open(b, b.TempDir(), Config{})
	defer s.Close()
	b.ReportAllocs()
	for b.Loop() {
		if err := s.Append(benchKey, benchValue); err != nil {
			b.Fatal(err)
		}
		pos, n, err := s.Read(1, func(_, _ []byte, _ time.Time) error { return nil })
		if n != 1 || err != nil {
			b.Fatal(n, err)
		}
		if err := s.Commit(pos); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkOpen is the start-up cost of recovering a spool: every frame
// of 64 MiB (page cache warm) is read and CRC-checked. Scale by the spool
// size to estimate a restart with a full spool.
func BenchmarkOpen(b *testing.B) {
	dir := b.TempDir()
	s, _ := open(b, dir, Config{MaxBytes: 128 << 20, SegmentBytes: 16 << 20})
	frame := frameBytes(string(benchKey), string(benchValue))
	for range (64 << 20) / frame {
		if err := s.Append(benchKey, benchValue); err != nil {
			b.Fatal(err)
		}
	}
	size := s.Stats().Bytes
	if err := s.Close(); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(size)
	b.ReportAllocs()
	for b.Loop() {
		s, err := Open(Config{Dir: dir, MaxBytes: 128 << 20, SegmentBytes: 16 << 20}, nil)
		if err != nil {
			b.Fatal(err)
		}
		if s.Stats().Bytes != size {
			b.Fatalf("reopened with %+v, want %d bytes", s.Stats(), size)
		}
		s.Close()
	}
}
