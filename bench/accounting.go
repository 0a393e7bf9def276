package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"google.golang.org/protobuf/proto"

	beaconv1 "github.com/beacongate/beacongate/proto/beacongate/v1"
)

// The accounting reads the topic back with an independent Kafka client
// (franz-go), decodes every record as beacongate.v1.Beacon, keeps this
// run's events (run id "rid"), and checks each against what the gateway
// acknowledged: every acknowledged event exactly once, and each key's
// events in sequence order.

// readback reads one topic from the offsets it had before the run.
type readback struct {
	cl      *kgo.Client
	topic   string
	batches batchMeter
	start   map[int32]int64 // partition -> end offset before the run
}

// openReadback connects and records each partition's end offset, so the
// read-back skips what earlier runs wrote.
func openReadback(ctx context.Context, brokers, topic string) (*readback, error) {
	rb := &readback{topic: topic}
	cl, err := kgo.NewClient(kgo.SeedBrokers(strings.Split(brokers, ",")...),
		kgo.WithHooks(&rb.batches),
		// At the end of a partition a fetch waits this long for more:
		// short, so the read-back notices at once that it has read all.
		kgo.FetchMaxWait(200*time.Millisecond),
		kgo.FetchMaxBytes(64<<20), kgo.FetchMaxPartitionBytes(16<<20),
	)
	if err != nil {
		return nil, fmt.Errorf("read-back client for %s: %w", brokers, err)
	}
	rb.cl = cl
	if rb.start, err = rb.endOffsets(ctx); err != nil {
		cl.Close()
		return nil, fmt.Errorf("end offsets of topic %q on %s before the run: %w", topic, brokers, err)
	}
	return rb, nil
}

func (rb *readback) close() { rb.cl.Close() }

// endOffsets lists every partition's end offset (high watermark). A topic
// that does not exist yet has none: it will be read from its start.
func (rb *readback) endOffsets(ctx context.Context) (map[int32]int64, error) {
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	meta := kmsg.NewPtrMetadataRequest()
	mt := kmsg.NewMetadataRequestTopic()
	mt.Topic = kmsg.StringPtr(rb.topic)
	meta.Topics = append(meta.Topics, mt)
	mresp, err := meta.RequestWith(ctx, rb.cl)
	if err != nil {
		return nil, err
	}
	ends := map[int32]int64{}
	if len(mresp.Topics) != 1 {
		return nil, fmt.Errorf("metadata answered %d topics for 1", len(mresp.Topics))
	}
	t := mresp.Topics[0]
	if t.ErrorCode == kerr.UnknownTopicOrPartition.Code {
		return ends, nil
	}
	if err := kerr.ErrorForCode(t.ErrorCode); err != nil {
		return nil, fmt.Errorf("metadata: %w", err)
	}
	lo := kmsg.NewPtrListOffsetsRequest()
	lo.ReplicaID = -1
	lt := kmsg.NewListOffsetsRequestTopic()
	lt.Topic = rb.topic
	for _, p := range t.Partitions {
		lp := kmsg.NewListOffsetsRequestTopicPartition()
		lp.Partition = p.Partition
		lp.Timestamp = -1 // latest
		lt.Partitions = append(lt.Partitions, lp)
	}
	lo.Topics = append(lo.Topics, lt)
	lresp, err := lo.RequestWith(ctx, rb.cl)
	if err != nil {
		return nil, err
	}
	for _, t := range lresp.Topics {
		for _, p := range t.Partitions {
			if err := kerr.ErrorForCode(p.ErrorCode); err != nil {
				return nil, fmt.Errorf("list offsets of partition %d: %w", p.Partition, err)
			}
			ends[p.Partition] = p.Offset
		}
	}
	return ends, nil
}

