package kafka

import (
	"net"
	"path/filepath"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/beacongate/beacongate/internal/kafka/delivery"
	"github.com/beacongate/beacongate/internal/kafka/producer"
	"github.com/beacongate/beacongate/internal/kafka/relay"
	"github.com/beacongate/beacongate/internal/kafka/spool"
)

// A failed start closes the Kafka side with Close. Records librdkafka
// holds then (here: produced during the start grace to a broker that is
// not there) must go back into the spool, not be counted and logged as
// lost.
func TestCloseAfterFailedStartKeepsRecordsInTheSpool(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	deadAddr := ln.Addr().String()
	ln.Close() // nothing listens there: librdkafka keeps the records queued

	dir := t.TempDir()
	side, err := Open(Config{
		Producer: producer.Config{Brokers: deadAddr, Topic: "beacons"},
		Spool:    spool.Config{Dir: dir},
		Relay:    relay.Config{StartGrace: time.Minute},
	}, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"a", "b"} {
		if err := side.Relay.Produce([]byte(k), []byte("value-"+k)); err != nil {
			t.Fatal(err)
		}
	}
	// The fault: both records are in librdkafka's memory, not on disk.
	if n := side.Producer.Outstanding(); n != 2 {
		t.Fatalf("records in the producer before Close: %d, want 2", n)
	}
	lostBefore := delivery.Lost()
	side.Close()
	if d := delivery.Lost() - lostBefore; d != 0 {
		t.Errorf("Close counted %d records lost; they were handed back to the spool", d)
	}
	kept, err := spool.Inspect(filepath.Join(dir, "kept"), nil)
	if err != nil {
		t.Fatal(err)
	}
	main, err := spool.Inspect(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := kept.Records + main.Records; got != 2 {
		t.Errorf("records in the spool after Close: %d (kept %d, main %d), want 2", got, kept.Records, main.Records)
	}
}
