package relay

import (
	"context"
	"errors"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/beacongate/beacongate/internal/kafka/delivery"
	"github.com/beacongate/beacongate/internal/kafka/spool"
	"github.com/beacongate/beacongate/internal/status"
)

// fakeKafka models what the relay relies on in the producer: records wait
// in an in-memory queue (in order) until "Kafka" is up, then are
// delivered; failures can be injected, and go to the record's owner
// (replay) or to the failure handler, as librdkafka's reports do.
type fakeKafka struct {
	mu         sync.Mutex
	cond       *sync.Cond
	queue      []fakeMsg
	processing int
	log        []string // delivered to the topic, in order
	dlq        []string
	failNext   map[string]*delivery.Failure // value → failure, once
	failEvery  map[string]*delivery.Failure // value → failure, every time
	failures   int                          // failures reported
	up         atomic.Bool
	full       atomic.Bool
	claimReady atomic.Bool // Ready says yes while nothing is delivered
	queueMax   int
	maxRecord  int
	handler    func(key, value []byte, f *delivery.Failure) error
	stop       chan struct{}
}

type fakeMsg struct {
	topic      string
	key, value []byte
	t          delivery.Tracker
}

var errFull = status.Retry(http.StatusServiceUnavailable, "queue_full", "queue full", time.Second)

func newFake(t *testing.T) *fakeKafka {
	k := &fakeKafka{queueMax: 100000, maxRecord: 1 << 20, failNext: map[string]*delivery.Failure{}, failEvery: map[string]*delivery.Failure{}, stop: make(chan struct{})}
	k.cond = sync.NewCond(&k.mu)
	go k.run()
	t.Cleanup(func() {
		close(k.stop)
		k.mu.Lock()
		k.cond.Broadcast()
		k.mu.Unlock()
	})
	return k
}

func (k *fakeKafka) setUp(up bool) {
	k.up.Store(up)
	k.mu.Lock()
	k.cond.Broadcast()
	k.mu.Unlock()
}

// failOnce makes the record with this value fail once.
func (k *fakeKafka) failOnce(value string, code string, class delivery.Class) {
	k.mu.Lock()
	k.failNext[value] = &delivery.Failure{Code: code, Class: class, Err: errors.New(code)}
	k.mu.Unlock()
}

// failAlways makes the record with this value fail on every attempt.
func (k *fakeKafka) failAlways(value string, code string, class delivery.Class) {
	k.mu.Lock()
	k.failEvery[value] = &delivery.Failure{Code: code, Class: class, Err: errors.New(code)}
	k.mu.Unlock()
}

// failed is how many failures the fake reported.
func (k *fakeKafka) failed() int {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.failures
}

func (k *fakeKafka) run() {
	for {
		k.mu.Lock()
		for len(k.queue) == 0 || !k.up.Load() {
			select {
			case <-k.stop:
				k.mu.Unlock()
				return
			default:
			}
			k.cond.Wait()
		}
		m := k.queue[0]
		k.queue = k.queue[1:]
		k.processing++
		f := k.failNext[string(m.value)]
		delete(k.failNext, string(m.value))
		if f == nil {
			f = k.failEvery[string(m.value)]
		}
		if f != nil {
			k.failures++
		}
		if f == nil {
			if m.topic == "beacons" {
				k.log = append(k.log, string(m.key)+"="+string(m.value))
			} else {
				k.dlq = append(k.dlq, string(m.value))
			}
		}
		k.mu.Unlock()
		k.report(m, f)
	}
}

// report hands one outcome on, as the producer's report does.
func (k *fakeKafka) report(m fakeMsg, f *delivery.Failure) {
	defer func() {
		k.mu.Lock()
		k.processing--
		k.mu.Unlock()
	}()
	if f == nil {
		if m.t != nil {
			m.t.Delivered(nil)
		}
		return
	}
	if m.topic != "beacons" {
		if m.t != nil {
			m.t.Delivered(f)
		}
		return
	}
	if owner, ok := m.t.(delivery.FailureOwner); ok {
		owner.Failed(m.key, m.value, f)
		return
	}
	kept := k.handler(m.key, m.value, f)
	if m.t != nil {
		if kept != nil {
			m.t.Delivered(kept)
		} else if f.Class == delivery.Permanent {
			m.t.Delivered(f)
		} else {
			m.t.Delivered(nil)
		}
	}
}

