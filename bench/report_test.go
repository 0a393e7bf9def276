package bench

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// syntheticReport is a two-phase report as a run would make it.
func syntheticReport(open bool) *Report {
	c := Config{Spawn: true, Baseline: true}.withDefaults()
	phase := func(name string, rate int64, latency time.Duration) *Phase {
		l := &loadResult{elapsed: 5200 * time.Millisecond, counts: counts{rejected: map[int]int64{}},
			latency: newHist(), service: newHist(), lag: newHist()}
		for s := 0; s < 6; s++ {
			w := window{hist: newHist(), requests: rate, events: rate, acked: rate}
			for i := int64(0); i < rate; i++ {
				d := latency + time.Duration(i%100)*latency/50
				recordMicros(w.hist, d)
				recordMicros(l.latency, d)
			}
			l.windows = append(l.windows, w)
			l.requests += rate
			l.events += rate
			l.ackedReqs += rate
			l.ackedEvents += rate
		}
		if name == "gateway" {
			l.rejected[503] = 3
		}
		p := phaseFromLoad(name, "http://127.0.0.1:8080", l, open)
		p.Server = &ProcessUsage{PID: 42, CPUSeconds: float64(rate) * 6 * 10e-6, PeakRSSBytes: 50 << 20}
		p.Harness = ProcessUsage{CPUSeconds: 1.5}
		p.MachineBusyCores = 1.99
		p.cpuPerEvent(p.AckedEvents)
		return p
	}
	base, gw := phase("baseline", 3000, 300*time.Microsecond), phase("gateway", 1500, 900*time.Microsecond)
	gw.Broker = &ProcessUsage{PID: 43, CPUSeconds: 0.5}
	// A quarter of the gateway's CPU on librdkafka's threads.
	gw.Server.Threads = []ThreadCPU{{Group: "librdkafka", Threads: 3, CPUSeconds: gw.Server.CPUSeconds / 4}, {Group: "flush thread", Threads: 1}}
	gw.Accounting = &Accounting{Sent: gw.Events, Acknowledged: gw.AckedEvents, Delivered: gw.AckedEvents,
		RejectedByStatus: gw.RejectedEvents, Complete: true, RecordsRead: gw.AckedEvents}
	gw.DeliveredEventsPerS = float64(gw.Accounting.Delivered) / gw.ElapsedSeconds
	code, und := 0, 0
	gw.ExitCode, gw.Undelivered = &code, &und
	r := &Report{RunID: "0123456789ab", Started: time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC), GoVersion: "go1.26", CPUs: 2,
		Gateway: "beacongate 1a2b3c4 go1.26",
		Config: RunConfig{Mode: c.Mode, Conns: c.Conns, DurationSeconds: 5, Mix: c.Mix, EventBytes: c.EventBytes,
			BatchEvents: c.BatchEvents, EventsPerRequest: 2.9, Keys: c.Keys, Target: "http://127.0.0.1:8080", Spawned: true,
			GatewayBin: "bin/beacongate", Broker: "separate process", Topic: "beacons"},
		Phases: []*Phase{base, gw}, Problems: []string{}, Notes: []string{}}
	if open {
		r.Config.Mode, r.Config.RateRequestsPerS = "open", 2000
	}
	r.finish()
	return r
}

func TestRatios(t *testing.T) {
	r := syntheticReport(false)
	q := r.Ratios
	if q == nil || q.Throughput != 0.5 || q.CPUPerEvent < 0.99 || q.CPUPerEvent > 1.01 || q.LatencyP99 < 2.9 || q.LatencyP99 > 3.1 {
		t.Fatalf("ratios %+v", q)
	}
	// A quarter of the gateway's CPU is on librdkafka's threads.
	if d := q.CPUPerEventGoThreads - 0.75*q.CPUPerEvent; d < -1e-9 || d > 1e-9 {
		t.Fatalf("CPU per event on the Go threads %v, want three quarters of %v", q.CPUPerEventGoThreads, q.CPUPerEvent)
	}
	r.Phases[1].Server.Threads = nil
	r.finish()
	if r.Ratios.CPUPerEventGoThreads != 0 {
		t.Fatalf("CPU per event on the Go threads %v without a thread split", r.Ratios.CPUPerEventGoThreads)
	}
	if len(r.Problems) != 0 {
		t.Fatalf("problems in a clean run: %v", r.Problems)
	}
	r.Phases[1].Accounting.Lost = 2
	r.Problems = nil
	r.finish()
	if len(r.Problems) != 1 || !strings.Contains(r.Problems[0], "2 acknowledged events are not in Kafka") {
		t.Fatalf("lost events not a problem: %v", r.Problems)
	}
}

func TestJSONReportIsValid(t *testing.T) {
	var buf bytes.Buffer
	if err := writeJSON(&buf, syntheticReport(true)); err != nil {
		t.Fatal(err)
	}
	var back Report
	if err := json.Unmarshal(buf.Bytes(), &back); err != nil {
		t.Fatalf("report JSON does not decode: %v", err)
	}
	gw := back.Phases[1]
	if back.RunID != "0123456789ab" || gw.Accounting == nil || gw.Accounting.Delivered != 9000 ||
		len(gw.Seconds) != 6 || gw.Latency.P99 == 0 || gw.ServiceTime == nil || back.Ratios == nil {
		t.Fatalf("round trip lost figures: %s", buf.String())
	}
}

func TestHTMLReportIsSelfContained(t *testing.T) {
	var buf bytes.Buffer
	if err := writeHTML(&buf, syntheticReport(false)); err != nil {
		t.Fatal(err)
	}
	page := buf.String()
	if c := strings.Count(page, "<svg"); c != 4 {
		t.Fatalf("%d charts, want 4 (throughput, CPU, two latency)", c)
	}
	for _, bad := range []string{"<script", "src=", "href=", "http://", "https://", "@import", "url("} {
		if strings.Contains(page, bad) {
			t.Fatalf("HTML report contains %q: not self-contained", bad)
		}
	}
	for _, want := range []string{"<polyline", "gateway latency", "No problems", "0123456789ab", "gateway beacongate 1a2b3c4"} {
		if !strings.Contains(page, want) {
			t.Fatalf("HTML report lacks %q", want)
		}
	}
}

func TestTextReport(t *testing.T) {
	var buf bytes.Buffer
	if err := writeText(&buf, syntheticReport(true)); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	for _, want := range []string{"baseline", "gateway", "LOST 0", "ratios", "throughput     0.500", "open loop at 2000 requests/s", "scheduled start", "problems: none", "gateway  beacongate 1a2b3c4 go1.26",
		"of it librdkafka (3 threads)", "of it flush thread (1 thread)", "Go threads   0.75"} {
		if !strings.Contains(out, want) {
			t.Fatalf("text report lacks %q:\n%s", want, out)
		}
	}
}

func TestWriteFileLeavesNoHalfReport(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "sub", "report.json")
	if err := writeFile(path, syntheticReport(false), writeJSON); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); err != nil {
		t.Fatal(err)
	}
	entries, _ := os.ReadDir(filepath.Dir(path))
	if len(entries) != 1 {
		t.Fatalf("temporary files left: %v", entries)
	}
}
