//go:build !race

package shard

import (
	"testing"
	"time"
)

// Overflow runs once per record when the valve is on: no allocation,
// neither for a hot key's overflow nor for a quiet key.
func TestHotKeysDoNotAllocate(t *testing.T) {
	h, _ := newHot(t, 10, 1)
	hot, quiet := []byte("crawler"), []byte("user-1")
	now := time.Now().UnixNano()
	qnow := now
	h.Overflow(hot, now) // the burst
	h.Overflow(hot, now) // listed as hot (the log line allocates, once)
	var over int
	allocs := testing.AllocsPerRun(1000, func() {
		now += int64(time.Millisecond)
		if h.Overflow(hot, now) {
			over++
		}
		qnow += int64(200 * time.Millisecond) // 5/s, below the rate
		if h.Overflow(quiet, qnow) {
			over += 1 << 20
		}
	})
	if allocs != 0 {
		t.Fatalf("Overflow allocated %.1f times per run, want 0", allocs)
	}
	// 1001 runs of 1ms at 10/s: about 10 conform, the rest overflow;
	// the quiet key never does.
	if over < 989 || over > 993 {
		t.Fatalf("%d records overflowed, want about 991", over)
	}
}
