package producer

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// owned are the librdkafka properties the gateway's guarantees rest on.
// -kafka.config may tune anything else (linger, batching, compression,
// timeouts, TLS details), but a value that breaks one of these is refused
// at start-up with one line that says what it would break: accepting it
// silently once turned delivery.report.only.error=true into 700,000
// records waiting behind a replay that never finishes.
var owned = []struct {
	names []string // a property and its aliases
	ok    func(v string) bool
	want  string
	why   string
}{
	{[]string{"bootstrap.servers", "metadata.broker.list"}, never, "", "set brokers with -kafka.brokers"},
	{[]string{"statistics.interval.ms"}, never, "", "set it with -kafka.stats-interval: readiness and partition health follow the statistics"},
	{[]string{"enable.idempotence"}, isTrue, "true", "idempotence keeps each partition's records in order and free of duplicates across retries"},
	{[]string{"acks", "request.required.acks"}, oneOf("all", "-1"), "all", "a record counts as delivered only once every in-sync replica has it (and idempotence needs it)"},
	{[]string{"max.in.flight.requests.per.connection", "max.in.flight"}, intIn(1, 5), "1 to 5", "idempotence keeps order with at most 5 requests in flight"},
	{[]string{"message.send.max.retries", "retries"}, intIn(1, 1<<31-1), "at least 1", "retriable errors are retried in order by the idempotent producer"},
	{[]string{"message.timeout.ms", "delivery.timeout.ms"}, zeroOrAtLeast(1000), "0 (forever) or at least 1000", "records must have time to be delivered before they are handed back to the spool"},
	{[]string{"delivery.report.only.error"}, isFalse, "false", "the spool's cursor and acknowledged requests advance on the reports of delivered records"},
	{[]string{"go.delivery.reports"}, isTrue, "true", "the spool's cursor and acknowledged requests advance on delivery reports"},
	{[]string{"go.delivery.report.fields"}, hasKeyAndValue, "key,value (or all)", "a record librdkafka gives up on comes back with its key and value so it can be kept"},
	{[]string{"go.produce.channel.size", "go.batch.producer"}, never, "", "the gateway needs Produce to fail fast when the queue is full"},
	{[]string{"go.logs.channel.enable"}, isTrue, "true", "librdkafka's log lines go to the structured log"},
	{[]string{"partitioner"}, oneOf("murmur2_random", "murmur2"), "murmur2_random", "a key must land on the partition Kafka's Java producer and shard.Partition compute"},
	{[]string{"queuing.strategy"}, oneOf("fifo"), "fifo", "records must leave in the order they came"},
	{[]string{"enable.sparse.connections"}, isFalse, "false", "readiness follows each partition leader's connection, which must be kept up"},
	{[]string{"transactional.id"}, never, "", "a transactional producer refuses records outside a transaction"},
}

// checkOwned refuses settings that contradict the gateway's guarantees.
func checkOwned(settings map[string]string) error {
	keys := make([]string, 0, len(settings))
	for k := range settings {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		v := strings.TrimSpace(settings[k])
		for _, o := range owned {
			if !slices.Contains(o.names, k) || o.ok(v) {
				continue
			}
			if o.want == "" {
				return fmt.Errorf("producer: -kafka.config %s=%s is not allowed: %s", k, v, o.why)
			}
			return fmt.Errorf("producer: -kafka.config %s=%s is not allowed (want %s): %s", k, v, o.want, o.why)
		}
	}
	return nil
}

func never(string) bool { return false }

func isTrue(v string) bool { b, err := strconv.ParseBool(v); return err == nil && b }

func isFalse(v string) bool { b, err := strconv.ParseBool(v); return err == nil && !b }

func oneOf(vals ...string) func(string) bool {
	return func(v string) bool { return slices.Contains(vals, strings.ToLower(v)) }
}

func intIn(lo, hi int) func(string) bool {
	return func(v string) bool { n, err := strconv.Atoi(v); return err == nil && n >= lo && n <= hi }
}

func zeroOrAtLeast(lo int) func(string) bool {
	return func(v string) bool { n, err := strconv.Atoi(v); return err == nil && (n == 0 || n >= lo) }
}

func hasKeyAndValue(v string) bool {
	fields := strings.Split(strings.ReplaceAll(v, " ", ""), ",")
	return slices.Contains(fields, "all") || slices.Contains(fields, "key") && slices.Contains(fields, "value")
}
