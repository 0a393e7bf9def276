package ingest

import (
	"bytes"
	"compress/gzip"
	"encoding/base64"
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"google.golang.org/protobuf/proto"

	beaconv1 "github.com/beacongate/beacongate/proto/beacongate/v1"
	"github.com/beacongate/beacongate/shard"
)

func basicAuth(key string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(key+":"))
}

// payloadOf decodes a record's payload as JSON.
func payloadOf(t *testing.T, b *beaconv1.Beacon) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(b.Payload, &m); err != nil {
		t.Fatalf("payload %q is not JSON: %v", b.Payload, err)
	}
	return m
}

func wantSuccess(t *testing.T, r reply) {
	t.Helper()
	if r.status != 200 || r.body != `{"success":true}` || r.headers["Content-Type"] != "application/json" {
		t.Fatalf("answer %d %q (%s), want exactly 200 {\"success\":true}", r.status, r.body, r.headers["Content-Type"])
	}
}

// wantFailure checks Segment's error shape: {"success":false,"code","message"}.
func wantFailure(t *testing.T, r reply, status int, code string) {
	t.Helper()
	var m struct {
		Success *bool
		Code    string
		Message string
	}
	if err := json.Unmarshal([]byte(r.body), &m); err != nil {
		t.Fatalf("error body %q is not JSON: %v", r.body, err)
	}
	if r.status != status || m.Success == nil || *m.Success || m.Code != code || m.Message == "" {
		t.Fatalf("answer %d %q, want %d with code %q", r.status, r.body, status, code)
	}
}

// TestSegmentCalls sends each call type to its long and short path and
// checks every field of the record.
func TestSegmentCalls(t *testing.T) {
	ts := newTestServer(t, Config{GatewayID: "gw-1"})
	calls := []struct{ path, typ, body, key string }{
		{"/v1/track", "track", `{"userId":"u1","event":"Signed Up","properties":{"plan":"pro"},"messageId":"m1","timestamp":"2026-01-01T00:00:00.000Z"}`, "u1"},
		{"/v1/t", "track", `{"anonymousId":"a1","event":"Clicked","messageId":"m2","writeKey":"wk","sentAt":"2026-01-01T00:00:01.000Z"}`, "a1"},
		{"/v1/identify", "identify", `{"userId":"u2","traits":{"name":"Ann"},"messageId":"m3"}`, "u2"},
		{"/v1/i", "identify", `{"userId":7,"anonymousId":"a2","messageId":"m4"}`, "7"},
		{"/v1/page", "page", `{"anonymousId":"a3","name":"Home","messageId":"m5"}`, "a3"},
		{"/v1/p", "page", `{"anonymousId":"a3","messageId":"m6"}`, "a3"},
		{"/v1/screen", "screen", `{"userId":"u4","name":"Main","messageId":"m7"}`, "u4"},
		{"/v1/s", "screen", `{"userId":"u4","messageId":"m8"}`, "u4"},
		{"/v1/group", "group", `{"userId":"u5","groupId":"g1","messageId":"m9"}`, "u5"},
		{"/v1/g", "group", `{"anonymousId":"a5","groupId":"g2","messageId":"m10"}`, "a5"},
		{"/v1/alias", "alias", `{"userId":"u6","previousId":"a6","messageId":"m11"}`, "u6"},
		{"/v1/a", "alias", `{"userId":"u7","previousId":"a7","messageId":"m12","type":"track"}`, "u7"},
	}
	for _, c := range calls {
		// analytics.js sends text/plain; the SDKs application/json.
		wantSuccess(t, ts.do(t, "POST", c.path, "text/plain", c.body, "Authorization", basicAuth("wk")))
	}
	keys, recs := ts.sink.take()
	if len(recs) != len(calls) {
		t.Fatalf("%d records, want %d", len(recs), len(calls))
	}
	for i, c := range calls {
		b := recs[i]
		var sent map[string]any
		_ = json.Unmarshal([]byte(c.body), &sent)
		got := payloadOf(t, b)
		if b.Protocol != beaconv1.Protocol_PROTOCOL_SEGMENT || b.EventType != c.typ || b.EventId != sent["messageId"] ||
			b.Kind != beaconv1.Kind_KIND_BEACON || b.Path != c.path || b.Method != "POST" || b.GatewayId != "gw-1" ||
			b.ShardKey != c.key || keys[i] != c.key || b.Site != "" || b.BatchIndex != 0 {
			t.Errorf("%s: record %v (key %q)", c.path, b, keys[i])
		}
		// The payload is the event as sent, with the path's type, without
		// the write key, plus the gateway's receivedAt.
		want := map[string]any{}
		for k, v := range sent {
			want[k] = v
		}
		delete(want, "writeKey")
		want["type"] = c.typ
		ra, err := time.Parse(time.RFC3339Nano, got["receivedAt"].(string))
		if err != nil || ra.UnixMicro()/1000 != b.ReceivedAtUs/1000 {
			t.Errorf("%s: receivedAt %v, record received_at_us %d", c.path, got["receivedAt"], b.ReceivedAtUs)
		}
		delete(got, "receivedAt")
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s: payload %s, want %v", c.path, b.Payload, want)
		}
		if bytes.Contains(b.Payload, []byte("wk")) {
			t.Errorf("%s: write key in the payload %s", c.path, b.Payload)
		}
	}
}