// Accounting is the end-to-end truth of one gateway phase, in events.
type Accounting struct {
	Sent             int64            `json:"sent"`
	Acknowledged     int64            `json:"acknowledged"`       // 2xx (for a batch: the events it did not list as rejected)
	RejectedByStatus map[string]int64 `json:"rejected_by_status"` // status code -> events
	TransportErrors  int64            `json:"transport_errors"`   // events whose request got no HTTP answer
	Delivered        int64            `json:"delivered"`          // distinct events of this run found in Kafka
	Lost             int64            `json:"lost"`               // acknowledged but not in Kafka
	Duplicated       int64            `json:"duplicated"`         // records beyond the first of the same key and seq
	OrderViolations  int64            `json:"order_violations"`   // a key's seq going backwards in its partition
	// KeysSplit counts keys found on more than one partition, which breaks
	// per-key order for consumers even when each partition is in order.
	KeysSplit int64 `json:"keys_split"`
	// DeliveredUnacknowledged are in Kafka without a 2xx: allowed (an
	// answer lost to a timeout), reported so they are not mistaken.
	DeliveredUnacknowledged int64 `json:"delivered_unacknowledged"`
	Unreadable              int64 `json:"unreadable"`    // records of this run that did not decode
	OtherRecords            int64 `json:"other_records"` // records of other runs or producers, skipped
	RecordsRead             int64 `json:"records_read"`
	// Complete: every acknowledged event was found and every partition
	// was read to its end offset after the run.
	Complete        bool     `json:"complete"`
	ReadbackSeconds float64  `json:"readback_seconds"`
	LostSamples     []string `json:"lost_samples,omitempty"` // up to 10 "uid/seq"
	// What the records read back take in Kafka: their record batches as
	// stored (compressed by the producer) and decompressed, without the
	// batches' own headers (kgo.FetchBatchMetrics).
	Batches                int64    `json:"batches"`
	BatchBytes             int64    `json:"batch_bytes"`
	BatchBytesUncompressed int64    `json:"batch_bytes_uncompressed"`
	Codecs                 []string `json:"codecs,omitempty"`
	// BrokersRead is how many brokers (partition leaders) the batches
	// came from: with -broker-nodes N, all N when every node leads some
	// partition the records went to.
	BrokersRead int `json:"brokers_read,omitempty"`
}

// batchMeter adds up the record batches the read-back fetches.
type batchMeter struct {
	mu                                sync.Mutex
	batches, compressed, uncompressed int64
	codecs                            [5]bool // Kafka's codec ids: none, gzip, snappy, lz4, zstd
	brokers                           map[int32]bool
}

var codecNames = [5]string{"none", "gzip", "snappy", "lz4", "zstd"}

func (m *batchMeter) OnFetchBatchRead(b kgo.BrokerMetadata, _ string, _ int32, fm kgo.FetchBatchMetrics) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.brokers == nil {
		m.brokers = map[int32]bool{}
	}
	m.brokers[b.NodeID] = true
	m.batches++
	m.compressed += int64(fm.CompressedBytes)
	m.uncompressed += int64(fm.UncompressedBytes)
	if int(fm.CompressionType) < len(m.codecs) {
		m.codecs[fm.CompressionType] = true
	}
}

func (m *batchMeter) fill(a *Accounting) {
	m.mu.Lock()
	defer m.mu.Unlock()
	a.Batches, a.BatchBytes, a.BatchBytesUncompressed = m.batches, m.compressed, m.uncompressed
	a.BrokersRead = len(m.brokers)
	a.Codecs = nil
	for i, on := range m.codecs {
		if on {
			a.Codecs = append(a.Codecs, codecNames[i])
		}
	}
}

// tally checks records against the keys' acknowledged events.
type tally struct {
	rid      string
	keys     []*keyState
	uidIndex map[string]int
	seen     []bitset
	last     []uint64
	part     []int32
	acc      Accounting
	found    int64 // acknowledged events seen
}

