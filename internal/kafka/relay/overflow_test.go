package relay

import (
	"strconv"
	"sync"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/beacongate/beacongate/ingest/record"
	"github.com/beacongate/beacongate/internal/kafka/delivery"
	beaconv1 "github.com/beacongate/beacongate/proto/beacongate/v1"
)

// spreadKafka is the fake with the producer's overflow path: it notes,
// per record (by request id), whether it was produced spread.
type spreadKafka struct {
	*fakeKafka
	mu     sync.Mutex
	spread map[string]int // request id → times produced through ProduceOverflow
	keyed  map[string]int // request id → times produced to its key's partition
}

func newSpreadKafka(t *testing.T) *spreadKafka {
	return &spreadKafka{fakeKafka: newFake(t), spread: map[string]int{}, keyed: map[string]int{}}
}

func (k *spreadKafka) note(value []byte, spread bool) {
	var b beaconv1.Beacon
	if err := proto.Unmarshal(value, &b); err != nil {
		panic("BUG: the test produced a value that is no Beacon: " + err.Error())
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if spread {
		k.spread[b.RequestId]++
	} else {
		k.keyed[b.RequestId]++
	}
}

func (k *spreadKafka) Produce(key, value []byte) error {
	k.note(value, false)
	return k.fakeKafka.Produce(key, value)
}

func (k *spreadKafka) ProduceTracked(key, value []byte, t delivery.Tracker) error {
	k.note(value, false)
	return k.fakeKafka.ProduceTracked(key, value, t)
}

func (k *spreadKafka) ProduceOverflow(key, value []byte, t delivery.Tracker) error {
	k.note(value, true)
	return k.fakeKafka.ProduceTracked(key, value, t)
}

func (k *spreadKafka) counts(id string) (spread, keyed int) {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.spread[id], k.keyed[id]
}

// beacon encodes a record as the ingest side does.
func beacon(key, id string, overflow bool) []byte {
	return record.Append(nil, &record.Beacon{RequestID: []byte(id), ShardKey: []byte(key), Overflow: overflow,
		// A payload holding the marked field's bytes must not fool the
		// pre-filter of overflowMarked.
		Payload: []byte("{\"x\":\"\xb0\x01\x01\"}")})
}

// Overflow records go spread whichever way they reach Kafka: straight
// (single and batch), and replayed from the spool after an outage (the
// mark is in the value, the spool keeps no more); every other record goes
// to its key's partition.
func TestOverflowSpreadDirectAndReplayed(t *testing.T) {
	k := newSpreadKafka(t)
	r, _ := newRelay(t, k.fakeKafka, relayOpts{kafka: k})
	k.setUp(true)
	waitFor(t, "direct mode", func() bool { return r.route.Load() && !r.Spooling() })

	produce := func(phase string) {
		for i := range 10 {
			id := phase + strconv.Itoa(i)
			var err error
			if i%2 == 1 {
				err = r.ProduceOverflow([]byte("hot"), beacon("hot", id, true), nil)
			} else {
				err = r.Produce([]byte("hot"), beacon("hot", id, false))
			}
			if err != nil {
				t.Fatal(err)
			}
		}
		recs := []delivery.Record{
			{Key: []byte("hot"), Value: beacon("hot", phase+"b0", false)},
			{Key: []byte("hot"), Value: beacon("hot", phase+"b1", true), Overflow: true},
		}
		if n, err := r.ProduceBatch(recs, nil); n != 2 || err != nil {
			t.Fatalf("ProduceBatch = %d, %v", n, err)
		}
	}
	check := func(phase string) {
		t.Helper()
		for i := range 10 {
			id := phase + strconv.Itoa(i)
			spread, keyed := k.counts(id)
			if want := i % 2; spread != want || keyed != 1-want {
				t.Fatalf("%s: produced %d times spread, %d keyed; want overflow=%v", id, spread, keyed, want == 1)
			}
		}
		if s, kd := k.counts(phase + "b0"); s != 0 || kd != 1 {
			t.Fatalf("batch record b0: %d spread, %d keyed, want keyed", s, kd)
		}
		if s, kd := k.counts(phase + "b1"); s != 1 || kd != 0 {
			t.Fatalf("batch record b1: %d spread, %d keyed, want spread", s, kd)
		}
	}
	produce("direct")
	waitFor(t, "delivery", func() bool { return len(k.records()) == 12 })
	check("direct")

	k.setUp(false)
	waitFor(t, "spooling mode", func() bool { return !r.route.Load() })
	produce("spooled")
	if s, kd := k.counts("spooled1"); s+kd != 0 {
		t.Fatal("a record was produced while Kafka was down: the outage did not happen")
	}
	k.setUp(true)
	waitFor(t, "replay", func() bool { return len(k.records()) == 24 && !r.Spooling() })
	check("spooled")
}

// Records librdkafka hands back go to the kept lane and are replayed
// spread again if they are overflow.
func TestOverflowKeptRecordSpreadAgain(t *testing.T) {
	k := newSpreadKafka(t)
	r, sp := newRelay(t, k.fakeKafka, relayOpts{kafka: k})
	k.setUp(true)
	waitFor(t, "direct mode", func() bool { return r.route.Load() && !r.Spooling() })
	k.setUp(false) // records stay queued, then time out
	if err := r.ProduceOverflow([]byte("hot"), beacon("hot", "o", true), nil); err != nil {
		t.Fatal(err)
	}
	if err := r.Produce([]byte("hot"), beacon("hot", "k", false)); err != nil {
		t.Fatal(err)
	}
	k.timeoutAll()
	if st := sp.Kept.Stats(); st.Records != 2 {
		t.Fatalf("kept lane holds %d records, want the 2 handed back", st.Records)
	}
	k.setUp(true)
	waitFor(t, "replay", func() bool { return len(k.records()) == 2 && !r.Spooling() })
	if s, kd := k.counts("o"); s != 2 || kd != 0 {
		t.Fatalf("overflow record: %d spread, %d keyed; want spread both times", s, kd)
	}
	if s, kd := k.counts("k"); s != 0 || kd != 2 {
		t.Fatalf("keyed record: %d spread, %d keyed; want keyed both times", s, kd)
	}
}

func TestOverflowMarked(t *testing.T) {
	for _, c := range []struct {
		name  string
		value []byte
		want  bool
	}{
		{"marked", beacon("k", "1", true), true},
		{"unmarked, the bytes in the payload", beacon("k", "1", false), false},
		{"empty", nil, false},
		{"marked, then false", append(beacon("k", "1", true), 0xb0, 0x01, 0x00), false},
		{"false, then marked", append([]byte{0xb0, 0x01, 0x00}, beacon("k", "1", true)...), true},
		{"truncated", beacon("k", "1", true)[:5], false},
		{"marked after garbage", append([]byte{0xff, 0xff}, 0xb0, 0x01, 0x01), false},
		{"marked, its tag in three bytes", []byte{0xb0, 0x81, 0x00, 0x51}, true},
	} {
		if got := overflowMarked(c.value); got != c.want {
			t.Errorf("%s: overflowMarked = %v, want %v", c.name, got, c.want)
		}
	}
}

// FuzzOverflowMarked: on any bytes the replayer may read back, no panic,
// and on every value that is a Beacon the same answer as protobuf's.
func FuzzOverflowMarked(f *testing.F) {
	f.Add(beacon("k", "1", true))
	f.Add(beacon("k", "1", false))
	f.Add([]byte{0xb0, 0x01, 0x01})
	f.Fuzz(func(t *testing.T, value []byte) {
		got := overflowMarked(value)
		var b beaconv1.Beacon
		if err := proto.Unmarshal(value, &b); err == nil && got != b.Overflow {
			t.Fatalf("overflowMarked = %v, proto.Unmarshal says overflow = %v", got, b.Overflow)
		}
	})
}
