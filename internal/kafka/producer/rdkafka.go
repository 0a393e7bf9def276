package producer

/*
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

// librdkafka's own API (rdkafka.h), linked into the binary by
// confluent-kafka-go's static build. Declared here, weak, for the reason
// urgent.go gives; bg_have_api says whether every one is there. The
// message struct and the constants below are librdkafka's public ABI.
typedef struct rd_kafka_s rd_kafka_t;
typedef struct rd_kafka_topic_s rd_kafka_topic_t;
typedef struct rd_kafka_topic_conf_s rd_kafka_topic_conf_t;
typedef struct rd_kafka_queue_s rd_kafka_queue_t;
typedef struct rd_kafka_op_s rd_kafka_event_t;
typedef struct rd_kafka_headers_s rd_kafka_headers_t;

typedef struct rd_kafka_message_s {
	int err;
	rd_kafka_topic_t *rkt;
	int32_t partition;
	void *payload;
	size_t len;
	void *key;
	size_t key_len;
	int64_t offset;
	void *_private;
} rd_kafka_message_t;

enum {
	BG_VTYPE_END = 0, BG_VTYPE_RKT = 2, BG_VTYPE_PARTITION = 3, BG_VTYPE_VALUE = 4,
	BG_VTYPE_KEY = 5, BG_VTYPE_OPAQUE = 6, BG_VTYPE_MSGFLAGS = 7, BG_VTYPE_HEADERS = 10,
};
#define BG_MSG_F_COPY 0x2
#define BG_EVENT_DR 0x1
#define BG_EVENT_ERROR 0x8
#define BG_EVENT_STATS 0x40

extern rd_kafka_queue_t *rd_kafka_queue_new(rd_kafka_t *rk) __attribute__((weak));
extern void rd_kafka_queue_destroy(rd_kafka_queue_t *q) __attribute__((weak));
extern void rd_kafka_queue_yield(rd_kafka_queue_t *q) __attribute__((weak));
extern void rd_kafka_queue_forward(rd_kafka_queue_t *src, rd_kafka_queue_t *dst) __attribute__((weak));
extern void rd_kafka_queue_io_event_enable(rd_kafka_queue_t *q, int fd, const void *payload, size_t size) __attribute__((weak));
extern rd_kafka_event_t *rd_kafka_queue_poll(rd_kafka_queue_t *q, int timeout_ms) __attribute__((weak));
extern int rd_kafka_event_type(const rd_kafka_event_t *ev) __attribute__((weak));
extern size_t rd_kafka_event_message_count(rd_kafka_event_t *ev) __attribute__((weak));
extern size_t rd_kafka_event_message_array(rd_kafka_event_t *ev, const rd_kafka_message_t **msgs, size_t size) __attribute__((weak));
extern void rd_kafka_event_destroy(rd_kafka_event_t *ev) __attribute__((weak));
extern const char *rd_kafka_event_stats(rd_kafka_event_t *ev) __attribute__((weak));
extern int rd_kafka_event_error(rd_kafka_event_t *ev) __attribute__((weak));
extern const char *rd_kafka_event_error_string(rd_kafka_event_t *ev) __attribute__((weak));
extern int rd_kafka_event_error_is_fatal(rd_kafka_event_t *ev) __attribute__((weak));
extern int rd_kafka_fatal_error(rd_kafka_t *rk, char *errstr, size_t errstr_size) __attribute__((weak));
extern rd_kafka_topic_t *rd_kafka_topic_new(rd_kafka_t *rk, const char *topic, rd_kafka_topic_conf_t *conf) __attribute__((weak));
extern void rd_kafka_topic_destroy(rd_kafka_topic_t *rkt) __attribute__((weak));
extern const char *rd_kafka_topic_name(const rd_kafka_topic_t *rkt) __attribute__((weak));
extern int rd_kafka_producev(rd_kafka_t *rk, ...) __attribute__((weak));
extern rd_kafka_headers_t *rd_kafka_headers_new(size_t initial_count) __attribute__((weak));
extern int rd_kafka_header_add(rd_kafka_headers_t *hdrs, const char *name, ssize_t name_size, const void *value, ssize_t value_size) __attribute__((weak));
extern void rd_kafka_headers_destroy(rd_kafka_headers_t *hdrs) __attribute__((weak));

static int bg_have_api(void) {
	return rd_kafka_queue_new && rd_kafka_queue_destroy && rd_kafka_queue_yield && rd_kafka_queue_forward &&
		rd_kafka_queue_io_event_enable && rd_kafka_queue_poll && rd_kafka_event_type &&
		rd_kafka_event_message_count && rd_kafka_event_message_array && rd_kafka_event_destroy &&
		rd_kafka_event_stats && rd_kafka_event_error && rd_kafka_event_error_string &&
		rd_kafka_event_error_is_fatal && rd_kafka_fatal_error && rd_kafka_topic_new &&
		rd_kafka_topic_destroy && rd_kafka_topic_name && rd_kafka_producev &&
		rd_kafka_headers_new && rd_kafka_header_add && rd_kafka_headers_destroy;
}

// bg_take_queue moves the queue at addr (the Go client's handle on
// librdkafka's main queue) out of the Go client: it forwards the main
// queue to dst, so that what arrives there from now on, and what waits
// there now, is in dst; stores repl in the field instead; and wakes a
// poll waiting on the main queue. It returns the old handle. A poll that
// was waiting on the main queue itself finds nothing more there: it
// returns, and the next one is on repl.
// The store is done here, not in Go, because the Go client's poller
// reads the field without synchronisation (see events.go). The field's
// address comes as an integer: the struct holding it holds Go pointers,
// which cgo's pointer check refuses to pass; Go's heap does not move.
static rd_kafka_queue_t *bg_take_queue(uintptr_t addr, rd_kafka_queue_t *repl, rd_kafka_queue_t *dst) {
	rd_kafka_queue_t **field = (rd_kafka_queue_t **)addr;
	rd_kafka_queue_t *old = __atomic_load_n(field, __ATOMIC_SEQ_CST);
	rd_kafka_queue_forward(old, dst);
	__atomic_store_n(field, repl, __ATOMIC_SEQ_CST);
	rd_kafka_queue_yield(old);
	return old;
}

static void bg_io_event(rd_kafka_queue_t *q, int fd) {
	static const char one = 1;
	rd_kafka_queue_io_event_enable(q, fd, fd < 0 ? NULL : &one, fd < 0 ? 0 : 1);
}

// bg_poll_out is what bg_poll found. It lives in C memory: Go variables
// whose address goes to C escape to the heap, one allocation per poll.
typedef struct {
	int type;
	size_t n;
} bg_poll_out;

// bg_poll destroys prev (the previous event, or NULL) and takes the next
// event off q without waiting (NULL: none), its type in out->type. For a
// delivery report it stores up to cap of its messages in msgs and their
// count in out->n (which may be more than cap: then call
// rd_kafka_event_message_array with a larger array).
static rd_kafka_event_t *bg_poll(rd_kafka_queue_t *q, rd_kafka_event_t *prev, bg_poll_out *out, const rd_kafka_message_t **msgs, size_t cap) {
	if (prev) {
		rd_kafka_event_destroy(prev);
	}
	rd_kafka_event_t *ev = rd_kafka_queue_poll(q, 0);
	out->n = 0;
	if (!ev) {
		out->type = 0;
		return NULL;
	}
	out->type = rd_kafka_event_type(ev);
	if (out->type == BG_EVENT_DR) {
		out->n = rd_kafka_event_message_count(ev);
		if (out->n <= cap) {
			rd_kafka_event_message_array(ev, msgs, cap);
		}
	}
	return ev;
}

// bg_produce enqueues one record, copying key, value and headers. hb
// holds hlen bytes of headers, each [u32 name length][name][i32 value
// length, -1 for none][value] in the machine's byte order.
static int bg_produce(rd_kafka_t *rk, rd_kafka_topic_t *rkt, int32_t partition,
		uintptr_t kaddr, size_t klen, uintptr_t vaddr, size_t vlen,
		uintptr_t haddr, size_t hlen, uintptr_t opaque) {
	void *key = (void *)kaddr, *val = (void *)vaddr;
	const unsigned char *hb = (const unsigned char *)haddr;
	rd_kafka_headers_t *hdrs = NULL;
	if (hlen > 0) {
		hdrs = rd_kafka_headers_new(2);
		size_t i = 0;
		while (i + 8 <= hlen) {
			uint32_t nl;
			int32_t vl;
			memcpy(&nl, hb + i, 4);
			const char *name = (const char *)hb + i + 4;
			i += 4 + nl;
			memcpy(&vl, hb + i, 4);
			i += 4;
			rd_kafka_header_add(hdrs, name, nl, vl < 0 ? NULL : hb + i, vl < 0 ? 0 : vl);
			if (vl > 0) {
				i += vl;
			}
		}
	}
	int err = rd_kafka_producev(rk,
		BG_VTYPE_RKT, rkt,
		BG_VTYPE_PARTITION, partition,
		BG_VTYPE_VALUE, val, vlen,
		BG_VTYPE_KEY, key, klen,
		BG_VTYPE_MSGFLAGS, BG_MSG_F_COPY,
		BG_VTYPE_OPAQUE, (void *)opaque,
		hdrs ? BG_VTYPE_HEADERS : BG_VTYPE_END, hdrs,
		BG_VTYPE_END);
	if (err && hdrs) {
		rd_kafka_headers_destroy(hdrs);
	}
	return err;
}
*/
import "C"

