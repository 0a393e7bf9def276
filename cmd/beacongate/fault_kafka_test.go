package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"google.golang.org/protobuf/proto"

	"github.com/beacongate/beacongate/internal/kafka/relay"
	"github.com/beacongate/beacongate/internal/kafka/spool"
	"github.com/beacongate/beacongate/internal/kafkatest"
	beaconv1 "github.com/beacongate/beacongate/proto/beacongate/v1"
)

// Fault tests of the Kafka side: permanent refusals, a full spool during
// replay, an outage in the middle of a replay round, one broker of three
// down. Each checks that the fault really happened before it checks what
// became of every acknowledged beacon.

// kfProduce selects produce requests for a kfake fault.
var kfProduce = []kmsg.Key{kmsg.Produce}

// kfBeaconID is "uid/seq" of an encoded record.
func kfBeaconID(t *testing.T, value []byte) string {
	t.Helper()
	var rec beaconv1.Beacon
	if err := proto.Unmarshal(value, &rec); err != nil {
		t.Fatalf("undecodable record: %v", err)
	}
	return rec.ShardKey + "/" + strconv.Itoa(seqOf(t, &rec))
}

// kfReadDeadLetters reads the dead-letter topic until it holds at least
// want records and a poll of one second brings nothing new, or until
// timeout. It returns "uid/seq" → the beacongate.code header of each
// record, and how many records there were (duplicates included).
func kfReadDeadLetters(t *testing.T, addr, topic string, want int, timeout time.Duration) (map[string]string, int) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	codes := map[string]string{}
	n := 0
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		recs := cl.PollFetches(ctx).Records()
		cancel()
		if len(recs) == 0 && n >= want {
			break
		}
		for _, r := range recs {
			code := ""
			for _, h := range r.Headers {
				if h.Key == "beacongate.code" {
					code = string(h.Value)
				}
			}
			codes[kfBeaconID(t, r.Value)] = code
			n++
		}
	}
	return codes, n
}

// kfQuarantined reads the quarantine lane of a stopped gateway's spool:
// "uid/seq" → code of each quarantined record.
func kfQuarantined(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	_, err := spool.Inspect(filepath.Join(dir, "quarantine"), func(key, value []byte, _ time.Time) error {
		q, err := relay.DecodeQuarantined(key, value)
		if err != nil {
			return err
		}
		out[kfBeaconID(t, q.Value)] = q.Code
		return nil
	})
	if err != nil {
		t.Fatalf("reading the quarantine: %v", err)
	}
	return out
}

// kfProbe sends n acknowledged-mode pixels for uid and returns the ids
// Kafka (or the fsynced spool) acknowledged; any other answer fails.
func kfProbe(t *testing.T, g *gateway, uid string, n int) map[string]bool {
	t.Helper()
	acked := map[string]bool{}
	client := &http.Client{Timeout: 15 * time.Second}
	for i := 0; i < n; i++ {
		req, _ := http.NewRequest("GET", fmt.Sprintf("http://%s/i?uid=%s&seq=%d", g.http, uid, i), nil)
		req.Header.Set("X-Beacon-Ack", "kafka")
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("probe %s/%d: %v", uid, i, err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("probe %s/%d after the fault: status %d", uid, i, resp.StatusCode)
		}
		acked[uid+"/"+strconv.Itoa(i)] = true
	}
	return acked
}

// kfPermanentRun is what kfRunPermanent saw.
type kfPermanentRun struct {
	g                 *gateway
	res               *loadResult
	hits              int
	after             map[string]bool // acknowledged-mode probes sent after the fault
	retried, retried2 float64
	refused           float64
	deadLettered      float64 // beacongate_dead_letters_total{reason="kafka_rejected"}
	quarantined       float64 // beacongate_spool_quarantined_total
	final             finalLine
}

