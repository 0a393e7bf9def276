//go:build linux

package producer_test

import (
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"go.uber.org/zap"
	"golang.org/x/sys/unix"

	"github.com/beacongate/beacongate/internal/kafka/producer"
)

const churnRounds = 200

// skipUnlessGlibcTunable skips a test of the producer's malloc tuning
// (what names it) where there is nothing to test: the operator's
// GLIBC_TUNABLES set malloc's parameters, or the allocator is not glibc's
// (notGlibc: the test's probe said so).
func skipUnlessGlibcTunable(t *testing.T, what string, notGlibc bool) {
	t.Helper()
	if strings.Contains(os.Getenv("GLIBC_TUNABLES"), "glibc.malloc.") {
		t.Skip("GLIBC_TUNABLES sets malloc parameters: the environment's, not the producer's, decide " + what + " under test")
	}
	if notGlibc {
		t.Skip("not glibc (musl?): its allocator has its own policy and the producer tunes nothing")
	}
}

// TestCompressionScratchStaysMapped replays what librdkafka allocates and
// frees to compress each batch (~170 KiB) 200 times on a thread of its
// own and counts the thread's page faults. Each run is a process of its
// own: a thread's malloc arena may be shared with other threads, whose
// live blocks would hide the trimming, and a fresh process has few.
//   - glibc's default thresholds: every free trims the arena down to a
//     128 KiB pad and every batch faults the ~42 KiB above it in again,
//     11 pages (malloc.go).
//   - the producer's thresholds (set when the program is loaded; the
//     child also starts a producer): the pages stay, only the first
//     batch faults.
//   - an operator's GLIBC_TUNABLES for malloc: they are left alone
//     (here glibc's defaults, so the churn is back) and New logs it.
func TestCompressionScratchStaysMapped(t *testing.T) {
	skipUnlessGlibcTunable(t, "the thresholds", producer.ChurnFaults(1) == -2)
	defaults, _ := churnInChild(t, "defaults")
	tuned, _ := churnInChild(t, "new")
	kept, out := churnInChild(t, "new", "GLIBC_TUNABLES=glibc.malloc.trim_threshold=131072:glibc.malloc.mmap_threshold=131072")
	t.Logf("%d batches' compression scratch: %d page faults with glibc's defaults, %d after New, %d after New under GLIBC_TUNABLES",
		churnRounds, defaults, tuned, kept)
	if defaults < 5*churnRounds {
		t.Fatalf("with glibc's default thresholds only %d page faults in %d rounds: the churn this guards against did not happen", defaults, churnRounds)
	}
	if tuned > 100 {
		t.Errorf("after New %d page faults in %d rounds (%.1f per batch): compression scratch is given back and faulted in again",
			tuned, churnRounds, float64(tuned)/churnRounds)
	}
	if kept < 5*churnRounds {
		t.Errorf("under the operator's GLIBC_TUNABLES only %d page faults in %d rounds: New changed the thresholds", kept, churnRounds)
	}
	if !strings.Contains(out, "GLIBC_TUNABLES sets malloc parameters") {
		t.Errorf("under GLIBC_TUNABLES New did not log that it leaves the thresholds alone; output:\n%s", out)
	}
}

var faultsLine = regexp.MustCompile(`(?m)^faults=(\d+)$`)

// churnInChild runs TestMallocChurnChild in a new process of this test
// binary with BG_MALLOC_CHILD=mode and env, and returns the page faults
// it printed and its output.
func churnInChild(t *testing.T, mode string, env ...string) (int64, string) {
	t.Helper()
	m, out := inChild(t, "TestMallocChurnChild", faultsLine, nil, append([]string{"BG_MALLOC_CHILD=" + mode}, env...)...)
	n, _ := strconv.ParseInt(m[1], 10, 64)
	return n, out
}

// inChild runs the test run in a new process of this test binary, with
// env added to this one's and on the CPUs cpus (nil: this thread's), and
// returns the submatches of line in its output, and the output.
func inChild(t *testing.T, run string, line *regexp.Regexp, cpus *unix.CPUSet, env ...string) ([]string, string) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^"+run+"$", "-test.count=1", "-test.v", "-test.timeout=60s")
	cmd.Env = append(os.Environ(), env...)
	if cpus != nil {
		// The child inherits the CPUs of the thread that starts it: this
		// one, locked and narrowed for the start, then restored.
		var mine unix.CPUSet
		runtime.LockOSThread()
		if err := unix.SchedGetaffinity(0, &mine); err != nil {
			runtime.UnlockOSThread()
			t.Fatal(err)
		}
		if err := unix.SchedSetaffinity(0, cpus); err != nil {
			runtime.UnlockOSThread()
			t.Fatal(err)
		}
		defer func() {
			if unix.SchedSetaffinity(0, &mine) == nil {
				runtime.UnlockOSThread() // else the thread ends with the goroutine
			}
		}()
	}
	raw, err := cmd.CombinedOutput()
	out := string(raw)
	if err != nil {
		t.Fatalf("child %s %v: %v\n%s", run, env, err, out)
	}
	m := line.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("child %s %v printed no line %q:\n%s", run, env, line, out)
	}
	return m, out
}

