package bench

import (
	"errors"
	"fmt"
	"io"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/beacongate/beacongate/internal/kafka/embedded"
)

// Config is one benchmark run. Its zero value is a valid run: a 10 s
// closed loop of 64 connections against http://127.0.0.1:8080 with the
// default traffic mix, read back from 127.0.0.1:9092, reports under
// bench-out/. Every zero field takes the default its comment names.
type Config struct {
	// URL is the gateway's public listener, e.g. "http://127.0.0.1:8080"
	// (default). Ignored with Spawn. Its host must resolve to loopback
	// addresses only, unless AllowRemote: the harness is a load generator
	// and must never hit a production endpoint by mistake.
	URL         string
	AllowRemote bool
	// Brokers are the Kafka bootstrap servers the gateway writes to,
	// read back for the accounting. Default "127.0.0.1:9092" (what `make
	// run` starts). Ignored with Spawn.
	Brokers string
	// Topic is the gateway's topic. Default "beacons".
	Topic string
	// AdminURL is the gateway's admin listener ("http://127.0.0.1:9100"),
	// used to wait for the producer queue to drain and to snapshot the
	// gateway's own counters. Empty: no settle wait, no snapshot.
	// Set by Spawn.
	AdminURL string
	// GatewayPID is the gateway's process id, to read its CPU and memory
	// from /proc when the harness did not start it. 0: not measured.
	GatewayPID int
	// NoReadback skips reading the topic back (no accounting): for a
	// gateway whose Kafka the harness cannot reach.
	NoReadback bool

	// Spawn starts the gateway (GatewayBin) on free loopback ports with
	// a development broker and a temporary data directory, waits for
	// /readyz, runs the load, reads back, then SIGTERMs it and records
	// its exit code.
	Spawn bool
	// GatewayBin is the gateway binary for Spawn. Default "bin/beacongate".
	GatewayBin string
	// GatewayArgs are extra gateway flags for Spawn (after the harness's
	// own, so they win), e.g. "-kafka.config", "linger.ms=10".
	GatewayArgs []string
	// EmbeddedBroker runs the development broker inside the spawned
	// gateway process (-embedded.*), as `make run` does. By default it
	// runs in a separate process instead, so that the gateway's CPU and
	// memory are the gateway's alone, as they would be in production
	// next to a real Kafka cluster; the broker's are reported apart.
	EmbeddedBroker bool
	// Partitions of the spawned broker's topic. Default 16.
	Partitions int
	// BrokerNodes is the number of brokers the spawned development
	// broker runs (embedded.Config.Nodes), each leading a share of the
	// partitions: the gateway then keeps a connection and a librdkafka
	// thread per broker, as against a real cluster. Default 1; more
	// than one needs the separate broker process.
	BrokerNodes int
	// Baseline first drives a do-nothing HTTP server (a separate process)
	// with the same load, for the gateway/baseline ratios.
	Baseline bool
	// Rounds > 1 (with Baseline) interleaves the two: the baseline and
	// the gateway take turns, Rounds slices of Duration/Rounds each, so
	// that a machine whose speed drifts during the run weighs on both
	// alike. 0 or 1: the baseline's whole phase, then the gateway's.
	Rounds int
	// SelfBin is the executable re-run as the baseline server and the
	// separate broker (see ServeChild). Default: this process's
	// executable.
	SelfBin string

	// Mode is "closed" (default: every connection sends its next request
	// as soon as the previous answer arrived) or "open" (requests start
	// on a fixed schedule of Rate requests per second, whatever the
	// answers do; latency counts from the scheduled start).
	Mode string
	// Rate is the open loop's arrival rate in requests per second over
	// all connections (a batch request carries BatchEvents events). It
	// must be > 0 in open loop and is ignored in closed loop.
	Rate float64
	// Conns is the number of keep-alive connections, one sending
	// goroutine each. Default 64.
	Conns int
	// Duration bounds each phase. Default 10s.
	Duration time.Duration
	// Requests bounds each phase's request count; 0: Duration only.
	Requests int64
	// Preset fills Mix, EventBytes and BatchEvents where they are zero:
	// "0.8kb" (default; ~0.8 KB browser beacons: 60%
	// pixels, 30% sendBeacon, 10% batches), "pixel" (the same events,
	// pixels only: the headline figure of `make bench`) or "2kb" (~2 KB
	// events from servers, all in batches of 20).
	Preset string
	// Mix is the share of each request kind (by request, not by event).
	// Zero: the preset's.
	Mix Mix
	// EventBytes is the mean size of one event: the query string of a
	// pixel, the body of a sendBeacon POST, one object of a batch. Sizes
	// are spread uniformly over ±50% of it. Zero: the preset's.
	EventBytes int
	// BatchEvents is the number of events per POST /batch. Default 20.
	BatchEvents int
	// Keys is the number of distinct users (uid / user_id, the default
	// shard key); each belongs to one connection so that its events are
	// sent, and must arrive, in sequence order. Default 1024, at least
	// Conns.
	Keys int
	// Seed makes the generated traffic reproducible. Default 1.
	Seed int64

	// Timeout bounds one request. Default 10s.
	Timeout time.Duration
	// Settle bounds the wait, after the load, for the gateway's producer
	// queue to drain (needs AdminURL). Default 10s.
	Settle time.Duration
	// ReadbackTimeout bounds the Kafka read-back. Default 30s.
	ReadbackTimeout time.Duration

	// JSONPath and HTMLPath are where the reports go. Defaults
	// "bench-out/report.json" and "bench-out/report.html"; "-" writes
	// none.
	JSONPath string
	HTMLPath string
	// Out receives the text report (default: discarded; the command
	// passes stdout). Log receives progress lines (default: discarded).
	Out io.Writer
	Log io.Writer
}