// kfRunPermanent loads a gateway while the broker refuses 8 produce
// requests for the main topic with permanent errors, waits for the spool
// to be inactive, sends acknowledged-mode probes, reads the counters and
// stops the gateway.
func kfRunPermanent(t *testing.T, c *kfake.Cluster, args []string) *kfPermanentRun {
	t.Helper()
	run := &kfPermanentRun{g: startGateway(t, args...)}
	stop := make(chan struct{})
	res, wait := runLoad(run.g, 8, 2, 2*time.Millisecond, stop)
	run.res = res
	time.Sleep(time.Second)
	// Only the main topic: the dead-letter topic must take what is set aside.
	h := c.Fault(
		kfake.Fault{Keys: kfProduce, Topic: "beacons", Err: kerr.InvalidRecord, Count: 4},
		kfake.Fault{Keys: kfProduce, Topic: "beacons", Err: kerr.PolicyViolation, Count: 4},
	)
	kafkatest.WaitFor(t, "the permanent faults to be spent", 20*time.Second, func() bool { return h.Hits() == 8 })
	time.Sleep(2 * time.Second) // load goes on after the fault
	close(stop)
	wait()
	run.hits = h.Hits()
	// A refused record left in the retry path would keep the spool active
	// (or replaying) for ever.
	kafkatest.WaitFor(t, "the spool to be inactive", 30*time.Second, func() bool { return metric(t, run.g, "beacongate_spool_active") == 0 })
	run.retried = metric(t, run.g, "beacongate_spool_records_retried_total")
	run.after = kfProbe(t, run.g, "after", 20)
	time.Sleep(time.Second)
	run.retried2 = metric(t, run.g, "beacongate_spool_records_retried_total")
	run.refused = metric(t, run.g, "beacongate_records_refused_by_kafka_total")
	run.deadLettered = metricWhere(t, run.g, "beacongate_dead_letters_total", `reason="kafka_rejected"`)
	run.quarantined = metric(t, run.g, "beacongate_spool_quarantined_total")
	if code := run.g.stop(t); code != 0 {
		t.Fatalf("exit code %d", code)
	}
	run.final = run.g.finalLine(t)
	return run
}

// TestFaultPermanentRefusalDeadLettered: the broker refuses 8 produce
// requests for the main topic with INVALID_RECORD and POLICY_VIOLATION
// under load, with -kafka.dlq-topic. The refused records must leave the
// retry path: each is in the dead-letter topic with its code in the
// beacongate.code header, counted; every acknowledged beacon is in the
// main topic or the dead-letter topic, never both; the spool ends
// inactive with no replay retries going on; and beacons sent after the
// fault reach the main topic.
func TestFaultPermanentRefusalDeadLettered(t *testing.T) {
	c, _ := faultBroker(t, "beacons")
	if err := c.CreateTopic("dead", 4, nil); err != nil {
		t.Fatal(err)
	}
	addr := c.ListenAddrs()[0]
	dir := t.TempDir()
	run := kfRunPermanent(t, c, faultFlags(addr, dir, "-kafka.dlq-topic", "dead"))
	dead, deadRecs := kfReadDeadLetters(t, addr, "dead", int(run.refused), 30*time.Second)
	wantMain := map[string]bool{}
	for id := range run.res.acked {
		if _, ok := dead[id]; !ok {
			wantMain[id] = true
		}
	}
	for id := range run.after {
		wantMain[id] = true
	}
	d := readBack(t, addr, "beacons", wantMain, 60*time.Second)
	lost, dup := d.check(wantMain)
	both := 0
	for id := range dead {
		if d.seen[id] > 0 {
			both++
		}
	}
	byCode := map[string]int{}
	for _, code := range dead {
		byCode[code]++
	}
	q := inspectSpoolDir(t, dir)
	t.Logf("permanent refusals with a dead-letter topic: %d produce requests faulted; %d acknowledged (+%d probes after), refused %v, dead letters %v counted / %d records (%v), quarantined %d; main topic %d records, lost %d, duplicated %d, in both topics %d, order violations %d; replay retries %v then %v; final %+v; statuses %v",
		run.hits, len(run.res.acked), len(run.after), run.refused, run.deadLettered, deadRecs, byCode, q.Quarantine.Records, d.records, lost, dup, both, d.orderBreak, run.retried, run.retried2, run.final, run.res.statuses)
	if run.hits != 8 {
		t.Fatalf("%d produce requests faulted, want 8", run.hits)
	}
	if run.refused == 0 || run.deadLettered != run.refused || deadRecs != int(run.refused) || len(dead) != deadRecs || run.quarantined != 0 {
		t.Fatalf("refused %v records, counted %v dead letters and %v quarantined, but the dead-letter topic holds %d (%d distinct)",
			run.refused, run.deadLettered, run.quarantined, deadRecs, len(dead))
	}
	if byCode["INVALID_RECORD"] == 0 || byCode["POLICY_VIOLATION"] == 0 || len(byCode) != 2 {
		t.Fatalf("dead letters by beacongate.code %v: want INVALID_RECORD and POLICY_VIOLATION only", byCode)
	}
	if lost != 0 || dup != 0 || both != 0 || d.orderBreak != 0 || run.final.Lost != 0 || run.final.Quarantined != 0 {
		t.Fatalf("lost %d, duplicated %d, in both topics %d, order violations %d, final %+v", lost, dup, both, d.orderBreak, run.final)
	}
	if run.retried2 != run.retried {
		t.Fatalf("replay retries still going on with the spool inactive: %v then %v", run.retried, run.retried2)
	}
}

