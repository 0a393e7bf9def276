package producer

import "github.com/confluentinc/confluent-kafka-go/v2/kafka"

// UrgentFlushAvailable reports whether p reached librdkafka's handle, so
// acknowledged requests do not wait out linger.ms (urgent.go).
func UrgentFlushAvailable(p *Producer) bool { return p.rdk != nil && p.rdk.rk != nil }

// SetLookupHook runs hook at the start of every topic lookup of a
// producer of topic, before the lookup's first call into librdkafka,
// until restore is called.
func SetLookupHook(topic string, hook func(p *Producer)) (restore func()) {
	h := func(p *Producer) {
		if p.topic == topic {
			hook(p)
		}
	}
	lookupHook.Store(&h)
	return func() { lookupHook.Store(nil) }
}

// Stopping is closed when Close has begun.
func Stopping(p *Producer) <-chan struct{} { return p.stop }

// HandleClosed reports whether librdkafka's handle was closed (destroyed).
func HandleClosed(p *Producer) bool { return p.p.IsClosed() }

// ChurnFaults runs librdkafka's per-batch compression allocations rounds
// times on a new thread and returns its minor page faults (malloc.go).
func ChurnFaults(rounds int) int64 { return churnFaults(rounds) }

// SetMallocThresholds sets glibc's mmap and trim thresholds (malloc.go).
func SetMallocThresholds(mmap, trim int) int { return setMallocThresholds(mmap, trim) }

// ThreadsMalloc has n threads malloc at once and returns the process's
// malloc arena count after (malloc.go).
func ThreadsMalloc(n int) int { return threadsMalloc(n) }

// MallocArenas is the arena limit set when the program was loaded, 0 if
// none (malloc.go).
func MallocArenas() int { return mallocArenas() }

// InjectGoEvent hands ev to p's event loop as if the Go client's poller
// had taken it from librdkafka's main queue (events.go), after counting
// it in the books as produced when it is a record.
func InjectGoEvent(p *Producer, ev kafka.Event) {
	if m, ok := ev.(*kafka.Message); ok {
		p.count(m.TopicPartition.Topic == nil || *m.TopicPartition.Topic == p.topic, 1, int64(len(m.Key)+len(m.Value)))
	}
	p.goEvents <- ev
	p.wake()
}

// Flushes is how many rd_kafka_flush calls the flush thread began, and
// Urgent the records of acknowledged requests outstanding (urgent.go).
func Flushes(p *Producer) uint64 { return p.flusher.flushes() }
func Urgent(p *Producer) int64   { return *p.flusher.urgent() }