import (
	"encoding/binary"
	"errors"
	"fmt"
	"reflect"
	"runtime"
	"strings"
	"sync"
	"unsafe"

	"github.com/confluentinc/confluent-kafka-go/v2/kafka"
)

// rdk is the gateway's own use of librdkafka's handle, next to the Go
// client's: producing and reading delivery reports without the Go
// client's per-record work (events.go says why).
type rdk struct {
	rk    *C.rd_kafka_t
	mainq *C.rd_kafka_queue_t // the Go client's handle of librdkafka's main queue, forwarded to q
	q     *C.rd_kafka_queue_t // where the main queue's events go; the event loop reads it
	main  *C.rd_kafka_topic_t // the gateway's topic

	topicsMu sync.Mutex
	topics   map[string]*C.rd_kafka_topic_t
	names    map[*C.rd_kafka_topic_t]string
	closed   bool

	msgs    **C.rd_kafka_message_t // C array of msgsCap pointers, for bg_poll
	msgsCap int
	out     *C.bg_poll_out // C memory, for bg_poll
}

var errNoHandle = errors.New("cannot reach librdkafka's handle and main queue in this confluent-kafka-go version (its private fields handle.rk and handle.rkq)")

// queueField returns the address of the Go client's handle.rkq of p, or
// nil if this client version has no such field of the expected type.
func queueField(p *kafka.Producer) unsafe.Pointer {
	h := reflect.ValueOf(p).Elem().FieldByName("handle")
	if !h.IsValid() || h.Kind() != reflect.Struct {
		return nil
	}
	q := h.FieldByName("rkq")
	if !q.IsValid() || q.Kind() != reflect.Pointer || !strings.Contains(q.Type().String(), "rd_kafka_queue_s") || q.IsNil() {
		return nil
	}
	return unsafe.Pointer(q.UnsafeAddr())
}

