// Package producer hands records to Kafka through librdkafka
// (confluent-kafka-go): asynchronous, Snappy-compressed, idempotent, with
// a bounded queue that fails fast when full. It is the only package that
// uses cgo, so the rest of the gateway builds, tests and fuzzes quickly.
package producer

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/confluentinc/confluent-kafka-go/v2/kafka"
	"go.uber.org/zap"

	"github.com/beacongate/beacongate/internal/status"
	"github.com/beacongate/beacongate/internal/throttle"
)

// Producer is an asynchronous Kafka producer for one topic. It is safe for
// concurrent use.
type Producer struct {
	p        *kafka.Producer
	topic    string
	queueMax int
	highMark int
	sample   uint64

	log      *zap.Logger
	throttle *throttle.Logger

	seq       atomic.Uint64 // records produced, for latency sampling
	brokersUp atomic.Int32  // brokers in state UP in the last statistics
	fatal     atomic.Pointer[kafka.Error]
	// connErr is the last authentication or TLS error, kept for Ready's
	// reason until a broker connection comes up (see clientError).
	connErr atomic.Pointer[kafka.Error]
	// onFailed takes records librdkafka gave up on (see SetFailureHandler).
	onFailed atomic.Pointer[FailureHandler]
	// topicFound and maxRecord come from discoverTopic.
	topicFound atomic.Bool
	maxRecord  atomic.Int64
	stop       chan struct{}
	closeOnce  sync.Once
	loopDone   chan struct{}
}

// ErrQueueFull is returned, at once, when librdkafka's queue is full: the
// client gets 503 with Retry-After instead of a blocked handler. It is
// preallocated because it is hot exactly when the gateway is overloaded.
var ErrQueueFull = status.Retry(http.StatusServiceUnavailable, "queue_full", "producer queue is full", time.Second)

// New starts a producer. It does not wait for the brokers: readiness
// (Ready) turns true when librdkafka reports a broker connection up.
func New(cfg Config, log *zap.Logger) (*Producer, error) {
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	queueMax, _ := cfg.queueMax() // validated above
	sample := uint64(0)
	if cfg.LatencySampleEvery > 0 {
		sample = uint64(cfg.LatencySampleEvery)
	}
	cm := kafka.ConfigMap{"go.logs.channel.enable": true}
	for k, v := range cfg.librdkafkaConfig() {
		cm[k] = goValue(k, v)
	}
	kp, err := kafka.NewProducer(&cm)
	if err != nil {
		return nil, fmt.Errorf("producer: creating librdkafka producer for %s: %w", cfg.Brokers, err)
	}
	p := &Producer{
		p:        kp,
		topic:    cfg.Topic,
		queueMax: queueMax,
		highMark: int(float64(queueMax) * cfg.HighWater),
		sample:   sample,
		log:      log,
		throttle: throttle.New(log, 10*time.Second),
		loopDone: make(chan struct{}),
		stop:     make(chan struct{}),
	}
	queueCapacity.Set(float64(queueMax))
	go p.eventLoop()
	go p.logLoop(kp.Logs())
	go p.discoverTopic(p.stop, 30*time.Second)
	return p, nil
}

// goValue types the Go client's own "go.*" properties, which it checks
// by type (librdkafka's own take strings).
func goValue(key, v string) kafka.ConfigValue {
	if !strings.HasPrefix(key, "go.") {
		return v
	}
	if n, err := strconv.Atoi(v); err == nil {
		return n
	}
	if b, err := strconv.ParseBool(v); err == nil {
		return b
	}
	return v
}

// Tracker is told, from the event loop, what became of one record given
// to ProduceTracked: nil once Kafka acknowledged it (or, for a record
// librdkafka gave up on, once the failure handler kept it), else the
// error. Delivered must not block.
//
// It is an alias of an unnamed interface type so that packages without
// cgo (relay) can name the same type without importing this one.
type Tracker = interface{ Delivered(err error) }

// FailureHandler takes a record of the gateway's topic that librdkafka
// gave up on (message.timeout.ms passed, a permanent error, or a purge at
// shutdown) and returns nil if it kept it durably (the disk spool), so it
// is not lost. It runs on the event loop: it may do disk I/O but must not
// wait on Kafka.
type FailureHandler func(key, value []byte, cause error) error

// SetFailureHandler installs h; without one a failed record is lost
// (counted in beacongate_records_lost_total and logged).
func (p *Producer) SetFailureHandler(h FailureHandler) { p.onFailed.Store(&h) }

// tracked is the opaque of a ProduceTracked record.
type tracked struct {
	start time.Time
	t     Tracker
}

