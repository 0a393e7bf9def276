package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/segmentio/analytics-go/v3"
	"go.uber.org/zap"
	"google.golang.org/protobuf/proto"

	"github.com/beacongate/beacongate/internal/kafka/embedded"
	"github.com/beacongate/beacongate/internal/kafkatest"
	beaconv1 "github.com/beacongate/beacongate/proto/beacongate/v1"
)

// The Segment SDKs, unchanged but for their host, against the real binary
// and an embedded broker; every event is read back with franz-go, exactly
// once, field by field (docs/segment.md).

const (
	segmentSite = "shop"
	segmentKey  = "k-shop-7f3a" // the site's write key (-http.sites)
)

// sdkCall is one call an SDK is asked to make, and what its record must
// hold.
type sdkCall struct {
	Type        string         `json:"type"`
	MessageID   string         `json:"messageId"`
	UserID      string         `json:"userId,omitempty"`
	AnonymousID string         `json:"anonymousId,omitempty"`
	Event       string         `json:"event,omitempty"`
	Name        string         `json:"name,omitempty"`
	GroupID     string         `json:"groupId,omitempty"`
	Props       map[string]any `json:"props"`
}

// segmentCalls: for each of four users an identify, a page, a group and a
// dozen tracks, and tracks from an anonymous visitor.
func segmentCalls(prefix string) []sdkCall {
	var calls []sdkCall
	id := func(s string, i int) string { return fmt.Sprintf("%s-%s-%d", prefix, s, i) }
	for u := range 4 {
		user := fmt.Sprintf("%s-user-%d", prefix, u)
		calls = append(calls,
			sdkCall{Type: "identify", MessageID: id(user+"-identify", 0), UserID: user, Props: map[string]any{"plan": "pro", "seats": float64(u + 1)}},
			sdkCall{Type: "page", MessageID: id(user+"-page", 0), UserID: user, Name: "Pricing", Props: map[string]any{"path": "/pricing"}},
			sdkCall{Type: "group", MessageID: id(user+"-group", 0), UserID: user, GroupID: fmt.Sprintf("org-%d", u%2), Props: map[string]any{"employees": float64(10 * u)}})
		for i := range 12 {
			calls = append(calls, sdkCall{Type: "track", MessageID: id(user+"-track", i), UserID: user, Event: "Order Completed",
				Props: map[string]any{"seq": float64(i), "total": 9.5 + float64(i), "currency": "EUR"}})
		}
	}
	for i := range 3 {
		calls = append(calls, sdkCall{Type: "track", MessageID: id("anon-track", i), AnonymousID: prefix + "-anon-1", Event: "Viewed", Props: map[string]any{"i": float64(i)}})
	}
	return calls
}

