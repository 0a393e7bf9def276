package relay

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/zap"

	"github.com/beacongate/beacongate/internal/kafka/delivery"
	"github.com/beacongate/beacongate/internal/kafka/spool"
	"github.com/beacongate/beacongate/internal/status"
)

// checkOrder asserts that every key's records are 0, 1, 2, ... with no
// gap and no duplicate, and returns how many there are.
func checkOrder(t *testing.T, got []string) int {
	t.Helper()
	next := map[string]int{}
	for _, rec := range got {
		key, v, _ := strings.Cut(rec, "=")
		n, _ := strconv.Atoi(v)
		if n != next[key] {
			t.Fatalf("key %s: got %d, want %d (order broken, a record lost or duplicated)", key, n, next[key])
		}
		next[key]++
	}
	return len(got)
}

func send(t *testing.T, r *Relay, key string, from, to int) {
	t.Helper()
	for i := from; i < to; i++ {
		if err := r.Produce([]byte(key), []byte(strconv.Itoa(i))); err != nil {
			t.Fatalf("produce %s %d: %v", key, i, err)
		}
	}
}

func TestSpoolWhileDownThenReplayInOrder(t *testing.T) {
	k := newFake(t)
	k.setUp(true)
	r, sp := newRelay(t, k, relayOpts{})
	waitFor(t, "ready", func() bool { ok, _ := r.Ready(); return ok })
	send(t, r, "u", 0, 10) // direct
	k.setUp(false)
	waitFor(t, "the relay to see Kafka down", func() bool { return !r.route.Load() })
	send(t, r, "u", 10, 200) // spooled
	if !r.Spooling() || sp.Main.Stats().Records == 0 {
		t.Fatalf("records did not go to the spool while Kafka was down")
	}
	k.setUp(true)
	send(t, r, "u", 200, 300) // behind the spooled ones, until the spool drains
	waitFor(t, "the spool to drain", func() bool { return !r.Spooling() })
	send(t, r, "u", 300, 310) // direct again
	waitFor(t, "all records", func() bool { return len(k.records()) == 310 })
	checkOrder(t, k.records())
	if recs, _ := sp.Waiting(); recs != 0 {
		t.Fatalf("spool not empty after the drain: %d", recs)
	}
}

// TestStartOnHealthyKafkaDoesNotSpool: records sent while the producer
// connects go to its queue; nothing is spooled and no episode counted.
func TestStartOnHealthyKafkaDoesNotSpool(t *testing.T) {
	episodes := testutil.ToFloat64(spoolEpisodes)
	k := newFake(t)
	r, sp := newRelay(t, k, relayOpts{cfg: Config{StartGrace: 5 * time.Second}})
	if ok, reason := r.Ready(); ok || !strings.Contains(reason, "") {
		t.Fatalf("ready before Kafka was: %v %q", ok, reason)
	}
	send(t, r, "u", 0, 100) // while "connecting"
	time.Sleep(20 * time.Millisecond)
	k.setUp(true)
	waitFor(t, "ready", func() bool { ok, _ := r.Ready(); return ok })
	send(t, r, "u", 100, 200)
	waitFor(t, "all records", func() bool { return len(k.records()) == 200 })
	checkOrder(t, k.records())
	if n := testutil.ToFloat64(spoolEpisodes) - episodes; n != 0 || sp.Main.Stats().Records != 0 || r.Spooling() {
		t.Fatalf("a start on a healthy Kafka spooled: %v episodes, %d records in the spool", n, sp.Main.Stats().Records)
	}
}

// TestStartGraceThenSpool: Kafka is not there at start; after the grace,
// records go to the spool; those accepted during the grace are older and
// reach Kafka first.
func TestStartGraceThenSpool(t *testing.T) {
	k := newFake(t)
	r, sp := newRelay(t, k, relayOpts{cfg: Config{StartGrace: 30 * time.Millisecond}})
	send(t, r, "u", 0, 20) // in the producer's queue
	waitFor(t, "the grace to end", func() bool { return !r.route.Load() })
	send(t, r, "u", 20, 40)
	if sp.Main.Stats().Records != 20 {
		t.Fatalf("%d records spooled after the grace, want 20", sp.Main.Stats().Records)
	}
	k.setUp(true)
	waitFor(t, "the drain", func() bool { return !r.Spooling() && len(k.records()) == 40 })
	checkOrder(t, k.records())
}

