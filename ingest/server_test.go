package ingest

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"github.com/beacongate/beacongate/internal/kafka/relay"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/fasthttputil"
	"go.uber.org/zap"
	"google.golang.org/protobuf/proto"

	"github.com/beacongate/beacongate/ingest/event"
	"github.com/beacongate/beacongate/ingest/form"
	"github.com/beacongate/beacongate/internal/status"
	beaconv1 "github.com/beacongate/beacongate/proto/beacongate/v1"
	"github.com/beacongate/beacongate/shard"
)

// recordingSink decodes every record with the generated type, as a
// consumer would, and keeps it.
type recordingSink struct {
	mu      sync.Mutex
	keys    []string
	records []*beaconv1.Beacon
	err     error // returned by Produce when set
	t       *testing.T
}

func (s *recordingSink) Produce(key, value []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return s.err
	}
	var b beaconv1.Beacon
	if err := proto.Unmarshal(value, &b); err != nil {
		s.t.Errorf("record does not decode as beacongate.v1.Beacon: %v", err)
	}
	s.keys = append(s.keys, string(key))
	s.records = append(s.records, &b)
	return nil
}

func (s *recordingSink) take() ([]string, []*beaconv1.Beacon) {
	s.mu.Lock()
	defer s.mu.Unlock()
	k, r := s.keys, s.records
	s.keys, s.records = nil, nil
	return k, r
}

type testServer struct {
	*Server
	sink *recordingSink
	ln   *fasthttputil.InmemoryListener
	cl   *fasthttp.HostClient
}

func newTestServer(t *testing.T, cfg Config) *testServer {
	t.Helper()
	sink := &recordingSink{t: t}
	return newTestServerWith(t, cfg, sink, sink)
}

