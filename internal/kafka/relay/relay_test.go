package relay

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/beacongate/beacongate/internal/kafka/spool"
	"github.com/beacongate/beacongate/internal/status"
)

// fakeKafka records what reaches "Kafka", in order.
type fakeKafka struct {
	mu       sync.Mutex
	log      []string
	ready    atomic.Bool
	full     atomic.Bool
	ackDelay time.Duration
	hold     chan struct{} // when set, acknowledgements wait for it to close
}

var errFull = status.Retry(http.StatusServiceUnavailable, "queue_full", "queue full", time.Second)

func (f *fakeKafka) Produce(key, value []byte) error {
	if f.full.Load() {
		return errFull
	}
	f.mu.Lock()
	f.log = append(f.log, string(key)+"="+string(value))
	f.mu.Unlock()
	return nil
}

func (f *fakeKafka) ProduceTracked(key, value []byte, t Tracker) error {
	if err := f.Produce(key, value); err != nil {
		return err
	}
	hold, delay := f.hold, f.ackDelay
	go func() {
		if hold != nil {
			<-hold
		}
		time.Sleep(delay)
		t.Delivered(nil)
	}()
	return nil
}

func (f *fakeKafka) Ready() (bool, string) { return f.ready.Load(), "fake" }
func (f *fakeKafka) Len() int              { return 0 }
func (f *fakeKafka) QueueMax() int         { return 100000 }

func (f *fakeKafka) records() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.log...)
}