// kfLogTime is the time of the first log line with message msg at or after
// since (zero if none).
func kfLogTime(t *testing.T, g *gateway, msg string, since time.Time) time.Time {
	t.Helper()
	for _, line := range strings.Split(g.logs.String(), "\n") {
		if !strings.Contains(line, msg) {
			continue
		}
		var m struct{ Msg, Ts string }
		if json.Unmarshal([]byte(line), &m) != nil || m.Msg != msg {
			continue
		}
		ts, err := time.Parse("2006-01-02T15:04:05.000Z0700", m.Ts)
		if err != nil {
			t.Fatalf("log time %q: %v", m.Ts, err)
		}
		if !ts.Before(since.Truncate(time.Millisecond)) {
			return ts
		}
	}
	return time.Time{}
}

// kfDirectRefusals counts the producer's log lines about records produced
// directly (not replayed: the replayer handles its own failures) that
// librdkafka gave up on with one of codes.
func kfDirectRefusals(g *gateway, codes ...string) int {
	n := 0
	for _, line := range strings.Split(g.logs.String(), "\n") {
		var m struct{ Msg, Code string }
		if json.Unmarshal([]byte(line), &m) == nil && m.Msg == "record delivery failed; kept by the failure handler" && slices.Contains(codes, m.Code) {
			n++
		}
	}
	return n
}

