package main

import (
	"fmt"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/beacongate/beacongate/internal/kafkatest"
	"github.com/beacongate/beacongate/shard"
)

// TestFaultHotKeyOverflowThroughSpool: a hot key's records are sent while
// the broker is unreachable, so they wait in the spool (key and value
// only) and are replayed: the overflow ones must come out marked in field
// and header and spread over the partitions again, the others on the
// key's partition in order, as must a quiet key's.
func TestFaultHotKeyOverflowThroughSpool(t *testing.T) {
	const partitions = 16 // faultBroker's
	c, cut := faultBroker(t, "beacons")
	addr := c.ListenAddrs()[0]
	g := startGateway(t, faultFlags(addr, t.TempDir(), "-shard.hot-key-rate", "1", "-shard.hot-key-burst", "5")...)
	client := &http.Client{Timeout: 10 * time.Second}
	sent := 0
	send := func(uid string, seq int) {
		t.Helper()
		resp, err := client.Get(fmt.Sprintf("http://%s/i?uid=%s&seq=%d", g.http, uid, seq))
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("pixel %s/%d: status %d", uid, seq, resp.StatusCode)
		}
		sent++
	}
	for seq := range 50 {
		send("bot", seq)
		if seq%50 == 0 { // 5 in all: within its burst
			send("quiet", seq)
		}
	}
	direct := metric(t, g, "beacongate_shard_overflowed_total")

	cut.SetDown(true)
	// Not ready: the relay's view that sends records to the spool.
	kafkatest.WaitFor(t, "readiness off", 15*time.Second, func() bool {
		resp, err := client.Get("http://" + g.http + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusServiceUnavailable
	})
	for seq := 50; seq < 250; seq++ {
		send("bot", seq)
		if seq%50 == 0 { // 5 in all: within its burst
			send("quiet", seq)
		}
	}
	if metric(t, g, "beacongate_spool_active") != 1 {
		t.Fatal("the records sent during the outage did not go to the spool")
	}
	spooled := metric(t, g, "beacongate_spool_records_spooled_total")
	overflowed := metric(t, g, "beacongate_shard_overflowed_total")
	cut.SetDown(false)
	kafkatest.WaitFor(t, "the spool to drain", 30*time.Second, func() bool { return metric(t, g, "beacongate_spool_active") == 0 })
	replayed := metric(t, g, "beacongate_spool_records_replayed_total")
	t.Logf("%d sent, %v overflowed before the outage and %v in all, %v spooled, %v replayed", sent, direct, overflowed, spooled, replayed)
	if spooled < 200 || replayed < 200 || overflowed-direct < 150 {
		t.Fatalf("the outage did not put overflow records through the spool: spooled %v, replayed %v, overflowed during it %v", spooled, replayed, overflowed-direct)
	}

	recs := readRecords(t, addr, sent)
	_, overflow := skewCheck(t, recs, partitions) // unmarked: on the key's partition, in order
	home := shard.Partition([]byte("bot"), partitions)
	spreadTo := map[int32]int{}
	for _, r := range overflow {
		if r.key != "bot" {
			t.Fatalf("a quiet key's record (%s/%d) overflowed", r.key, r.seq)
		}
		if r.seq >= 50 { // through the spool
			spreadTo[r.partition]++
		}
	}
	if float64(len(overflow)) != overflowed {
		t.Fatalf("%d records marked overflow in Kafka, beacongate_shard_overflowed_total %v", len(overflow), overflowed)
	}
	// 150+ replayed overflow records, round-robin over 16 partitions.
	if len(spreadTo) != partitions {
		t.Fatalf("replayed overflow records on %d partitions (%v), want all %d", len(spreadTo), spreadTo, partitions)
	}
	t.Logf("replayed overflow records per partition: %v (the key's own: %d)", spreadTo, home)
}
