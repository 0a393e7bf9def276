package relay

import (
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/beacongate/beacongate/internal/kafka/delivery"
)

// Overflow records (docs/hotkeys.md): a hot key's records above
// -shard.hot-key-rate, marked in the record (beacongate.v1.Beacon.overflow)
// by the ingest side, go to a partition the producer picks round-robin
// instead of their key's, with the producer's overflow header. The spool
// keeps only key and value, so a spooled or kept overflow record is
// recognized by its value when it is replayed, and spread again (to the
// partition the round-robin is at then); every other record is replayed
// to its key's partition, in order, as before.

// overflowKafka is the producer's overflow path (producer.ProduceOverflow).
type overflowKafka interface {
	ProduceOverflow(key, value []byte, t delivery.Tracker) error
}

// ProduceOverflow produces a hot key's overflow record (value marked
// overflow); a is the acknowledged-mode wait, or nil. It goes to the
// spool like any record when Kafka cannot take it.
func (r *Relay) ProduceOverflow(key, value []byte, a *delivery.Ack) error {
	return r.produce(key, value, a, true)
}

func (r *Relay) directOverflow(key, value []byte, a *delivery.Ack) error {
	if a == nil {
		return r.spread.ProduceOverflow(key, value, nil)
	}
	a.Add(1)
	if err := r.spread.ProduceOverflow(key, value, a); err != nil {
		a.Delivered(nil) // not produced: nothing to wait for
		return err
	}
	return nil
}

// produceReplayed produces a record read back from the spool, spread
// when its value is marked overflow.
func (r *Relay) produceReplayed(key, value []byte, t delivery.Tracker) error {
	if r.spread != nil && overflowMarked(value) {
		return r.spread.ProduceOverflow(key, value, t)
	}
	return r.kafka.ProduceTracked(key, value, t)
}

// overflowField is beacongate.v1.Beacon's overflow field number
// (proto/beacongate/v1/beacon.proto).
const overflowField = 22

// overflowMarked reports whether the encoded Beacon value has overflow
// set (its last occurrence wins, as in protobuf). A value that does not
// parse is not marked: it goes to its key's partition.
func overflowMarked(value []byte) bool {
	// Every field is walked: a quick search for the tag's usual two bytes
	// would miss a tag written in more bytes than it needs, which
	// protobuf accepts (the fuzz target found one).
	marked := false
	for len(value) > 0 {
		num, typ, n := protowire.ConsumeTag(value)
		if n < 0 {
			return false
		}
		value = value[n:]
		if num == overflowField && typ == protowire.VarintType {
			v, m := protowire.ConsumeVarint(value)
			if m < 0 {
				return false
			}
			marked = v != 0
			value = value[m:]
			continue
		}
		m := protowire.ConsumeFieldValue(num, typ, value)
		if m < 0 {
			return false
		}
		value = value[m:]
	}
	return marked
}