// TestFaultPermanentRefusalQuarantined: without a dead-letter topic, the
// broker is cut for 4 s under load, longer than message.timeout.ms, so
// every record is in the spool (librdkafka hands back what it held); when
// it returns, its first 2 produce requests for the topic, replay rounds,
// are refused with INVALID_RECORD and POLICY_VIOLATION. The refused
// records must go to the spool's quarantine (counted, named by code in
// `spool inspect`), never to the main topic (not replayed again), while
// the rest of each round is committed: every acknowledged beacon is in
// the main topic or the quarantine, the spool drains, and beacons sent
// after the fault reach Kafka.
func TestFaultPermanentRefusalQuarantined(t *testing.T) {
	c, cut := faultBroker(t, "beacons")
	addr := c.ListenAddrs()[0]
	dir := t.TempDir()
	g := startGateway(t, faultFlags(addr, dir, "-kafka.config", "message.timeout.ms=2000")...)
	stop := make(chan struct{})
	// A light load, so that replay outruns it and the spool drains soon.
	res, wait := runLoad(g, 4, 1, 5*time.Millisecond, stop)
	time.Sleep(time.Second)
	cut.SetDown(true)
	time.Sleep(4 * time.Second)
	spooled := metric(t, g, "beacongate_spool_records_spooled_total")
	kept := metric(t, g, "beacongate_spool_records_kept_total")
	var lastHit atomic.Int64
	when := func(kmsg.Request) bool { lastHit.Store(time.Now().UnixNano()); return true }
	h := c.Fault(
		kfake.Fault{Keys: kfProduce, Topic: "beacons", Err: kerr.InvalidRecord, Count: 1, When: when},
		kfake.Fault{Keys: kfProduce, Topic: "beacons", Err: kerr.PolicyViolation, Count: 1, When: when},
	)
	restored := time.Now()
	cut.SetDown(false)
	kafkatest.WaitFor(t, "the permanent faults to be spent", 20*time.Second, func() bool { return h.Hits() == 2 })
	kafkatest.WaitFor(t, "the spool to be inactive", 30*time.Second, func() bool { return metric(t, g, "beacongate_spool_active") == 0 })
	time.Sleep(2 * time.Second) // load goes on after the fault
	close(stop)
	wait()
	kafkatest.WaitFor(t, "the spool to be inactive", 30*time.Second, func() bool { return metric(t, g, "beacongate_spool_active") == 0 })
	retried := metric(t, g, "beacongate_spool_records_retried_total")
	after := kfProbe(t, g, "after", 20)
	time.Sleep(time.Second)
	retried2 := metric(t, g, "beacongate_spool_records_retried_total")
	replayed := metric(t, g, "beacongate_spool_records_replayed_total")
	refused := metric(t, g, "beacongate_records_refused_by_kafka_total")
	quarantinedMetric := metric(t, g, "beacongate_spool_quarantined_total")
	if code := g.stop(t); code != 0 {
		t.Fatalf("exit code %d", code)
	}
	final := g.finalLine(t)
	drained := kfLogTime(t, g, "spool drained: producing directly again", restored)
	hitAt := time.Unix(0, lastHit.Load())

	quar := kfQuarantined(t, dir)
	st := inspectSpoolDir(t, dir)
	wantMain := map[string]bool{}
	for id := range res.acked {
		if _, ok := quar[id]; !ok {
			wantMain[id] = true
		}
	}
	for id := range after {
		wantMain[id] = true
	}
	d := readBack(t, addr, "beacons", wantMain, 60*time.Second)
	lost, dup := d.check(wantMain)
	replayedAgain := 0
	for id := range quar {
		if d.seen[id] > 0 {
			replayedAgain++
		}
	}
	t.Logf("permanent refusals while replaying, no dead-letter topic: %d spooled (%d kept), %d produce requests faulted (last %v before the spool drained), %v replayed; refused %v, quarantined %v counted / %d in the lane (inspect: %d %v); %d acknowledged (+%d probes after); main topic %d records, lost %d, duplicated %d, quarantined yet in the main topic %d, order violations %d; replay retries %v then %v; final %+v",
		int(spooled), int(kept), h.Hits(), drained.Sub(hitAt).Round(time.Millisecond), replayed, refused, quarantinedMetric, len(quar), st.Quarantine.Records, st.Quarantine.ByCode,
		len(res.acked), len(after), d.records, lost, dup, replayedAgain, d.orderBreak, retried, retried2, final)
	if spooled == 0 || kept == 0 || h.Hits() != 2 || replayed == 0 {
		t.Fatalf("the fault did not hit a replay (spooled %v, kept %v, faulted %d, replayed %v)", spooled, kept, h.Hits(), replayed)
	}
	if n := kfDirectRefusals(g, "INVALID_RECORD", "POLICY_VIOLATION"); n > 0 {
		t.Fatalf("%d refusals hit records produced directly, not replayed ones", n)
	}
	if drained.IsZero() || !hitAt.Before(drained) {
		t.Fatalf("the last refusal (%v) came after the spool drained (%v): it did not hit a replay round", hitAt, drained)
	}
	if refused == 0 || quarantinedMetric != refused || len(quar) != int(refused) || st.Quarantine.Records != int64(refused) || final.Quarantined != int64(refused) {
		t.Fatalf("refused %v, quarantined %v counted, %d in the lane, inspect %d, final %+v: want all equal", refused, quarantinedMetric, len(quar), st.Quarantine.Records, final)
	}
	if st.Quarantine.ByCode["INVALID_RECORD"] == 0 || st.Quarantine.ByCode["POLICY_VIOLATION"] == 0 || len(st.Quarantine.ByCode) != 2 {
		t.Fatalf("quarantine by code %v: want INVALID_RECORD and POLICY_VIOLATION only", st.Quarantine.ByCode)
	}
	// The cut comes under load, so a produce request the broker wrote may
	// lose its answer: librdkafka gives up on its records and they are
	// kept and replayed, a second copy (at-least-once), or, when the
	// replay meets an injected refusal, quarantined while Kafka holds the
	// first copy (a real broker would have taken the replay as a
	// duplicate). Either is allowed only as a record Kafka holds that the
	// gateway was never told was delivered: a quarantined record the
	// gateway also delivered would be counted in final.Delivered and fail
	// this.
	if dup+replayedAgain != d.records-int(final.Delivered) {
		t.Fatalf("%d duplicates and %d quarantined records in the main topic, but %d records in Kafka not acknowledged to the gateway",
			dup, replayedAgain, d.records-int(final.Delivered))
	}
	if st.Records != 0 || lost != 0 || d.orderBreak != 0 || final.Lost != 0 {
		t.Fatalf("%d left in the spool, lost %d, duplicated %d, quarantined yet in the main topic %d, order violations %d, final %+v",
			st.Records, lost, dup, replayedAgain, d.orderBreak, final)
	}
	if retried2 != retried {
		t.Fatalf("replay retries still going on with the spool inactive: %v then %v", retried, retried2)
	}
}

// kfStatus503 counts the 503 answers a load got so far.
func kfStatus503(res *loadResult) int {
	res.mu.Lock()
	defer res.mu.Unlock()
	return res.statuses[http.StatusServiceUnavailable]
}

