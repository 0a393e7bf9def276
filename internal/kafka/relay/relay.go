// Package relay decides where each record goes so that nothing the
// gateway acknowledged is lost: straight to the Kafka producer while Kafka
// can take it, else to the local disk spool, from which a replayer
// re-produces the records in order once Kafka is healthy again. It also
// carries acknowledged mode (a request answered only once its records are
// in Kafka or fsynced in the spool) and dead letters.
//
// Per-key order across the switch (#4): once a record has gone to the
// spool, every later record goes behind it into the spool until the
// replayer has drained it; only then, under the same lock as spool
// appends, do records go straight to Kafka again. Replayed records enter
// librdkafka's queue before any direct one, and the idempotent producer
// keeps that order per partition.
package relay

import (
	"errors"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/beacongate/beacongate/internal/kafka/spool"
	"github.com/beacongate/beacongate/internal/status"
	"github.com/beacongate/beacongate/internal/throttle"
)

// Tracker is told what became of one record (the producer's Tracker).
type Tracker = interface{ Delivered(err error) }

// Kafka is what the relay needs of the producer.
type Kafka interface {
	Produce(key, value []byte) error
	ProduceTracked(key, value []byte, t Tracker) error
	Ready() (bool, string)
	Len() int
	QueueMax() int
}

// Config configures the relay; the zero value is usable.
type Config struct {
	// HealthInterval is how often Kafka's readiness is polled to decide
	// between direct and spooled. Default 100ms.
	HealthInterval time.Duration
	// ReplayBatch is the most records replayed in one round; the spool
	// cursor is committed when Kafka has acknowledged all of them.
	// Default 2000.
	ReplayBatch int
	// ReplayTimeout bounds the wait for one round's acknowledgements;
	// past it the round is read again (at-least-once). Default 2m.
	ReplayTimeout time.Duration
	// StateFile, when set, records every second how many records are in
	// the producer's memory, so a killed process's possible loss is
	// counted at the next start (see state.go). "" disables it.
	StateFile string
}

func (c Config) withDefaults() Config {
	if c.HealthInterval == 0 {
		c.HealthInterval = 100 * time.Millisecond
	}
	if c.ReplayBatch == 0 {
		c.ReplayBatch = 2000
	}
	if c.ReplayTimeout == 0 {
		c.ReplayTimeout = 2 * time.Minute
	}
	return c
}

// Validate rejects unusable settings.
func (c Config) Validate() error {
	c = c.withDefaults()
	if c.HealthInterval < 0 || c.ReplayBatch < 0 || c.ReplayTimeout < 0 {
		return fmt.Errorf("relay: negative setting in %+v", c)
	}
	return nil
}

// ErrSpoolFull is answered (503, fast) when Kafka cannot take a record and
// the spool has no room for it either.
var ErrSpoolFull = status.Retry(http.StatusServiceUnavailable, "spool_full", "Kafka is not taking records and the disk spool is full", 5*time.Second)

// Relay routes records; it implements ingest.Sink.
type Relay struct {
	cfg   Config
	kafka Kafka
	spool *spool.Spool // nil: no spool, Kafka's backpressure goes to the client
	log   *zap.Logger
	thr   *throttle.Logger
	dlq   *DeadLetters // nil: dead letters off

	kafkaOK  atomic.Bool
	spooling atomic.Bool   // records go to the spool until the replayer drains it
	appends  atomic.Uint64 // spool appends so far, to know whether an ack needs a Sync
	// mu makes "spool empty → go direct" atomic with spool appends.
	mu sync.Mutex

	wake chan struct{}
	stop chan struct{}
	done sync.WaitGroup
}

// New builds a relay over k and, optionally, sp. Start it before traffic.
func New(cfg Config, k Kafka, sp *spool.Spool, log *zap.Logger) (*Relay, error) {
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	r := &Relay{cfg: cfg, kafka: k, spool: sp, log: log, thr: throttle.New(log, 10*time.Second),
		wake: make(chan struct{}, 1), stop: make(chan struct{})}
	ok, _ := k.Ready()
	r.kafkaOK.Store(ok)
	r.checkState()
	if sp != nil && !sp.Empty() {
		// A previous process left records: they go first, and everything
		// after them goes behind them until they are replayed.
		st := sp.Stats()
		r.spooling.Store(true)
		spoolingGauge.Set(1)
		log.Warn("the spool holds records from before: replaying them before producing directly",
			zap.Int64("records", st.Records), zap.Int64("bytes", st.Bytes), zap.Time("oldest", st.Oldest))
	}
	return r, nil
}

// Start runs the health monitor and, with a spool, the replayer.
func (r *Relay) Start() {
	r.done.Add(1)
	go r.monitor()
	if r.spool != nil {
		r.done.Add(1)
		go r.replayLoop()
	}
}

