package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/zap"
	"google.golang.org/protobuf/proto"

	"github.com/beacongate/beacongate/ingest/record"
	"github.com/beacongate/beacongate/internal/kafka/embedded"
	"github.com/beacongate/beacongate/internal/kafka/spool"
	"github.com/beacongate/beacongate/internal/kafkatest"
	beaconv1 "github.com/beacongate/beacongate/proto/beacongate/v1"
)

// These tests run the real binary, as a user would, against a real
// Kafka-protocol broker, and read back with independent clients (kcat,
// franz-go). They are bounded: every wait has a deadline.

// handedOut holds every address freeAddr gave: the kernel may give a port
// it just released to the next net.Listen, and one gateway once got the
// same port for -http.listen and -admin.listen (its config refuses that).
var handedOut sync.Map

// freeAddr picks a loopback port that is free now and that this test
// process never gave before. Another process may still take it before the
// gateway binds; startGateway launches again when that happens.
func freeAddr(t *testing.T) string {
	t.Helper()
	for {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		ln.Close()
		if _, dup := handedOut.LoadOrStore(addr, true); !dup {
			return addr
		}
	}
}

// needTool finds a command-line tool; CI must have it (.ci/run installs it).
func needTool(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("%s not installed; .ci/run must install it", name)
		}
		t.Skipf("%s not installed", name)
	}
	return p
}

type gateway struct {
	cmd         *exec.Cmd
	http, admin string
	logs        *syncBuffer
	done        chan error
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func startGateway(t *testing.T, args ...string) *gateway {
	t.Helper()
	for attempt := 1; ; attempt++ {
		g := launchGateway(t, args...)
		err := g.ready("/readyz")
		if err == nil {
			return g
		}
		// A port freeAddr picked was taken by another process (the
		// packages' tests run side by side) before the gateway bound it.
		if attempt < 3 && strings.Contains(g.logs.String(), "address already in use") {
			t.Logf("gateway launch %d: %v; launching again on new ports", attempt, err)
			continue
		}
		t.Fatalf("%v\n%s", err, g.logs.String())
	}
}

// launchGateway starts the binary and returns at once, before it listens.
func launchGateway(t *testing.T, args ...string) *gateway {
	t.Helper()
	g := &gateway{http: freeAddr(t), admin: freeAddr(t), logs: &syncBuffer{}, done: make(chan error, 1)}
	// Each gateway gets its own spool; a -spool.dir in args comes later and wins.
	args = append([]string{"-http.listen", g.http, "-admin.listen", g.admin, "-shutdown.drain", "0s", "-spool.dir", t.TempDir()}, args...)
	g.cmd = exec.Command(kafkatest.GatewayBinary(t), args...)
	g.cmd.Stdout, g.cmd.Stderr = g.logs, g.logs
	if err := g.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { g.done <- g.cmd.Wait() }()
	t.Cleanup(func() {
		_ = g.cmd.Process.Kill()
		<-g.done
		if t.Failed() {
			t.Logf("gateway logs:\n%s", g.logs.String())
		}
	})
	return g
}

// waitHTTP waits up to 30 s for path (/readyz, /healthz) to answer 200.
func (g *gateway) waitHTTP(t *testing.T, path string) {
	t.Helper()
	if err := g.ready(path); err != nil {
		t.Fatalf("%v\n%s", err, g.logs.String())
	}
}

// ready waits up to 30 s for path to answer 200, and gives up at once if
// the process exits.
func (g *gateway) ready(path string) error {
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get("http://" + g.http + path)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return nil
			}
		}
		select {
		case exit := <-g.done:
			g.done <- exit // for stop, exit and Cleanup
			return fmt.Errorf("gateway exited before %s answered 200: %v", path, exit)
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("gateway %s not 200 within 30s (last: %v)", path, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// stop sends SIGTERM and waits for the exit code.
func (g *gateway) stop(t *testing.T) int {
	t.Helper()
	if err := g.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-g.done:
		g.done <- nil // for Cleanup
		return g.cmd.ProcessState.ExitCode()
	case <-time.After(40 * time.Second):
		t.Fatalf("gateway did not exit within 40s of SIGTERM")
	}
	return -1
}

func get(t *testing.T, url string) (int, http.Header, []byte) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, b
}

