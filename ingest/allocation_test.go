//go:build !race

package ingest

import (
	"net"
	"testing"

	"go.uber.org/zap"

	"github.com/beacongate/beacongate/internal/kafka/delivery"
)

// copySink copies key and value like librdkafka does (RD_KAFKA_MSG_F_COPY)
// into buffers it reuses.
type copySink struct{ key, val []byte }

func (s *copySink) Produce(key, value []byte) error {
	s.key = append(s.key[:0], key...)
	s.val = append(s.val[:0], value...)
	return nil
}

// A batch goes through BatchSink, as with the relay.
func (s *copySink) Admit(key, value []byte) error { return nil }

func (s *copySink) ProduceBatch(recs []delivery.Record, _ *delivery.Ack) (int, error) {
	for _, r := range recs {
		_ = s.Produce(r.Key, r.Value)
	}
	return len(recs), nil
}

// TestHotPathAllocs holds the promise that a request becomes a record
// without a heap allocation once pools are warm: read the raw request,
// route, parse, derive the key, encode, produce, write the response.
func TestHotPathAllocs(t *testing.T) {
	s, err := New(Config{}, &copySink{}, nil, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range benchRequests {
		t.Run(c.name, func(t *testing.T) {
			r := newReplayer(s, net.IPv4(198, 51, 100, 7))
			run := func() {
				if st, err := r.serve(c.raw); err != nil || st != c.status {
					t.Fatalf("status %d (%v, %s), want %d", st, err, r.body(), c.status)
				}
			}
			if n := testing.AllocsPerRun(200, run); n != 0 {
				t.Fatalf("%s: %v allocations per request, want 0", c.name, n)
			}
		})
	}
}
