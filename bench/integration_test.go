package bench

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/beacongate/beacongate/internal/kafkatest"
)

// TestMain lets the test binary play the harness's child processes (the
// baseline server, the broker), as the command does.
func TestMain(m *testing.M) {
	if code, ok := ServeChild(os.Args[1:]); ok {
		os.Exit(code)
	}
	os.Exit(m.Run())
}

// TestSpawnedGatewayLosesNothing runs what `make bench` runs, tiny: the
// baseline, then the real gateway binary with a broker, a mixed load,
// the read-back; nothing may be lost, duplicated or reordered, and the
// reports must be written.
func TestSpawnedGatewayLosesNothing(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the gateway")
	}
	bin := kafkatest.GatewayBinary(t)
	dir := t.TempDir()
	var out, log bytes.Buffer
	start := time.Now()
	rep, err := Run(t.Context(), Config{
		Spawn: true, GatewayBin: bin, Baseline: true,
		Conns: 8, Duration: 2 * time.Second, Requests: 2000,
		JSONPath: filepath.Join(dir, "report.json"), HTMLPath: filepath.Join(dir, "report.html"),
		ReadbackTimeout: 15 * time.Second,
		Out:             &out, Log: &log,
	})
	if err != nil {
		t.Fatalf("run: %v\n%s", err, log.String())
	}
	t.Logf("run took %v\n%s", time.Since(start).Round(time.Millisecond), out.String())
	if len(rep.Phases) != 2 || rep.Phases[0].Name != "baseline" || rep.Phases[1].Name != "gateway" {
		t.Fatalf("phases %v", rep.Phases)
	}
	base, gw := rep.Phases[0], rep.Phases[1]
	if base.AckedRequests == 0 || base.Server == nil || base.Server.CPUSeconds <= 0 {
		t.Fatalf("baseline did not run or was not measured: %+v", base)
	}
	a := gw.Accounting
	if a == nil {
		t.Fatal("no accounting")
	}
	if a.Lost != 0 || a.Duplicated != 0 || a.OrderViolations != 0 || a.KeysSplit != 0 || a.Unreadable != 0 {
		t.Fatalf("accounting: %+v", a)
	}
	if a.Acknowledged == 0 || a.Delivered != a.Acknowledged || a.Sent != a.Acknowledged || !a.Complete {
		t.Fatalf("delivered %d of %d acknowledged, %d sent (complete %v)", a.Delivered, a.Acknowledged, a.Sent, a.Complete)
	}
	// The gateway compresses with Snappy by default; the read-back
	// measured the batches as Kafka stores them.
	if a.Batches == 0 || len(a.Codecs) != 1 || a.Codecs[0] != "snappy" || a.BatchBytes <= 0 || a.BatchBytes >= a.BatchBytesUncompressed {
		t.Fatalf("batches read back: %d, codecs %v, %d bytes stored of %d", a.Batches, a.Codecs, a.BatchBytes, a.BatchBytesUncompressed)
	}
	if !bytes.Contains(out.Bytes(), []byte("B per record as stored (snappy)")) {
		t.Fatalf("text report without Kafka's bytes:\n%s", out.String())
	}
	// The mix is by request; the default one has batches, so events
	// outnumber requests.
	if gw.Events <= gw.Requests || gw.Requests > 2000 {
		t.Fatalf("%d requests carried %d events", gw.Requests, gw.Events)
	}
	if gw.ExitCode == nil || *gw.ExitCode != 0 || gw.Undelivered == nil || *gw.Undelivered != 0 {
		t.Fatalf("gateway shutdown: exit %v undelivered %v", gw.ExitCode, gw.Undelivered)
	}
	if gw.Server == nil || gw.ServerCPUMicrosPerEvent <= 0 || gw.Server.PeakRSSBytes == 0 || gw.Broker == nil {
		t.Fatalf("gateway not measured: server %+v broker %+v", gw.Server, gw.Broker)
	}
	// librdkafka's threads and the flush thread are split out of the
	// gateway's CPU by name; the do-nothing server has neither.
	threads := map[string]ThreadCPU{}
	for _, tc := range gw.Server.Threads {
		threads[tc.Group] = tc
	}
	// rdk:main and one rdk:broker per broker (plus the bootstrap's).
	// /proc counts 10 ms ticks, and this load is short: librdkafka's
	// share may round to 0 (TestReadTasksSeesANamedThread checks the
	// counting itself).
	if l := threads["librdkafka"]; l.Threads < 2 || l.CPUSeconds < 0 || l.CPUSeconds >= gw.Server.CPUSeconds {
		t.Fatalf("librdkafka's threads: %+v of the gateway's %.2fs", l, gw.Server.CPUSeconds)
	}
	if f, ok := threads["flush thread"]; !ok || f.Threads != 1 {
		t.Fatalf("flush thread: %+v (found %v)", f, ok)
	}
	if len(base.Server.Threads) != 0 {
		t.Fatalf("the do-nothing server has named threads: %+v", base.Server.Threads)
	}
	if !bytes.Contains(out.Bytes(), []byte("of it librdkafka (")) {
		t.Fatalf("text report without librdkafka's share:\n%s", out.String())
	}
	if m := gw.GatewayMetrics; m["beacongate_kafka_records_delivered_total"] != float64(a.Delivered) {
		t.Fatalf("gateway counted %v delivered, the read-back %d", m["beacongate_kafka_records_delivered_total"], a.Delivered)
	}
	if q := rep.Ratios; q == nil || q.Throughput <= 0 || q.CPUPerEvent <= 0 || q.CPUPerEventGoThreads <= 0 || q.CPUPerEventGoThreads > q.CPUPerEvent {
		t.Fatalf("ratios %+v", rep.Ratios)
	}
	if len(rep.Problems) != 0 {
		t.Fatalf("problems: %v", rep.Problems)
	}
	for _, f := range []string{"report.json", "report.html"} {
		if st, err := os.Stat(filepath.Join(dir, f)); err != nil || st.Size() == 0 {
			t.Fatalf("%s: %v", f, err)
		}
	}
	if !bytes.Contains(out.Bytes(), []byte("LOST 0  DUPLICATED 0  ORDER VIOLATIONS 0")) {
		t.Fatalf("text report:\n%s", out.String())
	}
}