func newRelay(t *testing.T, k *fakeKafka, maxBytes int64) (*Relay, *spool.Spool) {
	t.Helper()
	sp, err := spool.Open(spool.Config{Dir: t.TempDir(), MaxBytes: maxBytes, SegmentBytes: min(maxBytes, 64<<10)}, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sp.Close() })
	r, err := New(Config{HealthInterval: 5 * time.Millisecond, ReplayBatch: 50}, k, sp, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	r.Start()
	t.Cleanup(r.Stop)
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

func TestSpoolWhileDownThenReplayInOrder(t *testing.T) {
	k := &fakeKafka{}
	k.ready.Store(true)
	r, sp := newRelay(t, k, 1<<20)
	send := func(from, to int) {
		for i := from; i < to; i++ {
			if err := r.Produce([]byte("u"), []byte(strconv.Itoa(i))); err != nil {
				t.Fatalf("produce %d: %v", i, err)
			}
		}
	}
	send(0, 10) // direct
	k.ready.Store(false)
	waitFor(t, "the relay to see Kafka down", func() bool { return !r.kafkaOK.Load() })
	send(10, 200) // spooled
	if !r.Spooling() || sp.Stats().Records == 0 {
		t.Fatalf("records did not go to the spool while Kafka was down")
	}
	k.ready.Store(true)
	send(200, 300) // behind the spooled ones, until the spool drains
	waitFor(t, "the spool to drain", func() bool { return !r.Spooling() })
	send(300, 310) // direct again
	got := k.records()
	if len(got) != 310 {
		t.Fatalf("Kafka got %d records, want 310", len(got))
	}
	for i, rec := range got {
		if rec != "u="+strconv.Itoa(i) {
			t.Fatalf("record %d is %q: order broken across the switch", i, rec)
		}
	}
	if !sp.Empty() {
		t.Fatalf("spool not empty after the drain: %+v", sp.Stats())
	}
}

func TestQueueFullGoesToSpool(t *testing.T) {
	k := &fakeKafka{}
	k.ready.Store(true)
	r, _ := newRelay(t, k, 1<<20)
	k.full.Store(true)
	if err := r.Produce([]byte("k"), []byte("1")); err != nil {
		t.Fatalf("a full queue must spool, not fail: %v", err)
	}
	if !r.Spooling() {
		t.Fatalf("not spooling after a full queue")
	}
	k.full.Store(false)
	waitFor(t, "the replay", func() bool { return !r.Spooling() })
	if got := k.records(); len(got) != 1 || got[0] != "k=1" {
		t.Fatalf("kafka got %q", got)
	}
}

func TestSpoolFullIsFast503(t *testing.T) {
	k := &fakeKafka{}
	r, _ := newRelay(t, k, 4096)
	var err error
	for i := 0; i < 1000 && err == nil; i++ {
		err = r.Produce([]byte("k"), []byte(strings.Repeat("x", 100)))
	}
	if !errors.Is(err, ErrSpoolFull) || err.(*status.Error).HTTPStatus() != 503 || err.(*status.Error).RetryAfter() <= 0 {
		t.Fatalf("spool full: %v, want ErrSpoolFull (503 with Retry-After)", err)
	}
	// Recovery when space returns: Kafka comes back, the spool drains,
	// records are taken again.
	k.ready.Store(true)
	waitFor(t, "the drain", func() bool { return !r.Spooling() })
	if err := r.Produce([]byte("k"), []byte("after")); err != nil {
		t.Fatalf("after recovery: %v", err)
	}
}

func TestAckedWaitsForKafka(t *testing.T) {
	k := &fakeKafka{hold: make(chan struct{})}
	k.ready.Store(true)
	r, _ := newRelay(t, k, 1<<20)
	a := r.NewAck()
	for i := 0; i < 5; i++ {
		if err := r.ProduceAcked([]byte("k"), []byte{byte(i)}, a); err != nil {
			t.Fatal(err)
		}
	}
	waited := make(chan error, 1)
	go func() { waited <- r.WaitAcked(a, 10*time.Second) }()
	select {
	case err := <-waited:
		t.Fatalf("WaitAcked returned (%v) while Kafka held the acknowledgements", err)
	case <-time.After(50 * time.Millisecond):
	}
	close(k.hold) // Kafka acknowledges
	if err := <-waited; err != nil {
		t.Fatal(err)
	}
	k.hold = nil
	k.ackDelay = time.Second
	a = r.NewAck()
	_ = r.ProduceAcked([]byte("k"), []byte("slow"), a)
	if err := r.WaitAcked(a, 50*time.Millisecond); !errors.Is(err, ErrAckTimeout) {
		t.Fatalf("slow ack: %v, want ErrAckTimeout", err)
	}
	// While Kafka is down, an acknowledged record is safe once fsynced in
	// the spool.
	k.ready.Store(false)
	waitFor(t, "Kafka down", func() bool { return !r.kafkaOK.Load() })
	a = r.NewAck()
	if err := r.ProduceAcked([]byte("k"), []byte("spooled"), a); err != nil {
		t.Fatal(err)
	}
	if err := r.WaitAcked(a, time.Second); err != nil || !a.spooled.Load() {
		t.Fatalf("spooled ack: %v (spooled %v)", err, a.spooled.Load())
	}
}

func TestKeepSpoolsFailedRecords(t *testing.T) {
	k := &fakeKafka{}
	r, sp := newRelay(t, k, 1<<20)
	if err := r.Keep([]byte("k"), []byte("timed out"), errors.New("message timed out")); err != nil {
		t.Fatal(err)
	}
	if sp.Stats().Records != 1 || !r.Spooling() {
		t.Fatalf("failed record not spooled: %+v", sp.Stats())
	}
	noSpool, _ := New(Config{}, k, nil, zap.NewNop())
	if err := noSpool.Keep([]byte("k"), []byte("v"), errors.New("cause")); err == nil {
		t.Fatalf("without a spool Keep must report the record as not kept")
	}
}

// TestOrderUnderFlapping: users send sequentially while Kafka flaps; every
// user's records reach Kafka complete and in order.
func TestOrderUnderFlapping(t *testing.T) {
	k := &fakeKafka{}
	k.ready.Store(true)
	r, _ := newRelay(t, k, 16<<20)
	stop := make(chan struct{})
	go func() {
		for {
			select {
			case <-stop:
				return
			case <-time.After(3 * time.Millisecond):
				k.ready.Store(!k.ready.Load())
			}
		}
	}()
	const users, each = 8, 300
	var wg sync.WaitGroup
	for u := 0; u < users; u++ {
		wg.Add(1)
		go func(u int) {
			defer wg.Done()
			for i := 0; i < each; i++ {
				if err := r.Produce([]byte(fmt.Sprint("u", u)), []byte(strconv.Itoa(i))); err != nil {
					t.Errorf("produce: %v", err)
					return
				}
			}
		}(u)
	}
	wg.Wait()
	close(stop)
	k.ready.Store(true)
	waitFor(t, "the final drain", func() bool { return !r.Spooling() })
	next := map[string]int{}
	got := k.records()
	for _, rec := range got {
		key, v, _ := strings.Cut(rec, "=")
		n, _ := strconv.Atoi(v)
		if n != next[key] {
			t.Fatalf("user %s: got %d, want %d", key, n, next[key])
		}
		next[key]++
	}
	if len(got) != users*each {
		t.Fatalf("%d records in Kafka, want %d", len(got), users*each)
	}
}