// openRdk takes librdkafka's main queue out of the Go client p (whose
// poller then polls an empty queue; the Go client destroys that queue
// when it closes) and has librdkafka write a byte to fd whenever an event
// arrives on the main queue. The Go client must not have produced
// anything yet. topic is the gateway's topic.
func openRdk(p *kafka.Producer, fd int, topic string) (*rdk, error) {
	rk, field := rkHandle(p), queueField(p)
	if rk == nil || field == nil || C.bg_have_api() == 0 {
		return nil, errNoHandle
	}
	r := &rdk{
		rk:     (*C.rd_kafka_t)(rk),
		topics: map[string]*C.rd_kafka_topic_t{},
		names:  map[*C.rd_kafka_topic_t]string{},
	}
	t, err := r.topic(topic)
	if err != nil {
		return nil, err
	}
	r.main = t
	// The Go client's poller polls dummy from now on; the Go client
	// destroys it when it closes.
	dummy := C.rd_kafka_queue_new(r.rk)
	r.q = C.rd_kafka_queue_new(r.rk)
	C.bg_io_event(r.q, C.int(fd))
	r.mainq = C.bg_take_queue(C.uintptr_t(uintptr(field)), dummy, r.q)
	runtime.KeepAlive(p)
	r.grow(1024)
	r.out = (*C.bg_poll_out)(C.calloc(1, C.size_t(unsafe.Sizeof(C.bg_poll_out{}))))
	return r, nil
}

