package producer_test

import (
	"errors"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"
	"go.uber.org/zap"

	"github.com/beacongate/beacongate/internal/kafka/delivery"
	"github.com/beacongate/beacongate/internal/kafka/producer"
	"github.com/beacongate/beacongate/internal/kafkatest"
	"github.com/beacongate/beacongate/internal/status"
)

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	kafkatest.WaitFor(t, what, 20*time.Second, cond)
}

// TestPartitionLeaderDown: with one broker of three off the network, the
// producer is not ready and names the partitions and the broker, although
// two brokers are up; it is ready again when the broker returns.
func TestPartitionLeaderDown(t *testing.T) {
	c, lns := kafkatest.Cluster(t, 3, kfake.SeedTopics(6, "beacons"))
	// Cut a broker that leads a partition (kfake spreads leaders, but
	// not necessarily over all three).
	victim := c.LeaderFor("beacons", 0)
	p, err := producer.New(producer.Config{Brokers: strings.Join(c.ListenAddrs(), ","), StatsInterval: 100 * time.Millisecond,
		Settings: map[string]string{"reconnect.backoff.max.ms": "200"}}, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	for i := 0; i < 50; i++ { // the topic appears in the statistics once produced to
		if err := p.Produce([]byte{byte('a' + i%26), byte(i)}, []byte("v")); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "ready", func() bool { ok, _ := p.Ready(); return ok })
	if left := p.Flush(10 * time.Second); left != 0 {
		t.Fatalf("%d left", left)
	}
	lns[victim].SetDown(true)
	var reason string
	waitFor(t, "not ready with a leader down", func() bool {
		var ok bool
		ok, reason = p.Ready()
		return !ok
	})
	if !strings.Contains(reason, "no reachable leader") {
		t.Fatalf("reason %q, want the unavailable partitions named", reason)
	}
	t.Logf("broker %d cut: %s", victim, reason)
	lns[victim].SetDown(false)
	deadline := time.Now().Add(20 * time.Second)
	for ok := false; !ok; ok, reason = p.Ready() {
		if time.Now().After(deadline) {
			t.Fatalf("not ready 20s after the broker returned: %s", reason)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// recordingHandler is a failure handler that remembers what it got.
type recordingHandler struct {
	mu   sync.Mutex
	got  []*delivery.Failure
	slow time.Duration
}

func (h *recordingHandler) keep(_, _ []byte, f *delivery.Failure) error {
	time.Sleep(h.slow)
	h.mu.Lock()
	defer h.mu.Unlock()
	h.got = append(h.got, f)
	return nil
}

func (h *recordingHandler) failures() []*delivery.Failure {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]*delivery.Failure(nil), h.got...)
}

// TestPermanentFailureIsClassified: a record the broker refuses as
// invalid reaches the failure handler as a permanent failure (so the
// relay sets it aside instead of spooling it again), while a retriable
// broker error is retried by librdkafka and delivered.
func TestPermanentFailureIsClassified(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, "beacons"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	p, err := producer.New(producer.Config{Brokers: c.ListenAddrs()[0], StatsInterval: 100 * time.Millisecond}, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	h := &recordingHandler{}
	p.SetFailureHandler(h.keep)
	waitFor(t, "ready", func() bool { ok, _ := p.Ready(); return ok })
	produce := []kmsg.Key{kmsg.Produce}
	retr := c.Fault(kfake.Fault{Keys: produce, Err: kerr.NotEnoughReplicas, Count: 1})
	if err := p.Produce([]byte("k"), []byte("retried")); err != nil {
		t.Fatal(err)
	}
	if left := p.Flush(10 * time.Second); left != 0 {
		t.Fatalf("%d left", left)
	}
	if retr.Hits() != 1 || len(h.failures()) != 0 || p.Delivered() != 1 {
		t.Fatalf("retriable fault hits %d, failures %d, delivered %d: want 1, 0, 1", retr.Hits(), len(h.failures()), p.Delivered())
	}
	perm := c.Fault(kfake.Fault{Keys: produce, Err: kerr.InvalidRecord, Count: 1})
	if err := p.Produce([]byte("k"), []byte("refused")); err != nil {
		t.Fatal(err)
	}
	if left := p.Flush(10 * time.Second); left != 0 {
		t.Fatalf("%d left", left)
	}
	got := h.failures()
	if perm.Hits() != 1 || len(got) != 1 || got[0].Class != delivery.Permanent || got[0].Code != "INVALID_RECORD" {
		t.Fatalf("permanent fault hits %d, failures %+v: want one permanent INVALID_RECORD", perm.Hits(), got)
	}
}

// TestFlushWaitsForTheHandler: Flush returns only once the failure
// handler has finished with every record, so a shutdown cannot close the
// spool under a record being kept.
func TestFlushWaitsForTheHandler(t *testing.T) {
	p, err := producer.New(producer.Config{Brokers: "127.0.0.1:1"}, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	h := &recordingHandler{slow: 20 * time.Millisecond}
	p.SetFailureHandler(h.keep)
	for i := 0; i < 20; i++ {
		if err := p.Produce([]byte("k"), []byte("v")); err != nil {
			t.Fatal(err)
		}
	}
	if p.Outstanding() != 20 {
		t.Fatalf("outstanding %d, want 20", p.Outstanding())
	}
	if left := p.Purge(10 * time.Second); left != 0 {
		t.Fatalf("%d left after purge", left)
	}
	if n := len(h.failures()); n != 20 {
		t.Fatalf("Purge returned with %d of 20 records handled", n)
	}
	if lost := p.Close(); lost != 0 {
		t.Fatalf("Close reported %d lost, want 0", lost)
	}
}

// TestCloseCountsOnlyAcceptedRecords: a producer that never took a record
// closes without reporting any lost, even with the broker unreachable.
func TestCloseCountsOnlyAcceptedRecords(t *testing.T) {
	p, err := producer.New(producer.Config{Brokers: "127.0.0.1:1"}, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	if lost := p.Close(); lost != 0 {
		t.Fatalf("Close reported %d lost records, none was accepted", lost)
	}
}

// TestAdmit: a record over message.max.bytes, or over a topic limit
// remembered from an earlier run, is refused with 413 before any broker
// was asked (Kafka down), so it can never wait in a spool.
func TestAdmit(t *testing.T) {
	p, err := producer.New(producer.Config{Brokers: "127.0.0.1:1", TopicMaxBytes: 50000}, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if err := p.Admit(10, 40000); err != nil {
		t.Fatalf("a record under both limits: %v", err)
	}
	for _, size := range []int{60000, 1_040_170} {
		err := p.Admit(10, size)
		var se *status.Error
		if !errors.As(err, &se) || se.HTTPStatus() != http.StatusRequestEntityTooLarge || se.Reason() != "record_too_large" {
			t.Fatalf("Admit of %d bytes: %v, want 413 record_too_large", size, err)
		}
	}
}
