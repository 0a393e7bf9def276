//go:build !race

package ingest

import (
	"net"
	"testing"

	"go.uber.org/zap"
)

// TestSegmentAllocs: a Segment request becomes records without a heap
// allocation once pools are warm, as beacongate's own endpoints do.
func TestSegmentAllocs(t *testing.T) {
	s, err := New(segmentConfig, &copySink{}, nil, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range segmentRequests {
		t.Run(c.name, func(t *testing.T) {
			r := newReplayer(s, net.IPv4(198, 51, 100, 7))
			run := func() {
				if st, err := r.serve(c.raw); err != nil || st != c.status {
					t.Fatalf("status %d (%v, %s), want %d", st, err, r.body(), c.status)
				}
			}
			if n := testing.AllocsPerRun(200, run); n != 0 {
				t.Fatalf("%s: %v allocations per request, want 0", c.name, n)
			}
		})
	}
}
