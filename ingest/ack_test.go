package ingest

import (
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/beacongate/beacongate/internal/kafka/delivery"
	"github.com/beacongate/beacongate/internal/kafka/relay"
)

// ackKafka is a fake producer whose acknowledgements the test releases,
// behind the real relay.
type ackKafka struct {
	mu      sync.Mutex
	records int
	hold    bool
	waiting []delivery.Tracker
	dlq     *dlqKafka
	room    int // 0: 1000
}

func (k *ackKafka) Admit(int, int) error { return nil }

func (k *ackKafka) Produce(key, value []byte) error {
	k.mu.Lock()
	k.records++
	k.mu.Unlock()
	return nil
}

func (k *ackKafka) ProduceTracked(key, value []byte, t delivery.Tracker) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.records++
	if k.hold {
		k.waiting = append(k.waiting, t)
		return nil
	}
	go t.Delivered(nil)
	return nil
}

func (k *ackKafka) ProduceTo(topic string, key, value []byte, headers []delivery.Header, t delivery.Tracker) error {
	return k.dlq.ProduceTo(topic, key, value, headers)
}

func (k *ackKafka) Ready() (bool, string) { return true, "" }
func (k *ackKafka) Outstanding() int      { return 0 }
func (k *ackKafka) Room() (int, int64) {
	if k.room == 0 {
		return 1000, 1 << 30
	}
	return k.room, 1 << 30
}
func (k *ackKafka) QueueMax() int      { return 1000 }
func (k *ackKafka) TopicMaxBytes() int { return 0 }

// dlqKafka records dead letters.
type dlqKafka struct {
	mu      sync.Mutex
	letters []string
	headers []map[string]string
}

func (d *dlqKafka) ProduceTo(topic string, key, value []byte, headers []delivery.Header) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	h := map[string]string{"topic": topic}
	for _, kv := range headers {
		h[kv.Key] = string(kv.Value)
	}
	d.letters = append(d.letters, string(value))
	d.headers = append(d.headers, h)
	return nil
}

func newAckServer(t *testing.T, cfg Config) (*testServer, *ackKafka, *dlqKafka) {
	t.Helper()
	d := &dlqKafka{}
	k := &ackKafka{dlq: d}
	rel, err := relay.New(relay.Config{DeadLetterTopic: "beacons-dlq", DeadLetterMaxBytes: 16}, k, nil, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	return newTestServerWith(t, cfg, rel, nil), k, d
}

func TestAcknowledgedMode(t *testing.T) {
	ts, k, _ := newAckServer(t, Config{AckTimeout: 300 * time.Millisecond, AckRoutes: []string{"beacon"}})
	if r := ts.do(t, "GET", "/i?uid=1", "", "", "X-Beacon-Ack", "kafka"); r.status != 200 {
		t.Fatalf("acknowledged pixel: %d %s", r.status, r.body)
	}
	k.mu.Lock()
	k.hold = true
	k.mu.Unlock()
	r := ts.do(t, "GET", "/i?uid=2", "", "", "X-Beacon-Ack", "kafka")
	if r.status != 503 || !strings.HasPrefix(r.body, "ack_timeout: ") || r.headers["Retry-After"] == "" {
		t.Fatalf("unacknowledged pixel: %d %q, want 503 ack_timeout with Retry-After", r.status, r.body)
	}
	// The route default applies without the header, and "none" opts out.
	if r := ts.do(t, "POST", "/i", "application/json", `{"a":1}`); r.status != 503 {
		t.Fatalf("beacon on an acknowledged route: %d, want 503 while Kafka holds the ack", r.status)
	}
	if r := ts.do(t, "POST", "/i", "application/json", `{"a":1}`, "X-Beacon-Ack", "none"); r.status != 204 {
		t.Fatalf("X-Beacon-Ack: none: %d", r.status)
	}
	// Released acknowledgements arrive; a request waiting for them passes.
	k.mu.Lock()
	k.hold = false
	for _, w := range k.waiting {
		w.Delivered(nil)
	}
	k.waiting = nil
	k.mu.Unlock()
	if r := ts.do(t, "POST", "/batch", "application/json", `[{"a":1},{"a":2}]`, "X-Beacon-Ack", "kafka"); r.status != 200 {
		t.Fatalf("acknowledged batch: %d %s", r.status, r.body)
	}
	if r := ts.do(t, "GET", "/i?uid=3", "", "", "X-Beacon-Ack", "maybe"); r.status != 400 {
		t.Fatalf("bad X-Beacon-Ack: %d, want 400", r.status)
	}
}

func TestAckWithoutSupportIs400(t *testing.T) {
	ts := newTestServer(t, Config{})
	if r := ts.do(t, "GET", "/i?uid=1", "", "", "X-Beacon-Ack", "kafka"); r.status != 400 || !strings.HasPrefix(r.body, "ack_unsupported") {
		t.Fatalf("ack on a sink without it: %d %q", r.status, r.body)
	}
}

func TestDeadLetters(t *testing.T) {
	ts, _, d := newAckServer(t, Config{})
	ts.do(t, "POST", "/i?uid=1", "application/json", `{"a":}`)
	ts.do(t, "POST", "/batch", "application/json", `[{"ok":1}, 7, {"ok":2}]`)
	ts.do(t, "GET", "/i?uid=%zz", "", "")
	ts.do(t, "GET", "/nope", "", "") // not about an event's content: no dead letter
	ts.do(t, "GET", "/i?uid=fine", "", "")
	d.mu.Lock()
	defer d.mu.Unlock()
	if len(d.letters) != 3 {
		t.Fatalf("%d dead letters %q, want 3", len(d.letters), d.letters)
	}
	if d.letters[0] != `{"a":}` || d.headers[0]["beacongate.reason"] != "invalid_json" || d.headers[0]["topic"] != "beacons-dlq" ||
		d.headers[0]["beacongate.status"] != "400" || d.headers[0]["beacongate.request_id"] == "" {
		t.Fatalf("dead letter 0: %q %v", d.letters[0], d.headers[0])
	}
	if d.letters[1] != "7" || d.headers[1]["beacongate.batch_index"] != "1" || d.headers[1]["beacongate.reason"] != "not_object" {
		t.Fatalf("dead letter 1: %q %v", d.letters[1], d.headers[1])
	}
	if d.letters[2] != "uid=%zz" || d.headers[2]["beacongate.reason"] != "bad_escape" {
		t.Fatalf("dead letter 2: %q %v", d.letters[2], d.headers[2])
	}
	// Cut to the bound (16 bytes here), and marked so.
	d.mu.Unlock()
	ts.do(t, "POST", "/i", "application/json", `{"a":"`+strings.Repeat("x", 100))
	d.mu.Lock()
	if last := d.headers[len(d.headers)-1]; len(d.letters[len(d.letters)-1]) != 16 || last["beacongate.truncated"] != "true" || last["beacongate.size"] != "106" {
		t.Fatalf("long dead letter: %q %v", d.letters[len(d.letters)-1], last)
	}
}
