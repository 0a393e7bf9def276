// Package delivery is what the HTTP side and the Kafka side share about a
// record's fate, without cgo: the Tracker told what became of a record,
// the Failure that says whether Kafka could take it later, the Ack an
// acknowledged-mode request waits on, and the descriptions of dead
// letters. The producer (cgo) and the relay and ingest packages (no cgo)
// all name these types, so none of them imports another for them.
package delivery

import (
	"fmt"
	"net/http"
	"time"
)

// Record is one encoded record and its shard key.
type Record struct {
	Key, Value []byte
	// Overflow marks a hot key's record above its rate, spread over the
	// partitions instead of going to its key's (docs/hotkeys.md).
	Overflow bool
}

// Header is a Kafka record header.
type Header struct {
	Key   string
	Value []byte
}

// Tracker is told, once, what became of one record: nil once Kafka
// acknowledged it or it was kept safely on disk, else why not. It is
// called from the producer's event loop and must not block.
type Tracker interface {
	Delivered(err error)
}

// FailureOwner is a Tracker that handles its records' failures itself
// (the spool replayer, which must not have them re-spooled behind later
// records): the producer gives it the failed record instead of calling
// the failure handler. Failed replaces Delivered for that record.
type FailureOwner interface {
	Tracker
	Failed(key, value []byte, f *Failure)
}

// Class says whether Kafka could take a failed record later.
type Class uint8

const (
	// Retriable failures (a timeout, a purge at shutdown, a broker or
	// topic that is not available) are kept and retried in order.
	Retriable Class = iota
	// Permanent failures (the record is too large for the topic, or the
	// broker refuses it as invalid) never succeed however often they are
	// retried: the record goes to the dead-letter topic or the
	// quarantine, and the records behind it go on.
	Permanent
)

func (c Class) String() string {
	if c == Permanent {
		return "permanent"
	}
	return "retriable"
}

// Failure is why Kafka did not take a record.
type Failure struct {
	// Code is librdkafka's name of the error code, e.g. "MSG_TIMED_OUT"
	// (the label of the failure counters).
	Code  string
	Class Class
	// Err is the client's error.
	Err error
}

func (f *Failure) Error() string {
	return fmt.Sprintf("kafka did not take the record (%s, %s): %v", f.Code, f.Class, f.Err)
}

func (f *Failure) Unwrap() error { return f.Err }

// HTTPStatus maps the failure for an acknowledged-mode request: a
// permanent one is the record's fault (413 for a size, else 422), a
// retriable one is worth retrying (503).
func (f *Failure) HTTPStatus() int {
	switch {
	case f.Class == Retriable:
		return http.StatusServiceUnavailable
	case f.Code == "MSG_SIZE_TOO_LARGE" || f.Code == "RECORD_LIST_TOO_LARGE":
		return http.StatusRequestEntityTooLarge
	}
	return http.StatusUnprocessableEntity
}

// Reason is the snake_case reason of the HTTP answer and the dead letter.
func (f *Failure) Reason() string {
	if f.Class == Retriable {
		return "kafka_failed"
	}
	return "kafka_rejected"
}

// RetryAfter asks a client to wait before retrying a retriable failure.
func (f *Failure) RetryAfter() time.Duration {
	if f.Class == Retriable {
		return time.Second
	}
	return 0
}
