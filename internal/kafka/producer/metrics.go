package producer

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// Producer metrics. A record is produced when librdkafka accepted it into
// its queue, then either delivered or failed; produced - delivered -
// failed is what is still queued.
var (
	recordsProduced = promauto.NewCounter(prometheus.CounterOpts{
		Name: "beacongate_kafka_records_produced_total",
		Help: "Records accepted into the producer queue.",
	})
	recordsDelivered = promauto.NewCounter(prometheus.CounterOpts{
		Name: "beacongate_kafka_records_delivered_total",
		Help: "Records acknowledged by Kafka.",
	})
	recordsFailed = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "beacongate_kafka_records_failed_total",
		Help: "Records librdkafka gave up on, by error code.",
	}, []string{"code"})
	otherDelivered = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "beacongate_kafka_other_records_delivered_total",
		Help: "Records for other topics (the dead-letter topic) acknowledged by Kafka.",
	}, []string{"topic"})
	otherFailed = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "beacongate_kafka_other_records_failed_total",
		Help: "Records for other topics (the dead-letter topic) librdkafka gave up on.",
	}, []string{"topic"})
	produceRejected = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "beacongate_kafka_produce_rejected_total",
		Help: "Records the producer refused at enqueue (the client got an error), by reason.",
	}, []string{"reason"})
	clientErrors = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "beacongate_kafka_client_errors_total",
		Help: "Errors librdkafka reported outside delivery reports (e.g. all brokers down), by code.",
	}, []string{"code"})
	queueMessages = promauto.NewGauge(prometheus.GaugeOpts{
		Name: "beacongate_kafka_queue_messages",
		Help: "Records in librdkafka's producer queue (from statistics).",
	})
	queueBytes = promauto.NewGauge(prometheus.GaugeOpts{
		Name: "beacongate_kafka_queue_bytes",
		Help: "Bytes of records in librdkafka's producer queue (from statistics).",
	})
	queueCapacity = promauto.NewGauge(prometheus.GaugeOpts{
		Name: "beacongate_kafka_queue_capacity_messages",
		Help: "queue.buffering.max.messages: past it requests get 503.",
	})
	unavailablePartitions = promauto.NewGauge(prometheus.GaugeOpts{
		Name: "beacongate_kafka_partitions_unavailable",
		Help: "Partitions of the topic whose leader is unknown or unreachable (from statistics); above 0 the gateway spools.",
	})
	topicPartitions = promauto.NewGauge(prometheus.GaugeOpts{
		Name: "beacongate_kafka_topic_partitions",
		Help: "Partitions of the topic, from the last metadata lookup.",
	})
	brokerUp = promauto.NewGaugeVec(prometheus.GaugeOpts{
		Name: "beacongate_kafka_broker_up",
		Help: "1 when librdkafka's connection to the broker is UP.",
	}, []string{"broker"})
	brokerRTT = promauto.NewGaugeVec(prometheus.GaugeOpts{
		Name: "beacongate_kafka_broker_rtt_seconds",
		Help: "Average round-trip time to the broker over the last statistics interval.",
	}, []string{"broker"})
	deliveryLatency = promauto.NewHistogram(prometheus.HistogramOpts{
		Name:    "beacongate_kafka_delivery_latency_seconds",
		Help:    "Time from enqueue to Kafka acknowledgement, sampled (one record in -kafka.latency-sample).",
		Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16),
	})
)
