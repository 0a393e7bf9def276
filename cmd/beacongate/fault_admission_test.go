package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/beacongate/beacongate/internal/kafkatest"
)

// Fault tests of what the gateway admits and keeps: records Kafka could
// never take, a start on a healthy cluster, a -kafka.config that breaks a
// guarantee, a spool written for another topic, the read-only inspector,
// the possibly-lost count of a killed process, acknowledged mode's fsync
// and the spool's gauges at open. Each runs the real binary against an
// in-process kfake broker and checks both that the fault happened and
// what came of it.

// admClient is shared by the helpers below; every request is bounded.
var admClient = &http.Client{Timeout: 15 * time.Second}

// admPixel sends GET /i for uid/seq (acknowledged mode if ack) and returns
// the status, 0 on a transport error.
func admPixel(g *gateway, uid string, seq int, ack bool) int {
	req, _ := http.NewRequest("GET", fmt.Sprintf("http://%s/i?uid=%s&seq=%d&ev=page_view", g.http, uid, seq), nil)
	if ack {
		req.Header.Set("X-Beacon-Ack", "kafka")
	}
	resp, err := admClient.Do(req)
	if err != nil {
		return 0
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// admPixels sends n sequential pixels for uid from seq first and adds the
// 2xx ones to acked; it fails the test on any other answer.
func admPixels(t *testing.T, g *gateway, uid string, first, n int, ack bool, acked map[string]bool) {
	t.Helper()
	for seq := first; seq < first+n; seq++ {
		if st := admPixel(g, uid, seq, ack); st/100 != 2 {
			t.Fatalf("pixel %s/%d: status %d", uid, seq, st)
		}
		acked[uid+"/"+strconv.Itoa(seq)] = true
	}
}

// admScrape reads one sample from the admin port without failing the
// test: a gateway that is still starting refuses the connection.
func admScrape(admin, name string) (float64, error) {
	resp, err := admClient.Get("http://" + admin + "/metrics")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		return 0, fmt.Errorf("/metrics: %d", resp.StatusCode)
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			return strconv.ParseFloat(strings.TrimSpace(v), 64)
		}
	}
	return 0, fmt.Errorf("/metrics has no %s", name)
}

// admKill SIGKILLs a gateway and waits for it to be gone.
func admKill(t *testing.T, g *gateway) {
	t.Helper()
	if err := g.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-g.done
	g.done <- nil // for Cleanup
}

// admRun runs the binary to completion within 20 s and returns its exit
// code, stdout and stderr apart (a refusal must be one line on stderr).
func admRun(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, kafkatest.GatewayBinary(t), args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("%v: still running after 20s (the configuration was accepted)\nstderr:\n%s", args, errb.String())
	}
	if err != nil && cmd.ProcessState == nil {
		t.Fatalf("%v: %v", args, err)
	}
	return cmd.ProcessState.ExitCode(), out.String(), errb.String()
}