// grow makes room for n message pointers in r.msgs.
func (r *rdk) grow(n int) {
	if n <= r.msgsCap {
		return
	}
	if r.msgs != nil {
		C.free(unsafe.Pointer(r.msgs))
	}
	r.msgs = (**C.rd_kafka_message_t)(C.malloc(C.size_t(n) * C.size_t(unsafe.Sizeof(uintptr(0)))))
	r.msgsCap = n
}

// topic returns librdkafka's handle of topic, creating it once.
func (r *rdk) topic(name string) (*C.rd_kafka_topic_t, error) {
	r.topicsMu.Lock()
	defer r.topicsMu.Unlock()
	if t := r.topics[name]; t != nil {
		return t, nil
	}
	if r.closed {
		return nil, errClosed
	}
	cs := C.CString(name)
	defer C.free(unsafe.Pointer(cs))
	t := C.rd_kafka_topic_new(r.rk, cs, nil)
	if t == nil {
		return nil, fmt.Errorf("producer: librdkafka refused a handle for topic %q", name)
	}
	r.topics[name] = t
	r.names[t] = name
	return t, nil
}

// topicName is the name of a delivery report's topic handle.
func (r *rdk) topicName(t *C.rd_kafka_topic_t) string {
	r.topicsMu.Lock()
	defer r.topicsMu.Unlock()
	if n, ok := r.names[t]; ok {
		return n
	}
	n := C.GoString(C.rd_kafka_topic_name(t))
	r.names[t] = n
	return n
}

var errClosed = errors.New("producer: closed")

// produce enqueues one record (see bg_produce); opaque comes back in its
// delivery report.
//
// Key, value and headers go to C as addresses, not pointers: for every
// pointer argument cgo checks at run time that the memory it points to
// holds no Go pointers (GODEBUG cgocheck=1, the default), a walk of the
// heap's metadata that was 0.7% of the gateway's CPU for pixels. These
// are byte slices, which hold no pointers by their type, and C keeps no
// reference to them after the call (librdkafka copies the record,
// RD_KAFKA_MSG_F_COPY, and rd_kafka_header_add copies each header), which
// is all the check would enforce. KeepAlive keeps the memory alive until
// the call returns; a goroutine's stack does not move while it is in a
// cgo call, so memory on the stack is safe too.
func (r *rdk) produce(t *C.rd_kafka_topic_t, partition int32, key, value, hdrs []byte, opaque uintptr) C.int {
	err := C.bg_produce(r.rk, t, C.int32_t(partition), addr(key), C.size_t(len(key)), addr(value), C.size_t(len(value)),
		addr(hdrs), C.size_t(len(hdrs)), C.uintptr_t(opaque))
	runtime.KeepAlive(key)
	runtime.KeepAlive(value)
	runtime.KeepAlive(hdrs)
	return err
}

// addr is the address of b's first byte as an integer for C, 0 if b is
// empty (see produce).
func addr(b []byte) C.uintptr_t {
	if len(b) == 0 {
		return 0
	}
	return C.uintptr_t(uintptr(unsafe.Pointer(unsafe.SliceData(b))))
}