// Mix weighs the three request kinds real fronts see.
type Mix struct {
	Pixel  int `json:"pixel"`  // GET /i?... (tracking pixel)
	Beacon int `json:"beacon"` // POST /i, text/plain JSON (navigator.sendBeacon)
	Batch  int `json:"batch"`  // POST /batch, JSON array of BatchEvents events
}

func (m Mix) total() int   { return m.Pixel + m.Beacon + m.Batch }
func (m Mix) isZero() bool { return m == Mix{} }
func (m Mix) String() string {
	return fmt.Sprintf("pixel=%d,beacon=%d,batch=%d", m.Pixel, m.Beacon, m.Batch)
}

// ParseMix reads "pixel=60,beacon=30,batch=10"; kinds left out weigh 0.
func ParseMix(s string) (Mix, error) {
	var m Mix
	for _, item := range strings.Split(s, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		k, v, ok := strings.Cut(item, "=")
		n, err := strconv.Atoi(strings.TrimSpace(v))
		if !ok || err != nil || n < 0 {
			return Mix{}, fmt.Errorf("mix item %q: want kind=weight with a weight >= 0", item)
		}
		switch strings.TrimSpace(k) {
		case "pixel":
			m.Pixel = n
		case "beacon":
			m.Beacon = n
		case "batch":
			m.Batch = n
		default:
			return Mix{}, fmt.Errorf("mix item %q: kinds are pixel, beacon and batch", item)
		}
	}
	if m.total() == 0 {
		return Mix{}, fmt.Errorf("mix %q weighs nothing", s)
	}
	return m, nil
}

// preset is what a named preset fills in.
type preset struct {
	mix         Mix
	eventBytes  int
	batchEvents int
}

var presets = map[string]preset{
	// Browser traffic: ~0.8 KB beacons, mostly pixels and sendBeacon, some
	// SDK batches.
	"0.8kb": {mix: Mix{Pixel: 60, Beacon: 30, Batch: 10}, eventBytes: 800, batchEvents: 20},
	// The headline figure: the same ~0.8 KB events, tracking pixels only,
	// the cheapest request a front sends and the one whose rate bounds a
	// fleet.
	"pixel": {mix: Mix{Pixel: 100}, eventBytes: 800, batchEvents: 20},
	// Server traffic: ~2 KB events, batched by servers.
	"2kb": {mix: Mix{Batch: 100}, eventBytes: 2048, batchEvents: 20},
}

// Defaults of the zero Config.
const (
	DefaultURL             = "http://127.0.0.1:8080"
	DefaultBrokers         = "127.0.0.1:9092"
	DefaultTopic           = "beacons"
	DefaultGatewayBin      = "bin/beacongate"
	DefaultPartitions      = 16
	DefaultPreset          = "0.8kb"
	DefaultConns           = 64
	DefaultDuration        = 10 * time.Second
	DefaultKeys            = 1024
	DefaultTimeout         = 10 * time.Second
	DefaultSettle          = 10 * time.Second
	DefaultReadbackTimeout = 30 * time.Second
	DefaultJSONPath        = "bench-out/report.json"
	DefaultHTMLPath        = "bench-out/report.html"
)

// withDefaults returns c with every zero field at its default.
func (c Config) withDefaults() Config {
	if c.URL == "" {
		c.URL = DefaultURL
	}
	if c.Brokers == "" {
		c.Brokers = DefaultBrokers
	}
	if c.Topic == "" {
		c.Topic = DefaultTopic
	}
	if c.GatewayBin == "" {
		c.GatewayBin = DefaultGatewayBin
	}
	if c.Partitions == 0 {
		c.Partitions = DefaultPartitions
	}
	if c.BrokerNodes == 0 {
		c.BrokerNodes = 1
	}
	if c.Mode == "" {
		c.Mode = "closed"
	}
	if c.Preset == "" {
		c.Preset = DefaultPreset
	}
	if p, ok := presets[c.Preset]; ok {
		if c.Mix.isZero() {
			c.Mix = p.mix
		}
		if c.EventBytes == 0 {
			c.EventBytes = p.eventBytes
		}
		if c.BatchEvents == 0 {
			c.BatchEvents = p.batchEvents
		}
	}
	if c.Conns == 0 {
		c.Conns = DefaultConns
	}
	if c.Duration == 0 {
		c.Duration = DefaultDuration
	}
	if c.Keys == 0 {
		c.Keys = max(DefaultKeys, c.Conns)
	}
	if c.Seed == 0 {
		c.Seed = 1
	}
	if c.Timeout == 0 {
		c.Timeout = DefaultTimeout
	}
	if c.Settle == 0 {
		c.Settle = DefaultSettle
	}
	if c.ReadbackTimeout == 0 {
		c.ReadbackTimeout = DefaultReadbackTimeout
	}
	if c.JSONPath == "" {
		c.JSONPath = DefaultJSONPath
	}
	if c.HTMLPath == "" {
		c.HTMLPath = DefaultHTMLPath
	}
	if c.Out == nil {
		c.Out = io.Discard
	}
	if c.Log == nil {
		c.Log = io.Discard
	}
	return c
}

