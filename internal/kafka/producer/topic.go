package producer

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/confluentinc/confluent-kafka-go/v2/kafka"
	"go.uber.org/zap"

	"github.com/beacongate/beacongate/internal/status"
)

// recordOverhead is a generous bound on what Kafka adds around one
// record's key and value in a record batch (batch header 61 bytes, record
// header up to ~25): a record is refused at the request when key + value +
// overhead exceeds the topic's max.message.bytes, because the broker would
// refuse its batch after the client had been told 2xx.
const recordOverhead = 128

// topicRequestTimeout bounds each of discoverTopic's requests to the
// broker: Close waits for the one in flight before it destroys
// librdkafka's handle, so it is also what a lookup can add to a shutdown.
const topicRequestTimeout = 2 * time.Second

// lookupHook, when set (by tests), runs at the start of every lookup, just
// before its first call into librdkafka.
var lookupHook atomic.Pointer[func(p *Producer)]

// discoverTopic looks the topic up until it is found, then re-checks it
// every interval: whether it exists (readiness needs it: records for a
// missing topic can only fail), its partition count (logged), and its
// max.message.bytes (enforced at enqueue). It runs until stop is closed.
func (p *Producer) discoverTopic(stop <-chan struct{}, interval time.Duration) {
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
		}
		found := p.lookupTopic(stop)
		if !found {
			t.Reset(time.Second) // keep trying quickly until the topic is there
		} else {
			t.Reset(interval)
		}
	}
}

func (p *Producer) lookupTopic(stop <-chan struct{}) bool {
	if h := lookupHook.Load(); h != nil {
		(*h)(p)
	}
	md, err := p.p.GetMetadata(&p.topic, false, int(topicRequestTimeout.Milliseconds()))
	if err != nil {
		p.throttle.Warn("metadata", "cannot fetch topic metadata", zap.String("topic", p.topic), zap.Error(err))
		return false
	}
	tm, ok := md.Topics[p.topic]
	if !ok || tm.Error.Code() != kafka.ErrNoError || len(tm.Partitions) == 0 {
		p.topicFound.Store(false)
		p.throttle.Error("topic-missing", "topic not found: records cannot be delivered; readiness stays off until it exists",
			zap.String("topic", p.topic), zap.String("error", tm.Error.String()))
		return false
	}
	// Before the topic counts as found (readiness): overflow records are
	// spread over this many partitions (overflow.go).
	p.partitions.Store(int32(len(tm.Partitions)))
	first := !p.topicFound.Swap(true)
	maxBytes := p.topicMaxBytes(stop)
	if maxBytes > 0 {
		p.maxRecord.Store(int64(maxBytes))
	}
	if first {
		p.log.Info("topic found", zap.String("topic", p.topic), zap.Int("partitions", len(tm.Partitions)),
			zap.Int("max_message_bytes", maxBytes))
	}
	topicPartitions.Set(float64(len(tm.Partitions)))
	return true
}

// topicMaxBytes is the topic's max.message.bytes, or 0 if it cannot be
// read (then only librdkafka's own message.max.bytes applies).
func (p *Producer) topicMaxBytes(stop <-chan struct{}) int {
	ac, err := kafka.NewAdminClientFromProducer(p.p)
	if err != nil {
		return 0
	}
	defer ac.Close()
	ctx, cancel := context.WithTimeout(context.Background(), topicRequestTimeout)
	defer cancel()
	// Close does not wait out the request: it ends it.
	go func() {
		select {
		case <-stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	res, err := ac.DescribeConfigs(ctx, []kafka.ConfigResource{{Type: kafka.ResourceTopic, Name: p.topic}})
	if err != nil || len(res) != 1 || res[0].Error.Code() != kafka.ErrNoError {
		p.throttle.Warn("describe-configs", "cannot read the topic's max.message.bytes; only message.max.bytes is enforced",
			zap.String("topic", p.topic), zap.Error(err))
		return 0
	}
	n, err := strconv.Atoi(res[0].Config["max.message.bytes"].Value)
	if err != nil || n <= 0 {
		return 0
	}
	return n
}

// Admit refuses (413) a record Kafka could never take: larger than
// librdkafka's message.max.bytes or the topic's max.message.bytes (as last
// read from the broker, or as remembered from an earlier run), minus the
// batch overhead. The relay asks it before a record goes anywhere, Kafka
// or the spool, so a record that would be refused at replay is refused
// while the client is still there to hear it.
func (p *Producer) Admit(keyLen, valueLen int) error {
	size := int64(keyLen + valueLen + recordOverhead)
	if size <= int64(p.msgMax) {
		if limit := p.maxRecord.Load(); limit <= 0 || size <= limit {
			return nil
		}
	}
	produceRejected.WithLabelValues("too_large").Inc()
	return status.New(http.StatusRequestEntityTooLarge, "record_too_large", fmt.Sprintf(
		"record of %d bytes (key %d, value %d) exceeds what Kafka takes: message.max.bytes %d, topic %s max.message.bytes %d (0: not known yet), minus %d bytes of batch overhead",
		keyLen+valueLen, keyLen, valueLen, p.msgMax, p.topic, p.maxRecord.Load(), recordOverhead))
}

// TopicMaxBytes is the topic's max.message.bytes as last read from the
// broker (or seeded from Config.TopicMaxBytes); 0 if never known.
func (p *Producer) TopicMaxBytes() int { return int(p.maxRecord.Load()) }
