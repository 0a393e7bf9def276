package ingest

import (
	"encoding/base64"
	"fmt"
	"net"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/zap"

	beaconv1 "github.com/beacongate/beacongate/proto/beacongate/v1"
)

const spSchema = `"iglu:com.snowplowanalytics.snowplow/payload_data/jsonschema/1-0-4"`

func spBody(events ...string) string {
	return `{"schema":` + spSchema + `,"data":[` + strings.Join(events, ",") + `]}`
}

func TestSnowplowGET(t *testing.T) {
	ts := newTestServer(t, Config{GatewayID: "gw-1", IdentityCookie: "sp"})
	ue := `{"schema":"iglu:com.snowplowanalytics.snowplow/unstruct_event/jsonschema/1-0-0","data":{"schema":"iglu:com.acme/x/jsonschema/1-0-0","data":{"k":"v"}}}`
	q := "e=ue&p=web&tv=js-3.23.0&eid=11111111-2222&aid=shop&duid=d1&ue_px=" + base64.RawURLEncoding.EncodeToString([]byte(ue))
	for _, path := range []string{"/i", "/ice.png"} {
		r := ts.do(t, "GET", path+"?"+q, "", "")
		if r.status != 200 || r.body != string(transparentGIF) || r.headers["Cache-Control"] != "no-cache, no-store, must-revalidate" || r.headers["Content-Type"] != "image/gif" {
			t.Fatalf("%s: %d %q %v", path, r.status, r.body, r.headers)
		}
		if !strings.HasPrefix(r.headers["Set-Cookie"], "sp=") {
			t.Errorf("%s: no network user id cookie: %v", path, r.headers)
		}
		keys, recs := ts.sink.take()
		if len(recs) != 1 {
			t.Fatalf("%s: %d records", path, len(recs))
		}
		b := recs[0]
		if b.Protocol != beaconv1.Protocol_PROTOCOL_SNOWPLOW || b.Kind != beaconv1.Kind_KIND_PIXEL || b.EventType != "ue" || b.EventId != "11111111-2222" ||
			b.Site != "shop" || b.Path != path || len(b.NetworkUserId) != 32 || keys[0] != "d1" || b.ShardKey != "d1" {
			t.Errorf("%s: record %v key %q", path, b, keys[0])
		}
		if got, want := paramsOf(b), "e=ue&p=web&tv=js-3.23.0&eid=11111111-2222&aid=shop&duid=d1&ue_pr="+ue; got != want {
			t.Errorf("%s: params\n got %s\nwant %s", path, got, want)
		}
	}
	// Trackers GET with fetch and credentials: the origin, credentials.
	r := ts.do(t, "GET", "/i?"+q, "", "", "Origin", "https://shop.example")
	if r.headers["Access-Control-Allow-Origin"] != "https://shop.example" || r.headers["Access-Control-Allow-Credentials"] != "true" {
		t.Errorf("GET /i CORS: %v", r.headers)
	}
	r = ts.do(t, "OPTIONS", "/i", "", "", "Origin", "https://shop.example", "Access-Control-Request-Method", "GET", "Access-Control-Request-Headers", "SP-Anonymous")
	if r.status != 204 || r.headers["Access-Control-Allow-Origin"] != "https://shop.example" || r.headers["Access-Control-Allow-Credentials"] != "true" || r.headers["Access-Control-Allow-Headers"] != "Content-Type, SP-Anonymous" {
		t.Errorf("OPTIONS /i with SP-Anonymous: %d %v", r.status, r.headers)
	}
	ts.sink.take()
	// Without e, p and tv it stays beacongate's own pixel, CORS included.
	if r := ts.do(t, "GET", "/i?uid=u1", "", "", "Origin", "https://shop.example"); r.headers["Access-Control-Allow-Origin"] != "*" || r.headers["Access-Control-Allow-Credentials"] != "" {
		t.Errorf("plain pixel CORS: %v", r.headers)
	}
	ts.sink.take()
	r = ts.do(t, "GET", "/ice.png?uid=u1&e=pv", "", "")
	_, recs := ts.sink.take()
	if r.status != 200 || r.headers["Cache-Control"] != "no-store, max-age=0" || len(recs) != 1 || recs[0].Protocol != 0 || recs[0].EventType != "" {
		t.Errorf("plain pixel: %d %v %v", r.status, r.headers, recs)
	}
	// Bad base64 is a 400 with its reason, and nothing is recorded.
	r = ts.do(t, "GET", "/i?e=ue&p=web&tv=1&ue_px=%21%21", "", "")
	if _, recs := ts.sink.take(); r.status != 400 || !strings.HasPrefix(r.body, "bad_base64: ") || len(recs) != 0 {
		t.Errorf("bad base64: %d %q %d records", r.status, r.body, len(recs))
	}
	// Shard key order: uid, duid, network user id, IP.
	ts.do(t, "GET", "/i?e=pv&p=web&tv=1&uid=u9&duid=d9", "", "")
	ts.do(t, "GET", "/i?e=pv&p=web&tv=1", "", "", "Cookie", "sp=0123456789abcdef0123456789abcdef")
	keys, _ := ts.sink.take()
	if len(keys) != 2 || keys[0] != "u9" || keys[1] != "0123456789abcdef0123456789abcdef" {
		t.Errorf("keys %q", keys)
	}
	// A Snowplow collector's sp cookie (a UUID) is kept: browsers keep
	// their network user id when a site moves to the gateway.
	const uuid = "c2d2b6c1-5f2b-4c4e-9f3e-1f2e3d4c5b6a"
	r = ts.do(t, "GET", "/i?e=pv&p=web&tv=1", "", "", "Cookie", "sp="+uuid)
	keys, recs = ts.sink.take()
	if len(recs) != 1 || recs[0].NetworkUserId != uuid || keys[0] != uuid || !strings.HasPrefix(r.headers["Set-Cookie"], "sp="+uuid+";") {
		t.Errorf("collector cookie: %v key %q set-cookie %q", recs, keys, r.headers["Set-Cookie"])
	}
	for _, bad := range []string{"C2D2B6C1-5F2B-4C4E-9F3E-1F2E3D4C5B6A", "c2d2b6c1x5f2b-4c4e-9f3e-1f2e3d4c5b6a", "c2d2b6c1-5f2b-4c4e-9f3e-1f2e3d4c5b6"} {
		ts.do(t, "GET", "/i?e=pv&p=web&tv=1", "", "", "Cookie", "sp="+bad)
		if _, recs := ts.sink.take(); len(recs) != 1 || recs[0].NetworkUserId == bad || len(recs[0].NetworkUserId) != 32 {
			t.Errorf("cookie %q: network_user_id %q, want a new id", bad, recs[0].NetworkUserId)
		}
	}
}

