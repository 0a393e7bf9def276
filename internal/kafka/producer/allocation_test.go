//go:build !race

package producer_test

import (
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/beacongate/beacongate/internal/kafka/producer"
	"github.com/beacongate/beacongate/internal/kafkatest"
)

// TestDeliveryReportsDoNotAllocate: producing a record and handling its
// delivery report allocates nothing in Go, amortised over a run (the
// statistics and the flush allocate a little per run). Through the Go
// client's Events channel every report was a *kafka.Message with copies
// of the record's key and value: 8 allocations per record (events.go).
// testing.AllocsPerRun counts the allocations of every goroutine, the
// event loop's included.
func TestDeliveryReportsDoNotAllocate(t *testing.T) {
	b := startBroker(t, "beacons")
	p, err := producer.New(producer.Config{Brokers: b.Addr(), LatencySampleEvery: -1}, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	keys := kafkatest.UserKeys(1024)
	val := pixelRecord()
	if err := p.Produce(keys[0], val); err != nil { // connect first
		t.Fatal(err)
	}
	if left := p.Flush(10 * time.Second); left != 0 {
		t.Fatalf("%d records left", left)
	}
	const records = 5000
	delivered := p.Delivered()
	perRun := testing.AllocsPerRun(4, func() {
		for i := range records {
			if err := p.Produce(keys[i%len(keys)], val); err != nil {
				t.Fatalf("produce %d: %v", i, err)
			}
		}
		if left := p.Flush(10 * time.Second); left != 0 {
			t.Fatalf("%d records left", left)
		}
	})
	if got := p.Delivered() - delivered; got != 5*records { // AllocsPerRun runs once more to warm up
		t.Fatalf("%d records delivered, want %d: the reports were not handled", got, 5*records)
	}
	per := perRun / records
	t.Logf("%.3f allocations per record (%.0f per run of %d records)", per, perRun, records)
	if per > 0.5 {
		t.Fatalf("%.2f allocations per record produced and reported, want at most 0.5", per)
	}
}
