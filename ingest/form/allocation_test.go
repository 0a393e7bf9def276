//go:build !race

package form

import (
	"testing"

	"github.com/beacongate/beacongate/ingest/record"
)

// The hot path must not allocate once the caller's buffers have capacity.
func TestAllocations(t *testing.T) {
	raw := pixelQuery()
	dst := make([]record.Param, 0, 64)
	scratch := make([]byte, 0, 2*len(raw))
	if n := testing.AllocsPerRun(100, func() {
		ps, _, err := Parse(dst[:0], scratch[:0], raw, Limits{})
		if err != nil || len(ps) < 10 {
			t.Fatal(err, len(ps))
		}
	}); n != 0 {
		t.Errorf("Parse: %v allocs/run, want 0", n)
	}
	ps, _, _ := Parse(dst[:0], scratch[:0], raw, Limits{})
	if n := testing.AllocsPerRun(100, func() {
		if Get(ps, "ev") == nil || Get(ps, "absent") != nil {
			t.Fatal("Get")
		}
	}); n != 0 {
		t.Errorf("Get: %v allocs/run, want 0", n)
	}
}