// Validate reports a configuration that cannot run, after defaults.
func (c Config) Validate() error {
	c = c.withDefaults()
	var errs []error
	if _, ok := presets[c.Preset]; !ok {
		errs = append(errs, fmt.Errorf("preset %q: want 0.8kb, pixel or 2kb", c.Preset))
	}
	switch c.Mode {
	case "closed":
	case "open":
		if c.Rate <= 0 {
			errs = append(errs, fmt.Errorf("open loop needs a rate > 0 requests/s (got %v)", c.Rate))
		}
	default:
		errs = append(errs, fmt.Errorf("mode %q: want closed or open", c.Mode))
	}
	if c.Mix.Pixel < 0 || c.Mix.Beacon < 0 || c.Mix.Batch < 0 || c.Mix.total() == 0 {
		errs = append(errs, fmt.Errorf("mix %s: weights must be >= 0 and not all 0", c.Mix))
	}
	if c.Conns < 1 || c.Conns > 10000 {
		errs = append(errs, fmt.Errorf("conns %d out of range [1, 10000]", c.Conns))
	}
	if c.Duration < 0 || c.Requests < 0 {
		errs = append(errs, fmt.Errorf("duration %v and requests %d must be >= 0", c.Duration, c.Requests))
	}
	// The generator pads up to the mean; below ~300 B the fixed fields
	// alone are bigger, and over 64 KB a JSON event exceeds the gateway's
	// default -event.max-bytes.
	if c.EventBytes < 100 || c.EventBytes > 64<<10 {
		errs = append(errs, fmt.Errorf("event size %d B out of range [100, 65536]", c.EventBytes))
	}
	if c.BatchEvents < 1 || c.BatchEvents > 10000 {
		errs = append(errs, fmt.Errorf("batch of %d events out of range [1, 10000]", c.BatchEvents))
	}
	if c.Keys < c.Conns {
		errs = append(errs, fmt.Errorf("%d keys for %d connections: every connection needs a key of its own", c.Keys, c.Conns))
	}
	if c.Timeout <= 0 || c.Settle < 0 || c.ReadbackTimeout <= 0 {
		errs = append(errs, fmt.Errorf("timeout %v and readback timeout %v must be > 0, settle %v >= 0", c.Timeout, c.ReadbackTimeout, c.Settle))
	}
	if c.Rounds < 0 || c.Rounds > 100 {
		errs = append(errs, fmt.Errorf("rounds %d out of range [0, 100]", c.Rounds))
	}
	if c.Rounds > 1 {
		switch {
		case !c.Baseline:
			errs = append(errs, fmt.Errorf("%d rounds need the baseline: they interleave it with the gateway", c.Rounds))
		case c.Requests > 0:
			errs = append(errs, fmt.Errorf("%d rounds bound by time only: -requests %d would end the first slice", c.Rounds, c.Requests))
		case c.Duration < time.Duration(c.Rounds)*time.Second:
			errs = append(errs, fmt.Errorf("%d rounds of a %v phase: a slice must last at least 1s", c.Rounds, c.Duration))
		}
	}
	if c.Partitions < 1 {
		errs = append(errs, fmt.Errorf("partitions %d must be >= 1", c.Partitions))
	}
	if c.BrokerNodes < 1 || c.BrokerNodes > embedded.MaxNodes {
		errs = append(errs, fmt.Errorf("broker nodes %d out of range [1, %d]", c.BrokerNodes, embedded.MaxNodes))
	}
	if c.BrokerNodes > 1 && (!c.Spawn || c.EmbeddedBroker) {
		errs = append(errs, fmt.Errorf("%d broker nodes need -spawn's separate broker process (the gateway's -embedded.* broker has one node)", c.BrokerNodes))
	}
	if !c.Spawn {
		u, err := url.Parse(c.URL)
		if err != nil {
			errs = append(errs, fmt.Errorf("url %q: %w", c.URL, err))
		} else if u.Scheme != "http" || u.Host == "" {
			errs = append(errs, fmt.Errorf("url %q: want http://host:port (plain HTTP)", c.URL))
		}
		if c.GatewayPID < 0 {
			errs = append(errs, fmt.Errorf("gateway pid %d must be >= 0", c.GatewayPID))
		}
	}
	return errors.Join(errs...)
}