// TestKeptRecordsGoFirst: records librdkafka hands back after spooling
// began (message.timeout.ms) are older than the spooled ones: they are
// replayed first, so each key stays in order.
func TestKeptRecordsGoFirst(t *testing.T) {
	k := newFake(t)
	k.setUp(true)
	r, sp := newRelay(t, k, relayOpts{})
	waitFor(t, "ready", func() bool { ok, _ := r.Ready(); return ok })
	k.setUp(false) // records 0..49 stay in memory
	send(t, r, "a", 0, 50)
	waitFor(t, "Kafka down", func() bool { return !r.route.Load() })
	send(t, r, "a", 50, 100) // spooled, behind 0..49 in memory
	k.timeoutAll()           // 0..49 come back: kept lane
	if n := sp.Kept.Stats().Records; n != 50 {
		t.Fatalf("kept lane has %d records, want 50", n)
	}
	k.setUp(true)
	waitFor(t, "the drain", func() bool { return !r.Spooling() && len(k.records()) == 100 })
	checkOrder(t, k.records())
}

// TestPoisonRecordNeverSpooled: a record Kafka can never take is refused
// (413) while Kafka is down too, and does not block what follows.
func TestPoisonRecordNeverSpooled(t *testing.T) {
	k := newFake(t)
	k.maxRecord = 1000
	r, sp := newRelay(t, k, relayOpts{})
	waitFor(t, "spooling mode", func() bool { return !r.route.Load() })
	send(t, r, "u", 0, 5)
	err := r.Produce([]byte("u"), make([]byte, 2000))
	var se *status.Error
	if !errors.As(err, &se) || se.HTTPStatus() != 413 {
		t.Fatalf("oversize record while Kafka is down: %v, want 413", err)
	}
	send(t, r, "u", 5, 10)
	if n := sp.Main.Stats().Records; n != 10 {
		t.Fatalf("%d records in the spool, want the 10 good ones", n)
	}
	k.setUp(true)
	waitFor(t, "the drain", func() bool { return !r.Spooling() && len(k.records()) == 10 })
	checkOrder(t, k.records())
}

// TestPermanentFailureSetAside: during replay, a record Kafka refuses for
// good goes to the dead-letter topic; the records behind it go on and the
// spool drains.
func TestPermanentFailureSetAside(t *testing.T) {
	k := newFake(t)
	r, sp := newRelay(t, k, relayOpts{cfg: Config{DeadLetterTopic: "dlq"}})
	waitFor(t, "spooling mode", func() bool { return !r.route.Load() })
	send(t, r, "u", 0, 100)
	k.failOnce("42", "INVALID_RECORD", delivery.Permanent)
	k.setUp(true)
	waitFor(t, "the drain", func() bool { return !r.Spooling() })
	got := k.records()
	if len(got) != 99 || len(k.deadLetters()) != 1 || k.deadLetters()[0] != "42" {
		t.Fatalf("%d records delivered, dead letters %q: want 99 and [42]", len(got), k.deadLetters())
	}
	if recs, _ := sp.Waiting(); recs != 0 {
		t.Fatalf("%d records left in the spool", recs)
	}
}

