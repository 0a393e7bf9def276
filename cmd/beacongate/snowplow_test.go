package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/zap"
	"google.golang.org/protobuf/proto"

	"github.com/beacongate/beacongate/internal/kafka/embedded"
	"github.com/beacongate/beacongate/internal/kafkatest"
	beaconv1 "github.com/beacongate/beacongate/proto/beacongate/v1"
)

// Snowplow's own trackers against the real binary (docs/snowplow.md):
// the events they say they sent are read back from Kafka with franz-go,
// each exactly once, field by field, keyed by its user.

// snowplowTestdata is where the trackers' npm packages are installed
// (npm ci, from .ci/run).
var snowplowTestdata = filepath.Join("testdata", "snowplow")

// needSnowplowNPM makes sure node and the tracker packages are there.
func needSnowplowNPM(t *testing.T) string {
	t.Helper()
	node := needTool(t, "node")
	if _, err := os.Stat(filepath.Join(snowplowTestdata, "node_modules", "@snowplow", "node-tracker")); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("@snowplow/node-tracker not installed in %s; .ci/run must run npm ci there", snowplowTestdata)
		}
		t.Skipf("@snowplow/node-tracker not installed: run npm ci in cmd/beacongate/%s", snowplowTestdata)
	}
	return node
}

type trackerRun struct {
	Sent []struct {
		Via     string         `json:"via"`
		Payload map[string]any `json:"payload"`
	} `json:"sent"`
	Failures []struct {
		Status    int    `json:"status"`
		WillRetry bool   `json:"willRetry"`
		Events    int    `json:"events"`
		Message   string `json:"message"`
	} `json:"failures"`
	Successes int `json:"successes"` // events in requests answered 2xx
}

func runNodeTracker(t *testing.T, node, addr, scenario string) trackerRun {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, "node-tracker.mjs", addr, scenario)
	cmd.Dir = snowplowTestdata
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("node-tracker %s: %v\n%s", scenario, err, stderr.String())
	}
	var run trackerRun
	if err := json.Unmarshal(out, &run); err != nil {
		t.Fatalf("node-tracker output: %v\n%s", err, out)
	}
	return run
}

// paramText is how a tracker's payload value travels: strings as they
// are, numbers as JavaScript prints them.
func paramText(v any) string {
	switch v := v.(type) {
	case string:
		return v
	case float64:
		return strings.TrimSuffix(fmt.Sprintf("%v", v), ".0")
	}
	return fmt.Sprint(v)
}

// wantParams is what the gateway records for a payload: ue_px and cx
// decoded into ue_pr and co.
func wantParams(t *testing.T, payload map[string]any) map[string]string {
	t.Helper()
	want := map[string]string{}
	for k, v := range payload {
		s := paramText(v)
		switch k {
		case "ue_px", "cx":
			b, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(s, "="))
			if err != nil {
				t.Fatalf("tracker sent %s=%q: %v", k, s, err)
			}
			k, s = map[string]string{"ue_px": "ue_pr", "cx": "co"}[k], string(b)
		}
		want[k] = s
	}
	return want
}

