package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
	"time"

	"go.uber.org/zap"
)

// wait serves until SIGTERM or SIGINT, or until a listener fails (its
// error is returned); SIGHUP reloads the HTTPS certificate.
func (a *app) wait(sigc chan os.Signal) error {
	hupc := make(chan os.Signal, 1)
	signal.Notify(hupc, syscall.SIGHUP)
	defer signal.Stop(hupc)
	for {
		select {
		case sig := <-sigc:
			a.log.Info("signal received: shutting down", zap.String("signal", sig.String()))
			return nil
		case err := <-a.errc:
			a.log.Error("a listener failed: shutting down", zap.Error(err))
			return err
		case <-hupc:
			// SIGHUP reloads the HTTPS certificate; a bad pair keeps the old one.
			if a.certStore == nil {
				a.log.Info("SIGHUP: nothing to reload (no -https.listen)")
			} else if err := a.certStore.Reload(); err != nil {
				a.log.Error("SIGHUP: certificate not reloaded, still serving the previous one", zap.Error(err))
			} else {
				a.log.Info("SIGHUP: HTTPS certificate reloaded")
			}
		}
	}
}

// shutdown stops the gateway in order, each step bounded and logged:
// readiness off and the drain period (load balancers move away), the
// HTTP server (no handler produces after it), then the Kafka side within
// -shutdown.timeout: the spool replayed into Kafka while Kafka takes
// records, the producer's queue delivered, and what is left handed back
// to the spool. The last line says what became of the records; the error
// is non-nil only if some were lost.
func (a *app) shutdown(sigc chan os.Signal) error {
	// 1. Readiness off, then give load balancers time to notice. A second
	// signal (an impatient operator's second Ctrl-C) ends the wait early;
	// the steps after it still run, so nothing queued is dropped.
	step := time.Now()
	a.side.Relay.StartDraining()
	a.srv.StartDraining()
	select {
	case <-time.After(a.o.shutdownDrain):
	case sig := <-sigc:
		a.log.Warn("second signal: skipping the rest of the drain period", zap.String("signal", sig.String()))
	}
	signal.Stop(sigc)
	a.log.Info("shutdown: readiness off, drain period over", zap.Duration("took", time.Since(step)))

	// 2. Stop accepting and finish requests in flight: after this no
	// handler can produce. Everything from here shares -shutdown.timeout.
	ctx, cancel := context.WithTimeout(context.Background(), a.o.shutdownTimeout)
	defer cancel()
	step = time.Now()
	if err := a.srv.Shutdown(ctx); err != nil {
		a.log.Error("shutdown: requests still in flight at the timeout", zap.Error(err))
	}
	a.log.Info("shutdown: http server stopped", zap.Duration("took", time.Since(step)))

	// 3. The Kafka side.
	r := a.side.Shutdown(ctx)

	actx, acancel := context.WithTimeout(context.Background(), time.Second)
	defer acancel()
	_ = a.adm.Shutdown(actx)
	if a.broker != nil {
		closeStep(a.log, "embedded broker", a.broker.Close)
	}
	line := a.log.Info
	if r.Lost > 0 {
		line = a.log.Error
	}
	line("shutdown complete", zap.Int64("records_delivered", r.Delivered),
		zap.Int64("records_left_in_spool", r.Waiting), zap.Int64("records_quarantined", r.Quarantined),
		zap.Int64("records_lost", r.Lost))
	return r.Err()
}
