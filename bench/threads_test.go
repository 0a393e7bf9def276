package bench

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// writeTask writes a fake /proc/<pid>/task/<tid>/stat under dir.
func writeTask(t *testing.T, dir string, tid int, name string, utime, stime int) {
	t.Helper()
	d := filepath.Join(dir, fmt.Sprint(tid))
	if err := os.MkdirAll(d, 0o755); err != nil {
		t.Fatal(err)
	}
	stat := fmt.Sprintf("%d (%s) S 1 1 1 0 -1 4194560 100 0 0 0 %d %d 0 0 20 0 4 0 100 1000000 200 18446744073709551615\n", tid, name, utime, stime)
	if err := os.WriteFile(filepath.Join(d, "stat"), []byte(stat), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestGroupCPUSplitsThreadsByName(t *testing.T) {
	dir := t.TempDir()
	writeTask(t, dir, 10, "beacongate", 500, 100)
	writeTask(t, dir, 11, "rdk:main", 1, 0)
	writeTask(t, dir, 12, "rdk:broker1", 200, 100)
	writeTask(t, dir, 13, "bg:flush", 10, 0)
	writeTask(t, dir, 14, "rdk:broker2", 50, 50)
	start, err := readTasks(dir)
	if err != nil || len(start) != 5 {
		t.Fatalf("read %d threads (%v), want 5", len(start), err)
	}
	if start[12].name != "rdk:broker1" || start[12].cpu != 3*time.Second {
		t.Fatalf("thread 12 read as %+v", start[12])
	}

	writeTask(t, dir, 10, "beacongate", 900, 200)  // Go: not a group
	writeTask(t, dir, 12, "rdk:broker1", 300, 150) // +1.5 s
	writeTask(t, dir, 13, "bg:flush", 30, 10)      // +0.3 s
	if err := os.RemoveAll(filepath.Join(dir, "14")); err != nil {
		t.Fatal(err) // a broker thread that ended: its CPU is not known
	}
	writeTask(t, dir, 15, "rdk:broker3", 40, 10) // started meanwhile: +0.5 s
	writeTask(t, dir, 11, "rdk:main", 2, 0)      // +0.01 s
	end, err := readTasks(dir)
	if err != nil {
		t.Fatal(err)
	}
	got := groupCPU(start, end)
	want := []ThreadCPU{{Group: "librdkafka", Threads: 3, CPUSeconds: 2.01}, {Group: "flush thread", Threads: 1, CPUSeconds: 0.3}}
	if len(got) != len(want) {
		t.Fatalf("groups %+v, want %+v", got, want)
	}
	for i := range want {
		if got[i].Group != want[i].Group || got[i].Threads != want[i].Threads || abs(got[i].CPUSeconds-want[i].CPUSeconds) > 1e-9 {
			t.Fatalf("group %d: %+v, want %+v", i, got[i], want[i])
		}
	}
	// A process without such threads (the do-nothing server) has no groups.
	plain := map[int]taskStat{1: {name: "beacongate-bench", cpu: time.Second}}
	if g := groupCPU(plain, plain); g != nil {
		t.Fatalf("groups %+v for a process without named threads", g)
	}
}

func abs(x float64) float64 {
	if x < 0 {
		return -x
	}
	return x
}

// TestReadTasksSeesANamedThread reads this process's own threads: one,
// renamed as librdkafka names its threads, burns CPU, and its group
// shows it.
func TestReadTasksSeesANamedThread(t *testing.T) {
	dir := fmt.Sprintf("/proc/%d/task", os.Getpid())
	start, err := readTasks(dir)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	var before time.Duration
	go func() {
		defer close(done)
		runtime.LockOSThread() // the thread ends with the goroutine: the name goes with it
		name, _ := unix.BytePtrFromString("rdk:test")
		if err := unix.Prctl(unix.PR_SET_NAME, uintptr(unsafe.Pointer(name)), 0, 0, 0); err != nil {
			t.Errorf("naming the thread: %v", err)
			return
		}
		before = threadCPU()
		burn(200 * time.Millisecond)
		end, err := readTasks(dir)
		if err != nil {
			t.Error(err)
			return
		}
		g := groupCPU(start, end)
		if len(g) == 0 || g[0].Group != "librdkafka" || g[0].Threads != 1 {
			t.Errorf("groups %+v, want the one thread named rdk:test", g)
			return
		}
		// /proc counts 10 ms ticks.
		used := (threadCPU() - before).Seconds()
		if g[0].CPUSeconds < used-0.03 || g[0].CPUSeconds > used+0.03+before.Seconds() {
			t.Errorf("group CPU %.3fs, the thread used %.3fs", g[0].CPUSeconds, used)
		}
	}()
	<-done
}

// threadCPU is the calling thread's CPU time.
func threadCPU() time.Duration {
	var ru unix.Rusage
	if err := unix.Getrusage(unix.RUSAGE_THREAD, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func TestThreadMicrosPerEventIsTheShare(t *testing.T) {
	p := &Phase{Server: &ProcessUsage{CPUSeconds: 2}, ServerCPUMicrosPerEvent: 30}
	if got := p.threadMicrosPerEvent(ThreadCPU{CPUSeconds: 0.5}); got != 7.5 {
		t.Fatalf("a quarter of 30 µs per event: got %v", got)
	}
	if got := (&Phase{}).threadMicrosPerEvent(ThreadCPU{CPUSeconds: 0.5}); got != 0 {
		t.Fatalf("no server measured: got %v", got)
	}
}
