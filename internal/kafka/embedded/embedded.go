// Package embedded runs an in-process, Kafka-protocol-compatible
// development broker (franz-go's kfake) with its log persisted in a data
// directory, so that `make run` needs no Kafka installation. It is for
// development, tests and load tests only: one node by default (several
// for a load test that should look like a cluster), no replication, no
// guarantees beyond its data directory.
package embedded

import (
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"go.uber.org/zap"
)

// Config configures the development broker. Its zero value listens on
// 127.0.0.1:9092 with no persistence and 16-partition topics.
type Config struct {
	// Listen is the host:port the broker listens on and advertises to
	// clients. Default "127.0.0.1:9092"; port 0 picks a free port.
	Listen string
	// DataDir holds the broker's persisted log; it is created if missing
	// and reloaded at start. "" keeps everything in memory.
	DataDir string
	// Partitions is the partition count of topics this broker creates.
	// Default 16.
	Partitions int
	// Topics are created at start unless they exist already (in DataDir).
	Topics []string
	// Nodes is the number of brokers, each listening on a port of its own
	// and leading a share of the partitions (chosen at random), as in a
	// cluster: a client keeps a connection, and librdkafka a thread, per
	// broker. With a fixed Listen port p they listen on p, p+1, ...; with
	// port 0 on free ports. Default 1.
	Nodes int
}

// MaxNodes bounds Config.Nodes: a development cluster on one machine.
const MaxNodes = 16

func (c Config) withDefaults() Config {
	if c.Listen == "" {
		c.Listen = "127.0.0.1:9092"
	}
	if c.Partitions == 0 {
		c.Partitions = 16
	}
	if c.Nodes == 0 {
		c.Nodes = 1
	}
	return c
}

// Validate reports a configuration that cannot start.
func (c Config) Validate() error {
	c = c.withDefaults()
	if _, _, err := splitListen(c.Listen); err != nil {
		return err
	}
	if c.Partitions < 1 || c.Partitions > 100000 {
		return fmt.Errorf("embedded: partitions %d out of range [1, 100000]", c.Partitions)
	}
	if c.Nodes < 1 || c.Nodes > MaxNodes {
		return fmt.Errorf("embedded: nodes %d out of range [1, %d]", c.Nodes, MaxNodes)
	}
	if _, port, _ := splitListen(c.Listen); port != 0 && port+c.Nodes-1 > 65535 {
		return fmt.Errorf("embedded: %d nodes from port %d run past port 65535", c.Nodes, port)
	}
	return nil
}

func splitListen(listen string) (host string, port int, err error) {
	host, p, err := net.SplitHostPort(listen)
	if err != nil {
		return "", 0, fmt.Errorf("embedded: listen address %q: %w", listen, err)
	}
	port, err = strconv.Atoi(p)
	if err != nil || port < 0 || port > 65535 {
		return "", 0, fmt.Errorf("embedded: listen address %q: bad port %q", listen, p)
	}
	return host, port, nil
}

// Broker is a running development broker.
type Broker struct {
	cluster *kfake.Cluster
	addrs   []string
	log     *zap.Logger
}

// Start starts the broker, reloading DataDir when it holds a previous
// run's log, and creates the configured topics.
func Start(cfg Config, log *zap.Logger) (*Broker, error) {
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	host, port, err := splitListen(cfg.Listen)
	if err != nil {
		return nil, err
	}
	ports := make([]int, cfg.Nodes)
	for i := range ports {
		if port != 0 {
			ports[i] = port + i
		}
	}
	opts := []kfake.Opt{
		kfake.NumBrokers(cfg.Nodes),
		kfake.Ports(ports...),
		// kfake asks for 127.0.0.1 and a node's port; listen on the
		// configured host instead.
		kfake.ListenFn(func(network, address string) (net.Listener, error) {
			_, p, err := net.SplitHostPort(address)
			if err != nil {
				return nil, err
			}
			return net.Listen(network, net.JoinHostPort(host, p))
		}),
		kfake.DefaultNumPartitions(cfg.Partitions),
		kfake.WithLogger(kfakeLogger{log.Named("kfake")}),
	}
	if cfg.DataDir != "" {
		if err := os.MkdirAll(cfg.DataDir, 0o750); err != nil {
			return nil, fmt.Errorf("embedded: creating data dir: %w", err)
		}
		opts = append(opts, kfake.DataDir(cfg.DataDir))
	}
	start := time.Now()
	c, err := kfake.NewCluster(opts...)
	if err != nil {
		return nil, fmt.Errorf("embedded: starting broker on %s (data dir %q): %w", cfg.Listen, cfg.DataDir, err)
	}
	b := &Broker{cluster: c, addrs: c.ListenAddrs(), log: log}
	// Topics are created here rather than with kfake.SeedTopics because
	// seeding is skipped when state is reloaded from DataDir: a data dir
	// from a run with another -kafka.topic would otherwise lack the topic.
	for _, t := range cfg.Topics {
		if c.TopicInfo(t) != nil {
			continue
		}
		if err := c.CreateTopic(t, int32(cfg.Partitions), nil); err != nil {
			c.Close()
			return nil, fmt.Errorf("embedded: creating topic %q with %d partitions: %w", t, cfg.Partitions, err)
		}
	}
	log.Warn("DEVELOPMENT BROKER: an embedded Kafka-compatible broker (kfake) without replication is running in this process; "+
		"do not use it in production, set -kafka.brokers instead",
		zap.String("addr", b.Addr()), zap.Int("nodes", cfg.Nodes), zap.String("data_dir", cfg.DataDir),
		zap.Strings("topics", cfg.Topics), zap.Int("partitions", cfg.Partitions),
		zap.Duration("took", time.Since(start)))
	return b, nil
}

// Addr is the brokers' host:port list, comma-separated, for
// bootstrap.servers: one host:port with one node.
func (b *Broker) Addr() string { return strings.Join(b.addrs, ",") }

// Cluster exposes the kfake cluster, for fault injection in tests.
func (b *Broker) Cluster() *kfake.Cluster { return b.cluster }

// Close stops the broker and, with a data dir, persists its state.
func (b *Broker) Close() { b.cluster.Close() }

// kfakeLogger forwards kfake's warnings and errors to zap; its info and
// debug levels log every request and would flood the log.
type kfakeLogger struct{ log *zap.Logger }

func (l kfakeLogger) Logf(level kfake.LogLevel, format string, args ...any) {
	switch level {
	case kfake.LogLevelError:
		l.log.Error(fmt.Sprintf(format, args...))
	case kfake.LogLevelWarn:
		l.log.Warn(fmt.Sprintf(format, args...))
	}
}
