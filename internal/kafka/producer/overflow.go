package producer

import (
	"github.com/confluentinc/confluent-kafka-go/v2/kafka"

	"github.com/beacongate/beacongate/internal/kafka/delivery"
)

// OverflowHeader is the Kafka header of every overflow record: a hot
// key's record above -shard.hot-key-rate, produced to a partition chosen
// round-robin rather than its key's, so out of order with the key's other
// records (docs/hotkeys.md). Its value is "1". The record's value says the
// same in beacongate.v1.Beacon.overflow.
const OverflowHeader = "beacongate-overflow"

// overflowHeaders is shared by every overflow record, in appendHeader's
// layout: librdkafka copies headers, and nobody writes them.
var overflowHeaders = appendHeader(nil, OverflowHeader, []byte("1"))

// ProduceOverflow enqueues an overflow record: with its key (the
// contract with consumers), the overflow header, and to the next
// partition of the topic in round-robin order, so that a hot key's excess
// is spread evenly. Until the topic's partition count is known it goes to
// the key's partition (still marked). t, if not nil, is told the outcome,
// as with ProduceTracked.
func (p *Producer) ProduceOverflow(key, value []byte, t delivery.Tracker) error {
	if t != nil {
		return p.produceTracked(p.spreadPartition(), overflowHeaders, key, value, t)
	}
	return p.produceTo(p.topic, p.spreadPartition(), key, value, overflowHeaders, p.sampleOpaque())
}

// spreadPartition is the next partition of the round-robin, or
// kafka.PartitionAny while the partition count is unknown.
func (p *Producer) spreadPartition() int32 {
	n := p.partitions.Load()
	if n <= 0 {
		return kafka.PartitionAny
	}
	return int32(p.spread.Add(1) % uint32(n))
}