// newTestServerWith serves through sink; rec (if any) sees the records.
func newTestServerWith(t *testing.T, cfg Config, sink Sink, rec *recordingSink) *testServer {
	t.Helper()
	s, err := New(cfg, sink, nil, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	ln := fasthttputil.NewInmemoryListener()
	go s.Serve(ln) // ends with Shutdown
	t.Cleanup(func() { _ = s.srv.Shutdown() })
	cl := &fasthttp.HostClient{Addr: "gw.test", Dial: func(string) (net.Conn, error) { return ln.Dial() }}
	return &testServer{Server: s, sink: rec, ln: ln, cl: cl}
}

type reply struct {
	status  int
	body    string
	headers map[string]string
}

func (ts *testServer) do(t *testing.T, method, uri, contentType, body string, hdr ...string) reply {
	t.Helper()
	req := fasthttp.AcquireRequest()
	resp := fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.Header.SetMethod(method)
	req.SetRequestURI("http://gw.test" + uri)
	req.Header.SetUserAgent("test-agent/1.0")
	if contentType != "" {
		req.Header.SetContentType(contentType)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	if body != "" {
		req.SetBodyString(body)
	}
	if method == "HEAD" {
		resp.SkipBody = true
	}
	if err := ts.cl.DoTimeout(req, resp, 5*time.Second); err != nil {
		t.Fatalf("%s %s: %v", method, uri, err)
	}
	r := reply{status: resp.StatusCode(), body: string(resp.Body()), headers: map[string]string{}}
	for _, k := range resp.Header.PeekKeys() {
		r.headers[string(k)] = string(resp.Header.PeekBytes(k))
	}
	return r
}

func paramsOf(b *beaconv1.Beacon) string {
	var parts []string
	for _, p := range b.Params {
		parts = append(parts, p.Name+"="+p.Value)
	}
	return strings.Join(parts, "&")
}

func TestPixel(t *testing.T) {
	ts := newTestServer(t, Config{GatewayID: "gw-1"})
	r := ts.do(t, "GET", "/i?uid=u1&ev=pageview&url=https%3A%2F%2Fexample.com%2F%3Fa%3D1&t=a+b", "", "",
		"Referer", "https://example.com/page")
	if r.status != 200 || r.body != string(transparentGIF) || len(r.body) != 43 {
		t.Fatalf("pixel: status %d, %d body bytes; want 200 and the 43-byte GIF", r.status, len(r.body))
	}
	if r.headers["Content-Type"] != "image/gif" || !strings.Contains(r.headers["Cache-Control"], "no-store") {
		t.Fatalf("pixel headers: %v", r.headers)
	}
	keys, recs := ts.sink.take()
	if len(recs) != 1 {
		t.Fatalf("%d records, want 1", len(recs))
	}
	b := recs[0]
	if b.Kind != beaconv1.Kind_KIND_PIXEL || b.Method != "GET" || b.Path != "/i" || b.Host != "gw.test" ||
		b.GatewayId != "gw-1" || b.UserAgent != "test-agent/1.0" || b.Referer != "https://example.com/page" {
		t.Fatalf("record envelope: %v", b)
	}
	if got, want := paramsOf(b), "uid=u1&ev=pageview&url=https://example.com/?a=1&t=a b"; got != want {
		t.Fatalf("params %q, want %q", got, want)
	}
	if b.ShardKey != "u1" || keys[0] != "u1" {
		t.Fatalf("shard key %q / record key %q, want u1", b.ShardKey, keys[0])
	}
	if len(b.ClientIp) != 4 || len(b.RequestId) != 32 || r.headers["X-Request-Id"] != b.RequestId {
		t.Fatalf("client ip %v, request id %q (header %q)", b.ClientIp, b.RequestId, r.headers["X-Request-Id"])
	}
	if age := time.Since(time.UnixMicro(b.ReceivedAtUs)); age < 0 || age > time.Minute {
		t.Fatalf("received_at_us %d is not now", b.ReceivedAtUs)
	}

	// HEAD is a pixel too; a client's request id is kept.
	r = ts.do(t, "HEAD", "/i?uid=u2", "", "", "X-Request-Id", "abc-123")
	if _, recs = ts.sink.take(); r.status != 200 || len(recs) != 1 || recs[0].Method != "HEAD" || recs[0].RequestId != "abc-123" {
		t.Fatalf("HEAD: status %d, records %v", r.status, recs)
	}
}

func TestBeaconPost(t *testing.T) {
	ts := newTestServer(t, Config{})
	cases := []struct {
		name, ct, body string
		wantPayload    string
		wantParams     string
		wantKey        string
	}{
		{"json", "application/json", `{"user_id":"42","event":"click"}`, `{"user_id":"42","event":"click"}`, "sid=s1", "42"},
		{"sendBeacon text", "text/plain;charset=UTF-8", " {\"anonymous_id\":\"a\\u00e9\"}\n", `{"anonymous_id":"a\u00e9"}`, "sid=s1", "aé"},
		{"form", "application/x-www-form-urlencoded", "uid=f1&ev=submit", "", "sid=s1&uid=f1&ev=submit", "f1"},
		{"text form", "text/plain", "ev=x", "", "sid=s1&ev=x", "192.0.2.1"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := ts.do(t, "POST", "/i?sid=s1", c.ct, c.body)
			if r.status != 204 {
				t.Fatalf("status %d (%s), want 204", r.status, r.body)
			}
			_, recs := ts.sink.take()
			if len(recs) != 1 {
				t.Fatalf("%d records", len(recs))
			}
			b := recs[0]
			if b.Kind != beaconv1.Kind_KIND_BEACON || string(b.Payload) != c.wantPayload || paramsOf(b) != c.wantParams {
				t.Fatalf("record: kind %v payload %q params %q", b.Kind, b.Payload, paramsOf(b))
			}
			// The in-memory listener's peer is 0.0.0.0; the IP fallback is
			// checked with a real socket in TestClientIPKey.
			if c.wantKey != "192.0.2.1" && b.ShardKey != c.wantKey {
				t.Fatalf("shard key %q, want %q", b.ShardKey, c.wantKey)
			}
			if b.ContentType != c.ct {
				t.Fatalf("content type %q, want %q", b.ContentType, c.ct)
			}
		})
	}
}

func TestBatch(t *testing.T) {
	ts := newTestServer(t, Config{})
	body := `[{"user_id":"a","n":1}, {"user_id":"b","n":2}, 7, {"user_id":"a","n":3}]`
	r := ts.do(t, "POST", "/batch?sid=s9", "application/json", body)
	if r.status != 200 {
		t.Fatalf("status %d: %s", r.status, r.body)
	}
	var sum struct {
		Accepted      int `json:"accepted"`
		RejectedCount int `json:"rejected_count"`
		Rejected      []struct {
			Index  int    `json:"index"`
			Status int    `json:"status"`
			Reason string `json:"reason"`
			Error  string `json:"error"`
		} `json:"rejected"`
	}
	if err := json.Unmarshal([]byte(r.body), &sum); err != nil {
		t.Fatalf("summary %q: %v", r.body, err)
	}
	if sum.Accepted != 3 || sum.RejectedCount != 1 || len(sum.Rejected) != 1 || sum.Rejected[0].Index != 2 ||
		sum.Rejected[0].Status != 400 || sum.Rejected[0].Reason == "" {
		t.Fatalf("summary %+v", sum)
	}
	keys, recs := ts.sink.take()
	if len(recs) != 3 {
		t.Fatalf("%d records, want 3", len(recs))
	}
	wantIdx := []uint32{0, 1, 3}
	wantKeys := []string{"a", "b", "a"}
	for i, b := range recs {
		if b.Kind != beaconv1.Kind_KIND_BATCH_EVENT || b.BatchIndex != wantIdx[i] || keys[i] != wantKeys[i] ||
			paramsOf(b) != "sid=s9" || b.RequestId != recs[0].RequestId {
			t.Fatalf("record %d: %v key %q", i, b, keys[i])
		}
	}
	if string(recs[2].Payload) != `{"user_id":"a","n":3}` {
		t.Fatalf("payload %q", recs[2].Payload)
	}

	// NDJSON; every event bad → 400 with the summary.
	r = ts.do(t, "POST", "/batch", "application/x-ndjson", "{\"a\":1}\r\n\n{\"b\":2}\n")
	if _, recs = ts.sink.take(); r.status != 200 || len(recs) != 2 {
		t.Fatalf("ndjson: status %d, %d records", r.status, len(recs))
	}
	r = ts.do(t, "POST", "/batch", "application/json", `[1,2]`)
	if _, recs = ts.sink.take(); r.status != 400 || len(recs) != 0 || !strings.Contains(r.body, `"accepted":0`) {
		t.Fatalf("all-bad batch: status %d body %s", r.status, r.body)
	}
}

func TestRejections(t *testing.T) {
	ts := newTestServer(t, Config{MaxBodyBytes: 4096, MaxHeaderBytes: 4096, MaxQueryBytes: 1024,
		Event: event.Limits{MaxEventBytes: 2048, MaxEvents: 10, MaxDepth: 5}, Form: form.Limits{MaxParams: 10}})
	long := strings.Repeat("x", 2000)
	cases := []struct {
		name, method, uri, ct, body string
		status                      int
		reason                      string
		hdr                         []string
	}{
		{"unknown path", "GET", "/nope", "", "", 404, "not_found", nil},
		{"wrong method", "PUT", "/i", "", "", 405, "method_not_allowed", nil},
		{"batch GET", "GET", "/batch", "", "", 405, "method_not_allowed", nil},
		{"bad escape", "GET", "/i?uid=%zz", "", "", 400, "bad_escape", nil},
		{"invalid utf8", "GET", "/i?uid=%C3%28", "", "", 400, "invalid_utf8", nil},
		{"nul", "GET", "/i?uid=%00", "", "", 400, "nul_byte", nil},
		{"query too long", "GET", "/i?uid=" + long, "", "", 414, "uri_too_long", nil},
		{"empty body", "POST", "/i", "application/json", "", 400, "empty", nil},
		{"invalid json", "POST", "/i", "application/json", `{"a":}`, 400, "invalid_json", nil},
		{"not object", "POST", "/i", "application/json", `[1]`, 400, "not_object", nil},
		{"json invalid utf8", "POST", "/i", "application/json", "{\"a\":\"\xff\"}", 400, "invalid_utf8", nil},
		{"content type", "POST", "/i", "image/png", "xx", 415, "unsupported_content_type", nil},
		{"content encoding", "POST", "/i", "application/json", `{}`, 415, "unsupported_content_encoding", []string{"Content-Encoding", "br"}},
		{"batch not json", "POST", "/batch", "application/json", `hello`, 400, "not_batch", nil},
		{"event too large", "POST", "/i", "application/json", `{"a":"` + strings.Repeat("x", 3000) + `"}`, 413, "event_too_large", nil},
		{"too many events", "POST", "/batch", "application/json", "[" + strings.Repeat(`{},`, 10) + "{}]", 413, "too_many_events", nil},
		{"too deep", "POST", "/i", "application/json", strings.Repeat(`{"a":`, 10) + "1" + strings.Repeat("}", 10), 400, "too_deep", nil},
		{"too many params", "GET", "/i?" + strings.Repeat("a=1&", 20), "", "", 400, "too_many_params", nil},
		{"batch content type", "POST", "/batch", "text/csv", `a,b`, 415, "unsupported_content_type", nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			before := testutil.ToFloat64(eventsRejected.WithLabelValues(c.reason))
			r := ts.do(t, c.method, c.uri, c.ct, c.body, c.hdr...)
			if r.status != c.status {
				t.Fatalf("status %d (%q), want %d", r.status, r.body, c.status)
			}
			if c.reason != "" {
				if !strings.HasPrefix(r.body, c.reason+": ") || strings.Count(r.body, "\n") != 1 {
					t.Fatalf("body %q, want one line starting %q", r.body, c.reason+": ")
				}
				if after := testutil.ToFloat64(eventsRejected.WithLabelValues(c.reason)); after != before+1 {
					t.Fatalf("rejected{reason=%q} went %v → %v, want +1", c.reason, before, after)
				}
			}
			if c.status == 405 && r.headers["Allow"] == "" {
				t.Fatalf("405 without Allow header")
			}
			if _, recs := ts.sink.take(); len(recs) != 0 {
				t.Fatalf("a rejected request produced %d records", len(recs))
			}
		})
	}
}

