package main

import (
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/beacongate/beacongate/internal/kafkatest"
)

// Fault tests of the way out: what a SIGTERM does with records that wait
// in the spool or in librdkafka's memory, how long it may take, what the
// last log line and the exit code say, and batches that do not fit. Each
// runs the real binary against an in-process kfake broker, checks that the
// fault happened, then reads Kafka back.

// spoolUnderOutage runs a paced load while the broker is cut for outage,
// stops the load, and returns what the clients were told. The caller
// decides when the broker comes back.
func spoolUnderOutage(t *testing.T, g *gateway, cut *kafkatest.CutListener, workers int, outage time.Duration) *loadResult {
	t.Helper()
	stop := make(chan struct{})
	res, wait := runLoad(g, workers, 0, 0, stop)
	time.Sleep(500 * time.Millisecond)
	cut.SetDown(true)
	time.Sleep(outage)
	close(stop)
	wait()
	if n := metric(t, g, "beacongate_spool_records"); n == 0 {
		t.Fatalf("the outage spooled nothing (statuses %v)", res.statuses)
	}
	return res
}

// stopped is what a gateway stopped by SIGTERM while Kafka was down left
// behind, and what Kafka holds once it is back and the spool has been
// replayed as an operator would.
type stopped struct {
	code     int           // exit code
	took     time.Duration // from SIGTERM to exit
	final    finalLine
	spool    spoolState // spool inspect after the exit
	replayed int        // records `spool replay` sent afterwards
	d        *delivery
	lost     int
	dup      int
}

// stopWithKafkaDown sends SIGTERM while the broker is cut, lets the slow
// broker go (fast), then restores the broker, replays the spool and reads
// acked back.
func stopWithKafkaDown(t *testing.T, g *gateway, cut *kafkatest.CutListener, fast func(), dir, addr string, acked map[string]bool) stopped {
	t.Helper()
	var s stopped
	start := time.Now()
	s.code = g.stop(t)
	s.took = time.Since(start)
	fast()
	s.final = g.finalLine(t)
	s.spool = inspectSpoolDir(t, dir)
	cut.SetDown(false)
	s.replayed = replayLeftovers(t, dir, addr)
	s.d = readBack(t, addr, "beacons", acked, 60*time.Second)
	s.lost, s.dup = s.d.check(acked)
	return s
}

// TestFaultSIGTERMDrainsTheSpool: after an outage, with Kafka back, a
// SIGTERM replays the whole spool into Kafka before the process exits: a
// pod whose disk goes away with it (scale-in, emptyDir) strands nothing.
// The spool still holds records when the signal arrives (replay is slowed
// at the broker), and afterwards it is empty without any operator replay.
func TestFaultSIGTERMDrainsTheSpool(t *testing.T) {
	c, cut := faultBroker(t, "beacons")
	addr := c.ListenAddrs()[0]
	dir := t.TempDir()
	g := startGateway(t, faultFlags(addr, dir, "-shutdown.timeout", "60s")...)
	res := spoolUnderOutage(t, g, cut, 8, 4*time.Second)
	fast := slowProduce(c, 50*time.Millisecond)
	defer fast()
	cut.SetDown(false)
	kafkatest.WaitFor(t, "replay to begin", 30*time.Second, func() bool {
		return metric(t, g, "beacongate_kafka_queue_messages") > 0 && metric(t, g, "beacongate_spool_active") == 1
	})
	waiting := metric(t, g, "beacongate_spool_records")
	if waiting == 0 {
		t.Fatalf("the spool was already empty at SIGTERM: nothing to drain")
	}
	go func() { time.Sleep(time.Second); fast() }() // the broker speeds up during the drain
	if code := g.stop(t); code != 0 {
		t.Fatalf("exit code %d after a drain with Kafka healthy", code)
	}
	f := g.finalLine(t)
	st := inspectSpoolDir(t, dir)
	d := readBack(t, addr, "beacons", res.acked, 60*time.Second)
	lost, dup := d.check(res.acked)
	t.Logf("SIGTERM after an outage: %d acknowledged, %v records in the spool at SIGTERM; final line: delivered %d, left in spool %d, lost %d; spool inspect after exit: %d records; in Kafka: lost %d, duplicated %d, order violations %d",
		len(res.acked), waiting, f.Delivered, f.LeftInSpool, f.Lost, st.Records, lost, dup, d.orderBreak)
	if f.LeftInSpool != 0 || st.Records != 0 || f.Lost != 0 {
		t.Fatalf("a graceful stop with Kafka healthy left %d (inspect: %d) records in the spool and lost %d", f.LeftInSpool, st.Records, f.Lost)
	}
	if lost != 0 || dup != 0 || d.orderBreak != 0 {
		t.Fatalf("lost %d, duplicated %d, order violations %d", lost, dup, d.orderBreak)
	}
}