// TestFaultSpoolFullDuringReplay: the spool is small (256 KiB) and the
// broker is cut, then a load runs until it gets 503 spool_full answers. The broker
// then returns but refuses every produce request with the retriable
// NOT_ENOUGH_REPLICAS for 5 s, longer than message.timeout.ms (2 s), so
// replay rounds fail and are produced again while the spool is full and
// answers 503. Once the broker is healthy, nothing acknowledged may be
// lost or duplicated, per-key order must hold, and the spool must drain.
func TestFaultSpoolFullDuringReplay(t *testing.T) {
	c, cut := faultBroker(t, "beacons")
	addr := c.ListenAddrs()[0]
	dir := t.TempDir()
	g := startGateway(t, faultFlags(addr, dir, "-spool.max-bytes", "262144", "-spool.segment-bytes", "65536",
		"-kafka.config", "message.timeout.ms=2000")...)
	// The cut comes before the load: a cut under load can lose the answer
	// to a request the broker wrote, and once librdkafka gives up on its
	// records (message.timeout.ms) they are sent again, duplicated; that
	// case is TestFaultOutageDuringReplayRound's. Here, none may be.
	cut.SetDown(true)
	kafkatest.WaitFor(t, "readiness off", 10*time.Second, func() bool {
		st, _, _ := get(t, "http://"+g.http+"/readyz")
		return st == http.StatusServiceUnavailable
	})
	stop := make(chan struct{})
	res, wait := runLoad(g, 4, 1, time.Millisecond, stop)
	kafkatest.WaitFor(t, "503s from the full spool", 30*time.Second, func() bool { return kfStatus503(res) > 50 })
	fullBefore := metricWhere(t, g, "beacongate_spool_rejected_total", `reason="full"`)
	failedBefore := metric(t, g, "beacongate_kafka_records_failed_total")
	h := c.Fault(kfake.Fault{Keys: kfProduce, Topic: "beacons", Err: kerr.NotEnoughReplicas, Count: -1})
	cut.SetDown(false)
	time.Sleep(5 * time.Second)
	h.Remove()
	fullDuring := metricWhere(t, g, "beacongate_spool_rejected_total", `reason="full"`) - fullBefore
	failedDuring := metric(t, g, "beacongate_kafka_records_failed_total") - failedBefore
	kafkatest.WaitFor(t, "the spool to drain under load", 60*time.Second, func() bool { return metric(t, g, "beacongate_spool_active") == 0 })
	time.Sleep(time.Second) // load goes on after the fault
	close(stop)
	wait()
	kafkatest.WaitFor(t, "the spool to be inactive", 30*time.Second, func() bool { return metric(t, g, "beacongate_spool_active") == 0 })
	retried := metric(t, g, "beacongate_spool_records_retried_total")
	replayed := metric(t, g, "beacongate_spool_records_replayed_total")
	lostMetric := metric(t, g, "beacongate_records_lost_total")
	if code := g.stop(t); code != 0 {
		t.Fatalf("exit code %d", code)
	}
	final := g.finalLine(t)
	st := inspectSpoolDir(t, dir)
	d := readBack(t, addr, "beacons", res.acked, 60*time.Second)
	lost, dup := d.check(res.acked)
	t.Logf("spool full during failing replay: %d produce requests refused (NOT_ENOUGH_REPLICAS), %v spool_full refusals and %v records failed (timed out) while it lasted, %v replayed records failed and produced again, %v replayed; %d acknowledged, %d records in Kafka, lost %d, duplicated %d, order violations %d; lost metric %v, final %+v, left in the spool %d; statuses %v, transport errors %d",
		h.Hits(), fullDuring, failedDuring, retried, replayed, len(res.acked), d.records, lost, dup, d.orderBreak, lostMetric, final, st.Records, res.statuses, res.transport)
	if h.Hits() == 0 || failedDuring == 0 || retried == 0 || fullDuring == 0 || replayed == 0 {
		t.Fatalf("the fault did not happen: %d refused produce requests, %v records failed and %v spool_full refusals while it lasted, %v replay retries, %v replayed",
			h.Hits(), failedDuring, fullDuring, retried, replayed)
	}
	if lost != 0 || dup != 0 || d.orderBreak != 0 || lostMetric != 0 || final.Lost != 0 || st.Records != 0 {
		t.Fatalf("lost %d, duplicated %d, order violations %d, lost metric %v, final %+v, %d left in the spool", lost, dup, d.orderBreak, lostMetric, final, st.Records)
	}
	for s := range res.statuses {
		if s >= 500 && s != http.StatusServiceUnavailable {
			t.Fatalf("status %d: only 503 is expected from a full spool", s)
		}
	}
}

// kfProduceLog records when the broker handled each produce request for a
// topic, and how many records it carried.
type kfProduceLog struct {
	mu   sync.Mutex
	at   []time.Time
	recs []int
}

func kfObserveProduce(c *kfake.Cluster, topic string) *kfProduceLog {
	l := &kfProduceLog{}
	c.ControlKey(kmsg.Produce.Int16(), func(req kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		n := 0
		for _, rt := range req.(*kmsg.ProduceRequest).Topics {
			if rt.Topic != topic {
				continue
			}
			for _, rp := range rt.Partitions {
				var b kmsg.RecordBatch
				if b.ReadFrom(rp.Records) == nil {
					n += int(b.NumRecords)
				}
			}
		}
		l.mu.Lock()
		l.at = append(l.at, time.Now())
		l.recs = append(l.recs, n)
		l.mu.Unlock()
		return nil, nil, false
	})
	return l
}

