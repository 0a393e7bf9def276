package ingest

import (
	"fmt"
	"net"
	"strings"
	"testing"

	"go.uber.org/zap"

	"github.com/beacongate/beacongate/internal/kafka/delivery"
)

type benchRequest struct {
	name   string
	raw    []byte
	status int
	events int
}

const benchUA = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36"

// A ~0.8 KB pixel (like the bench's 0.8kb preset), a sendBeacon JSON event, a
// 50-event batch, and a batch of 20 events of ~2 KB.
var benchRequests = func() []benchRequest {
	q := "sid=site-1234&uid=7f3c2a9e-5b1d-4e8f-9a6c-0d2e4f6a8b1c&sess=s-93847562&ev=page_view" +
		"&url=https%3A%2F%2Fwww.example.com%2Fnews%2F2026%2F11%2Fsome-long-article-slug-about-things%3Futm_source%3Dnewsletter%26utm_medium%3Demail" +
		"&ref=https%3A%2F%2Fwww.google.com%2Fsearch%3Fq%3Dsome%2Bsearch%2Bterms&sw=1920&sh=1080&vw=1280&vh=720&ts=1795000000123&lang=en-US&tz=Europe%2FBerlin" +
		"&title=Some+Long+Article+Title+About+Things+%E2%80%94+Example+News&scroll=35&eng=12034"
	pixel := "GET /i?" + q + " HTTP/1.1\r\nHost: t.example.com\r\nUser-Agent: " + benchUA +
		"\r\nAccept: image/avif,image/webp,*/*\r\nReferer: https://www.example.com/news/2026/11/some-long-article-slug-about-things\r\nAccept-Language: en-US,en;q=0.9\r\n\r\n"
	ev := `{"user_id":"7f3c2a9e-5b1d-4e8f-9a6c-0d2e4f6a8b1c","event":"click","props":{"target":"#buy","x":120,"y":455,"path":"/product/123"},"ts":1795000000123}`
	beacon := fmt.Sprintf("POST /i?sid=site-1234 HTTP/1.1\r\nHost: t.example.com\r\nUser-Agent: %s\r\nOrigin: https://www.example.com\r\nContent-Type: text/plain;charset=UTF-8\r\nContent-Length: %d\r\n\r\n%s", benchUA, len(ev), ev)
	evs := make([]string, 50)
	for i := range evs {
		evs[i] = fmt.Sprintf(`{"user_id":"user-%d","event":"view","props":{"i":%d,"path":"/a/b/c"}}`, i%7, i)
	}
	body := "[" + strings.Join(evs, ",") + "]"
	batch := fmt.Sprintf("POST /batch HTTP/1.1\r\nHost: t.example.com\r\nUser-Agent: sdk/1.0\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", len(body), body)
	// The seed 001 shape (beacongate-bench -preset 2kb): 20 events of
	// ~2 KB, the shard key's member near the start, a long string after.
	big := make([]string, 20)
	for i := range big {
		e := fmt.Sprintf(`{"rid":"r-1","seq":%d,"user_id":"user-%d","session_id":"s-93847562","event":"page_view","ts":1795000000123,`+
			`"site":"www.example.com","url":"https://www.example.com/news/2026/11/some-long-article","screen":{"w":1920,"h":1080},"pad":"`, i, i%7)
		big[i] = e + strings.Repeat("abcdefghij", (2048-len(e))/10) + `"}`
	}
	body = "[" + strings.Join(big, ",") + "]"
	batch2kb := fmt.Sprintf("POST /batch HTTP/1.1\r\nHost: t.example.com\r\nUser-Agent: sdk/1.0\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", len(body), body)
	return []benchRequest{
		{"pixel", []byte(pixel), 200, 1},
		{"beacon", []byte(beacon), 204, 1},
		{"batch50", []byte(batch), 200, 50},
		{"batch20x2KB", []byte(batch2kb), 200, 20},
	}
}()

// BenchmarkHandler measures request → record → enqueue: reading the raw
// request, routing, parsing, key, encoding, a sink that discards (it
// does not copy the record as librdkafka does), and
// writing the response. MB/s counts request bytes.
func BenchmarkHandler(b *testing.B) {
	for _, c := range benchRequests {
		b.Run(c.name, func(b *testing.B) {
			s, err := New(Config{}, &discardSink{}, nil, zap.NewNop())
			if err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			b.SetBytes(int64(len(c.raw)))
			b.RunParallel(func(pb *testing.PB) {
				r := newReplayer(s, net.IPv4(198, 51, 100, 7))
				for pb.Next() {
					if st, err := r.serve(c.raw); err != nil || st != c.status {
						b.Fatalf("status %d (%v): %s", st, err, r.body())
					}
				}
			})
			b.ReportMetric(float64(c.events), "events/op")
		})
	}
}

// discardSink drops every record without copying it (librdkafka would
// copy); allocation_test.go's copySink is the copying one.
type discardSink struct{}

func (discardSink) Produce(key, value []byte) error {
	if len(value) == 0 {
		return fmt.Errorf("empty record")
	}
	return nil
}

func (discardSink) Admit(key, value []byte) error { return nil }

func (d discardSink) ProduceBatch(recs []delivery.Record, _ *delivery.Ack) (int, error) {
	for i, r := range recs {
		if err := d.Produce(r.Key, r.Value); err != nil {
			return i, err
		}
	}
	return len(recs), nil
}
