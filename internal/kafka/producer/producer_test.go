package producer_test

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/beacongate/beacongate/internal/kafka/delivery"
	"github.com/beacongate/beacongate/internal/kafka/embedded"
	"github.com/beacongate/beacongate/internal/kafka/producer"
	"github.com/beacongate/beacongate/internal/kafkatest"
	"github.com/beacongate/beacongate/internal/status"
	"github.com/beacongate/beacongate/shard"
)

const partitions = 16

func startBroker(t testing.TB, topic string) *embedded.Broker {
	t.Helper()
	b, err := embedded.Start(embedded.Config{Listen: "127.0.0.1:0", Partitions: partitions, Topics: []string{topic}}, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	return b
}

func TestProduceDeliversKeyedOrderedSnappy(t *testing.T) {
	const topic, n, keys = "beacons", 3000, 40
	b := startBroker(t, topic)
	p, err := producer.New(producer.Config{Brokers: b.Addr(), Topic: topic}, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()

	for i := 0; i < n; i++ {
		key := []byte("user-" + strconv.Itoa(i%keys))
		val := []byte(fmt.Sprintf("%s seq=%06d %0200d", key, i/keys, i))
		if err := p.Produce(key, val); err != nil {
			t.Fatalf("produce %d: %v", i, err)
		}
	}
	if left := p.Flush(20 * time.Second); left != 0 {
		t.Fatalf("%d records left after flush", left)
	}

	recs := kafkatest.Consume(t, b.Addr(), topic, n, 30*time.Second)
	if len(recs) != n {
		t.Fatalf("consumed %d records, want exactly %d", len(recs), n)
	}
	next := map[string]int{}
	for _, r := range recs {
		k := string(r.Key)
		var seq int
		if _, err := fmt.Sscanf(string(r.Value[len(k):]), " seq=%06d", &seq); err != nil {
			t.Fatalf("record %q: %v", r.Value[:40], err)
		}
		if seq != next[k] {
			t.Fatalf("key %s: got seq %d, want %d (per-key order broken or duplicate)", k, seq, next[k])
		}
		next[k]++
		// librdkafka's murmur2_random and our shard.Partition must agree,
		// or keys would move between producers.
		if want := shard.Partition(r.Key, partitions); r.Partition != want {
			t.Fatalf("key %s on partition %d, shard.Partition says %d", k, r.Partition, want)
		}
		if c := r.Attrs.CompressionType(); c != 2 {
			t.Fatalf("record batch compression type %d, want 2 (snappy)", c)
		}
	}
	if len(next) != keys {
		t.Fatalf("saw %d keys, want %d", len(next), keys)
	}
}

func TestReadyFollowsBroker(t *testing.T) {
	b := startBroker(t, "beacons")
	p, err := producer.New(producer.Config{Brokers: b.Addr(), StatsInterval: 100 * time.Millisecond}, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	deadline := time.Now().Add(15 * time.Second)
	for {
		ok, reason := p.Ready()
		if ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("producer not ready within 15s: %s", reason)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestQueueFullFailsFast(t *testing.T) {
	// No broker listens on this port: records stay queued.
	p, err := producer.New(producer.Config{
		Brokers:  "127.0.0.1:1",
		Settings: map[string]string{"queue.buffering.max.messages": "10", "message.timeout.ms": "60000"},
	}, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		p.Flush(0)
		p.Close()
	}()
	for i := 0; i < 10; i++ {
		if err := p.Produce([]byte("k"), []byte("v")); err != nil {
			t.Fatalf("produce %d: %v", i, err)
		}
	}
	err = p.Produce([]byte("k"), []byte("v"))
	if !errors.Is(err, producer.ErrQueueFull) {
		t.Fatalf("11th produce: %v, want ErrQueueFull", err)
	}
	if err.(*status.Error).HTTPStatus() != http.StatusServiceUnavailable || producer.ErrQueueFull.RetryAfter() <= 0 {
		t.Fatalf("queue full must be a 503 with Retry-After")
	}
	if ok, reason := p.Ready(); ok {
		t.Fatalf("Ready with a full queue and no broker; want not ready")
	} else {
		t.Logf("not ready: %s", reason)
	}
}

func TestTooLargeIs413(t *testing.T) {
	p, err := producer.New(producer.Config{
		Brokers:  "127.0.0.1:1",
		Settings: map[string]string{"message.max.bytes": "2000"},
	}, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	err = p.Produce(nil, make([]byte, 5000))
	var pe *status.Error
	if !errors.As(err, &pe) || pe.HTTPStatus() != http.StatusRequestEntityTooLarge {
		t.Fatalf("oversize record: %v, want a 413 error", err)
	}
}

func TestConfigValidate(t *testing.T) {
	bad := []producer.Config{
		{HighWater: 1.5},
		{Topic: "has space"},
		{Settings: map[string]string{"bootstrap.servers": "x:1"}},
		{Settings: map[string]string{"queue.buffering.max.messages": "lots"}},
		// Properties the guarantees rest on (owned.go).
		{Settings: map[string]string{"delivery.report.only.error": "true"}},
		{Settings: map[string]string{"enable.idempotence": "false"}},
		{Settings: map[string]string{"acks": "1"}},
		{Settings: map[string]string{"request.required.acks": "0"}},
		{Settings: map[string]string{"max.in.flight.requests.per.connection": "6"}},
		{Settings: map[string]string{"retries": "0"}},
		{Settings: map[string]string{"message.timeout.ms": "10"}},
		{Settings: map[string]string{"go.delivery.reports": "false"}},
		{Settings: map[string]string{"go.delivery.report.fields": "key"}},
		{Settings: map[string]string{"partitioner": "random"}},
		{Settings: map[string]string{"statistics.interval.ms": "0"}},
		{Settings: map[string]string{"transactional.id": "x"}},
		{Settings: map[string]string{"queuing.strategy": "lifo"}},
	}
	for _, c := range bad {
		if err := c.Validate(); err == nil {
			t.Errorf("Validate(%+v) = nil, want an error", c)
		}
	}
	if err := (producer.Config{}).Validate(); err != nil {
		t.Fatalf("zero Config must be valid: %v", err)
	}
	good := map[string]string{"linger.ms": "10", "acks": "all", "message.timeout.ms": "0", "delivery.timeout.ms": "30000",
		"go.delivery.report.fields": "all", "partitioner": "murmur2", "compression.type": "zstd", "retries": "10"}
	if err := (producer.Config{Settings: good}).Validate(); err != nil {
		t.Fatalf("tuning that keeps the guarantees must be valid: %v", err)
	}
	err := (producer.Config{Settings: map[string]string{"delivery.report.only.error": "true"}}).Validate()
	if err == nil || !strings.Contains(err.Error(), "delivery.report.only.error=true is not allowed") {
		t.Fatalf("the refusal must name the property and value: %v", err)
	}
}

func TestRecordOverTopicMaxIs413(t *testing.T) {
	const topic = "small"
	b, err := embedded.Start(embedded.Config{Listen: "127.0.0.1:0", Partitions: 1, Topics: []string{topic}}, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if err := b.Cluster().CreateTopic("tiny", 1, map[string]string{"max.message.bytes": "4096"}); err != nil {
		t.Fatal(err)
	}
	p, err := producer.New(producer.Config{Brokers: b.Addr(), Topic: "tiny", StatsInterval: 100 * time.Millisecond}, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	deadline := time.Now().Add(15 * time.Second)
	for ok, reason := p.Ready(); !ok; ok, reason = p.Ready() {
		if time.Now().After(deadline) {
			t.Fatalf("not ready: %s", reason)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err := p.Produce([]byte("k"), make([]byte, 3000)); err != nil {
		t.Fatalf("a record under the topic limit: %v", err)
	}
	err = p.Produce([]byte("k"), make([]byte, 5000))
	var pe *status.Error
	if !errors.As(err, &pe) || pe.HTTPStatus() != http.StatusRequestEntityTooLarge {
		t.Fatalf("record over the topic's max.message.bytes: %v, want 413", err)
	}
	t.Log(err)
	if left := p.Flush(10 * time.Second); left != 0 {
		t.Fatalf("%d left", left)
	}
}

func TestMissingTopicIsNotReady(t *testing.T) {
	b := startBroker(t, "beacons")
	p, err := producer.New(producer.Config{Brokers: b.Addr(), Topic: "nope", StatsInterval: 100 * time.Millisecond,
		Settings: map[string]string{"allow.auto.create.topics": "false"}}, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	// Once a broker is up, the reason must be the missing topic, and it
	// must never turn ready.
	deadline := time.Now().Add(15 * time.Second)
	for {
		ok, reason := p.Ready()
		if ok {
			t.Fatalf("ready with a missing topic")
		}
		if strings.Contains(reason, "not found") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("still %q after 15s, want a topic-not-found reason", reason)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

type keptRecord struct{ key, value string }

func TestPurgeHandsRecordsToFailureHandler(t *testing.T) {
	p, err := producer.New(producer.Config{Brokers: "127.0.0.1:1"}, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	var mu sync.Mutex
	var kept []keptRecord
	p.SetFailureHandler(func(key, value []byte, f *delivery.Failure) error {
		if f.Class != delivery.Retriable || f.Code != "_PURGE_QUEUE" {
			t.Errorf("purged record classified %s %s, want retriable _PURGE_QUEUE", f.Code, f.Class)
		}
		mu.Lock()
		defer mu.Unlock()
		kept = append(kept, keptRecord{string(key), string(value)})
		return nil
	})
	tr := &tracker{done: make(chan error, 1)}
	for i := 0; i < 9; i++ {
		if err := p.Produce([]byte("k"+strconv.Itoa(i)), []byte("v"+strconv.Itoa(i))); err != nil {
			t.Fatal(err)
		}
	}
	if err := p.ProduceTracked([]byte("k9"), []byte("v9"), tr); err != nil {
		t.Fatal(err)
	}
	if left := p.Purge(10 * time.Second); left != 0 {
		t.Fatalf("%d records left after purge", left)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(kept) != 10 {
		t.Fatalf("failure handler got %d records, want 10", len(kept))
	}
	for i, r := range kept {
		if r.key != "k"+strconv.Itoa(i) || r.value != "v"+strconv.Itoa(i) {
			t.Fatalf("kept record %d = %+v (order or content wrong)", i, r)
		}
	}
	select {
	case err := <-tr.done:
		if err != nil {
			t.Fatalf("tracked record kept by the handler reported %v, want nil", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("tracker never called")
	}
}

type tracker struct{ done chan error }

func (t *tracker) Delivered(err error) { t.done <- err }

func TestTrackedAndDeadLetter(t *testing.T) {
	b := startBroker(t, "beacons")
	if err := b.Cluster().CreateTopic("beacons-dlq", 1, nil); err != nil {
		t.Fatal(err)
	}
	p, err := producer.New(producer.Config{Brokers: b.Addr()}, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	tr := &tracker{done: make(chan error, 1)}
	if err := p.ProduceTracked([]byte("u1"), []byte("v"), tr); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-tr.done:
		if err != nil {
			t.Fatalf("tracked delivery: %v", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("tracked record never acknowledged")
	}
	if err := p.ProduceTo("beacons-dlq", nil, []byte("{bad json"), []delivery.Header{{Key: "reason", Value: []byte("invalid_json")}}, nil); err != nil {
		t.Fatal(err)
	}
	if left := p.Flush(10 * time.Second); left != 0 {
		t.Fatalf("%d left", left)
	}
	recs := kafkatest.Consume(t, b.Addr(), "beacons-dlq", 1, 30*time.Second)
	if string(recs[0].Value) != "{bad json" || len(recs[0].Headers) != 1 || recs[0].Headers[0].Key != "reason" ||
		string(recs[0].Headers[0].Value) != "invalid_json" {
		t.Fatalf("dead letter %q headers %v", recs[0].Value, recs[0].Headers)
	}
}

// TestHighWaterCountsBytes: large records fill queue.buffering.max.kbytes
// long before the record limit, so readiness must turn false on bytes
// too, or a load balancer keeps sending to a gateway whose queue is full.
func TestHighWaterCountsBytes(t *testing.T) {
	b := startBroker(t, "beacons")
	p, err := producer.New(producer.Config{Brokers: b.Addr(), StatsInterval: 100 * time.Millisecond,
		// Records stay queued (no acknowledged request flushes them).
		Settings: map[string]string{"linger.ms": "60000", "queue.buffering.max.kbytes": "64"}}, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	kafkatest.WaitFor(t, "producer ready", 15*time.Second, func() bool { ok, _ := p.Ready(); return ok })
	value := make([]byte, 2000)
	for i := range 30 { // 60,000 bytes: above 80% of 64 KiB, 30 of 200,000 records
		if err := p.Produce([]byte("k"), value); err != nil {
			t.Fatalf("produce %d: %v", i, err)
		}
	}
	ok, reason := p.Ready()
	if ok || !strings.Contains(reason, "bytes") {
		t.Fatalf("Ready = %v (%q) with 60,000 of 65,536 queue bytes taken; want not ready on bytes", ok, reason)
	}
	if left := p.Flush(15 * time.Second); left != 0 {
		t.Fatalf("%d records left after flush", left)
	}
	kafkatest.WaitFor(t, "ready again once the queue emptied", 15*time.Second, func() bool { ok, _ := p.Ready(); return ok })
}