// ProduceTracked is Produce for a record whose outcome the caller waits
// for (acknowledged mode). It costs an allocation and a map entry in the
// Go client, so the asynchronous path does not use it.
func (p *Producer) ProduceTracked(key, value []byte, t Tracker) error {
	return p.produce(p.topic, key, value, nil, &tracked{start: time.Now(), t: t})
}

// Header is a Kafka record header. Like Tracker it is an alias of an
// unnamed type, so package relay can build headers without cgo.
type Header = struct {
	Key   string
	Value []byte
}

// ProduceTo enqueues a record for another topic (the dead-letter topic),
// with headers. Its failures are counted, never spooled: it is not an
// acknowledged beacon.
func (p *Producer) ProduceTo(topic string, key, value []byte, headers []Header) error {
	return p.produce(topic, key, value, headers, nil)
}

// Produce enqueues one record. librdkafka copies key and value
// (RD_KAFKA_MSG_F_COPY), so the caller's buffers are free when it returns.
// An empty key means no key: librdkafka then spreads the record randomly.
func (p *Producer) Produce(key, value []byte) error {
	var opaque any
	if p.sample > 0 && p.seq.Add(1)%p.sample == 0 {
		// Delivery reports carry no timestamp, so a sampled record carries
		// its enqueue time as the opaque.
		opaque = time.Now()
	}
	return p.produce(p.topic, key, value, nil, opaque)
}

func (p *Producer) produce(topic string, key, value []byte, headers []Header, opaque any) error {
	if len(key) == 0 {
		key = nil
	}
	if err := p.checkSize(key, value); err != nil {
		return err
	}
	msg := kafka.Message{
		TopicPartition: kafka.TopicPartition{Topic: &topic, Partition: kafka.PartitionAny},
		Key:            key,
		Value:          value,
		Opaque:         opaque,
	}
	for _, h := range headers {
		msg.Headers = append(msg.Headers, kafka.Header{Key: h.Key, Value: h.Value})
	}
	err := p.p.Produce(&msg, nil)
	if err == nil {
		recordsProduced.Inc()
		return nil
	}
	var ke kafka.Error
	if errors.As(err, &ke) {
		switch ke.Code() {
		case kafka.ErrQueueFull:
			produceRejected.WithLabelValues("queue_full").Inc()
			return ErrQueueFull
		case kafka.ErrMsgSizeTooLarge:
			produceRejected.WithLabelValues("too_large").Inc()
			return status.New(http.StatusRequestEntityTooLarge, "record_too_large",
				fmt.Sprintf("record of %d bytes is larger than the producer's message.max.bytes", len(key)+len(value)))
		}
	}
	produceRejected.WithLabelValues("other").Inc()
	p.throttle.Error("produce", "produce failed", zap.Error(err))
	return status.Retry(http.StatusServiceUnavailable, "producer_error", fmt.Sprintf("producer: %v", err), time.Second)
}

// Ready reports whether the producer can take traffic: a broker connection
// is up, the queue is below the high-water mark, and no fatal error has
// occurred. The reason says why not.
func (p *Producer) Ready() (ok bool, reason string) {
	if fe := p.fatal.Load(); fe != nil {
		return false, "fatal producer error: " + fe.Error()
	}
	if n := p.p.Len(); n > p.highMark {
		return false, "producer queue above high-water mark (" + strconv.Itoa(n) + " > " + strconv.Itoa(p.highMark) + ")"
	}
	if p.brokersUp.Load() == 0 {
		if ce := p.connErr.Load(); ce != nil {
			return false, "no broker connection up: last error: " + ce.Error()
		}
		return false, "no broker connection up"
	}
	if !p.topicFound.Load() {
		return false, "topic " + p.topic + " not found (yet)"
	}
	return true, ""
}

// Len is the number of records not yet delivered (or failed).
func (p *Producer) Len() int { return p.p.Len() }

// QueueMax is the capacity of the producer queue in records.
func (p *Producer) QueueMax() int { return p.queueMax }

// Flush waits up to timeout for every queued record to be delivered or to
// fail, and returns how many are left.
func (p *Producer) Flush(timeout time.Duration) int {
	return p.p.Flush(int(timeout.Milliseconds()))
}

// Close closes the producer. Records still queued are lost: call Flush
// first. They are counted in beacongate_records_lost_total and logged.
func (p *Producer) Close() {
	p.closeOnce.Do(func() {
		close(p.stop)
		if n := p.p.Len(); n > 0 {
			recordsLost.Add(float64(n))
			p.log.Error("closing producer with undelivered records: they are lost", zap.Int("records", n))
		}
		p.p.Close()
		<-p.loopDone
	})
}

// eventLoop consumes delivery reports, statistics and errors. It is the
// only reader of the events channel and must never block on anything
// else, or librdkafka's delivery report queue backs up.
func (p *Producer) eventLoop() {
	defer close(p.loopDone)
	for ev := range p.p.Events() {
		switch e := ev.(type) {
		case *kafka.Message:
			p.delivered(e)
		case *kafka.Stats:
			p.stats(e.String())
		case kafka.Error:
			p.clientError(e)
		}
	}
}