// startSegmentGateway starts a broker and the gateway with one site.
func startSegmentGateway(t *testing.T) (*gateway, string) {
	t.Helper()
	b, err := embedded.Start(embedded.Config{Listen: "127.0.0.1:0", Topics: []string{"beacons"}}, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	g := startGateway(t, "-kafka.brokers", b.Addr(), "-http.sites", segmentSite+"="+segmentKey)
	return g, b.Addr()
}

// checkSegmentRecords reads the records back and checks every call's,
// once each. library is the SDK's context.library.name.
func checkSegmentRecords(t *testing.T, brokers string, calls []sdkCall, library string, kind beaconv1.Kind) {
	t.Helper()
	want := map[string]sdkCall{}
	for _, c := range calls {
		want[c.MessageID] = c
	}
	recs := kafkatest.Consume(t, brokers, "beacons", len(calls), 30*time.Second)
	if len(recs) != len(calls) {
		t.Fatalf("%d records in Kafka for %d calls", len(recs), len(calls))
	}
	for _, r := range recs {
		if bytes.Contains(r.Value, []byte(segmentKey)) {
			t.Fatalf("the write key is in a record: %q", r.Value)
		}
		var rec beaconv1.Beacon
		if err := proto.Unmarshal(r.Value, &rec); err != nil {
			t.Fatal(err)
		}
		c, ok := want[rec.EventId]
		if !ok {
			t.Fatalf("record with event_id %q: unknown or read twice", rec.EventId)
		}
		delete(want, rec.EventId)
		user := c.UserID
		if user == "" {
			user = c.AnonymousID
		}
		if rec.Protocol != beaconv1.Protocol_PROTOCOL_SEGMENT || rec.EventType != c.Type || rec.Site != segmentSite ||
			rec.Kind != kind || string(r.Key) != user || rec.ShardKey != user || rec.Method != "POST" {
			t.Errorf("%s: record protocol %v type %q site %q kind %v key %q; want segment %q %q %v key %q",
				c.MessageID, rec.Protocol, rec.EventType, rec.Site, rec.Kind, r.Key, c.Type, segmentSite, kind, user)
		}
		var p struct {
			Type, MessageID, UserID, AnonymousID, Event, Name, GroupID string
			Properties, Traits                                         map[string]any
			Context                                                    struct{ Library struct{ Name string } }
			Timestamp, ReceivedAt                                      string
		}
		if err := json.Unmarshal(rec.Payload, &p); err != nil {
			t.Fatalf("%s: payload %q: %v", c.MessageID, rec.Payload, err)
		}
		props := p.Properties
		if c.Type == "identify" || c.Type == "group" {
			props = p.Traits
		}
		if p.Type != c.Type || p.MessageID != c.MessageID || p.UserID != c.UserID || p.AnonymousID != c.AnonymousID && c.AnonymousID != "" ||
			p.Event != c.Event || p.GroupID != c.GroupID || (c.Name != "" && p.Name != c.Name) || p.Context.Library.Name != library {
			t.Errorf("%s: payload %s", c.MessageID, rec.Payload)
		}
		for k, v := range c.Props {
			if !reflect.DeepEqual(props[k], v) {
				t.Errorf("%s: property %s = %v, sent %v (payload %s)", c.MessageID, k, props[k], v, rec.Payload)
			}
		}
		ts, err1 := time.Parse(time.RFC3339Nano, p.Timestamp)
		ra, err2 := time.Parse(time.RFC3339Nano, p.ReceivedAt)
		if err1 != nil || err2 != nil || ra.UnixMicro()/1000 != rec.ReceivedAtUs/1000 || ra.Before(ts.Add(-time.Minute)) {
			t.Errorf("%s: timestamp %q, receivedAt %q, received_at_us %d", c.MessageID, p.Timestamp, p.ReceivedAt, rec.ReceivedAtUs)
		}
	}
	if len(want) > 0 {
		t.Fatalf("%d calls without a record", len(want))
	}
}

// TestSegmentAnalyticsGo: github.com/segmentio/analytics-go/v3 sends
// batches to /v1/batch with the write key as Basic auth user name and
// context.library only at the batch level.
func TestSegmentAnalyticsGo(t *testing.T) {
	g, brokers := startSegmentGateway(t)
	calls := segmentCalls("go")
	var ok, failed atomic.Int64
	client, err := analytics.NewWithConfig(segmentKey, analytics.Config{
		Endpoint: "http://" + g.http, BatchSize: 20, Interval: 50 * time.Millisecond,
		Callback: callback{&ok, &failed}, Logger: testLogger{t},
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range calls {
		var m analytics.Message
		switch c.Type {
		case "identify":
			m = analytics.Identify{MessageId: c.MessageID, UserId: c.UserID, Traits: c.Props}
		case "page":
			m = analytics.Page{MessageId: c.MessageID, UserId: c.UserID, Name: c.Name, Properties: c.Props}
		case "group":
			m = analytics.Group{MessageId: c.MessageID, UserId: c.UserID, GroupId: c.GroupID, Traits: c.Props}
		case "track":
			m = analytics.Track{MessageId: c.MessageID, UserId: c.UserID, AnonymousId: c.AnonymousID, Event: c.Event, Properties: c.Props}
		}
		if err := client.Enqueue(m); err != nil {
			t.Fatal(err)
		}
	}
	if err := client.Close(); err != nil {
		t.Fatal(err)
	}
	if ok.Load() != int64(len(calls)) || failed.Load() != 0 {
		t.Fatalf("SDK reports %d sent, %d failed of %d", ok.Load(), failed.Load(), len(calls))
	}
	checkSegmentRecords(t, brokers, calls, "analytics-go", beaconv1.Kind_KIND_BATCH_EVENT)
}

// TestSegmentAnalyticsGoWrongKey: a wrong write key is 401; analytics-go
// retries every non-2xx answer, at most 10 times in all with its backoff
// (shortened here), and then reports the events failed: nothing recorded.
func TestSegmentAnalyticsGoWrongKey(t *testing.T) {
	g, _ := startSegmentGateway(t)
	var ok, failed atomic.Int64
	client, err := analytics.NewWithConfig("not-"+segmentKey, analytics.Config{
		Endpoint: "http://" + g.http, BatchSize: 5, Interval: 50 * time.Millisecond,
		RetryAfter: func(int) time.Duration { return 10 * time.Millisecond },
		Callback:   callback{&ok, &failed}, Logger: testLogger{t},
	})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		if err := client.Enqueue(analytics.Track{UserId: "u", Event: "E", Properties: analytics.Properties{"i": i}}); err != nil {
			t.Fatal(err)
		}
	}
	// Close would cut the retries short: wait for the SDK to give up.
	kafkatest.WaitFor(t, "analytics-go to give up", 20*time.Second, func() bool { return failed.Load() == 5 })
	_ = client.Close()
	if ok.Load() != 0 || failed.Load() != 5 {
		t.Fatalf("SDK reports %d sent, %d failed; want 0 and 5", ok.Load(), failed.Load())
	}
	if n := metricWhere(t, g, "beacongate_http_requests_total", `status="401"`); n != 10 {
		t.Errorf("%v requests answered 401, want analytics-go's 10 attempts", n)
	}
	if n := metricWhere(t, g, "beacongate_events_rejected_total", `reason="bad_write_key"`); n != 10 {
		t.Errorf("bad_write_key counted %v times, want 10", n)
	}
	if n := metric(t, g, "beacongate_events_accepted_total"); n != 0 {
		t.Errorf("%v events accepted with a wrong key", n)
	}
}

type callback struct{ ok, failed *atomic.Int64 }

func (c callback) Success(analytics.Message)        { c.ok.Add(1) }
func (c callback) Failure(analytics.Message, error) { c.failed.Add(1) }

type testLogger struct{ t *testing.T }

func (l testLogger) Logf(format string, args ...any) { l.t.Logf("analytics-go: "+format, args...) }
func (l testLogger) Errorf(format string, args ...any) {
	l.t.Logf("analytics-go error: "+format, args...)
}

// nodeSDK runs testdata/segment/send.mjs with @segment/analytics-node
// (installed by npm ci there: .ci/run does it).
func nodeSDK(t *testing.T, host, key string, maxRetries int, calls []sdkCall) (seen struct {
	Requests int
	Statuses []int
	Errors   int
}) {
	t.Helper()
	node := needTool(t, "node")
	dir, _ := filepath.Abs("testdata/segment")
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "@segment", "analytics-node")); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("@segment/analytics-node not installed: .ci/run runs npm ci in %s", dir)
		}
		t.Skipf("@segment/analytics-node not installed: run npm ci in %s", dir)
	}
	in, _ := json.Marshal(map[string]any{"host": host, "writeKey": key, "maxRetries": maxRetries, "calls": calls})
	cmd := exec.Command(node, "send.mjs")
	cmd.Dir = dir
	cmd.Stdin = bytes.NewReader(in)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	timer := time.AfterFunc(60*time.Second, func() { _ = cmd.Process.Kill() })
	defer timer.Stop()
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("node send.mjs: %v\n%s", err, stderr.String())
	}
	if err := json.Unmarshal(bytes.TrimSpace(out), &seen); err != nil {
		t.Fatalf("node send.mjs printed %q: %v\n%s", out, err, stderr.String())
	}
	return seen
}

