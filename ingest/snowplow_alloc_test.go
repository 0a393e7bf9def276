//go:build !race

package ingest

import (
	"net"
	"testing"

	"go.uber.org/zap"
)

// TestSnowplowAllocs: a tracker's GET and a tp2 POST become records
// without a heap allocation once pools are warm, as every hot path.
func TestSnowplowAllocs(t *testing.T) {
	s, err := New(Config{IdentityCookie: "sp"}, &copySink{}, nil, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range spBenchRequests {
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