func TestSnowplowAnonymous(t *testing.T) {
	ts := newTestServer(t, Config{IdentityCookie: "sp"})
	for _, req := range []func() reply{
		func() reply {
			return ts.do(t, "GET", "/i?e=pv&p=web&tv=1", "", "", "SP-Anonymous", "*", "Cookie", "sp=0123456789abcdef0123456789abcdef")
		},
		func() reply {
			return ts.do(t, "POST", "/com.snowplowanalytics.snowplow/tp2", "application/json", spBody(`{"e":"pv","p":"web","tv":"1"}`), "SP-Anonymous", "*")
		},
	} {
		r := req()
		keys, recs := ts.sink.take()
		if r.status != 200 || r.headers["Set-Cookie"] != "" || len(recs) != 1 {
			t.Fatalf("%d %v %d records", r.status, r.headers, len(recs))
		}
		if b := recs[0]; len(b.ClientIp) != 0 || b.NetworkUserId != "" || keys[0] != "" || b.Protocol != beaconv1.Protocol_PROTOCOL_SNOWPLOW {
			t.Errorf("anonymous record kept identifiers: %v key %q", b, keys[0])
		}
	}
	// The IP is the key of last resort otherwise.
	ts.do(t, "POST", "/com.snowplowanalytics.snowplow/tp2", "application/json", spBody(`{"e":"pv","p":"web","tv":"1"}`))
	keys, recs := ts.sink.take()
	if len(recs) != 1 || len(recs[0].ClientIp) != 4 || recs[0].NetworkUserId == "" || keys[0] != recs[0].NetworkUserId {
		t.Errorf("not anonymous: %v key %q", recs, keys)
	}
}

