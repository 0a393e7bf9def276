// Package kafkatest holds what the gateway's tests share to check it
// against Kafka from the outside: reading a topic back with an independent
// client (franz-go), waiting for a condition with a deadline, taking a
// kfake broker off the network without losing its state, and building the
// real gateway binary once per test process. Only tests import it.
package kafkatest

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Consume reads topic from its start with franz-go (brokers: a
// comma-separated host:port list; opts add TLS, SASL…)
// until it has n records, and fails the test if they do not come within
// timeout. It then polls once more, briefly, so that records beyond n (a
// duplicate) are returned too.
func Consume(t testing.TB, brokers, topic string, n int, timeout time.Duration, opts ...kgo.Opt) []*kgo.Record {
	t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(strings.Split(brokers, ",")...), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart())}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var recs []*kgo.Record
	for len(recs) < n {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("read %d records of %d from %s within %v", len(recs), n, topic, timeout)
		}
		fs.EachError(func(tp string, p int32, err error) { t.Logf("fetch %s/%d: %v", tp, p, err) })
		recs = append(recs, fs.Records()...)
	}
	extra, cancelExtra := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancelExtra()
	return append(recs, cl.PollFetches(extra).Records()...)
}

// WaitFor polls cond every 20 ms and fails the test if it is not true
// within timeout.
func WaitFor(t testing.TB, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// CutListener lets a test take a broker off the network without
// restarting it: SetDown(true) closes every connection and refuses new
// ones, so the broker keeps its state (idempotent producer sequences,
// partition leadership) and a duplicate cannot hide behind a restart.
type CutListener struct {
	net.Listener
	mu    sync.Mutex
	down  bool
	conns map[net.Conn]struct{}
}

// Accept implements net.Listener.
func (l *CutListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		l.mu.Lock()
		if l.down {
			l.mu.Unlock()
			c.Close()
			continue
		}
		l.conns[c] = struct{}{}
		l.mu.Unlock()
		return c, nil
	}
}

// SetDown takes the broker off the network (true) or back (false).
func (l *CutListener) SetDown(down bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.down = down
	if down {
		for c := range l.conns {
			c.Close()
		}
		clear(l.conns)
	}
}

// Cluster starts an in-process kfake cluster of n brokers, each behind its
// own CutListener (cuts[i] is node i), closed when the test ends.
func Cluster(t testing.TB, n int, opts ...kfake.Opt) (*kfake.Cluster, []*CutListener) {
	t.Helper()
	var mu sync.Mutex
	var cuts []*CutListener
	opts = append(opts, kfake.NumBrokers(n), kfake.ListenFn(func(network, addr string) (net.Listener, error) {
		ln, err := net.Listen(network, addr)
		if err != nil {
			return nil, err
		}
		cl := &CutListener{Listener: ln, conns: map[net.Conn]struct{}{}}
		mu.Lock()
		cuts = append(cuts, cl)
		mu.Unlock()
		return cl, nil
	}))
	c, err := kfake.NewCluster(opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c, cuts
}

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// GatewayBinary builds the real gateway (cgo, librdkafka) once per test
// process and returns its path; the tests of every package share the
// build cache.
func GatewayBinary(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "beacongate-bin")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "beacongate")
		out, err := exec.Command("go", "build", "-o", binPath, "github.com/beacongate/beacongate/cmd/beacongate").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build of the gateway: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

// UserKeys returns n distinct record keys ("user-0", "user-1", ...): a
// load spread over every partition, as many users' events are.
func UserKeys(n int) [][]byte {
	keys := make([][]byte, n)
	for i := range keys {
		keys[i] = []byte("user-" + strconv.Itoa(i))
	}
	return keys
}
