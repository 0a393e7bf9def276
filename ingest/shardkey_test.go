package ingest

import (
	"fmt"
	"testing"

	"github.com/beacongate/beacongate/ingest/event"
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

// TestBatchShardKeys: a batch's shard keys come from the members the
// split noted (scratch.notedField), and must be what event.Field reads:
// the last of duplicate members, names and values unescaped, numbers as
// written, nested members ignored, the next source when one is absent or
// not a string or number, and a prefix source.
func TestBatchShardKeys(t *testing.T) {
	ts := newTestServer(t, Config{Shard: shard.Config{Sources: "json:user_id,json:anonymous_id,ip", Prefix: "json:tenant"}})
	body := `[{"user_id":"u1","tenant":"t"},` +
		`{"user_id":"first","x":{"user_id":"nested"},"user_id":"last"},` +
		`{"\u0075ser_id":"esc\u00e9"},` +
		`{"user_id":42.5},` +
		`{"user_id":null,"anonymous_id":"anon"},` +
		`{"props":{"user_id":"deep"},"anonymous_id":"a2","tenant":"t2"},` +
		`{"user_id":true,"anonymous_id":"a3"}]`
	want := []string{"t:u1", "last", "escé", "42.5", "anon", "t2:a2", "a3"}
	status, resp := rawRequest(t, ts, fmt.Sprintf("POST /batch HTTP/1.1\r\nHost: gw\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", len(body), body))
	if status != 200 {
		t.Fatalf("status %d %q", status, resp)
	}
	keys, recs := ts.sink.take()
	if len(keys) != len(want) {
		t.Fatalf("%d records, want %d", len(keys), len(want))
	}
	for i := range want {
		if keys[i] != want[i] || recs[i].ShardKey != want[i] {
			t.Errorf("event %d: Kafka key %q, shard_key %q, want %q", i, keys[i], recs[i].ShardKey, want[i])
		}
	}
}

// TestNotedField: Lookup reads a batch item's members from what the split
// noted, and walks the payload again (event.Field) only when it is not
// the event as split.
func TestNotedField(t *testing.T) {
	sc := &scratch{}
	sc.fields.Names = []string{"user_id", "anonymous_id"}
	body := []byte(`[{"user_id":"a\u0062","anonymous_id":7},{"x":1}]`)
	if err := event.SplitFields(body, event.Limits{}, &sc.fields, func(_ int, ev []byte, err error) bool {
		sc.items = append(sc.items, batchItem{ev: ev, err: err})
		sc.noted = append(sc.noted, sc.fields.Vals...)
		return true
	}); err != nil {
		t.Fatal(err)
	}
	check := func(name, want string, wantOK bool) {
		t.Helper()
		v, ok := sc.notedField(name)
		if ok != wantOK || string(v) != want {
			t.Errorf("notedField(%q) = %q, %v; want %q, %v", name, v, ok, want, wantOK)
		}
	}
	sc.noteItem(0)
	sc.b.Payload = sc.items[0].ev
	check("user_id", "ab", true)
	check("anonymous_id", "7", true)
	check("other", "", false) // not noted: Lookup walks the event
	sc.noteItem(1)
	sc.b.Payload = sc.items[1].ev
	check("user_id", "", true) // noted as absent
	sc.b.Payload = []byte(`{"user_id":"stripped"}`)
	check("user_id", "", false) // not the event as split (opt-out)
	if got := sc.Lookup(shard.KindJSON, "user_id"); string(got) != "stripped" {
		t.Errorf("Lookup on a replaced payload = %q", got)
	}
}

// TestBeaconShardKey: a sendBeacon JSON event's key comes from the
// members noted while it was validated, as Field would read them.
func TestBeaconShardKey(t *testing.T) {
	ts := newTestServer(t, Config{Shard: shard.Config{Sources: "json:user_id,json:anonymous_id,ip"}})
	for _, c := range []struct{ body, want string }{
		{`{"user_id":"first","x":{"user_id":"nested"},"\u0075ser_id":"last"}`, "last"},
		{`{"user_id":{"id":1},"anonymous_id":-7}`, "-7"},
	} {
		status, resp := rawRequest(t, ts, fmt.Sprintf("POST /i HTTP/1.1\r\nHost: gw\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n\r\n%s", len(c.body), c.body))
		if status != 204 {
			t.Fatalf("status %d %q", status, resp)
		}
		keys, recs := ts.sink.take()
		if len(keys) != 1 || keys[0] != c.want || recs[0].ShardKey != c.want {
			t.Errorf("%s: keys %q, want %q", c.body, keys, c.want)
		}
	}
}