// TestSnowplowOptOut: an opted-out request keeps none of Snowplow's
// identifiers, GET or POST, and no IP.
func TestSnowplowOptOut(t *testing.T) {
	ts := newTestServer(t, Config{IdentityCookie: "sp", IDParams: []string{"uid"}})
	ev := "e=pv&p=web&tv=1&eid=e1&aid=shop&uid=u1&duid=d1&sid=s1&nuid=n1&tnuid=t1&ip=1.2.3.4&fp=123&url=x"
	ts.do(t, "GET", "/i?"+ev, "", "", "X-Beacon-Opt-Out", "1")
	ts.do(t, "POST", "/com.snowplowanalytics.snowplow/tp2", "application/json",
		spBody(`{"e":"pv","p":"web","tv":"1","eid":"e1","aid":"shop","uid":"u1","duid":"d1","sid":"s1","nuid":"n1","tnuid":"t1","ip":"1.2.3.4","fp":"123","url":"x"}`),
		"X-Beacon-Opt-Out", "1")
	keys, recs := ts.sink.take()
	if len(recs) != 2 {
		t.Fatalf("%d records", len(recs))
	}
	for i, b := range recs {
		if got := paramsOf(b); got != "e=pv&p=web&tv=1&eid=e1&aid=shop&url=x" || len(b.ClientIp) != 0 || b.NetworkUserId != "" || keys[i] != "" ||
			b.Site != "shop" || b.EventId != "e1" {
			t.Errorf("record %d: params %s ip %v nuid %q key %q site %q", i, got, b.ClientIp, b.NetworkUserId, keys[i], b.Site)
		}
	}
}