func newTally(rid string, keys []*keyState) *tally {
	t := &tally{rid: rid, keys: keys, uidIndex: make(map[string]int, len(keys)),
		seen: make([]bitset, len(keys)), last: make([]uint64, len(keys)), part: make([]int32, len(keys))}
	for i, k := range keys {
		t.uidIndex[k.uid] = i
		t.part[i] = -1
	}
	return t
}

// observe accounts one record of this run, in partition order.
func (t *tally) observe(partition int32, uid string, seq uint64) {
	i, ok := t.uidIndex[uid]
	if !ok || seq == 0 || seq > t.keys[i].seq {
		t.acc.Unreadable++ // of this run, but not an event it sent
		return
	}
	if t.seen[i].has(seq) {
		t.acc.Duplicated++
		return
	}
	t.seen[i].set(seq)
	t.acc.Delivered++
	if t.keys[i].acked.has(seq) {
		t.found++
	} else {
		t.acc.DeliveredUnacknowledged++
	}
	switch {
	case t.part[i] == -1:
		t.part[i] = partition
	case t.part[i] != partition:
		t.part[i] = -2 // counted once
		t.acc.KeysSplit++
	}
	if seq < t.last[i] {
		t.acc.OrderViolations++
	}
	t.last[i] = max(t.last[i], seq)
}

// finish counts the lost events: acknowledged, never seen.
func (t *tally) finish() {
	for i, k := range t.keys {
		for s := uint64(1); s <= k.seq; s++ {
			if k.acked.has(s) && !t.seen[i].has(s) {
				t.acc.Lost++
				if len(t.acc.LostSamples) < 10 {
					t.acc.LostSamples = append(t.acc.LostSamples, k.uid+"/"+strconv.FormatUint(s, 10))
				}
			}
		}
	}
}

// read consumes from the start offsets until every acknowledged event
// was found and every partition reached its end in ends, or timeout.
func (rb *readback) read(ctx context.Context, t *tally, acked int64, ends map[int32]int64, timeout time.Duration) Accounting {
	start := time.Now()
	offsets := map[int32]kgo.Offset{}
	for p := range ends {
		offsets[p] = kgo.NewOffset().At(rb.start[p]) // 0 for a partition that did not exist
	}
	rb.cl.AddConsumePartitions(map[string]map[int32]kgo.Offset{rb.topic: offsets})
	next := map[int32]int64{}
	for p := range ends {
		next[p] = rb.start[p]
	}
	atEnd := func() bool {
		for p, e := range ends {
			if next[p] < e {
				return false
			}
		}
		return true
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for !(t.found >= acked && atEnd()) && ctx.Err() == nil {
		fetches := rb.cl.PollFetches(ctx)
		var parts [][]*kgo.Record
		fetches.EachPartition(func(p kgo.FetchTopicPartition) {
			if len(p.Records) > 0 {
				parts = append(parts, p.Records)
			}
		})
		// Decoding is most of the read-back's work: partitions are decoded
		// in parallel, then tallied one after the other, each in offset
		// order.
		for i, evs := range decodeParallel(parts, t.rid) {
			for j, ev := range evs {
				r := parts[i][j]
				t.acc.RecordsRead++
				next[r.Partition] = r.Offset + 1
				switch {
				case !ev.ours:
					t.acc.OtherRecords++
				case ev.err != nil:
					t.acc.Unreadable++
				default:
					t.observe(r.Partition, ev.uid, ev.seq)
				}
			}
		}
	}
	t.acc.Complete = t.found >= acked && atEnd()
	rb.batches.fill(&t.acc)
	t.finish()
	t.acc.ReadbackSeconds = time.Since(start).Seconds()
	return t.acc
}

// decodedEvent is what decodeEvent found in one record.
type decodedEvent struct {
	uid  string
	seq  uint64
	ours bool
	err  error
}

// decodeParallel decodes each partition's records, on as many goroutines
// as there are cores; out[i][j] is parts[i][j]'s event.
func decodeParallel(parts [][]*kgo.Record, rid string) [][]decodedEvent {
	out := make([][]decodedEvent, len(parts))
	next := make(chan int, len(parts))
	for i := range parts {
		next <- i
	}
	close(next)
	var wg sync.WaitGroup
	for range min(runtime.GOMAXPROCS(0), len(parts)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var msg beaconv1.Beacon
			for i := range next {
				evs := make([]decodedEvent, len(parts[i]))
				for j, r := range parts[i] {
					ev := &evs[j]
					ev.uid, ev.seq, ev.ours, ev.err = decodeEvent(r.Value, rid, &msg)
				}
				out[i] = evs
			}
		}()
	}
	wg.Wait()
	return out
}