// records sums the records of the requests handled in [from, to).
func (l *kfProduceLog) records(from, to time.Time) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for i, at := range l.at {
		if !at.Before(from) && at.Before(to) {
			n += l.recs[i]
		}
	}
	return n
}

// TestFaultOutageDuringReplayRound: a first outage of 4 s fills the spool;
// the broker returns, and while the spool is being replayed (a round
// committed, more waiting) it cuts itself off again on a produce request
// of the replay, for 8 s, longer than
// message.timeout.ms (3 s): the records of the round in flight time out.
// The round must produce them again, in order, without reading the spool
// again while their first copies could still be delivered: 0 lost,
// per-key order kept, and duplicates only where the broker persisted a
// request whose response the cut lost.
func TestFaultOutageDuringReplayRound(t *testing.T) {
	c, cut := faultBroker(t, "beacons")
	addr := c.ListenAddrs()[0]
	dir := t.TempDir()
	// A smaller producer queue makes smaller replay rounds (a round takes
	// at most nine tenths of the queue), so the replay takes several.
	g := startGateway(t, faultFlags(addr, dir, "-kafka.config", "message.timeout.ms=3000", "-kafka.config", "queue.buffering.max.messages=3000")...)
	obs := kfObserveProduce(c, "beacons")
	// The first outage comes before the load: a cut under load can lose
	// the answer to a request the broker wrote, and such duplicates are
	// only excused for the second cut below.
	cut.SetDown(true)
	kafkatest.WaitFor(t, "readiness off", 10*time.Second, func() bool {
		st, _, _ := get(t, "http://"+g.http+"/readyz")
		return st == http.StatusServiceUnavailable
	})
	stop := make(chan struct{})
	res, wait := runLoad(g, 8, 2, time.Millisecond, stop)
	time.Sleep(4 * time.Second)
	cut.SetDown(false)
	kafkatest.WaitFor(t, "a replay round committed", 20*time.Second, func() bool {
		return metric(t, g, "beacongate_spool_records_replayed_total") > 0
	})
	// The second cut comes from the broker itself, on the next produce
	// request of the replay (records go only to the spool meanwhile): a
	// round is then in flight for sure. That request is dropped unwritten.
	var cutAtNanos atomic.Int64
	c.ControlKey(kmsg.Produce.Int16(), func(kmsg.Request) (kmsg.Response, error, bool) {
		cutAtNanos.Store(time.Now().UnixNano())
		cut.SetDown(true)
		return nil, errors.New("cut"), true
	})
	kafkatest.WaitFor(t, "the cut during a replay round", 10*time.Second, func() bool { return cutAtNanos.Load() != 0 })
	cutAt := time.Unix(0, cutAtNanos.Load())
	replayedAtCut := metric(t, g, "beacongate_spool_records_replayed_total")
	waitingAtCut := metric(t, g, "beacongate_spool_records")
	activeAtCut := metric(t, g, "beacongate_spool_active")
	failedBefore := metric(t, g, "beacongate_kafka_records_failed_total")
	time.Sleep(time.Until(cutAt.Add(8 * time.Second)))
	failedDuring := metric(t, g, "beacongate_kafka_records_failed_total") - failedBefore
	restoredAt := time.Now()
	cut.SetDown(false)
	time.Sleep(2 * time.Second) // load goes on after the fault
	close(stop)
	wait()
	kafkatest.WaitFor(t, "the spool to drain", 60*time.Second, func() bool { return metric(t, g, "beacongate_spool_active") == 0 })
	retried := metric(t, g, "beacongate_spool_records_retried_total")
	replayed := metric(t, g, "beacongate_spool_records_replayed_total")
	if code := g.stop(t); code != 0 {
		t.Fatalf("exit code %d", code)
	}
	final := g.finalLine(t)
	reread := g.logLine("spool replay round failed; it will be replayed again")
	// Records the broker wrote while the gateway could not hear its
	// answer: those handled during the outage (read before the cut closed
	// the connection) and, at most, those handled just before it.
	unheard := obs.records(cutAt.Add(-100*time.Millisecond), restoredAt)
	duringCut := obs.records(cutAt, restoredAt)
	d := readBack(t, addr, "beacons", res.acked, 60*time.Second)
	lost, dup := d.check(res.acked)
	t.Logf("8 s outage during a replay round (message.timeout.ms 3 s): at the cut %v replayed, %v waiting, spool active %v; %v records timed out during the outage, %v replayed records produced again, %v replayed in all; %d acknowledged, %d records in Kafka, lost %d, duplicated %d, order violations among first copies %d; %d records in Kafka the gateway was not told were delivered, %d written by the broker from 100 ms before the cut to the restore (%d after the cut); final %+v; statuses %v",
		replayedAtCut, waitingAtCut, activeAtCut, failedDuring, retried, replayed, len(res.acked), d.records, lost, dup, d.orderBreak,
		d.records-int(final.Delivered), unheard, duringCut, final, res.statuses)
	if replayedAtCut == 0 || waitingAtCut == 0 || activeAtCut != 1 {
		t.Fatalf("the second cut did not come during the replay (replayed %v, waiting %v, active %v)", replayedAtCut, waitingAtCut, activeAtCut)
	}
	if failedDuring == 0 || retried == 0 {
		t.Fatalf("no replayed record timed out and was produced again (%v failed, %v retried)", failedDuring, retried)
	}
	if reread != nil {
		t.Fatalf("a replay round was read again: %v", reread)
	}
	if lost != 0 || d.orderBreak != 0 || final.Lost != 0 || res.transport != 0 || len(res.statuses) != 1 {
		t.Fatalf("lost %d, order violations among first copies %d, final %+v, transport errors %d, statuses %v", lost, d.orderBreak, final, res.transport, res.statuses)
	}
	// A duplicate is allowed only where the broker wrote a copy whose
	// answer the cut lost: librdkafka gave up on it (message.timeout.ms)
	// and the round produced it again. The gateway's books then count one
	// delivery fewer than Kafka holds records; a round read again would
	// have its second copies acknowledged and counted too.
	if dup != d.records-int(final.Delivered) || dup > unheard {
		t.Fatalf("%d duplicates, but %d records in Kafka not acknowledged to the gateway and %d written while its answers were lost",
			dup, d.records-int(final.Delivered), unheard)
	}
	if d.orderBreak > dup {
		t.Fatalf("%d order violations for %d duplicates", d.orderBreak, dup)
	}
}

