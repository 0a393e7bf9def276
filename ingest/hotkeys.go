package ingest

import (
	"errors"

	"go.uber.org/zap"

	"github.com/beacongate/beacongate/internal/kafka/delivery"
	"github.com/beacongate/beacongate/shard"
)

// OverflowSink takes a hot key's overflow records (docs/hotkeys.md): the
// record is marked overflow, and the sink spreads it over the partitions
// instead of its key's. The relay implements it.
type OverflowSink interface {
	// ProduceOverflow is Produce (a nil) or ProduceAcked (a not nil) for
	// an overflow record.
	ProduceOverflow(key, value []byte, a *delivery.Ack) error
}

// newHotKeys builds the hot-key valve of c (nil when it is off) and the
// sink's overflow path, which it needs: a valve whose overflow would stay
// on the key's partition would only mislabel records.
func newHotKeys(c shard.Config, sink Sink, log *zap.Logger) (*shard.HotKeys, OverflowSink, error) {
	if c.HotKeyRate <= 0 {
		return nil, nil, nil
	}
	os, ok := sink.(OverflowSink)
	if !ok {
		return nil, nil, errHotKeysNeedSpread
	}
	return shard.NewHotKeys(c, log.Named("shard")), os, nil
}

var errHotKeysNeedSpread = errors.New("ingest: the hot-key valve (-shard.hot-key-rate) needs a sink that spreads overflow records (the relay)")
