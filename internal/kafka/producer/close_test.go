package producer_test

import (
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/beacongate/beacongate/internal/kafka/producer"
)

// TestCloseWaitsForTopicLookup: Close must not destroy librdkafka's handle
// while the topic lookup may still call into it. A lookup that passed the
// Go client's closed check and then called rd_kafka_metadata on a handle
// destroyed meanwhile crashed the process (SIGSEGV, seen under -race on a
// loaded machine). Here a lookup is held at its start until Close has
// begun, then held a second more, which is ample time for a Close that
// does not wait to destroy the handle; the lookup must find it open.
func TestCloseWaitsForTopicLookup(t *testing.T) {
	b := startBroker(t, "beacons")
	const topic = "missing-at-close"
	entered, checked := make(chan struct{}, 1), make(chan struct{})
	var overlapped, sawClosed atomic.Bool
	defer producer.SetLookupHook(topic, func(p *producer.Producer) {
		select {
		case entered <- struct{}{}:
		default:
		}
		select {
		case <-producer.Stopping(p):
			overlapped.Store(true)
			time.Sleep(time.Second)
			if producer.HandleClosed(p) {
				sawClosed.Store(true)
			}
			close(checked)
		case <-time.After(10 * time.Second):
		}
	})()
	p, err := producer.New(producer.Config{Brokers: b.Addr(), Topic: topic}, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-entered:
	case <-time.After(10 * time.Second):
		t.Fatal("no topic lookup started")
	}
	p.Close()
	select {
	case <-checked:
	case <-time.After(10 * time.Second):
	}
	if !overlapped.Load() {
		t.Fatal("the lookup did not overlap Close: the test proves nothing")
	}
	if sawClosed.Load() {
		t.Fatal("Close destroyed librdkafka's handle while a topic lookup was about to call into it")
	}
}