func TestSnowplowTP2(t *testing.T) {
	ts := newTestServer(t, Config{GatewayID: "gw-1", SnowplowPaths: []string{"/com.acme/track"}})
	co := `{"schema":"iglu:com.snowplowanalytics.snowplow/contexts/jsonschema/1-0-1","data":[{"schema":"iglu:com.acme/c/jsonschema/1-0-0","data":{"a":1}}]}`
	evs := []string{
		`{"e":"pv","p":"web","tv":"js-3","eid":"e-0","aid":"shop","uid":"u1","url":"https://shop.example/?a=1&b=\u00e9","stm":"1765000000100"}`,
		`{"e":"se","p":"web","tv":"js-3","eid":"e-1","aid":"shop","duid":"d2","se_ca":"cat","se_ac":"act","cx":"` + base64.URLEncoding.EncodeToString([]byte(co)) + `"}`,
	}
	for _, path := range []string{"/com.snowplowanalytics.snowplow/tp2", "/com.acme/track"} {
		r := ts.do(t, "POST", path, "application/json; charset=UTF-8", spBody(evs...), "Origin", "https://shop.example")
		if r.status != 200 || r.body != "ok" || r.headers["Access-Control-Allow-Origin"] != "https://shop.example" || r.headers["Access-Control-Allow-Credentials"] != "true" {
			t.Fatalf("%s: %d %q %v", path, r.status, r.body, r.headers)
		}
		keys, recs := ts.sink.take()
		if len(recs) != 2 || keys[0] != "u1" || keys[1] != "d2" {
			t.Fatalf("%s: %d records, keys %q", path, len(recs), keys)
		}
		for i, b := range recs {
			if b.Protocol != beaconv1.Protocol_PROTOCOL_SNOWPLOW || b.Kind != beaconv1.Kind_KIND_BATCH_EVENT || b.BatchIndex != uint32(i) ||
				b.EventId != fmt.Sprintf("e-%d", i) || b.Site != "shop" || b.Path != path || len(b.Payload) != 0 || b.GatewayId != "gw-1" {
				t.Errorf("%s: record %d: %v", path, i, b)
			}
		}
		if recs[0].EventType != "pv" || paramsOf(recs[0]) != "e=pv&p=web&tv=js-3&eid=e-0&aid=shop&uid=u1&url=https://shop.example/?a=1&b=é&stm=1765000000100" {
			t.Errorf("%s: first: %s %s", path, recs[0].EventType, paramsOf(recs[0]))
		}
		if recs[1].EventType != "se" || paramsOf(recs[1]) != "e=se&p=web&tv=js-3&eid=e-1&aid=shop&duid=d2&se_ca=cat&se_ac=act&co="+co {
			t.Errorf("%s: second: %s %s", path, recs[1].EventType, paramsOf(recs[1]))
		}
	}
	// Preflight: the tracker's headers, the origin, credentials.
	r := ts.do(t, "OPTIONS", "/com.snowplowanalytics.snowplow/tp2", "", "", "Origin", "https://shop.example",
		"Access-Control-Request-Method", "POST", "Access-Control-Request-Headers", "content-type,sp-anonymous")
	if r.status != 204 || r.headers["Access-Control-Allow-Headers"] != "Content-Type, SP-Anonymous" || r.headers["Access-Control-Allow-Origin"] != "https://shop.example" ||
		r.headers["Access-Control-Allow-Credentials"] != "true" || !strings.Contains(r.headers["Access-Control-Allow-Methods"], "POST") {
		t.Errorf("preflight: %d %v", r.status, r.headers)
	}
	// The collector's health check.
	if r := ts.do(t, "GET", "/health", "", ""); r.status != 200 || r.body != "OK" {
		t.Errorf("/health: %d %q", r.status, r.body)
	}
	if r := ts.do(t, "GET", "/com.snowplowanalytics.snowplow/tp2", "", ""); r.status != 405 {
		t.Errorf("GET tp2: %d", r.status)
	}
}

func TestSnowplowTP2Rejections(t *testing.T) {
	ts := newTestServer(t, Config{})
	good := `{"e":"pv","p":"web","tv":"1","uid":"u1"}`
	before := func(reason string) float64 { return testutil.ToFloat64(eventsRejected.WithLabelValues(reason)) }
	for _, tc := range []struct {
		name, ct, body string
		status         int
		reason         string
		recorded       int
	}{
		{"invalid json", "application/json", `{"schema":`, 400, "invalid_json", 0},
		{"not payload_data", "application/json", `[` + good + `]`, 400, "not_payload_data", 0},
		{"no events", "application/json", spBody(), 400, "empty", 0},
		{"form body", "application/x-www-form-urlencoded", spBody(good), 415, "unsupported_content_type", 0},
		{"one bad event", "text/plain", spBody(good, `{"e":"pv"}`, good), 400, "missing_tracker_field", 2},
		{"object value", "text/plain", spBody(`{"e":"pv","p":"web","tv":"1","x":{}}`), 400, "not_string", 0},
		{"bad base64", "application/json", spBody(`{"e":"ue","p":"web","tv":"1","ue_px":"%%"}`, good), 400, "bad_base64", 1},
	} {
		n := before(tc.reason)
		r := ts.do(t, "POST", "/com.snowplowanalytics.snowplow/tp2", tc.ct, tc.body)
		_, recs := ts.sink.take()
		if r.status != tc.status || !strings.HasPrefix(r.body, tc.reason+": ") || len(recs) != tc.recorded {
			t.Errorf("%s: %d %q, %d records; want %d %s, %d records", tc.name, r.status, r.body, len(recs), tc.status, tc.reason, tc.recorded)
		}
		if got := before(tc.reason); got != n+1 {
			t.Errorf("%s: rejection counter %s went from %v to %v", tc.name, tc.reason, n, got)
		}
	}
	if err := (Config{SnowplowPaths: []string{"/i"}}).Validate(); err == nil {
		t.Error("a snowplow path on /i was accepted")
	}
	if err := (Config{SnowplowPaths: []string{"tp2"}}).Validate(); err == nil {
		t.Error("a relative snowplow path was accepted")
	}
}