// TestFaultOneBrokerOfThreeDown: of a three-broker cluster, the broker
// that leads the most partitions of the topic is taken off the network
// for 6 s under a load of per-user sequences, some users in acknowledged
// mode. The gateway must notice (/readyz 503 naming the partitions
// without a reachable leader, records spooled), and once the broker is
// back: nothing acknowledged lost, nothing duplicated, per-key order
// kept, no acknowledged-mode request timed out, the spool drained.
func TestFaultOneBrokerOfThreeDown(t *testing.T) {
	c, cuts := faultCluster(t, 3, "beacons")
	led := map[int32][]int32{}
	for p := int32(0); p < 16; p++ {
		n := c.LeaderFor("beacons", p)
		led[n] = append(led[n], p)
	}
	down := int32(-1)
	for n, ps := range led {
		if down < 0 || len(ps) > len(led[down]) {
			down = n
		}
	}
	if down < 0 || int(down) >= len(cuts) || len(led[down]) == 16 {
		t.Fatalf("partition leaders %v: want one broker leading some but not all", led)
	}
	brokers := strings.Join(c.ListenAddrs(), ",")
	dir := t.TempDir()
	g := startGateway(t, faultFlags(brokers, dir)...)
	stop := make(chan struct{})
	res, wait := runLoad(g, 8, 3, 2*time.Millisecond, stop)
	time.Sleep(2 * time.Second)
	cuts[down].SetDown(true)
	var body string
	kafkatest.WaitFor(t, "/readyz to name partitions without a reachable leader", 15*time.Second, func() bool {
		st, _, b := get(t, "http://"+g.http+"/readyz")
		body = string(b)
		return st == http.StatusServiceUnavailable && strings.Contains(body, "no reachable leader")
	})
	time.Sleep(6 * time.Second)
	spooled := metric(t, g, "beacongate_spool_records_spooled_total")
	unavailable := metric(t, g, "beacongate_kafka_partitions_unavailable")
	cuts[down].SetDown(false)
	kafkatest.WaitFor(t, "/readyz 200 again", 30*time.Second, func() bool {
		st, _, _ := get(t, "http://"+g.http+"/readyz")
		return st == http.StatusOK
	})
	time.Sleep(3 * time.Second) // load goes on after the fault
	close(stop)
	wait()
	kafkatest.WaitFor(t, "the spool to drain", 60*time.Second, func() bool { return metric(t, g, "beacongate_spool_active") == 0 })
	ackTimeouts := metric(t, g, "beacongate_ack_timeouts_total")
	replayed := metric(t, g, "beacongate_spool_records_replayed_total")
	if code := g.stop(t); code != 0 {
		t.Fatalf("exit code %d", code)
	}
	final := g.finalLine(t)
	st := inspectSpoolDir(t, dir)
	d := readBack(t, c.ListenAddrs()[0], "beacons", res.acked, 60*time.Second)
	lost, dup := d.check(res.acked)
	lostAck, _ := d.check(res.ackedMode)
	t.Logf("broker %d (leader of partitions %v) down 6 s of 3: /readyz said %q; %v partitions unavailable, %v spooled, %v replayed; %d acknowledged (%d in acknowledged mode), %d records in Kafka, lost %d (acknowledged mode %d), duplicated %d, order violations %d; ack timeouts %v; final %+v, left in the spool %d; statuses %v, transport errors %d",
		down, led[down], strings.TrimSpace(body), unavailable, spooled, replayed, len(res.acked), len(res.ackedMode), d.records, lost, lostAck, dup, d.orderBreak, ackTimeouts, final, st.Records, res.statuses, res.transport)
	if spooled == 0 || replayed == 0 || unavailable != float64(len(led[down])) {
		t.Fatalf("the outage was not seen: %v spooled, %v replayed, %v partitions unavailable (want %d)", spooled, replayed, unavailable, len(led[down]))
	}
	if lost != 0 || dup != 0 || d.orderBreak != 0 || final.Lost != 0 || st.Records != 0 {
		t.Fatalf("lost %d, duplicated %d, order violations %d, final %+v, %d left in the spool", lost, dup, d.orderBreak, final, st.Records)
	}
	if ackTimeouts != 0 || res.fiveXX() != 0 || res.transport != 0 {
		t.Fatalf("%v acknowledged-mode timeouts, %d 5xx answers, %d transport errors", ackTimeouts, res.fiveXX(), res.transport)
	}
}