// TestSegmentAnalyticsNode: @segment/analytics-node sends batches to
// /v1/batch with both Basic auth and the body's writeKey.
func TestSegmentAnalyticsNode(t *testing.T) {
	g, brokers := startSegmentGateway(t)
	calls := segmentCalls("node")
	seen := nodeSDK(t, "http://"+g.http, segmentKey, 3, calls)
	if seen.Errors != 0 || seen.Requests == 0 || seen.Requests != len(seen.Statuses) {
		t.Fatalf("SDK saw %+v", seen)
	}
	for _, s := range seen.Statuses {
		if s != 200 {
			t.Fatalf("SDK got status %d (%v)", s, seen.Statuses)
		}
	}
	checkSegmentRecords(t, brokers, calls, "@segment/analytics-node", beaconv1.Kind_KIND_BATCH_EVENT)
}

// TestSegmentAnalyticsNodeWrongKey: analytics-node does not retry a 401:
// one request per batch, the events reported failed, nothing recorded.
func TestSegmentAnalyticsNodeWrongKey(t *testing.T) {
	g, _ := startSegmentGateway(t)
	calls := segmentCalls("node")[:5]
	seen := nodeSDK(t, "http://"+g.http, "not-"+segmentKey, 3, calls)
	if seen.Requests != 1 || !reflect.DeepEqual(seen.Statuses, []int{401}) || seen.Errors == 0 {
		t.Fatalf("SDK saw %+v, want one request answered 401", seen)
	}
	if n := metricWhere(t, g, "beacongate_http_requests_total", `status="401"`); n != 1 {
		t.Errorf("%v requests answered 401, want 1", n)
	}
	if n := metric(t, g, "beacongate_events_accepted_total"); n != 0 {
		t.Errorf("%v events accepted with a wrong key", n)
	}
}

