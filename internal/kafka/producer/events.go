package producer

import (
	"errors"
	"os"
	"runtime/cgo"
	"syscall"
	"time"

	"github.com/confluentinc/confluent-kafka-go/v2/kafka"
	"go.uber.org/zap"
)

// The gateway reads librdkafka's delivery reports, statistics and errors
// from librdkafka's main queue itself, not through the Go client's Events
// channel, for two costs the Go client cannot turn off:
//
//   - It turns every delivery report into a *kafka.Message holding copies
//     of the record's key and value (go.delivery.report.fields), and sends
//     it through a channel. The gateway needs the bytes only of a record
//     that failed, to spool it; for 2 KB events the copies and the garbage
//     they make were about an eighth of the gateway's CPU.
//   - Its poller waits for events inside a cgo call (rd_kafka_queue_poll
//     with a 100 ms timeout), and returns to Go for every batch of
//     reports: each time the Go runtime's sysmon takes the P away from
//     the blocked call, hands it to another thread, and polls every 20 µs
//     for a while (docs/performance.md, "The Go scheduler's share").
//
// Instead librdkafka writes a byte to a pipe whenever its main queue gets
// an event (rd_kafka_queue_io_event_enable), the event loop waits for the
// pipe in Go's netpoller, then takes every queued event without waiting
// (timeout 0), reads each report's error, opaque and sizes straight from
// librdkafka's message, and copies key and value only of a failed record.
// The records are produced by rdk.produce with an opaque of the
// gateway's own (opaque below), so the Go client's bookkeeping of opaques
// is not involved either.
//
// The Go client owns the main queue's handle in a private field that its
// poller reads on every poll, without synchronisation. openRdk (in New,
// before anything is produced) first forwards the main queue to a queue
// of the gateway's own (rd_kafka_queue_forward: what waits there and
// whatever arrives later goes there), then stores an empty queue in the
// field (an atomic store in C, which the race detector does not see), and
// wakes a poll in progress (rd_kafka_queue_yield). A poll that was
// already waiting on the main queue itself finds nothing more there, even
// if its thread runs late, and returns; the next poll is on the empty
// queue, where nothing ever arrives. What remains is a poll that read the
// field before the store but entered librdkafka only after the forward
// (a few instructions, if the thread is descheduled right there): it
// polls the gateway's queue for up to 100 ms, and an event it takes
// reaches the Go client's channel, which forwardGoEvents hands to the
// event loop. A delivery report taken that way loses its opaque: it is
// counted like an untracked record's, logged, and a waiting acknowledged
// request times out (503, the client sends again).

// opaque values of produced records: 0 none, odd a sampled record's
// enqueue time (µs since the producer started, shifted), even a
// cgo.Handle of its *tracked (shifted).
func (p *Producer) timeOpaque() uintptr {
	return uintptr(time.Since(p.started).Microseconds()+1)<<1 | 1
}

func trackedOpaque(tr *tracked) (uintptr, cgo.Handle) {
	h := cgo.NewHandle(tr)
	return uintptr(h) << 1, h
}

// outcome is one delivery report.
type outcome struct {
	topic      string
	mine       bool  // the gateway's topic
	err        error // a kafka.Error, or nil: delivered
	key, value []byte
	size       int64 // key and value bytes, as the books counted them
	tr         *tracked
	sent       time.Time // a sampled record's enqueue time, or zero
}

// opaqueOf fills o.tr or o.sent from a report's opaque, releasing the
// handle.
func (p *Producer) opaqueOf(o *outcome, v uintptr) {
	switch {
	case v == 0:
	case v&1 == 1:
		o.sent = p.started.Add(time.Duration(int64(v>>1)-1) * time.Microsecond)
	default:
		h := cgo.Handle(v >> 1)
		o.tr, _ = h.Value().(*tracked)
		h.Delete()
	}
}

// eventLoop serves librdkafka's main queue until Close. It is the only
// reader of it and must never block on anything else, or reports back up.
func (p *Producer) eventLoop() {
	defer close(p.loopDone)
	var b [64]byte
	for {
		p.serveEvents()
		select {
		case <-p.loopStop:
			p.serveEvents()
			return
		default:
		}
		if _, err := p.wakeR.Read(b[:]); err != nil && !errors.Is(err, syscall.EAGAIN) {
			// The pipe is closed only after the loop ended; read errors
			// are not expected. Do not spin on one.
			p.throttle.Error("events-pipe", "reading librdkafka's event pipe failed", zap.Error(err))
			time.Sleep(10 * time.Millisecond)
		}
	}
}

// wake makes the event loop look at its queues.
func (p *Producer) wake() {
	syscall.Write(p.wakeW, []byte{1}) //nolint:errcheck // a full pipe wakes the loop too
}

// forwardGoEvents hands what reaches the Go client's Events channel (see
// above: only around openRdk) to the event loop, until the Go client
// closes it.
func (p *Producer) forwardGoEvents(events chan kafka.Event) {
	defer close(p.goDone)
	for ev := range events {
		select {
		case p.goEvents <- ev:
			p.wake()
		case <-p.loopDone:
		}
	}
}

// goEvent handles an event from the Go client's channel.
func (p *Producer) goEvent(ev kafka.Event) {
	switch e := ev.(type) {
	case *kafka.Message:
		o := outcome{topic: p.topic, mine: true, err: e.TopicPartition.Error, key: e.Key, value: e.Value, size: int64(len(e.Key) + len(e.Value))}
		if t := e.TopicPartition.Topic; t != nil && *t != p.topic {
			o.topic, o.mine = *t, false
		}
		p.log.Error("a delivery report came through the Go client's poller: handled without its opaque (a waiting acknowledged request times out)")
		p.report(&o)
	case *kafka.Stats:
		p.stats(e.String())
	case kafka.Error:
		p.clientError(e)
	}
}

// openPipe returns the event loop's wake-up pipe: the read end for Go's
// netpoller, the write end's descriptor for librdkafka.
func openPipe() (*os.File, int, error) {
	var fds [2]int
	if err := syscall.Pipe(fds[:]); err != nil {
		return nil, -1, err
	}
	for _, fd := range fds {
		syscall.CloseOnExec(fd)
		if err := syscall.SetNonblock(fd, true); err != nil {
			syscall.Close(fds[0])
			syscall.Close(fds[1])
			return nil, -1, err
		}
	}
	return os.NewFile(uintptr(fds[0]), "librdkafka-events"), fds[1], nil
}
