//go:build !race

package shard

import "testing"

// AppendKey runs once per beacon, so it must not allocate when dst has room.
func TestAppendKeyDoesNotAllocate(t *testing.T) {
	k := mustNew(t, Config{Prefix: "query:sid"})
	e := ev("query:sid", "site7", "json:user_id", "user-42", "ip", "203.0.113.7")
	ipOnly := ev("ip", "203.0.113.7")
	dst := make([]byte, 0, DefaultMaxKeyBytes)
	var n int
	allocs := testing.AllocsPerRun(1000, func() {
		dst = k.AppendKey(dst[:0], e)
		n += len(dst)
		dst = k.AppendKey(dst[:0], ipOnly)
		n += len(dst)
	})
	if allocs != 0 {
		t.Errorf("AppendKey allocated %.1f times per run, want 0", allocs)
	}
	if want := 1001 * (len("site7:user-42") + len("203.0.113.7")); n != want {
		t.Errorf("total key bytes = %d, want %d", n, want)
	}
}
