//go:build !race

package ingest

import (
	"net"
	"testing"

	"go.uber.org/zap"

	"github.com/beacongate/beacongate/shard"
)

// TestHotPathAllocsHotKeys is TestHotPathAllocs with the hot-key valve
// on and the key hot: a record still costs no allocation, whether it
// overflows or not.
func TestHotPathAllocsHotKeys(t *testing.T) {
	sink := &spreadSink{}
	s, err := New(Config{Shard: shard.Config{HotKeyRate: 1, HotKeyBurst: 1}}, sink, nil, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range benchRequests {
		t.Run(c.name, func(t *testing.T) {
			r := newReplayer(s, net.IPv4(198, 51, 100, 7))
			run := func() {
				if st, err := r.serve(c.raw); err != nil || st != c.status {
					t.Fatalf("status %d (%v, %s), want %d", st, err, r.body(), c.status)
				}
			}
			run() // the "became hot" log line allocates, once per key
			before := sink.overflow.Load()
			if n := testing.AllocsPerRun(200, run); n != 0 {
				t.Fatalf("%s: %v allocations per request, want 0", c.name, n)
			}
			if got := sink.overflow.Load() - before; got < 200*int64(c.events)-1 {
				t.Fatalf("%s: %d records overflowed in 201 requests of %d events, want all but at most one", c.name, got, c.events)
			}
		})
	}
}