// TestMallocChurnChild is TestCompressionScratchStaysMapped's child
// process; it skips unless that test started it.
func TestMallocChurnChild(t *testing.T) {
	switch mode := os.Getenv("BG_MALLOC_CHILD"); mode {
	case "":
		t.Skip("a child process of TestCompressionScratchStaysMapped")
	case "defaults":
		// glibc's defaults, fixed: a free of an mmapped block earlier
		// in the process could have raised them.
		if producer.SetMallocThresholds(128<<10, 128<<10) != 1 {
			t.Fatal("glibc refused its own default thresholds")
		}
	case "new":
		log, err := zap.NewDevelopment() // to stderr, which the parent reads
		if err != nil {
			t.Fatal(err)
		}
		b := startBroker(t, "beacons")
		p, err := producer.New(producer.Config{Brokers: b.Addr(), Topic: "beacons"}, log)
		if err != nil {
			t.Fatal(err)
		}
		defer p.Close()
	default:
		t.Fatalf("BG_MALLOC_CHILD=%q", mode)
	}
	faults := producer.ChurnFaults(churnRounds)
	if faults < 0 {
		t.Fatalf("churn failed: %d", faults)
	}
	fmt.Printf("faults=%d\n", faults)
}

const arenaThreads = 5

// TestMallocArenasBounded starts a producer and then has five threads
// malloc at once, as Go threads producing records do, and counts the
// malloc arenas, each run in a process of its own that may run on at
// most two CPUs:
//   - the producer's limit (set when the program is loaded, before the
//     Go runtime's threads exist): two arenas in all (malloc.go);
//   - an operator's GLIBC_TUNABLES for malloc, which leave the arenas to
//     glibc: each thread gets one of its own, the spread the limit
//     guards against.
func TestMallocArenasBounded(t *testing.T) {
	skipUnlessGlibcTunable(t, "the arena limit", producer.ThreadsMalloc(0) == -2)
	limit, before, after := arenasInChild(t)
	t.Logf("producer's limit %d: %d arenas at start, %d after New and %d threads' mallocs", limit, before, after, arenaThreads)
	if limit != 2 {
		t.Errorf("on at most two CPUs the producer's arena limit is %d", limit)
	}
	if after > 2 {
		t.Errorf("%d arenas (%d at start): the producer's limit of 2 did not hold", after, before)
	}
	limit, before, after = arenasInChild(t, "GLIBC_TUNABLES=glibc.malloc.trim_threshold=131072")
	t.Logf("under GLIBC_TUNABLES: limit %d, %d arenas at start, %d after", limit, before, after)
	if limit != 0 || after-before < arenaThreads {
		t.Errorf("under the operator's GLIBC_TUNABLES (limit %d) %d threads added only %d arenas (%d to %d): the producer limited them, or glibc does not spread",
			limit, arenaThreads, after-before, before, after)
	}
}

var arenasLine = regexp.MustCompile(`(?m)^arena_max=(\d+) arenas_before=(\d+) arenas=(\d+)$`)

// arenasInChild runs TestMallocArenaChild in a new process of this test
// binary on the first two CPUs this one may use (one if it has only one:
// the limit is two either way), with env, and returns the arena limit
// and counts it printed.
func arenasInChild(t *testing.T, env ...string) (limit, before, after int) {
	t.Helper()
	var mine, two unix.CPUSet
	if err := unix.SchedGetaffinity(0, &mine); err != nil {
		t.Fatal(err)
	}
	for c := 0; c < len(mine)*64 && two.Count() < 2; c++ {
		if mine.IsSet(c) {
			two.Set(c)
		}
	}
	m, _ := inChild(t, "TestMallocArenaChild", arenasLine, &two, append([]string{"BG_MALLOC_ARENA_CHILD=1"}, env...)...)
	limit, _ = strconv.Atoi(m[1])
	before, _ = strconv.Atoi(m[2])
	after, _ = strconv.Atoi(m[3])
	return limit, before, after
}

// TestMallocArenaChild is TestMallocArenasBounded's child process; it
// skips unless that test started it.
func TestMallocArenaChild(t *testing.T) {
	if os.Getenv("BG_MALLOC_ARENA_CHILD") == "" {
		t.Skip("a child process of TestMallocArenasBounded")
	}
	before := producer.ThreadsMalloc(0)
	b := startBroker(t, "beacons")
	p, err := producer.New(producer.Config{Brokers: b.Addr(), Topic: "beacons"}, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	after := producer.ThreadsMalloc(arenaThreads)
	if before < 0 || after < 0 {
		t.Fatalf("counting arenas failed: %d, %d", before, after)
	}
	fmt.Printf("arena_max=%d arenas_before=%d arenas=%d\n", producer.MallocArenas(), before, after)
}
