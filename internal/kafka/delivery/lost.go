package delivery

import (
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// The one count that must stay 0. Every place that gives up on an
// acknowledged record (the producer without a place to keep it, the relay
// when even the quarantine cannot take it, a shutdown that closes the
// producer with records in it) calls CountLost and logs why.
var (
	recordsLost = promauto.NewCounter(prometheus.CounterOpts{
		Name: "beacongate_records_lost_total",
		Help: "Records that were acknowledged to a client but will never reach Kafka. Must stay 0.",
	})
	lost atomic.Int64
)

// CountLost counts n acknowledged records that will never reach Kafka.
func CountLost(n int) {
	lost.Add(int64(n))
	recordsLost.Add(float64(n))
}

// Lost is the number of records counted lost since the process started.
func Lost() int64 { return lost.Load() }
