package bench

import (
	"strings"
	"testing"
	"time"
)

// A gateway that kept working through the baseline's slices (an
// overload's spool replay) makes an interleaved run's comparison unsound:
// the note says so past 5% of its CPU, not for the ~1% pixels leave.
func TestInterleaveNoteWarnsOfSpill(t *testing.T) {
	const warn = "use -rounds 1"
	if n := interleaveNote(4, 5*time.Second, 20, 0.2); strings.Contains(n, warn) || !strings.Contains(n, "0.20s (1.0%)") {
		t.Fatalf("1%% spilled: %q", n)
	}
	if n := interleaveNote(4, 5*time.Second, 30, 7); !strings.Contains(n, warn) || !strings.Contains(n, "7.00s (23.3%)") {
		t.Fatalf("23%% spilled: %q", n)
	}
	if n := interleaveNote(4, 5*time.Second, 0, 0); n != "baseline and gateway interleaved: 4 rounds of 5s each; each server's CPU is over the whole run" {
		t.Fatalf("unmeasured gateway: %q", n)
	}
}

// Slices merge into one phase: counts add up, the per-second windows
// follow one another, and the users' states are the last slice's.
func TestLoadResultsMerge(t *testing.T) {
	keys := []*keyState{{uid: "u1"}}
	a := &loadResult{elapsed: time.Second, counts: counts{requests: 10, ackedEvents: 9, rejected: map[int]int64{503: 1}},
		latency: newHist(), service: newHist(), lag: newHist(), windows: []window{{requests: 10}}, keys: keys}
	b := &loadResult{elapsed: 2 * time.Second, counts: counts{requests: 20, ackedEvents: 20, rejected: map[int]int64{503: 2, 429: 1}},
		latency: newHist(), service: newHist(), lag: newHist(), windows: []window{{requests: 12}, {requests: 8}}, keys: keys}
	recordMicros(a.latency, time.Millisecond)
	recordMicros(b.latency, 3*time.Millisecond)
	var r *loadResult
	r = r.merge(a).merge(b)
	if r.elapsed != 3*time.Second || r.requests != 30 || r.ackedEvents != 29 || r.rejected[503] != 3 || r.rejected[429] != 1 {
		t.Fatalf("merged: %+v", r)
	}
	if len(r.windows) != 3 || r.windows[2].requests != 8 || r.latency.TotalCount() != 2 || &r.keys[0] != &keys[0] {
		t.Fatalf("windows %d, latencies %d", len(r.windows), r.latency.TotalCount())
	}
}
