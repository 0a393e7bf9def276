package bench

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// A gateway's CPU is not all its Go code's: librdkafka serves each broker
// connection on a thread of its own ("rdk:broker<id>", and "rdk:main"),
// and the producer keeps librdkafka from lingering for acknowledged
// requests on a thread named "bg:flush". Summing the process's threads by
// name splits its CPU into those parts from the kernel's own per-thread
// counters, on every run: no profiler, no sampling, and the same figure
// in the JSON report as in the text one.
//
// A thread counts from its first reading: one started during a phase
// counts from zero, one that ended during it is missing from the end and
// its CPU from the group (it stays in the process's total). librdkafka's
// broker threads live as long as the producer, so that happens only when
// a broker leaves the cluster mid-run.

// threadGroups are the named parts of a process's CPU, in report order:
// a thread belongs to the first group whose prefix its name starts with.
var threadGroups = []struct{ name, prefix string }{
	{"librdkafka", "rdk:"},
	{"flush thread", "bg:flush"},
}

// ThreadCPU is the CPU of one group of a process's threads over a phase.
type ThreadCPU struct {
	Group      string  `json:"group"`
	Threads    int     `json:"threads"` // at the end of the phase
	CPUSeconds float64 `json:"cpu_s"`
}

// taskStat is one thread's name and CPU time so far.
type taskStat struct {
	name string
	cpu  time.Duration
}

// readTasks reads every thread of the process whose task directory
// (/proc/<pid>/task) is dir, by thread id. A thread that ends while the
// directory is read is left out.
func readTasks(dir string) (map[int]taskStat, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("listing threads: %w", err)
	}
	out := make(map[int]taskStat, len(ents))
	for _, e := range ents {
		tid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, e.Name(), "stat"))
		if err != nil {
			continue // ended meanwhile
		}
		cpu, err := parseStatCPU(b)
		if err != nil {
			return nil, fmt.Errorf("thread %d: %w", tid, err)
		}
		out[tid] = taskStat{name: statComm(b), cpu: cpu}
	}
	return out, nil
}

// statComm is the command field of a /proc stat line: the thread's name,
// between the first '(' and the last ')' (it may hold both).
func statComm(b []byte) string {
	i, j := bytes.IndexByte(b, '('), bytes.LastIndexByte(b, ')')
	if i < 0 || j < i {
		return ""
	}
	return string(b[i+1 : j])
}

// groupCPU sums what each named group of threads used between the
// readings start and end.
func groupCPU(start, end map[int]taskStat) []ThreadCPU {
	var out []ThreadCPU
	for _, g := range threadGroups {
		tc := ThreadCPU{Group: g.name}
		for tid, t := range end {
			if groupOf(t.name) != g.name {
				continue
			}
			tc.Threads++
			d := t.cpu
			// A thread id reused by another thread since the start
			// would show less CPU than before: count it from zero.
			if s, ok := start[tid]; ok && s.name == t.name && s.cpu <= d {
				d -= s.cpu
			}
			tc.CPUSeconds += d.Seconds()
		}
		if tc.Threads > 0 {
			out = append(out, tc)
		}
	}
	return out
}

// groupOf is the group of a thread called name, or "".
func groupOf(name string) string {
	for _, g := range threadGroups {
		if strings.HasPrefix(name, g.prefix) {
			return g.name
		}
	}
	return ""
}

// threadCount is "1 thread" or "n threads".
func threadCount(n int) string {
	if n == 1 {
		return "1 thread"
	}
	return fmt.Sprintf("%d threads", n)
}
