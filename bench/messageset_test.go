package bench

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"net"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"go.uber.org/zap"

	"github.com/beacongate/beacongate/internal/kafka/embedded"
	"github.com/beacongate/beacongate/internal/kafkatest"
)

// produceV2 sends one Produce v2 request (acks 1) with set as the
// records of topic's partition 0 on a connection of its own, as
// lua-resty-kafka 0.07 does with api_version = 2, and reads the answer
// in v2's layout, the one that client parses.
func produceV2(t *testing.T, addr, topic string, set []byte) (*kmsg.ProduceResponse, error) {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	req := kmsg.NewPtrProduceRequest()
	req.SetVersion(2)
	req.Acks, req.TimeoutMillis = 1, 5000
	rt := kmsg.NewProduceRequestTopic()
	rt.Topic = topic
	rp := kmsg.NewProduceRequestTopicPartition()
	rp.Records = set
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	frame := []byte{0, 0, 0, 0}
	frame = binary.BigEndian.AppendUint16(frame, uint16(req.Key()))
	frame = binary.BigEndian.AppendUint16(frame, 2)
	frame = binary.BigEndian.AppendUint32(frame, 7) // correlation id
	frame = binary.BigEndian.AppendUint16(frame, 4)
	frame = append(frame, "peer"...)
	frame = req.AppendTo(frame)
	binary.BigEndian.PutUint32(frame, uint32(len(frame)-4))
	if _, err := conn.Write(frame); err != nil {
		return nil, err
	}
	var hdr [8]byte
	if _, err := io.ReadFull(conn, hdr[:]); err != nil {
		return nil, err
	}
	body := make([]byte, binary.BigEndian.Uint32(hdr[:4])-4)
	if _, err := io.ReadFull(conn, body); err != nil {
		return nil, err
	}
	resp := kmsg.NewPtrProduceResponse()
	resp.SetVersion(2)
	if err := resp.ReadFrom(body); err != nil {
		return nil, fmt.Errorf("answer not in Produce v2's layout: %w", err)
	}
	return resp, nil
}

// TestMessageSetsNeedUpconversion: the development broker refuses an old
// client's message set, and with acceptMessageSets takes it, every key,
// value and timestamp intact, answering in the old client's layout,
// while a current client (record batches, librdkafka's format) is served
// as before.
func TestMessageSetsNeedUpconversion(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()

	const n = 500
	var kvs [][2][]byte
	for i := range n {
		kv := [2][]byte{fmt.Appendf(nil, "uid-%d", i%37), fmt.Appendf(nil, "uid=uid-%d&seq=%d&pad=%s", i%37, i, bytes.Repeat([]byte{'x'}, i))}
		if i%50 == 0 {
			kv[0] = nil // lua-resty-kafka sends a null key when uid is missing
		}
		kvs = append(kvs, kv)
	}
	set := messageSet(t, 1, kvs)

	plain, err := embedded.Start(embedded.Config{Listen: "127.0.0.1:0", Topics: []string{"beacons"}}, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	if resp, err := produceV2(t, plain.Addr(), "beacons", set); err == nil {
		t.Fatalf("the plain development broker answered a Produce v2 message set (%+v): the up-conversion would be pointless", resp)
	} else {
		t.Logf("plain broker, Produce v2: %v", err)
	}

	b, err := embedded.Start(embedded.Config{Listen: "127.0.0.1:0", Partitions: 1, Topics: []string{"beacons"}}, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	acceptMessageSets(b.Cluster())
	resp, err := produceV2(t, b.Addr(), "beacons", set)
	if err != nil {
		t.Fatalf("Produce v2 to the up-converting broker: %v", err)
	}
	if len(resp.Topics) != 1 || len(resp.Topics[0].Partitions) != 1 || resp.Topics[0].Partitions[0].ErrorCode != 0 {
		t.Fatalf("answer %+v", resp.Topics)
	}
	// A current client still produces record batches, untouched.
	cur, err := kgo.NewClient(kgo.SeedBrokers(b.Addr()))
	if err != nil {
		t.Fatal(err)
	}
	defer cur.Close()
	if err := cur.ProduceSync(ctx, &kgo.Record{Topic: "beacons", Key: []byte("current"), Value: []byte("record batch")}).FirstErr(); err != nil {
		t.Fatalf("current producer: %v", err)
	}

	got := kafkatest.Consume(t, b.Addr(), "beacons", n+1, 15*time.Second)
	if len(got) != n+1 {
		t.Fatalf("read back %d records, want %d", len(got), n+1)
	}
	for i, kv := range kvs {
		r := got[i]
		if !bytes.Equal(r.Value, kv[1]) || !bytes.Equal(r.Key, kv[0]) || (r.Key == nil) != (kv[0] == nil) ||
			r.Timestamp.UnixMilli() != 1_796_616_807_000+int64(i) || r.Offset != int64(i) {
			t.Fatalf("record %d: key %q value %.40q timestamp %d offset %d, want key %q value %.40q", i, r.Key, r.Value, r.Timestamp.UnixMilli(), r.Offset, kv[0], kv[1])
		}
	}
	if r := got[n]; string(r.Key) != "current" || string(r.Value) != "record batch" {
		t.Fatalf("the current producer's record: key %q value %q", r.Key, r.Value)
	}
}

// TestUpconvertRefusesBadSets: a damaged message set is refused with a
// reason, never turned into a batch.
func TestUpconvertRefusesBadSets(t *testing.T) {
	good := messageSet(t, 1, [][2][]byte{{[]byte("k"), []byte("v")}})
	if _, err := upconvert(good, 0); err != nil {
		t.Fatalf("good set: %v", err)
	}
	badCRC := bytes.Clone(good)
	badCRC[len(badCRC)-1] ^= 1
	compressed := messageSet(t, 1, [][2][]byte{{nil, []byte("v")}})
	compressed[17] = 2 // attributes: snappy
	fixCRC(compressed)
	for name, set := range map[string][]byte{
		"empty":      {},
		"truncated":  good[:len(good)-3],
		"bad CRC":    badCRC,
		"compressed": compressed,
		"magic 2":    append(bytes.Clone(good[:16]), 2),
	} {
		if b, err := upconvert(set, 0); err == nil || !errors.Is(err, errMessageSet) {
			t.Errorf("%s: got %d bytes, err %v", name, len(b), err)
		}
	}
}

// messageSet encodes kvs as a message set of the given magic with
// franz-go's message types.
func messageSet(t testing.TB, magic int8, kvs [][2][]byte) []byte {
	t.Helper()
	var set []byte
	for i, kv := range kvs {
		var m []byte
		switch magic {
		case 0:
			v := kmsg.MessageV0{Offset: int64(i), Magic: 0, Key: kv[0], Value: kv[1]}
			m = v.AppendTo(nil)
		default:
			v := kmsg.MessageV1{Offset: int64(i), Magic: 1, Timestamp: 1_796_616_807_000 + int64(i), Key: kv[0], Value: kv[1]}
			m = v.AppendTo(nil)
		}
		fixCRC(m)
		set = append(set, m...)
	}
	return set
}

// fixCRC sets the size and CRC of the one message in m (offset, size,
// CRC, magic, ...), as a producer does.
func fixCRC(m []byte) {
	binary.BigEndian.PutUint32(m[8:], uint32(len(m)-12))
	binary.BigEndian.PutUint32(m[12:], crc32.ChecksumIEEE(m[16:]))
}
