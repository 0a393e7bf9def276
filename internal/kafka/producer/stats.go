package producer

import (
	"encoding/json"

	"go.uber.org/zap"
)

// librdkafkaStats is the part of librdkafka's statistics JSON
// (STATISTICS.md) that the gateway exports.
type librdkafkaStats struct {
	MsgCnt  int64                  `json:"msg_cnt"`
	MsgSize int64                  `json:"msg_size"`
	Brokers map[string]brokerStats `json:"brokers"`
}

type brokerStats struct {
	Name   string `json:"name"`
	NodeID int32  `json:"nodeid"`
	State  string `json:"state"`
	RTT    struct {
		Avg int64 `json:"avg"` // microseconds
		P99 int64 `json:"p99"`
	} `json:"rtt"`
}

// stats updates the metrics and broker readiness from one statistics
// event (every StatsInterval, so its cost is off the hot path).
func (p *Producer) stats(js string) {
	var s librdkafkaStats
	if err := json.Unmarshal([]byte(js), &s); err != nil {
		p.throttle.Warn("stats", "cannot parse librdkafka statistics", zap.Error(err))
		return
	}
	queueMessages.Set(float64(s.MsgCnt))
	queueBytes.Set(float64(s.MsgSize))
	var up int32
	for name, b := range s.Brokers {
		isUp := 0.0
		if b.State == "UP" {
			isUp = 1
			up++
		}
		brokerUp.WithLabelValues(name).Set(isUp)
		brokerRTT.WithLabelValues(name).Set(float64(b.RTT.Avg) / 1e6)
	}
	p.brokersUp.Store(up)
	if up > 0 {
		// A connection is up: an earlier authentication or TLS error is
		// history (the credentials or certificates now work).
		p.connErr.Store(nil)
	}
}
