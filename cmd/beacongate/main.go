// Command beacongate is the HTTP beacon to Kafka gateway. main only wires:
// it parses and validates flags, builds the broker (embedded when no
// -kafka.brokers), the producer and the HTTP servers, serves, and on
// SIGTERM shuts down in order, logging how long each step took.
package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/beacongate/beacongate/ingest"
	"github.com/beacongate/beacongate/internal/admin"
	"github.com/beacongate/beacongate/internal/certs"
	"github.com/beacongate/beacongate/internal/kafka/embedded"
	"github.com/beacongate/beacongate/internal/kafka/producer"
	"github.com/beacongate/beacongate/internal/kafka/relay"
	"github.com/beacongate/beacongate/internal/kafka/spool"
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

func serve(o *options, log *zap.Logger) error {
	log.Info("starting beacongate", zap.String("version", version), zap.String("gateway_id", o.gatewayID))
	// undo closes, in reverse, what was built when a later step fails.
	var undo []func()
	fail := func(err error) error {
		for i := len(undo) - 1; i >= 0; i-- {
			undo[i]()
		}
		return err
	}
	// Listen first: a taken port fails at once, before a broker starts.
	httpLn, err := net.Listen("tcp", o.httpListen)
	if err != nil {
		return fmt.Errorf("http listener: %w", err)
	}
	undo = append(undo, func() { httpLn.Close() })
	adminLn, err := net.Listen("tcp", o.adminListen)
	if err != nil {
		return fail(fmt.Errorf("admin listener: %w", err))
	}
	undo = append(undo, func() { adminLn.Close() })

	o.producer.Brokers = o.kafkaBrokers
	if o.kafkaBrokers == "" {
		o.embedded.Topics = []string{o.producer.Topic}
		if o.dlqTopic != "" {
			o.embedded.Topics = append(o.embedded.Topics, o.dlqTopic)
		}
		broker, err := embedded.Start(o.embedded, log.Named("embedded"))
		if err != nil {
			return fail(err)
		}
		defer closeStep(log, "embedded broker", broker.Close) // last, on every path
		o.producer.Brokers = broker.Addr()
	}

	prod, err := producer.New(o.producer, log.Named("producer"))
	if err != nil {
		return fail(err)
	}
	undo = append(undo, prod.Close)
	var sp *spool.Spool
	relCfg := relay.Config{}
	if o.spool.Dir != "" {
		if sp, err = spool.Open(o.spool, log.Named("spool")); err != nil {
			return fail(err)
		}
		undo = append(undo, func() { sp.Close() })
		relCfg.StateFile = filepath.Join(o.spool.Dir, "inflight")
	}
	rel, err := relay.New(relCfg, prod, sp, log.Named("relay"))
	if err != nil {
		return fail(err)
	}
	prod.SetFailureHandler(rel.Keep)
	rel.SetDeadLetters(relay.NewDeadLetters(prod, o.dlqTopic, o.dlqMaxBytes, log.Named("dlq")))
	rel.Start()
	undo = append(undo, rel.Stop)
	srv, err := ingest.New(o.ingest, rel, prod.Ready, log.Named("http"))
	if err != nil {
		return fail(err)
	}
	adm := admin.New(prometheus.DefaultGatherer, func() (bool, string) { return prod.Ready() }, o.adminToken)
	if o.adminToken == "" && !loopback(adminLn.Addr()) {
		log.Warn("the admin listener (metrics, pprof) is reachable beyond loopback without -admin.token",
			zap.String("admin", adminLn.Addr().String()))
	}

	errc := make(chan error, 3)
	go func() { errc <- srv.Serve(httpLn) }()
	go func() { errc <- adm.Serve(adminLn) }()
	var certStore *certs.Store
	if o.httpsListen != "" {
		if certStore, err = certs.Load(o.httpsCert, o.httpsKey); err != nil {
			errc <- err
		} else if ln, err := net.Listen("tcp", o.httpsListen); err != nil {
			errc <- fmt.Errorf("https listener: %w", err)
		} else {
			log.Info("serving HTTPS", zap.String("https", ln.Addr().String()))
			go func() { errc <- srv.Serve(tls.NewListener(ln, certStore.TLSConfig())) }()
		}
	}
	log.Info("serving",
		zap.String("http", httpLn.Addr().String()), zap.String("admin", adminLn.Addr().String()),
		zap.String("brokers", o.producer.Brokers), zap.String("topic", o.producer.Topic))

	sigc := make(chan os.Signal, 1)
	signal.Notify(sigc, syscall.SIGTERM, syscall.SIGINT)
	hupc := make(chan os.Signal, 1)
	signal.Notify(hupc, syscall.SIGHUP)
	defer signal.Stop(hupc)
	var serveErr error
wait:
	for {
		select {
		case sig := <-sigc:
			log.Info("signal received: shutting down", zap.String("signal", sig.String()))
			break wait
		case serveErr = <-errc:
			log.Error("a listener failed: shutting down", zap.Error(serveErr))
			break wait
		case <-hupc:
			// SIGHUP reloads the HTTPS certificate; a bad pair keeps the old one.
			if certStore == nil {
				log.Info("SIGHUP: nothing to reload (no -https.listen)")
			} else if err := certStore.Reload(); err != nil {
				log.Error("SIGHUP: certificate not reloaded, still serving the previous one", zap.Error(err))
			} else {
				log.Info("SIGHUP: HTTPS certificate reloaded")
			}
		}
	}

	// 1. Readiness off, then give load balancers time to notice. A second
	// signal (an impatient operator's second Ctrl-C) ends the wait early;
	// the steps after it still run, so nothing queued is dropped.
	step := time.Now()
	srv.StartDraining()
	select {
	case <-time.After(o.shutdownDrain):
	case sig := <-sigc:
		log.Warn("second signal: skipping the rest of the drain period", zap.String("signal", sig.String()))
	}
	signal.Stop(sigc)
	log.Info("shutdown: readiness off, drain period over", zap.Duration("took", time.Since(step)))

	// 2. Stop accepting and finish requests in flight: after this no
	// handler can produce.
	step = time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), o.shutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		log.Error("shutdown: requests still in flight at the timeout", zap.Error(err))
	}
	log.Info("shutdown: http server stopped", zap.Duration("took", time.Since(step)))

	// 3. Stop replaying, then deliver what is queued, within what is
	// left of the timeout.
	closeStep(log, "spool replayer", rel.Stop)
	step = time.Now()
	left := prod.Flush(time.Until(deadline(ctx)))
	log.Info("shutdown: producer flushed", zap.Int("undelivered", left), zap.Duration("took", time.Since(step)))

	// 4. What Kafka did not take goes to the spool for the next start,
	// instead of being lost.
	if left > 0 && sp != nil {
		step = time.Now()
		left = prod.Purge(5 * time.Second)
		log.Warn("shutdown: records Kafka did not take were moved to the spool for the next start",
			zap.Int("left_in_producer", left), zap.Duration("took", time.Since(step)))
	}
	if sp != nil {
		if err := rel.Sync(); err != nil {
			log.Error("shutdown: syncing the spool failed", zap.Error(err))
		}
		st := sp.Stats()
		if err := sp.Close(); err != nil {
			log.Error("shutdown: closing the spool failed", zap.Error(err))
		}
		log.Info("shutdown: spool closed", zap.Int64("records_waiting", st.Records), zap.Int64("bytes", st.Bytes))
	}
	closeStep(log, "producer", prod.Close)
	if left == 0 {
		rel.CleanShutdown()
	}

	actx, acancel := context.WithTimeout(context.Background(), time.Second)
	defer acancel()
	_ = adm.Shutdown(actx)
	if left > 0 {
		return fmt.Errorf("%d records were not delivered before -shutdown.timeout (%v) and are lost", left, o.shutdownTimeout)
	}
	return serveErr
}

func loopback(a net.Addr) bool {
	ta, ok := a.(*net.TCPAddr)
	return ok && ta.IP.IsLoopback()
}

func deadline(ctx context.Context) time.Time {
	d, _ := ctx.Deadline()
	return d
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
