package shard

import (
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

var overflowedTotal = promauto.NewCounter(prometheus.CounterOpts{
	Name: "beacongate_shard_overflowed_total",
	Help: "Records of hot shard keys above -shard.hot-key-rate, spread over the partitions instead of their key's (marked overflow).",
})

// activeHotKeys is the valve the gauge reports: the last one made, which
// is the process's only one outside tests.
var activeHotKeys atomic.Pointer[HotKeys]

func init() {
	promauto.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "beacongate_shard_hot_keys",
		Help: "Shard keys that overflowed within the last second (at most 32 are tracked; the keys themselves are in the debug log, never labels).",
	}, func() float64 {
		h := activeHotKeys.Load()
		if h == nil {
			return 0
		}
		return float64(h.hotCount(time.Now().UnixNano()))
	})
}
