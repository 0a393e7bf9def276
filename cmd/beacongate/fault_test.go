package main

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/beacongate/beacongate/internal/kafkatest"
)

// The fault tests (docs/delivery.md, "Fault tests"): each runs the real gateway binary against
// an in-process kfake broker, injects one fault under load, and checks
// what happened to every acknowledged beacon by reading Kafka back. Every
// wait is bounded; the loads pace themselves to stay small.

// faultFlags detects a broker problem within ~0.3 s and reconnects fast.
func faultFlags(addr, spoolDir string, extra ...string) []string {
	return append([]string{"-kafka.brokers", addr, "-spool.dir", spoolDir, "-kafka.stats-interval", "200ms",
		"-kafka.config", "reconnect.backoff.max.ms=500"}, extra...)
}

// TestFaultBrokerDown: the broker is unreachable for 15 s in the middle of
// a load. Nothing acknowledged may be lost or duplicated, per-key order
// must hold, and no request may get a 5xx while the spool has room.
func TestFaultBrokerDown(t *testing.T) {
	c, cut := faultBroker(t, "beacons")
	addr := c.ListenAddrs()[0]
	g := startGateway(t, faultFlags(addr, t.TempDir())...)
	stop := make(chan struct{})
	res, wait := runLoad(g, 8, 0, 2*time.Millisecond, stop)
	time.Sleep(3 * time.Second)
	cut.SetDown(true)
	time.Sleep(15 * time.Second)
	spooled := metric(t, g, "beacongate_spool_records_spooled_total")
	cut.SetDown(false)
	time.Sleep(4 * time.Second)
	close(stop)
	wait()
	kafkatest.WaitFor(t, "the spool to drain", 60*time.Second, func() bool { return metric(t, g, "beacongate_spool_active") == 0 })
	replayed := metric(t, g, "beacongate_spool_records_replayed_total")
	if code := g.stop(t); code != 0 {
		t.Fatalf("exit code %d", code)
	}
	d := readBack(t, addr, "beacons", res.acked, 60*time.Second)
	lost, dup := d.check(res.acked)
	t.Logf("broker down 15s: %d acknowledged, %d spooled during the outage, %d replayed, %d records in Kafka, lost %d, duplicated %d, order violations %d, statuses %v, transport errors %d",
		len(res.acked), int(spooled), int(replayed), d.records, lost, dup, d.orderBreak, res.statuses, res.transport)
	if spooled == 0 || replayed == 0 {
		t.Fatalf("the outage did not exercise the spool (spooled %v, replayed %v)", spooled, replayed)
	}
	if lost != 0 || dup != 0 || d.orderBreak != 0 || res.fiveXX() != 0 || res.transport != 0 {
		t.Fatalf("lost %d, duplicated %d, order violations %d, 5xx %d, transport errors %d", lost, dup, d.orderBreak, res.fiveXX(), res.transport)
	}
}

// TestFaultProduceErrors: the broker answers produce requests with
// retriable errors; librdkafka retries and nothing is lost or duplicated.
func TestFaultProduceErrors(t *testing.T) {
	c, _ := faultBroker(t, "beacons")
	addr := c.ListenAddrs()[0]
	dir := t.TempDir()
	g := startGateway(t, faultFlags(addr, dir)...)
	stop := make(chan struct{})
	res, wait := runLoad(g, 8, 2, time.Millisecond, stop)
	time.Sleep(time.Second)
	produce := []kmsg.Key{kmsg.Produce}
	h := c.Fault(
		kfake.Fault{Keys: produce, Err: kerr.NotEnoughReplicas, Count: 20},
		kfake.Fault{Keys: produce, Err: kerr.NotLeaderForPartition, Count: 20},
		kfake.Fault{Keys: produce, Err: kerr.RequestTimedOut, Count: 10},
	)
	time.Sleep(6 * time.Second)
	close(stop)
	wait()
	if code := g.stop(t); code != 0 {
		t.Fatalf("exit code %d", code)
	}
	left := replayLeftovers(t, dir, addr)
	d := readBack(t, addr, "beacons", res.acked, 30*time.Second)
	lost, dup := d.check(res.acked)
	t.Logf("injected produce errors (%d faulted requests): %d acknowledged (%d left in the spool at shutdown, replayed), lost %d, duplicated %d, order violations %d, statuses %v",
		h.Hits(), len(res.acked), left, lost, dup, d.orderBreak, res.statuses)
	if h.Hits() == 0 {
		t.Fatalf("no produce request was faulted")
	}
	if lost != 0 || dup != 0 || d.orderBreak != 0 || res.fiveXX() != 0 {
		t.Fatalf("lost %d, duplicated %d, order violations %d, 5xx %d", lost, dup, d.orderBreak, res.fiveXX())
	}
}

