package shard

import (
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
)

func BenchmarkMurmur2(b *testing.B) {
	for _, n := range []int{8, 36, 256} {
		key := []byte(strings.Repeat("0123456789abcdef", 16)[:n])
		want := Murmur2(key)
		b.Run(fmt.Sprintf("%dB", n), func(b *testing.B) {
			b.SetBytes(int64(n))
			b.ReportAllocs()
			var sink int32
			for b.Loop() {
				sink ^= Murmur2(key) ^ want
			}
			if sink != 0 {
				b.Fatalf("Murmur2 result changed during the run")
			}
		})
	}
}

func BenchmarkAppendKey(b *testing.B) {
	k := mustNew(b, Config{Prefix: "query:sid"})
	const want int64 = int64(len("site7:3f2504e0-4f89-11d3-9a0c-0305e82c3301"))
	var total, iters atomic.Int64
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		e := ev("query:sid", "site7", "json:anonymous_id", "3f2504e0-4f89-11d3-9a0c-0305e82c3301", "ip", "203.0.113.7")
		dst := make([]byte, 0, DefaultMaxKeyBytes)
		var n, i int64
		for pb.Next() {
			dst = k.AppendKey(dst[:0], e)
			n += int64(len(dst))
			i++
		}
		total.Add(n)
		iters.Add(i)
	})
	if total.Load() != iters.Load()*want {
		b.Fatalf("key bytes = %d over %d calls, want %d each", total.Load(), iters.Load(), want)
	}
}
