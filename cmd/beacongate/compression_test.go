package main

import (
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/zap"

	"github.com/beacongate/beacongate/internal/kafka/embedded"
	"github.com/beacongate/beacongate/internal/kafkatest"
)

// TestRecordsReachKafkaSnappyCompressed: the records of ~0.8 KB pixels
// reach Kafka in Snappy batches, read back by an independent consumer
// that sees the batches' codec and sizes. It logs the compression ratio
// and records per batch, the figures docs/sizing.md uses for network
// bandwidth (the traffic is synthetic: the same few sites, pages and
// browsers, unique users and sessions, as on a real front).
//
// The ratio depends on how many records share a batch: one gateway's
// records spread over a topic's partitions, so more partitions at the same
// rate mean smaller batches (seed 003's 512 partitions).
func TestRecordsReachKafkaSnappyCompressed(t *testing.T) {
	for _, partitions := range []int{16, 512} {
		t.Run(fmt.Sprintf("partitions=%d", partitions), func(t *testing.T) { snappyRatio(t, partitions) })
	}
}

func snappyRatio(t *testing.T, partitions int) {
	b, err := embedded.Start(embedded.Config{Listen: "127.0.0.1:0", Topics: []string{"beacons"}, Partitions: partitions}, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	g := startGateway(t, "-kafka.brokers", b.Addr())

	const workers, perWorker = 4, 1000
	var reqBytes atomic.Int64
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(w), 1))
			client := &http.Client{Timeout: 10 * time.Second}
			for i := 0; i < perWorker; i++ {
				req, n := realisticPixel(rng, "http://"+g.http)
				resp, err := client.Do(req)
				if err != nil {
					t.Error(err)
					return
				}
				resp.Body.Close()
				if resp.StatusCode != 200 {
					t.Errorf("pixel: %d", resp.StatusCode)
					return
				}
				reqBytes.Add(int64(n))
			}
		}(w)
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	h := &batchSizes{}
	recs := kafkatest.Consume(t, b.Addr(), "beacons", workers*perWorker, 30*time.Second, kgo.WithHooks(h))
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.other > 0 || h.snappy == 0 {
		t.Fatalf("batches: %d Snappy, %d with another codec; want all Snappy", h.snappy, h.other)
	}
	var value int
	for _, r := range recs {
		value += len(r.Key) + len(r.Value)
	}
	ratio := float64(h.compressed) / float64(h.uncompressed)
	if ratio >= 1 {
		t.Errorf("Snappy batches are not smaller: %d compressed of %d bytes", h.compressed, h.uncompressed)
	}
	t.Logf("%d requests of %.0f bytes (query and headers), records of %.0f bytes (key and value); %d Snappy batches, %.1f records each; %d of %d bytes: ratio %.3f",
		workers*perWorker, float64(reqBytes.Load())/float64(workers*perWorker), float64(value)/float64(len(recs)),
		h.snappy, float64(h.records)/float64(h.snappy), h.compressed, h.uncompressed, ratio)
}

// batchSizes is a franz-go hook that adds up the fetched batches.
type batchSizes struct {
	mu                                               sync.Mutex
	snappy, other, records, compressed, uncompressed int
}

func (h *batchSizes) OnFetchBatchRead(_ kgo.BrokerMetadata, _ string, _ int32, m kgo.FetchBatchMetrics) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if m.CompressionType != 2 {
		h.other++
		return
	}
	h.snappy++
	h.records += m.NumRecords
	h.compressed += m.CompressedBytes
	h.uncompressed += m.UncompressedBytes
}

var (
	pixelSites = []string{"news.example.com", "shop.example.org", "blog.example.net", "sport.example.com", "docs.example.io"}
	pixelPaths = []string{"/", "/world/europe/2026/12/07/election-results-live", "/products/running-shoes-x200?color=blue",
		"/2026/11/how-we-process-one-billion-events", "/football/premier-league/table", "/guides/getting-started",
		"/search?q=winter+jackets", "/account/orders"}
	pixelTitles = []string{"Election results live", "Running shoes X200", "How we process one billion events",
		"Premier League table", "Getting started", "Search results", "Your orders", "Home"}
	pixelUAs = []string{
		"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
		"Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1",
		"Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Safari/605.1.15",
		"Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Mobile Safari/537.36",
	}
	pixelEvents = []string{"pageview", "scroll", "engaged", "click", "video_progress"}
)

// realisticPixel is one tracking-pixel GET of about 0.8 KB (query and
// headers), and its size.
func realisticPixel(rng *rand.Rand, base string) (*http.Request, int) {
	site := pixelSites[rng.IntN(len(pixelSites))]
	pi := rng.IntN(len(pixelPaths))
	q := url.Values{}
	q.Set("sid", site)
	q.Set("url", "https://"+site+pixelPaths[pi])
	q.Set("title", pixelTitles[pi])
	q.Set("uid", fmt.Sprintf("%016x", rng.Uint64()))
	q.Set("sess", fmt.Sprintf("%016x", rng.Uint64()))
	q.Set("ev", pixelEvents[rng.IntN(len(pixelEvents))])
	q.Set("ts", fmt.Sprint(1796616807832+rng.Int64N(3_600_000)))
	q.Set("sw", "1920")
	q.Set("sh", "1080")
	q.Set("lang", "en-GB")
	q.Set("tz", "Europe/London")
	q.Set("utm_source", []string{"newsletter", "google", "twitter", ""}[rng.IntN(4)])
	q.Set("utm_campaign", "winter-2026")
	q.Set("props", fmt.Sprintf(`{"section":"%s","scroll_pct":%d,"engaged_ms":%d,"ab":"variant-%d","consent":"analytics,ads"}`,
		[]string{"world", "sport", "tech", "shop"}[rng.IntN(4)], rng.IntN(101), rng.IntN(120000), rng.IntN(3)))
	req, _ := http.NewRequest(http.MethodGet, base+"/i?"+q.Encode(), nil)
	ua := pixelUAs[rng.IntN(len(pixelUAs))]
	ref := "https://" + site + pixelPaths[rng.IntN(len(pixelPaths))]
	req.Header.Set("User-Agent", ua)
	req.Header.Set("Referer", ref)
	req.Header.Set("Accept-Language", "en-GB,en;q=0.9")
	req.Header.Set("Accept", "image/avif,image/webp,image/apng,image/*,*/*;q=0.8")
	n := len(req.URL.RawQuery) + len("GET /i? HTTP/1.1\r\n") + len(ua) + len(ref) + 150
	return req, n
}
