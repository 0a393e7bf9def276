package producer

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Config configures the producer. Its zero value produces to topic
// "beacons" on a broker at 127.0.0.1:9092 with the defaults below.
type Config struct {
	// Brokers is librdkafka's bootstrap.servers: comma-separated host:port.
	// Default "127.0.0.1:9092".
	Brokers string
	// Topic receives every record. Default "beacons".
	Topic string
	// ClientID names this producer to the brokers (client.id). Default
	// "beacongate".
	ClientID string
	// Security is TLS and SASL to the brokers; the zero value is
	// plaintext. See Security.
	Security Security
	// Settings are librdkafka properties applied last, so they override
	// both Defaults and the properties derived from Security (flag
	// -kafka.config key=value). Precedence, lowest first: Defaults,
	// Brokers/ClientID/StatsInterval, Security, Settings.
	Settings map[string]string
	// HighWater is the fraction of queue.buffering.max.messages (and of
	// queue.buffering.max.kbytes) above which
	// Ready reports false, so a load balancer steers traffic away before
	// requests start failing with 503. Default 0.8.
	HighWater float64
	// StatsInterval is how often librdkafka reports statistics (queue
	// depth, broker state and RTT) to the metrics. Default 1s.
	StatsInterval time.Duration
	// LatencySampleEvery measures delivery latency on one record in this
	// many (tracking a record costs an allocation and a map entry in the
	// Go client). Default 64; negative turns the measurement off.
	LatencySampleEvery int
	// TopicMaxBytes seeds the topic's max.message.bytes until the broker
	// is asked (the spool remembers it across restarts), so records too
	// large for the topic are refused also when the gateway starts while
	// Kafka is down. 0: unknown.
	TopicMaxBytes int
}

// DefaultTopic receives every record when Config.Topic is empty.
const DefaultTopic = "beacons"

// Defaults are the librdkafka properties the gateway sets before applying
// Config.Settings. Each line says why.
var Defaults = map[string]string{
	// Snappy: cheap on CPU at beacon rates; gzip was too slow for a load of
	// ~0.8 KB browser beacons (bench preset 0.8kb, docs/performance.md) and
	// filled librdkafka's queue.
	"compression.type": "snappy",
	// Idempotence implies acks=all and max.in.flight<=5 with per-partition
	// ordering kept across retries: a user's events stay in order and are
	// not duplicated by retries.
	"enable.idempotence": "true",
	// Kafka-Java-compatible partitioning, so any producer or consumer that
	// hashes a key agrees on its partition (keyless records are spread).
	"partitioner": "murmur2_random",
	// Pixels are answered before Kafka acknowledges, so waiting 20 ms to
	// fill batches costs no request latency; measured against 5 ms with
	// beacongate-bench it gave 3% more throughput and halved the broker's
	// CPU per event (larger batches, fewer produce requests and wake-ups).
	"linger.ms": "20",
	// Bounded in-memory queue: at most this many records wait for Kafka;
	// past it requests get an immediate 503 (ErrQueueFull).
	"queue.buffering.max.messages": "200000",
	// And at most 32 MiB of them: the queue only has to hold what is in
	// flight (linger.ms plus a produce round trip: ~8 MB at 100,000
	// records/s of 0.8 KB) and a short stall; a longer one is the spool's
	// work, on disk. Measured with beacongate-bench's 2 KB preset, this
	// keeps a gateway under overload near 110 MiB of RSS (with 256 MiB it
	// was ~380 MiB), at no cost in throughput (docs/performance.md).
	"queue.buffering.max.kbytes": "32768",
	// Up to 10,000 records per batch (server-side batches of ~2 KB events,
	// bench preset 2kb, docs/performance.md).
	"batch.num.messages": "10000",
	// Delivery reports carry key and value, so a record librdkafka gives
	// up on can be handed to the spool instead of being lost
	// (docs/delivery.md). It costs a copy per delivered record.
	"go.delivery.report.fields": "key,value",
	// The events channel carries delivery reports (each with its value),
	// stats and errors, consumed by one loop: bound the memory it can hold.
	"go.events.channel.size": "20000",
	// librdkafka's default, stated so the gateway knows the limit it
	// admits records against (Producer.Admit).
	"message.max.bytes": "1000000",
	// A connection to every broker, kept up and re-established after a
	// failure: a broker's state then says whether its partitions can take
	// records before any is sent there (readiness per partition, see
	// stats.go). With sparse connections an idle leader is never
	// reconnected, and a gateway that spools while it is down would never
	// see it come back.
	"enable.sparse.connections": "false",
	// Delivery reports of successes too: the spool's cursor and
	// acknowledged requests advance on them.
	"go.delivery.reports": "true",
	// librdkafka's own log lines go to the structured log (logs.go).
	"go.logs.channel.enable": "true",
}

