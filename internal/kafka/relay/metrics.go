package relay

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

var (
	spooledTotal = promauto.NewCounter(prometheus.CounterOpts{
		Name: "beacongate_spool_records_spooled_total",
		Help: "Records written to the disk spool because Kafka could not take them (kept ones included).",
	})
	keptTotal = promauto.NewCounter(prometheus.CounterOpts{
		Name: "beacongate_spool_records_kept_total",
		Help: "Records librdkafka gave up on (timeout, purge at shutdown) that were spooled instead of lost.",
	})
	replayedTotal = promauto.NewCounter(prometheus.CounterOpts{
		Name: "beacongate_spool_records_replayed_total",
		Help: "Spooled records re-produced and acknowledged by Kafka.",
	})
	replayRetried = promauto.NewCounter(prometheus.CounterOpts{
		Name: "beacongate_spool_records_retried_total",
		Help: "Replayed records that failed with a retriable error and were produced again, in order, before the round was committed.",
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
		Help: "Records waiting in the spool to be replayed (main and kept lanes).",
	})
	spoolBytes = promauto.NewGauge(prometheus.GaugeOpts{
		Name: "beacongate_spool_bytes",
		Help: "Bytes waiting in the spool to be replayed (main and kept lanes).",
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
	rejectedByKafka = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "beacongate_records_refused_by_kafka_total",
		Help: "Acknowledged records Kafka refused for good (e.g. MSG_SIZE_TOO_LARGE, INVALID_RECORD), set aside to the dead-letter topic or the quarantine, by code.",
	}, []string{"code"})
	quarantined = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "beacongate_spool_quarantined_total",
		Help: "Records Kafka refused for good that went to the spool's quarantine (no dead-letter topic, or it failed), by code.",
	}, []string{"code"})
	quarantineRecords = promauto.NewGauge(prometheus.GaugeOpts{
		Name: "beacongate_spool_quarantine_records",
		Help: "Records in the spool's quarantine (never replayed; see beacongate spool inspect -quarantine).",
	})
	ackTimeouts = promauto.NewCounter(prometheus.CounterOpts{
		Name: "beacongate_ack_timeouts_total",
		Help: "Acknowledged-mode requests answered 503 because their records were not safe in time.",
	})
	ackSyncs = promauto.NewCounter(prometheus.CounterOpts{
		Name: "beacongate_ack_spool_syncs_total",
		Help: "Acknowledged-mode requests answered only after fsyncing the spool (one of their records was on disk).",
	})
	deadLetters = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "beacongate_dead_letters_total",
		Help: "Rejected events (and records Kafka refused, reason kafka_rejected) sent to the dead-letter topic, by reason.",
	}, []string{"reason"})
	deadLettersDropped = promauto.NewCounter(prometheus.CounterOpts{
		Name: "beacongate_dead_letters_dropped_total",
		Help: "Dead letters the producer refused (queue full): the event was rejected and is not in the dead-letter topic.",
	})
)
