package main

import (
	"fmt"
	"io"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"
	"google.golang.org/protobuf/proto"

	"github.com/beacongate/beacongate/internal/kafka/embedded"
	"github.com/beacongate/beacongate/internal/kafka/producer"
	"github.com/beacongate/beacongate/internal/kafkatest"
	beaconv1 "github.com/beacongate/beacongate/proto/beacongate/v1"
	"github.com/beacongate/beacongate/shard"
)

// The skewed load of the hot-key tests: one key ("bot") sends 80% of the
// events, 200 quiet keys the rest, over a topic of skewPartitions.
const (
	skewPartitions = 8
	skewHotRounds  = 40 // each: a batch of 40 events and 40 pixels
	skewHotPer     = 40
	skewQuietKeys  = 200
	skewQuietEach  = 4
	skewHotKey     = "bot"
	skewEvents     = skewHotRounds*2*skewHotPer + skewQuietKeys*skewQuietEach // 4000
	skewFair       = skewEvents / skewPartitions                              // 500
)

// skewRecord is one record read back: where it landed and what it says.
type skewRecord struct {
	key       string
	seq       int
	partition int32
	offset    int64
	header    bool // the beacongate-overflow header, value "1"
	marked    bool // beacongate.v1.Beacon.overflow
}

// runSkew runs the real gateway (librdkafka) against kfake with args,
// sends the skewed load, each key's events in order, calls after (if not
// nil), which returns how many more events it sent, and reads every
// record back with franz-go.
func runSkew(t *testing.T, after func(g *gateway, seq int) int, args ...string) (*gateway, []skewRecord) {
	t.Helper()
	b, err := embedded.Start(embedded.Config{Listen: "127.0.0.1:0", Partitions: skewPartitions, Topics: []string{"beacons"}}, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	g := startGateway(t, append([]string{"-kafka.brokers", b.Addr()}, args...)...)

	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 8}}
	send := func(method, url, body string, want int) error {
		req, err := http.NewRequest(method, url, strings.NewReader(body))
		if err != nil {
			return err
		}
		if body != "" {
			req.Header.Set("Content-Type", "application/x-ndjson")
		}
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		msg, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != want {
			return fmt.Errorf("%s %s: %d %s, want %d", method, url, resp.StatusCode, msg, want)
		}
		return nil
	}
	var wg sync.WaitGroup
	errs := make(chan error, 5)
	wg.Add(1)
	go func() { // the hot key: batches and pixels, in order
		defer wg.Done()
		seq := 0
		for range skewHotRounds {
			var lines []string
			for range skewHotPer {
				lines = append(lines, fmt.Sprintf(`{"user_id":%q,"seq":%d}`, skewHotKey, seq))
				seq++
			}
			if err := send("POST", "http://"+g.http+"/batch", strings.Join(lines, "\n"), 200); err != nil {
				errs <- err
				return
			}
			for range skewHotPer {
				if err := send("GET", fmt.Sprintf("http://%s/i?uid=%s&seq=%d", g.http, skewHotKey, seq), "", 200); err != nil {
					errs <- err
					return
				}
				seq++
			}
		}
	}()
	const workers = 4
	for w := range workers { // the quiet keys, each in order
		wg.Add(1)
		go func() {
			defer wg.Done()
			for seq := range skewQuietEach {
				for k := w; k < skewQuietKeys; k += workers {
					if err := send("GET", fmt.Sprintf("http://%s/i?uid=q%d&seq=%d", g.http, k, seq), "", 200); err != nil {
						errs <- err
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	n := skewEvents
	if after != nil {
		n += after(g, skewHotRounds*2*skewHotPer)
	}
	return g, readRecords(t, b.Addr(), n)
}

// readRecords reads n records of topic beacons back with franz-go, and
// fails the test unless there are exactly n, each once.
func readRecords(t *testing.T, addr string, n int) []skewRecord {
	t.Helper()
	var out []skewRecord
	for _, r := range kafkatest.Consume(t, addr, "beacons", n, 30*time.Second) {
		var rec beaconv1.Beacon
		if err := proto.Unmarshal(r.Value, &rec); err != nil {
			t.Fatal(err)
		}
		sr := skewRecord{key: string(r.Key), seq: seqOf(t, &rec), partition: r.Partition, offset: r.Offset, marked: rec.Overflow}
		for _, h := range r.Headers {
			if h.Key == producer.OverflowHeader {
				if string(h.Value) != "1" {
					t.Fatalf("overflow header %q, want \"1\"", h.Value)
				}
				sr.header = true
			}
		}
		if sr.key != rec.ShardKey {
			t.Fatalf("Kafka key %q, record's shard_key %q: an overflow record must keep its key", sr.key, rec.ShardKey)
		}
		out = append(out, sr)
	}
	if len(out) != n {
		t.Fatalf("%d records in Kafka for %d events sent", len(out), n)
	}
	seen := map[string]bool{}
	for _, r := range out {
		id := r.key + "/" + strconv.Itoa(r.seq)
		if seen[id] {
			t.Fatalf("record %s twice", id)
		}
		seen[id] = true
	}
	return out
}

// skewCheck sorts records by key, and for each key checks that its
// records not marked overflow are all on the key's partition in the order
// sent. It returns the records per partition and the overflow records.
func skewCheck(t *testing.T, recs []skewRecord, partitions int32) (perPartition []int, overflow []skewRecord) {
	t.Helper()
	perPartition = make([]int, partitions)
	byKey := map[string][]skewRecord{}
	for _, r := range recs {
		perPartition[r.partition]++
		if r.header != r.marked {
			t.Fatalf("record %s/%d: overflow header %v but record field %v", r.key, r.seq, r.header, r.marked)
		}
		if r.marked {
			overflow = append(overflow, r)
			continue
		}
		byKey[r.key] = append(byKey[r.key], r)
	}
	for key, rs := range byKey {
		home := shard.Partition([]byte(key), partitions)
		sort.Slice(rs, func(i, j int) bool { return rs[i].offset < rs[j].offset })
		for i, r := range rs {
			if r.partition != home {
				t.Fatalf("key %q: record %d on partition %d, want its partition %d", key, r.seq, r.partition, home)
			}
			if i > 0 && r.seq <= rs[i-1].seq {
				t.Fatalf("key %q: record %d after %d on partition %d: out of order", key, r.seq, rs[i-1].seq, home)
			}
		}
	}
	return perPartition, overflow
}

// TestHotKeySpreadsOverflow: with the valve on, the hot key's excess is
// spread over every partition, marked in the record and a header, no
// partition holds more than 3× its fair share, and every record not
// marked (all the quiet keys', the hot key's within its rate) is on its
// key's partition in order.
func TestHotKeySpreadsOverflow(t *testing.T) {
	const cool = 5
	hotNow := -1.0
	g, recs := runSkew(t, func(g *gateway, seq int) int {
		// At once, while the key is hot; then the key slows down to 4/s,
		// below its rate: these records must stay on its partition, in
		// order, and a second later it no longer counts as hot.
		hotNow = metric(t, g, "beacongate_shard_hot_keys")
		for i := range cool {
			time.Sleep(250 * time.Millisecond)
			resp, err := http.Get(fmt.Sprintf("http://%s/i?uid=%s&seq=%d", g.http, skewHotKey, seq+i))
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != 200 {
				t.Fatalf("status %d", resp.StatusCode)
			}
		}
		return cool
	}, "-shard.hot-key-rate", "5", "-shard.hot-key-burst", "50")
	perPartition, overflow := skewCheck(t, recs, skewPartitions)
	if hotNow != 1 {
		t.Fatalf("beacongate_shard_hot_keys = %v right after the load, want 1", hotNow)
	}
	hotTotal := skewHotRounds * 2 * skewHotPer
	for _, r := range recs {
		if r.key == skewHotKey && r.seq >= hotTotal && r.marked {
			t.Fatalf("record %d, sent below the rate after the load, overflowed: the key did not cool down", r.seq)
		}
	}
	// skewCheck put them on the key's partition, in order, behind the rest.
	kafkatest.WaitFor(t, "the key to cool down", 5*time.Second, func() bool { return metric(t, g, "beacongate_shard_hot_keys") == 0 })
	t.Logf("records per partition (fair share %d): %v; %d overflowed", skewFair, perPartition, len(overflow))
	for p, n := range perPartition {
		if n > 3*skewFair {
			t.Fatalf("partition %d holds %d records, more than 3× its fair share %d: %v", p, n, skewFair, perPartition)
		}
	}
	// All but the burst (50) and the rate (5/s over the run) overflow.
	if len(overflow) < hotTotal-200 {
		t.Fatalf("%d of the hot key's %d records overflowed, want all but its burst and rate", len(overflow), hotTotal)
	}
	var onPartition [skewPartitions]int
	for _, r := range overflow {
		if r.key != skewHotKey {
			t.Fatalf("a quiet key's record (%s/%d) overflowed", r.key, r.seq)
		}
		onPartition[r.partition]++
	}
	for p, n := range onPartition {
		if n < len(overflow)/skewPartitions/2 {
			t.Fatalf("overflow records per partition %v: partition %d has %d, not spread", onPartition, p, n)
		}
	}
	if got := metric(t, g, "beacongate_shard_overflowed_total"); int(got) != len(overflow) {
		t.Fatalf("beacongate_shard_overflowed_total = %v, want the %d overflow records in Kafka", got, len(overflow))
	}
	line := g.logLine("shard key became hot: its records above the rate are spread over the partitions, out of order")
	if line == nil || line["key"] != skewHotKey {
		t.Fatalf("no 'became hot' log line for %q: %v", skewHotKey, line)
	}
	if n := strings.Count(g.logs.String(), "shard key became hot"); n != 1 {
		t.Fatalf("%d 'became hot' log lines, want 1", n)
	}
}

// TestHotKeyValveOff: without -shard.hot-key-rate every record is on its
// key's partition in order and nothing is marked, as before the valve; the
// hot key's partition then takes far more than 3× its share (the load the
// valve is for).
func TestHotKeyValveOff(t *testing.T) {
	g, recs := runSkew(t, nil)
	perPartition, overflow := skewCheck(t, recs, skewPartitions)
	if len(overflow) != 0 {
		t.Fatalf("%d records marked overflow with the valve off", len(overflow))
	}
	home := shard.Partition([]byte(skewHotKey), skewPartitions)
	if perPartition[home] <= 3*skewFair {
		t.Fatalf("hot key's partition %d holds %d records, not above 3× its fair share %d: the load is not skewed", home, perPartition[home], skewFair)
	}
	if got := metric(t, g, "beacongate_shard_overflowed_total"); got != 0 {
		t.Fatalf("beacongate_shard_overflowed_total = %v with the valve off", got)
	}
	t.Logf("records per partition (fair share %d): %v", skewFair, perPartition)
}
