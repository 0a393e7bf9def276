package main

import (
	"bufio"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/valyala/fasthttp"
	"go.uber.org/zap"
	"google.golang.org/protobuf/proto"

	"github.com/beacongate/beacongate/internal/kafka/embedded"
	"github.com/beacongate/beacongate/internal/kafkatest"
	beaconv1 "github.com/beacongate/beacongate/proto/beacongate/v1"
)

// TestHostileSecurity tries, against the real binary, the attacks of
// docs/security.md#threat-model that need a gateway behind a proxy, with
// sites and a dead-letter topic (TestHostileMemory has the memory one),
// and reads back what reached Kafka with an independent consumer:
//
//   - a client's own Forwarded header does not choose its client_ip;
//   - a request naming two sites is refused, and no record carries the
//     keyed site without its key;
//   - a connection whose first bytes cannot be HTTP gets 400 at once,
//     not 408 after the read timeout;
//   - a header shard key with invalid UTF-8 is the same bytes as the
//     record's shard_key;
//   - a batch of 1,000 invalid events makes a bounded number of dead
//     letters, the rest counted and summarised.
func TestHostileSecurity(t *testing.T) {
	b, err := embedded.Start(embedded.Config{Listen: "127.0.0.1:0", Topics: []string{"beacons", "beacons-dlq"}}, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	g := startGateway(t, "-kafka.brokers", b.Addr(), "-http.read-timeout", "30s",
		"-http.trusted-proxies", "127.0.0.1/32", "-http.sites", "keyed=SECRET,open=",
		"-shard.key", "header:X-User,ip", "-kafka.dlq-topic", "beacons-dlq", "-kafka.dlq-max-per-request", "5")
	if line := g.logLine("http server"); line == nil || !strings.Contains(fmt.Sprint(line["client_ip"]), "X-Forwarded-For") {
		t.Fatalf("start-up line about the client IP header: %v", line)
	}
	form := func(path, body string) string {
		return fmt.Sprintf("POST %s HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: %d\r\n\r\n%s", path, len(body), body)
	}
	batch := "[" + strings.Repeat("7,", 999) + "7]"
	for _, c := range []struct {
		name, raw string
		status    int
		reason    string
	}{
		{"client's own Forwarded behind a proxy", "GET /i?sid=open&case=spoof HTTP/1.1\r\nHost: x\r\nForwarded: for=6.6.6.6\r\nX-Forwarded-For: 7.7.7.7\r\n\r\n", 200, ""},
		{"two sites in the query", "GET /i?sid=open&sid=keyed&case=two HTTP/1.1\r\nHost: x\r\n\r\n", 400, "multiple_sites"},
		{"a form body naming another site", form("/i?sid=open", "sid=keyed&case=two-form"), 400, "multiple_sites"},
		{"TLS ClientHello on the plain port", "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", 400, "not_http"},
		{"invalid UTF-8 in the header shard key", "GET /i?sid=open&case=utf8 HTTP/1.1\r\nHost: x\r\nX-User: u\xff1\r\n\r\n", 200, ""},
		{"1,000 invalid events in a batch", fmt.Sprintf("POST /batch?sid=open HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", len(batch), batch), 400, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			// The read timeout is 30 s and the client waits 10: a 408
			// after the timeout fails here.
			status, body := rawAnswer(t, g.http, c.raw)
			if status != c.status || !strings.HasPrefix(body, c.reason) {
				t.Fatalf("status %d %.100q, want %d %s", status, body, c.status, c.reason)
			}
		})
	}

	recs := kafkatest.Consume(t, b.Addr(), "beacons", 2, 20*time.Second)
	if len(recs) != 2 {
		t.Fatalf("%d records, want the spoof and utf8 ones", len(recs))
	}
	for _, r := range recs {
		var rec beaconv1.Beacon
		if err := proto.Unmarshal(r.Value, &rec); err != nil {
			t.Fatal(err)
		}
		params := map[string][]string{}
		for _, p := range rec.Params {
			params[p.Name] = append(params[p.Name], p.Value)
		}
		if len(params["sid"]) != 1 || params["sid"][0] != "open" {
			t.Fatalf("record with sid %q", params["sid"])
		}
		switch params["case"][0] {
		case "spoof":
			if ip := net.IP(rec.ClientIp).String(); ip != "7.7.7.7" {
				t.Fatalf("client_ip %s, want 7.7.7.7 (X-Forwarded-For), not the client's Forwarded", ip)
			}
		case "utf8":
			if string(r.Key) != "u\uFFFD1" || rec.ShardKey != string(r.Key) {
				t.Fatalf("Kafka key %q, shard_key %q, want both %q", r.Key, rec.ShardKey, "u\uFFFD1")
			}
		default:
			t.Fatalf("unexpected record %v", params)
		}
	}

	// The batch makes five dead letters and a summary; the form refused
	// for two sites none (it may hold another site's key).
	dls := kafkatest.Consume(t, b.Addr(), "beacons-dlq", 6, 20*time.Second)
	reasons := map[string]int{}
	for _, r := range dls {
		for _, h := range r.Headers {
			if h.Key == "beacongate.reason" {
				reasons[string(h.Value)]++
			}
		}
	}
	if len(dls) != 6 || reasons["not_object"] != 5 || reasons["dead_letters_suppressed"] != 1 {
		t.Fatalf("%d dead letters by reason %v, want 5 not_object and 1 dead_letters_suppressed", len(dls), reasons)
	}
	if sum := summaryOf(dls); !strings.Contains(sum, "995 more rejected events") || !strings.HasPrefix(summaryValue(dls), "[7,7,") {
		t.Fatalf("summary dead letter: %q", sum)
	}
	for name, want := range map[string]float64{
		"beacongate_dead_letters_suppressed_total": 995,
	} {
		if got := metric(t, g, name); got != want {
			t.Fatalf("%s = %v, want %v", name, got, want)
		}
	}
	for reason, want := range map[string]float64{"multiple_sites": 2, "not_http": 1, "not_object": 1000} {
		if got := metricWhere(t, g, "beacongate_events_rejected_total", `reason="`+reason+`"`); got != want {
			t.Fatalf("rejected %s = %v, want %v", reason, got, want)
		}
	}
	if n := metric(t, g, "beacongate_http_panics_total"); n != 0 {
		t.Fatalf("%v handler panics recovered", n)
	}
	if code := g.stop(t); code != 0 {
		t.Fatalf("exit code %d", code)
	}
}

