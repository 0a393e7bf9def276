package bench

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Resources are read from /proc, so that the gateway, the baseline
// server and the broker are measured the same way from outside, whoever
// started them.

// clockTicks is USER_HZ, the unit of the times in /proc/<pid>/stat and
// /proc/stat. The kernel fixes it at 100 for user space on every
// architecture Go supports, whatever CONFIG_HZ is.
const clockTicks = 100

// procCPU is the CPU time (user + system) process pid has used so far.
func procCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, fmt.Errorf("reading CPU time of process %d: %w", pid, err)
	}
	return parseStatCPU(b)
}

// parseStatCPU reads utime and stime (fields 14 and 15) from the text of
// /proc/<pid>/stat. The command name (field 2) is in parentheses and may
// hold spaces and ')', so fields are counted from the last ')'.
func parseStatCPU(b []byte) (time.Duration, error) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, fmt.Errorf("/proc stat of %d bytes has no ')'", len(b))
	}
	f := strings.Fields(string(b[i+1:]))
	// f[0] is field 3 (state), so field n is f[n-3].
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc stat has %d fields after the command, want >= 13", len(f))
	}
	utime, err1 := strconv.ParseUint(f[11], 10, 64)
	stime, err2 := strconv.ParseUint(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("/proc stat utime %q stime %q: not numbers", f[11], f[12])
	}
	return ticks(utime + stime), nil
}

func ticks(n uint64) time.Duration {
	return time.Duration(n) * (time.Second / clockTicks)
}

// procMem is process pid's peak resident set (VmHWM) and current
// resident set (VmRSS), in bytes.
func procMem(pid int) (peak, rss int64, err error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0, fmt.Errorf("reading memory of process %d: %w", pid, err)
	}
	return parseStatusMem(b)
}

func parseStatusMem(b []byte) (peak, rss int64, err error) {
	sc := bufio.NewScanner(bytes.NewReader(b))
	found := 0
	for sc.Scan() {
		name, val, ok := strings.Cut(sc.Text(), ":")
		if !ok || (name != "VmHWM" && name != "VmRSS") {
			continue
		}
		f := strings.Fields(val)
		if len(f) != 2 || f[1] != "kB" {
			return 0, 0, fmt.Errorf("/proc status %s %q: want \"N kB\"", name, val)
		}
		kb, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			return 0, 0, fmt.Errorf("/proc status %s %q: %w", name, val, err)
		}
		if name == "VmHWM" {
			peak = kb << 10
		} else {
			rss = kb << 10
		}
		found++
	}
	if found != 2 {
		return 0, 0, fmt.Errorf("/proc status of %d bytes lacks VmHWM or VmRSS (kernel thread or zombie?)", len(b))
	}
	return peak, rss, nil
}

// selfCPU is the CPU time (user + system) of this process so far: the
// load generator's own cost. getrusage is exact to the microsecond, where
// /proc counts 10 ms ticks.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// machineCPU is the whole machine's busy and total CPU time so far, from
// the first line of /proc/stat. busy/elapsed is the number of cores in use:
// on a shared machine it says whether the measurement was CPU-bound.
func machineCPU() (busy, total time.Duration, err error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0, fmt.Errorf("reading machine CPU time: %w", err)
	}
	return parseMachineCPU(b)
}

func parseMachineCPU(b []byte) (busy, total time.Duration, err error) {
	line, _, _ := bytes.Cut(b, []byte("\n"))
	f := strings.Fields(string(line))
	// cpu user nice system idle iowait irq softirq steal [guest guest_nice]
	if len(f) < 9 || f[0] != "cpu" {
		return 0, 0, fmt.Errorf("/proc/stat first line %q: want \"cpu\" and 8 counters", line)
	}
	var n [8]uint64
	for i := range n {
		if n[i], err = strconv.ParseUint(f[i+1], 10, 64); err != nil {
			return 0, 0, fmt.Errorf("/proc/stat counter %d %q: %w", i+1, f[i+1], err)
		}
	}
	idle := n[3] + n[4]
	var all uint64
	for _, v := range n {
		all += v
	}
	return ticks(all - idle), ticks(all), nil
}

// procSnapshot is one reading of a process, for deltas over a phase.
type procSnapshot struct {
	pid   int
	cpu   time.Duration
	ok    bool
	tasks map[int]taskStat // its threads (threads.go); nil if unreadable
}

