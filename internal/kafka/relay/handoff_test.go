package relay

import (
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/beacongate/beacongate/internal/kafka/delivery"
)

// lingerKafka reports the outcome of tracked records (replayed ones) only
// after a delay, as librdkafka's linger.ms and a round trip do: a replay
// round then takes that long.
type lingerKafka struct {
	*fakeKafka
	linger time.Duration
}

type lingerTracker struct {
	t      delivery.Tracker
	linger time.Duration
}

func (l lingerTracker) Delivered(err error) {
	time.AfterFunc(l.linger, func() { l.t.Delivered(err) })
}

func (l lingerTracker) Failed(key, value []byte, f *delivery.Failure) {
	time.AfterFunc(l.linger, func() { l.t.(delivery.FailureOwner).Failed(key, value, f) })
}

func (k *lingerKafka) ProduceTracked(key, value []byte, t delivery.Tracker) error {
	if _, ok := t.(delivery.FailureOwner); ok {
		t = lingerTracker{t, k.linger}
	}
	return k.fakeKafka.ProduceTracked(key, value, t)
}

// TestSpoolDrainsUnderSteadyLoad: after an outage, the spool must drain
// and records go straight to Kafka again while a steady load goes on.
// Waiting for the spool to be empty between two rounds never ends then:
// records arrive during every round.
func TestSpoolDrainsUnderSteadyLoad(t *testing.T) {
	k := newFake(t)
	r, sp := newRelay(t, k, relayOpts{kafka: &lingerKafka{k, 20 * time.Millisecond}})
	waitFor(t, "spooling mode", func() bool { return !r.route.Load() })
	send(t, r, "u", 0, 500)
	var sent atomic.Int64
	sent.Store(500)
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 500; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			if err := r.Produce([]byte("u"), []byte(strconv.Itoa(i))); err != nil {
				t.Errorf("produce %d: %v", i, err)
				return
			}
			sent.Add(1)
			time.Sleep(100 * time.Microsecond)
		}
	}()
	k.setUp(true)
	deadline := time.Now().Add(5 * time.Second)
	for r.Spooling() && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	drained := !r.Spooling()
	close(stop)
	<-done
	if !drained {
		recs, _ := sp.Waiting()
		t.Fatalf("still spooling 5s after Kafka returned under a steady load (%d records sent, %d waiting)", sent.Load(), recs)
	}
	waitFor(t, "every record", func() bool { return len(k.records()) == int(sent.Load()) })
	checkOrder(t, k.records())
	if recs, _ := sp.Waiting(); recs != 0 {
		t.Fatalf("%d records left in the spool", recs)
	}
}

// TestFirstRoundAfterOutageDoesNotHandOver: the first replay round after
// an outage keeps new records in the spool even when it holds all that is
// left: until a round has gone through, Kafka may look healthy and still
// fail every record, and records produced directly meanwhile would all
// be handed back at once.
func TestFirstRoundAfterOutageDoesNotHandOver(t *testing.T) {
	k := newFake(t)
	r, sp := newRelay(t, k, relayOpts{kafka: &lingerKafka{k, 50 * time.Millisecond}})
	waitFor(t, "spooling mode", func() bool { return !r.route.Load() })
	send(t, r, "u", 0, 30) // one round (ReplayBatch 50)
	k.setUp(true)
	waitFor(t, "the first round in flight", func() bool { return r.replayOut.Load() > 0 })
	before := sp.Main.Stats().Records
	send(t, r, "u", 30, 31)
	if after := sp.Main.Stats().Records; after != before+1 {
		t.Fatalf("a record sent during the first round after the outage was not spooled (%d then %d waiting)", before, after)
	}
	waitFor(t, "the drain", func() bool { return !r.Spooling() && len(k.records()) == 31 })
	checkOrder(t, k.records())
}
