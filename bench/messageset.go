package bench

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"
	"go.uber.org/zap"

	"github.com/beacongate/beacongate/internal/kafka/embedded"
)

// The peer of `make bench-peers` (docs/performance.md), nginx with
// Debian's lua-resty-kafka 0.07, speaks only the pre-0.11 produce protocol:
// Produce v0-v2 carrying message sets (magic 0 and 1). The development
// broker (kfake) takes Produce v3+ record batches only and answers older
// requests with an error, so nothing the peer sends would arrive. Real
// Kafka brokers up-convert such requests to record batches on arrival;
// the broker child mode -serve-broker-upconvert does the same in front of
// kfake, so the peer's records land in the topic like anyone else's.
// Produce v3+ requests (librdkafka's) pass through untouched.

var (
	crc32c = crc32.MakeTable(crc32.Castagnoli)

	errMessageSet = errors.New("bad message set")
)

// serveUpconvertBroker is serveBroker with message-set up-conversion.
func serveUpconvertBroker(addr, dataDir, partitions, topic string, out io.Writer) error {
	n, err := strconv.Atoi(partitions)
	if err != nil {
		return fmt.Errorf("partitions %q: %w", partitions, err)
	}
	b, err := embedded.Start(embedded.Config{Listen: addr, DataDir: dataDir, Partitions: n, Topics: []string{topic}}, zap.NewNop())
	if err != nil {
		return err
	}
	defer b.Close()
	acceptMessageSets(b.Cluster())
	fmt.Fprintf(out, "listening %s\n", b.Addr())
	waitSignal()
	return nil
}

// acceptMessageSets makes c take Produce v2 requests: their message sets
// become record batches and the request a v3 one, which kfake then
// handles as usual. v3's response has v2's layout, so the client reads
// the answer it expects. v0 and v1 answers differ (no timestamp per
// partition), so those requests are left for kfake to refuse; the peer
// is configured with api_version = 2.
func acceptMessageSets(c *kfake.Cluster) {
	c.ControlKey(int16(kmsg.Produce), func(kreq kmsg.Request) (kmsg.Response, error, bool) {
		req, ok := kreq.(*kmsg.ProduceRequest)
		if !ok || req.Version != 2 {
			return nil, nil, false
		}
		now := time.Now().UnixMilli()
		for ti := range req.Topics {
			for pi := range req.Topics[ti].Partitions {
				p := &req.Topics[ti].Partitions[pi]
				// A set that does not convert stays as it was: kfake
				// then answers CORRUPT_MESSAGE for that partition.
				if batch, err := upconvert(p.Records, now); err == nil {
					p.Records = batch
				}
			}
		}
		req.Version = 3
		return nil, nil, false // not handled: kfake appends the batches
	})
}