// TestFaultHandBackLargerThanSpool: Kafka refuses every record (a
// retriable error) for longer than message.timeout.ms while records go
// straight to it, and the spool is small (256 KiB). librdkafka then hands
// back everything it held, far more than -spool.max-bytes; those records
// were acknowledged already, so the kept lane takes them all (it is sized
// to the producer's queue) instead of losing what does not fit.
func TestFaultHandBackLargerThanSpool(t *testing.T) {
	const spoolMax = 262144
	c, _ := faultBroker(t, "beacons")
	addr := c.ListenAddrs()[0]
	dir := t.TempDir()
	g := startGateway(t, faultFlags(addr, dir, "-spool.max-bytes", strconv.Itoa(spoolMax), "-spool.segment-bytes", "65536",
		"-kafka.config", "message.timeout.ms=2000")...)
	stop := make(chan struct{})
	res, wait := runLoad(g, 8, 2, 0, stop)
	time.Sleep(time.Second)
	h := c.Fault(kfake.Fault{Keys: kfProduce, Topic: "beacons", Err: kerr.NotEnoughReplicas, Count: -1})
	time.Sleep(5 * time.Second)
	h.Remove()
	time.Sleep(time.Second)
	close(stop)
	wait()
	kafkatest.WaitFor(t, "the spool to drain", 60*time.Second, func() bool { return metric(t, g, "beacongate_spool_active") == 0 })
	kept := metric(t, g, "beacongate_spool_records_kept_total")
	lostMetric := metric(t, g, "beacongate_records_lost_total")
	if code := g.stop(t); code != 0 {
		t.Fatalf("exit code %d", code)
	}
	final := g.finalLine(t)
	d := readBack(t, addr, "beacons", res.acked, 60*time.Second)
	lost, dup := d.check(res.acked)
	// A pixel record is over 200 bytes: this many kept records are more
	// than the spool's budget.
	t.Logf("hand-back larger than the spool: %d produce requests refused (NOT_ENOUGH_REPLICAS) for 5 s, %v records handed back and kept (spool budget %d bytes); %d acknowledged (%d in acknowledged mode), lost %d, duplicated %d, order violations %d; lost metric %v, final line lost %d; statuses %v",
		h.Hits(), kept, spoolMax, len(res.acked), len(res.ackedMode), lost, dup, d.orderBreak, lostMetric, final.Lost, res.statuses)
	if h.Hits() == 0 || kept*200 < spoolMax {
		t.Fatalf("the fault did not happen: %d refused requests, %v records handed back (want more than %d bytes of them)", h.Hits(), kept, spoolMax)
	}
	if lost != 0 || lostMetric != 0 || final.Lost != 0 || dup != 0 || d.orderBreak != 0 {
		t.Fatalf("lost %d (metric %v, final line %d), duplicated %d, order violations %d", lost, lostMetric, final.Lost, dup, d.orderBreak)
	}
}