// TestFaultSIGKILL: the gateway is killed while Kafka is unreachable and
// records are being spooled. Acknowledged-mode beacons must all arrive
// after a restart on the same spool; async loss is bounded by what was in
// the producer's memory, and the restart reports that bound.
func TestFaultSIGKILL(t *testing.T) {
	c, cut := faultBroker(t, "beacons")
	addr := c.ListenAddrs()[0]
	dir := t.TempDir()
	g := startGateway(t, faultFlags(addr, dir)...)
	stop := make(chan struct{})
	res, wait := runLoad(g, 8, 4, 2*time.Millisecond, stop)
	time.Sleep(2 * time.Second)
	cut.SetDown(true)
	time.Sleep(3 * time.Second) // spooling; the state file is refreshed every second
	if err := g.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-g.done
	g.done <- nil
	close(stop)
	wait()
	cut.SetDown(false)

	g2 := startGateway(t, faultFlags(addr, dir)...)
	kafkatest.WaitFor(t, "the restarted gateway to drain the spool", 60*time.Second, func() bool {
		return metric(t, g2, "beacongate_spool_active") == 0
	})
	possiblyLost := metric(t, g2, "beacongate_records_possibly_lost_total")
	replayed := metric(t, g2, "beacongate_spool_records_replayed_total")
	if code := g2.stop(t); code != 0 {
		t.Fatalf("exit code %d", code)
	}
	d := readBack(t, addr, "beacons", res.ackedMode, 60*time.Second)
	lostAck, _ := d.check(res.ackedMode)
	lostAll, dup := d.check(res.acked)
	t.Logf("SIGKILL while spooling: %d acknowledged (%d in acknowledged mode); replayed after restart %d; lost: acknowledged mode %d, async %d (restart reported up to %d possibly lost); duplicated %d",
		len(res.acked), len(res.ackedMode), int(replayed), lostAck, lostAll-lostAck, int(possiblyLost), dup)
	if lostAck != 0 {
		t.Fatalf("%d acknowledged-mode beacons lost", lostAck)
	}
	if replayed == 0 {
		t.Fatalf("the restart replayed nothing from the spool")
	}
	if float64(lostAll-lostAck) > possiblyLost {
		t.Fatalf("%d async beacons lost, more than the %v the restart reported", lostAll-lostAck, possiblyLost)
	}
}

// TestFaultSpoolFull: Kafka is unreachable and the spool is tiny: requests
// get fast 503s with Retry-After, the process keeps serving, and it
// recovers when Kafka returns; nothing acknowledged is lost.
func TestFaultSpoolFull(t *testing.T) {
	c, cut := faultBroker(t, "beacons")
	addr := c.ListenAddrs()[0]
	g := startGateway(t, faultFlags(addr, t.TempDir(), "-spool.max-bytes", "262144", "-spool.segment-bytes", "65536")...)
	cut.SetDown(true)
	kafkatest.WaitFor(t, "readiness off", 10*time.Second, func() bool {
		st, _, _ := get(t, "http://"+g.http+"/readyz")
		return st == 503
	})
	stop := make(chan struct{})
	res, wait := runLoad(g, 4, 0, 0, stop)
	kafkatest.WaitFor(t, "503s from the full spool", 30*time.Second, func() bool {
		res.mu.Lock()
		defer res.mu.Unlock()
		return res.statuses[503] > 100
	})
	status, hdr, body := get(t, "http://"+g.http+"/i?uid=probe&seq=0")
	if status != 503 || hdr.Get("Retry-After") == "" || !strings.HasPrefix(string(body), "spool_full: ") {
		t.Fatalf("full spool answer: %d %q %q", status, hdr.Get("Retry-After"), body)
	}
	cut.SetDown(false)
	kafkatest.WaitFor(t, "recovery (200s again)", 60*time.Second, func() bool {
		st, _, _ := get(t, "http://"+g.http+"/i?uid=probe&seq=1")
		return st == http.StatusOK
	})
	close(stop)
	wait()
	kafkatest.WaitFor(t, "the spool to drain", 60*time.Second, func() bool { return metric(t, g, "beacongate_spool_active") == 0 })
	if code := g.stop(t); code != 0 {
		t.Fatalf("exit code %d", code)
	}
	d := readBack(t, addr, "beacons", res.acked, 60*time.Second)
	lost, dup := d.check(res.acked)
	t.Logf("spool full: statuses %v, %d acknowledged, lost %d, duplicated %d, order violations %d", res.statuses, len(res.acked), lost, dup, d.orderBreak)
	if lost != 0 || dup != 0 || d.orderBreak != 0 {
		t.Fatalf("lost %d, duplicated %d, order violations %d", lost, dup, d.orderBreak)
	}
	for s := range res.statuses {
		if s >= 500 && s != 503 {
			t.Fatalf("status %d under a full spool: only 503 is expected", s)
		}
	}
}

// TestFaultSlowBroker: every produce request takes 200 ms at the broker.
// Memory must stay bounded (librdkafka's queue, then the spool); the
// test reports the gateway's peak RSS.
func TestFaultSlowBroker(t *testing.T) {
	c, _ := faultBroker(t, "beacons")
	addr := c.ListenAddrs()[0]
	dir := t.TempDir()
	g := startGateway(t, faultFlags(addr, dir)...)
	fast := slowProduce(c, 200*time.Millisecond)
	stop := make(chan struct{})
	res, wait := runLoad(g, 16, 0, 0, stop)
	time.Sleep(8 * time.Second)
	close(stop)
	wait()
	rss := peakRSS(g.cmd.Process.Pid)
	fast()
	if code := g.stop(t); code != 0 {
		t.Fatalf("exit code %d", code)
	}
	left := replayLeftovers(t, dir, addr)
	d := readBack(t, addr, "beacons", res.acked, 60*time.Second)
	lost, dup := d.check(res.acked)
	t.Logf("slow broker (200 ms per produce): %d acknowledged (%d left in the spool at shutdown, replayed), peak RSS %d MiB, lost %d, duplicated %d, statuses %v",
		len(res.acked), left, rss>>20, lost, dup, res.statuses)
	if rss == 0 || rss > 1<<30 {
		t.Fatalf("peak RSS %d bytes: want measured and below 1 GiB", rss)
	}
	if lost != 0 || dup != 0 || res.fiveXX() != 0 {
		t.Fatalf("lost %d, duplicated %d, 5xx %d", lost, dup, res.fiveXX())
	}
}
