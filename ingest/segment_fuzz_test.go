package ingest

import (
	"bytes"
	"encoding/json"
	"sync"
	"testing"

	"go.uber.org/zap"
	"google.golang.org/protobuf/proto"

	"github.com/beacongate/beacongate/internal/kafka/delivery"
	beaconv1 "github.com/beacongate/beacongate/proto/beacongate/v1"
)

// decodingSink checks every record as a consumer would decode it.
type decodingSink struct {
	mu   sync.Mutex
	recs []*beaconv1.Beacon
	err  error
}

func (s *decodingSink) Produce(key, value []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	var b beaconv1.Beacon
	if err := proto.Unmarshal(value, &b); err != nil && s.err == nil {
		s.err = err
	}
	s.recs = append(s.recs, &b)
	return nil
}

func (s *decodingSink) Admit(key, value []byte) error { return nil }

func (s *decodingSink) ProduceBatch(recs []delivery.Record, _ *delivery.Ack) (int, error) {
	for _, r := range recs {
		_ = s.Produce(r.Key, r.Value)
	}
	return len(recs), nil
}

// segmentFuzzPaths are the endpoints FuzzSegment sends bodies to.
var segmentFuzzPaths = []string{"/v1/batch", "/v1/track", "/v1/b", "/v1/identify", "/v1/group", "/v1/alias", "/v1/p"}

// FuzzSegment sends arbitrary bodies to the Segment endpoints: nothing may
// panic or answer 5xx; a 200 is exactly Segment's success and every
// record is a Segment record whose payload is one valid JSON object with
// the call's type, the gateway's receivedAt and never the write key.
func FuzzSegment(f *testing.F) {
	f.Add(uint8(0), []byte(`{"batch":[{"type":"track","userId":"u","event":"E","messageId":"m","context":{"ip":"1"}}],"context":{"library":{"name":"x"}},"writeKey":"k","sentAt":"s"}`))
	f.Add(uint8(1), []byte(`{"userId":"u","event":"E","writeKey":"k","integrations":{"All":true}}`))
	sink := &decodingSink{}
	s, err := New(Config{}, sink, nil, zap.NewNop())
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, path uint8, body []byte) {
		p := segmentFuzzPaths[int(path)%len(segmentFuzzPaths)]
		raw := "POST " + p + " HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\nContent-Length: " + itoa(len(body)) + "\r\n\r\n" + string(body)
		r := newReplayer(s, nil)
		sink.mu.Lock()
		sink.recs, sink.err = nil, nil
		sink.mu.Unlock()
		st, err := r.serve([]byte(raw))
		if err != nil {
			t.Fatalf("serve: %v", err)
		}
		if st >= 500 {
			t.Fatalf("status %d for %q: %s", st, body, r.body())
		}
		if st == 200 && string(r.body()) != `{"success":true}` {
			t.Fatalf("200 with body %q", r.body())
		}
		if st != 200 {
			var e struct {
				Success *bool
				Code    string
			}
			if json.Unmarshal(r.body(), &e) != nil || e.Success == nil || *e.Success || e.Code == "" {
				t.Fatalf("status %d with body %q", st, r.body())
			}
		}
		sink.mu.Lock()
		defer sink.mu.Unlock()
		if sink.err != nil {
			t.Fatalf("record does not decode: %v", sink.err)
		}
		if st != 200 && len(sink.recs) > 0 {
			t.Fatalf("status %d but %d records", st, len(sink.recs))
		}
		for _, b := range sink.recs {
			var m map[string]any
			dec := json.NewDecoder(bytes.NewReader(b.Payload))
			dec.UseNumber() // JSON allows numbers no float64 holds (400 sevens)
			if err := dec.Decode(&m); err != nil {
				t.Fatalf("payload %q: %v", b.Payload, err)
			}
			if b.Protocol != beaconv1.Protocol_PROTOCOL_SEGMENT || m["type"] != b.EventType || m["receivedAt"] == nil || m["writeKey"] != nil {
				t.Fatalf("record %v, payload %s", b, b.Payload)
			}
		}
	})
}

func itoa(n int) string {
	b, _ := json.Marshal(n)
	return string(b)
}
