package producer

/*
#ifndef _GNU_SOURCE
#define _GNU_SOURCE // pthread_setname_np
#endif
#include <pthread.h>
#include <stdlib.h>

// rd_kafka_flush is librdkafka's own (rdkafka.h), linked into the binary
// by confluent-kafka-go's static build, which calls it too. It is declared
// weak so this package's cgo link check, which does not see that archive,
// passes; bg_flusher_start reports a missing symbol instead of crashing.
typedef struct rd_kafka_s rd_kafka_t;
extern int rd_kafka_flush(rd_kafka_t *rk, int timeout_ms) __attribute__((weak));

#define BG_FLUSHER_NAME "bg:flush"

// bg_flusher is the thread that keeps librdkafka from lingering while
// records of acknowledged requests are outstanding (see below). urgent
// and flushes are updated atomically, from Go too; stop under mu.
typedef struct {
	long long urgent;            // outstanding records of acknowledged requests
	unsigned long long flushes;  // rd_kafka_flush calls begun
	rd_kafka_t *rk;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int stop;
	pthread_t th;
} bg_flusher;

static void *bg_flusher_run(void *arg) {
	bg_flusher *f = arg;
	pthread_mutex_lock(&f->mu);
	for (;;) {
		// Checked under mu, which bg_flusher_wake takes to signal: a
		// count that rises after this check is signalled after the wait
		// began, so the wake-up cannot be lost.
		while (!f->stop && __atomic_load_n(&f->urgent, __ATOMIC_SEQ_CST) <= 0) {
			pthread_cond_wait(&f->cv, &f->mu);
		}
		if (f->stop) {
			break;
		}
		pthread_mutex_unlock(&f->mu);
		__atomic_add_fetch(&f->flushes, 1, __ATOMIC_SEQ_CST);
		rd_kafka_flush(f->rk, 1);
		pthread_mutex_lock(&f->mu);
	}
	pthread_mutex_unlock(&f->mu);
	return NULL;
}

// bg_flusher_start starts the thread for rk; NULL if librdkafka's flush
// is missing or the thread cannot be created.
static bg_flusher *bg_flusher_start(void *rk) {
	if (!rd_kafka_flush) {
		return NULL;
	}
	bg_flusher *f = calloc(1, sizeof *f);
	if (!f) {
		return NULL;
	}
	f->rk = (rd_kafka_t *)rk;
	pthread_mutex_init(&f->mu, NULL);
	pthread_cond_init(&f->cv, NULL);
	if (pthread_create(&f->th, NULL, bg_flusher_run, f) != 0) {
		pthread_cond_destroy(&f->cv);
		pthread_mutex_destroy(&f->mu);
		free(f);
		return NULL;
	}
	// Named as librdkafka names its own ("rdk:broker1"), so top -H and
	// beacongate-bench's per-thread CPU tell it from the Go threads. Named
	// here, not by the thread itself, so the name is there when New
	// returns.
	pthread_setname_np(f->th, BG_FLUSHER_NAME);
	return f;
}

// bg_flusher_wake wakes the thread: the count rose from zero.
static void bg_flusher_wake(bg_flusher *f) {
	pthread_mutex_lock(&f->mu);
	pthread_cond_signal(&f->cv);
	pthread_mutex_unlock(&f->mu);
}

// bg_flusher_stop ends the thread, after at most one more flush of 1 ms.
// f stays valid: counting and waking do nothing more.
static void bg_flusher_stop(bg_flusher *f) {
	pthread_mutex_lock(&f->mu);
	f->stop = 1;
	pthread_cond_signal(&f->cv);
	pthread_mutex_unlock(&f->mu);
	pthread_join(f->th, NULL);
}

// bg_flusher_free frees a stopped f.
static void bg_flusher_free(bg_flusher *f) {
	pthread_cond_destroy(&f->cv);
	pthread_mutex_destroy(&f->mu);
	free(f);
}
*/
import "C"

import (
	"errors"
	"reflect"
	"sync/atomic"
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
// is outstanding, a thread keeps a short rd_kafka_flush running; the
// asynchronous path then also sends without lingering, which costs broker
// requests only while acknowledged traffic flows. In event mode (how the
// Go client runs librdkafka) rd_kafka_flush only waits on a condition
// variable for the queue to empty, so it serves no events and cannot
// reorder delivery reports: the event loop stays their only reader.
//
// The thread is a C thread, not a goroutine. A goroutine calling
// rd_kafka_flush blocks in cgo for a millisecond at a time, a thousand
// times a second: each time the Go runtime's sysmon takes its P away and
// hands it to another thread, and sysmon itself polls every 20 µs while
// it keeps finding such calls (docs/performance.md, "The Go scheduler's
// share"). Go code counts the outstanding records in the thread's C
// memory with atomic adds and calls into C only when the count rises
// from zero, to wake the thread.
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

// flusher is the Go side of the flush thread.
type flusher struct{ f *C.bg_flusher }

var errNoFlush = errors.New("cannot start the flush thread for acknowledged requests: librdkafka's rd_kafka_flush is missing, or pthread_create failed")

func startFlusher(rk unsafe.Pointer) (flusher, error) {
	f := C.bg_flusher_start(rk)
	if f == nil {
		return flusher{}, errNoFlush
	}
	return flusher{f}, nil
}

// urgent is the count of outstanding records of acknowledged requests,
// in C memory.
func (fl flusher) urgent() *int64 { return (*int64)(unsafe.Pointer(&fl.f.urgent)) }

// add adds n records to the count, waking the thread when it rises from
// zero (n > 0).
func (fl flusher) add(n int64) {
	if atomic.AddInt64(fl.urgent(), n) == n && n > 0 {
		C.bg_flusher_wake(fl.f)
	}
}

// flushes is how many rd_kafka_flush calls the thread began (tests):
// counted before the call, so a record the flush sent is never seen
// delivered before its flush is counted.
func (fl flusher) flushes() uint64 {
	return atomic.LoadUint64((*uint64)(unsafe.Pointer(&fl.f.flushes)))
}

// stop ends the thread. Counting goes on harmlessly until free: the
// event loop still handles reports after the thread stopped.
func (fl flusher) stop() { C.bg_flusher_stop(fl.f) }

// free releases the flusher's memory; nothing may count after it.
func (fl flusher) free() { C.bg_flusher_free(fl.f) }