// TestFreshUser walks the README's quick start: the embedded broker, a
// pixel, kcat reading the record, protoc decoding it, /metrics counting it.
func TestFreshUser(t *testing.T) {
	kcat := needTool(t, "kcat")
	protoc := needTool(t, "protoc")
	kafka := freeAddr(t)
	g := startGateway(t, "-embedded.listen", kafka, "-embedded.data-dir", t.TempDir())

	status, hdr, body := get(t, "http://"+g.http+"/i?uid=u1&ev=pageview")
	if status != 200 || hdr.Get("Content-Type") != "image/gif" || len(body) != 43 {
		t.Fatalf("pixel: %d %s %d bytes", status, hdr.Get("Content-Type"), len(body))
	}

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	value, err := exec.CommandContext(ctx, kcat, "-C", "-b", kafka, "-t", "beacons", "-o", "beginning",
		"-c", "1", "-e", "-f", "%s").Output()
	if err != nil {
		t.Fatalf("kcat: %v", err)
	}
	var rec beaconv1.Beacon
	if err := proto.Unmarshal(value, &rec); err != nil || rec.ShardKey != "u1" {
		t.Fatalf("kcat read %d bytes: %v, shard key %q", len(value), err, rec.ShardKey)
	}
	dec := exec.CommandContext(ctx, protoc, "--decode=beacongate.v1.Beacon", "-I", "../..", "proto/beacongate/v1/beacon.proto")
	dec.Stdin = bytes.NewReader(value)
	text, err := dec.Output()
	if err != nil {
		t.Fatalf("protoc --decode: %v", err)
	}
	for _, want := range []string{`kind: KIND_PIXEL`, `name: "uid"`, `value: "u1"`, `name: "ev"`, `value: "pageview"`, `shard_key: "u1"`} {
		if !strings.Contains(string(text), want) {
			t.Fatalf("protoc --decode output lacks %q:\n%s", want, text)
		}
	}

	// beacongate tail decodes the record for people debugging consumers.
	line, err := exec.CommandContext(ctx, kafkatest.GatewayBinary(t), "tail", "-kafka.brokers", kafka, "-from", "beginning", "-n", "1", "-timeout", "20s").Output()
	if err != nil || !strings.Contains(string(line), `"shard_key":"u1"`) || !strings.Contains(string(line), `"kind":"KIND_PIXEL"`) {
		t.Fatalf("beacongate tail: %v\n%s", err, line)
	}

	_, _, metrics := get(t, "http://"+g.admin+"/metrics")
	for _, want := range []string{
		`beacongate_events_accepted_total{kind="pixel"} 1`,
		`beacongate_http_requests_total{route="pixel",status="200"} 1`,
		`beacongate_kafka_records_delivered_total 1`,
		`beacongate_build_info{`,
	} {
		if !strings.Contains(string(metrics), want) {
			t.Fatalf("/metrics lacks %q", want)
		}
	}
	if code := g.stop(t); code != 0 {
		t.Fatalf("exit code %d after SIGTERM, want 0", code)
	}
	if !strings.Contains(g.logs.String(), `"undelivered":0`) {
		t.Fatalf("shutdown log does not report 0 undelivered:\n%s", g.logs.String())
	}
}

