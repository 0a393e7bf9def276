package relay

import (
	"strconv"

	"go.uber.org/zap"

	"github.com/beacongate/beacongate/internal/kafka/delivery"
)

// DeadLettersOn says whether DeadLetter sends anything (a dead-letter
// topic is configured), so callers skip preparing dead letters otherwise.
func (r *Relay) DeadLettersOn() bool { return r.cfg.DeadLetterTopic != "" }

// DeadLetter implements ingest's DeadLetterSink: an event that could not
// become a record goes to the dead-letter topic with its raw bytes (cut
// to DeadLetterMaxBytes) and the reason in headers, so it can be
// inspected and replayed. Sending is asynchronous and best effort: the
// client already got its 4xx; failures are counted.
func (r *Relay) DeadLetter(raw []byte, dl delivery.DeadLetter) {
	if r.cfg.DeadLetterTopic == "" {
		return
	}
	truncated := "false"
	size := len(raw)
	if len(raw) > r.cfg.DeadLetterMaxBytes {
		raw = raw[:r.cfg.DeadLetterMaxBytes]
		truncated = "true"
	}
	h := []delivery.Header{
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
		h = append(h, delivery.Header{Key: "beacongate.batch_index", Value: []byte(strconv.Itoa(dl.BatchIndex))})
	}
	if err := r.kafka.ProduceTo(r.cfg.DeadLetterTopic, nil, raw, h, nil); err != nil {
		deadLettersDropped.Inc()
		r.log.Debug("dead letter dropped", zap.Error(err))
		return
	}
	deadLetters.WithLabelValues(dl.Reason).Inc()
}
