//go:build !race

// The race detector's instrumentation allocates, so this runs without it.

package record_test

import (
	"testing"

	"github.com/beacongate/beacongate/ingest/record"
)

// TestAppendDoesNotAllocate holds Append to its promise: no allocation per
// event when the buffer has room, for valid and for invalid UTF-8.
func TestAppendDoesNotAllocate(t *testing.T) {
	invalid := pixel()
	invalid.UserAgent = []byte("Mozilla/5.0 \xff\xfe (bad\xc3(")
	invalid.Params[3].Value = []byte("page\xed\xa0\x80view")
	invalid.Params[4].Name = []byte("u\xffrl")
	invalid.ShardKey = []byte("site-42:\xff")
	json := jsonBeacon()

	for name, b := range map[string]*record.Beacon{"pixel": pixel(), "invalid utf8": invalid, "json": json} {
		buf := make([]byte, 0, len(record.Append(nil, b)))
		allocs := testing.AllocsPerRun(100, func() {
			buf = record.Append(buf[:0], b)
		})
		if allocs != 0 {
			t.Errorf("%s: Append allocated %v times per run, want 0", name, allocs)
		}
	}
}