func snapshotProc(pid int) procSnapshot {
	if pid <= 0 {
		return procSnapshot{}
	}
	cpu, err := procCPU(pid)
	return procSnapshot{pid: pid, cpu: cpu, ok: err == nil}
}

// snapshotServer is snapshotProc with the process's threads, whose
// named groups usageSince then reports: for the servers, not the broker.
func snapshotServer(pid int) procSnapshot {
	s := snapshotProc(pid)
	if s.ok {
		s.tasks, _ = readTasks(fmt.Sprintf("/proc/%d/task", pid))
	}
	return s
}

// usageSince is what process s.pid used since s, with its memory now.
func (s procSnapshot) usageSince() *ProcessUsage {
	if !s.ok {
		return nil
	}
	cpu, err := procCPU(s.pid)
	if err != nil {
		return nil
	}
	u := &ProcessUsage{PID: s.pid, CPUSeconds: (cpu - s.cpu).Seconds(), Command: procComm(s.pid)}
	u.PeakRSSBytes, u.RSSBytes, _ = procMem(s.pid)
	if s.tasks != nil {
		if end, err := readTasks(fmt.Sprintf("/proc/%d/task", s.pid)); err == nil {
			u.Threads = groupCPU(s.tasks, end)
		}
	}
	return u
}

// meters measure one phase: readings when its load starts, and a sampler
// that reads the machine and this run's processes every second, so a
// phase disturbed by other work on a shared machine shows it.
type meters struct {
	server, broker procSnapshot
	harness, busy  time.Duration
	at             time.Time
	stop           chan struct{}
	samples        chan []cpuSample
}

// cpuSample is one second of the machine's CPU, in cores.
type cpuSample struct {
	busy, ours float64
}

func startMeters(serverPID, brokerPID int) *meters {
	m := &meters{server: snapshotServer(serverPID), broker: snapshotProc(brokerPID), harness: selfCPU(), at: time.Now(),
		stop: make(chan struct{}), samples: make(chan []cpuSample, 1)}
	m.busy, _, _ = machineCPU()
	go m.sample()
	return m
}

// ours is the CPU used so far by the processes of this run: the harness
// and the server and broker when they are known.
func (m *meters) ours() time.Duration {
	t := selfCPU()
	for _, s := range []procSnapshot{m.server, m.broker} {
		if s.ok {
			if c, err := procCPU(s.pid); err == nil {
				t += c
			}
		}
	}
	return t
}

func (m *meters) sample() {
	var out []cpuSample
	prevBusy, prevOurs, prevAt := m.busy, m.ours(), time.Now()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-m.stop:
			m.samples <- out
			return
		case <-tick.C:
		}
		busy, _, err := machineCPU()
		ours, now := m.ours(), time.Now()
		if err != nil {
			continue
		}
		secs := now.Sub(prevAt).Seconds()
		out = append(out, cpuSample{busy: (busy - prevBusy).Seconds() / secs, ours: (ours - prevOurs).Seconds() / secs})
		prevBusy, prevOurs, prevAt = busy, ours, now
	}
}

// loadDone records the generator's and the machine's CPU over the load,
// per phase and per second.
func (m *meters) loadDone(p *Phase) {
	close(m.stop)
	samples := <-m.samples
	elapsed := time.Since(m.at).Seconds()
	ours := m.ours()
	p.Harness = ProcessUsage{CPUSeconds: (selfCPU() - m.harness).Seconds()}
	p.Harness.PeakRSSBytes, p.Harness.RSSBytes, _ = procMem(os.Getpid())
	busy, _, err := machineCPU()
	if err != nil {
		return
	}
	p.MachineBusyCores = (busy - m.busy).Seconds() / elapsed
	// Without the server's pid its CPU is not "ours": the others figure
	// would include the gateway itself.
	if !m.server.ok {
		return
	}
	start := m.harness + m.server.cpu + m.broker.cpu
	p.OtherCores = max(0, p.MachineBusyCores-(ours-start).Seconds()/elapsed)
	for i := range p.Seconds {
		if i < len(samples) {
			p.Seconds[i].BusyCores = samples[i].busy
			p.Seconds[i].OtherCores = max(0, samples[i].busy-samples[i].ours)
		}
	}
}

// procComm is the name of process pid's executable, so a report shows
// which process it measured (a -gateway-pid of a shell wrapper measures
// the shell, not the gateway). /proc/<pid>/comm would cut it at 15 bytes.
func procComm(pid int) string {
	if exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid)); err == nil {
		return filepath.Base(strings.TrimSuffix(exe, " (deleted)"))
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}
