// Command beacongate is the HTTP beacon to Kafka gateway. main only wires:
// it parses and validates flags, builds the broker (embedded when no
// -kafka.brokers), the producer and the HTTP servers, serves, and on
// SIGTERM shuts down in order, logging how long each step took.
package main

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/signal"
	"runtime"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// version is set at build time (-ldflags "-X main.version=...").
var version = "dev"

var buildInfo = promauto.NewGaugeVec(prometheus.GaugeOpts{
	Name: "beacongate_build_info",
	Help: "Always 1; the labels say which build is running.",
}, []string{"version", "goversion"})

func main() {
	os.Exit(run(os.Args[1:]))
}

func run(args []string) int {
	if len(args) > 0 {
		switch args[0] {
		case "healthcheck":
			return healthcheck(args[1:], os.Stdout, os.Stderr)
		case "spool":
			return spoolCommand(args[1:], os.Stdout, os.Stderr)
		case "tail":
			return tailCommand(args[1:], os.Stdout, os.Stderr)
		}
	}
	o, fs, err := parseFlags(args, os.Getenv, os.Stderr)
	if err != nil {
		if errors.Is(err, errHelp) {
			return 0
		}
		fmt.Fprintf(os.Stderr, "beacongate: %v\n", err)
		return 2
	}
	if o.version {
		fmt.Println("beacongate", version, runtime.Version())
		return 0
	}
	if err := o.validate(); err != nil {
		fmt.Fprintf(os.Stderr, "beacongate: invalid configuration: %v\n", err)
		return 2
	}
	if o.checkConfig {
		printConfig(os.Stdout, fs)
		fmt.Println("configuration ok")
		return 0
	}
	level, _ := parseLevel(o.logLevel)
	log := newLogger(level)
	defer func() { _ = log.Sync() }()
	buildInfo.WithLabelValues(version, runtime.Version()).Set(1)

	if err := serve(o, log); err != nil {
		log.Error("beacongate stopped with an error", zap.Error(err))
		return 1
	}
	return 0
}

// serve runs the gateway: start, serve until a signal or a failed
// listener, then shut down in order.
func serve(o *options, log *zap.Logger) error {
	log.Info("starting beacongate", zap.String("version", version), zap.String("gateway_id", o.gatewayID))
	a, err := start(o, log)
	if err != nil {
		return err
	}
	sigc := make(chan os.Signal, 1)
	signal.Notify(sigc, syscall.SIGTERM, syscall.SIGINT)
	serveErr := a.wait(sigc)
	return errors.Join(serveErr, a.shutdown(sigc))
}

func loopback(a net.Addr) bool {
	ta, ok := a.(*net.TCPAddr)
	return ok && ta.IP.IsLoopback()
}

func closeStep(log *zap.Logger, what string, close func()) {
	start := time.Now()
	close()
	log.Info("shutdown: closed "+what, zap.Duration("took", time.Since(start)))
}

func parseLevel(s string) (zapcore.Level, error) {
	l, err := zapcore.ParseLevel(s)
	if err != nil {
		return 0, fmt.Errorf("log.level %q: want debug, info, warn or error", s)
	}
	return l, nil
}

func newLogger(level zapcore.Level) *zap.Logger {
	cfg := zap.NewProductionConfig()
	cfg.Level = zap.NewAtomicLevelAt(level)
	cfg.EncoderConfig.TimeKey = "ts"
	cfg.EncoderConfig.EncodeTime = zapcore.ISO8601TimeEncoder
	cfg.Sampling = nil // throttling is explicit (package throttle), never silent
	// Error lines say what failed; a stack trace on each is noise (a
	// recovered panic logs its own).
	cfg.DisableStacktrace = true
	log, err := cfg.Build()
	if err != nil {
		panic("BUG: zap production config does not build: " + err.Error())
	}
	return log
}