// TestSpawnedClusterLosesNothing: with -broker-nodes the development
// broker runs several nodes, each leading some partitions, so the real
// gateway's librdkafka keeps a connection and a thread per broker as it
// would against a cluster; every record still arrives, in order, and the
// read-back fetched them from several nodes.
func TestSpawnedClusterLosesNothing(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the gateway")
	}
	bin := kafkatest.GatewayBinary(t)
	var out, log bytes.Buffer
	rep, err := Run(t.Context(), Config{
		Spawn: true, GatewayBin: bin, BrokerNodes: 3,
		Conns: 8, Duration: 2 * time.Second, Requests: 1500,
		JSONPath: "-", HTMLPath: "-", ReadbackTimeout: 15 * time.Second,
		Out: &out, Log: &log,
	})
	if err != nil {
		t.Fatalf("run: %v\n%s", err, log.String())
	}
	t.Logf("%s", out.String())
	if rep.Config.Broker != "separate process, 3 nodes" {
		t.Fatalf("report's broker %q", rep.Config.Broker)
	}
	a := rep.Phases[len(rep.Phases)-1].Accounting
	if a == nil || a.Lost != 0 || a.Duplicated != 0 || a.OrderViolations != 0 || a.KeysSplit != 0 || a.Unreadable != 0 ||
		a.Acknowledged == 0 || a.Delivered != a.Acknowledged || !a.Complete {
		t.Fatalf("accounting: %+v", a)
	}
	// 16 partitions led by nodes drawn at random: all on one node has
	// odds of 3 in 3^16.
	if a.BrokersRead < 2 {
		t.Fatalf("records read from %d brokers, want the partitions' leaders on several", a.BrokersRead)
	}
	if !strings.Contains(out.String(), fmt.Sprintf("read from %d brokers", a.BrokersRead)) {
		t.Fatalf("text report does not say how many brokers:\n%s", out.String())
	}
}