// TestFaultShutdownDuringReplayWithKafkaDown: Kafka goes away again in
// the middle of a replay round and the gateway is told to stop. The round
// waits for librdkafka's verdict on its records (message.timeout.ms, 5
// minutes by default), so an unbounded wait would hold the pod past any
// grace period; the shutdown must end within -shutdown.timeout, keep every
// record in the spool, exit 0, and a later replay must deliver them all.
func TestFaultShutdownDuringReplayWithKafkaDown(t *testing.T) {
	c, cut := faultBroker(t, "beacons")
	addr := c.ListenAddrs()[0]
	dir := t.TempDir()
	const timeout = 5 * time.Second
	g := startGateway(t, faultFlags(addr, dir, "-shutdown.timeout", timeout.String())...)
	res := spoolUnderOutage(t, g, cut, 8, 4*time.Second)
	fast := slowProduce(c, 200*time.Millisecond)
	defer fast()
	cut.SetDown(false)
	kafkatest.WaitFor(t, "a replay round in flight", 30*time.Second, func() bool {
		return metric(t, g, "beacongate_kafka_queue_messages") > 0 && metric(t, g, "beacongate_spool_active") == 1
	})
	cut.SetDown(true)
	inFlight := metric(t, g, "beacongate_kafka_queue_messages")
	s := stopWithKafkaDown(t, g, cut, fast, dir, addr, res.acked)
	code, took, f, st, left, d, lost, dup := s.code, s.took, s.final, s.spool, s.replayed, s.d, s.lost, s.dup
	t.Logf("SIGTERM during a replay round, Kafka down: %d acknowledged, %v records in the producer at SIGTERM; exit %d after %v (-shutdown.timeout %v); final line: left in spool %d, lost %d; inspect %d; replayed later %d; in Kafka: lost %d, duplicated %d (the interrupted round, at-least-once), order violations %d",
		len(res.acked), inFlight, code, took.Round(time.Millisecond), timeout, f.LeftInSpool, f.Lost, st.Records, left, lost, dup, d.orderBreak)
	if code != 0 || f.Lost != 0 {
		t.Fatalf("exit code %d, %d lost: every record was kept in the spool", code, f.Lost)
	}
	// The drain period is 0 in these tests; the rest must fit in the
	// shutdown budget (plus a margin for librdkafka's own close with an
	// unreachable broker and the process exit).
	if took > timeout+10*time.Second {
		t.Fatalf("shutdown took %v, past -shutdown.timeout %v", took, timeout)
	}
	if f.LeftInSpool == 0 || f.LeftInSpool != st.Records {
		t.Fatalf("final line says %d records left in the spool, inspect finds %d (want the same, > 0)", f.LeftInSpool, st.Records)
	}
	if lost != 0 || d.orderBreak != 0 {
		t.Fatalf("lost %d, order violations %d", lost, d.orderBreak)
	}
}

