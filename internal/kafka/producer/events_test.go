package producer_test

import (
	"errors"
	"testing"
	"time"

	"github.com/confluentinc/confluent-kafka-go/v2/kafka"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/beacongate/beacongate/internal/kafka/delivery"
	"github.com/beacongate/beacongate/internal/kafka/producer"
	"github.com/beacongate/beacongate/internal/kafkatest"
	"github.com/beacongate/beacongate/internal/status"
)

// TestReportThroughGoClient: a delivery report the Go client's poller
// took in the instant New hands librdkafka's main queue over (events.go)
// is still handled: a delivered record leaves the books and counts as
// delivered, a failed one goes to the failure handler with its bytes,
// and the event loop logs both.
func TestReportThroughGoClient(t *testing.T) {
	b := startBroker(t, "beacons")
	core, logs := observer.New(zap.DebugLevel)
	p, err := producer.New(producer.Config{Brokers: b.Addr()}, zap.New(core))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	kept := make(chan string, 1)
	p.SetFailureHandler(func(key, value []byte, f *delivery.Failure) error {
		kept <- string(key) + "=" + string(value)
		return nil
	})
	topic := "beacons"
	delivered := p.Delivered()
	producer.InjectGoEvent(p, &kafka.Message{TopicPartition: kafka.TopicPartition{Topic: &topic}, Key: []byte("k1"), Value: []byte("v1")})
	producer.InjectGoEvent(p, &kafka.Message{TopicPartition: kafka.TopicPartition{Topic: &topic,
		Error: kafka.NewError(kafka.ErrMsgTimedOut, "", false)}, Key: []byte("k2"), Value: []byte("v2")})
	kafkatest.WaitFor(t, "both reports handled", 10*time.Second, func() bool { return p.Outstanding() == 0 })
	if got := p.Delivered() - delivered; got != 1 {
		t.Fatalf("%d records counted delivered, want 1", got)
	}
	select {
	case r := <-kept:
		if r != "k2=v2" {
			t.Fatalf("failure handler got %q, want k2=v2", r)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the failed record never reached the failure handler")
	}
	if n := logs.FilterMessageSnippet("came through the Go client's poller").Len(); n != 2 {
		t.Fatalf("%d log lines about reports through the Go client's poller, want 2", n)
	}
}

// TestProduceAfterClose: a record produced once Close has begun is
// refused with a 503, not handed to a librdkafka handle being destroyed.
func TestProduceAfterClose(t *testing.T) {
	b := startBroker(t, "beacons")
	p, err := producer.New(producer.Config{Brokers: b.Addr()}, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	p.Close()
	err = p.Produce([]byte("k"), []byte("v"))
	var se *status.Error
	if !errors.As(err, &se) || se.HTTPStatus() != 503 {
		t.Fatalf("Produce after Close = %v, want a 503", err)
	}
	if err := p.ProduceTracked([]byte("k"), []byte("v"), &tracker{done: make(chan error, 1)}); err == nil {
		t.Fatal("ProduceTracked after Close succeeded")
	}
	// An acknowledged request's record is refused before it is counted
	// for the flush thread, whose memory Close freed (urgent.go).
	ack := delivery.NewAck(0)
	ack.Add(1)
	if err := p.ProduceTracked([]byte("k"), []byte("v"), ack); !errors.As(err, &se) || se.HTTPStatus() != 503 {
		t.Fatalf("acknowledged ProduceTracked after Close = %v, want a 503", err)
	}
	if n := p.Outstanding(); n != 0 {
		t.Fatalf("Outstanding after refused records = %d", n)
	}
}
