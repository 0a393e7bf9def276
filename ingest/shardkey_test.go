package ingest

import (
	"testing"

	"github.com/beacongate/beacongate/shard"
)

// TestShardKeyEqualsRecordKey: header and cookie key sources may hold
// invalid UTF-8; the Kafka key and the record's shard_key are still the
// same bytes (both valid UTF-8), so re-partitioning by shard_key agrees.
func TestShardKeyEqualsRecordKey(t *testing.T) {
	ts := newTestServer(t, Config{Shard: shard.Config{Sources: "header:X-User,cookie:uid,ip"}})
	for _, c := range []struct{ name, hdr, want string }{
		{"header", "X-User: u\xff\xfe1\r\n", "u\uFFFD1"},
		{"cookie", "Cookie: uid=c\xc3\r\n", "c\uFFFD"},
		{"valid header unchanged", "X-User: ü1\r\n", "ü1"},
	} {
		t.Run(c.name, func(t *testing.T) {
			status, body := rawRequest(t, ts, "GET /i?ev=v HTTP/1.1\r\nHost: gw\r\n"+c.hdr+"\r\n")
			if status != 200 {
				t.Fatalf("status %d %q", status, body)
			}
			keys, recs := ts.sink.take()
			if len(keys) != 1 {
				t.Fatalf("%d records", len(keys))
			}
			if keys[0] != c.want || recs[0].ShardKey != keys[0] {
				t.Fatalf("Kafka key %q, shard_key %q, want both %q", keys[0], recs[0].ShardKey, c.want)
			}
		})
	}
}