// TestSIGTERMDeliversEveryAcceptedEvent loads the gateway with pixels,
// beacons and batches, sends SIGTERM while requests are in flight, and
// checks that exactly the acknowledged events are in Kafka, in per-key
// order.
func TestSIGTERMDeliversEveryAcceptedEvent(t *testing.T) {
	const topic = "beacons"
	b, err := embedded.Start(embedded.Config{Listen: "127.0.0.1:0", Topics: []string{topic}}, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	dir := t.TempDir()
	g := startGateway(t, "-kafka.brokers", b.Addr(), "-kafka.topic", topic, "-spool.dir", dir)

	const workers, perWorker = 8, 150
	var (
		mu    sync.Mutex
		acked = map[string]bool{} // "uid/seq" of every 2xx
	)
	var stopOnce sync.Once
	stopped := make(chan int, 1)
	var wg sync.WaitGroup
	client := &http.Client{Timeout: 10 * time.Second}
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; i < perWorker; i++ {
				uid := "w" + strconv.Itoa(w)
				var resp *http.Response
				var err error
				switch i % 3 {
				case 0:
					resp, err = client.Get(fmt.Sprintf("http://%s/i?uid=%s&seq=%d", g.http, uid, i))
				case 1:
					resp, err = client.Post("http://"+g.http+"/i", "application/json",
						strings.NewReader(fmt.Sprintf(`{"user_id":%q,"seq":%d}`, uid, i)))
				case 2:
					// A batch of one event keeps the per-key sequence simple.
					resp, err = client.Post("http://"+g.http+"/batch", "application/json",
						strings.NewReader(fmt.Sprintf(`[{"user_id":%q,"seq":%d}]`, uid, i)))
				}
				if err != nil {
					return // the listener closed: shutdown has begun
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode/100 == 2 {
					mu.Lock()
					acked[uid+"/"+strconv.Itoa(i)] = true
					mu.Unlock()
				}
				if w == 0 && i == perWorker/2 {
					stopOnce.Do(func() { go func() { stopped <- g.stop(t) }() })
				}
			}
		}(w)
	}
	wg.Wait()
	if code := <-stopped; code != 0 {
		t.Fatalf("exit code %d after SIGTERM, want 0", code)
	}
	want := len(acked)
	if want < workers*perWorker/4 {
		t.Fatalf("only %d events accepted; the load did not run", want)
	}
	// What Kafka did not take before the exit waits in the spool for the
	// next start; replay it as an operator would.
	left := replayLeftovers(t, dir, b.Addr())

	// Consume polls briefly past want: a duplicate would show up there.
	got := kafkatest.Consume(t, b.Addr(), topic, want, 20*time.Second)

	// Every acknowledged event is there exactly once. (A request whose
	// response was cut by the closing listener may have been delivered
	// without an acknowledgement: such an extra is allowed, a duplicate
	// or a missing acknowledged event is not.)
	seen := map[string]bool{}
	last := map[string]int{}
	for _, r := range got {
		var rec beaconv1.Beacon
		if err := proto.Unmarshal(r.Value, &rec); err != nil {
			t.Fatal(err)
		}
		seq := seqOf(t, &rec)
		id := string(r.Key) + "/" + strconv.Itoa(seq)
		if seen[id] {
			t.Fatalf("event %s delivered twice", id)
		}
		seen[id] = true
		if prev, ok := last[string(r.Key)]; ok && seq <= prev {
			t.Fatalf("key %s: seq %d after %d (order broken or duplicate)", r.Key, seq, prev)
		}
		last[string(r.Key)] = seq
	}
	lost := 0
	for id := range acked {
		if !seen[id] {
			lost++
		}
	}
	if lost > 0 {
		t.Fatalf("%d of %d acknowledged events are not in Kafka", lost, want)
	}
	t.Logf("%d events acknowledged (%d left in the spool at exit, replayed), %d records in Kafka, 0 lost, 0 duplicated, order kept", want, left, len(got))
}

func seqOf(t *testing.T, rec *beaconv1.Beacon) int {
	for _, p := range rec.Params {
		if p.Name == "seq" {
			n, _ := strconv.Atoi(p.Value)
			return n
		}
	}
	s := string(rec.Payload)
	i := strings.Index(s, `"seq":`)
	if i < 0 {
		t.Fatalf("record without seq: %v", rec)
	}
	n, _ := strconv.Atoi(strings.TrimRight(s[i+6:], "}"))
	return n
}

