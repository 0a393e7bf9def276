package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"google.golang.org/protobuf/proto"

	"github.com/beacongate/beacongate/internal/kafkatest"
	beaconv1 "github.com/beacongate/beacongate/proto/beacongate/v1"
)

// faultBroker is an in-process kfake broker behind a cut-able listener.
func faultBroker(t *testing.T, topic string, opts ...kfake.Opt) (*kfake.Cluster, *kafkatest.CutListener) {
	t.Helper()
	c, cuts := faultCluster(t, 1, topic, opts...)
	return c, cuts[0]
}

// faultCluster is an in-process kfake cluster of n brokers, each behind
// its own cut-able listener (cuts[i] is node i), with topic seeded with 16
// partitions.
func faultCluster(t *testing.T, n int, topic string, opts ...kfake.Opt) (*kfake.Cluster, []*kafkatest.CutListener) {
	t.Helper()
	return kafkatest.Cluster(t, n, append(opts, kfake.SeedTopics(16, topic))...)
}

// exit waits up to timeout for the gateway to exit by itself (a refused
// start) and returns its exit code.
func (g *gateway) exit(t *testing.T, timeout time.Duration) int {
	t.Helper()
	select {
	case <-g.done:
		g.done <- nil // for Cleanup
		return g.cmd.ProcessState.ExitCode()
	case <-time.After(timeout):
		t.Fatalf("gateway still running after %v\n%s", timeout, g.logs.String())
	}
	return -1
}

// logLine returns the last structured log line whose message is msg, or
// nil.
func (g *gateway) logLine(msg string) map[string]any {
	var found map[string]any
	for _, line := range strings.Split(g.logs.String(), "\n") {
		if !strings.Contains(line, msg) {
			continue
		}
		var m map[string]any
		if json.Unmarshal([]byte(line), &m) == nil && m["msg"] == msg {
			found = m
		}
	}
	return found
}

// finalLine is the "shutdown complete" line: what became of the records.
type finalLine struct {
	Delivered, LeftInSpool, Quarantined, Lost int64
}

func (g *gateway) finalLine(t *testing.T) finalLine {
	t.Helper()
	m := g.logLine("shutdown complete")
	if m == nil {
		t.Fatalf("no \"shutdown complete\" line in the log:\n%s", g.logs.String())
	}
	n := func(k string) int64 {
		v, ok := m[k].(float64)
		if !ok {
			t.Fatalf("shutdown complete line without %s: %v", k, m)
		}
		return int64(v)
	}
	return finalLine{n("records_delivered"), n("records_left_in_spool"), n("records_quarantined"), n("records_lost")}
}

// spoolState is what `beacongate spool inspect` prints (read-only).
type spoolState struct {
	Topic   string
	Records int64
	Bytes   int64
	Main    struct {
		Records   int64
		TornBytes int64 `json:"torn_bytes"`
	}
	Kept       struct{ Records int64 }
	Quarantine struct {
		Records int64
		ByCode  map[string]int64 `json:"by_code"`
	}
}

func inspectSpoolDir(t *testing.T, dir string) spoolState {
	t.Helper()
	out, err := exec.Command(kafkatest.GatewayBinary(t), "spool", "inspect", "-spool.dir", dir).Output()
	if err != nil {
		t.Fatalf("spool inspect: %v\n%s", err, out)
	}
	var st spoolState
	if err := json.Unmarshal(out, &st); err != nil {
		t.Fatalf("spool inspect output %q: %v", out, err)
	}
	return st
}

// loadResult is what a load saw from the client side.
type loadResult struct {
	mu        sync.Mutex
	acked     map[string]bool // "uid/seq" answered 2xx
	ackedMode map[string]bool // the subset sent with X-Beacon-Ack: kafka
	statuses  map[int]int
	transport int
}

// runLoad sends pixels from workers users, each sequentially with its own
// increasing seq, until stop is closed. Users whose index is below
// ackUsers ask for acknowledged mode.
func runLoad(g *gateway, workers, ackUsers int, pause time.Duration, stop <-chan struct{}) (*loadResult, func()) {
	res := &loadResult{acked: map[string]bool{}, ackedMode: map[string]bool{}, statuses: map[int]int{}}
	var wg sync.WaitGroup
	client := &http.Client{Timeout: 15 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: workers}}
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			uid := "w" + strconv.Itoa(w)
			for seq := 0; ; seq++ {
				select {
				case <-stop:
					return
				default:
				}
				req, _ := http.NewRequest("GET", fmt.Sprintf("http://%s/i?uid=%s&seq=%d&ev=page_view", g.http, uid, seq), nil)
				if w < ackUsers {
					req.Header.Set("X-Beacon-Ack", "kafka")
				}
				resp, err := client.Do(req)
				res.mu.Lock()
				if err != nil {
					res.transport++
				} else {
					res.statuses[resp.StatusCode]++
					if resp.StatusCode/100 == 2 {
						id := uid + "/" + strconv.Itoa(seq)
						res.acked[id] = true
						if w < ackUsers {
							res.ackedMode[id] = true
						}
					}
				}
				res.mu.Unlock()
				if err == nil {
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
				if pause > 0 {
					time.Sleep(pause)
				}
			}
		}(w)
	}
	return res, wg.Wait
}