// TestPermanentFailureQuarantined: without a dead-letter topic the refused
// record goes to the quarantine, readable with its reason.
func TestPermanentFailureQuarantined(t *testing.T) {
	k := newFake(t)
	r, sp := newRelay(t, k, relayOpts{})
	waitFor(t, "spooling mode", func() bool { return !r.route.Load() })
	send(t, r, "u", 0, 30)
	k.failOnce("7", "MSG_SIZE_TOO_LARGE", delivery.Permanent)
	k.setUp(true)
	waitFor(t, "the drain", func() bool { return !r.Spooling() })
	if n := len(k.records()); n != 29 {
		t.Fatalf("%d delivered, want 29", n)
	}
	var q []Quarantined
	sp.Quarantine.Close()
	if _, err := spool.Inspect(filepath.Join(sp.Dir, quarantineDir), func(key, value []byte, _ time.Time) error {
		rec, err := DecodeQuarantined(key, value)
		q = append(q, rec)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if len(q) != 1 || string(q[0].Value) != "7" || q[0].Code != "MSG_SIZE_TOO_LARGE" || q[0].Topic != "beacons" {
		t.Fatalf("quarantine holds %+v", q)
	}
}

// TestRetriableFailureInReplay: replayed records that fail are produced
// again, in order, before the round is committed: nothing is lost, nothing
// duplicated.
func TestRetriableFailureInReplay(t *testing.T) {
	k := newFake(t)
	r, sp := newRelay(t, k, relayOpts{})
	waitFor(t, "spooling mode", func() bool { return !r.route.Load() })
	send(t, r, "u", 0, 120)
	for _, v := range []string{"3", "4", "5", "77"} {
		k.failOnce(v, "_MSG_TIMED_OUT", delivery.Retriable)
	}
	retried := testutil.ToFloat64(replayRetried)
	k.setUp(true)
	waitFor(t, "the drain", func() bool { return !r.Spooling() })
	got := k.records()
	if len(got) != 120 {
		t.Fatalf("%d delivered, want 120", len(got))
	}
	// One key, one queue: the failed ones come after their round's
	// others, but no record is lost or delivered twice.
	seen := map[string]int{}
	for _, g := range got {
		seen[g]++
	}
	for i := 0; i < 120; i++ {
		if n := seen["u="+strconv.Itoa(i)]; n != 1 {
			t.Fatalf("record %d delivered %d times", i, n)
		}
	}
	if d := testutil.ToFloat64(replayRetried) - retried; d != 4 {
		t.Fatalf("retried %v records, want 4", d)
	}
	if recs, _ := sp.Waiting(); recs != 0 {
		t.Fatalf("%d left", recs)
	}
}

// TestSetAsideFailureKeepsTheRound: a refused record that can go neither
// to the dead-letter topic nor to the quarantine keeps its round in the
// spool (read again later) instead of being committed away.
func TestSetAsideFailureKeepsTheRound(t *testing.T) {
	k := newFake(t)
	r, sp := newRelay(t, k, relayOpts{})
	waitFor(t, "spooling mode", func() bool { return !r.route.Load() })
	send(t, r, "u", 0, 10)
	filled := 0
	for _, size := range []int{64 << 10, 1 << 10, 1} {
		for sp.Quarantine.Append([]byte("filler"), make([]byte, size)) == nil {
			filled++
		}
	}
	t.Logf("quarantine filled with %d records", filled)
	// Every attempt fails and cannot be set aside: however often the
	// replayer retries, the round must never be committed. (With a single
	// failure, a retry could succeed and rightly commit before the check.)
	k.failAlways("3", "INVALID_RECORD", delivery.Permanent)
	k.setUp(true)
	waitFor(t, "the failed attempt and a retry", func() bool { return k.failed() >= 2 })
	if recs := sp.Main.Stats().Records; recs != 10 {
		t.Fatalf("%d records in the spool, want all 10 (the round must not be committed)", recs)
	}
}

func TestQueueFullGoesToSpool(t *testing.T) {
	k := newFake(t)
	k.setUp(true)
	r, _ := newRelay(t, k, relayOpts{})
	waitFor(t, "ready", func() bool { ok, _ := r.Ready(); return ok })
	k.full.Store(true)
	if err := r.Produce([]byte("k"), []byte("0")); err != nil {
		t.Fatalf("a full queue must spool, not fail: %v", err)
	}
	if !r.Spooling() {
		t.Fatalf("not spooling after a full queue")
	}
	k.full.Store(false)
	waitFor(t, "the replay", func() bool { return !r.Spooling() })
	if got := k.records(); len(got) != 1 || got[0] != "k=0" {
		t.Fatalf("kafka got %q", got)
	}
}

func TestSpoolFullIsFast503(t *testing.T) {
	k := newFake(t)
	r, _ := newRelay(t, k, relayOpts{maxBytes: 4096})
	waitFor(t, "spooling mode", func() bool { return !r.route.Load() })
	var err error
	for i := 0; i < 1000 && err == nil; i++ {
		err = r.Produce([]byte("k"), []byte(strings.Repeat("x", 100)))
	}
	if !errors.Is(err, ErrSpoolFull) || err.(*status.Error).HTTPStatus() != 503 || err.(*status.Error).RetryAfter() <= 0 {
		t.Fatalf("spool full: %v, want ErrSpoolFull (503 with Retry-After)", err)
	}
	k.setUp(true)
	waitFor(t, "the drain", func() bool { return !r.Spooling() })
	if err := r.Produce([]byte("k"), []byte("after")); err != nil {
		t.Fatalf("after recovery: %v", err)
	}
}

// TestBatchAllOrNothing: with Kafka down and a small spool, each batch is
// spooled whole or refused whole.
func TestBatchAllOrNothing(t *testing.T) {
	k := newFake(t)
	r, sp := newRelay(t, k, relayOpts{maxBytes: 8192})
	waitFor(t, "spooling mode", func() bool { return !r.route.Load() })
	refused := 0
	for b := 0; b < 40; b++ {
		recs := make([]delivery.Record, 10)
		for i := range recs {
			recs[i] = delivery.Record{Key: []byte(fmt.Sprint("b", b)), Value: []byte(strings.Repeat("x", 50))}
		}
		n, err := r.ProduceBatch(recs, nil)
		switch {
		case err == nil && n == 10:
		case errors.Is(err, ErrSpoolFull) && n == 0:
			refused++
		default:
			t.Fatalf("batch %d: took %d records, err %v: want all or none", b, n, err)
		}
	}
	if n := sp.Main.Stats().Records; refused == 0 || n%10 != 0 {
		t.Fatalf("%d records spooled, %d batches refused: want whole batches and some refused", n, refused)
	}
	// Direct: a queue without room for the whole batch sends it to the
	// spool whole.
	k2 := newFake(t)
	k2.setUp(true)
	k2.queueMax = 10
	r2, sp2 := newRelay(t, k2, relayOpts{})
	waitFor(t, "ready", func() bool { ok, _ := r2.Ready(); return ok })
	k2.setUp(false) // the queue does not drain
	recs := make([]delivery.Record, 12)
	for i := range recs {
		recs[i] = delivery.Record{Key: []byte("k"), Value: []byte(strconv.Itoa(i))}
	}
	if n, err := r2.ProduceBatch(recs, nil); n != 12 || err != nil {
		t.Fatalf("batch: %d, %v", n, err)
	}
	if n := sp2.Main.Stats().Records; n != 12 {
		t.Fatalf("%d of the batch spooled, want all 12 (the queue had room for %d of 12 plus its reserve)", n, k2.queueMax)
	}
}

func TestAckedWaitsForKafka(t *testing.T) {
	k := newFake(t)
	r, sp := newRelay(t, k, relayOpts{cfg: Config{StartGrace: time.Hour}})
	a := r.NewAck()
	for i := 0; i < 5; i++ {
		if err := r.ProduceAcked([]byte("k"), []byte{byte('0' + i)}, a); err != nil {
			t.Fatal(err)
		}
	}
	waited := make(chan error, 1)
	go func() { waited <- r.WaitAcked(a, 10*time.Second) }()
	select {
	case err := <-waited:
		t.Fatalf("WaitAcked returned (%v) before Kafka acknowledged", err)
	case <-time.After(50 * time.Millisecond):
	}
	k.setUp(true)
	if err := <-waited; err != nil {
		t.Fatal(err)
	}
	k.setUp(false)
	a = r.NewAck()
	_ = r.ProduceAcked([]byte("k"), []byte("slow"), a)
	if err := r.WaitAcked(a, 50*time.Millisecond); !errors.Is(err, ErrAckTimeout) {
		t.Fatalf("slow ack: %v, want ErrAckTimeout", err)
	}
	// Kafka down: an acknowledged record is safe once fsynced in the
	// spool.
	k.queueMax = 0 // the queue is full: records go to the spool
	a = r.NewAck()
	syncs := testutil.ToFloat64(ackSyncs)
	if err := r.ProduceAcked([]byte("k"), []byte("spooled"), a); err != nil {
		t.Fatal(err)
	}
	if err := r.WaitAcked(a, time.Second); err != nil || !a.Spooled() || testutil.ToFloat64(ackSyncs) != syncs+1 {
		t.Fatalf("spooled ack: %v (spooled %v, syncs %v)", err, a.Spooled(), testutil.ToFloat64(ackSyncs)-syncs)
	}
	_ = sp
}

func TestKeepWithoutSpool(t *testing.T) {
	k := newFake(t)
	noSpool, _ := New(Config{}, k, nil, zap.NewNop())
	if err := noSpool.Keep([]byte("k"), []byte("v"), &delivery.Failure{Code: "_MSG_TIMED_OUT", Err: errors.New("x")}); err == nil {
		t.Fatalf("without a spool Keep must report the record as not kept")
	}
}

// TestOrderUnderFlapping: users send sequentially while Kafka goes away
// and comes back, again and again; every user's records reach Kafka
// complete and in order, across switches both ways (direct → spooled when
// Kafka goes away, spooled → direct once the replayer drained the spool).
func TestOrderUnderFlapping(t *testing.T) {
	k := newFake(t)
	k.setUp(true)
	r, _ := newRelay(t, k, relayOpts{maxBytes: 16 << 20, cfg: Config{ReplayBatch: 1000}})
	spooled0, replayed0, episodes0 := testutil.ToFloat64(spooledTotal), testutil.ToFloat64(replayedTotal), testutil.ToFloat64(spoolEpisodes)
	const users, cycles, most = 8, 5, 20000
	var total atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for u := 0; u < users; u++ {
		wg.Add(1)
		go func(u int) {
			defer wg.Done()
			for i := 0; i < most; i++ {
				select {
				case <-stop:
					return
				default:
				}
				if err := r.Produce([]byte(fmt.Sprint("u", u)), []byte(strconv.Itoa(i))); err != nil {
					t.Errorf("produce: %v", err)
					return
				}
				total.Add(1)
				// Paced, so the replayer can catch up while Kafka is up.
				time.Sleep(500 * time.Microsecond)
			}
		}(u)
	}
	for c := 0; c < cycles; c++ {
		k.setUp(false)
		waitFor(t, "spooling", r.Spooling)
		time.Sleep(10 * time.Millisecond) // records pile up in the spool
		k.setUp(true)
		waitFor(t, "direct again", func() bool { return !r.Spooling() })
		time.Sleep(10 * time.Millisecond) // records go direct
	}
	close(stop)
	wg.Wait()
	n := int(total.Load())
	waitFor(t, "the final drain", func() bool { return !r.Spooling() && len(k.records()) == n })
	checkOrder(t, k.records())
	spooled, replayed := testutil.ToFloat64(spooledTotal)-spooled0, testutil.ToFloat64(replayedTotal)-replayed0
	episodes := testutil.ToFloat64(spoolEpisodes) - episodes0
	t.Logf("%d records, %v through the spool, %v replayed, %v switches from direct to spooled", n, spooled, replayed, episodes)
	if spooled == 0 || replayed != spooled || episodes < cycles {
		t.Fatalf("spooled %v, replayed %v, %v spooling episodes: want records through the spool in %d episodes", spooled, replayed, episodes, cycles)
	}
}

// TestStateFileCountedOnce: a previous process's in-memory count is
// counted at start, once, even if this process dies within a second.
func TestStateFileCountedOnce(t *testing.T) {
	k := newFake(t)
	state := filepath.Join(t.TempDir(), "inflight")
	if err := os.WriteFile(state, []byte("7\n"), 0o640); err != nil {
		t.Fatal(err)
	}
	before := testutil.ToFloat64(possiblyLost)
	if _, err := New(Config{StateFile: state}, k, nil, zap.NewNop()); err != nil {
		t.Fatal(err)
	}
	if _, err := New(Config{StateFile: state}, k, nil, zap.NewNop()); err != nil { // "crashed" at once, restarted
		t.Fatal(err)
	}
	if d := testutil.ToFloat64(possiblyLost) - before; d != 7 {
		t.Fatalf("possibly lost counted %v, want 7 (once)", d)
	}
}

// TestSpoolBoundToTopic: a spool written for one topic is refused for
// another.
func TestSpoolBoundToTopic(t *testing.T) {
	dir := t.TempDir()
	sp, err := OpenSpools(spool.Config{Dir: dir}, "a", 0, 0, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	sp.Close()
	if _, err := OpenSpools(spool.Config{Dir: dir}, "b", 0, 0, zap.NewNop()); !errors.Is(err, ErrTopicMismatch) {
		t.Fatalf("reopen for another topic: %v, want ErrTopicMismatch", err)
	}
	if topic, err := ReadTopic(dir); topic != "a" || err != nil {
		t.Fatalf("ReadTopic = %q, %v", topic, err)
	}
	sp, err = OpenSpools(spool.Config{Dir: dir}, "a", 0, 0, zap.NewNop())
	if err != nil {
		t.Fatalf("reopen for its topic: %v", err)
	}
	sp.Close()
}

// TestStopIsBoundedDuringARound: Stop returns by its deadline while a
// round waits for a Kafka that does not answer, and the round stays in
// the spool.
func TestStopIsBoundedDuringARound(t *testing.T) {
	k := newFake(t)
	r, sp := newRelay(t, k, relayOpts{})
	waitFor(t, "spooling mode", func() bool { return !r.route.Load() })
	send(t, r, "u", 0, 10)
	// Ready, but records are never delivered: the round waits.
	k.claimReady.Store(true)
	waitFor(t, "a round in flight", func() bool { return r.replayOut.Load() > 0 })
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	r.Stop(ctx)
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("Stop took %v with a 100ms deadline", d)
	}
	if n := sp.Main.Stats().Records; n != 10 {
		t.Fatalf("%d records left in the spool, want the round's 10", n)
	}
}