// upconvert turns a message set of uncompressed magic 0 or 1 messages
// into one uncompressed record batch (magic 2) with the same keys, values
// and (magic 1) timestamps; now stands in for magic 0's missing ones.
// Every message's CRC is checked, as a broker does.
func upconvert(set []byte, now int64) ([]byte, error) {
	type msg struct {
		ts         int64
		key, value []byte // nil: null
	}
	var msgs []msg
	for len(set) > 0 {
		if len(set) < 12 {
			// A trailing partial message is allowed (a fetch can cut
			// one off), but a producer never sends one.
			return nil, fmt.Errorf("%w: %d trailing bytes", errMessageSet, len(set))
		}
		size := int(int32(binary.BigEndian.Uint32(set[8:12])))
		if size < 14 || size > len(set)-12 {
			return nil, fmt.Errorf("%w: message size %d with %d bytes left", errMessageSet, size, len(set)-12)
		}
		m := set[12 : 12+size]
		set = set[12+size:]
		if crc32.ChecksumIEEE(m[4:]) != binary.BigEndian.Uint32(m[:4]) {
			return nil, fmt.Errorf("%w: CRC mismatch", errMessageSet)
		}
		magic, attrs, rest := m[4], m[5], m[6:]
		if attrs&0x07 != 0 {
			return nil, fmt.Errorf("%w: compressed message (attributes %#x)", errMessageSet, attrs)
		}
		ts := now
		switch magic {
		case 0:
		case 1:
			if len(rest) < 8 {
				return nil, fmt.Errorf("%w: short magic 1 message", errMessageSet)
			}
			ts, rest = int64(binary.BigEndian.Uint64(rest)), rest[8:]
		default:
			return nil, fmt.Errorf("%w: magic %d in a message set", errMessageSet, magic)
		}
		key, rest, err := nullableBytes(rest)
		if err != nil {
			return nil, err
		}
		value, rest, err := nullableBytes(rest)
		if err != nil {
			return nil, err
		}
		if len(rest) != 0 {
			return nil, fmt.Errorf("%w: %d bytes after the value", errMessageSet, len(rest))
		}
		msgs = append(msgs, msg{ts, key, value})
	}
	if len(msgs) == 0 {
		return nil, fmt.Errorf("%w: empty", errMessageSet)
	}
	first, maxTS := msgs[0].ts, msgs[0].ts
	for _, m := range msgs {
		first, maxTS = min(first, m.ts), max(maxTS, m.ts)
	}

	// Record batch v2: the header (61 bytes), then the records.
	b := make([]byte, 61, 61+len(msgs)*16)
	binary.BigEndian.PutUint64(b[0:], 0)                    // base offset
	binary.BigEndian.PutUint32(b[12:], 0xffffffff)          // partition leader epoch
	b[16] = 2                                               // magic
	binary.BigEndian.PutUint16(b[21:], 0)                   // attributes: create time, no compression
	binary.BigEndian.PutUint32(b[23:], uint32(len(msgs)-1)) // last offset delta
	binary.BigEndian.PutUint64(b[27:], uint64(first))       // first timestamp
	binary.BigEndian.PutUint64(b[35:], uint64(maxTS))       // max timestamp
	binary.BigEndian.PutUint64(b[43:], 0xffffffffffffffff)  // producer id: none
	binary.BigEndian.PutUint16(b[51:], 0xffff)              // producer epoch
	binary.BigEndian.PutUint32(b[53:], 0xffffffff)          // base sequence
	binary.BigEndian.PutUint32(b[57:], uint32(len(msgs)))   // records
	var rec []byte
	for i, m := range msgs {
		rec = append(rec[:0], 0) // attributes
		rec = binary.AppendVarint(rec, m.ts-first)
		rec = binary.AppendVarint(rec, int64(i))
		rec = appendVarBytes(rec, m.key)
		rec = appendVarBytes(rec, m.value)
		rec = binary.AppendVarint(rec, 0) // headers
		b = binary.AppendVarint(b, int64(len(rec)))
		b = append(b, rec...)
	}
	binary.BigEndian.PutUint32(b[8:], uint32(len(b)-12))
	binary.BigEndian.PutUint32(b[17:], crc32.Checksum(b[21:], crc32c))
	return b, nil
}

// nullableBytes reads a message set's int32-length-prefixed bytes (-1:
// null).
func nullableBytes(b []byte) (v, rest []byte, err error) {
	if len(b) < 4 {
		return nil, nil, fmt.Errorf("%w: short length", errMessageSet)
	}
	n := int32(binary.BigEndian.Uint32(b))
	b = b[4:]
	if n == -1 {
		return nil, b, nil
	}
	if n < 0 || int(n) > len(b) {
		return nil, nil, fmt.Errorf("%w: length %d with %d bytes left", errMessageSet, n, len(b))
	}
	return b[:n:n], b[n:], nil
}

// appendVarBytes appends a record's varint-length-prefixed bytes (-1:
// null).
func appendVarBytes(b, v []byte) []byte {
	if v == nil {
		return binary.AppendVarint(b, -1)
	}
	b = binary.AppendVarint(b, int64(len(v)))
	return append(b, v...)
}
