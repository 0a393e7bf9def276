package ingest

import (
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"testing"

	"go.uber.org/zap"
	"google.golang.org/protobuf/proto"

	"github.com/beacongate/beacongate/internal/kafka/delivery"
	beaconv1 "github.com/beacongate/beacongate/proto/beacongate/v1"
	"github.com/beacongate/beacongate/shard"
)

// spreadSink takes records as the relay does, copying them, and counts
// the overflow ones apart. keep makes it remember every record (not for
// the allocation test).
type spreadSink struct {
	keep     bool
	mu       sync.Mutex
	key, val []byte
	recs     []sunk
	overflow atomic.Int64
	keyed    atomic.Int64
}

type sunk struct {
	key      string
	value    []byte
	overflow bool // came through ProduceOverflow or Record.Overflow
}

func (s *spreadSink) take(key, value []byte, overflow bool) {
	if overflow {
		s.overflow.Add(1)
	} else {
		s.keyed.Add(1)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.key = append(s.key[:0], key...)
	s.val = append(s.val[:0], value...)
	if s.keep {
		s.recs = append(s.recs, sunk{string(key), append([]byte(nil), value...), overflow})
	}
}

func (s *spreadSink) Produce(key, value []byte) error { s.take(key, value, false); return nil }
func (s *spreadSink) ProduceOverflow(key, value []byte, _ *delivery.Ack) error {
	s.take(key, value, true)
	return nil
}
func (s *spreadSink) Admit(key, value []byte) error { return nil }
func (s *spreadSink) ProduceBatch(recs []delivery.Record, _ *delivery.Ack) (int, error) {
	for _, r := range recs {
		s.take(r.Key, r.Value, r.Overflow)
	}
	return len(recs), nil
}

func TestHotKeysNeedASpreadingSink(t *testing.T) {
	_, err := New(Config{Shard: shard.Config{HotKeyRate: 10}}, discardSink{}, nil, zap.NewNop())
	if !errors.Is(err, errHotKeysNeedSpread) {
		t.Fatalf("New with the valve on and a sink that cannot spread: %v, want errHotKeysNeedSpread", err)
	}
}

// With the valve on, a key's records beyond its burst are marked in the
// record and go through the overflow path, on every endpoint; the mark
// and the path always agree. With it off, nothing is ever marked.
func TestHotKeysMarkAndRoute(t *testing.T) {
	for _, on := range []bool{true, false} {
		cfg := Config{}
		if on {
			// A tiny rate: within the test's milliseconds only the burst stays home.
			cfg.Shard = shard.Config{HotKeyRate: 0.001, HotKeyBurst: 3}
		}
		sink := &spreadSink{keep: true}
		s, err := New(cfg, sink, nil, zap.NewNop())
		if err != nil {
			t.Fatal(err)
		}
		r := newReplayer(s, net.IPv4(198, 51, 100, 7))
		for _, c := range append(benchRequests[:len(benchRequests):len(benchRequests)], protocolRequests...) {
			for range 4 {
				if st, err := r.serve(c.raw); err != nil || st != c.status {
					t.Fatalf("%s: status %d (%v, %s), want %d", c.name, st, err, r.body(), c.status)
				}
			}
		}
		perKey := map[string][2]int{} // key → home, overflow
		for _, rec := range sink.recs {
			var b beaconv1.Beacon
			if err := proto.Unmarshal(rec.value, &b); err != nil {
				t.Fatal(err)
			}
			if b.Overflow != rec.overflow {
				t.Fatalf("valve on=%v: record of %q marked overflow=%v but produced overflow=%v", on, rec.key, b.Overflow, rec.overflow)
			}
			n := perKey[rec.key]
			if rec.overflow {
				n[1]++
			} else {
				n[0]++
			}
			perKey[rec.key] = n
		}
		for key, n := range perKey {
			switch {
			case !on && n[1] != 0:
				t.Fatalf("valve off: %d records of %q overflowed", n[1], key)
			case on && n[0]+n[1] > 3 && (n[0] != 3 || n[1] != n[0]+n[1]-3):
				t.Fatalf("valve on: key %q: %d stayed home, %d overflowed; want the burst (3) home, the rest overflow", key, n[0], n[1])
			}
		}
		if on && sink.overflow.Load() == 0 {
			t.Fatal("valve on: nothing overflowed; the test load did not make a key hot")
		}
	}
}

// protocolRequests are the Segment and Snowplow endpoints' shapes, one
// user each, for the valve: they encode and produce on paths of their own.
var protocolRequests = func() []benchRequest {
	post := func(path, body string) []byte {
		return fmt.Appendf(nil, "POST %s HTTP/1.1\r\nHost: t.example.com\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", path, len(body), body)
	}
	return []benchRequest{
		{"segment track", post("/v1/track", `{"userId":"seg-1","event":"Buy","messageId":"m-1"}`), 200, 1},
		{"segment batch", post("/v1/batch", `{"batch":[{"type":"track","userId":"seg-2","event":"A"},{"type":"identify","userId":"seg-2"}]}`), 200, 2},
		{"snowplow get", []byte("GET /i?e=pv&p=web&tv=js-4.0.0&uid=sp-1&eid=e-1 HTTP/1.1\r\nHost: t.example.com\r\n\r\n"), 200, 1},
		{"snowplow tp2", post("/com.snowplowanalytics.snowplow/tp2",
			`{"schema":"iglu:com.snowplowanalytics.snowplow/payload_data/jsonschema/1-0-4","data":[{"e":"pv","p":"web","tv":"js-4.0.0","uid":"sp-2"},{"e":"se","p":"web","tv":"js-4.0.0","uid":"sp-2"}]}`), 200, 2},
	}
}()

// discardSpreadSink is discardSink with the overflow path, counted.
type discardSpreadSink struct {
	discardSink
	overflow atomic.Int64
}

func (d *discardSpreadSink) ProduceOverflow(key, value []byte, _ *delivery.Ack) error {
	d.overflow.Add(1)
	return d.Produce(key, value)
}

// BenchmarkHandlerHotKeys is BenchmarkHandler's pixel with the valve on
// and every record overflowing: the valve's cost per request.
func BenchmarkHandlerHotKeys(b *testing.B) {
	c := benchRequests[0]
	sink := &discardSpreadSink{}
	s, err := New(Config{Shard: shard.Config{HotKeyRate: 1, HotKeyBurst: 1}}, sink, nil, zap.NewNop())
	if err != nil {
		b.Fatal(err)
	}
	r := newReplayer(s, net.IPv4(198, 51, 100, 7))
	for range 2 { // the burst, then the key is hot
		if st, err := r.serve(c.raw); err != nil || st != c.status {
			b.Fatalf("status %d (%v): %s", st, err, r.body())
		}
	}
	b.ReportAllocs()
	b.SetBytes(int64(len(c.raw)))
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		r := newReplayer(s, net.IPv4(198, 51, 100, 7))
		for pb.Next() {
			if st, err := r.serve(c.raw); err != nil || st != c.status {
				b.Fatalf("status %d (%v): %s", st, err, r.body())
			}
		}
	})
	if sink.overflow.Load() == 0 {
		b.Fatal("no record overflowed")
	}
}