// rawAnswer writes raw on a new connection and returns the status and
// body of the one answer (0 if the connection closed without one).
func rawAnswer(t *testing.T, addr, raw string) (int, string) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	go c.Write([]byte(raw))
	var resp fasthttp.Response
	if err := resp.Read(bufio.NewReader(c)); err != nil {
		if ne, ok := err.(net.Error); ok && ne.Timeout() {
			t.Fatalf("no answer within 10s")
		}
		return 0, ""
	}
	return resp.StatusCode(), string(resp.Body())
}

func summaryRecord(dls []*kgo.Record) *kgo.Record {
	for _, r := range dls {
		for _, h := range r.Headers {
			if h.Key == "beacongate.reason" && string(h.Value) == "dead_letters_suppressed" {
				return r
			}
		}
	}
	return nil
}

// summaryOf is the error header of the summary dead letter.
func summaryOf(dls []*kgo.Record) string {
	if r := summaryRecord(dls); r != nil {
		for _, h := range r.Headers {
			if h.Key == "beacongate.error" {
				return string(h.Value)
			}
		}
	}
	return ""
}

// summaryValue is the summary dead letter's value: the request body.
func summaryValue(dls []*kgo.Record) string {
	if r := summaryRecord(dls); r != nil {
		return string(r.Value)
	}
	return ""
}