func (c Config) withDefaults() Config {
	if c.Brokers == "" {
		c.Brokers = "127.0.0.1:9092"
	}
	if c.Topic == "" {
		c.Topic = DefaultTopic
	}
	if c.ClientID == "" {
		c.ClientID = "beacongate"
	}
	if c.HighWater == 0 {
		c.HighWater = 0.8
	}
	if c.StatsInterval == 0 {
		c.StatsInterval = time.Second
	}
	if c.LatencySampleEvery == 0 {
		c.LatencySampleEvery = 64
	}
	return c
}

// Validate rejects contradictory or unusable settings at start-up.
func (c Config) Validate() error {
	c = c.withDefaults()
	if c.HighWater <= 0 || c.HighWater > 1 {
		return fmt.Errorf("producer: high-water fraction %v out of range (0, 1]", c.HighWater)
	}
	if c.StatsInterval < 0 {
		return fmt.Errorf("producer: negative stats interval %v", c.StatsInterval)
	}
	if strings.ContainsAny(c.Topic, " ,/\\") || len(c.Topic) > 249 {
		return fmt.Errorf("producer: invalid topic name %q", c.Topic)
	}
	if c.TopicMaxBytes < 0 {
		return fmt.Errorf("producer: negative topic max.message.bytes %d", c.TopicMaxBytes)
	}
	if err := checkOwned(c.Settings); err != nil {
		return err
	}
	props := c.librdkafkaConfig()
	for _, k := range []string{"queue.buffering.max.messages", "queue.buffering.max.kbytes", "message.max.bytes"} {
		if _, err := intProp(props, k); err != nil {
			return err
		}
	}
	return c.Security.validate()
}

// librdkafkaConfig is the property map handed to librdkafka.
func (c Config) librdkafkaConfig() map[string]string {
	m := make(map[string]string, len(Defaults)+len(c.Settings)+12)
	for k, v := range Defaults {
		m[k] = v
	}
	m["bootstrap.servers"] = c.Brokers
	m["client.id"] = c.ClientID
	if c.StatsInterval > 0 {
		m["statistics.interval.ms"] = strconv.FormatInt(c.StatsInterval.Milliseconds(), 10)
	}
	for k, v := range c.Security.properties() {
		m[k] = v
	}
	for k, v := range c.Settings {
		m[k] = v
	}
	return m
}

// QueueLimits is the capacity of librdkafka's queue with this
// configuration: at most records records, and bytes bytes of keys and
// values. Everything in it can be handed back at once (a timeout, the
// purge at shutdown), which is what the spool's kept lane must be able to
// take. Zero for a configuration Validate refuses.
func (c Config) QueueLimits() (records int, bytes int64) {
	props := c.withDefaults().librdkafkaConfig()
	n, _ := intProp(props, "queue.buffering.max.messages")
	kb, _ := intProp(props, "queue.buffering.max.kbytes")
	return n, int64(kb) << 10
}

// intProp is a positive integer property of the effective configuration.
func intProp(props map[string]string, key string) (int, error) {
	v := props[key]
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		return 0, fmt.Errorf("producer: %s=%q is not a positive integer", key, v)
	}
	return n, nil
}
