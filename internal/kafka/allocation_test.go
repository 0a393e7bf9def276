//go:build !race

package kafka

import (
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/beacongate/beacongate/internal/kafka/embedded"
	"github.com/beacongate/beacongate/internal/kafka/producer"
	"github.com/beacongate/beacongate/internal/kafka/relay"
	"github.com/beacongate/beacongate/internal/kafka/spool"
	"github.com/beacongate/beacongate/internal/kafkatest"
)

// TestRelayToKafkaDoesNotAllocate: a record handed to the Kafka side as
// the server builds it (a spool behind the relay, the real producer, a
// broker) allocates nothing per record, its delivery report included,
// amortised over a run. The handler's allocation tests stop at the Sink;
// the producer's has no relay in front. Only this path has the spool's
// checks on every record: an error check there once took the address of
// a local for errors.As, which moved it to the heap on every call, even
// for the nil error of a record that went straight to Kafka.
// testing.AllocsPerRun counts every goroutine's allocations (the event
// loop's and the in-process broker's too), so the bound is per record
// over a run, not zero.
func TestRelayToKafkaDoesNotAllocate(t *testing.T) {
	b, err := embedded.Start(embedded.Config{Listen: "127.0.0.1:0", Partitions: 4, Topics: []string{"beacons"}}, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	side, err := Open(Config{
		Producer: producer.Config{Brokers: b.Addr(), Topic: "beacons", LatencySampleEvery: -1},
		Spool:    spool.Config{Dir: t.TempDir()},
		Relay:    relay.Config{},
	}, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	defer side.Close()
	keys := kafkatest.UserKeys(1024)
	val := make([]byte, 800)
	for i := range val {
		val[i] = byte('a' + i%26)
	}
	if err := side.Relay.Produce(keys[0], val); err != nil { // connect first
		t.Fatal(err)
	}
	if left := side.Producer.Flush(10 * time.Second); left != 0 {
		t.Fatalf("%d records left", left)
	}
	const records = 5000
	delivered, spooled := side.Producer.Delivered(), side.Relay.NewAck().Mark()
	perRun := testing.AllocsPerRun(4, func() {
		for i := range records {
			if err := side.Relay.Produce(keys[i%len(keys)], val); err != nil {
				t.Fatalf("produce %d: %v", i, err)
			}
		}
		if left := side.Producer.Flush(10 * time.Second); left != 0 {
			t.Fatalf("%d records left", left)
		}
	})
	// AllocsPerRun runs the function once more to warm up.
	if got := side.Producer.Delivered() - delivered; got != 5*records {
		t.Fatalf("%d records delivered, want %d", got, 5*records)
	}
	if n := side.Relay.NewAck().Mark() - spooled; n != 0 {
		t.Fatalf("%d records went to the spool; the test is of the direct path", n)
	}
	per := perRun / records
	t.Logf("%.3f allocations per record through the relay and the producer (%.0f per run of %d)", per, perRun, records)
	if per > 0.5 {
		t.Fatalf("%.2f allocations per record through the relay and the producer, want at most 0.5", per)
	}
}
