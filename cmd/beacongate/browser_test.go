package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
	"go.uber.org/zap"
	"google.golang.org/protobuf/proto"

	"github.com/beacongate/beacongate/internal/kafka/embedded"
	"github.com/beacongate/beacongate/internal/kafkatest"
	beaconv1 "github.com/beacongate/beacongate/proto/beacongate/v1"
)

// TestBrowserSnippet: in real headless Chromium, a page on another origin
// loads /b.js with one script tag, tracks an event with properties and
// navigates away; the page view and the event must be in Kafka, field by
// field.
func TestBrowserSnippet(t *testing.T) {
	chromium := needTool(t, "chromium")
	b, err := embedded.Start(embedded.Config{Listen: "127.0.0.1:0", Topics: []string{"beacons"}}, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	g := startGateway(t, "-kafka.brokers", b.Addr())

	// The shop: another origin (another port) than the gateway.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	shop := "http://" + ln.Addr().String()
	mux := http.NewServeMux()
	mux.HandleFunc("/product", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintf(w, `<!doctype html><html><head><title>Blue shoes</title>
<script async src="http://%s/b.js" data-site="shop-1"></script></head>
<body><a id="next" href="/thanks">buy</a></body></html>`, g.http)
	})
	mux.HandleFunc("/thanks", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprint(w, `<!doctype html><html><head><title>Thanks</title></head><body>thanks</body></html>`)
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
	if err := chromedp.Do(ctx, chromedp.Navigate(shop+"/product")); err != nil {
		t.Fatalf("chromium: navigate: %v", err)
	}
	version, err := chromedp.Run(ctx, chromedp.Poll[string](`window.beacongate && window.beacongate.version`,
		chromedp.WithPollingTimeout(20*time.Second)))
	if err != nil {
		t.Fatalf("chromium: the snippet did not load: %v", err)
	}
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`beacongate.track('add_to_cart', {sku: 'shoe-42', price: 59.9, qty: 2}); true`)); err != nil {
		t.Fatalf("chromium: track: %v", err)
	}
	// Navigating away must flush the queue (pagehide / visibilitychange).
	if _, err := chromedp.Run(ctx, chromedp.WaitEvent(page.LoadEventFired, nil, chromedp.Click(chromedp.ID("next")))); err != nil {
		t.Fatalf("chromium: navigate away: %v", err)
	}
	t.Logf("snippet version %s", version)

	events := readEvents(t, b.Addr(), 2, 30*time.Second)
	byName := map[string]map[string]any{}
	var recs = map[string]*beaconv1.Beacon{}
	for _, e := range events {
		var ev map[string]any
		if err := json.Unmarshal(e.rec.Payload, &ev); err != nil {
			t.Fatalf("payload %q: %v", e.rec.Payload, err)
		}
		name, _ := ev["event"].(string)
		byName[name] = ev
		recs[name] = e.rec
		if e.rec.Kind != beaconv1.Kind_KIND_BATCH_EVENT || e.rec.Path != "/batch" || e.rec.Method != "POST" {
			t.Fatalf("%s: kind %v %s %s", name, e.rec.Kind, e.rec.Method, e.rec.Path)
		}
		if e.rec.Origin != shop || !strings.Contains(e.rec.UserAgent, "Chrome") || len(e.rec.ClientIp) != 4 {
			t.Fatalf("%s: origin %q user agent %q ip %v", name, e.rec.Origin, e.rec.UserAgent, e.rec.ClientIp)
		}
		aid, _ := ev["anonymous_id"].(string)
		if len(aid) < 16 || e.rec.ShardKey != aid || string(e.key) != aid {
			t.Fatalf("%s: anonymous_id %q, shard key %q, record key %q: the anonymous id must key the record", name, aid, e.rec.ShardKey, e.key)
		}
		if ev["sid"] != "shop-1" || ev["url"] != shop+"/product" || ev["title"] != "Blue shoes" {
			t.Fatalf("%s: sid/url/title %v %v %v", name, ev["sid"], ev["url"], ev["title"])
		}
		if sw, _ := ev["sw"].(float64); sw <= 0 {
			t.Fatalf("%s: screen width %v", name, ev["sw"])
		}
		if ts, _ := ev["ts"].(float64); time.Since(time.UnixMilli(int64(ts))).Abs() > 5*time.Minute {
			t.Fatalf("%s: ts %v is not now", name, ev["ts"])
		}
	}
	pv, cart := byName["page_view"], byName["add_to_cart"]
	if pv == nil || cart == nil {
		t.Fatalf("events %v: want page_view and add_to_cart", byName)
	}
	props, _ := cart["props"].(map[string]any)
	if props["sku"] != "shoe-42" || props["price"] != 59.9 || props["qty"] != 2.0 {
		t.Fatalf("add_to_cart props %v", props)
	}
	if pv["anonymous_id"] != cart["anonymous_id"] {
		t.Fatalf("the page view and the event have different anonymous ids")
	}
}

type keyedRecord struct {
	key []byte
	rec *beaconv1.Beacon
}

// readEvents reads n records from the beacons topic.
func readEvents(t *testing.T, addr string, n int, timeout time.Duration) []keyedRecord {
	t.Helper()
	var out []keyedRecord
	for _, r := range kafkatest.Consume(t, addr, "beacons", n, timeout) {
		var rec beaconv1.Beacon
		if err := proto.Unmarshal(r.Value, &rec); err != nil {
			t.Fatal(err)
		}
		out = append(out, keyedRecord{r.Key, &rec})
	}
	return out
}
