package shard

import (
	"encoding/binary"
	"fmt"
)

// Murmur2 is Kafka's org.apache.kafka.common.utils.Utils.murmur2: MurmurHash2
// with seed 0x9747b28c over little-endian 4-byte words. It must stay
// bit-for-bit identical to the Java client and librdkafka's rd_murmur2,
// because every producer of a topic has to agree on where a key lives.
func Murmur2(data []byte) int32 {
	const (
		seed uint32 = 0x9747b28c
		m    uint32 = 0x5bd1e995
		r           = 24
	)
	// Java computes this with int and >>>; uint32 gives the same bits.
	h := seed ^ uint32(len(data))
	for len(data) >= 4 {
		k := binary.LittleEndian.Uint32(data)
		k *= m
		k ^= k >> r
		k *= m
		h *= m
		h ^= k
		data = data[4:]
	}
	// The tail mirrors Java's switch with fallthrough.
	switch len(data) {
	case 3:
		h ^= uint32(data[2]) << 16
		fallthrough
	case 2:
		h ^= uint32(data[1]) << 8
		fallthrough
	case 1:
		h ^= uint32(data[0])
		h *= m
	}
	h ^= h >> 13
	h *= m
	h ^= h >> 15
	return int32(h)
}

// Partition maps a key to a partition the way Kafka's Java client
// (Utils.toPositive(Utils.murmur2(key)) % numPartitions) and librdkafka's
// murmur2 and murmur2_random partitioners do for a non-empty key. A nil or
// empty key is "no key" to librdkafka's murmur2_random, which then picks a
// random partition; Partition still hashes it, so callers decide what an
// empty key means.
func Partition(key []byte, numPartitions int32) int32 {
	if numPartitions <= 0 {
		panic(fmt.Sprintf("BUG: shard.Partition: numPartitions = %d, want > 0", numPartitions))
	}
	// toPositive masks the sign bit rather than taking abs, so MinInt32 maps to 0.
	return (Murmur2(key) & 0x7fffffff) % numPartitions
}