func (r *loadResult) fiveXX() int {
	n := 0
	for s, c := range r.statuses {
		if s >= 500 {
			n += c
		}
	}
	return n
}

// delivery is what Kafka holds for a run, read back with franz-go.
type delivery struct {
	seen       map[string]int // "uid/seq" → times delivered
	orderBreak int            // first deliveries of a key out of order
	records    int
}

// readBack reads topic until every id in want is found and a poll of one
// second brings nothing new (so duplicates and records beyond want are
// seen too), or until timeout.
func readBack(t *testing.T, addr, topic string, want map[string]bool, timeout time.Duration) *delivery {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	d := &delivery{seen: map[string]int{}}
	last := map[string]int{}
	missing := len(want)
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		fs := cl.PollFetches(ctx)
		cancel()
		recs := fs.Records()
		if len(recs) == 0 && missing == 0 {
			break
		}
		for _, r := range recs {
			var rec beaconv1.Beacon
			if err := proto.Unmarshal(r.Value, &rec); err != nil {
				t.Fatalf("undecodable record: %v", err)
			}
			seq := seqOf(t, &rec)
			id := string(r.Key) + "/" + strconv.Itoa(seq)
			d.seen[id]++
			d.records++
			if d.seen[id] > 1 {
				// A second copy (at-least-once) is counted as a
				// duplicate; order is that of first deliveries.
				continue
			}
			if want[id] {
				missing--
			}
			if prev, ok := last[string(r.Key)]; ok && seq < prev {
				d.orderBreak++
			}
			last[string(r.Key)] = seq
		}
	}
	return d
}

// check asserts the guarantees for the acknowledged ids and returns
// (lost, duplicated).
func (d *delivery) check(want map[string]bool) (lost, dup int) {
	for id := range want {
		if d.seen[id] == 0 {
			lost++
		}
	}
	for _, n := range d.seen {
		if n > 1 {
			dup += n - 1
		}
	}
	return lost, dup
}

// metric is the sum of every sample of a metric, labelled or not, from
// the gateway's /metrics (0 if absent).
func metric(t *testing.T, g *gateway, name string) float64 {
	t.Helper()
	return metricWhere(t, g, name, "")
}

// metricWhere sums the samples of name whose labels contain label
// (e.g. `code="INVALID_RECORD"`); "" takes them all.
func metricWhere(t *testing.T, g *gateway, name, label string) float64 {
	t.Helper()
	resp, err := http.Get("http://" + g.admin + "/metrics")
	if err != nil {
		t.Fatalf("metrics: %v", err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	sum := 0.0
	for sc.Scan() {
		line := sc.Text()
		rest, ok := strings.CutPrefix(line, name)
		if !ok || rest == "" || (rest[0] != ' ' && rest[0] != '{') {
			continue
		}
		if label != "" && !strings.Contains(rest, label) {
			continue
		}
		i := strings.LastIndexByte(rest, ' ')
		v, _ := strconv.ParseFloat(rest[i+1:], 64)
		sum += v
	}
	return sum
}

// peakRSS is VmHWM of a process, in bytes.
func peakRSS(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "VmHWM:") {
			f := strings.Fields(line)
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			return kb << 10
		}
	}
	return 0
}

// replayLeftovers sends what a stopped gateway left in its spool to Kafka
// with `beacongate spool replay`, as an operator would: under load the
// gateway may spool records it then keeps for its next start, and those
// are safe, not lost. It returns how many there were.
func replayLeftovers(t *testing.T, dir, brokers string) int {
	t.Helper()
	st := inspectSpoolDir(t, dir)
	if st.Records == 0 {
		return 0
	}
	out, err := exec.Command(kafkatest.GatewayBinary(t), "spool", "replay", "-spool.dir", dir, "-kafka.brokers", brokers, "-timeout", "2m").CombinedOutput()
	if err != nil {
		t.Fatalf("spool replay of %d leftover records: %v\n%s", st.Records, err, out)
	}
	return int(st.Records)
}

// slowProduce makes every produce request wait d at the broker until the
// returned function is called, so that replaying a spool takes long
// enough for a signal to arrive in the middle of it.
func slowProduce(c *kfake.Cluster, d time.Duration) (end func()) {
	var slow atomic.Bool
	slow.Store(true)
	c.ControlKey(kmsg.Produce.Int16(), func(kmsg.Request) (kmsg.Response, error, bool) {
		if !slow.Load() {
			c.DropControl() // only works from inside the control function
			return nil, nil, false
		}
		c.KeepControl()
		time.Sleep(d)
		return nil, nil, false
	})
	return func() { slow.Store(false) }
}
