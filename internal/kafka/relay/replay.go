package relay

import (
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/beacongate/beacongate/internal/kafka/delivery"
	"github.com/beacongate/beacongate/internal/kafka/spool"
)

// handoffRecords bounds the last round, read while appends wait.
const handoffRecords = 2000

var (
	errReplayBusy = errors.New("relay: producer queue has no room to replay into")
	errRoundFull  = errors.New("relay: replay round full")
	errAborted    = errors.New("relay: replay abandoned at shutdown")
)

// replayLoop drains the spool into Kafka while Kafka is healthy, kept
// lane first, and switches back to direct producing once both lanes are
// empty.
func (r *Relay) replayLoop() {
	defer r.done.Done()
	t := time.NewTicker(200 * time.Millisecond)
	defer t.Stop()
	var backoff time.Duration
	var retryAt time.Time
	// proven: the last round was committed with every record in Kafka
	// since Kafka last turned healthy, so the next may hand over to
	// producing directly (see replayRound). The first round after an
	// outage may not: Kafka can look healthy and still fail every record,
	// and records produced directly meanwhile would all be handed back at
	// once, more than the kept lane may hold.
	proven := false
	for {
		select {
		case <-r.stop:
			return
		case <-r.wake:
		case <-t.C:
		}
		if !r.healthy.Load() || !r.spooling.Load() {
			proven = false
		}
		for r.spooling.Load() && r.healthy.Load() && !time.Now().Before(retryAt) {
			if !r.quiet() {
				break // records produced directly are older: they resolve first
			}
			lane, name := r.nextLane()
			if lane == nil {
				r.mu.Lock()
				// Appends happen under mu too: nothing can slip into the
				// spool between this check and the switch.
				if r.sp.Main.Empty() && r.sp.Kept.Empty() {
					r.spooling.Store(false)
					spoolingGauge.Set(0)
					r.log.Info("spool drained: producing directly again")
				}
				r.mu.Unlock()
				break
			}
			n, err := r.replayRound(lane, name, proven)
			if errors.Is(err, errAborted) {
				return
			}
			if errors.Is(err, errReplayBusy) {
				break // the queue drains on its own; try again on the next tick
			}
			if n > 0 {
				proven = err == nil
			}
			if err != nil {
				proven = false
				backoff = min(max(2*backoff, r.cfg.RetryBackoff), 30*time.Second)
				retryAt = time.Now().Add(backoff)
				r.thr.Warn("replay", "spool replay round failed; it will be replayed again", zap.String("lane", name),
					zap.Int("records", n), zap.Duration("retry_in", backoff), zap.Error(err))
				break
			}
			backoff = 0
			select {
			case <-r.stop:
				return
			default:
			}
		}
	}
}

// quiet reports whether every record produced directly has left the
// producer's memory (delivered, or handed back into the kept lane), and
// no producer is about to add one: only then does replaying keep order.
func (r *Relay) quiet() bool {
	return r.entering.Load() == 0 && int64(r.kafka.Outstanding())-r.replayOut.Load() <= 0
}

func (r *Relay) nextLane() (*spool.Spool, string) {
	switch {
	case !r.sp.Kept.Empty():
		return r.sp.Kept, keptDir
	case !r.sp.Main.Empty():
		return r.sp.Main, "main"
	}
	return nil, ""
}

// round is one batch of replayed records in flight: the producer tells it
// each record's outcome (it owns failures, so they are not re-spooled
// behind later records).
type round struct {
	r       *Relay
	pending atomic.Int64 // a hold, released by release, plus the records
	done    chan struct{}
	once    sync.Once
	mu      sync.Mutex
	retry   []delivery.Record // retriable failures, in report order
	aside   []aside           // permanent failures
}

type aside struct {
	rec delivery.Record
	f   *delivery.Failure
}

func newRound(r *Relay) *round {
	rd := &round{r: r, done: make(chan struct{})}
	rd.pending.Store(1)
	return rd
}

