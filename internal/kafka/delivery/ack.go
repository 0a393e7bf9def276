package delivery

import (
	"sync"
	"sync/atomic"
)

// Ack waits for the records of one acknowledged-mode request: each is
// done when Kafka acknowledged it, or when it is in the spool (and the
// waiter then syncs the spool before answering).
type Ack struct {
	// pending starts at 1, a hold released by Release, so records
	// acknowledged while others are still being produced cannot finish
	// the wait early.
	pending atomic.Int64
	done    chan struct{}
	once    sync.Once
	mu      sync.Mutex
	first   error
	spooled atomic.Bool
	mark    uint64
}

// NewAck starts a wait. mark is the relay's count of spool appends at the
// start, so the waiter can tell whether any record (its own, or one kept
// after librdkafka gave up on it) went to disk meanwhile.
func NewAck(mark uint64) *Ack {
	a := &Ack{done: make(chan struct{}), mark: mark}
	a.pending.Store(1)
	return a
}

// Add counts n more records to wait for; call it before producing them.
func (a *Ack) Add(n int) { a.pending.Add(int64(n)) }

// Delivered implements Tracker: one record's outcome.
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

// Release drops the hold: the wait can finish once every record counted
// with Add has an outcome.
func (a *Ack) Release() { a.Delivered(nil) }

// Done is closed when every record has an outcome and the hold is
// released.
func (a *Ack) Done() <-chan struct{} { return a.done }

// Err is the first failure, or nil.
func (a *Ack) Err() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.first
}

// SetSpooled records that one of the records went to the spool.
func (a *Ack) SetSpooled() { a.spooled.Store(true) }

// Spooled reports whether SetSpooled was called.
func (a *Ack) Spooled() bool { return a.spooled.Load() }

// Mark is the count given to NewAck.
func (a *Ack) Mark() uint64 { return a.mark }