// rawRequest sends bytes as they are and reads one response.
func rawRequest(t *testing.T, ts *testServer, raw string) (int, string) {
	t.Helper()
	c, err := ts.ln.Dial()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Write([]byte(raw)); err != nil {
		t.Fatal(err)
	}
	var resp fasthttp.Response
	if err := resp.Read(bufio.NewReader(c)); err != nil {
		t.Fatalf("reading response: %v", err)
	}
	return resp.StatusCode(), string(resp.Body())
}

func TestOversizeHeaderAndBody(t *testing.T) {
	ts := newTestServer(t, Config{MaxBodyBytes: 4096, MaxHeaderBytes: 4096, MaxQueryBytes: 1024})
	status, body := rawRequest(t, ts, "GET /i?uid=1 HTTP/1.1\r\nHost: x\r\nX-Big: "+strings.Repeat("a", 8000)+"\r\n\r\n")
	if status != 431 || !strings.HasPrefix(body, "header_too_large: ") {
		t.Fatalf("big header: %d %q, want 431", status, body)
	}
	big := strings.Repeat("a", 5000)
	status, body = rawRequest(t, ts, fmt.Sprintf("POST /i HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n\r\n%s", len(big), big))
	if status != 413 || !strings.HasPrefix(body, "body_too_large: ") {
		t.Fatalf("big body: %d %q, want 413", status, body)
	}
	status, _ = rawRequest(t, ts, "GARBAGE\r\n\r\n")
	if status != 400 {
		t.Fatalf("garbage request line: %d, want 400", status)
	}
	if _, recs := ts.sink.take(); len(recs) != 0 {
		t.Fatalf("%d records from rejected requests", len(recs))
	}
}

