package relay

import (
	"context"
	"time"

	"go.uber.org/zap"
)

// monitor polls Kafka's readiness, the one view that both routes records
// and answers /readyz, and keeps the spool's gauges and the state file.
func (r *Relay) monitor() {
	defer r.done.Done()
	t := time.NewTicker(r.cfg.HealthInterval)
	defer t.Stop()
	lastState := time.Time{}
	for {
		select {
		case <-r.stop:
			return
		case <-t.C:
		}
		if time.Since(lastState) >= time.Second {
			r.writeState()
			lastState = time.Now()
		}
		r.check()
		r.updateGauges()
	}
}

// check asks the producer whether Kafka takes records. During the start
// grace, records keep going to librdkafka's queue (it holds them while
// it connects) instead of the spool: a start on a healthy cluster must not
// spool, and records queued then are older than anything spooled later,
// which the replayer waits for.
func (r *Relay) check() {
	ok, reason := r.kafka.Ready()
	if !ok {
		r.reason.Store(&reason)
	}
	wasHealthy := r.healthy.Swap(ok)
	route := ok || (!r.everHealthy.Load() && time.Since(r.started) < r.cfg.StartGrace)
	if ok {
		r.everHealthy.Store(true)
	}
	wasRoute := r.route.Swap(route)
	switch {
	case ok && !wasHealthy:
		r.log.Info("Kafka takes records")
		r.poke()
		r.persistTopicMax()
	case !ok && wasHealthy:
		r.log.Warn("Kafka is not taking records: new records go to the spool (if configured)", zap.String("reason", reason))
	case !route && wasRoute && !wasHealthy:
		r.log.Warn("Kafka not ready within the start grace: new records go to the spool (if configured)",
			zap.Duration("grace", r.cfg.StartGrace), zap.String("reason", reason))
	}
}

// persistTopicMax remembers the topic's max.message.bytes in the spool
// directory, so a start while Kafka is down still refuses records too
// large for the topic.
func (r *Relay) persistTopicMax() {
	if r.sp == nil {
		return
	}
	if err := r.sp.SetTopicMaxBytes(r.kafka.TopicMaxBytes()); err != nil {
		r.thr.Warn("meta", "cannot remember the topic's max.message.bytes", zap.Error(err))
	}
}

// updateGauges sets the spool's gauges (also at New: a restart must not
// show an empty spool for a tick while it holds records).
func (r *Relay) updateGauges() {
	if r.sp == nil {
		return
	}
	recs, bytes := r.sp.Waiting()
	spoolRecords.Set(float64(recs))
	spoolBytes.Set(float64(bytes))
	age := 0.0
	if o := r.oldest(); !o.IsZero() {
		age = time.Since(o).Seconds()
	}
	spoolAge.Set(age)
	spoolCorrupt.Set(float64(r.sp.Main.Corrupt() + r.sp.Kept.Corrupt() + r.sp.Quarantine.Corrupt()))
	quarantineRecords.Set(float64(r.sp.Quarantine.Stats().Records))
}

// Stop ends the background work: the replayer stops at the end of its
// round, or, past ctx, at once (the round's records stay in the spool and
// are replayed at the next start). Call it after the HTTP server stopped
// and before flushing the producer.
func (r *Relay) Stop(ctx context.Context) {
	r.stopOnce.Do(func() { close(r.stop) })
	done := make(chan struct{})
	go func() { r.done.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		r.abortOnce.Do(func() { close(r.abort) })
		<-done
	}
}

// Drain replays the spool into Kafka until it is empty, or ctx ends, or
// Kafka has not taken records for patience: a graceful stop must not
// leave acknowledged records on a disk that may go away with the pod.
// Call it after the HTTP server stopped. It returns the records still
// waiting.
func (r *Relay) Drain(ctx context.Context, patience time.Duration) int64 {
	if r.sp == nil {
		return 0
	}
	r.poke()
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	lastHealthy := time.Now()
	for r.Spooling() {
		if r.healthy.Load() {
			lastHealthy = time.Now()
		} else if time.Since(lastHealthy) >= patience {
			break // Kafka is down: the records wait for the next start
		}
		select {
		case <-ctx.Done():
			recs, _ := r.sp.Waiting()
			return recs
		case <-t.C:
		}
	}
	recs, _ := r.sp.Waiting()
	return recs
}
