package producer

import (
	"errors"
	"strconv"
	"time"

	"github.com/confluentinc/confluent-kafka-go/v2/kafka"
	"go.uber.org/zap"

	"github.com/beacongate/beacongate/internal/kafka/delivery"
)

// permanent are the error codes with which Kafka refuses a record itself,
// however often it is sent: it must leave the retry path (dead letters or
// quarantine) or it blocks every record behind it. Everything else (a
// timeout, a purge, an unavailable broker, partition or topic, missing
// authorization) is retriable: the record is kept and sent again, in
// order, once the cause is gone.
var permanent = map[kafka.ErrorCode]string{
	kafka.ErrMsgSizeTooLarge:     "MSG_SIZE_TOO_LARGE",
	kafka.ErrRecordListTooLarge:  "RECORD_LIST_TOO_LARGE",
	kafka.ErrInvalidRecord:       "INVALID_RECORD",
	kafka.ErrInvalidTimestamp:    "INVALID_TIMESTAMP",
	kafka.ErrPolicyViolation:     "POLICY_VIOLATION",
	kafka.ErrInvalidRequiredAcks: "INVALID_REQUIRED_ACKS",
}

// topicLevel are retriable codes that fail every record of the topic, not
// one: the producer reports itself not ready (so new records go to the
// spool) and the replayer backs off, instead of cycling records through
// the spool as fast as Kafka refuses them.
var topicLevel = map[kafka.ErrorCode]string{
	kafka.ErrTopicAuthorizationFailed:   "TOPIC_AUTHORIZATION_FAILED",
	kafka.ErrClusterAuthorizationFailed: "CLUSTER_AUTHORIZATION_FAILED",
	kafka.ErrUnknownTopicOrPart:         "UNKNOWN_TOPIC_OR_PART",
	kafka.ErrUnknownTopic:               "_UNKNOWN_TOPIC",
	kafka.ErrUnknownPartition:           "_UNKNOWN_PARTITION",
}

// names of other common codes, for logs and the Failure's Code.
var names = map[kafka.ErrorCode]string{
	kafka.ErrMsgTimedOut:              "_MSG_TIMED_OUT",
	kafka.ErrTimedOut:                 "_TIMED_OUT",
	kafka.ErrPurgeQueue:               "_PURGE_QUEUE",
	kafka.ErrPurgeInflight:            "_PURGE_INFLIGHT",
	kafka.ErrTransport:                "_TRANSPORT",
	kafka.ErrAllBrokersDown:           "_ALL_BROKERS_DOWN",
	kafka.ErrFatal:                    "_FATAL",
	kafka.ErrNotEnoughReplicas:        "NOT_ENOUGH_REPLICAS",
	kafka.ErrNotLeaderForPartition:    "NOT_LEADER_FOR_PARTITION",
	kafka.ErrRequestTimedOut:          "REQUEST_TIMED_OUT",
	kafka.ErrOutOfOrderSequenceNumber: "OUT_OF_ORDER_SEQUENCE_NUMBER",
	kafka.ErrUnknownProducerID:        "UNKNOWN_PRODUCER_ID",
}

// classify turns a delivery error into a Failure.
func classify(err error) *delivery.Failure {
	var ke kafka.Error
	if !errors.As(err, &ke) {
		ke = kafka.NewError(kafka.ErrUnknown, err.Error(), false)
	}
	c := ke.Code()
	if name, ok := permanent[c]; ok {
		return &delivery.Failure{Code: name, Class: delivery.Permanent, Err: ke}
	}
	name, ok := topicLevel[c]
	if !ok {
		if name, ok = names[c]; !ok {
			name = "ERR_" + strconv.Itoa(int(c))
		}
	}
	return &delivery.Failure{Code: name, Class: delivery.Retriable, Err: ke}
}

// held is a topic-level failure that keeps the producer not ready until
// a deadline; each repetition doubles the wait (1 s to 30 s), and a
// delivered record clears it.
type held struct {
	f     *delivery.Failure
	until time.Time
	wait  time.Duration
}

func (p *Producer) noteTopicLevel(f *delivery.Failure) {
	if _, ok := topicLevel[f.Err.(kafka.Error).Code()]; !ok {
		return
	}
	wait := time.Second
	if h := p.held.Load(); h != nil {
		if time.Now().Before(h.until) {
			return // one hold per wave of failures
		}
		wait = min(2*h.wait, 30*time.Second)
	}
	p.held.Store(&held{f: f, until: time.Now().Add(wait), wait: wait})
	p.throttle.Error("held:"+f.Code, "Kafka refuses every record of the topic: not ready, records are kept in the spool and retried",
		zap.String("topic", p.topic), zap.String("code", f.Code), zap.Duration("retry_in", wait), zap.Error(f.Err))
}