type fullSink struct{}

func (*fullSink) Produce([]byte, []byte) error { return errQueueFullForTest }

var errQueueFullForTest = status.Retry(http.StatusServiceUnavailable, "queue_full", "producer queue is full", time.Second)

func TestQueueFullIs503(t *testing.T) {
	s, err := New(Config{}, &fullSink{}, nil, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	var ctx fasthttp.RequestCtx
	ctx.Request.SetRequestURI("/i?uid=1")
	s.Handle(&ctx)
	if ctx.Response.StatusCode() != 503 || string(ctx.Response.Header.Peek("Retry-After")) != "1" {
		t.Fatalf("full queue: %d Retry-After %q, want 503 and 1", ctx.Response.StatusCode(), ctx.Response.Header.Peek("Retry-After"))
	}
}

// TestBatchOverCapacityIsRefusedWhole goes through the real relay: a
// producer queue with room for 2 records refuses a 3-event batch whole,
// and one with room for it beyond the tenth kept free takes it whole. (The spool's all-or-nothing is tested
// in package relay and against the real binary.)
func TestBatchOverCapacityIsRefusedWhole(t *testing.T) {
	k := &ackKafka{dlq: &dlqKafka{}, room: 2}
	rel, err := relay.New(relay.Config{}, k, nil, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(Config{}, rel, nil, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	batch := func() *fasthttp.RequestCtx {
		var ctx fasthttp.RequestCtx
		ctx.Request.Header.SetMethod("POST")
		ctx.Request.SetRequestURI("/batch")
		ctx.Request.SetBodyString(`[{"a":1},{"a":2},{"a":3}]`)
		s.Handle(&ctx)
		return &ctx
	}
	ctx := batch()
	if ctx.Response.StatusCode() != 503 || k.records != 0 || len(ctx.Response.Header.Peek("Retry-After")) == 0 {
		t.Fatalf("batch over capacity: %d, %d records, Retry-After %q; want 503 with Retry-After and no record",
			ctx.Response.StatusCode(), k.records, ctx.Response.Header.Peek("Retry-After"))
	}
	k.room = 3 + k.QueueMax()/10 // the last tenth of the queue is kept for single records
	if ctx := batch(); ctx.Response.StatusCode() != 200 || k.records != 3 {
		t.Fatalf("batch with room: %d, %d records; want 200 and 3", ctx.Response.StatusCode(), k.records)
	}
}

func TestShardKeyPrefixAndIPFallback(t *testing.T) {
	ts := newTestServer(t, Config{Shard: shard.Config{Prefix: "query:sid"}})
	ts.do(t, "GET", "/i?sid=site7&uid=u1", "", "")
	ts.do(t, "GET", "/i?uid=u1", "", "")
	keys, _ := ts.sink.take()
	if keys[0] != "site7:u1" || keys[1] != "u1" {
		t.Fatalf("keys %q, want site7:u1 and u1", keys)
	}
}

func TestClientIPKey(t *testing.T) {
	sink := &recordingSink{t: t}
	s, err := New(Config{}, sink, nil, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	var ctx fasthttp.RequestCtx
	ctx.Init(&fasthttp.Request{}, &net.TCPAddr{IP: net.ParseIP("2001:db8::1"), Port: 5}, nil)
	ctx.Request.SetRequestURI("/i?ev=x")
	s.Handle(&ctx)
	if len(sink.records) != 1 || sink.keys[0] != "2001:db8::1" || len(sink.records[0].ClientIp) != 16 {
		t.Fatalf("ipv6 fallback: keys %q records %v", sink.keys, sink.records)
	}
	ctx.Init(&fasthttp.Request{}, &net.TCPAddr{IP: net.ParseIP("203.0.113.7"), Port: 5}, nil)
	ctx.Request.SetRequestURI("/i?ev=x")
	s.Handle(&ctx)
	if sink.keys[1] != "203.0.113.7" || !bytes.Equal(sink.records[1].ClientIp, []byte{203, 0, 113, 7}) {
		t.Fatalf("ipv4: key %q ip %v", sink.keys[1], sink.records[1].ClientIp)
	}
}

func TestCORS(t *testing.T) {
	ts := newTestServer(t, Config{})
	r := ts.do(t, "OPTIONS", "/i", "", "", "Origin", "https://a.example", "Access-Control-Request-Method", "POST",
		"Access-Control-Request-Headers", "content-type")
	if r.status != 204 || r.headers["Access-Control-Allow-Origin"] != "*" || r.headers["Access-Control-Allow-Headers"] != "content-type" {
		t.Fatalf("preflight any: %d %v", r.status, r.headers)
	}
	r = ts.do(t, "POST", "/i", "application/json", `{"a":1}`, "Origin", "https://a.example")
	if r.headers["Access-Control-Allow-Origin"] != "*" {
		t.Fatalf("simple request: %v", r.headers)
	}

	ts = newTestServer(t, Config{CORSOrigins: []string{"https://ok.example"}})
	r = ts.do(t, "OPTIONS", "/batch", "", "", "Origin", "https://ok.example", "Access-Control-Request-Method", "POST")
	if r.status != 204 || r.headers["Access-Control-Allow-Origin"] != "https://ok.example" || r.headers["Vary"] != "Origin" {
		t.Fatalf("preflight allowed: %d %v", r.status, r.headers)
	}
	r = ts.do(t, "OPTIONS", "/batch", "", "", "Origin", "https://evil.example", "Access-Control-Request-Method", "POST")
	if r.status != 403 || r.headers["Access-Control-Allow-Origin"] != "" {
		t.Fatalf("preflight denied: %d %v", r.status, r.headers)
	}
}

func TestHealthAndReadiness(t *testing.T) {
	ready, reason := true, ""
	var mu sync.Mutex
	s, err := New(Config{}, &recordingSink{t: t}, func() (bool, string) { mu.Lock(); defer mu.Unlock(); return ready, reason }, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	get := func(path string) (int, string) {
		var ctx fasthttp.RequestCtx
		ctx.Request.SetRequestURI(path)
		s.Handle(&ctx)
		return ctx.Response.StatusCode(), string(ctx.Response.Body())
	}
	if st, _ := get("/healthz"); st != 200 {
		t.Fatalf("healthz %d", st)
	}
	if st, _ := get("/readyz"); st != 200 {
		t.Fatalf("readyz %d", st)
	}
	mu.Lock()
	ready, reason = false, "no broker connection up"
	mu.Unlock()
	if st, body := get("/readyz"); st != 503 || !strings.Contains(body, "no broker") {
		t.Fatalf("readyz not ready: %d %q", st, body)
	}
	mu.Lock()
	ready = true
	mu.Unlock()
	s.StartDraining()
	if st, body := get("/readyz"); st != 503 || !strings.Contains(body, "shutting down") {
		t.Fatalf("readyz draining: %d %q", st, body)
	}
}

type panicSink struct{}

func (panicSink) Produce([]byte, []byte) error { panic("boom") }

func TestPanicIsRecovered(t *testing.T) {
	s, err := New(Config{}, panicSink{}, nil, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	before := testutil.ToFloat64(panicsTotal)
	var ctx fasthttp.RequestCtx
	ctx.Request.SetRequestURI("/i?uid=1")
	s.Handle(&ctx)
	if ctx.Response.StatusCode() != 500 || testutil.ToFloat64(panicsTotal) != before+1 {
		t.Fatalf("panic: status %d", ctx.Response.StatusCode())
	}
}

func TestConfigValidate(t *testing.T) {
	bad := []Config{
		{MaxBodyBytes: -1},
		{MaxHeaderBytes: 100},
		{MaxHeaderBytes: 4096, MaxQueryBytes: 8192},
		{Shard: shard.Config{Sources: "nope:x"}},
		{CORSOrigins: []string{""}},
	}
	for _, c := range bad {
		if err := c.Validate(); err == nil {
			t.Errorf("Validate(%+v) = nil, want error", c)
		}
	}
	if err := (Config{}).Validate(); err != nil {
		t.Fatalf("zero Config: %v", err)
	}
}

func TestRequestTargetForms(t *testing.T) {
	ts := newTestServer(t, Config{})
	// Absolute form, as forward proxies send it.
	if status, _ := rawRequest(t, ts, "GET http://gw.test/i?uid=abs HTTP/1.1\r\nHost: gw.test\r\n\r\n"); status != 200 {
		t.Fatalf("absolute-form pixel: %d", status)
	}
	// A fragment is not part of the query.
	if status, _ := rawRequest(t, ts, "GET /i?uid=frag#x=1 HTTP/1.1\r\nHost: gw.test\r\n\r\n"); status != 200 {
		t.Fatalf("pixel with fragment: %d", status)
	}
	// No exact match on a non-normalized path: 404, not a record.
	if status, _ := rawRequest(t, ts, "GET //i?uid=x HTTP/1.1\r\nHost: gw.test\r\n\r\n"); status != 404 {
		t.Fatalf("//i: %d, want 404", status)
	}
	keys, recs := ts.sink.take()
	if len(recs) != 2 || keys[0] != "abs" || recs[0].Path != "/i" || recs[0].Host != "gw.test" ||
		keys[1] != "frag" || paramsOf(recs[1]) != "uid=frag" {
		t.Fatalf("records %v keys %q", recs, keys)
	}
}
