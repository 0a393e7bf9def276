package relay

import (
	"errors"
	"time"

	"go.uber.org/zap"
)

var errReplayBusy = errors.New("relay: producer queue has no room to replay into")

// replayLoop drains the spool into Kafka while Kafka is healthy, and
// switches back to direct producing once the spool is empty.
func (r *Relay) replayLoop() {
	defer r.done.Done()
	t := time.NewTicker(200 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-r.stop:
			return
		case <-r.wake:
		case <-t.C:
		}
		for r.spooling.Load() && r.kafkaOK.Load() {
			n, err := r.replayRound()
			if errors.Is(err, errReplayBusy) {
				break // the queue drains on its own; try again on the next tick
			}
			if err != nil {
				r.thr.Warn("replay", "spool replay round failed; it will be read again", zap.Error(err))
				break
			}
			if n == 0 {
				r.mu.Lock()
				// Appends happen under mu too: nothing can slip into the
				// spool between this check and the switch.
				if r.spool.Empty() {
					r.spooling.Store(false)
					spoolingGauge.Set(0)
					r.log.Info("spool drained: producing directly again")
				}
				r.mu.Unlock()
				break
			}
			select {
			case <-r.stop:
				return
			default:
			}
		}
	}
}

// replayRound produces up to one batch from the spool and commits the
// spool cursor once Kafka acknowledged every record of it (a record
// librdkafka gives up on is re-spooled by Keep, so it is not lost either).
// A crash before the commit replays the round again: at-least-once.
func (r *Relay) replayRound() (int, error) {
	room := r.kafka.QueueMax()/2 - r.kafka.Len()
	if room <= 0 {
		return 0, errReplayBusy
	}
	max := min(room, r.cfg.ReplayBatch)
	round := newAck(0)
	pos, n, err := r.spool.Read(max, func(key, value []byte, _ time.Time) error {
		round.pending.Add(1)
		if err := r.kafka.ProduceTracked(key, value, round); err != nil {
			round.pending.Add(-1)
			return err
		}
		return nil
	})
	if n == 0 {
		if err != nil {
			if isBackpressure(err) {
				return 0, errReplayBusy
			}
			return 0, err
		}
		// Nothing to replay, but Read may have skipped a corrupt frame:
		// commit its position, or the spool never reads as empty.
		return 0, r.spool.Commit(pos)
	}
	round.Delivered(nil) // release the hold
	select {
	case <-round.done:
	case <-time.After(r.cfg.ReplayTimeout):
		// Read the round again from the committed position: the records
		// may be delivered twice (at-least-once), never skipped.
		r.spool.Rewind()
		return 0, errors.New("relay: replayed records not acknowledged within the replay timeout")
	}
	if cerr := r.spool.Commit(pos); cerr != nil {
		return 0, cerr
	}
	replayedTotal.Add(float64(n))
	if ferr := round.err(); ferr != nil {
		r.thr.Warn("replay-failed", "some replayed records failed again and were re-spooled or counted lost", zap.Error(ferr))
	}
	return n, nil
}