func (p *Producer) delivered(m *kafka.Message) {
	tr, _ := m.Opaque.(*tracked)
	if m.TopicPartition.Topic != nil && *m.TopicPartition.Topic != p.topic {
		p.deliveredElsewhere(m)
		return
	}
	if err := m.TopicPartition.Error; err != nil {
		code := "unknown"
		var ke kafka.Error
		if errors.As(err, &ke) {
			code = ke.Code().String()
		}
		recordsFailed.WithLabelValues(code).Inc()
		// librdkafka has given up on this record (message.timeout.ms, a
		// permanent error, or a purge at shutdown). The failure handler
		// (the spool) keeps it; without one, or if it cannot, it is lost.
		kept := errNoFailureHandler
		if h := p.onFailed.Load(); h != nil {
			kept = (*h)(m.Key, m.Value, err)
		}
		if kept != nil {
			recordsLost.Inc()
			p.throttle.Error("delivery:"+code, "record delivery failed and it could not be kept: record lost",
				zap.String("code", code), zap.Error(err), zap.NamedError("keep_error", kept))
		} else {
			p.throttle.Warn("delivery:"+code, "record delivery failed; kept by the failure handler (spooled)",
				zap.String("code", code), zap.Error(err))
		}
		if tr != nil {
			tr.t.Delivered(kept)
		}
		return
	}
	recordsDelivered.Inc()
	switch o := m.Opaque.(type) {
	case time.Time:
		deliveryLatency.Observe(time.Since(o).Seconds())
	case *tracked:
		deliveryLatency.Observe(time.Since(o.start).Seconds())
		o.t.Delivered(nil)
	}
}

var errNoFailureHandler = errors.New("no failure handler (spool) configured")

// deliveredElsewhere counts the outcome of a record for another topic
// (the dead-letter topic).
func (p *Producer) deliveredElsewhere(m *kafka.Message) {
	if err := m.TopicPartition.Error; err != nil {
		otherFailed.WithLabelValues(*m.TopicPartition.Topic).Inc()
		p.throttle.Error("delivery-other:"+*m.TopicPartition.Topic, "record for another topic (dead letters) failed",
			zap.String("topic", *m.TopicPartition.Topic), zap.Error(err))
		return
	}
	otherDelivered.WithLabelValues(*m.TopicPartition.Topic).Inc()
}

// Purge takes every record still queued or in flight out of librdkafka
// and hands it to the failure handler (the spool), so that a shutdown
// with Kafka unreachable keeps them instead of losing them. Records that
// were in flight may have reached Kafka too: replaying them can
// duplicate them (at-least-once). It waits up to timeout for the purged
// records' reports and returns how many records are left.
func (p *Producer) Purge(timeout time.Duration) int {
	if err := p.p.Purge(kafka.PurgeQueue | kafka.PurgeInFlight | kafka.PurgeNonBlocking); err != nil {
		p.log.Error("purging the producer queue failed", zap.Error(err))
	}
	return p.p.Flush(int(timeout.Milliseconds()))
}

func (p *Producer) clientError(e kafka.Error) {
	clientErrors.WithLabelValues(e.Code().String()).Inc()
	if e.IsFatal() {
		// With idempotence a fatal error (e.g. an epoch fenced by the
		// broker) leaves the producer unusable: readiness goes false for
		// good and the process must be restarted.
		p.fatal.Store(&e)
		p.log.Error("fatal producer error: the producer cannot continue; restart the gateway", zap.Error(e))
		return
	}
	switch e.Code() {
	case kafka.ErrAllBrokersDown:
		// Not kept for Ready: it follows the error that says why.
		p.brokersUp.Store(0)
	case kafka.ErrAuthentication, kafka.ErrSsl:
		// Wrong credentials or an untrusted certificate: librdkafka keeps
		// reconnecting (with backoff) and the operator needs the cause, not
		// only "no broker connection up".
		p.connErr.Store(&e)
		p.throttle.Error("client:"+e.Code().String(), "cannot connect to kafka: authentication or TLS failed; check the credentials, CA and certificates", zap.Error(e))
		return
	case kafka.ErrTransport, kafka.ErrResolve:
		// Also a cause worth showing: connection refused, an unknown host,
		// or a broker closing the connection during the SASL exchange (how
		// some brokers, kfake among them, reject a wrong password; Apache
		// Kafka answers ErrAuthentication instead).
		p.connErr.Store(&e)
	}
	p.throttle.Warn("client:"+e.Code().String(), "kafka client error", zap.Error(e))
}
