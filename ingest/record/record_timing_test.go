package record_test

import (
	"testing"

	"github.com/beacongate/beacongate/ingest/record"
)

// jsonBeacon is a typical JSON event POSTed to /i.
func jsonBeacon() *record.Beacon {
	return &record.Beacon{
		ReceivedAtMicros: 1_767_225_600_123_456,
		GatewayID:        []byte("gw-eu-west-1a-7"),
		RequestID:        []byte("01JGZ8Q4V6M3W9T2K5N7P0R8S1"),
		Kind:             record.KindBeacon,
		Method:           []byte("POST"),
		Host:             []byte("t.example.com"),
		Path:             []byte("/i"),
		ClientIP:         []byte{0x20, 0x01, 0x0d, 0xb8, 0x85, 0xa3, 0, 0, 0, 0, 0x8a, 0x2e, 0x03, 0x70, 0x73, 0x34},
		UserAgent:        []byte("Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.2 Safari/605.1.15"),
		Referer:          []byte("https://example.com/checkout/cart"),
		Origin:           []byte("https://example.com"),
		ContentType:      []byte("text/plain;charset=UTF-8"),
		Payload: []byte(`{"ev":"add_to_cart","sid":"site-42","uid":"u-8f14e45fceea167a5a36dedd4bea2543",` +
			`"sess":"s-c9f0f895fb98ab9159f51fd0297e236d","ts":1767225600123,"url":"https://example.com/p/sku-1234?color=blue",` +
			`"item":{"sku":"sku-1234","name":"Blue widget","price":19.99,"qty":2,"currency":"EUR"},` +
			`"ctx":{"sw":1920,"sh":1080,"lang":"en-US","tz":"Europe/Berlin"}}`),
		ShardKey: []byte("site-42:u-8f14e45fceea167a5a36dedd4bea2543"),
	}
}

// BenchmarkAppend measures the per-event encoding cost on the hot path:
// each goroutine reuses its own buffer, as a gateway worker does.
func BenchmarkAppend(b *testing.B) {
	invalid := pixel()
	invalid.UserAgent = []byte("Mozilla/5.0 \xff\xfe (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36")
	invalid.Params[4].Value = []byte("https://example.com/caf\xe9/page?x=1")

	for _, bc := range []struct {
		name string
		b    *record.Beacon
	}{
		{"pixel", pixel()},
		{"json", jsonBeacon()},
		{"pixel_invalid_utf8", invalid},
	} {
		b.Run(bc.name, func(b *testing.B) {
			size := len(record.Append(nil, bc.b))
			b.ReportAllocs()
			b.SetBytes(int64(size))
			b.RunParallel(func(pb *testing.PB) {
				buf := make([]byte, 0, size)
				for pb.Next() {
					buf = record.Append(buf[:0], bc.b)
					if len(buf) != size {
						b.Errorf("Append wrote %d bytes, want %d", len(buf), size)
						return
					}
				}
			})
		})
	}
}
