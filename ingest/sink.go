package ingest

import (
	"time"

	"github.com/beacongate/beacongate/internal/kafka/delivery"
)

// Sink takes encoded records. The relay implements it (and BatchSink,
// AckSink, DeadLetterSink); tests use small fakes.
type Sink interface {
	// Produce enqueues one record without blocking. key and value are
	// copied before it returns, so the caller may reuse them at once.
	// A nil key means no key. Errors that should reach the client carry
	// their HTTP status (see StatusError).
	Produce(key, value []byte) error
}

// AckSink is a Sink with acknowledged mode (package relay implements it).
type AckSink interface {
	Sink
	NewAck() *delivery.Ack
	ProduceAcked(key, value []byte, a *delivery.Ack) error
	WaitAcked(a *delivery.Ack, timeout time.Duration) error
}

// BatchSink takes a batch's records all or none, so a batch is refused
// whole (503) rather than half-accepted when it cannot fit: a client
// retrying a half-accepted batch would duplicate events.
type BatchSink interface {
	// Admit refuses a record Kafka could never take (413), before the
	// batch is produced.
	Admit(key, value []byte) error
	// ProduceBatch takes every record or none and returns how many it
	// took (on error, the records after those failed with it). a is the
	// acknowledged-mode wait, or nil.
	ProduceBatch(recs []delivery.Record, a *delivery.Ack) (int, error)
}

// DeadLetterSink takes events that could not become a record.
type DeadLetterSink interface {
	DeadLetter(raw []byte, dl delivery.DeadLetter)
}