// timeoutAll fails every queued record, as message.timeout.ms does.
func (k *fakeKafka) timeoutAll() {
	k.mu.Lock()
	q := k.queue
	k.queue = nil
	k.processing += len(q)
	k.mu.Unlock()
	for _, m := range q {
		k.report(m, &delivery.Failure{Code: "_MSG_TIMED_OUT", Class: delivery.Retriable, Err: errors.New("timed out")})
	}
}

func (k *fakeKafka) Admit(keyLen, valueLen int) error {
	if keyLen+valueLen > k.maxRecord {
		return status.New(http.StatusRequestEntityTooLarge, "record_too_large", "too large")
	}
	return nil
}

func (k *fakeKafka) enqueue(topic string, key, value []byte, t delivery.Tracker) error {
	if k.full.Load() {
		return errFull
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if len(k.queue)+k.processing >= k.queueMax {
		return errFull
	}
	k.queue = append(k.queue, fakeMsg{topic, clone(key), clone(value), t})
	k.cond.Broadcast()
	return nil
}

func (k *fakeKafka) Produce(key, value []byte) error { return k.enqueue("beacons", key, value, nil) }
func (k *fakeKafka) ProduceTracked(key, value []byte, t delivery.Tracker) error {
	return k.enqueue("beacons", key, value, t)
}
func (k *fakeKafka) ProduceTo(topic string, key, value []byte, _ []delivery.Header, t delivery.Tracker) error {
	return k.enqueue(topic, key, value, t)
}
func (k *fakeKafka) Ready() (bool, string) {
	if k.claimReady.Load() {
		return true, ""
	}
	if !k.up.Load() {
		return false, "fake: down"
	}
	if k.full.Load() {
		return false, "fake: full"
	}
	return true, ""
}
func (k *fakeKafka) Outstanding() int {
	k.mu.Lock()
	defer k.mu.Unlock()
	n := 0
	for _, m := range k.queue {
		if m.topic == "beacons" {
			n++
		}
	}
	return n + k.processing
}
func (k *fakeKafka) Room() (int, int64) {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.queueMax - len(k.queue) - k.processing, 1 << 30
}
func (k *fakeKafka) QueueMax() int      { return k.queueMax }
func (k *fakeKafka) TopicMaxBytes() int { return k.maxRecord }

func (k *fakeKafka) records() []string {
	k.mu.Lock()
	defer k.mu.Unlock()
	return append([]string(nil), k.log...)
}

func (k *fakeKafka) deadLetters() []string {
	k.mu.Lock()
	defer k.mu.Unlock()
	return append([]string(nil), k.dlq...)
}

type relayOpts struct {
	maxBytes int64
	cfg      Config
	// kafka, if set, stands in front of the fake (e.g. to delay its
	// reports); the fake still takes records librdkafka would hand back.
	kafka Kafka
}

func newRelay(t *testing.T, k *fakeKafka, o relayOpts) (*Relay, *Spools) {
	t.Helper()
	if o.maxBytes == 0 {
		o.maxBytes = 1 << 20
	}
	sp, err := OpenSpools(spool.Config{Dir: t.TempDir(), MaxBytes: o.maxBytes, SegmentBytes: min(o.maxBytes, 64<<10)}, "beacons", 0, 0, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sp.Close() })
	cfg := o.cfg
	if cfg.HealthInterval == 0 {
		cfg.HealthInterval = 5 * time.Millisecond
	}
	if cfg.ReplayBatch == 0 {
		cfg.ReplayBatch = 50
	}
	if cfg.RetryBackoff == 0 {
		cfg.RetryBackoff = 5 * time.Millisecond
	}
	if cfg.StartGrace == 0 {
		cfg.StartGrace = 50 * time.Millisecond
	}
	var kafka Kafka = k
	if o.kafka != nil {
		kafka = o.kafka
	}
	r, err := New(cfg, kafka, sp, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	k.handler = r.Keep
	r.Start()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		r.Stop(ctx)
	})
	return r, sp
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}
