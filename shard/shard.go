// Package shard derives the shard key of an event (the Kafka record key)
// and maps keys to partitions exactly as Kafka's Java client and
// librdkafka's murmur2 partitioners do.
package shard
