// Package relay decides where each record goes so that nothing the
// gateway acknowledged is lost: straight to the Kafka producer while Kafka
// takes records, else to the local disk spool, from which a replayer
// re-produces them in order once Kafka is healthy again. It also carries
// acknowledged mode (a request answered only once its records are in
// Kafka or fsynced in the spool), dead letters, and the quarantine of
// records Kafka refuses for good.
//
// Order. Per key, records reach Kafka in the order the gateway accepted
// them, across every switch:
//   - Once a record has gone to the spool, every later one goes behind it
//     until the replayer has drained the spool; only then, under the same
//     lock as spool appends, do records go straight to Kafka again. The
//     last round counts as drained once all of it is in the producer's
//     queue, ahead of every later record (under a steady load the spool
//     is never empty between rounds).
//   - Records librdkafka hands back (a timeout, the purge at shutdown) were
//     produced before everything in the spool's main lane, so they go to
//     the kept lane, which is replayed first (see lanes.go).
//   - The replayer starts only once no record produced directly is left in
//     librdkafka's memory: those are older than anything spooled, and must
//     be delivered or handed back first.
//   - A replay round is committed only once every record in it is in Kafka
//     or set aside (dead letters, quarantine); records that failed are
//     produced again, in their order, before the next round. Nothing is
//     read twice while its first copy can still be delivered.
package relay

import (
	"errors"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/beacongate/beacongate/internal/kafka/delivery"
	"github.com/beacongate/beacongate/internal/kafka/spool"
	"github.com/beacongate/beacongate/internal/status"
	"github.com/beacongate/beacongate/internal/throttle"
)

// Kafka is what the relay needs of the producer.
type Kafka interface {
	// Admit refuses (413) a record Kafka could never take.
	Admit(keyLen, valueLen int) error
	Produce(key, value []byte) error
	ProduceTracked(key, value []byte, t delivery.Tracker) error
	ProduceTo(topic string, key, value []byte, headers []delivery.Header, t delivery.Tracker) error
	// Ready reports whether Kafka takes the topic's records now.
	Ready() (bool, string)
	// Outstanding is the records of the topic in the producer's memory.
	Outstanding() int
	// Room is what the producer's queue can take now.
	Room() (records int, bytes int64)
	QueueMax() int
	// TopicMaxBytes is the topic's max.message.bytes, 0 if unknown.
	TopicMaxBytes() int
}

// Config configures the relay; the zero value is usable.
type Config struct {
	// HealthInterval is how often Kafka's readiness is polled to decide
	// between direct and spooled. Default 100ms.
	HealthInterval time.Duration
	// StartGrace is how long, after start, records go to the producer's
	// queue while librdkafka connects, before a Kafka that is still not
	// ready sends them to the spool. Default 5s.
	StartGrace time.Duration
	// ReplayBatch and ReplayBytes bound one replay round (records, and
	// bytes of keys and values). Defaults 20000 and 32 MiB.
	ReplayBatch int
	ReplayBytes int64
	// RetryBackoff is the first wait before replayed records that failed
	// are produced again; it doubles up to 30s. Default 500ms.
	RetryBackoff time.Duration
	// StateFile, when set, records every second how many records are in
	// the producer's memory, so a killed process's possible loss is
	// counted at the next start (see state.go). "" disables it.
	StateFile string
	// DeadLetterTopic receives rejected input (see DeadLetters) and
	// records Kafka refuses for good; "" sends the latter to the
	// quarantine instead.
	DeadLetterTopic string
	// DeadLetterMaxBytes cuts rejected input in dead letters. Default
	// 64 KiB.
	DeadLetterMaxBytes int
	// GatewayID is written in the headers of dead letters.
	GatewayID string
}

