package main

import (
	"crypto/tls"
	"fmt"
	"net"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/beacongate/beacongate/ingest"
	"github.com/beacongate/beacongate/internal/admin"
	"github.com/beacongate/beacongate/internal/certs"
	"github.com/beacongate/beacongate/internal/kafka"
	"github.com/beacongate/beacongate/internal/kafka/embedded"
	"github.com/beacongate/beacongate/internal/kafka/relay"
)

// app is a started gateway.
type app struct {
	o         *options
	log       *zap.Logger
	broker    *embedded.Broker // nil with -kafka.brokers
	side      *kafka.Side
	srv       *ingest.Server
	adm       *admin.Server
	certStore *certs.Store // nil without -https.listen
	errc      chan error   // a listener that stopped serving
}

// start listens, builds the Kafka side and the HTTP servers, and serves.
// When a step fails, what the earlier steps built is closed again, in
// reverse.
func start(o *options, log *zap.Logger) (*app, error) {
	a := &app{o: o, log: log, errc: make(chan error, 3)}
	var undo []func()
	fail := func(err error) (*app, error) {
		for i := len(undo) - 1; i >= 0; i-- {
			undo[i]()
		}
		return nil, err
	}
	// Listen first: a taken port fails at once, before a broker starts.
	httpLn, err := net.Listen("tcp", o.httpListen)
	if err != nil {
		return nil, fmt.Errorf("http listener: %w", err)
	}
	undo = append(undo, func() { httpLn.Close() })
	adminLn, err := net.Listen("tcp", o.adminListen)
	if err != nil {
		return fail(fmt.Errorf("admin listener: %w", err))
	}
	undo = append(undo, func() { adminLn.Close() })
	// The certificate too: a bad pair fails before a broker or the spool
	// is touched.
	var httpsLn net.Listener
	if o.httpsListen != "" {
		if a.certStore, err = certs.Load(o.httpsCert, o.httpsKey); err != nil {
			return fail(err)
		}
		if httpsLn, err = net.Listen("tcp", o.httpsListen); err != nil {
			return fail(fmt.Errorf("https listener: %w", err))
		}
		undo = append(undo, func() { httpsLn.Close() })
	}

	cfg := kafka.Config{Producer: o.producer, Spool: o.spool, Relay: relay.Config{
		DeadLetterTopic: o.dlqTopic, DeadLetterMaxBytes: o.dlqMaxBytes, GatewayID: o.gatewayID,
		StartGrace: o.startGrace,
	}}
	cfg.Producer.Brokers = o.kafkaBrokers
	if o.kafkaBrokers == "" {
		o.embedded.Topics = []string{o.producer.Topic}
		if o.dlqTopic != "" {
			o.embedded.Topics = append(o.embedded.Topics, o.dlqTopic)
		}
		if a.broker, err = embedded.Start(o.embedded, log.Named("embedded")); err != nil {
			return fail(err)
		}
		undo = append(undo, a.broker.Close)
		cfg.Producer.Brokers = a.broker.Addr()
	}
	if a.side, err = kafka.Open(cfg, log); err != nil {
		return fail(err)
	}
	undo = append(undo, a.side.Close)
	if a.srv, err = ingest.New(o.ingest, a.side.Relay, a.side.Relay.Ready, log.Named("http")); err != nil {
		return fail(err)
	}
	a.adm = admin.New(prometheus.DefaultGatherer, a.side.Relay.Ready, o.adminToken)
	registerReadyMetric(a.side.Relay.Ready)
	if o.adminToken == "" && !loopback(adminLn.Addr()) {
		log.Warn("the admin listener (metrics, pprof) is reachable beyond loopback without -admin.token",
			zap.String("admin", adminLn.Addr().String()))
	}
	go func() { a.errc <- a.srv.Serve(httpLn) }()
	go func() { a.errc <- a.adm.Serve(adminLn) }()
	if httpsLn != nil {
		go func() { a.errc <- a.srv.Serve(tls.NewListener(httpsLn, a.certStore.TLSConfig())) }()
	}
	if httpsLn != nil {
		log.Info("serving HTTPS", zap.String("https", httpsLn.Addr().String()))
	}
	log.Info("serving",
		zap.String("http", httpLn.Addr().String()), zap.String("admin", adminLn.Addr().String()),
		zap.String("brokers", cfg.Producer.Brokers), zap.String("topic", o.producer.Topic))
	return a, nil
}