func (rd *round) add() {
	rd.pending.Add(1)
	rd.r.replayOut.Add(1)
}

func (rd *round) finish() {
	if rd.pending.Add(-1) == 0 {
		rd.once.Do(func() { close(rd.done) })
	}
}

func (rd *round) release() { rd.finish() }

// Delivered implements delivery.Tracker: a record is in Kafka.
func (rd *round) Delivered(error) {
	rd.r.replayOut.Add(-1)
	rd.finish()
}

// Failed implements delivery.FailureOwner.
func (rd *round) Failed(key, value []byte, f *delivery.Failure) {
	rd.mu.Lock()
	if f.Class == delivery.Permanent {
		rd.aside = append(rd.aside, aside{delivery.Record{Key: key, Value: value}, f})
	} else {
		rd.retry = append(rd.retry, delivery.Record{Key: key, Value: value})
	}
	rd.mu.Unlock()
	rd.r.replayOut.Add(-1)
	rd.finish()
}

// produce sends recs into the round, in order, and returns those it could
// not (the producer's queue filled up).
func (rd *round) produce(recs []delivery.Record) []delivery.Record {
	for i, rec := range recs {
		rd.add()
		if err := rd.r.produceReplayed(rec.Key, rec.Value, rd); err != nil {
			rd.r.replayOut.Add(-1)
			rd.finish()
			return recs[i:]
		}
	}
	return nil
}

// wait waits for every record of the round. Only an abandoned shutdown
// (Stop's deadline) ends it early.
func (rd *round) wait() error {
	rd.release()
	start := time.Now()
	t := time.NewTicker(30 * time.Second)
	defer t.Stop()
	for {
		select {
		case <-rd.done:
			return nil
		case <-rd.r.abort:
			return errAborted
		case <-t.C:
			// Not a timeout: the first copies may still be delivered, so
			// reading them again would duplicate them. librdkafka settles
			// every record within message.timeout.ms.
			rd.r.thr.Warn("replay-slow", "a replay round is still waiting for Kafka's acknowledgements",
				zap.Int64("records_waiting", rd.pending.Load()), zap.Duration("for", time.Since(start)))
		}
	}
}

