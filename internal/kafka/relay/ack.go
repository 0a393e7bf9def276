package relay

import (
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/beacongate/beacongate/internal/status"
)

// Ack waits for the records of one acknowledged-mode request (or one
// replay round): each is done when Kafka acknowledged it, or when it is in
// the spool and the spool was synced.
type Ack struct {
	// pending starts at 1, a hold released by the waiter, so records
	// acknowledged while others are still being produced cannot finish
	// the wait early.
	pending atomic.Int64
	done    chan struct{}
	once    sync.Once
	mu      sync.Mutex
	first   error
	spooled atomic.Bool
	appends uint64 // the relay's spool appends when the ack began
}

func newAck(appends uint64) *Ack {
	a := &Ack{done: make(chan struct{}), appends: appends}
	a.pending.Store(1)
	return a
}

// Delivered implements the producer's Tracker.
func (a *Ack) Delivered(err error) {
	if err != nil {
		a.mu.Lock()
		if a.first == nil {
			a.first = err
		}
		a.mu.Unlock()
	}
	if a.pending.Add(-1) == 0 {
		a.once.Do(func() { close(a.done) })
	}
}

func (a *Ack) err() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.first
}

// NewAck starts an acknowledged-mode request.
func (r *Relay) NewAck() *Ack { return newAck(r.appends.Load()) }

// ProduceAcked produces a record whose safety the request waits for.
func (r *Relay) ProduceAcked(key, value []byte, a *Ack) error { return r.produce(key, value, a) }

// ErrAckTimeout: the records were not safe within the ack timeout. They
// may still reach Kafka: a client that retries can duplicate them.
var ErrAckTimeout = status.Retry(http.StatusServiceUnavailable, "ack_timeout", "records not acknowledged by Kafka nor spooled within the ack timeout", time.Second)

// WaitAcked waits until every record given to ProduceAcked with a is safe.
func (r *Relay) WaitAcked(a *Ack, timeout time.Duration) error {
	a.Delivered(nil) // release the hold
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-a.done:
	case <-t.C:
		ackTimeouts.Inc()
		return ErrAckTimeout
	}
	if err := a.err(); err != nil {
		return status.Retry(http.StatusServiceUnavailable, "ack_failed", "records could not be delivered nor spooled: "+err.Error(), time.Second)
	}
	// A record went to the spool (directly, or re-spooled after librdkafka
	// gave up on it): the answer waits for the fsync.
	if r.spool != nil && (a.spooled.Load() || r.appends.Load() != a.appends) {
		if err := r.spool.Sync(); err != nil {
			return status.Retry(http.StatusServiceUnavailable, "spool_error", "cannot sync the disk spool: "+err.Error(), 5*time.Second)
		}
	}
	return nil
}