// appendHeader appends one header in bg_produce's layout.
func appendHeader(b []byte, name string, value []byte) []byte {
	b = binary.NativeEndian.AppendUint32(b, uint32(len(name)))
	b = append(b, name...)
	if value == nil {
		return binary.NativeEndian.AppendUint32(b, ^uint32(0)) // -1
	}
	b = binary.NativeEndian.AppendUint32(b, uint32(len(value)))
	return append(b, value...)
}

// close releases the topic handles and the main queue. The event loop
// must have stopped; librdkafka's handle must not be destroyed yet.
func (r *rdk) close() {
	r.topicsMu.Lock()
	r.closed = true
	for _, t := range r.topics {
		C.rd_kafka_topic_destroy(t)
	}
	clear(r.topics)
	r.topicsMu.Unlock()
	C.bg_io_event(r.q, -1)
	C.rd_kafka_queue_forward(r.mainq, nil)
	C.rd_kafka_queue_destroy(r.q)
	C.rd_kafka_queue_destroy(r.mainq)
	C.free(unsafe.Pointer(r.msgs))
	r.msgs, r.msgsCap = nil, 0
	C.free(unsafe.Pointer(r.out))
	r.out = nil
}

// kafkaError is librdkafka's error code as the Go client's Error.
func kafkaError(code C.int) kafka.Error {
	return kafka.NewError(kafka.ErrorCode(code), "", false)
}

// serveEvents handles every event queued now.
func (p *Producer) serveEvents() {
	r := p.rdk
	var prev *C.rd_kafka_event_t
	for {
		select {
		case ev := <-p.goEvents:
			p.goEvent(ev)
			continue
		default:
		}
		ev := C.bg_poll(r.q, prev, r.out, r.msgs, C.size_t(r.msgsCap))
		prev = ev
		if ev == nil {
			return
		}
		n := r.out.n
		switch r.out._type {
		case C.BG_EVENT_DR:
			if int(n) > r.msgsCap {
				r.grow(int(n))
				n = C.rd_kafka_event_message_array(ev, r.msgs, n)
			}
			for _, m := range unsafe.Slice(r.msgs, int(n)) {
				p.reportC(m)
			}
		case C.BG_EVENT_STATS:
			p.stats(C.GoString(C.rd_kafka_event_stats(ev)))
		case C.BG_EVENT_ERROR:
			p.clientError(p.eventError(ev))
		}
	}
}

// reportC handles one record's delivery report, read from librdkafka's
// message while its event is alive.
func (p *Producer) reportC(m *C.rd_kafka_message_t) {
	o := outcome{mine: m.rkt == p.rdk.main, size: int64(m.len + m.key_len)}
	if !o.mine {
		o.topic = p.rdk.topicName(m.rkt)
		o.mine = o.topic == p.topic
	}
	if o.mine {
		o.topic = p.topic
	}
	if m.err != 0 {
		o.err = kafkaError(m.err)
		if m.key != nil {
			o.key = C.GoBytes(m.key, C.int(m.key_len))
		}
		o.value = C.GoBytes(m.payload, C.int(m.len))
	}
	p.opaqueOf(&o, uintptr(m._private))
	p.report(&o)
}

// eventError is an error event as the Go client's Error; for a fatal one,
// librdkafka's fatal error.
func (p *Producer) eventError(ev *C.rd_kafka_event_t) kafka.Error {
	if C.rd_kafka_event_error_is_fatal(ev) != 0 {
		var buf [512]C.char
		code := C.rd_kafka_fatal_error(p.rdk.rk, &buf[0], C.size_t(len(buf)))
		return kafka.NewError(kafka.ErrorCode(code), C.GoString(&buf[0]), true)
	}
	return kafka.NewError(kafka.ErrorCode(C.rd_kafka_event_error(ev)), C.GoString(C.rd_kafka_event_error_string(ev)), false)
}