// TestSegmentBatch: one record per element, the batch's context and
// integrations merged into each (the event's own members win), sentAt
// carried over, batch_index set, a gzip body (analytics-python) read.
func TestSegmentBatch(t *testing.T) {
	ts := newTestServer(t, Config{})
	body := `{"batch":[
	  {"type":"identify","userId":"u1","traits":{"a":1},"messageId":"b1","timestamp":"2026-01-01T00:00:00Z"},
	  {"type":"track","userId":"u1","event":"E","context":{"ip":"1.2.3.4","library":{"name":"own"}},"integrations":{"All":false},"messageId":"b2","sentAt":"own"},
	  {"type":"page","anonymousId":"a9","messageId":"b3","context":null}
	 ],"context":{"library":{"name":"analytics-go","version":"3.3.0"},"locale":"en"},"integrations":{"Mixpanel":false},
	 "sentAt":"2026-01-01T00:00:05Z","messageId":"batch-id","writeKey":"secret"}`
	var gz bytes.Buffer
	w := gzip.NewWriter(&gz)
	_, _ = w.Write([]byte(body))
	_ = w.Close()
	wantSuccess(t, ts.do(t, "POST", "/v1/batch", "application/json", gz.String(), "Content-Encoding", "gzip"))
	_, recs := ts.sink.take()
	if len(recs) != 3 {
		t.Fatalf("%d records, want 3", len(recs))
	}
	lib := map[string]any{"name": "analytics-go", "version": "3.3.0"}
	wants := []map[string]any{
		{"type": "identify", "userId": "u1", "traits": map[string]any{"a": 1.0}, "messageId": "b1", "timestamp": "2026-01-01T00:00:00Z",
			"context": map[string]any{"library": lib, "locale": "en"}, "integrations": map[string]any{"Mixpanel": false}, "sentAt": "2026-01-01T00:00:05Z"},
		{"type": "track", "userId": "u1", "event": "E", "messageId": "b2", "sentAt": "own",
			"context":      map[string]any{"ip": "1.2.3.4", "library": map[string]any{"name": "own"}, "locale": "en"},
			"integrations": map[string]any{"All": false, "Mixpanel": false}},
		{"type": "page", "anonymousId": "a9", "messageId": "b3", "sentAt": "2026-01-01T00:00:05Z",
			"context": map[string]any{"library": lib, "locale": "en"}, "integrations": map[string]any{"Mixpanel": false}},
	}
	types := []string{"identify", "track", "page"}
	for i, b := range recs {
		got := payloadOf(t, b)
		delete(got, "receivedAt")
		if !reflect.DeepEqual(got, wants[i]) {
			t.Errorf("event %d: payload %s\nwant %v", i, b.Payload, wants[i])
		}
		if b.Kind != beaconv1.Kind_KIND_BATCH_EVENT || b.BatchIndex != uint32(i) || b.EventType != types[i] ||
			b.EventId != wants[i]["messageId"] || b.Protocol != beaconv1.Protocol_PROTOCOL_SEGMENT {
			t.Errorf("event %d: record %v", i, b)
		}
		if bytes.Contains(b.Payload, []byte("secret")) || bytes.Contains(b.Payload, []byte("batch-id")) {
			t.Errorf("event %d: batch-level writeKey or messageId in %s", i, b.Payload)
		}
	}
	if recs[0].ShardKey != "u1" || recs[1].ShardKey != "u1" || recs[2].ShardKey != "a9" {
		t.Errorf("keys %q %q %q", recs[0].ShardKey, recs[1].ShardKey, recs[2].ShardKey)
	}
}