// TestSpoolTools: `beacongate spool inspect` reports a spool left by a
// gateway, and `beacongate spool replay` sends it to a cluster.
func TestSpoolTools(t *testing.T) {
	dir := t.TempDir()
	sp, err := spool.Open(spool.Config{Dir: dir}, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]bool{}
	for i := 0; i < 50; i++ {
		b := record.Beacon{Kind: record.KindPixel, ShardKey: []byte("u"),
			Params: []record.Param{{Name: []byte("seq"), Value: []byte(strconv.Itoa(i))}}}
		if err := sp.Append([]byte("u"), record.Append(nil, &b)); err != nil {
			t.Fatal(err)
		}
		want["u/"+strconv.Itoa(i)] = true
	}
	if err := sp.Close(); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(kafkatest.GatewayBinary(t), "spool", "inspect", "-spool.dir", dir).Output()
	if err != nil || !strings.Contains(string(out), `"records": 50`) {
		t.Fatalf("spool inspect: %v\n%s", err, out)
	}
	b, err := embedded.Start(embedded.Config{Listen: "127.0.0.1:0", Topics: []string{"replayed"}}, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	out, err = exec.Command(kafkatest.GatewayBinary(t), "spool", "replay", "-spool.dir", dir, "-kafka.brokers", b.Addr(), "-kafka.topic", "replayed").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "replayed 50 records") {
		t.Fatalf("spool replay: %v\n%s", err, out)
	}
	d := readBack(t, b.Addr(), "replayed", want, 20*time.Second)
	if lost, dup := d.check(want); lost != 0 || dup != 0 || d.orderBreak != 0 {
		t.Fatalf("after replay: lost %d, duplicated %d, order violations %d", lost, dup, d.orderBreak)
	}
	out, err = exec.Command(kafkatest.GatewayBinary(t), "spool", "inspect", "-spool.dir", dir).Output()
	if err != nil || !strings.Contains(string(out), `"records": 0`) {
		t.Fatalf("spool inspect after replay: %v\n%s", err, out)
	}
}

func TestCheckConfig(t *testing.T) {
	out, err := exec.Command(kafkatest.GatewayBinary(t), "-check-config", "-kafka.config", "sasl.password=hunter2",
		"-kafka.sasl.mechanism", "SCRAM-SHA-256", "-kafka.sasl.username", "gw", "-kafka.sasl.password", "hunter3", "-admin.token", "hunter4").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "configuration ok") || strings.Contains(string(out), "hunter") {
		t.Fatalf("-check-config: %v\n%s", err, out)
	}
	out, err = exec.Command(kafkatest.GatewayBinary(t), "-check-config", "-http.max-header-bytes", "100").CombinedOutput()
	if err == nil || strings.Count(strings.TrimSpace(string(out)), "\n") != 0 || !strings.Contains(string(out), "invalid configuration") {
		t.Fatalf("bad config must fail with one line: %v\n%s", err, out)
	}
}

