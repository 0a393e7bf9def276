package ingest

import (
	"encoding/base64"
	"fmt"
	"strings"
	"testing"

	"go.uber.org/zap"
)

// segmentRequests are Segment SDK requests as sent: analytics.js' single
// track (text/plain, writeKey in the body) and a 50-event analytics-go
// batch (Basic auth, context.library at the batch level).
var segmentRequests = func() []benchRequest {
	ctx := `"context":{"library":{"name":"analytics.js","version":"npm:next-1.84.3"},"page":{"path":"/pricing","url":"https://shop.example/pricing","title":"Pricing"},"userAgent":"` + benchUA + `","locale":"en-US"}`
	track := `{"timestamp":"2026-12-07T06:00:00.000Z","integrations":{},"type":"track","event":"Order Completed","properties":{"total":19.5,"currency":"EUR"},` +
		`"userId":"7f3c2a9e-5b1d-4e8f-9a6c-0d2e4f6a8b1c","anonymousId":"3a1c9c1e-8b7e-4b1e-9d3a-2c1b0a9f8e7d","messageId":"ajs-next-1765087200000-5c1d7a0e-1f2b",` + ctx + `,"writeKey":"k-shop-1","sentAt":"2026-12-07T06:00:00.012Z","_metadata":{"bundled":["Segment.io"],"unbundled":[],"bundledIds":[]}}`
	single := fmt.Sprintf("POST /v1/t HTTP/1.1\r\nHost: t.example.com\r\nUser-Agent: %s\r\nOrigin: https://shop.example\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n\r\n%s", benchUA, len(track), track)
	evs := make([]string, 50)
	for i := range evs {
		evs[i] = fmt.Sprintf(`{"type":"track","messageId":"m-%d","userId":"user-%d","event":"Viewed","properties":{"i":%d,"path":"/a/b/c"},"timestamp":"2026-12-07T06:00:00Z"}`, i, i%7, i)
	}
	body := `{"batch":[` + strings.Join(evs, ",") + `],"context":{"library":{"name":"analytics-go","version":"3.3.0"}},"messageId":"b-1","sentAt":"2026-12-07T06:00:01Z"}`
	auth := base64.StdEncoding.EncodeToString([]byte("k-shop-1:"))
	batch := fmt.Sprintf("POST /v1/batch HTTP/1.1\r\nHost: t.example.com\r\nUser-Agent: analytics-go (version: 3.3.0)\r\nAuthorization: Basic %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", auth, len(body), body)
	return []benchRequest{
		{"segment_track", []byte(single), 200, 1},
		{"segment_batch50", []byte(batch), 200, 50},
	}
}()

// segmentConfig has an allow-list, so that the write key is looked up.
var segmentConfig = Config{Sites: map[string]string{"shop": "k-shop-1"}}

// BenchmarkSegment measures a Segment request → records → enqueue, as
// BenchmarkHandler does for beacongate's own endpoints.
func BenchmarkSegment(b *testing.B) {
	for _, c := range segmentRequests {
		b.Run(c.name, func(b *testing.B) {
			s, err := New(segmentConfig, &discardSink{}, nil, zap.NewNop())
			if err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			b.SetBytes(int64(len(c.raw)))
			r := newReplayer(s, nil)
			for b.Loop() {
				if st, err := r.serve(c.raw); err != nil || st != c.status {
					b.Fatalf("status %d (%v): %s", st, err, r.body())
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*c.events), "ns/event")
		})
	}
}
