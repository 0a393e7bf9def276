package producer

/*
// rd_kafka_flush is librdkafka's own (rdkafka.h), linked into the binary
// by confluent-kafka-go's static build, which calls it too. It is declared
// weak so this package's cgo link check, which does not see that archive,
// passes; flushNow reports a missing symbol instead of crashing.
typedef struct rd_kafka_s rd_kafka_t;
extern int rd_kafka_flush(rd_kafka_t *rk, int timeout_ms) __attribute__((weak));

static int bg_flush(void *rk, int timeout_ms) {
	if (!rd_kafka_flush) {
		return -1;
	}
	rd_kafka_flush((rd_kafka_t *)rk, timeout_ms);
	return 0;
}
*/
import "C"

import (
	"reflect"
	"unsafe"

	"github.com/confluentinc/confluent-kafka-go/v2/kafka"
)

// Acknowledged requests wait for their records' delivery reports, and
// librdkafka holds every record up to linger.ms (20 ms by default) to
// fill batches: a request would wait out that linger before its record is
// even sent, so 64 connections could never acknowledge more than about
// 3,200 requests a second. librdkafka has one way to send now: while
// rd_kafka_flush runs, linger.ms counts as zero for every partition
// (rdkafka.h, rd_kafka_flush: "The linger.ms time will be ignored for the
// duration of the call"). So while any record of an acknowledged request
// is outstanding, one goroutine keeps a short rd_kafka_flush running; the
// asynchronous path then also sends without lingering, which costs broker
// requests only while acknowledged traffic flows. In event mode (how the
// Go client runs librdkafka) rd_kafka_flush only waits on a condition
// variable for the queue to empty, so it serves no events and cannot
// reorder delivery reports: the event loop stays their only reader.
//
// The Go client does not export librdkafka's handle, and its own Flush
// polls the event queue itself (a second reader would reorder reports),
// hence the handle is read from the client's private field. If a new
// client version renames it, rkHandle returns nil and New fails (the
// gateway's own produce and event loop need the handle too, events.go):
// every test that starts a producer fails first.

// rkHandle returns librdkafka's rd_kafka_t of p, or nil.
func rkHandle(p *kafka.Producer) unsafe.Pointer {
	h := reflect.ValueOf(p).Elem().FieldByName("handle")
	if !h.IsValid() || h.Kind() != reflect.Struct {
		return nil
	}
	rk := h.FieldByName("rk")
	if !rk.IsValid() || rk.Kind() != reflect.Pointer {
		return nil
	}
	return rk.UnsafePointer()
}

// flushNow runs rd_kafka_flush for up to ms milliseconds; false if the
// symbol is missing.
func flushNow(rk unsafe.Pointer, ms int) bool {
	return C.bg_flush(rk, C.int(ms)) == 0
}

// flushLoop keeps librdkafka from lingering while records of
// acknowledged requests are outstanding. Each rd_kafka_flush call is
// short (1 ms) so that the loop notices at once when the last of them
// is delivered and lets the asynchronous path batch again; between two
// calls librdkafka may linger for an instant, which only delays a record
// by the time to loop.
func (p *Producer) flushLoop() {
	defer close(p.flushDone)
	for {
		select {
		case <-p.stop:
			return
		case <-p.kick:
		}
		for p.urgent.Load() > 0 {
			select {
			case <-p.stop:
				return
			default:
			}
			flushNow(unsafe.Pointer(p.rdk.rk), 1)
		}
	}
}
