package bench

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// burn spends about d of CPU in this goroutine.
func burn(d time.Duration) {
	start := selfCPU()
	x := 1.0
	for selfCPU()-start < d {
		for i := 0; i < 100000; i++ {
			x = x*1.0000001 + 1e-9
		}
	}
	if x == 0 {
		panic("unreachable")
	}
}

func TestProcCPUAgreesWithGetrusage(t *testing.T) {
	pid := os.Getpid()
	before, err := procCPU(pid)
	if err != nil {
		t.Fatal(err)
	}
	rBefore := selfCPU()
	burn(300 * time.Millisecond)
	after, err := procCPU(pid)
	if err != nil {
		t.Fatal(err)
	}
	got, want := after-before, selfCPU()-rBefore
	// /proc counts 10 ms ticks; allow a few of them.
	if d := got - want; d < -40*time.Millisecond || d > 40*time.Millisecond {
		t.Fatalf("/proc says %v of CPU, getrusage %v", got, want)
	}
}

func TestProcMemOfThisProcess(t *testing.T) {
	keep := make([]byte, 32<<20)
	for i := range keep {
		keep[i] = 1 // touch: resident
	}
	peak, rss, err := procMem(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if rss < 32<<20 || peak < rss {
		t.Fatalf("peak %d rss %d bytes after touching 32 MiB", peak, rss)
	}
	_ = keep[len(keep)-1]
	if _, _, err := procMem(1 << 30); err == nil {
		t.Fatal("no error for a process that does not exist")
	}
}

func TestParseStatCPUWithAnAwkwardCommandName(t *testing.T) {
	// Field 2 may hold spaces and parentheses; utime=250 stime=50 ticks.
	stat := "1234 (we(ird) name) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 4 0 100 1000000 200 18446744073709551615\n"
	cpu, err := parseStatCPU([]byte(stat))
	if err != nil || cpu != 3*time.Second {
		t.Fatalf("got %v %v, want 3s", cpu, err)
	}
	if _, err := parseStatCPU([]byte("1234 (x) S 1 2")); err == nil {
		t.Fatal("short stat accepted")
	}
}

func TestMachineCPU(t *testing.T) {
	busy, total, err := machineCPU()
	if err != nil || busy <= 0 || total < busy {
		t.Fatalf("busy %v total %v err %v", busy, total, err)
	}
	b, tot, err := parseMachineCPU([]byte("cpu  100 0 50 800 50 0 0 0 0 0\ncpu0 1 2 3\n"))
	if err != nil || b != 1500*time.Millisecond || tot != 10*time.Second {
		t.Fatalf("parse: busy %v total %v %v", b, tot, err)
	}
	if _, _, err := parseMachineCPU([]byte("intr 1 2 3")); err == nil || !strings.Contains(err.Error(), "cpu") {
		t.Fatalf("bad /proc/stat: %v", err)
	}
}

func TestParseMetrics(t *testing.T) {
	text := `# HELP beacongate_events_accepted_total x
# TYPE beacongate_events_accepted_total counter
beacongate_events_accepted_total{kind="pixel"} 10
beacongate_events_accepted_total{kind="beacon"} 5
beacongate_kafka_records_produced_total 15
beacongate_kafka_records_produced_total_other 99
beacongate_kafka_records_failed_total{code="x {y}"} 1e0
`
	m, err := parseMetrics(strings.NewReader(text), []string{"beacongate_events_accepted_total", "beacongate_kafka_records_produced_total", "beacongate_kafka_records_failed_total"})
	if err != nil {
		t.Fatal(err)
	}
	if m["beacongate_events_accepted_total"] != 15 || m["beacongate_kafka_records_produced_total"] != 15 || m["beacongate_kafka_records_failed_total"] != 1 {
		t.Fatalf("%v", m)
	}
}

func TestProcCommNamesTheExecutable(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	if got := procComm(os.Getpid()); got != filepath.Base(exe) {
		t.Fatalf("procComm = %q, want %q", got, filepath.Base(exe))
	}
}
