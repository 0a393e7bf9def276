package relay

import (
	"strconv"

	"go.uber.org/zap"
)

// Header is a Kafka record header (the producer's Header).
type Header = struct {
	Key   string
	Value []byte
}

// DeadLetterKafka is what dead letters need of the producer.
type DeadLetterKafka interface {
	ProduceTo(topic string, key, value []byte, headers []Header) error
}

// DeadLetters sends events that could not become a record to a
// dead-letter topic: the raw bytes (cut to a bound) with the reason in
// headers, so they can be inspected and replayed. Sending is asynchronous
// and best effort: the client already got its 4xx; failures are counted.
type DeadLetters struct {
	kafka    DeadLetterKafka
	topic    string
	maxBytes int
	log      *zap.Logger
}

// NewDeadLetters returns nil when topic is empty (dead letters off).
// maxBytes <= 0 means 64 KiB.
func NewDeadLetters(k DeadLetterKafka, topic string, maxBytes int, log *zap.Logger) *DeadLetters {
	if topic == "" {
		return nil
	}
	if maxBytes <= 0 {
		maxBytes = 64 << 10
	}
	return &DeadLetters{kafka: k, topic: topic, maxBytes: maxBytes, log: log}
}

// DeadLetter describes why an event was rejected.
type DeadLetter struct {
	Reason, Error        string
	Status               int
	RequestID, GatewayID string
	Path, ContentType    string
	ClientIP             string
	ReceivedAtMicros     int64
	BatchIndex           int // -1: not from a batch
}

// Send queues one dead letter. raw is copied (by the producer).
func (d *DeadLetters) Send(raw []byte, dl DeadLetter) {
	if d == nil {
		return
	}
	truncated := "false"
	size := len(raw)
	if len(raw) > d.maxBytes {
		raw = raw[:d.maxBytes]
		truncated = "true"
	}
	h := []Header{
		{Key: "beacongate.reason", Value: []byte(dl.Reason)},
		{Key: "beacongate.status", Value: []byte(strconv.Itoa(dl.Status))},
		{Key: "beacongate.error", Value: []byte(dl.Error)},
		{Key: "beacongate.request_id", Value: []byte(dl.RequestID)},
		{Key: "beacongate.gateway_id", Value: []byte(dl.GatewayID)},
		{Key: "beacongate.path", Value: []byte(dl.Path)},
		{Key: "beacongate.content_type", Value: []byte(dl.ContentType)},
		{Key: "beacongate.client_ip", Value: []byte(dl.ClientIP)},
		{Key: "beacongate.received_at_us", Value: []byte(strconv.FormatInt(dl.ReceivedAtMicros, 10))},
		{Key: "beacongate.size", Value: []byte(strconv.Itoa(size))},
		{Key: "beacongate.truncated", Value: []byte(truncated)},
	}
	if dl.BatchIndex >= 0 {
		h = append(h, Header{Key: "beacongate.batch_index", Value: []byte(strconv.Itoa(dl.BatchIndex))})
	}
	if err := d.kafka.ProduceTo(d.topic, nil, raw, h); err != nil {
		deadLettersDropped.Inc()
		d.log.Debug("dead letter dropped", zap.Error(err))
		return
	}
	deadLetters.WithLabelValues(dl.Reason).Inc()
}

// SetDeadLetters makes the relay the ingest server's dead-letter sink.
func (r *Relay) SetDeadLetters(d *DeadLetters) { r.dlq = d }

// DeadLetter implements ingest.DeadLetterSink.
func (r *Relay) DeadLetter(raw []byte, dl DeadLetter) { r.dlq.Send(raw, dl) }