// TestFaultShutdownTellsTheTruth: the last log line and the exit code say
// what became of the records. Without a spool and with Kafka down, records
// answered 2xx die with the process: the exit code is 1 and the final
// line counts exactly the acknowledged records that never reached Kafka.
// With a spool, the same stop keeps them: exit 0, and the final line's
// count of records left in the spool is the one spool inspect finds.
func TestFaultShutdownTellsTheTruth(t *testing.T) {
	t.Run("no spool", func(t *testing.T) {
		c, cut := faultBroker(t, "beacons")
		addr := c.ListenAddrs()[0]
		g := startGateway(t, faultFlags(addr, "", "-shutdown.timeout", "3s")...)
		cut.SetDown(true)
		kafkatest.WaitFor(t, "readiness off", 10*time.Second, func() bool {
			st, _, _ := get(t, "http://"+g.http+"/readyz")
			return st == 503
		})
		acked := map[string]bool{}
		for i := 0; i < 200; i++ {
			st, _, _ := get(t, fmt.Sprintf("http://%s/i?uid=u%d&seq=%d", g.http, i%10, i/10))
			if st/100 == 2 {
				acked[fmt.Sprintf("u%d/%d", i%10, i/10)] = true
			}
		}
		if len(acked) == 0 {
			t.Fatalf("nothing acknowledged with Kafka down and no spool: the fault did not happen")
		}
		code := g.stop(t)
		f := g.finalLine(t)
		cut.SetDown(false)
		d := readBack(t, addr, "beacons", acked, 5*time.Second)
		lost, _ := d.check(acked)
		t.Logf("no spool, Kafka down at SIGTERM: %d acknowledged, %d in Kafka, %d not; exit %d; final line: delivered %d, lost %d",
			len(acked), len(acked)-lost, lost, code, f.Delivered, f.Lost)
		if code == 0 {
			t.Fatalf("exit code 0 although %d records were lost", lost)
		}
		if lost == 0 || f.Lost != int64(lost) {
			t.Fatalf("final line counts %d lost, Kafka misses %d acknowledged records", f.Lost, lost)
		}
	})
	t.Run("spool", func(t *testing.T) {
		c, cut := faultBroker(t, "beacons")
		addr := c.ListenAddrs()[0]
		dir := t.TempDir()
		// A shutdown budget far too short to hand ~20,000 records back to
		// the spool within it (about 10 µs each): moving them to local
		// disk may overrun the budget, closing the spool under them may
		// not (they would be lost).
		g := startGateway(t, faultFlags(addr, dir, "-shutdown.timeout", "100ms")...)
		// Records in librdkafka's memory when Kafka goes away (a slow
		// broker holds them) are handed back at shutdown; later ones go
		// straight to the spool.
		fast := slowProduce(c, 300*time.Millisecond)
		defer fast()
		stop := make(chan struct{})
		res, wait := runLoad(g, 8, 0, 0, stop)
		time.Sleep(time.Second)
		cut.SetDown(true)
		time.Sleep(time.Second)
		close(stop)
		wait()
		inMemory := metric(t, g, "beacongate_kafka_queue_messages")
		s := stopWithKafkaDown(t, g, cut, fast, dir, addr, res.acked)
		code, f, st, left, d, lost, dup := s.code, s.final, s.spool, s.replayed, s.d, s.lost, s.dup
		t.Logf("spool, Kafka down at SIGTERM: %d acknowledged, %v in the producer at SIGTERM; exit %d; final line: delivered %d, left in spool %d (kept lane %d), lost %d; inspect %d; replayed later %d; in Kafka: lost %d, duplicated %d, order violations %d",
			len(res.acked), inMemory, code, f.Delivered, f.LeftInSpool, st.Kept.Records, f.Lost, st.Records, left, lost, dup, d.orderBreak)
		if inMemory == 0 || st.Kept.Records == 0 {
			t.Fatalf("no record was in librdkafka's memory at SIGTERM (%v) or handed back to the kept lane (%d): the fault did not happen", inMemory, st.Kept.Records)
		}
		if code != 0 || f.Lost != 0 || lost != 0 {
			t.Fatalf("exit %d, final line lost %d, Kafka misses %d", code, f.Lost, lost)
		}
		if f.LeftInSpool != st.Records || int64(left) != st.Records {
			t.Fatalf("final line says %d left in the spool, inspect finds %d, replay sent %d", f.LeftInSpool, st.Records, left)
		}
		// Records librdkafka had sent when Kafka went away may have been
		// written although no answer came back; they are handed back with
		// the rest and replayed (at-least-once). Only those can repeat.
		if dup > int(st.Kept.Records) || d.orderBreak != 0 {
			t.Fatalf("duplicated %d (more than the %d records handed back), order violations %d", dup, st.Kept.Records, d.orderBreak)
		}
	})
}