// Stop ends the background work; call it after the HTTP server stopped
// and before flushing the producer.
func (r *Relay) Stop() {
	close(r.stop)
	r.done.Wait()
}

// Spooling reports whether records currently go to the spool.
func (r *Relay) Spooling() bool { return r.spooling.Load() }

func (r *Relay) monitor() {
	defer r.done.Done()
	t := time.NewTicker(r.cfg.HealthInterval)
	defer t.Stop()
	lastState := time.Time{}
	for {
		select {
		case <-r.stop:
			return
		case <-t.C:
		}
		if time.Since(lastState) >= time.Second {
			r.writeState()
			lastState = time.Now()
		}
		ok, reason := r.kafka.Ready()
		if was := r.kafkaOK.Swap(ok); was != ok {
			if ok {
				r.log.Info("Kafka is taking records again")
				r.poke()
			} else {
				r.log.Warn("Kafka is not taking records: new records go to the spool (if configured)", zap.String("reason", reason))
			}
		}
		if r.spool != nil {
			st := r.spool.Stats()
			spoolRecords.Set(float64(st.Records))
			spoolBytes.Set(float64(st.Bytes))
			age := 0.0
			if !st.Oldest.IsZero() {
				age = time.Since(st.Oldest).Seconds()
			}
			spoolAge.Set(age)
			spoolCorrupt.Set(float64(r.spool.Corrupt()))
		}
	}
}

func (r *Relay) poke() {
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// isBackpressure reports errors that mean "Kafka cannot take it now"
// (as opposed to "this record is bad", e.g. too large).
func isBackpressure(err error) bool {
	var se interface{ HTTPStatus() int }
	return err != nil && errors.As(err, &se) && se.HTTPStatus() == http.StatusServiceUnavailable
}

// Produce implements ingest.Sink.
func (r *Relay) Produce(key, value []byte) error { return r.produce(key, value, nil) }

func (r *Relay) produce(key, value []byte, a *Ack) error {
	if r.spool == nil {
		return r.direct(key, value, a)
	}
	if !r.spooling.Load() && r.kafkaOK.Load() {
		err := r.direct(key, value, a)
		if !isBackpressure(err) {
			return err
		}
	}
	r.mu.Lock()
	if !r.spooling.Load() {
		if r.kafkaOK.Load() {
			// Between the check above and the lock, the replayer drained
			// the spool: go direct, still in order.
			if err := r.direct(key, value, a); !isBackpressure(err) {
				r.mu.Unlock()
				return err
			}
		}
		r.spooling.Store(true)
		spoolingGauge.Set(1)
		spoolEpisodes.Inc()
		r.log.Warn("spooling started: records go to the disk spool until Kafka takes them again")
	}
	err := r.spool.Append(key, value)
	if err == nil {
		r.appends.Add(1)
	}
	r.mu.Unlock()
	if err != nil {
		if errors.Is(err, spool.ErrFull) {
			spoolRejected.WithLabelValues("full").Inc()
			r.thr.Error("spool-full", "spool full: answering 503", zap.Error(err))
			return ErrSpoolFull
		}
		spoolRejected.WithLabelValues("disk_error").Inc()
		r.thr.Error("spool-error", "spool append failed: answering 503", zap.Error(err))
		return status.Retry(http.StatusServiceUnavailable, "spool_error", "cannot write the disk spool: "+err.Error(), 5*time.Second)
	}
	spooledTotal.Inc()
	if a != nil {
		a.spooled.Store(true)
	}
	r.poke()
	return nil
}

func (r *Relay) direct(key, value []byte, a *Ack) error {
	if a == nil {
		return r.kafka.Produce(key, value)
	}
	a.pending.Add(1)
	if err := r.kafka.ProduceTracked(key, value, a); err != nil {
		a.pending.Add(-1)
		return err
	}
	return nil
}

// Keep is the producer's failure handler: a record librdkafka gave up on
// goes to the spool (and spooling starts, so later records queue behind
// it). Without a spool it is lost, which the producer counts.
func (r *Relay) Keep(key, value []byte, cause error) error {
	if r.spool == nil {
		return cause
	}
	r.mu.Lock()
	if !r.spooling.Load() {
		r.spooling.Store(true)
		spoolingGauge.Set(1)
		spoolEpisodes.Inc()
	}
	err := r.spool.Append(key, value)
	if err == nil {
		r.appends.Add(1)
	}
	r.mu.Unlock()
	if err != nil {
		return fmt.Errorf("relay: spooling a failed record: %w", err)
	}
	spooledTotal.Inc()
	keptTotal.Inc()
	r.poke()
	return nil
}

// Sync makes every spooled record durable (shutdown, acknowledged mode).
func (r *Relay) Sync() error {
	if r.spool == nil {
		return nil
	}
	return r.spool.Sync()
}
