// Command beacongate-bench is the load-test harness of beacongate: it
// drives a gateway with realistic beacon traffic, reads what reached
// Kafka back, and reports throughput, latency, CPU per event and whether
// anything was lost. main only wires flags to bench.Config; everything
// else is in package bench.
//
//	beacongate-bench -spawn -baseline           # what `make bench` runs
//	beacongate-bench -url http://127.0.0.1:8080 -brokers 127.0.0.1:9092
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/beacongate/beacongate/bench"
)

func main() {
	// The harness re-runs itself as the baseline server and the broker.
	if code, ok := bench.ServeChild(os.Args[1:]); ok {
		os.Exit(code)
	}
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	c, err := parseFlags(args, stderr)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		fmt.Fprintf(stderr, "beacongate-bench: %v\n", err)
		return 2
	}
	c.Out, c.Log = stdout, stderr
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	rep, err := bench.Run(ctx, c)
	if err != nil {
		fmt.Fprintf(stderr, "beacongate-bench: %v\n", err)
		return 1
	}
	if len(rep.Problems) > 0 {
		return 1
	}
	return 0
}

// listFlag is a repeatable string flag.
type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, " ") }
func (l *listFlag) Set(s string) error { *l = append(*l, s); return nil }

type mixFlag struct{ m *bench.Mix }

func (f mixFlag) String() string {
	if f.m == nil || *f.m == (bench.Mix{}) {
		return ""
	}
	return f.m.String()
}

func (f mixFlag) Set(s string) error {
	m, err := bench.ParseMix(s)
	if err != nil {
		return err
	}
	*f.m = m
	return nil
}

func parseFlags(args []string, out io.Writer) (bench.Config, error) {
	var c bench.Config
	fs := flag.NewFlagSet("beacongate-bench", flag.ContinueOnError)
	fs.SetOutput(out)
	fs.Usage = func() {
		fmt.Fprintf(out, "Usage: beacongate-bench [flags]\n\n"+
			"Drives a beacongate gateway with pixel, sendBeacon and batch traffic, reads the topic back and\n"+
			"reports throughput, latency, CPU per event and lost/duplicated/reordered events.\n"+
			"Exit code 1 when the run found a problem (anything lost, duplicated, reordered, a failed shutdown).\n\nFlags:\n")
		fs.PrintDefaults()
	}

	fs.StringVar(&c.URL, "url", bench.DefaultURL, "gateway to load (without -spawn); must resolve to loopback unless -allow-remote")
	fs.BoolVar(&c.AllowRemote, "allow-remote", false, "allow a -url that is not a loopback address")
	fs.StringVar(&c.Brokers, "brokers", bench.DefaultBrokers, "Kafka bootstrap servers to read the topic back from (without -spawn)")
	fs.StringVar(&c.Topic, "topic", bench.DefaultTopic, "the gateway's topic")
	fs.StringVar(&c.AdminURL, "admin-url", "", "the gateway's admin listener, e.g. http://127.0.0.1:9100 (without -spawn): settle wait and the gateway's counters")
	fs.IntVar(&c.GatewayPID, "gateway-pid", 0, "the gateway's pid, to measure its CPU and memory (without -spawn)")
	fs.BoolVar(&c.NoReadback, "no-readback", false, "do not read the topic back (no accounting)")

	fs.BoolVar(&c.Spawn, "spawn", false, "start the gateway (and a development broker) on free loopback ports, stop it at the end")
	fs.StringVar(&c.GatewayBin, "gateway-bin", bench.DefaultGatewayBin, "gateway binary for -spawn")
	fs.Var((*listFlag)(&c.GatewayArgs), "gateway-arg", "extra gateway flag for -spawn, repeatable, e.g. -gateway-arg=-kafka.config -gateway-arg=linger.ms=10")
	fs.BoolVar(&c.EmbeddedBroker, "embedded-broker", false, "with -spawn, run the broker inside the gateway process (its CPU then counts as the gateway's) instead of a separate process")
	fs.IntVar(&c.Partitions, "partitions", bench.DefaultPartitions, "partitions of the spawned broker's topic")
	fs.IntVar(&c.BrokerNodes, "broker-nodes", 1, "with -spawn, brokers in the development cluster, each leading a share of the partitions (a connection and a librdkafka thread per broker, as against a real cluster)")
	fs.BoolVar(&c.Baseline, "baseline", false, "first drive a do-nothing HTTP server with the same load, for gateway/baseline ratios")
	fs.IntVar(&c.Rounds, "rounds", 0, "with -baseline: alternate the baseline and the gateway in this many slices of -duration/N each, so machine drift hits both alike (0 or 1: one phase each)")

	fs.StringVar(&c.Mode, "mode", "closed", "closed (as fast as answers come back) or open (fixed arrival rate, -rate)")
	fs.Float64Var(&c.Rate, "rate", 0, "open loop: requests per second over all connections (a batch request carries -batch-events events)")
	fs.IntVar(&c.Conns, "conns", bench.DefaultConns, "keep-alive connections, one sender each")
	fs.DurationVar(&c.Duration, "duration", bench.DefaultDuration, "length of each phase")
	fs.Int64Var(&c.Requests, "requests", 0, "stop each phase after this many requests (0: -duration only)")
	fs.StringVar(&c.Preset, "preset", bench.DefaultPreset, "traffic preset: 0.8kb (~0.8 KB browser events: 60% pixels, 30% sendBeacon, 10% batches), pixel (the same, pixels only) or 2kb (~2 KB events, all in batches); -mix, -event-bytes, -batch-events override it")
	fs.Var(mixFlag{&c.Mix}, "mix", "request mix by weight, e.g. pixel=60,beacon=30,batch=10 (default: the preset's)")
	fs.IntVar(&c.EventBytes, "event-bytes", 0, "mean event size in bytes, spread ±50% (default: the preset's, 800 or 2048)")
	fs.IntVar(&c.BatchEvents, "batch-events", 0, "events per POST /batch (default 20)")
	fs.IntVar(&c.Keys, "keys", 0, "distinct users (shard keys), at least -conns (default 1024 or -conns if more)")
	fs.Int64Var(&c.Seed, "seed", 1, "seed of the generated traffic")

	fs.DurationVar(&c.Timeout, "timeout", bench.DefaultTimeout, "longest wait for one answer")
	fs.DurationVar(&c.Settle, "settle", bench.DefaultSettle, "longest wait after the load for the gateway's producer to deliver (needs the admin listener)")
	fs.DurationVar(&c.ReadbackTimeout, "readback-timeout", bench.DefaultReadbackTimeout, "longest read-back of the topic")

	fs.StringVar(&c.JSONPath, "json", bench.DefaultJSONPath, "JSON report path (- for none)")
	fs.StringVar(&c.HTMLPath, "html", bench.DefaultHTMLPath, "HTML report path (- for none)")

	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected argument %q (flags start with -)", fs.Arg(0))
	}
	if err := c.Validate(); err != nil {
		return c, fmt.Errorf("invalid configuration: %w", err)
	}
	return c, nil
}
