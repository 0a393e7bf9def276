package relay

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

var (
	spooledTotal = promauto.NewCounter(prometheus.CounterOpts{
		Name: "beacongate_spool_records_spooled_total",
		Help: "Records written to the disk spool because Kafka could not take them.",
	})
	keptTotal = promauto.NewCounter(prometheus.CounterOpts{
		Name: "beacongate_spool_records_kept_total",
		Help: "Records librdkafka gave up on (timeout, purge at shutdown) that were spooled instead of lost.",
	})
	replayedTotal = promauto.NewCounter(prometheus.CounterOpts{
		Name: "beacongate_spool_records_replayed_total",
		Help: "Spooled records re-produced and acknowledged by Kafka.",
	})
	spoolRejected = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "beacongate_spool_rejected_total",
		Help: "Records refused (503) because the spool was full or its disk failed.",
	}, []string{"reason"})
	spoolEpisodes = promauto.NewCounter(prometheus.CounterOpts{
		Name: "beacongate_spool_episodes_total",
		Help: "Times the gateway switched from producing directly to spooling.",
	})
	spoolingGauge = promauto.NewGauge(prometheus.GaugeOpts{
		Name: "beacongate_spool_active",
		Help: "1 while records go to the spool instead of straight to Kafka.",
	})
	spoolRecords = promauto.NewGauge(prometheus.GaugeOpts{
		Name: "beacongate_spool_records",
		Help: "Records waiting in the spool.",
	})
	spoolBytes = promauto.NewGauge(prometheus.GaugeOpts{
		Name: "beacongate_spool_bytes",
		Help: "Bytes waiting in the spool.",
	})
	spoolAge = promauto.NewGauge(prometheus.GaugeOpts{
		Name: "beacongate_spool_oldest_age_seconds",
		Help: "Age of the oldest record waiting in the spool (0 when empty).",
	})
	possiblyLost = promauto.NewCounter(prometheus.CounterOpts{
		Name: "beacongate_records_possibly_lost_total",
		Help: "Records that were in a previous process's memory queue when it died without a clean shutdown (SIGKILL, crash): an upper bound of what it lost.",
	})
	spoolCorrupt = promauto.NewGauge(prometheus.GaugeOpts{
		Name: "beacongate_spool_corrupt_bytes",
		Help: "Bytes of the spool found unreadable since start (torn tail after a crash, bad checksums): records in them are lost.",
	})
	ackTimeouts = promauto.NewCounter(prometheus.CounterOpts{
		Name: "beacongate_ack_timeouts_total",
		Help: "Acknowledged-mode requests answered 503 because their records were not safe in time.",
	})
	deadLetters = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "beacongate_dead_letters_total",
		Help: "Rejected events sent to the dead-letter topic, by reason.",
	}, []string{"reason"})
	deadLettersDropped = promauto.NewCounter(prometheus.CounterOpts{
		Name: "beacongate_dead_letters_dropped_total",
		Help: "Dead letters the producer refused (queue full): the event was rejected and is not in the dead-letter topic.",
	})
)
