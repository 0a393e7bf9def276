package producer_test

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/beacongate/beacongate/ingest/record"
	"github.com/beacongate/beacongate/internal/kafka/producer"
	"github.com/beacongate/beacongate/internal/kafkatest"
)

// rdkCPU is the CPU time of librdkafka's own threads (named "rdk:*") in
// this process: batching, compression and network I/O, apart from the Go
// side and from the in-process test broker.
func rdkCPU(tb testing.TB) time.Duration {
	tasks, err := filepath.Glob("/proc/self/task/*")
	if err != nil || len(tasks) == 0 {
		tb.Skip("no /proc/self/task")
	}
	var ticks int64
	for _, task := range tasks {
		comm, err := os.ReadFile(task + "/comm")
		if err != nil || !strings.HasPrefix(string(comm), "rdk:") {
			continue
		}
		stat, err := os.ReadFile(task + "/stat")
		if err != nil {
			continue
		}
		// Fields after the ")" that ends comm: state is field 3, utime 14, stime 15.
		f := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+2:]))
		ut, _ := strconv.ParseInt(f[11], 10, 64)
		st, _ := strconv.ParseInt(f[12], 10, 64)
		ticks += ut + st
	}
	return time.Duration(ticks) * 10 * time.Millisecond // USER_HZ is 100 on Linux
}

// pixelRecord is a realistic ~0.8 KB pixel record.
func pixelRecord() []byte {
	b := record.Beacon{
		ReceivedAtMicros: time.Now().UnixMicro(), GatewayID: []byte("gw-1"),
		RequestID: []byte("3b0d24ea0fb658760000000000000001"), Kind: record.KindPixel,
		Method: []byte("GET"), Host: []byte("t.example.com"), Path: []byte("/i"), ClientIP: []byte{198, 51, 100, 7},
		UserAgent: []byte("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36"),
		Referer:   []byte("https://www.example.com/news/2026/11/some-long-article-slug-about-things"),
		ShardKey:  []byte("7f3c2a9e-5b1d-4e8f-9a6c-0d2e4f6a8b1c"),
	}
	for _, kv := range [][2]string{{"sid", "site-1234"}, {"uid", "7f3c2a9e-5b1d-4e8f-9a6c-0d2e4f6a8b1c"}, {"sess", "s-93847562"},
		{"ev", "page_view"}, {"url", "https://www.example.com/news/2026/11/some-long-article-slug-about-things?utm_source=newsletter&utm_medium=email"},
		{"ref", "https://www.google.com/search?q=some+search+terms"}, {"sw", "1920"}, {"sh", "1080"}, {"vw", "1280"}, {"vh", "720"},
		{"ts", "1795000000123"}, {"lang", "en-US"}, {"tz", "Europe/Berlin"}, {"title", "Some Long Article Title About Things — Example News"},
		{"scroll", "35"}, {"eng", "12034"}} {
		b.Params = append(b.Params, record.Param{Name: []byte(kv[0]), Value: []byte(kv[1])})
	}
	return record.Append(nil, &b)
}

// BenchmarkProduce measures Produce (the request-side cost) and reports
// librdkafka's background CPU per record (rdk-µs/op) by compression codec.
func BenchmarkProduce(b *testing.B) {
	val := pixelRecord()
	for _, codec := range []string{"snappy", "lz4", "none"} {
		b.Run(codec, func(b *testing.B) {
			br := startBroker(b, "beacons")
			p, err := producer.New(producer.Config{Brokers: br.Addr(), LatencySampleEvery: -1,
				Settings: map[string]string{"compression.type": codec}}, zap.NewNop())
			if err != nil {
				b.Fatal(err)
			}
			defer p.Close()
			keys := kafkatest.UserKeys(1024)
			if err := p.Produce(keys[0], val); err != nil { // connect before timing
				b.Fatal(err)
			}
			p.Flush(10 * time.Second)
			b.ReportAllocs()
			b.SetBytes(int64(len(val)))
			cpu0 := rdkCPU(b)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				for {
					err := p.Produce(keys[i&1023], val)
					if err == nil {
						break
					}
					if err != producer.ErrQueueFull {
						b.Fatal(err)
					}
					p.Flush(10 * time.Millisecond)
				}
			}
			if left := p.Flush(30 * time.Second); left != 0 {
				b.Fatalf("%d records left", left)
			}
			b.StopTimer()
			b.ReportMetric(float64((rdkCPU(b)-cpu0).Microseconds())/float64(b.N), "rdk-µs/op")
		})
	}
}

// BenchmarkProduceCall measures what a handler pays per record on its own
// thread: the call into librdkafka (its copy, malloc, partitioner and
// enqueue) and the Go side around it, without a broker taking the
// records (its address refuses connections), so that neither the broker
// nor librdkafka's batching runs in the timed loop. Records pile up in
// librdkafka's queue and are purged, untimed, every 2,000 (2.4 MB), so
// that malloc reuses warm memory instead of faulting in new pages.
func BenchmarkProduceCall(b *testing.B) {
	val := pixelRecord()
	p, err := producer.New(producer.Config{Brokers: "127.0.0.1:1", LatencySampleEvery: -1,
		Settings: map[string]string{"queue.buffering.max.messages": "1000000", "queue.buffering.max.kbytes": "2097151"}}, zap.NewNop())
	if err != nil {
		b.Fatal(err)
	}
	defer p.Close()
	keys := kafkatest.UserKeys(1024)
	b.ReportAllocs()
	b.SetBytes(int64(len(val)))
	for i := 0; i < b.N; i++ {
		if i%2_000 == 0 && i > 0 {
			b.StopTimer()
			p.Purge(10 * time.Second)
			b.StartTimer()
		}
		if err := p.Produce(keys[i&1023], val); err != nil {
			b.Fatalf("record %d: %v", i, err)
		}
	}
	b.StopTimer()
	p.Purge(10 * time.Second)
}