// decodeEvent decodes one record value and finds the run id, user id
// and sequence number the harness put in it: query parameters rid, uid
// and seq for a pixel, JSON fields rid, user_id and seq for a JSON event.
// ours is false for another run's or producer's record.
func decodeEvent(value []byte, rid string, msg *beaconv1.Beacon) (uid string, seq uint64, ours bool, err error) {
	if !bytes.Contains(value, []byte(rid)) {
		return "", 0, false, nil // cheap filter before decoding
	}
	if err := proto.Unmarshal(value, msg); err != nil {
		return "", 0, true, fmt.Errorf("decoding a %d-byte record as beacongate.v1.Beacon: %w", len(value), err)
	}
	if len(msg.Payload) > 0 {
		uid, seq, r, ok := scanJSONEvent(msg.Payload)
		if !ok {
			var ev struct {
				RID    string `json:"rid"`
				Seq    uint64 `json:"seq"`
				UserID string `json:"user_id"`
			}
			if err := json.Unmarshal(msg.Payload, &ev); err != nil {
				return "", 0, bytes.Contains(msg.Payload, []byte(rid)), fmt.Errorf("payload of %d bytes: %w", len(msg.Payload), err)
			}
			uid, seq, r = ev.UserID, ev.Seq, ev.RID
		}
		return uid, seq, r == rid, nil
	}
	var r, s string
	for _, p := range msg.Params {
		switch p.Name {
		case "rid":
			r = p.Value
		case "uid":
			uid = p.Value
		case "seq":
			s = p.Value
		}
	}
	if r != rid {
		return "", 0, false, nil
	}
	seq, err = strconv.ParseUint(s, 10, 64)
	if err != nil {
		return "", 0, true, fmt.Errorf("seq %q: %w", s, err)
	}
	return uid, seq, true, nil
}

// scanJSONEvent reads the harness's own event layout,
// {"rid":"R","seq":N,"user_id":"U",... without a JSON decoder: the
// read-back handles millions of records and must not take longer than the
// load. Anything else returns ok false (then a JSON decoder decides).
func scanJSONEvent(p []byte) (uid string, seq uint64, rid string, ok bool) {
	rest, ok := bytes.CutPrefix(p, []byte(`{"rid":"`))
	if !ok {
		return "", 0, "", false
	}
	i := bytes.IndexByte(rest, '"')
	if i < 0 {
		return "", 0, "", false
	}
	rid, rest = string(rest[:i]), rest[i+1:]
	if rest, ok = bytes.CutPrefix(rest, []byte(`,"seq":`)); !ok {
		return "", 0, "", false
	}
	n := 0
	for n < len(rest) && rest[n] >= '0' && rest[n] <= '9' {
		n++
	}
	seq, err := strconv.ParseUint(string(rest[:n]), 10, 64)
	if err != nil {
		return "", 0, "", false
	}
	if rest, ok = bytes.CutPrefix(rest[n:], []byte(`,"user_id":"`)); !ok {
		return "", 0, "", false
	}
	if i = bytes.IndexByte(rest, '"'); i < 0 {
		return "", 0, "", false
	}
	return string(rest[:i]), seq, rid, true
}
