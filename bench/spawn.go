package bench

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"strconv"
	"sync"
	"syscall"
	"time"

	"go.uber.org/zap"

	"github.com/beacongate/beacongate/internal/kafka/embedded"
)

// The harness runs everything it measures as separate processes (the
// gateway, the baseline server, the development broker), so each one's CPU
// and memory can be read from /proc, apart from the load generator's.

// child is a process the harness started.
type child struct {
	name string
	cmd  *exec.Cmd
	logs *tailBuffer
	done chan struct{} // closed when the process has exited
}

// tailBuffer keeps the last 64 KB a child wrote, for error messages.
type tailBuffer struct {
	mu sync.Mutex
	b  []byte
}

const tailBytes = 64 << 10

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b = append(t.b, p...)
	if len(t.b) > tailBytes {
		t.b = append(t.b[:0], t.b[len(t.b)-tailBytes:]...)
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.b)
}

// startChild starts bin with args. With readyLine, the child's first
// stdout line must be "listening ADDR"; startChild waits for it (up to
// 30 s) and returns ADDR.
func startChild(name, bin string, args []string, readyLine bool) (*child, string, error) {
	c := &child{name: name, cmd: exec.Command(bin, args...), logs: &tailBuffer{}, done: make(chan struct{})}
	// A harness killed in the middle must not leave a loaded gateway
	// behind.
	c.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	c.cmd.Stderr = c.logs
	var stdout io.Reader
	if readyLine {
		p, err := c.cmd.StdoutPipe()
		if err != nil {
			return nil, "", fmt.Errorf("starting %s: %w", name, err)
		}
		stdout = p
	} else {
		c.cmd.Stdout = c.logs
	}
	if err := c.cmd.Start(); err != nil {
		return nil, "", fmt.Errorf("starting %s (%s): %w", name, bin, err)
	}
	if !readyLine {
		go func() { _ = c.cmd.Wait(); close(c.done) }()
		return c, "", nil
	}
	type line struct {
		s   string
		err error
	}
	first := make(chan line, 1)
	go func() {
		r := bufio.NewReader(stdout)
		s, err := r.ReadString('\n')
		first <- line{s, err}
		_, _ = io.Copy(c.logs, r)
		_ = c.cmd.Wait()
		close(c.done)
	}()
	select {
	case l := <-first:
		var addr string
		if _, err := fmt.Sscanf(l.s, "listening %s", &addr); err != nil {
			c.kill()
			return nil, "", fmt.Errorf("%s did not start: first line %q (%v): %s", name, l.s, l.err, c.logs.String())
		}
		return c, addr, nil
	case <-time.After(30 * time.Second):
		c.kill()
		return nil, "", fmt.Errorf("%s did not say it was listening within 30s: %s", name, c.logs.String())
	}
}

func (c *child) pid() int { return c.cmd.Process.Pid }

func (c *child) exited() bool {
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}

// stop sends SIGTERM and waits up to timeout for the exit, then kills.
// It returns the exit code (-1 when killed).
func (c *child) stop(timeout time.Duration) (int, error) {
	if !c.exited() {
		_ = c.cmd.Process.Signal(syscall.SIGTERM)
	}
	select {
	case <-c.done:
		return c.cmd.ProcessState.ExitCode(), nil
	case <-time.After(timeout):
		c.kill()
		return -1, fmt.Errorf("%s did not exit within %v of SIGTERM: killed", c.name, timeout)
	}
}

// kill ends the process at once; for cleanup after an error.
func (c *child) kill() {
	if !c.exited() {
		_ = c.cmd.Process.Kill()
	}
	<-c.done
}

// freeAddr is a loopback address with a port that was free a moment ago.
func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("finding a free loopback port: %w", err)
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// spawned is a gateway (and its broker) the harness started.
type spawned struct {
	gateway *child
	broker  *child // nil with the broker inside the gateway
	httpURL string
	admin   string // http://host:port
	brokers string
	dataDir string
}