func (c Config) withDefaults() Config {
	if c.HealthInterval == 0 {
		c.HealthInterval = 100 * time.Millisecond
	}
	if c.StartGrace == 0 {
		c.StartGrace = 5 * time.Second
	}
	if c.ReplayBatch == 0 {
		c.ReplayBatch = 20000
	}
	if c.ReplayBytes == 0 {
		c.ReplayBytes = 32 << 20
	}
	if c.RetryBackoff == 0 {
		c.RetryBackoff = 500 * time.Millisecond
	}
	if c.DeadLetterMaxBytes <= 0 {
		c.DeadLetterMaxBytes = 64 << 10
	}
	return c
}

// Validate rejects unusable settings.
func (c Config) Validate() error {
	c = c.withDefaults()
	if c.HealthInterval < 0 || c.StartGrace < 0 || c.ReplayBatch < 0 || c.ReplayBytes < 0 || c.RetryBackoff < 0 {
		return fmt.Errorf("relay: negative setting in %+v", c)
	}
	return nil
}

// ErrSpoolFull is answered (503, fast) when Kafka cannot take a record and
// the spool has no room for it either.
var ErrSpoolFull = status.Retry(http.StatusServiceUnavailable, "spool_full", "Kafka is not taking records and the disk spool is full", 5*time.Second)

// Relay routes records; it implements ingest's Sink, AckSink, BatchSink
// and DeadLetterSink.
type Relay struct {
	cfg   Config
	kafka Kafka
	// spread is kafka's ProduceOverflow, nil if it has none: overflow
	// records then go to their key's partition, still marked (overflow.go).
	spread overflowKafka
	sp     *Spools // nil: no spool, Kafka's backpressure goes to the client
	log    *zap.Logger
	thr    *throttle.Logger

	// route: records may go straight to Kafka (Kafka was ready at the last
	// check, or the start grace is not over). healthy: Kafka was ready at
	// the last check; /readyz follows it.
	route       atomic.Bool
	healthy     atomic.Bool
	everHealthy atomic.Bool
	reason      atomic.Pointer[string]
	spooling    atomic.Bool   // records go to the spool until the replayer drains it
	lastRound   atomic.Bool   // the replayer hands over: records go direct, its last round is in flight
	draining    atomic.Bool   // shutting down: /readyz is 503
	appends     atomic.Uint64 // spool appends so far, to know whether an ack needs a Sync
	// entering counts producers between their look at the state and the
	// end of their direct produce: the replayer waits for it to be 0 so
	// that no record it has not seen can still enter librdkafka's queue
	// ahead of the records it replays.
	entering atomic.Int64
	// replayOut is the replayed records in the producer's memory: they
	// are still in the spool, so a kill does not lose them.
	replayOut atomic.Int64
	started   time.Time
	// mu makes "spool empty → go direct" atomic with spool appends.
	mu sync.Mutex

	wake      chan struct{}
	stop      chan struct{} // Stop: no new round
	stopOnce  sync.Once
	abort     chan struct{} // Stop's deadline: leave the round in progress
	abortOnce sync.Once
	done      sync.WaitGroup
}

// New builds a relay over k and, optionally, the spool directory sp.
// Start it before traffic.
func New(cfg Config, k Kafka, sp *Spools, log *zap.Logger) (*Relay, error) {
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	r := &Relay{cfg: cfg, kafka: k, sp: sp, log: log, thr: throttle.New(log, 10*time.Second),
		started: time.Now(), wake: make(chan struct{}, 1), stop: make(chan struct{}), abort: make(chan struct{})}
	r.spread, _ = k.(overflowKafka)
	r.route.Store(true) // while librdkafka connects: see StartGrace
	r.checkState()
	if sp != nil {
		r.updateGauges()
		if recs, bytes := sp.Waiting(); recs > 0 {
			// A previous process left records: they go first, and
			// everything after them goes behind them until they are
			// replayed.
			r.spooling.Store(true)
			spoolingGauge.Set(1)
			log.Warn("the spool holds records from before: replaying them before producing directly",
				zap.Int64("records", recs), zap.Int64("bytes", bytes), zap.Time("oldest", r.oldest()))
		}
	}
	return r, nil
}