// TestSegmentBadInputE2E: through the real binary and relay, a batch with
// one bad event records the others and still answers Segment's success;
// invalid JSON and a body over 500 KB get their 4xx in Segment's shape;
// each is counted, and only the good events reach Kafka.
func TestSegmentBadInputE2E(t *testing.T) {
	g, brokers := startSegmentGateway(t)
	post := func(path, body string) (int, string, http.Header) {
		t.Helper()
		req, _ := http.NewRequest("POST", "http://"+g.http+path, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.SetBasicAuth(segmentKey, "")
		resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b), resp.Header
	}
	st, body, h := post("/v1/batch", `{"batch":[
		{"type":"track","userId":"e2e-u1","event":"A","messageId":"e2e-1"},
		{"type":"track","userId":"e2e-u1","messageId":"e2e-2"},
		{"type":"identify","userId":"e2e-u2","messageId":"e2e-3","traits":{"x":1}}],
		"context":{"library":{"name":"hand"}}}`)
	if st != 200 || body != `{"success":true}` || h.Get("X-Beacon-Rejected") != "1" {
		t.Fatalf("batch with a bad event: %d %q (X-Beacon-Rejected %q)", st, body, h.Get("X-Beacon-Rejected"))
	}
	if st, body, _ = post("/v1/track", `{"userId":"e2e-u1","event":`); st != 400 || !strings.Contains(body, `"code":"invalid_json"`) {
		t.Fatalf("invalid JSON: %d %q", st, body)
	}
	big := `{"batch":[],"pad":"` + strings.Repeat("x", 500<<10) + `"}`
	if st, body, _ = post("/v1/batch", big); st != 413 || !strings.Contains(body, `"code":"body_too_large"`) {
		t.Fatalf("body over 500 KB: %d %q", st, body)
	}
	for reason, n := range map[string]float64{"missing_event": 1, "invalid_json": 1, "body_too_large": 1} {
		if got := metricWhere(t, g, "beacongate_events_rejected_total", `reason="`+reason+`"`); got != n {
			t.Errorf("%s counted %v times, want %v", reason, got, n)
		}
	}
	recs := kafkatest.Consume(t, brokers, "beacons", 2, 30*time.Second)
	got := map[string]string{}
	for _, r := range recs {
		var rec beaconv1.Beacon
		if err := proto.Unmarshal(r.Value, &rec); err != nil {
			t.Fatal(err)
		}
		got[rec.EventId] = string(r.Key) + " " + rec.EventType + " " + fmt.Sprint(rec.BatchIndex)
	}
	if want := map[string]string{"e2e-1": "e2e-u1 track 0", "e2e-3": "e2e-u2 identify 2"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("records %v, want %v", got, want)
	}
}