// admTreeHash describes every entry under dir: its mode, size, mtime and,
// for files, the sha256 of its content.
func admTreeHash(t *testing.T, dir string) map[string]string {
	t.Helper()
	h := map[string]string{}
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, path)
		desc := fmt.Sprintf("%v %d %d", fi.Mode(), fi.Size(), fi.ModTime().UnixNano())
		if d.Type().IsRegular() {
			b, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			sum := sha256.Sum256(b)
			desc += " " + hex.EncodeToString(sum[:])
		}
		if !d.IsDir() {
			h[rel] = desc
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// admSpoolFor starts a gateway on dir and topic with the broker cut, has
// it spool n pixels of uid, and stops it with SIGTERM: the records stay in
// the spool for the next start. It returns the acknowledged ids.
func admSpoolFor(t *testing.T, addr string, cut *kafkatest.CutListener, dir, topic, uid string, n int) map[string]bool {
	t.Helper()
	g := startGateway(t, faultFlags(addr, dir, "-kafka.topic", topic)...)
	cut.SetDown(true)
	kafkatest.WaitFor(t, "readiness off", 10*time.Second, func() bool {
		st, _, _ := get(t, "http://"+g.http+"/readyz")
		return st == 503
	})
	acked := map[string]bool{}
	admPixels(t, g, uid, 0, n, false, acked)
	if active := metric(t, g, "beacongate_spool_active"); active != 1 {
		t.Fatalf("beacongate_spool_active %v after %d pixels with the broker cut, want 1", active, n)
	}
	if code := g.stop(t); code != 0 {
		t.Fatalf("SIGTERM with the broker cut: exit code %d, want 0 (records kept, not lost)", code)
	}
	if f := g.finalLine(t); f.LeftInSpool != int64(n) || f.Lost != 0 {
		t.Fatalf("SIGTERM with the broker cut: %+v, want %d left in the spool and 0 lost", f, n)
	}
	return acked
}

// TestFaultPoisonRecordDuringOutage injects a broker outage and, during
// it, records Kafka could never take: one over librdkafka's
// message.max.bytes, one under it but over the topic's max.message.bytes
// (learned while the broker was up). It proves both are refused with 413
// while the broker is down instead of entering the spool, where they would
// block or fail the replay; and that once the broker is back the spool
// drains and every acknowledged beacon is in Kafka.
func TestFaultPoisonRecordDuringOutage(t *testing.T) {
	const topic = "poison"
	c, cut := faultBroker(t, "beacons")
	if err := c.CreateTopic(topic, 4, map[string]string{"max.message.bytes": "65536"}); err != nil {
		t.Fatal(err)
	}
	addr := c.ListenAddrs()[0]
	dir := t.TempDir()
	g := startGateway(t, faultFlags(addr, dir, "-kafka.topic", topic)...)
	// The gateway must have read the topic's limit while the broker was up.
	kafkatest.WaitFor(t, "the topic's max.message.bytes to be learned", 15*time.Second, func() bool {
		m := g.logLine("topic found")
		return m != nil && m["max_message_bytes"] == float64(65536)
	})

	cut.SetDown(true)
	kafkatest.WaitFor(t, "readiness off", 10*time.Second, func() bool {
		st, _, _ := get(t, "http://"+g.http+"/readyz")
		return st == 503
	})
	acked := map[string]bool{}
	admPixels(t, g, "p", 0, 5, false, acked)
	if active := metric(t, g, "beacongate_spool_active"); active != 1 {
		t.Fatalf("beacongate_spool_active %v with the broker cut, want 1", active)
	}
	spooledBefore := metric(t, g, "beacongate_spool_records_spooled_total")
	inspBefore := inspectSpoolDir(t, dir)

	post := func(body string) (int, string) {
		resp, err := admClient.Post("http://"+g.http+"/i", "application/x-www-form-urlencoded", strings.NewReader(body))
		if err != nil {
			t.Fatalf("POST of %d bytes: %v", len(body), err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	overLibrdkafka, msg1 := post("a=" + strings.Repeat("x", 1_040_000))
	overTopic, msg2 := post("a=" + strings.Repeat("x", 100_000))
	spooledAfter := metric(t, g, "beacongate_spool_records_spooled_total")
	inspAfter := inspectSpoolDir(t, dir)
	if st, _, _ := get(t, "http://"+g.http+"/readyz"); st != 503 {
		t.Fatalf("the broker came back during the poison requests (/readyz %d): the fault did not hold", st)
	}
	// record_too_large is the producer's admission, not the HTTP body
	// limit (both bodies are below -http.max-body-bytes).
	if overLibrdkafka != 413 || overTopic != 413 || !strings.HasPrefix(msg1, "record_too_large") || !strings.HasPrefix(msg2, "record_too_large") {
		t.Fatalf("while the broker was down: 1 MB record %d (%s), 100 KB record over the topic's 64 KiB %d (%s); want 413 for both",
			overLibrdkafka, msg1, overTopic, msg2)
	}
	if spooledAfter != spooledBefore || inspAfter.Records != inspBefore.Records || inspAfter.Bytes != inspBefore.Bytes {
		t.Fatalf("a refused record entered the spool: spooled %v → %v, spool records %d → %d, bytes %d → %d",
			spooledBefore, spooledAfter, inspBefore.Records, inspAfter.Records, inspBefore.Bytes, inspAfter.Bytes)
	}

	cut.SetDown(false)
	kafkatest.WaitFor(t, "the spool to drain", 30*time.Second, func() bool { return metric(t, g, "beacongate_spool_active") == 0 })
	admPixels(t, g, "q", 0, 500, false, acked)
	if code := g.stop(t); code != 0 {
		t.Fatalf("exit code %d", code)
	}
	if f := g.finalLine(t); f.LeftInSpool != 0 || f.Quarantined != 0 || f.Lost != 0 {
		t.Fatalf("final line %+v: want nothing left, quarantined or lost", f)
	}
	// readBack fails on a record without seq: a poison record in Kafka.
	d := readBack(t, addr, topic, acked, 30*time.Second)
	lost, dup := d.check(acked)
	t.Logf("poison records: %d and %d while the broker was down; spool records %d before, %d after; %d beacons acknowledged (5 spooled, 500 after the outage), %d records in Kafka, lost %d, duplicated %d",
		overLibrdkafka, overTopic, inspBefore.Records, inspAfter.Records, len(acked), d.records, lost, dup)
	if lost != 0 || dup != 0 || d.orderBreak != 0 || d.records != len(acked) {
		t.Fatalf("lost %d, duplicated %d, order violations %d, %d records for %d acknowledged", lost, dup, d.orderBreak, d.records, len(acked))
	}
}

// TestFaultStartOnHealthyCluster sends pixels from the moment the
// gateway's HTTP listener answers, before librdkafka has connected and
// /readyz is 200: the fault is the start-up window itself. It proves that
// records accepted in that window wait in librdkafka's queue instead of
// being spooled (no spooling episode, nothing spooled), and all reach
// Kafka.
func TestFaultStartOnHealthyCluster(t *testing.T) {
	c, _ := faultBroker(t, "beacons")
	addr := c.ListenAddrs()[0]
	g := launchGateway(t, faultFlags(addr, t.TempDir())...)
	deadline := time.Now().Add(30 * time.Second)
	for {
		if st := admGetStatus("http://" + g.http + "/healthz"); st == 200 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no /healthz within 30s\n%s", g.logs.String())
		}
		time.Sleep(2 * time.Millisecond)
	}
	start := time.Now()

	// Readiness only turns on during a start, so a probe sent before one
	// that was answered 503 proves the gateway was not ready yet.
	var mu sync.Mutex
	var lastNotReadySent, readyAt time.Time
	probeDone := make(chan struct{})
	go func() {
		defer close(probeDone)
		for time.Since(start) < 20*time.Second {
			sent := time.Now()
			st := admGetStatus("http://" + g.http + "/readyz")
			mu.Lock()
			if st == 200 {
				readyAt = time.Now()
				mu.Unlock()
				return
			}
			lastNotReadySent = sent
			mu.Unlock()
			time.Sleep(2 * time.Millisecond)
		}
	}()

	type answer struct {
		id   string
		at   time.Time
		code int
	}
	var amu sync.Mutex
	var answers []answer
	var wg sync.WaitGroup
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			uid := "s" + strconv.Itoa(w)
			for seq := 0; time.Since(start) < 2*time.Second && seq < 2000; seq++ {
				st := admPixel(g, uid, seq, false)
				amu.Lock()
				answers = append(answers, answer{uid + "/" + strconv.Itoa(seq), time.Now(), st})
				amu.Unlock()
			}
		}(w)
	}
	wg.Wait()
	<-probeDone
	mu.Lock()
	notReady, ready := lastNotReadySent, readyAt
	mu.Unlock()
	if ready.IsZero() {
		t.Fatalf("/readyz never 200 within 20s")
	}
	acked := map[string]bool{}
	before, other := 0, 0
	var first2xx time.Time
	for _, a := range answers {
		if a.code/100 != 2 {
			other++
			continue
		}
		acked[a.id] = true
		if first2xx.IsZero() || a.at.Before(first2xx) {
			first2xx = a.at
		}
		if a.at.Before(notReady) {
			before++
		}
	}
	episodes := metric(t, g, "beacongate_spool_episodes_total")
	spooled := metric(t, g, "beacongate_spool_records_spooled_total")
	if code := g.stop(t); code != 0 {
		t.Fatalf("exit code %d", code)
	}
	d := readBack(t, addr, "beacons", acked, 30*time.Second)
	lost, dup := d.check(acked)
	t.Logf("start on a healthy cluster: first 2xx %v after /healthz, /readyz 200 %v after; %d beacons answered before readiness, %d in all (%d not 2xx); spool episodes %v, spooled %v; lost %d, duplicated %d",
		first2xx.Sub(start).Round(time.Millisecond), ready.Sub(start).Round(time.Millisecond), before, len(acked), other, episodes, spooled, lost, dup)
	if before == 0 {
		t.Fatalf("no beacon was answered before /readyz turned 200: the start-up window was not exercised")
	}
	if other != 0 {
		t.Fatalf("%d beacons were not answered 2xx during a start on a healthy cluster", other)
	}
	if episodes != 0 || spooled != 0 || strings.Contains(g.logs.String(), "spooling started") {
		t.Fatalf("a start on a healthy cluster spooled: %v episodes, %v records", episodes, spooled)
	}
	if lost != 0 || dup != 0 || d.orderBreak != 0 {
		t.Fatalf("lost %d, duplicated %d, order violations %d", lost, dup, d.orderBreak)
	}
}

// admGetStatus is a GET's status, 0 on a transport error.
func admGetStatus(url string) int {
	resp, err := admClient.Get(url)
	if err != nil {
		return 0
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// TestFaultGuaranteeBreakingConfigRefused injects -kafka.config values
// that would silently break a delivery guarantee (delivery reports of
// errors only, no idempotence, acks=1, ...). It proves the binary refuses
// each at start-up, as a server and with -check-config: exit code 2 and
// one line on stderr naming the property, before it listens or touches a
// broker; and that a harmless tuning override is accepted.
func TestFaultGuaranteeBreakingConfigRefused(t *testing.T) {
	bad := []string{
		"delivery.report.only.error=true",
		"enable.idempotence=false",
		"acks=1",
		"request.required.acks=0",
		"go.delivery.reports=false",
		"go.delivery.report.fields=key",
		"message.timeout.ms=10",
		"partitioner=random",
		"max.in.flight.requests.per.connection=10",
		"queuing.strategy=lifo",
		"enable.sparse.connections=true",
		"transactional.id=gw",
	}
	// Nothing listens there: an accepted configuration would start and
	// run until admRun's bound.
	broker := freeAddr(t)
	refusals := 0
	for _, kv := range bad {
		prop, _, _ := strings.Cut(kv, "=")
		for _, mode := range []string{"server", "-check-config"} {
			args := []string{"-http.listen", freeAddr(t), "-admin.listen", freeAddr(t), "-spool.dir", t.TempDir(),
				"-kafka.brokers", broker, "-kafka.config", kv}
			if mode != "server" {
				args = append(args, "-check-config")
			}
			code, stdout, stderr := admRun(t, args...)
			line := strings.TrimSpace(stderr)
			if code != 2 || line == "" || strings.Contains(line, "\n") || !strings.Contains(line, prop) || stdout != "" {
				t.Fatalf("%s -kafka.config %s: exit code %d, stdout %q, stderr %q; want 2 and one line on stderr naming %s",
					mode, kv, code, stdout, stderr, prop)
			}
			refusals++
		}
	}
	code, stdout, stderr := admRun(t, "-check-config", "-kafka.brokers", broker, "-kafka.config", "linger.ms=5")
	if code != 0 || !strings.Contains(stdout, "configuration ok") || !strings.Contains(stdout, "linger.ms=5") {
		t.Fatalf("-check-config -kafka.config linger.ms=5: exit code %d\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
	t.Logf("guarantee-breaking -kafka.config: %d properties, %d refusals (server and -check-config), each exit code 2 with one line on stderr; linger.ms=5 accepted", len(bad), refusals)
}

// TestFaultTopicChangeOnSpool leaves records in the spool for topic A
// (broker cut, SIGTERM keeps them) and restarts the gateway on the same
// spool with -kafka.topic B. It proves the restart is refused with an
// error naming both topics, the records stay in the spool, untouched,
// and a restart on topic A delivers them there, none to B.
func TestFaultTopicChangeOnSpool(t *testing.T) {
	const topicA, topicB = "topic-a", "topic-b"
	c, cut := faultBroker(t, topicA)
	if err := c.CreateTopic(topicB, 4, nil); err != nil {
		t.Fatal(err)
	}
	addr := c.ListenAddrs()[0]
	dir := t.TempDir()
	const n = 40
	acked := admSpoolFor(t, addr, cut, dir, topicA, "t", n)
	if st := inspectSpoolDir(t, dir); st.Records != n || st.Topic != topicA {
		t.Fatalf("spool after SIGTERM: %d records for %q, want %d for %q", st.Records, st.Topic, n, topicA)
	}

	cut.SetDown(false)
	gb := launchGateway(t, faultFlags(addr, dir, "-kafka.topic", topicB)...)
	code := gb.exit(t, 20*time.Second)
	m := gb.logLine("beacongate stopped with an error")
	errText, _ := m["error"].(string)
	if code == 0 || m == nil || !strings.Contains(errText, strconv.Quote(topicA)) || !strings.Contains(errText, strconv.Quote(topicB)) {
		t.Fatalf("restart on %s over a spool for %s: exit code %d, error %q; want a non-zero exit naming both topics\n%s",
			topicB, topicA, code, errText, gb.logs.String())
	}
	if st := inspectSpoolDir(t, dir); st.Records != n || st.Topic != topicA {
		t.Fatalf("spool after the refused start: %d records for %q, want %d for %q", st.Records, st.Topic, n, topicA)
	}

	ga := startGateway(t, faultFlags(addr, dir, "-kafka.topic", topicA)...)
	kafkatest.WaitFor(t, "the spool to drain into "+topicA, 30*time.Second, func() bool {
		return metric(t, ga, "beacongate_spool_active") == 0
	})
	if code := ga.stop(t); code != 0 {
		t.Fatalf("exit code %d", code)
	}
	d := readBack(t, addr, topicA, acked, 30*time.Second)
	lost, dup := d.check(acked)
	inB := readBack(t, addr, topicB, nil, 10*time.Second).records
	t.Logf("topic change on a spool: %d records spooled for %s; restart on %s exit code %d (%s); after a restart on %s: %d in %s (lost %d, duplicated %d), %d in %s",
		n, topicA, topicB, code, errText, topicA, d.records, topicA, lost, dup, inB, topicB)
	if lost != 0 || dup != 0 || d.orderBreak != 0 || inB != 0 {
		t.Fatalf("lost %d, duplicated %d, order violations %d, %d records in %s", lost, dup, d.orderBreak, inB, topicB)
	}
}

// TestFaultSpoolInspectReadOnly gives the spool a torn tail (garbage
// after the last whole frame, as a crash during an append leaves) and
// runs `beacongate spool inspect` on it. It proves inspect changes no
// byte, name, size or mtime in the directory (a gateway's Open would cut
// the tail and take the lock), reports the torn bytes, and also works
// beside a gateway that holds the directory's lock.
func TestFaultSpoolInspectReadOnly(t *testing.T) {
	c, cut := faultBroker(t, "beacons")
	addr := c.ListenAddrs()[0]
	dir := t.TempDir()
	const n = 30
	admSpoolFor(t, addr, cut, dir, "beacons", "r", n)

	segs, err := filepath.Glob(filepath.Join(dir, "*.seg"))
	if err != nil || len(segs) == 0 {
		t.Fatalf("no segment in the spool: %v", err)
	}
	last := segs[len(segs)-1]
	garbage := bytes.Repeat([]byte{0xff}, 37)
	f, err := os.OpenFile(last, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write(garbage); err != nil {
		t.Fatal(err)
	}
	f.Close()

	before := admTreeHash(t, dir)
	st := inspectSpoolDir(t, dir)
	after := admTreeHash(t, dir)
	changed := []string{}
	for name, h := range before {
		if after[name] != h {
			changed = append(changed, name)
		}
	}
	for name := range after {
		if _, ok := before[name]; !ok {
			changed = append(changed, name+" (new)")
		}
	}
	if len(changed) != 0 {
		t.Fatalf("spool inspect changed the spool directory: %v\nbefore %v\nafter  %v", changed, before, after)
	}
	if st.Main.TornBytes != int64(len(garbage)) || st.Records != n {
		t.Fatalf("inspect of a spool with a torn tail: %d records, %d torn bytes; want %d and %d\n%+v",
			st.Records, st.Main.TornBytes, n, len(garbage), st)
	}

	// Beside a running gateway (the broker still cut, so it keeps the
	// records and holds the lock).
	g := admStartNotReady(t, faultFlags(addr, dir)...)
	kafkatest.WaitFor(t, "the restarted gateway to report its spool", 10*time.Second, func() bool {
		return metric(t, g, "beacongate_spool_records") == n
	})
	stRunning := inspectSpoolDir(t, dir)
	if stRunning.Records != n {
		t.Fatalf("inspect beside a running gateway: %d records, want %d\n%+v", stRunning.Records, n, stRunning)
	}
	if code := g.stop(t); code != 0 {
		t.Fatalf("exit code %d", code)
	}
	t.Logf("spool inspect read-only: %d files hashed, 0 changed; %d records and %d torn bytes reported; %d records reported beside a running gateway",
		len(before), st.Records, st.Main.TornBytes, stRunning.Records)
}

// admStartNotReady starts a gateway that cannot be ready (its broker
// is cut) and waits for it to serve.
func admStartNotReady(t *testing.T, args ...string) *gateway {
	t.Helper()
	g := launchGateway(t, args...)
	g.waitHTTP(t, "/healthz")
	return g
}

// TestFaultPossiblyLostCountedOnce SIGKILLs a gateway while records wait
// in librdkafka's memory (the broker is cut from the start and the start
// grace keeps records in the producer's queue), then SIGKILLs the restart
// the moment it has counted them, before its own periodic state write.
// It proves the count is taken once: a third process counts 0, not the
// same records again; and that a restart exposes the count in
// beacongate_records_possibly_lost_total.
func TestFaultPossiblyLostCountedOnce(t *testing.T) {
	c, cut := faultBroker(t, "beacons")
	addr := c.ListenAddrs()[0]
	dir := t.TempDir()
	state := filepath.Join(dir, "inflight")
	cut.SetDown(true)
	const n1, n2 = 50, 30
	admKillWithInMemory(t, addr, dir, "k", n1)

	// The first restart, killed as soon as its log says it counted the
	// records: the monitor rewrites the state file only on its first
	// tick, so the count must already have been cleared by then.
	g2 := launchGateway(t, faultFlags(addr, dir)...)
	var counted map[string]any
	admWaitFast(t, "the first restart to count the records", 30*time.Second, func() bool {
		counted = g2.logLine("the previous process did not shut down cleanly: records that were in its memory queue may be lost")
		return counted != nil
	})
	admKill(t, g2)
	killedAt := time.Now()
	var after time.Duration
	if ts, err := time.Parse("2006-01-02T15:04:05.000Z0700", fmt.Sprint(counted["ts"])); err == nil {
		after = killedAt.Sub(ts)
	}
	b2, err := os.ReadFile(state)
	if err != nil || strings.TrimSpace(string(b2)) != "0" {
		t.Fatalf("state file after the first restart counted it and was killed %v later: %q, %v; want 0", after, b2, err)
	}
	if counted["records_in_memory_at_last_check"] != float64(n1) {
		t.Fatalf("the first restart counted %v, want %d", counted["records_in_memory_at_last_check"], n1)
	}

	// The second restart must not count them again; it then dies with
	// records of its own in memory, which the third counts.
	g3 := admStartNotReady(t, faultFlags(addr, dir, "-kafka.start-grace", "60s")...)
	again := metric(t, g3, "beacongate_records_possibly_lost_total")
	admFillAndKill(t, g3, state, "l", n2)
	g4 := admStartNotReady(t, faultFlags(addr, dir)...)
	third := metric(t, g4, "beacongate_records_possibly_lost_total")
	if code := g4.stop(t); code != 0 {
		t.Fatalf("exit code %d", code)
	}
	t.Logf("possibly lost: %d records in memory at SIGKILL; the restart counted %v and was killed %v after its log line (state file then %q); the next process counted %v; %d in memory at its SIGKILL, counted %v by the one after",
		n1, counted["records_in_memory_at_last_check"], after.Round(time.Millisecond), strings.TrimSpace(string(b2)), again, n2, third)
	if again != 0 {
		t.Fatalf("the second restart counted %v possibly lost again, want 0", again)
	}
	if third != n2 {
		t.Fatalf("beacongate_records_possibly_lost_total %v after a SIGKILL with %d records in memory, want %d", third, n2, n2)
	}
}

// admKillWithInMemory starts a gateway whose broker is cut, within a
// long start grace (records then wait in librdkafka's queue, not the
// spool), gives it n pixels and SIGKILLs it once its state file counts
// them.
func admKillWithInMemory(t *testing.T, addr, dir, uid string, n int) {
	t.Helper()
	g := admStartNotReady(t, faultFlags(addr, dir, "-kafka.start-grace", "60s")...)
	admFillAndKill(t, g, filepath.Join(dir, "inflight"), uid, n)
}

func admFillAndKill(t *testing.T, g *gateway, state, uid string, n int) {
	t.Helper()
	admPixels(t, g, uid, 0, n, false, map[string]bool{})
	if sp := metric(t, g, "beacongate_spool_records_spooled_total"); sp != 0 {
		t.Fatalf("%v records spooled within the start grace: they must wait in librdkafka's queue", sp)
	}
	kafkatest.WaitFor(t, "the state file to count the records in memory", 10*time.Second, func() bool {
		b, err := os.ReadFile(state)
		return err == nil && strings.TrimSpace(string(b)) == strconv.Itoa(n)
	})
	admKill(t, g)
	if b, err := os.ReadFile(state); err != nil || strings.TrimSpace(string(b)) != strconv.Itoa(n) {
		t.Fatalf("state file after SIGKILL: %q, %v; want %d", b, err, n)
	}
}

// admWaitFast is kafkatest.WaitFor polling every millisecond, for races with a
// process that is starting.
func admWaitFast(t *testing.T, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(time.Millisecond)
	}
}

// TestFaultAckedModeFsyncs cuts the broker and sends acknowledged-mode
// pixels one after another. It proves each is answered 2xx only after the
// spool was fsynced (the fsync and ack-sync counters grow by at least one
// per request) and that the records are in the spool.
func TestFaultAckedModeFsyncs(t *testing.T) {
	c, cut := faultBroker(t, "beacons")
	addr := c.ListenAddrs()[0]
	dir := t.TempDir()
	g := startGateway(t, faultFlags(addr, dir)...)
	cut.SetDown(true)
	kafkatest.WaitFor(t, "readiness off", 10*time.Second, func() bool {
		st, _, _ := get(t, "http://"+g.http+"/readyz")
		return st == 503
	})
	fsyncs0 := metric(t, g, "beacongate_spool_fsyncs_total")
	acks0 := metric(t, g, "beacongate_ack_spool_syncs_total")
	const n = 20
	acked := map[string]bool{}
	admPixels(t, g, "a", 0, n, true, acked)
	fsyncs := metric(t, g, "beacongate_spool_fsyncs_total") - fsyncs0
	acks := metric(t, g, "beacongate_ack_spool_syncs_total") - acks0
	active := metric(t, g, "beacongate_spool_active")
	st := inspectSpoolDir(t, dir)
	t.Logf("acknowledged mode with the broker cut: %d requests answered 2xx; spool fsyncs +%v, ack syncs +%v; %d records in the spool (active %v)",
		n, fsyncs, acks, st.Records, active)
	if active != 1 {
		t.Fatalf("beacongate_spool_active %v: the records did not go to the spool", active)
	}
	if acks < n || fsyncs < n {
		t.Fatalf("%d sequential acknowledged requests answered with %v ack syncs and %v fsyncs: want at least one each per request", n, acks, fsyncs)
	}
	if st.Records != n {
		t.Fatalf("%d records in the spool, want %d", st.Records, n)
	}
}

// TestFaultSpoolGaugesAtOpen leaves records in the spool (broker cut,
// SIGTERM keeps them) and restarts with the broker still cut, scraping
// /metrics as fast as possible from the launch. It proves the very first
// scrape already shows the records waiting, never an empty spool.
func TestFaultSpoolGaugesAtOpen(t *testing.T) {
	c, cut := faultBroker(t, "beacons")
	addr := c.ListenAddrs()[0]
	dir := t.TempDir()
	const n = 25
	admSpoolFor(t, addr, cut, dir, "beacons", "m", n)
	want := inspectSpoolDir(t, dir).Records
	if want != n {
		t.Fatalf("inspect: %d records, want %d", want, n)
	}

	g := launchGateway(t, faultFlags(addr, dir)...)
	launched := time.Now()
	var scrapes []float64
	var firstAt time.Duration
	admWaitFast(t, "the first scrape", 30*time.Second, func() bool {
		v, err := admScrape(g.admin, "beacongate_spool_records")
		if err != nil {
			return false
		}
		firstAt = time.Since(launched)
		scrapes = append(scrapes, v)
		return true
	})
	// And the next ones, across the monitor's first ticks.
	for end := time.Now().Add(300 * time.Millisecond); time.Now().Before(end); {
		v, err := admScrape(g.admin, "beacongate_spool_records")
		if err != nil {
			t.Fatal(err)
		}
		scrapes = append(scrapes, v)
		time.Sleep(2 * time.Millisecond)
	}
	if code := g.stop(t); code != 0 {
		t.Fatalf("exit code %d", code)
	}
	t.Logf("spool gauges at open: %d records left by the previous gateway; first scrape %v after launch showed %v; %d scrapes in its first 300 ms, min %v",
		want, firstAt.Round(time.Millisecond), scrapes[0], len(scrapes), admMin(scrapes))
	for i, v := range scrapes {
		if v != float64(want) {
			t.Fatalf("scrape %d showed beacongate_spool_records %v, want %d", i, v, want)
		}
	}
}

func admMin(v []float64) float64 {
	m := v[0]
	for _, x := range v {
		m = min(m, x)
	}
	return m
}
