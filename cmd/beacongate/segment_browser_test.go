package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"google.golang.org/protobuf/proto"

	"github.com/beacongate/beacongate/internal/kafkatest"
	beaconv1 "github.com/beacongate/beacongate/proto/beacongate/v1"
)

// segmentPage loads analytics.js (@segment/analytics-next's UMD build,
// served by the shop) with the gateway as its CDN: it fetches its settings
// from the gateway, which send it back there. The calls it made, with
// the messageIds analytics.js gave them, end up in window.sent.
const segmentPage = `<!doctype html><html><head><title>Pricing</title>
<script src="/index.js"></script></head><body><script>
(async () => {
  const batching = %t
  const opts = batching ? { integrations: { 'Segment.io': { deliveryStrategy: { strategy: 'batching', config: { size: 5, timeout: 300 } } } } } : {}
  const [analytics] = await AnalyticsNext.AnalyticsBrowser.load({ writeKey: %q, cdnURL: %q }, opts)
  const user = %q
  const sent = []
  const note = (ctx) => { const e = ctx.event; sent.push({ type: e.type, messageId: e.messageId, userId: e.userId || '', anonymousId: e.anonymousId,
    event: e.event || '', name: e.name || '', groupId: e.groupId || '', props: e.type === 'identify' || e.type === 'group' ? e.traits : e.properties }) }
  note(await analytics.identify(user, { plan: 'pro', seats: 3 }))
  note(await analytics.page('Pricing', { section: 'plans' }))
  note(await analytics.group('org-7', { employees: 40 }))
  for (let i = 0; i < 12; i++) note(await analytics.track('Order Completed', { seq: i, total: 9.5 + i, currency: 'EUR' }))
  window.sent = sent
})().catch((e) => { window.failed = String(e && e.stack || e) })
</script></body></html>`

// TestSegmentAnalyticsJS: analytics.js in headless Chromium, on a page of
// another origin, in its standard mode (one request per call to /v1/t,
// /v1/i, /v1/p, /v1/g) and in batching mode (/v1/b). Every call is read
// back from Kafka once, field by field, keyed by its user.
func TestSegmentAnalyticsJS(t *testing.T) {
	chromium := needTool(t, "chromium")
	dir, _ := filepath.Abs("testdata/segment/node_modules/@segment/analytics-next/dist/umd")
	if _, err := os.Stat(filepath.Join(dir, "index.js")); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("@segment/analytics-next not installed: .ci/run runs npm ci in testdata/segment")
		}
		t.Skipf("@segment/analytics-next not installed: run npm ci in cmd/beacongate/testdata/segment")
	}
	g, brokers := startSegmentGateway(t)

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	shop := "http://" + ln.Addr().String()
	mux := http.NewServeMux()
	mux.HandleFunc("/page", func(w http.ResponseWriter, r *http.Request) {
		batching := r.URL.Query().Get("mode") == "batching"
		fmt.Fprintf(w, segmentPage, batching, segmentKey, "http://"+g.http, "ajs-"+r.URL.Query().Get("mode")+"-user")
	})
	mux.Handle("/", http.FileServer(http.Dir(dir)))
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
	ctx, cancelT := context.WithTimeout(ctx, 90*time.Second)
	defer cancelT()

	var calls []sdkCall
	paths := map[string]bool{}
	for _, mode := range []string{"standard", "batching"} {
		if err := chromedp.Do(ctx, chromedp.Navigate(shop+"/page?mode="+mode)); err != nil {
			t.Fatalf("chromium: navigate: %v", err)
		}
		raw, err := chromedp.Run(ctx, chromedp.Poll[string](`window.failed ? 'failed: ' + window.failed : window.sent && JSON.stringify(window.sent)`,
			chromedp.WithPollingTimeout(30*time.Second)))
		if err != nil || strings.HasPrefix(raw, "failed: ") {
			t.Fatalf("chromium (%s): analytics.js did not send: %v %s\n%s", mode, err, raw, g.logs.String())
		}
		var sent []sdkCall
		if err := json.Unmarshal([]byte(raw), &sent); err != nil {
			t.Fatalf("window.sent %q: %v", raw, err)
		}
		if len(sent) != 15 {
			t.Fatalf("%s: %d calls made, want 15", mode, len(sent))
		}
		calls = append(calls, sent...)
	}

	want := map[string]sdkCall{}
	for _, c := range calls {
		want[c.MessageID] = c
	}
	recs := kafkatest.Consume(t, brokers, "beacons", len(calls), 30*time.Second)
	if len(recs) != len(calls) {
		t.Fatalf("%d records in Kafka for %d calls", len(recs), len(calls))
	}
	for _, r := range recs {
		if strings.Contains(string(r.Value), segmentKey) {
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
		paths[rec.Path] = true
		var p struct {
			Type, MessageID, UserID, AnonymousID, Event, Name, GroupID string
			Properties, Traits                                         map[string]any
			Context                                                    struct {
				Library struct{ Name string }
				Page    struct{ URL string }
			}
			ReceivedAt string
		}
		if err := json.Unmarshal(rec.Payload, &p); err != nil {
			t.Fatalf("%s: payload %q: %v", c.MessageID, rec.Payload, err)
		}
		props := p.Properties
		if c.Type == "identify" || c.Type == "group" {
			props = p.Traits
		}
		if rec.Protocol != beaconv1.Protocol_PROTOCOL_SEGMENT || rec.EventType != c.Type || rec.Site != segmentSite ||
			string(r.Key) != c.UserID || rec.ShardKey != c.UserID || rec.Origin != shop || !strings.Contains(rec.UserAgent, "Chrome") {
			t.Errorf("%s: record type %q site %q key %q origin %q; want %q %q key %q origin %q",
				c.MessageID, rec.EventType, rec.Site, r.Key, rec.Origin, c.Type, segmentSite, c.UserID, shop)
		}
		if p.Type != c.Type || p.UserID != c.UserID || p.AnonymousID != c.AnonymousID || p.Event != c.Event || p.GroupID != c.GroupID ||
			(c.Name != "" && p.Name != c.Name) || !reflect.DeepEqual(props, c.Props) || p.Context.Library.Name != "analytics.js" ||
			!strings.HasPrefix(p.Context.Page.URL, shop+"/page") || p.ReceivedAt == "" {
			t.Errorf("%s: payload %s\nsent %+v", c.MessageID, rec.Payload, c)
		}
	}
	if len(want) > 0 {
		t.Fatalf("%d calls without a record", len(want))
	}
	for _, p := range []string{"/v1/i", "/v1/p", "/v1/g", "/v1/t", "/v1/b"} {
		if !paths[p] {
			t.Errorf("no record came through %s (paths %v)", p, paths)
		}
	}
}