// spawnGateway starts the broker (unless embedded) and the gateway on
// free loopback ports and waits until /readyz answers 200.
func spawnGateway(ctx context.Context, c Config, log func(string, ...any)) (*spawned, error) {
	dir, err := os.MkdirTemp("", "beacongate-bench-")
	if err != nil {
		return nil, fmt.Errorf("creating the broker's data directory: %w", err)
	}
	s := &spawned{dataDir: filepath.Join(dir, "kafka")}
	httpAddr, err1 := freeAddr()
	adminAddr, err2 := freeAddr()
	if err := errors.Join(err1, err2); err != nil {
		s.cleanup()
		return nil, err
	}
	args := []string{"-http.listen", httpAddr, "-admin.listen", adminAddr, "-kafka.topic", c.Topic,
		"-gateway.id", "beacongate-bench",
		// No load balancer to warn: shut down at once.
		"-shutdown.drain", "0s",
		// Its own spool, never the one of a `make run` in the same tree.
		"-spool.dir", filepath.Join(dir, "spool")}
	if c.EmbeddedBroker {
		kafkaAddr, err := freeAddr()
		if err != nil {
			s.cleanup()
			return nil, err
		}
		s.brokers = kafkaAddr
		args = append(args, "-embedded.listen", kafkaAddr, "-embedded.data-dir", s.dataDir,
			"-embedded.partitions", strconv.Itoa(c.Partitions))
	} else {
		self, err := selfBin(c)
		if err != nil {
			s.cleanup()
			return nil, err
		}
		s.broker, s.brokers, err = startChild("broker", self,
			[]string{serveBrokerArg, "127.0.0.1:0", s.dataDir, strconv.Itoa(c.Partitions), c.Topic, strconv.Itoa(c.BrokerNodes)}, true)
		if err != nil {
			s.cleanup()
			return nil, err
		}
		log("broker (separate process, pid %d) on %s", s.broker.pid(), s.brokers)
		args = append(args, "-kafka.brokers", s.brokers)
	}
	args = append(args, c.GatewayArgs...)
	s.gateway, _, err = startChild("gateway", c.GatewayBin, args, false)
	if err != nil {
		s.cleanup()
		return nil, err
	}
	s.httpURL, s.admin = "http://"+httpAddr, "http://"+adminAddr
	if err := waitReady(ctx, s.gateway, s.httpURL+"/readyz", time.Minute); err != nil {
		s.cleanup()
		return nil, err
	}
	log("gateway %s (pid %d) ready on %s, admin %s", c.GatewayBin, s.gateway.pid(), s.httpURL, s.admin)
	return s, nil
}

