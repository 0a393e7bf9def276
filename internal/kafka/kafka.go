// Package kafka builds the gateway's Kafka side — the producer, the spool
// directory, the relay between them and the dead letters — for both the
// server and `beacongate spool replay`, and shuts it down in order.
//
// The flow, one package each:
//
//	ingest (HTTP) → relay → producer → Kafka
//	                  ↘ spool ↗ (replayed in order)
//
// delivery holds the types both sides share; embedded is the development
// broker.
package kafka

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"time"

	"go.uber.org/zap"

	"github.com/beacongate/beacongate/internal/kafka/delivery"
	"github.com/beacongate/beacongate/internal/kafka/producer"
	"github.com/beacongate/beacongate/internal/kafka/relay"
	"github.com/beacongate/beacongate/internal/kafka/spool"
)

// Config configures the Kafka side.
type Config struct {
	Producer producer.Config
	// Spool.Dir "" turns the spool off: a full producer queue is a 503 and
	// records librdkafka gives up on are lost (counted).
	Spool spool.Config
	Relay relay.Config
}

// Side is the running Kafka side.
type Side struct {
	Producer *producer.Producer
	Spools   *relay.Spools // nil without a spool
	Relay    *relay.Relay
	log      *zap.Logger
}

// Open opens the spool directory (refusing one written for another
// topic), starts the producer and the relay, and wires them: records
// librdkafka gives up on go to the relay, which keeps them.
func Open(cfg Config, log *zap.Logger) (*Side, error) {
	s := &Side{log: log}
	topic := cfg.Producer.Topic
	if topic == "" {
		topic = producer.DefaultTopic
	}
	if cfg.Spool.Dir != "" {
		queueRecords, queueBytes := cfg.Producer.QueueLimits()
		sp, err := relay.OpenSpools(cfg.Spool, topic, queueBytes, queueRecords, log.Named("spool"))
		if err != nil {
			return nil, err
		}
		s.Spools = sp
		if cfg.Producer.TopicMaxBytes == 0 {
			cfg.Producer.TopicMaxBytes = sp.TopicMaxBytes()
		}
		if cfg.Relay.StateFile == "" {
			cfg.Relay.StateFile = filepath.Join(cfg.Spool.Dir, "inflight")
		}
	}
	prod, err := producer.New(cfg.Producer, log.Named("producer"))
	if err != nil {
		s.closeSpools()
		return nil, err
	}
	s.Producer = prod
	rel, err := relay.New(cfg.Relay, prod, s.Spools, log.Named("relay"))
	if err != nil {
		prod.Close()
		s.closeSpools()
		return nil, err
	}
	s.Relay = rel
	prod.SetFailureHandler(rel.Keep)
	rel.Start()
	return s, nil
}

func (s *Side) closeSpools() {
	if s.Spools != nil {
		if err := s.Spools.Close(); err != nil {
			s.log.Error("closing the spool failed", zap.Error(err))
		}
	}
}

// Report is what a shutdown did with the records.
type Report struct {
	Delivered   int64 // records Kafka acknowledged during this run
	Waiting     int64 // records left in the spool for the next start (kept, not lost)
	Quarantined int64 // records in the spool's quarantine
	Lost        int64 // records lost during this run (must be 0)
}

// Shutdown drains and closes the Kafka side within ctx: the spool is
// replayed into Kafka while Kafka takes records, the producer delivers
// what it holds, what it cannot deliver goes back to the spool, and the
// spool and producer are closed. The HTTP server must have stopped
// first. Each step is logged with its duration, and every wait ends at
// ctx's deadline (less a reserve for handing records back to the spool).
func (s *Side) Shutdown(ctx context.Context) Report { return s.shutdown(ctx, 2*time.Second) }

// Replay is Shutdown for `beacongate spool replay`: it waits for Kafka
// for as long as ctx allows.
func (s *Side) Replay(ctx context.Context) Report { return s.shutdown(ctx, 24*time.Hour) }

