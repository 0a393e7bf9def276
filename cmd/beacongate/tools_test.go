package main

import (
	"bytes"
	"encoding/json"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/zap"
	"google.golang.org/protobuf/proto"

	"github.com/beacongate/beacongate/ingest/record"
	"github.com/beacongate/beacongate/internal/kafka/embedded"
	"github.com/beacongate/beacongate/internal/kafka/spool"
	"github.com/beacongate/beacongate/internal/kafkatest"
	beaconv1 "github.com/beacongate/beacongate/proto/beacongate/v1"
)

func TestTailPrintsClientIPAsAddress(t *testing.T) {
	for _, tc := range []struct {
		ip   []byte
		want any // nil: no client_ip
	}{
		{[]byte{192, 0, 2, 1}, "192.0.2.1"},
		{[]byte{0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1}, "2001:db8::1"},
		{nil, nil},
	} {
		v, err := proto.Marshal(&beaconv1.Beacon{Kind: beaconv1.Kind_KIND_PIXEL, ClientIp: tc.ip, Path: "/i"})
		if err != nil {
			t.Fatal(err)
		}
		var buf bytes.Buffer
		if err := json.NewEncoder(&buf).Encode(tailLine(&kgo.Record{Topic: "beacons", Value: v})); err != nil {
			t.Fatal(err)
		}
		var line struct {
			Beacon map[string]any `json:"beacon"`
		}
		if err := json.Unmarshal(buf.Bytes(), &line); err != nil {
			t.Fatalf("%s: %v", buf.String(), err)
		}
		if got := line.Beacon["client_ip"]; got != tc.want {
			t.Errorf("client_ip %v printed as %v, want %v (line %s)", tc.ip, got, tc.want, buf.String())
		}
		if line.Beacon["kind"] != "KIND_PIXEL" || line.Beacon["path"] != "/i" {
			t.Errorf("other fields changed: %s", buf.String())
		}
	}
}

func TestReplayProgressLine(t *testing.T) {
	start := time.Date(2026, 12, 7, 0, 0, 0, 0, time.UTC)
	p := replayProgress{totalRecords: 100_000, totalBytes: 80 << 20, start: start}
	got := p.line(start.Add(10*time.Second), 60_000, 48<<20)
	want := "spool replay: 40000 of 100000 records, 32.0 MiB of 80.0 MiB, 4000 records/s, about 15s left"
	if got != want {
		t.Errorf("line:\n got %q\nwant %q", got, want)
	}
	if got := p.line(start.Add(time.Second), 100_000, 80<<20); !strings.HasSuffix(got, "0 records/s, time left unknown") {
		t.Errorf("nothing done yet: %q", got)
	}
	// Records handed back during the replay never make progress negative.
	if got := p.summary(start.Add(2*time.Second), 100_010, 81<<20); !strings.HasPrefix(got, "replayed 0 records (0.0 MiB) in 2s") {
		t.Errorf("summary: %q", got)
	}
}

// syncWriter is a bytes.Buffer safe for show's goroutine.
type syncWriter struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (w *syncWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

func TestReplayProgressRewritesOneLine(t *testing.T) {
	p := replayProgress{totalRecords: 1000, totalBytes: 1 << 20, start: time.Now()}
	var mu sync.Mutex
	waiting := int64(1000)
	read := func() (int64, int64) {
		mu.Lock()
		defer mu.Unlock()
		waiting = max(waiting-300, 0)
		return waiting, waiting << 10
	}
	w := &syncWriter{}
	stop, done := make(chan struct{}), make(chan struct{})
	go func() { defer close(done); p.show(w, 5*time.Millisecond, read, stop) }()
	kafkatest.WaitFor(t, "three progress lines", 5*time.Second, func() bool {
		w.mu.Lock()
		defer w.mu.Unlock()
		return strings.Count(w.b.String(), "\r") >= 3
	})
	close(stop)
	<-done
	out := w.b.String()
	if strings.Count(out, "\n") != 1 || !strings.HasSuffix(out, "\n") {
		t.Fatalf("want progress rewritten in place (\\r) and one final newline, got %q", out)
	}
	// The line left on the terminal is the state at stop, whenever the
	// last tick fell.
	if last := out[strings.LastIndex(out, "\r")+1:]; !strings.HasPrefix(last, "spool replay: 1000 of 1000 records") {
		t.Errorf("the last report is not the whole spool: %q", out)
	}
}

// TestReplayProgressShorterThanInterval: a replay that ends before the
// first tick still leaves its one line.
func TestReplayProgressShorterThanInterval(t *testing.T) {
	p := replayProgress{totalRecords: 10, totalBytes: 10 << 10, start: time.Now()}
	w := &syncWriter{}
	stop, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		p.show(w, time.Hour, func() (int64, int64) { return 0, 0 }, stop)
	}()
	close(stop)
	<-done
	if out := w.b.String(); !strings.HasPrefix(out, "\rspool replay: 10 of 10 records") || !strings.HasSuffix(out, "\n") {
		t.Errorf("want one final progress line, got %q", out)
	}
}

// TestSpoolReplaySummary: not on a terminal, `spool replay` prints one
// line, with what it did and how fast.
func TestSpoolReplaySummary(t *testing.T) {
	dir := t.TempDir()
	sp, err := spool.Open(spool.Config{Dir: dir}, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	const n = 3000
	for i := 0; i < n; i++ {
		b := record.Beacon{Kind: record.KindPixel, ShardKey: []byte("u" + strconv.Itoa(i%7)),
			Params: []record.Param{{Name: []byte("seq"), Value: []byte(strconv.Itoa(i))}}}
		if err := sp.Append(b.ShardKey, record.Append(nil, &b)); err != nil {
			t.Fatal(err)
		}
	}
	if err := sp.Close(); err != nil {
		t.Fatal(err)
	}
	b, err := embedded.Start(embedded.Config{Listen: "127.0.0.1:0", Topics: []string{"beacons"}}, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	var stdout, stderr bytes.Buffer
	cmd := exec.Command(kafkatest.GatewayBinary(t), "spool", "replay", "-spool.dir", dir, "-kafka.brokers", b.Addr(), "-kafka.topic", "beacons", "-timeout", "1m")
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("spool replay: %v\n%s%s", err, stdout.String(), stderr.String())
	}
	want := regexp.MustCompile(`^replayed 3000 records \([0-9.]+ MiB\) in [0-9.]+m?s, [0-9]+ records/s to beacons on ` +
		regexp.QuoteMeta(b.Addr()) + `; 0 left in the spool, 0 quarantined, 0 lost\n$`)
	if !want.MatchString(stdout.String()) {
		t.Errorf("stdout is not the one summary line:\n%q", stdout.String())
	}
	if strings.Contains(stderr.String(), "\r") {
		t.Errorf("progress line written to a pipe:\n%q", stderr.String())
	}
	if got := len(kafkatest.Consume(t, b.Addr(), "beacons", n, 20*time.Second)); got != n {
		t.Errorf("read back %d records, want %d", got, n)
	}
}