// waitReady polls url until it answers 200, the process p (when not
// nil) exits, or timeout (0: one try).
func waitReady(ctx context.Context, p *child, url string, timeout time.Duration) error {
	client := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(timeout)
	var last string
	for {
		resp, err := client.Get(url)
		if err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			last = resp.Status
		} else {
			last = err.Error()
		}
		if p == nil {
			if time.Now().After(deadline) || ctx.Err() != nil {
				return fmt.Errorf("target not answering at %s: %s", url, last)
			}
		} else {
			if p.exited() {
				return fmt.Errorf("%s exited before it was ready (exit code %d): %s", p.name, p.cmd.ProcessState.ExitCode(), p.logs.String())
			}
			if time.Now().After(deadline) || ctx.Err() != nil {
				return fmt.Errorf("%s not ready at %s within %v (last: %s): %s", p.name, url, timeout, last, p.logs.String())
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
}

var undeliveredRE = regexp.MustCompile(`"undelivered":(\d+)`)

// stopGateway SIGTERMs the gateway, then the broker, and returns the
// gateway's exit code and the undelivered count its shutdown log reported
// (-1 when it did not say).
func (s *spawned) stopGateway() (code, undelivered int, err error) {
	code, err = s.gateway.stop(60 * time.Second)
	undelivered = -1
	if m := undeliveredRE.FindStringSubmatch(s.gateway.logs.String()); m != nil {
		undelivered, _ = strconv.Atoi(m[1])
	}
	s.cleanup()
	return code, undelivered, err
}

// cleanup stops whatever is still running and removes the data.
func (s *spawned) cleanup() {
	if s.gateway != nil {
		s.gateway.kill()
	}
	if s.broker != nil {
		_, _ = s.broker.stop(10 * time.Second)
	}
	_ = os.RemoveAll(filepath.Dir(s.dataDir))
}

// Child modes: the harness re-runs its own executable as the baseline
// server and as the separate broker.
const (
	serveBaselineArg = "-serve-baseline"
	serveBrokerArg   = "-serve-broker"
	// The broker, also taking old clients' message sets (messageset.go).
	serveUpconvertBrokerArg = "-serve-broker-upconvert"
)

func selfBin(c Config) (string, error) {
	if c.SelfBin != "" {
		return c.SelfBin, nil
	}
	p, err := os.Executable()
	if err != nil {
		return "", fmt.Errorf("finding this executable to run the baseline server and broker: %w", err)
	}
	return p, nil
}

// ServeChild runs a child mode when args ask for one and returns its
// exit code with handled true; otherwise it returns handled false at
// once. The command calls it first (and a test binary, from TestMain):
//
//	-serve-baseline ADDR                       the do-nothing HTTP server
//	-serve-broker ADDR DATADIR PARTITIONS TOPIC [NODES] the development broker
//	-serve-broker-upconvert ADDR DATADIR PARTITIONS TOPIC the same, one node, also taking Produce v2 message sets
//
// Either prints "listening HOST:PORT" on stdout when ready and runs
// until SIGTERM or SIGINT.
func ServeChild(args []string) (code int, handled bool) {
	if len(args) == 0 {
		return 0, false
	}
	var err error
	switch args[0] {
	case serveBaselineArg:
		if len(args) != 2 {
			err = fmt.Errorf("usage: %s ADDR", serveBaselineArg)
			break
		}
		err = serveBaseline(args[1], os.Stdout)
	case serveBrokerArg:
		if len(args) != 5 && len(args) != 6 {
			err = fmt.Errorf("usage: %s ADDR DATADIR PARTITIONS TOPIC [NODES]", serveBrokerArg)
			break
		}
		nodes := "1"
		if len(args) == 6 {
			nodes = args[5]
		}
		err = serveBroker(args[1], args[2], args[3], args[4], nodes, os.Stdout)
	case serveUpconvertBrokerArg:
		if len(args) != 5 {
			err = fmt.Errorf("usage: %s ADDR DATADIR PARTITIONS TOPIC", serveUpconvertBrokerArg)
			break
		}
		err = serveUpconvertBroker(args[1], args[2], args[3], args[4], os.Stdout)
	default:
		return 0, false
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "beacongate-bench %s: %v\n", args[0], err)
		return 1, true
	}
	return 0, true
}

// serveBroker runs the development broker of package embedded, the same
// one `make run` starts inside the gateway, in a process of its own, with
// nodes brokers. It prints their addresses as one comma-separated list.
func serveBroker(addr, dataDir, partitions, topic, nodes string, out io.Writer) error {
	n, err := strconv.Atoi(partitions)
	if err != nil {
		return fmt.Errorf("partitions %q: %w", partitions, err)
	}
	nn, err := strconv.Atoi(nodes)
	if err != nil {
		return fmt.Errorf("nodes %q: %w", nodes, err)
	}
	b, err := embedded.Start(embedded.Config{Listen: addr, DataDir: dataDir, Partitions: n, Nodes: nn, Topics: []string{topic}}, zap.NewNop())
	if err != nil {
		return err
	}
	defer b.Close()
	fmt.Fprintf(out, "listening %s\n", b.Addr())
	waitSignal()
	return nil
}

func waitSignal() {
	sigc := make(chan os.Signal, 1)
	signal.Notify(sigc, syscall.SIGTERM, syscall.SIGINT)
	<-sigc
	signal.Stop(sigc)
}