// TestFaultBatchAllOrNothing: a batch that does not fit is refused whole,
// through the real relay, on both paths. With Kafka down and a small
// spool, and without a spool with a small producer queue, batches are
// sent until they are refused; after Kafka returns, every batch is either
// wholly in Kafka (answered 200) or wholly absent (answered 503): a client
// that retries a refused batch duplicates nothing.
func TestFaultBatchAllOrNothing(t *testing.T) {
	for _, tc := range []struct {
		name  string
		flags []string
	}{
		{"spool full", []string{"-spool.max-bytes", "65536", "-spool.segment-bytes", "16384"}},
		{"queue full", []string{"-spool.dir=", "-kafka.config", "queue.buffering.max.messages=130"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, cut := faultBroker(t, "beacons")
			addr := c.ListenAddrs()[0]
			g := startGateway(t, faultFlags(addr, t.TempDir(), tc.flags...)...)
			cut.SetDown(true)
			kafkatest.WaitFor(t, "readiness off", 10*time.Second, func() bool {
				st, _, _ := get(t, "http://"+g.http+"/readyz")
				return st == 503
			})
			const perBatch = 25
			statuses := map[int]int{}
			batches := map[int]int{} // batch → status
			pad := strings.Repeat("x", 300)
			for b := 0; b < 400 && statuses[503] < 5; b++ {
				var sb strings.Builder
				sb.WriteByte('[')
				for i := 0; i < perBatch; i++ {
					if i > 0 {
						sb.WriteByte(',')
					}
					fmt.Fprintf(&sb, `{"user_id":"b%d","pad":%q,"seq":%d}`, b, pad, i)
				}
				sb.WriteByte(']')
				resp, err := http.Post("http://"+g.http+"/batch", "application/json", strings.NewReader(sb.String()))
				if err != nil {
					t.Fatal(err)
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				statuses[resp.StatusCode]++
				batches[b] = resp.StatusCode
				if resp.StatusCode != 200 && resp.StatusCode != 503 {
					t.Fatalf("batch %d: %d %s", b, resp.StatusCode, body)
				}
				if resp.StatusCode == 200 && !strings.Contains(string(body), `"accepted":`+strconv.Itoa(perBatch)) {
					t.Fatalf("batch %d partly accepted: %s", b, body)
				}
			}
			if statuses[200] == 0 || statuses[503] == 0 {
				t.Fatalf("statuses %v: want batches accepted, then refused at capacity", statuses)
			}
			cut.SetDown(false)
			want := map[string]bool{}
			for b, st := range batches {
				if st == 200 {
					for i := 0; i < perBatch; i++ {
						want["b"+strconv.Itoa(b)+"/"+strconv.Itoa(i)] = true
					}
				}
			}
			d := readBack(t, addr, "beacons", want, 60*time.Second)
			lost, dup := d.check(want)
			partial := 0
			for b, st := range batches {
				n := 0
				for i := 0; i < perBatch; i++ {
					n += d.seen["b"+strconv.Itoa(b)+"/"+strconv.Itoa(i)]
				}
				if (st == 200 && n != perBatch) || (st == 503 && n != 0) {
					partial++
				}
			}
			t.Logf("batches of %d over capacity (%s): statuses %v; in Kafka: lost %d, duplicated %d, batches partly there %d",
				perBatch, tc.name, statuses, lost, dup, partial)
			if lost != 0 || dup != 0 || partial != 0 {
				t.Fatalf("lost %d, duplicated %d, partial batches %d", lost, dup, partial)
			}
		})
	}
}