func TestSnowplowNodeTracker(t *testing.T) {
	node := needSnowplowNPM(t)
	const topic = "beacons"
	b, err := embedded.Start(embedded.Config{Listen: "127.0.0.1:0", Topics: []string{topic}}, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	g := startGateway(t, "-kafka.brokers", b.Addr(), "-identity.cookie", "sp")

	run := runNodeTracker(t, node, g.http, "events")
	if len(run.Failures) > 0 {
		t.Fatalf("the tracker saw failures: %+v", run.Failures)
	}
	type sent struct {
		via     string
		payload map[string]any
	}
	want := map[string]sent{} // by eid
	posts := 0
	for _, s := range run.Sent {
		eid, _ := s.Payload["eid"].(string)
		if eid == "" {
			t.Fatalf("the tracker returned an event without eid: %v", s.Payload)
		}
		want[eid] = sent{s.Via, s.Payload}
		if s.Via == "post" {
			posts++
		}
	}
	if len(want) < 70 || posts == 0 || posts == len(want) {
		t.Fatalf("the tracker sent %d events (%d by POST); the scenario wants dozens by GET and by POST", len(want), posts)
	}

	if run.Successes != len(want) {
		t.Fatalf("the tracker saw %d of its %d events answered 2xx", run.Successes, len(want))
	}
	t.Logf("the tracker sent %d events, %d of them by POST, all answered 2xx", len(want), posts)
	recs := kafkatest.Consume(t, b.Addr(), topic, len(want), 30*time.Second)
	if len(recs) != len(want) {
		t.Fatalf("%d records in Kafka for %d events sent", len(recs), len(want))
	}
	partitionOf := map[string]int32{}
	for _, r := range recs {
		var rec beaconv1.Beacon
		if err := proto.Unmarshal(r.Value, &rec); err != nil {
			t.Fatal(err)
		}
		w, ok := want[rec.EventId]
		if !ok {
			t.Fatalf("record with event_id %q: not sent, or a duplicate", rec.EventId)
		}
		delete(want, rec.EventId)
		checkSnowplowRecord(t, r, &rec, w.via, w.payload)
		if p, seen := partitionOf[string(r.Key)]; seen && p != r.Partition {
			t.Errorf("key %q on partitions %d and %d", r.Key, p, r.Partition)
		}
		partitionOf[string(r.Key)] = r.Partition
	}
	if n := metric(t, g, "beacongate_snowplow_events_total"); int(n) != len(recs) {
		t.Errorf("beacongate_snowplow_events_total = %v, want %d", n, len(recs))
	}
	if n := metric(t, g, "beacongate_events_rejected_total"); n != 0 {
		t.Errorf("beacongate_events_rejected_total = %v, want 0", n)
	}
}

// checkSnowplowRecord compares one record with the event the tracker
// built, field by field.
func checkSnowplowRecord(t *testing.T, r *kgo.Record, rec *beaconv1.Beacon, via string, payload map[string]any) {
	t.Helper()
	id := rec.EventId
	wantKind, wantMethod, wantPath := beaconv1.Kind_KIND_BATCH_EVENT, "POST", "/com.snowplowanalytics.snowplow/tp2"
	anonymous := via == "get-anon" // SP-Anonymous: no IP, no network user id
	if via == "get" || anonymous {
		wantKind, wantMethod, wantPath = beaconv1.Kind_KIND_PIXEL, "GET", "/i"
	}
	if rec.Protocol != beaconv1.Protocol_PROTOCOL_SNOWPLOW || rec.Kind != wantKind || rec.Method != wantMethod || rec.Path != wantPath {
		t.Errorf("%s: protocol %v kind %v %s %s; want snowplow %v %s %s", id, rec.Protocol, rec.Kind, rec.Method, rec.Path, wantKind, wantMethod, wantPath)
	}
	if rec.EventType != payload["e"] || rec.Site != payload["aid"] || len(rec.Payload) != 0 {
		t.Errorf("%s: event_type %q site %q payload %q; sent e=%v aid=%v", id, rec.EventType, rec.Site, rec.Payload, payload["e"], payload["aid"])
	}
	user, _ := payload["uid"].(string)
	if user == "" {
		user, _ = payload["duid"].(string)
	}
	if (user == "" && !anonymous) || string(r.Key) != user || rec.ShardKey != user {
		t.Errorf("%s: key %q shard_key %q, want the user %q", id, r.Key, rec.ShardKey, user)
	}
	if rec.ReceivedAtUs == 0 || rec.RequestId == "" {
		t.Errorf("%s: received_at %d request_id %q", id, rec.ReceivedAtUs, rec.RequestId)
	}
	if anonymous && (len(rec.ClientIp) != 0 || rec.NetworkUserId != "") {
		t.Errorf("%s: SP-Anonymous, yet client_ip %v network_user_id %q", id, rec.ClientIp, rec.NetworkUserId)
	}
	if !anonymous && (len(rec.ClientIp) != 4 || len(rec.NetworkUserId) != 32) {
		t.Errorf("%s: client_ip %v network_user_id %q", id, rec.ClientIp, rec.NetworkUserId)
	}
	got := map[string]string{}
	for _, p := range rec.Params {
		if _, dup := got[p.Name]; dup {
			t.Errorf("%s: param %s twice", id, p.Name)
		}
		got[p.Name] = p.Value
	}
	if got["stm"] == "" {
		t.Errorf("%s: no stm (the tracker's send time)", id)
	}
	delete(got, "stm")
	want := wantParams(t, payload)
	for k, v := range want {
		if k == "ue_pr" || k == "co" {
			// The same JSON: compare decoded, so the check does not
			// depend on how the test decoded base64.
			var a, b any
			if json.Unmarshal([]byte(got[k]), &a) != nil || json.Unmarshal([]byte(v), &b) != nil || fmt.Sprint(a) != fmt.Sprint(b) {
				t.Errorf("%s: %s = %q, sent %q", id, k, got[k], v)
			}
		} else if got[k] != v {
			t.Errorf("%s: %s = %q, sent %q", id, k, got[k], v)
		}
		delete(got, k)
	}
	if len(got) > 0 {
		t.Errorf("%s: params the tracker did not send: %v", id, got)
	}
}

// TestSnowplowNodeTrackerBadEvent: a POST with one good event and one
// without tv records the good one once and answers 400, which the
// tracker does not retry: one request, no duplicate.
func TestSnowplowNodeTrackerBadEvent(t *testing.T) {
	node := needSnowplowNPM(t)
	const topic = "beacons"
	b, err := embedded.Start(embedded.Config{Listen: "127.0.0.1:0", Topics: []string{topic}}, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	g := startGateway(t, "-kafka.brokers", b.Addr(), "-identity.cookie", "sp")

	run := runNodeTracker(t, node, g.http, "bad")
	if len(run.Sent) != 2 || run.Sent[0].Payload["tv"] == nil || run.Sent[1].Payload["tv"] != nil {
		t.Fatalf("the scenario did not build one good event and one without tv: %+v", run.Sent)
	}
	if len(run.Failures) != 1 || run.Failures[0].Status != 400 || run.Failures[0].WillRetry || run.Failures[0].Events != 2 || run.Successes != 0 {
		t.Fatalf("the tracker saw %+v and %d successes; want one 400 for both events, not retried", run.Failures, run.Successes)
	}
	if n := metricWhere(t, g, "beacongate_http_requests_total", `route="batch",status="400"`); n != 1 {
		t.Errorf("%v tp2 requests answered 400, want 1 (no retry)", n)
	}
	if n := metricWhere(t, g, "beacongate_events_rejected_total", `reason="missing_tracker_field"`); n != 1 {
		t.Errorf("missing_tracker_field rejections = %v, want 1", n)
	}
	recs := kafkatest.Consume(t, b.Addr(), topic, 1, 30*time.Second)
	if len(recs) != 1 {
		t.Fatalf("%d records, want the good event once", len(recs))
	}
	var rec beaconv1.Beacon
	if err := proto.Unmarshal(recs[0].Value, &rec); err != nil {
		t.Fatal(err)
	}
	checkSnowplowRecord(t, recs[0], &rec, "post", run.Sent[0].Payload)
	if rec.EventId != run.Sent[0].Payload["eid"] {
		t.Errorf("recorded %q, want the good event %v", rec.EventId, run.Sent[0].Payload["eid"])
	}
}

// TestSnowplowBrowserTracker: Snowplow's own @snowplow/browser-tracker in
// headless Chromium, on a page of another origin, sends page views,
// structured and self-describing events with contexts to the gateway by
// GET (fetch with credentials) and by POST (CORS preflight); every event
// is read back from Kafka exactly once, field by field, keyed by its user
// (uid, else the tracker's domain user id).
func TestSnowplowBrowserTracker(t *testing.T) {
	chromium := needTool(t, "chromium")
	needSnowplowNPM(t)
	umd, err := os.ReadFile(filepath.Join(snowplowTestdata, "node_modules", "@snowplow", "browser-tracker", "dist", "index.umd.min.js"))
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("@snowplow/browser-tracker not installed: %v", err)
		}
		t.Skipf("@snowplow/browser-tracker not installed: %v", err)
	}
	page, err := os.ReadFile(filepath.Join(snowplowTestdata, "browser.html"))
	if err != nil {
		t.Fatal(err)
	}
	const topic = "beacons"
	b, err := embedded.Start(embedded.Config{Listen: "127.0.0.1:0", Topics: []string{topic}}, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	g := startGateway(t, "-kafka.brokers", b.Addr(), "-identity.cookie", "sp")

	// The shop: another origin (another port) than the gateway.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	shop := "http://" + ln.Addr().String()
	mux := http.NewServeMux()
	mux.HandleFunc("/sp.js", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/javascript")
		w.Write(umd)
	})
	mux.HandleFunc("/product", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Write(page)
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(ln)
	defer srv.Close()

	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromium), chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun,
		chromedp.Flag("disable-quic", true), chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true), chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(t.TempDir()))
	actx, cancelA := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancelA()
	ctx, cancel := chromedp.NewContext(actx)
	defer cancel()
	ctx, cancelT := context.WithTimeout(ctx, 60*time.Second)
	defer cancelT()
	if err := chromedp.Do(ctx, chromedp.Navigate(shop+"/product?c="+url.QueryEscape("http://"+g.http))); err != nil {
		t.Fatalf("chromium: navigate: %v", err)
	}
	if _, err := chromedp.Run(ctx, chromedp.Poll[bool](`window.sent && window.sent.length > 0 && window.ok + window.failed.reduce((n, f) => n + f.events, 0) >= window.sent.length`,
		chromedp.WithPollingTimeout(30*time.Second))); err != nil {
		state, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`JSON.stringify({sent: (window.sent || []).length, ok: window.ok, failed: window.failed})`))
		t.Fatalf("chromium: the tracker did not get answers for its events: %v (%s)", err, state)
	}
	var run trackerRun
	js, err := chromedp.Run(ctx, chromedp.Evaluate[string](`JSON.stringify({sent: window.sent, failures: window.failed, successes: window.ok})`))
	if err != nil {
		t.Fatalf("chromium: %v", err)
	}
	if err := json.Unmarshal([]byte(js), &run); err != nil {
		t.Fatal(err)
	}
	if len(run.Failures) > 0 || run.Successes != len(run.Sent) {
		t.Fatalf("the tracker saw failures %+v and %d of %d events answered 2xx", run.Failures, run.Successes, len(run.Sent))
	}

	want := map[string]map[string]any{} // by eid
	via := map[string]string{}
	posts, duidOnly, anonymous := 0, 0, 0
	for _, s := range run.Sent {
		eid, _ := s.Payload["eid"].(string)
		if eid == "" {
			t.Fatalf("the tracker built an event without eid: %v", s.Payload)
		}
		want[eid], via[eid] = s.Payload, s.Via
		if s.Via == "post" {
			posts++
		}
		switch {
		case s.Via == "get-anon":
			anonymous++
		case s.Payload["uid"] == nil:
			duidOnly++
		}
	}
	if len(want) != 38 || posts != 18 || duidOnly != 12 || anonymous != 2 {
		t.Fatalf("the tracker built %d events, %d by POST, %d without uid, %d anonymous; the page tracks 38, 18 by POST, 12 without uid, 2 anonymous",
			len(want), posts, duidOnly, anonymous)
	}
	t.Logf("the browser tracker sent %d events, %d of them by POST, all answered 2xx", len(want), posts)

	recs := kafkatest.Consume(t, b.Addr(), topic, len(want), 30*time.Second)
	if len(recs) != len(want) {
		t.Fatalf("%d records in Kafka for %d events sent", len(recs), len(want))
	}
	for _, r := range recs {
		var rec beaconv1.Beacon
		if err := proto.Unmarshal(r.Value, &rec); err != nil {
			t.Fatal(err)
		}
		payload, ok := want[rec.EventId]
		if !ok {
			t.Fatalf("record with event_id %q: not sent, or a duplicate", rec.EventId)
		}
		delete(want, rec.EventId)
		checkSnowplowRecord(t, r, &rec, via[rec.EventId], payload)
		if rec.Origin != shop || !strings.Contains(rec.UserAgent, "Chrome") {
			t.Errorf("%s: origin %q user agent %q", rec.EventId, rec.Origin, rec.UserAgent)
		}
	}
	if n := metric(t, g, "beacongate_snowplow_anonymous_requests_total"); n != 2 {
		t.Errorf("beacongate_snowplow_anonymous_requests_total = %v, want 2 (the anonymous tracker's GETs)", n)
	}
}