// TestSnowplowQueueFull: a tp2 body Kafka cannot take is a 503 with
// Retry-After, which trackers retry.
func TestSnowplowQueueFull(t *testing.T) {
	ts := newTestServerWith(t, Config{}, &fullSink{}, nil)
	r := ts.do(t, "POST", "/com.snowplowanalytics.snowplow/tp2", "application/json", spBody(`{"e":"pv","p":"web","tv":"1"}`))
	if r.status != 503 || r.headers["Retry-After"] != "1" {
		t.Errorf("%d %v %q", r.status, r.headers, r.body)
	}
}

var spBenchRequests = func() []benchRequest {
	ue := base64.RawURLEncoding.EncodeToString([]byte(`{"schema":"iglu:com.snowplowanalytics.snowplow/unstruct_event/jsonschema/1-0-0","data":{"schema":"iglu:com.acme/click/jsonschema/1-0-0","data":{"target":"buy"}}}`))
	q := "e=pv&url=https%3A%2F%2Fshop.example%2Fp%2F1&page=Product&tv=js-3.23.0&tna=sp&aid=shop&p=web&tz=Europe%2FBerlin&lang=en-US&cs=UTF-8&res=1920x1080&cd=24&cookie=1" +
		"&eid=2d2b6c1c-5f2b-4c4e-9f3e-1f2e3d4c5b6a&dtm=1765000000000&vp=1280x720&ds=1280x4000&vid=1&sid=9c1f2d2b-6c1c-5f2b-4c4e-9f3e1f2e3d4c&duid=9c1f2d2b-aaaa&stm=1765000000100"
	pixel := "GET /i?" + q + " HTTP/1.1\r\nHost: t.example.com\r\nUser-Agent: " + benchUA + "\r\nReferer: https://shop.example/p/1\r\n\r\n"
	one := `{"e":"ue","p":"web","tv":"js-3.23.0","eid":"2d2b6c1c-5f2b-4c4e-9f3e-1f2e3d4c5b6a","aid":"shop","uid":"user-%d","duid":"9c1f","dtm":"1765000000000","stm":"1765000000100","url":"https://shop.example/p/1","ue_px":"` + ue + `"}`
	evs := make([]string, 10)
	for i := range evs {
		evs[i] = fmt.Sprintf(one, i)
	}
	body := spBody(evs...)
	tp2 := fmt.Sprintf("POST /com.snowplowanalytics.snowplow/tp2 HTTP/1.1\r\nHost: t.example.com\r\nUser-Agent: %s\r\nOrigin: https://shop.example\r\nContent-Type: application/json; charset=UTF-8\r\nContent-Length: %d\r\n\r\n%s", benchUA, len(body), body)
	return []benchRequest{
		{"snowplow_get", []byte(pixel), 200, 1},
		{"snowplow_tp2_10", []byte(tp2), 200, 10},
	}
}()

// BenchmarkSnowplow measures a tracker's GET and a tp2 POST of 10
// self-describing events, request to enqueued records.
func BenchmarkSnowplow(b *testing.B) {
	for _, c := range spBenchRequests {
		b.Run(c.name, func(b *testing.B) {
			s, err := New(Config{}, discardSink{}, nil, zap.NewNop())
			if err != nil {
				b.Fatal(err)
			}
			r := newReplayer(s, net.IPv4(198, 51, 100, 7))
			b.ReportAllocs()
			b.SetBytes(int64(len(c.raw)))
			for b.Loop() {
				if st, err := r.serve(c.raw); err != nil || st != c.status {
					b.Fatalf("status %d (%v): %s", st, err, r.body())
				}
			}
			b.ReportMetric(float64(c.events), "events/op")
		})
	}
}