// Start runs the health monitor and, with a spool, the replayer.
func (r *Relay) Start() {
	r.check() // at once: a start must not wait a tick to know where records go
	r.done.Add(1)
	go r.monitor()
	if r.sp != nil {
		r.done.Add(1)
		go r.replayLoop()
	}
}

// Spooling reports whether records currently go to the spool, or the
// last round of its replay is not yet in Kafka.
func (r *Relay) Spooling() bool { return r.spooling.Load() || r.lastRound.Load() }

// Ready is /readyz: Kafka takes records (as the relay last saw it, the
// same view that routes records), and the gateway is not shutting down.
func (r *Relay) Ready() (bool, string) {
	if r.draining.Load() {
		return false, "shutting down"
	}
	if !r.healthy.Load() {
		reason := "starting: waiting for Kafka"
		if p := r.reason.Load(); p != nil {
			reason = *p
		}
		return false, reason
	}
	return true, ""
}

// StartDraining turns Ready false for good (shutdown).
func (r *Relay) StartDraining() { r.draining.Store(true) }

func (r *Relay) poke() {
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// isBackpressure reports errors that mean "Kafka cannot take it now"
// (as opposed to "this record is bad", e.g. too large).
func isBackpressure(err error) bool {
	return err != nil && httpStatus(err) == http.StatusServiceUnavailable
}

// httpStatus is the status of the first error in err's chain that has
// one, or 0. The caller checks err != nil first: errors.As takes its
// target's address, which moves the target to the heap where it is
// declared, so declared in the caller it would cost an allocation on
// every call, a nil error's too (TestRelayToKafkaDoesNotAllocate).
func httpStatus(err error) int {
	var se interface{ HTTPStatus() int }
	if errors.As(err, &se) {
		return se.HTTPStatus()
	}
	return 0
}

// Admit refuses (413) a record Kafka could never take, whichever way it
// would go: a record that does not fit the topic must not wait in the
// spool for a replay that can only fail.
func (r *Relay) Admit(key, value []byte) error { return r.kafka.Admit(len(key), len(value)) }

// Produce implements ingest.Sink.
func (r *Relay) Produce(key, value []byte) error { return r.produce(key, value, nil, false) }

// ProduceAcked produces a record whose safety the request waits for.
func (r *Relay) ProduceAcked(key, value []byte, a *delivery.Ack) error {
	return r.produce(key, value, a, false)
}

// produce routes one record; overflow says it is a hot key's overflow,
// spread over the partitions when it goes straight to Kafka (a spooled
// one is recognized by its value when replayed, see overflow.go).
func (r *Relay) produce(key, value []byte, a *delivery.Ack, overflow bool) error {
	if err := r.kafka.Admit(len(key), len(value)); err != nil {
		return err
	}
	if r.sp == nil {
		return r.direct(key, value, a, overflow)
	}
	r.entering.Add(1)
	if !r.spooling.Load() && r.route.Load() {
		err := r.direct(key, value, a, overflow)
		r.entering.Add(-1)
		if !isBackpressure(err) {
			return err
		}
	} else {
		r.entering.Add(-1)
	}
	r.mu.Lock()
	err := r.toSpoolLocked(key, value, a, overflow)
	r.mu.Unlock()
	return r.spoolError(err)
}

// toSpoolLocked appends one record to the main lane, first switching to
// spooling (or, if the replayer drained the spool since the caller looked,
// going direct). r.mu is held.
func (r *Relay) toSpoolLocked(key, value []byte, a *delivery.Ack, overflow bool) error {
	if !r.spooling.Load() {
		if r.route.Load() {
			// Between the caller's look and the lock, the replayer drained
			// the spool: go direct, still in order.
			if err := r.direct(key, value, a, overflow); !isBackpressure(err) {
				return err
			}
		}
		r.startSpoolingLocked("Kafka is not taking records")
	}
	one := [1]delivery.Record{{Key: key, Value: value}}
	_, err := r.appendLocked(one[:], a, spool.FrameSize(len(key), len(value)))
	return err
}

// appendLocked appends recs (size bytes of frames) to the main lane, all
// or none: a client retrying a half-spooled batch would duplicate its
// first half. It returns len(recs), or 0 with the error. r.mu is held.
func (r *Relay) appendLocked(recs []delivery.Record, a *delivery.Ack, size int64) (n int, err error) {
	if _, waiting := r.sp.Waiting(); waiting+size > r.sp.MaxBytes {
		return 0, fmt.Errorf("spool: cannot append %d records of %d bytes: %d of %d bytes waiting: %w",
			len(recs), size, waiting, r.sp.MaxBytes, spool.ErrFull)
	}
	// One write for the whole batch (spool.AppendBatch says why), all or
	// none.
	if err := r.sp.Main.AppendBatch(len(recs), func(i int) ([]byte, []byte) { return recs[i].Key, recs[i].Value }); err != nil {
		return 0, err
	}
	r.appends.Add(uint64(len(recs)))
	spooledTotal.Add(float64(len(recs)))
	if a != nil {
		a.SetSpooled()
	}
	return len(recs), nil
}

// spoolError maps the error of a spool append (or of the direct produce
// tried under the lock) to the client's answer.
func (r *Relay) spoolError(err error) error {
	switch {
	case err == nil:
		r.poke()
		return nil
	case errors.Is(err, spool.ErrFull):
		spoolRejected.WithLabelValues("full").Inc()
		r.thr.Error("spool-full", "spool full: answering 503", zap.Error(err))
		return ErrSpoolFull
	case httpStatus(err) != 0:
		return err // the direct produce's own answer
	}
	spoolRejected.WithLabelValues("disk_error").Inc()
	r.thr.Error("spool-error", "spool append failed: answering 503", zap.Error(err))
	return status.Retry(http.StatusServiceUnavailable, "spool_error", "cannot write the disk spool: "+err.Error(), 5*time.Second)
}

func (r *Relay) startSpoolingLocked(why string) {
	r.spooling.Store(true)
	spoolingGauge.Set(1)
	spoolEpisodes.Inc()
	reason := why
	if p := r.reason.Load(); p != nil && *p != "" {
		reason = *p
	}
	r.log.Warn("spooling started: records go to the disk spool until Kafka takes them again", zap.String("reason", reason))
}

func (r *Relay) direct(key, value []byte, a *delivery.Ack, overflow bool) error {
	if overflow && r.spread != nil {
		return r.directOverflow(key, value, a)
	}
	if a == nil {
		return r.kafka.Produce(key, value)
	}
	a.Add(1)
	if err := r.kafka.ProduceTracked(key, value, a); err != nil {
		a.Delivered(nil) // not produced: nothing to wait for
		return err
	}
	return nil
}

// ProduceBatch takes every record of a batch or none: a client retrying
// a half-accepted batch would duplicate its first half. The records go
// straight to Kafka when its queue has room for all of them, else to the
// spool when it has room for all of them, else the batch is refused with
// one 503. It returns how many records were taken: len(recs), or 0 with
// the error. (Without a spool, or when the spool fails a batch whose
// first records went straight to Kafka, the first n may have been taken;
// the error is then about the rest.)
func (r *Relay) ProduceBatch(recs []delivery.Record, a *delivery.Ack) (int, error) {
	if len(recs) == 0 {
		return 0, nil
	}
	var size int64
	for _, rec := range recs {
		size += int64(len(rec.Key) + len(rec.Value))
	}
	if r.sp == nil {
		// The last tenth of the queue is kept for single records, so that
		// concurrent requests filling it cannot cut a batch in two.
		if !r.roomFor(len(recs), size) {
			return 0, errBatchNoRoom
		}
		for i, rec := range recs {
			if err := r.direct(rec.Key, rec.Value, a, rec.Overflow); err != nil {
				return i, err
			}
		}
		return len(recs), nil
	}
	r.entering.Add(1)
	if !r.spooling.Load() && r.route.Load() && r.roomFor(len(recs), size) {
		i := 0
		var err error
		for ; i < len(recs); i++ {
			if err = r.direct(recs[i].Key, recs[i].Value, a, recs[i].Overflow); err != nil {
				break
			}
		}
		r.entering.Add(-1)
		if i == len(recs) {
			return i, nil
		}
		if !isBackpressure(err) {
			return i, err
		}
		// Another request took the room meanwhile: the rest goes to the
		// spool (behind the records just produced, so still in order).
		n, err := r.spoolBatch(recs[i:], a, true)
		return i + n, err
	}
	r.entering.Add(-1)
	return r.spoolBatch(recs, a, false)
}

var errBatchNoRoom = status.Retry(http.StatusServiceUnavailable, "queue_full", "producer queue has no room for this batch", time.Second)

// roomFor reports whether the producer's queue can take n records of
// size bytes and still keep a tenth of it free.
func (r *Relay) roomFor(n int, size int64) bool {
	recs, bytes := r.kafka.Room()
	return n <= recs-r.kafka.QueueMax()/10 && size <= bytes
}

// spoolBatch appends recs to the main lane all or none (all: the caller
// already produced the records before them).
func (r *Relay) spoolBatch(recs []delivery.Record, a *delivery.Ack, mustTakeAll bool) (int, error) {
	var size int64
	for _, rec := range recs {
		size += spool.FrameSize(len(rec.Key), len(rec.Value))
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.spooling.Load() {
		if r.route.Load() && !mustTakeAll && r.roomFor(len(recs), size) {
			// The replayer drained the spool since the caller looked.
			for i, rec := range recs {
				if err := r.direct(rec.Key, rec.Value, a, rec.Overflow); err != nil {
					if !isBackpressure(err) {
						return i, err
					}
					n, err := r.appendLocked(recs[i:], a, size)
					return i + n, r.spoolError(err)
				}
			}
			return len(recs), nil
		}
		r.startSpoolingLocked("Kafka's queue has no room for a batch")
	}
	n, err := r.appendLocked(recs, a, size)
	return n, r.spoolError(err)
}

// Keep is the producer's failure handler for a record librdkafka gave up
// on. A retriable failure goes to the kept lane, and spooling starts so
// that later records queue behind it; a permanent one is set aside (dead
// letters or quarantine). It returns nil once the record is safe; without
// a spool a retriable failure is lost, which the producer counts.
func (r *Relay) Keep(key, value []byte, f *delivery.Failure) error {
	if f.Class == delivery.Permanent {
		return r.setAside(key, value, f, nil)
	}
	if r.sp == nil {
		return f
	}
	r.mu.Lock()
	if !r.spooling.Load() {
		r.startSpoolingLocked("librdkafka handed records back (" + f.Code + ")")
	}
	err := r.sp.Kept.Append(key, value)
	if err == nil {
		r.appends.Add(1)
	}
	r.mu.Unlock()
	if err != nil {
		return fmt.Errorf("relay: keeping a record librdkafka handed back (%s): %w", f.Code, err)
	}
	spooledTotal.Inc()
	keptTotal.Inc()
	r.poke()
	return nil
}

// Sync makes every spooled record durable (shutdown, acknowledged mode).
func (r *Relay) Sync() error {
	if r.sp == nil {
		return nil
	}
	return r.sp.Sync()
}

func (r *Relay) oldest() time.Time {
	if r.sp == nil {
		return time.Time{}
	}
	k, m := r.sp.Kept.Stats(), r.sp.Main.Stats()
	if k.Records > 0 {
		return k.Oldest
	}
	return m.Oldest
}