// TestOpenLoopKeepsItsRate drives the baseline server alone at a fixed
// rate: the schedule, not the answers, sets the pace.
func TestOpenLoopKeepsItsRate(t *testing.T) {
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	srv, addr, err := startChild("baseline server", self, []string{serveBaselineArg, "127.0.0.1:0"}, true)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _, _ = srv.stop(5 * time.Second) }()
	c := Config{Mode: "open", Rate: 2000, Conns: 8, Duration: 1500 * time.Millisecond}.withDefaults()
	tr := newTraffic("0123456789ab", c)
	l := runLoad(t.Context(), c, tr, loadTarget{addr: addr, host: addr}, nil)
	if l.requests+l.behind != 3000 {
		t.Fatalf("%d sent + %d behind schedule, want the 3000 scheduled", l.requests, l.behind)
	}
	if l.transportErrors != 0 || l.ackedReqs != l.requests {
		t.Fatalf("%d of %d acknowledged, %d transport errors", l.ackedReqs, l.requests, l.transportErrors)
	}
	// Paced by the schedule, it cannot end early; it ends at the
	// deadline, once the requests sent before it are answered (each within
	// c.Timeout). No bound on how slow this machine may be.
	if l.elapsed < 1400*time.Millisecond || l.elapsed > c.Duration+c.Timeout {
		t.Fatalf("open loop of %v took %v (request timeout %v)", c.Duration, l.elapsed, c.Timeout)
	}
	if got := l.latency.TotalCount(); got != l.requests {
		t.Fatalf("%d latencies for %d requests", got, l.requests)
	}
}

// TestInterleavedRoundsLoseNothing: with -rounds the baseline and the
// gateway take turns. The gateway's users go on with their sequence
// numbers from one slice to the next (a restart would show as
// duplicates and order violations), both phases add up their slices,
// and the report says how the CPU was measured.
func TestInterleavedRoundsLoseNothing(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the gateway")
	}
	bin := kafkatest.GatewayBinary(t)
	var out, log bytes.Buffer
	const rounds = 3
	rep, err := Run(t.Context(), Config{
		Spawn: true, GatewayBin: bin, Baseline: true, Rounds: rounds,
		Conns: 8, Duration: 3 * time.Second, Preset: "pixel",
		JSONPath: "-", HTMLPath: "-", ReadbackTimeout: 15 * time.Second,
		Out: &out, Log: &log,
	})
	if err != nil {
		t.Fatalf("run: %v\n%s", err, log.String())
	}
	t.Logf("%s", out.String())
	if len(rep.Phases) != 2 || rep.Phases[0].Name != "baseline" || rep.Phases[1].Name != "gateway" {
		t.Fatalf("phases %v", rep.Phases)
	}
	base, gw := rep.Phases[0], rep.Phases[1]
	for _, p := range []*Phase{base, gw} {
		// Three slices of 1s each add up (no upper bound: a slice also
		// waits for its in-flight answers, however slow the machine).
		if p.ElapsedSeconds < 2.9 {
			t.Errorf("%s: %.2fs of load over %d slices of 1s", p.Name, p.ElapsedSeconds, rounds)
		}
		if p.Server == nil || p.Server.CPUSeconds <= 0 || p.Harness.CPUSeconds <= 0 {
			t.Errorf("%s not measured: server %+v harness %+v", p.Name, p.Server, p.Harness)
		}
	}
	for i := 1; i <= rounds; i++ {
		if !strings.Contains(log.String(), fmt.Sprintf("round %d/%d: baseline ", i, rounds)) {
			t.Errorf("no round %d in the log:\n%s", i, log.String())
		}
	}
	if strings.Contains(log.String(), "gateway: load on") {
		t.Errorf("the sequential gateway phase ran:\n%s", log.String())
	}
	a := gw.Accounting
	if a == nil || a.Lost != 0 || a.Duplicated != 0 || a.OrderViolations != 0 || a.KeysSplit != 0 || !a.Complete {
		t.Fatalf("accounting: %+v", a)
	}
	if a.Acknowledged == 0 || a.Delivered != a.Acknowledged || a.Sent != a.Acknowledged {
		t.Fatalf("delivered %d of %d acknowledged, %d sent", a.Delivered, a.Acknowledged, a.Sent)
	}
	if rep.Ratios == nil || rep.Ratios.CPUPerEvent <= 0 || rep.Config.Rounds != rounds {
		t.Fatalf("ratios %+v, rounds %d", rep.Ratios, rep.Config.Rounds)
	}
	var noted bool
	for _, n := range rep.Notes {
		noted = noted || strings.HasPrefix(n, "baseline and gateway interleaved: 3 rounds of 1s each")
	}
	if !noted || !strings.Contains(out.String(), "interleaved in 3 rounds of 1s") {
		t.Fatalf("notes %q\n%s", rep.Notes, out.String())
	}
}