// replayRound produces up to one round from lane, waits for every
// record's outcome, produces the retriable failures again (in order,
// after a backoff, once Kafka is healthy) until none is left, sets the
// permanent failures aside, and only then commits the lane's cursor past
// the round. A crash before the commit replays the round again:
// at-least-once.
func (r *Relay) replayRound(lane *spool.Spool, name string, mayHandOff bool) (int, error) {
	recRoom, byteRoom := r.kafka.Room()
	maxRecs := min(r.cfg.ReplayBatch, recRoom-r.kafka.QueueMax()/10)
	maxBytes := min(r.cfg.ReplayBytes, byteRoom/2)
	if maxRecs <= 0 || maxBytes <= 0 {
		return 0, errReplayBusy
	}
	// The last round hands over to producing directly. When all that is
	// left fits in this round, it is read with appends held off (r.mu),
	// and, once every record of it is in the producer's queue, records go
	// straight to Kafka again: those accepted from then on queue behind
	// the round's. Waiting for an empty spool instead never ends under a
	// steady load: records arrive during every round. Only after a round
	// that Kafka took whole (mayHandOff).
	handoff := false
	if lane == r.sp.Main && mayHandOff {
		if recs, bytes := r.sp.Waiting(); recs <= int64(min(maxRecs, handoffRecords)) && bytes <= maxBytes {
			r.mu.Lock()
			handoff = true
		}
	}
	rd := newRound(r)
	var size int64
	var produceErr error
	pos, n, err := lane.Read(maxRecs, func(key, value []byte, _ time.Time) error {
		sz := int64(len(key) + len(value))
		if size > 0 && size+sz > maxBytes {
			return errRoundFull
		}
		if aerr := r.kafka.Admit(len(key), len(value)); aerr != nil {
			// The topic's limit went down since the record was spooled:
			// it can never be delivered; set it aside in its place.
			rd.aside = append(rd.aside, aside{delivery.Record{Key: clone(key), Value: clone(value)},
				&delivery.Failure{Code: "MSG_SIZE_TOO_LARGE", Class: delivery.Permanent, Err: aerr}})
			size += sz
			return nil
		}
		rd.add()
		if perr := r.produceReplayed(key, value, rd); perr != nil {
			r.replayOut.Add(-1)
			rd.finish()
			produceErr = perr
			return perr
		}
		size += sz
		return nil
	})
	if errors.Is(err, errRoundFull) || (err != nil && errors.Is(err, produceErr)) {
		err = nil
	}
	if handoff {
		handedOff := err == nil && produceErr == nil && r.sp.Kept.Empty() && lane.Stats().Records == int64(n)
		if handedOff {
			r.lastRound.Store(true)
			r.spooling.Store(false)
			r.log.Info("spool drained: producing directly again", zap.Int("last_round", n))
		}
		r.mu.Unlock()
		if handedOff {
			defer func() {
				r.mu.Lock()
				defer r.mu.Unlock()
				if !lane.Empty() && !r.spooling.Load() {
					// The round was not committed: its records are still
					// in the spool and go before anything newer again.
					r.startSpoolingLocked("the last replay round could not be committed")
				}
				r.lastRound.Store(false)
				if !r.spooling.Load() {
					spoolingGauge.Set(0)
				}
			}()
		}
	}
	if n == 0 {
		rd.release()
		if err != nil {
			return 0, err
		}
		if produceErr != nil {
			return 0, errReplayBusy
		}
		// Nothing to replay, but Read may have skipped a corrupt frame:
		// commit its position, or the lane never reads as empty.
		return 0, lane.Commit(pos)
	}
	if werr := rd.wait(); werr != nil {
		return n, werr
	}
	for attempt := 1; len(rd.retry) > 0; attempt++ {
		failed := len(rd.retry)
		if werr := r.waitToRetry(attempt); werr != nil {
			return n, werr
		}
		again := rd.retry
		next := newRound(r)
		rest := next.produce(again)
		if werr := next.wait(); werr != nil {
			return n, werr
		}
		rd.aside = append(rd.aside, next.aside...)
		rd.retry = append(next.retry, rest...)
		replayRetried.Add(float64(failed))
		r.thr.Warn("replay-retry", "replayed records failed and were produced again in order",
			zap.String("lane", name), zap.Int("failed", failed), zap.Int("still_failing", len(rd.retry)), zap.Int("attempt", attempt))
	}
	if aerr := r.setAsideAll(rd.aside); aerr != nil {
		// Not committed: the round is read again, and every record of it
		// that did reach Kafka is sent twice (at-least-once); none is lost.
		lane.Rewind()
		return n, aerr
	}
	if cerr := lane.Commit(pos); cerr != nil {
		lane.Rewind()
		return n, cerr
	}
	replayedTotal.Add(float64(n - len(rd.aside)))
	return n, err
}

// waitToRetry waits before producing failed records again: a backoff
// that doubles from RetryBackoff to 30s, and then until Kafka is healthy.
func (r *Relay) waitToRetry(attempt int) error {
	d := r.cfg.RetryBackoff << min(attempt-1, 6)
	t := time.NewTimer(min(d, 30*time.Second))
	defer t.Stop()
	// A shutdown ends the wait at once: the round's records are all
	// settled (none is in flight), so leaving it uncommitted loses
	// nothing; the next start replays it.
	select {
	case <-t.C:
	case <-r.stop:
		return errAborted
	}
	for !r.healthy.Load() {
		select {
		case <-time.After(r.cfg.HealthInterval):
		case <-r.stop:
			return errAborted
		}
	}
	return nil
}

func clone(b []byte) []byte { return append([]byte(nil), b...) }