// shutdown: patience is how long the spool's replay waits for a Kafka
// that does not take records.
func (s *Side) shutdown(ctx context.Context, patience time.Duration) Report {
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(15 * time.Second)
	}
	// A reserve at the end for the purge: librdkafka hands its records
	// back and the relay writes them to the kept lane.
	reserve := min(max(time.Until(deadline)/10, time.Second), time.Until(deadline)/2)
	work, cancel := context.WithDeadline(ctx, deadline.Add(-reserve))
	defer cancel()

	step := time.Now()
	if s.Spools != nil {
		waiting := s.Relay.Drain(work, patience)
		s.log.Info("shutdown: spool replayed into Kafka", zap.Int64("records_waiting", waiting), zap.Duration("took", time.Since(step)))
	}
	step = time.Now()
	s.Relay.Stop(work)
	s.log.Info("shutdown: relay stopped", zap.Duration("took", time.Since(step)))

	step = time.Now()
	left := s.Producer.Flush(time.Until(deadline.Add(-reserve)))
	s.log.Info("shutdown: producer flushed", zap.Int("undelivered", left), zap.Duration("took", time.Since(step)))
	if left > 0 && s.Spools != nil {
		step = time.Now()
		left = s.handBack(deadline)
		s.log.Warn("shutdown: records Kafka did not take were moved to the spool for the next start",
			zap.Int("left_in_producer", left), zap.Duration("took", time.Since(step)))
	}

	var r Report
	if s.Spools != nil {
		step = time.Now()
		err := errors.Join(s.Relay.Sync(), s.Spools.Close())
		r.Waiting, _ = s.Spools.Waiting()
		r.Quarantined = s.Spools.Quarantine.Stats().Records
		if err != nil {
			s.log.Error("shutdown: closing the spool failed", zap.Error(err))
		}
		s.log.Info("shutdown: spool closed", zap.Int64("records_waiting", r.Waiting), zap.Duration("took", time.Since(step)))
	}
	step = time.Now()
	s.Producer.Close()
	s.log.Info("shutdown: producer closed", zap.Duration("took", time.Since(step)))
	r.Delivered = s.Producer.Delivered()
	r.Lost = delivery.Lost()
	if r.Lost == 0 {
		s.Relay.CleanShutdown()
	}
	return r
}

// handBackGrace is how long past the shutdown deadline records librdkafka
// hands back may still be moving into the spool.
const handBackGrace = 30 * time.Second

// handBack purges librdkafka and waits until every record it held is in
// the spool's kept lane, and returns how many are left. That is local
// work (about 10 µs a record), normally done well within the reserve; but
// a record not handed back when the spool closes is lost, so a slow disk
// (writeback throttling a burst of appends) may take it past the
// deadline, by up to handBackGrace, for as long as records keep moving.
// Past the deadline each second is logged, so an operator sizing the
// grace period (Kubernetes' terminationGracePeriodSeconds) sees it.
func (s *Side) handBack(deadline time.Time) int {
	left := s.Producer.Purge(max(time.Until(deadline), 100*time.Millisecond))
	hardStop := deadline.Add(handBackGrace)
	for left > 0 && time.Now().Before(hardStop) {
		before := left
		left = s.Producer.Flush(time.Second)
		s.log.Warn("shutdown: past -shutdown.timeout, still moving records Kafka did not take into the spool",
			zap.Int("left_in_producer", left), zap.Duration("past_deadline", time.Since(deadline)))
		if left == before {
			break // no progress: the spool's disk is stuck; what is left is counted lost
		}
	}
	return left
}

// Close closes a Side after a failed start. No client was answered yet,
// but librdkafka may hold records: ones produced while it connected, or a
// replay round of the spool (still in the spool until committed). With a
// spool they are purged back into it before the producer closes, as a
// shutdown does, so that closing does not count them lost (and log that
// they are) when they are on disk.
func (s *Side) Close() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s.Relay.Stop(ctx)
	if s.Spools != nil && s.Producer.Outstanding() > 0 {
		if left := s.Producer.Purge(2 * time.Second); left > 0 {
			s.log.Warn("closing after a failed start: records still in the producer", zap.Int("records", left))
		}
		if err := s.Relay.Sync(); err != nil {
			s.log.Error("closing after a failed start: syncing the spool failed", zap.Error(err))
		}
	}
	s.Producer.Close()
	s.closeSpools()
}

// ErrLost is returned when a run lost records.
var ErrLost = errors.New("records were lost")

// Err is nil when nothing was lost.
func (r Report) Err() error {
	if r.Lost > 0 {
		return fmt.Errorf("%d acknowledged records were lost during this run (see the log): %w", r.Lost, ErrLost)
	}
	return nil
}