// TestEveryEventBecomesOneRecord sends pixels, beacons and batches and
// checks that Kafka holds exactly one record per event, each decoding to
// what was sent, keyed by its user, Snappy-compressed.
func TestEveryEventBecomesOneRecord(t *testing.T) {
	const topic = "beacons"
	b, err := embedded.Start(embedded.Config{Listen: "127.0.0.1:0", Topics: []string{topic}}, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	g := startGateway(t, "-kafka.brokers", b.Addr())

	type sent struct {
		kind    beaconv1.Kind
		key     string
		payload string // JSON events
	}
	want := map[string]sent{} // by "uid/seq"
	client := &http.Client{Timeout: 10 * time.Second}
	check := func(resp *http.Response, err error, wantStatus int) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != wantStatus {
			t.Fatalf("status %d (%s), want %d", resp.StatusCode, body, wantStatus)
		}
	}
	seq := 0
	for i := 0; i < 100; i++ {
		uid := "u" + strconv.Itoa(i%7)
		seq++
		resp, err := client.Get(fmt.Sprintf("http://%s/i?uid=%s&seq=%d&ev=page_view", g.http, uid, seq))
		check(resp, err, 200)
		want[uid+"/"+strconv.Itoa(seq)] = sent{kind: beaconv1.Kind_KIND_PIXEL, key: uid}

		seq++
		js := fmt.Sprintf(`{"user_id":%q,"seq":%d}`, uid, seq)
		resp, err = client.Post("http://"+g.http+"/i", "text/plain;charset=UTF-8", strings.NewReader(js))
		check(resp, err, 204)
		want[uid+"/"+strconv.Itoa(seq)] = sent{kind: beaconv1.Kind_KIND_BEACON, key: uid, payload: js}

		var lines []string
		for j := 0; j < 5; j++ {
			seq++
			js := fmt.Sprintf(`{"user_id":%q,"seq":%d}`, uid, seq)
			lines = append(lines, js)
			want[uid+"/"+strconv.Itoa(seq)] = sent{kind: beaconv1.Kind_KIND_BATCH_EVENT, key: uid, payload: js}
		}
		resp, err = client.Post("http://"+g.http+"/batch", "application/x-ndjson", strings.NewReader(strings.Join(lines, "\n")))
		check(resp, err, 200)
	}

	got := kafkatest.Consume(t, b.Addr(), topic, len(want), 30*time.Second)
	if len(got) != len(want) {
		t.Fatalf("%d records in Kafka for %d events sent", len(got), len(want))
	}
	for _, r := range got {
		var rec beaconv1.Beacon
		if err := proto.Unmarshal(r.Value, &rec); err != nil {
			t.Fatal(err)
		}
		id := rec.ShardKey + "/" + strconv.Itoa(seqOf(t, &rec))
		w, ok := want[id]
		if !ok {
			t.Fatalf("unexpected or duplicate record %s", id)
		}
		delete(want, id)
		if rec.Kind != w.kind || string(r.Key) != w.key || string(rec.Payload) != w.payload {
			t.Fatalf("record %s: kind %v key %q payload %q; sent kind %v key %q payload %q",
				id, rec.Kind, r.Key, rec.Payload, w.kind, w.key, w.payload)
		}
		if r.Attrs.CompressionType() != 2 {
			t.Fatalf("record batch not snappy-compressed (type %d)", r.Attrs.CompressionType())
		}
	}
}

// TestFullQueueIs503 runs the gateway against an unreachable broker with a
// tiny producer queue: once it is full, requests get 503 with Retry-After
// at once, and readiness is off.
func TestFullQueueIs503(t *testing.T) {
	g := &gateway{http: freeAddr(t), admin: freeAddr(t), logs: &syncBuffer{}, done: make(chan error, 1)}
	// No spool: a full queue is then a 503 at once.
	g.cmd = exec.Command(kafkatest.GatewayBinary(t), "-http.listen", g.http, "-admin.listen", g.admin, "-spool.dir", "",
		"-kafka.brokers", freeAddr(t), "-kafka.config", "queue.buffering.max.messages=5", "-shutdown.drain", "0s", "-shutdown.timeout", "1s")
	g.cmd.Stdout, g.cmd.Stderr = g.logs, g.logs
	if err := g.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { g.done <- g.cmd.Wait() }()
	t.Cleanup(func() { _ = g.cmd.Process.Kill(); <-g.done })
	deadline := time.Now().Add(20 * time.Second)
	for {
		if resp, err := http.Get("http://" + g.http + "/healthz"); err == nil {
			resp.Body.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("gateway did not start:\n%s", g.logs.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	for i := 0; i < 5; i++ {
		if status, _, body := get(t, fmt.Sprintf("http://%s/i?uid=u&seq=%d", g.http, i)); status != 200 {
			t.Fatalf("request %d: %d %s", i, status, body)
		}
	}
	status, hdr, body := get(t, "http://"+g.http+"/i?uid=u&seq=5")
	if status != 503 || hdr.Get("Retry-After") == "" || !strings.HasPrefix(string(body), "queue_full: ") {
		t.Fatalf("full queue: %d Retry-After=%q %q; want 503 with Retry-After", status, hdr.Get("Retry-After"), body)
	}
	if status, _, body := get(t, "http://"+g.http+"/readyz"); status != 503 {
		t.Fatalf("readyz with a full queue and no broker: %d %s", status, body)
	}
	// Records that never reached a broker are lost at shutdown: the exit
	// code and the log say so.
	if code := g.stop(t); code != 1 || !strings.Contains(g.logs.String(), `"undelivered":5`) {
		t.Fatalf("exit code %d, want 1 with 5 undelivered logged:\n%s", code, g.logs.String())
	}
}
