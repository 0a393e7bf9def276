// Package producer hands records to Kafka through librdkafka
// (confluent-kafka-go): asynchronous, Snappy-compressed, idempotent, with
// a bounded queue that fails fast when full. It is the only package that
// uses cgo (the Go client; librdkafka's produce, event and flush calls on
// the Go client's handle; glibc's malloc thresholds), so the rest of the
// gateway builds, tests and fuzzes quickly.
//
// It keeps exact books: every record it accepted is outstanding until its
// delivery report has been handled (delivered, kept by the failure
// handler, or counted lost), so a shutdown can wait for the last report
// before closing the spool, and the relay can tell the records in memory
// from the records on disk.
package producer

import (
	"errors"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"github.com/confluentinc/confluent-kafka-go/v2/kafka"
	"go.uber.org/zap"

	"github.com/beacongate/beacongate/internal/kafka/delivery"
	"github.com/beacongate/beacongate/internal/status"
	"github.com/beacongate/beacongate/internal/throttle"
)

// Producer is an asynchronous Kafka producer for one topic (and, for dead
// letters, others). It is safe for concurrent use.
type Producer struct {
	p          *kafka.Producer
	topic      string
	queueMax   int
	queueBytes int64
	highMark   int
	highBytes  int64
	msgMax     int // librdkafka's message.max.bytes
	sample     uint64
	downAfter  time.Duration // a partition leader not UP this long is down

	log      *zap.Logger
	throttle *throttle.Logger

	seq atomic.Uint64 // records produced, for latency sampling

	// The books (see the package comment). outTopic counts the records of
	// the gateway's topic among outRecords.
	outRecords atomic.Int64
	outBytes   atomic.Int64
	outTopic   atomic.Int64
	delivered  atomic.Int64

	// health is the last statistics' view of the brokers (nil until the
	// first statistics arrive); leaders is the event loop's own memory of
	// when each broker was last UP.
	health  atomic.Pointer[health]
	lastUp  map[int32]time.Time
	fatal   atomic.Pointer[kafka.Error]
	connErr atomic.Pointer[kafka.Error] // last authentication, TLS or transport error, until a broker is UP
	held    atomic.Pointer[held]        // a topic-level delivery failure: not ready until it expires
	// onFailed takes records librdkafka gave up on (see SetFailureHandler).
	onFailed atomic.Pointer[FailureHandler]
	// topicFound and maxRecord come from discoverTopic (maxRecord may be
	// seeded from Config.TopicMaxBytes).
	topicFound atomic.Bool
	maxRecord  atomic.Int64
	// partitions is the topic's partition count (0 until discoverTopic
	// found it), and spread the round-robin over them (overflow.go).
	partitions atomic.Int32
	spread     atomic.Uint32
	stop       chan struct{}
	closeOnce  sync.Once
	loopDone   chan struct{}

	// flusher counts the outstanding records of acknowledged requests;
	// while the count is above zero, its thread keeps librdkafka from
	// lingering (urgent.go).
	flusher   flusher
	topicDone chan struct{} // closed when discoverTopic returned

	// The gateway's own use of librdkafka's handle (events.go): rdk
	// produces and its main queue is read by eventLoop, woken through the
	// pipe wakeR/wakeW. goEvents carries what still reaches the Go
	// client's channel (forwardGoEvents, which closes goDone).
	rdk      *rdk
	started  time.Time
	wakeR    *os.File
	wakeW    int
	loopStop chan struct{}
	goEvents chan kafka.Event
	goDone   chan struct{}
	closing  atomic.Bool
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
	props := cfg.librdkafkaConfig()
	queueMax, _ := intProp(props, "queue.buffering.max.messages") // validated above
	queueKB, _ := intProp(props, "queue.buffering.max.kbytes")
	msgMax, _ := intProp(props, "message.max.bytes")
	sample := uint64(0)
	if cfg.LatencySampleEvery > 0 {
		sample = uint64(cfg.LatencySampleEvery)
	}
	logMalloc(log)
	cm := kafka.ConfigMap{}
	for k, v := range props {
		cm[k] = goValue(k, v)
	}
	kp, err := kafka.NewProducer(&cm)
	if err != nil {
		return nil, fmt.Errorf("producer: creating librdkafka producer for %s: %w", cfg.Brokers, err)
	}
	wakeR, wakeW, err := openPipe()
	if err != nil {
		kp.Close()
		return nil, fmt.Errorf("producer: creating the event pipe: %w", err)
	}
	r, err := openRdk(kp, wakeW, cfg.Topic)
	if err != nil {
		kp.Close()
		wakeR.Close()
		syscall.Close(wakeW)
		return nil, fmt.Errorf("producer: %w", err)
	}
	fl, err := startFlusher(unsafe.Pointer(r.rk))
	if err != nil {
		r.close()
		kp.Close()
		wakeR.Close()
		syscall.Close(wakeW)
		return nil, fmt.Errorf("producer: %w", err)
	}
	p := &Producer{
		p:          kp,
		topic:      cfg.Topic,
		queueMax:   queueMax,
		queueBytes: int64(queueKB) << 10,
		highMark:   int(float64(queueMax) * cfg.HighWater),
		highBytes:  int64(float64(int64(queueKB)<<10) * cfg.HighWater),
		msgMax:     msgMax,
		sample:     sample,
		downAfter:  max(time.Second, 2*cfg.StatsInterval),
		log:        log,
		throttle:   throttle.New(log, 10*time.Second),
		lastUp:     map[int32]time.Time{},
		loopDone:   make(chan struct{}),
		stop:       make(chan struct{}),
		flusher:    fl,
		topicDone:  make(chan struct{}),
		rdk:        r,
		started:    time.Now(),
		wakeR:      wakeR,
		wakeW:      wakeW,
		loopStop:   make(chan struct{}),
		goEvents:   make(chan kafka.Event, 64),
		goDone:     make(chan struct{}),
	}
	if cfg.TopicMaxBytes > 0 {
		p.maxRecord.Store(int64(cfg.TopicMaxBytes))
	}
	queueCapacity.Set(float64(queueMax))
	go p.eventLoop()
	go p.forwardGoEvents(kp.Events())
	go p.logLoop(kp.Logs())
	go func() { defer close(p.topicDone); p.discoverTopic(p.stop, 30*time.Second) }()
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

// FailureHandler takes a record of the gateway's topic that librdkafka
// gave up on (message.timeout.ms passed, a permanent error, or a purge at
// shutdown) and returns nil if it kept it safely (the spool, the
// dead-letter topic or the quarantine), so it is not lost. It runs on the
// event loop: it may do disk I/O but must not wait on Kafka.
type FailureHandler func(key, value []byte, f *delivery.Failure) error

// SetFailureHandler installs h; without one a failed record is lost
// (counted in beacongate_records_lost_total and logged).
func (p *Producer) SetFailureHandler(h FailureHandler) { p.onFailed.Store(&h) }

// tracked is the opaque of a record whose outcome someone waits for.
type tracked struct {
	start  time.Time
	t      delivery.Tracker
	urgent bool // an acknowledged request waits for it (see urgent.go)
}

// ProduceTracked is Produce for a record whose outcome t is told
// (acknowledged mode, replay). It costs an allocation and a map entry in
// the Go client, so the asynchronous path does not use it.
func (p *Producer) ProduceTracked(key, value []byte, t delivery.Tracker) error {
	return p.produceTracked(kafka.PartitionAny, nil, key, value, t)
}

// produceTracked is ProduceTracked to a chosen partition with headers hb
// (appendHeader's layout). A record an acknowledged request waits for is
// urgent: it keeps librdkafka from lingering until its report
// (urgent.go).
func (p *Producer) produceTracked(partition int32, hb []byte, key, value []byte, t delivery.Tracker) error {
	if p.closing.Load() {
		return errProducerClosed // before counting in the flusher, freed by Close
	}
	_, urgent := t.(*delivery.Ack)
	op, h := trackedOpaque(&tracked{start: time.Now(), t: t, urgent: urgent})
	if urgent {
		// Counted before Produce, as the books are: the report may come
		// first. The thread then wakes before the record is queued, and
		// flushes for the millisecond it takes to arrive.
		p.flusher.add(1)
	}
	if err := p.produceTo(p.topic, partition, key, value, hb, op); err != nil {
		h.Delete()
		if urgent {
			p.flusher.add(-1)
		}
		return err
	}
	return nil
}

// ProduceTo enqueues a record for another topic (the dead-letter topic),
// with headers. t, if not nil, is told the outcome; failures are counted,
// never spooled.
func (p *Producer) ProduceTo(topic string, key, value []byte, headers []delivery.Header, t delivery.Tracker) error {
	var hb []byte
	for _, h := range headers {
		hb = appendHeader(hb, h.Key, h.Value)
	}
	if t == nil {
		return p.produceTo(topic, kafka.PartitionAny, key, value, hb, 0)
	}
	op, h := trackedOpaque(&tracked{start: time.Now(), t: t})
	err := p.produceTo(topic, kafka.PartitionAny, key, value, hb, op)
	if err != nil {
		h.Delete()
	}
	return err
}

// Produce enqueues one record. librdkafka copies key and value
// (RD_KAFKA_MSG_F_COPY), so the caller's buffers are free when it returns.
// An empty key means no key: librdkafka then spreads the record randomly.
func (p *Producer) Produce(key, value []byte) error {
	return p.produceTo(p.topic, kafka.PartitionAny, key, value, nil, p.sampleOpaque())
}

// sampleOpaque is the opaque of an untracked record: one in p.sample
// carries its enqueue time, as delivery reports carry no timestamp.
func (p *Producer) sampleOpaque() uintptr {
	if p.sample > 0 && p.seq.Add(1)%p.sample == 0 {
		return p.timeOpaque()
	}
	return 0
}

// errProducerClosed answers a record produced after Close began.
var errProducerClosed = status.Retry(http.StatusServiceUnavailable, "producer_closed", "producer is shutting down", time.Second)

// produceTo enqueues a record to topic and partition (kafka.PartitionAny:
// the key's) with headers hb and opaque (events.go).
func (p *Producer) produceTo(topic string, partition int32, key, value, hb []byte, opaque uintptr) error {
	if len(key) == 0 {
		key = nil
	}
	mine := topic == p.topic
	if mine {
		if err := p.Admit(len(key), len(value)); err != nil {
			return err
		}
	}
	if p.closing.Load() {
		return errProducerClosed
	}
	t := p.rdk.main
	if !mine {
		var err error
		if t, err = p.rdk.topic(topic); err != nil {
			produceRejected.WithLabelValues("other").Inc()
			return status.Retry(http.StatusServiceUnavailable, "producer_error", err.Error(), time.Second)
		}
	}
	// Counted before Produce: the delivery report can be handled before
	// Produce returns, and the books must never go below the truth.
	size := int64(len(key) + len(value))
	p.count(mine, 1, size)
	code := p.rdk.produce(t, partition, key, value, hb, opaque)
	if code == 0 {
		if mine {
			recordsProduced.Inc()
		}
		return nil
	}
	p.count(mine, -1, -size)
	ke := kafkaError(code)
	switch ke.Code() {
	case kafka.ErrQueueFull:
		produceRejected.WithLabelValues("queue_full").Inc()
		return ErrQueueFull
	case kafka.ErrMsgSizeTooLarge:
		produceRejected.WithLabelValues("too_large").Inc()
		return status.New(http.StatusRequestEntityTooLarge, "record_too_large",
			fmt.Sprintf("record of %d bytes is larger than the producer's message.max.bytes %d", len(key)+len(value), p.msgMax))
	}
	produceRejected.WithLabelValues("other").Inc()
	p.throttle.Error("produce", "produce failed", zap.Error(ke))
	return status.Retry(http.StatusServiceUnavailable, "producer_error", fmt.Sprintf("producer: %v", ke), time.Second)
}

func (p *Producer) count(mine bool, n, size int64) {
	p.outRecords.Add(n)
	p.outBytes.Add(size)
	if mine {
		p.outTopic.Add(n)
	}
}

// Outstanding is the number of records of the gateway's topic accepted
// and not yet delivered, kept or counted lost: the records that live only
// in this process's memory (and in replayed spool segments).
func (p *Producer) Outstanding() int { return int(p.outTopic.Load()) }

// Room is how many more records, and bytes, librdkafka's queue can take
// now (dead letters included), by the producer's own books.
func (p *Producer) Room() (records int, bytes int64) {
	return p.queueMax - int(p.outRecords.Load()), p.queueBytes - p.outBytes.Load()
}

// QueueMax is the capacity of the producer queue in records.
func (p *Producer) QueueMax() int { return p.queueMax }

// Len is the number of records librdkafka holds (all topics).
func (p *Producer) Len() int { return p.p.Len() }

// Delivered is the number of records Kafka acknowledged for the gateway's
// topic since New.
func (p *Producer) Delivered() int64 { return p.delivered.Load() }

// Flush waits up to timeout for every record to be delivered, kept or
// counted lost (its delivery report handled), and returns how many are
// left.
func (p *Producer) Flush(timeout time.Duration) int {
	deadline := time.Now().Add(timeout)
	for {
		n := int(p.outRecords.Load())
		left := time.Until(deadline)
		if n == 0 || left <= 0 {
			return n
		}
		// librdkafka's Flush returns once its own queue is empty; the
		// last reports may still be in the Go client's channel or in
		// delivered(), hence the loop on the producer's own books.
		p.p.Flush(int(min(left, 100*time.Millisecond).Milliseconds()) + 1)
		if p.p.Len() == 0 && p.outRecords.Load() > 0 {
			time.Sleep(time.Millisecond)
		}
	}
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
	return p.Flush(timeout)
}

// Close closes the producer and returns how many records of the gateway's
// topic it still held: they are lost (counted in
// beacongate_records_lost_total and logged). Call Flush, and Purge with a
// failure handler, first.
func (p *Producer) Close() (lost int) {
	p.closeOnce.Do(func() {
		close(p.stop)
		// Neither the flush thread nor the topic lookup may call
		// librdkafka on a destroyed handle: a metadata request in flight
		// when rd_kafka_destroy runs crashes the process. The topic
		// lookup's requests are bounded (topicRequestTimeout). The
		// flusher's memory stays until the event loop is done with it.
		p.flusher.stop()
		<-p.topicDone
		// The event loop stops after a last pass over the main queue; a
		// report that arrives later has nobody to handle it, and its
		// record stays in the books (callers Flush and Purge first). Then
		// nothing may use librdkafka's handle but the Go client's Close.
		p.closing.Store(true)
		close(p.loopStop)
		p.wake()
		<-p.loopDone
		p.rdk.close()
		p.p.Close()
		<-p.goDone
		// The event loop, which counts reports in the flusher, has ended;
		// a produce after Close returns before counting (produceTracked).
		p.flusher.free()
		p.wakeR.Close()
		syscall.Close(p.wakeW)
		if n := p.outTopic.Load(); n > 0 {
			lost = int(n)
			delivery.CountLost(lost)
			p.log.Error("closed the producer with undelivered records: they are lost", zap.Int64("records", n))
		}
	})
	return lost
}

// report handles one delivery report; the record leaves the books only
// once its outcome has been handed on.
func (p *Producer) report(o *outcome) {
	defer p.count(o.mine, -1, -o.size)
	tr := o.tr
	if tr != nil && tr.urgent {
		p.flusher.add(-1)
	}
	if !o.mine {
		p.deliveredElsewhere(o, tr)
		return
	}
	if o.err != nil {
		p.failed(o, tr, o.err)
		return
	}
	p.delivered.Add(1)
	recordsDelivered.Inc()
	if p.held.Load() != nil {
		p.held.Store(nil) // the topic takes records again
	}
	switch {
	case tr != nil:
		deliveryLatency.Observe(time.Since(tr.start).Seconds())
		tr.t.Delivered(nil)
	case !o.sent.IsZero():
		deliveryLatency.Observe(time.Since(o.sent).Seconds())
	}
}

// failed routes a record librdkafka gave up on: to its tracker when that
// owns failures (the replayer), else to the failure handler, which keeps
// a retriable one in the spool and sends a permanent one to the
// dead-letter topic or the quarantine. Without a handler, or if it cannot
// keep the record, the record is lost, counted and logged.
func (p *Producer) failed(m *outcome, tr *tracked, err error) {
	f := classify(err)
	recordsFailed.WithLabelValues(f.Err.(kafka.Error).Code().String()).Inc()
	p.noteTopicLevel(f)
	if tr != nil {
		if owner, ok := tr.t.(delivery.FailureOwner); ok {
			owner.Failed(m.key, m.value, f)
			return
		}
	}
	kept := errNoFailureHandler
	if h := p.onFailed.Load(); h != nil {
		kept = (*h)(m.key, m.value, f)
	}
	if kept != nil {
		delivery.CountLost(1)
		p.throttle.Error("delivery:"+f.Code, "record delivery failed and it could not be kept: record lost",
			zap.String("code", f.Code), zap.Stringer("class", f.Class), zap.Error(err), zap.NamedError("keep_error", kept))
	} else {
		p.throttle.Warn("delivery:"+f.Code, "record delivery failed; kept by the failure handler",
			zap.String("code", f.Code), zap.Stringer("class", f.Class), zap.Error(err))
	}
	if tr != nil {
		switch {
		case kept != nil:
			tr.t.Delivered(kept)
		case f.Class == delivery.Permanent:
			tr.t.Delivered(f) // dead-lettered or quarantined: the request learns why
		default:
			tr.t.Delivered(nil) // kept in the spool: the waiter syncs it
		}
	}
}

var errNoFailureHandler = errors.New("no failure handler (spool) configured")

// deliveredElsewhere counts the outcome of a record for another topic
// (the dead-letter topic) and tells its tracker.
func (p *Producer) deliveredElsewhere(m *outcome, tr *tracked) {
	topic, err := m.topic, m.err
	if err != nil {
		otherFailed.WithLabelValues(topic).Inc()
		p.throttle.Error("delivery-other:"+topic, "record for another topic (dead letters) failed",
			zap.String("topic", topic), zap.Error(err))
	} else {
		otherDelivered.WithLabelValues(topic).Inc()
	}
	if tr != nil {
		if err != nil {
			tr.t.Delivered(classify(err))
		} else {
			tr.t.Delivered(nil)
		}
	}
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
		if h := p.health.Load(); h != nil && h.up > 0 {
			p.health.Store(&health{up: 0})
		}
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