// TestSegmentWriteKeys: with an allow-list, the key (Basic auth user name
// or body writeKey) names the site; it is never recorded; a wrong or
// missing key is 401 and produces nothing.
func TestSegmentWriteKeys(t *testing.T) {
	ts := newTestServer(t, Config{Sites: map[string]string{"shop": "k-shop-1", "blog": ""}})
	ev := `{"userId":"u1","event":"E","messageId":"m"}`
	wantSuccess(t, ts.do(t, "POST", "/v1/track", "application/json", ev, "Authorization", basicAuth("k-shop-1")))
	wantSuccess(t, ts.do(t, "POST", "/v1/t", "text/plain", `{"userId":"u1","event":"E","writeKey":"k-shop-1"}`))
	wantSuccess(t, ts.do(t, "POST", "/v1/b", "text/plain", `{"batch":[{"type":"track",`+ev[1:]+`],"writeKey":"blog"}`))
	// The user name alone counts (a password, if any, is ignored).
	wantSuccess(t, ts.do(t, "POST", "/v1/track", "application/json", ev, "Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte("k-shop-1:x"))))
	_, recs := ts.sink.take()
	sites := []string{"shop", "shop", "blog", "shop"}
	if len(recs) != len(sites) {
		t.Fatalf("%d records, want %d", len(recs), len(sites))
	}
	for i, b := range recs {
		raw, _ := proto.Marshal(b)
		if b.Site != sites[i] || bytes.Contains(raw, []byte("k-shop-1")) {
			t.Errorf("record %d: site %q (want %q), key in record: %v", i, b.Site, sites[i], bytes.Contains(raw, []byte("k-shop-1")))
		}
	}
	before := testutil.ToFloat64(eventsRejected.WithLabelValues("bad_write_key"))
	wantFailure(t, ts.do(t, "POST", "/v1/track", "application/json", ev, "Authorization", basicAuth("k-shop-2")), 401, "bad_write_key")
	wantFailure(t, ts.do(t, "POST", "/v1/track", "application/json", ev), 401, "bad_write_key")
	wantFailure(t, ts.do(t, "POST", "/v1/batch", "application/json", `{"batch":[`+ev+`],"writeKey":"shop"}`), 401, "bad_write_key")
	wantFailure(t, ts.do(t, "POST", "/v1/track", "application/json", ev, "Authorization", "Bearer x"), 401, "bad_authorization")
	if got := testutil.ToFloat64(eventsRejected.WithLabelValues("bad_write_key")) - before; got != 3 {
		t.Errorf("bad_write_key counted %v times, want 3", got)
	}
	if _, recs := ts.sink.take(); len(recs) != 0 {
		t.Errorf("%d records from refused requests", len(recs))
	}
	r := ts.do(t, "GET", "/v1/projects/k-shop-1/settings", "", "")
	var set struct {
		Integrations map[string]struct{ APIKey, APIHost, Protocol string } `json:"integrations"`
	}
	if err := json.Unmarshal([]byte(r.body), &set); err != nil || r.status != 200 {
		t.Fatalf("settings: %d %q: %v", r.status, r.body, err)
	}
	if s := set.Integrations["Segment.io"]; s.APIHost != "gw.test/v1" || s.Protocol != "http" || len(set.Integrations) != 1 {
		t.Errorf("settings %s", r.body)
	}
	wantFailure(t, ts.do(t, "GET", "/v1/projects/nope/settings", "", ""), 401, "bad_write_key")
}

// TestSegmentBadInput: each bad input gets its status, Segment's error
// shape and a counter; a batch with one bad event records the others.
func TestSegmentBadInput(t *testing.T) {
	ts := newTestServer(t, Config{})
	cases := []struct {
		name, path, body string
		status           int
		code             string
	}{
		{"invalid JSON", "/v1/track", `{"userId":"u1",`, 400, "invalid_json"},
		{"not an object", "/v1/track", `[1]`, 400, "not_object"},
		{"no user", "/v1/track", `{"event":"E"}`, 400, "missing_user_id"},
		{"empty user", "/v1/identify", `{"userId":""}`, 400, "missing_user_id"},
		{"no event", "/v1/track", `{"userId":"u"}`, 400, "missing_event"},
		{"event not a string", "/v1/track", `{"userId":"u","event":3}`, 400, "missing_event"},
		{"no group", "/v1/group", `{"userId":"u"}`, 400, "missing_group_id"},
		{"no previous", "/v1/alias", `{"userId":"u"}`, 400, "missing_previous_id"},
		{"event over 32 KB", "/v1/track", `{"userId":"u","event":"E","p":"` + strings.Repeat("x", 32<<10) + `"}`, 413, "event_too_large"},
		{"body over 500 KB", "/v1/batch", `{"batch":[],"p":"` + strings.Repeat("x", 500<<10) + `"}`, 413, "body_too_large"},
		{"no batch", "/v1/batch", `{"events":[]}`, 400, "missing_batch"},
		{"batch not an array", "/v1/batch", `{"batch":{}}`, 400, "missing_batch"},
		{"all events bad", "/v1/batch", `{"batch":[{"type":"track","userId":"u"},{"type":"nope","userId":"u"}]}`, 400, "missing_event"},
		{"empty", "/v1/track", ``, 400, "empty"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			before := testutil.ToFloat64(eventsRejected.WithLabelValues(c.code))
			wantFailure(t, ts.do(t, "POST", c.path, "application/json", c.body), c.status, c.code)
			if testutil.ToFloat64(eventsRejected.WithLabelValues(c.code)) == before {
				t.Errorf("reason %s not counted", c.code)
			}
		})
	}
	if _, recs := ts.sink.take(); len(recs) != 0 {
		t.Fatalf("%d records from bad input", len(recs))
	}

	// One bad event among good ones: the good ones are recorded, the
	// answer is still Segment's success (no SDK retries it), the bad one
	// is counted and numbered in X-Beacon-Rejected.
	before := testutil.ToFloat64(eventsRejected.WithLabelValues("unknown_call_type"))
	r := ts.do(t, "POST", "/v1/batch", "application/json",
		`{"batch":[{"type":"track","userId":"u","event":"A","messageId":"1"},{"type":"bogus","userId":"u"},{"type":"track","userId":"u","event":"B","messageId":"3"}]}`)
	wantSuccess(t, r)
	if r.headers["X-Beacon-Rejected"] != "1" {
		t.Errorf("X-Beacon-Rejected %q, want 1", r.headers["X-Beacon-Rejected"])
	}
	if got := testutil.ToFloat64(eventsRejected.WithLabelValues("unknown_call_type")) - before; got != 1 {
		t.Errorf("unknown_call_type counted %v times, want 1", got)
	}
	_, recs := ts.sink.take()
	if len(recs) != 2 || recs[0].EventId != "1" || recs[1].EventId != "3" || recs[1].BatchIndex != 2 {
		t.Fatalf("records %v, want the events 1 and 3", recs)
	}
	// Unknown paths and methods keep Segment's error shape.
	wantFailure(t, ts.do(t, "POST", "/v1/nope", "application/json", `{}`), 404, "not_found")
	wantFailure(t, ts.do(t, "GET", "/v1/track", "", ""), 405, "method_not_allowed")
}

// TestSegmentRateLimit: 429 with Retry-After and X-RateLimit-Reset, which
// the SDKs read before they retry.
func TestSegmentRateLimit(t *testing.T) {
	ts := newTestServer(t, Config{RateLimitPerIP: 0.5, RateBurstPerIP: 1})
	ev := `{"userId":"u1","event":"E"}`
	wantSuccess(t, ts.do(t, "POST", "/v1/track", "application/json", ev))
	r := ts.do(t, "POST", "/v1/track", "application/json", ev)
	wantFailure(t, r, 429, "rate_limited")
	if r.headers["Retry-After"] != "2" || r.headers["X-Ratelimit-Reset"] != "2" {
		t.Fatalf("headers %v, want Retry-After and X-RateLimit-Reset 2", r.headers)
	}
}

// TestSegmentPreflight: analytics.js' CORS preflight from another origin.
func TestSegmentPreflight(t *testing.T) {
	ts := newTestServer(t, Config{})
	r := ts.do(t, "OPTIONS", "/v1/t", "", "", "Origin", "https://shop.example", "Access-Control-Request-Method", "POST")
	if r.status != 204 || r.headers["Access-Control-Allow-Origin"] != "*" ||
		!strings.Contains(r.headers["Access-Control-Allow-Headers"], "Authorization") ||
		!strings.Contains(r.headers["Access-Control-Allow-Headers"], "X-Retry-Count") {
		t.Fatalf("preflight %d %v", r.status, r.headers)
	}
	r = ts.do(t, "POST", "/v1/t", "text/plain", `{"userId":"u","event":"E"}`, "Origin", "https://shop.example")
	if r.status != 200 || r.headers["Access-Control-Allow-Origin"] != "*" {
		t.Fatalf("CORS answer %d %v", r.status, r.headers)
	}
}

// TestSegmentOptOut: an opted-out request keeps its event but loses its
// identifiers, its IP and its key.
func TestSegmentOptOut(t *testing.T) {
	ts := newTestServer(t, Config{})
	wantSuccess(t, ts.do(t, "POST", "/v1/track", "application/json", `{"userId":"u1","anonymousId":"a1","event":"E","messageId":"m"}`, "X-Beacon-Opt-Out", "1"))
	_, recs := ts.sink.take()
	if len(recs) != 1 {
		t.Fatalf("%d records", len(recs))
	}
	got := payloadOf(t, recs[0])
	if _, ok := got["userId"]; ok || got["anonymousId"] != nil || got["event"] != "E" || recs[0].ShardKey != "" || len(recs[0].ClientIp) != 0 {
		t.Fatalf("opted-out record %v", recs[0])
	}
}

// TestSegmentShardPrefix: with -shard.prefix query:sid, a Segment record's
// key is prefixed with the site its write key mapped to, as the snippet's
// are with their sid.
func TestSegmentShardPrefix(t *testing.T) {
	ts := newTestServer(t, Config{Sites: map[string]string{"shop": "k1"}, Shard: shard.Config{Prefix: "query:sid"}})
	wantSuccess(t, ts.do(t, "POST", "/v1/track", "application/json", `{"userId":"u1","event":"E"}`, "Authorization", basicAuth("k1")))
	wantSuccess(t, ts.do(t, "POST", "/v1/page", "application/json", `{"anonymousId":"a1"}`, "Authorization", basicAuth("k1")))
	keys, recs := ts.sink.take()
	if len(recs) != 2 || keys[0] != "shop:u1" || keys[1] != "shop:a1" || recs[0].ShardKey != "shop:u1" {
		t.Fatalf("keys %q, want shop:u1 and shop:a1", keys)
	}
}