// TestSnowplowSites: with an allow-list, a Snowplow event names its site
// in aid (its sid is a session id), GET or POST, with the write key in
// X-Beacon-Key for a site that has one; beacongate's own pixel still
// names it in sid.
func TestSnowplowSites(t *testing.T) {
	ts := newTestServer(t, Config{Sites: map[string]string{"shop": "", "srv": "k1"}})
	for _, tc := range []struct {
		name, query string
		hdr         []string
		status      int
		body        string
	}{
		{"listed aid", "e=pv&p=web&tv=1&aid=shop&sid=9c1f-session", nil, 200, ""},
		{"unlisted aid", "e=pv&p=web&tv=1&aid=other&sid=shop", nil, 403, "unknown_site: the aid (Snowplow application id) names no site"},
		{"no aid", "e=pv&p=web&tv=1", nil, 403, "unknown_site: "},
		{"keyed aid without key", "e=pv&p=srv&tv=1&aid=srv", nil, 403, "bad_write_key: "},
		{"keyed aid with key", "e=pv&p=srv&tv=1&aid=srv", []string{"X-Beacon-Key", "k1"}, 200, ""},
		{"own pixel by sid", "sid=shop&uid=u1", nil, 200, ""},
	} {
		r := ts.do(t, "GET", "/i?"+tc.query, "", "", tc.hdr...)
		_, recs := ts.sink.take()
		if r.status != tc.status || !strings.HasPrefix(r.body, tc.body) || (tc.status == 200) != (len(recs) == 1) {
			t.Errorf("GET %s: %d %q, %d records", tc.name, r.status, r.body, len(recs))
		}
	}
	body := spBody(`{"e":"pv","p":"web","tv":"1","aid":"shop","sid":"s"}`, `{"e":"pv","p":"web","tv":"1","aid":"other"}`, `{"e":"pv","p":"srv","tv":"1","aid":"srv"}`)
	r := ts.do(t, "POST", "/com.snowplowanalytics.snowplow/tp2", "application/json", body)
	_, recs := ts.sink.take()
	if r.status != 403 || !strings.HasPrefix(r.body, "unknown_site: 2 of 3 events rejected") || len(recs) != 1 || recs[0].Site != "shop" {
		t.Errorf("tp2 without key: %d %q, %d records", r.status, r.body, len(recs))
	}
	r = ts.do(t, "POST", "/com.snowplowanalytics.snowplow/tp2", "application/json", body, "X-Beacon-Key", "k1")
	_, recs = ts.sink.take()
	if r.status != 403 || !strings.HasPrefix(r.body, "unknown_site: 1 of 3 events rejected") || len(recs) != 2 || recs[1].Site != "srv" {
		t.Errorf("tp2 with key: %d %q, %d records", r.status, r.body, len(recs))
	}
	// Opt-out removes aid (a default -privacy.id-params) from the record,
	// after the allow-list read it.
	r = ts.do(t, "POST", "/com.snowplowanalytics.snowplow/tp2", "application/json", spBody(`{"e":"pv","p":"web","tv":"1","aid":"shop"}`), "X-Beacon-Opt-Out", "1")
	_, recs = ts.sink.take()
	if r.status != 200 || len(recs) != 1 || recs[0].Site != "" {
		t.Errorf("opted out: %d %q, %v", r.status, r.body, recs)
	}
	r = ts.do(t, "GET", "/i?e=pv&p=web&tv=1&aid=shop", "", "", "X-Beacon-Opt-Out", "1")
	if _, recs = ts.sink.take(); r.status != 200 || len(recs) != 1 || recs[0].Site != "" {
		t.Errorf("opted out GET: %d %q, %v", r.status, r.body, recs)
	}
}
