package producer_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/beacongate/beacongate/internal/kafka/delivery"
	"github.com/beacongate/beacongate/internal/kafka/producer"
)

// TestAckedRecordsDoNotLinger: with linger.ms at a minute, an
// asynchronous record waits in librdkafka's queue; a record of an
// acknowledged request is sent at once, and takes the waiting one along.
// Without the flush thread (urgent.go) both would wait out the minute.
func TestAckedRecordsDoNotLinger(t *testing.T) {
	b := startBroker(t, "beacons")
	p, err := producer.New(producer.Config{Brokers: b.Addr(), Topic: "beacons",
		Settings: map[string]string{"linger.ms": "60000"}}, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if !producer.UrgentFlushAvailable(p) {
		t.Fatal("librdkafka's handle is out of reach: acknowledged requests would wait out linger.ms")
	}

	if err := p.Produce([]byte("u1"), []byte("async")); err != nil {
		t.Fatal(err)
	}
	// The fault: the asynchronous record lingers (a broker is up well
	// within this time: the tracked record below gets through in less).
	time.Sleep(2 * time.Second)
	if n := p.Delivered(); n != 0 {
		t.Fatalf("%d records delivered with linger.ms=60000 and no acknowledged request: the test cannot tell lingering from not", n)
	}
	if n := producer.Flushes(p); n != 0 {
		t.Fatalf("the flush thread flushed %d times with no acknowledged request outstanding", n)
	}

	ack := delivery.NewAck(0)
	ack.Add(1)
	if err := p.ProduceTracked([]byte("u1"), []byte("acked"), ack); err != nil {
		t.Fatal(err)
	}
	ack.Release()
	select {
	case <-ack.Done():
		if err := ack.Err(); err != nil {
			t.Fatalf("acknowledged record failed: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("acknowledged record not delivered within 20s: it waited out linger.ms")
	}
	// The asynchronous record queued before it went along, in order.
	if n := p.Delivered(); n != 2 {
		t.Fatalf("delivered %d, want both records", n)
	}
	// It was the flush thread that sent them, and it goes back to sleep
	// once nothing acknowledged is outstanding (each flush lasts 1 ms:
	// a thread still flushing would make ~100 more in 100 ms).
	if n := producer.Flushes(p); n == 0 {
		t.Fatal("the acknowledged record went out without a flush")
	}
	if u := producer.Urgent(p); u != 0 {
		t.Fatalf("%d acknowledged records still counted outstanding after their report", u)
	}
	time.Sleep(20 * time.Millisecond) // the flush in progress ends
	before := producer.Flushes(p)
	time.Sleep(100 * time.Millisecond)
	if n := producer.Flushes(p) - before; n > 1 {
		t.Fatalf("the flush thread flushed %d more times in 100 ms with nothing outstanding", n)
	}
}

// TestFlushThreadIsNamed: the flush thread carries its own name, so
// per-thread CPU (top -H, beacongate-bench's report) shows it apart from
// the Go runtime's threads, and it ends with the producer.
func TestFlushThreadIsNamed(t *testing.T) {
	b := startBroker(t, "beacons")
	before := threadsNamed(t, "bg:flush")
	p, err := producer.New(producer.Config{Brokers: b.Addr(), Topic: "beacons"}, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	if n := threadsNamed(t, "bg:flush"); n != before+1 {
		p.Close()
		t.Fatalf("%d threads named bg:flush with the producer running, %d before it: want one more", n, before)
	}
	p.Close()
	if n := threadsNamed(t, "bg:flush"); n != before {
		t.Fatalf("%d threads named bg:flush after Close, %d before the producer: the thread outlived it", n, before)
	}
}

// threadsNamed counts this process's threads called name.
func threadsNamed(t *testing.T, name string) int {
	t.Helper()
	dirs, err := filepath.Glob("/proc/self/task/*/comm")
	if err != nil || len(dirs) == 0 {
		t.Fatalf("listing threads: %v (%d found)", err, len(dirs))
	}
	n := 0
	for _, d := range dirs {
		b, err := os.ReadFile(d)
		if err == nil && strings.TrimSpace(string(b)) == name {
			n++
		}
	}
	return n
}
