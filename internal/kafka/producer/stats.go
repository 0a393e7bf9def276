package producer

import (
	"encoding/json"
	"slices"
	"strconv"
	"time"

	"go.uber.org/zap"
)

// librdkafkaStats is the part of librdkafka's statistics JSON
// (STATISTICS.md) that the gateway uses.
type librdkafkaStats struct {
	MsgCnt  int64                  `json:"msg_cnt"`
	MsgSize int64                  `json:"msg_size"`
	Brokers map[string]brokerStats `json:"brokers"`
	Topics  map[string]struct {
		Partitions map[string]struct {
			Partition int32 `json:"partition"`
			Leader    int32 `json:"leader"`
		} `json:"partitions"`
	} `json:"topics"`
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

// health is what one statistics event says about reaching the topic.
type health struct {
	up int32 // brokers in state UP
	// unavailable lists the topic's partitions whose leader is unknown or
	// has not been UP for downAfter, ascending; down, the leaders.
	unavailable []int32
	down        []int32
}

// stats updates the metrics and the brokers' health from one statistics
// event (every StatsInterval, so its cost is off the hot path). It runs
// on the event loop, the only user of p.lastUp.
func (p *Producer) stats(js string) {
	var s librdkafkaStats
	if err := json.Unmarshal([]byte(js), &s); err != nil {
		p.throttle.Warn("stats", "cannot parse librdkafka statistics", zap.Error(err))
		return
	}
	queueMessages.Set(float64(s.MsgCnt))
	queueBytes.Set(float64(s.MsgSize))
	now := time.Now()
	h := &health{}
	state := map[int32]string{}
	for name, b := range s.Brokers {
		isUp := 0.0
		if b.State == "UP" {
			isUp = 1
			h.up++
		}
		if b.NodeID >= 0 {
			state[b.NodeID] = b.State
			if _, seen := p.lastUp[b.NodeID]; b.State == "UP" || !seen {
				// A broker seen for the first time counts as just up: it
				// gets downAfter to connect before its partitions count
				// as unavailable.
				p.lastUp[b.NodeID] = now
			}
		}
		brokerUp.WithLabelValues(name).Set(isUp)
		brokerRTT.WithLabelValues(name).Set(float64(b.RTT.Avg) / 1e6)
	}
	// A partition is unavailable when its leader is unknown or has not
	// been UP for downAfter: its records would only wait in memory until
	// message.timeout.ms. Brokers that merely reconnect (UP again within
	// downAfter) do not count.
	for _, tp := range s.Topics[p.topic].Partitions {
		if tp.Partition < 0 {
			continue // the unassigned queue
		}
		if tp.Leader >= 0 && (state[tp.Leader] == "UP" || now.Sub(p.lastUp[tp.Leader]) < p.downAfter) {
			continue
		}
		h.unavailable = append(h.unavailable, tp.Partition)
		if tp.Leader >= 0 && !slices.Contains(h.down, tp.Leader) {
			h.down = append(h.down, tp.Leader)
		}
	}
	slices.Sort(h.unavailable)
	slices.Sort(h.down)
	unavailablePartitions.Set(float64(len(h.unavailable)))
	if prev := p.health.Load(); prev != nil && len(prev.unavailable) != len(h.unavailable) {
		if len(h.unavailable) > 0 {
			p.log.Warn("partitions of the topic have no reachable leader: Kafka is not taking all records",
				zap.String("topic", p.topic), zap.Int32s("partitions", h.unavailable), zap.Int32s("leaders_down", h.down))
		} else {
			p.log.Info("every partition of the topic has a reachable leader again", zap.String("topic", p.topic))
		}
	}
	p.health.Store(h)
	if h.up > 0 {
		// A connection is up: an earlier authentication or TLS error is
		// history (the credentials or certificates now work).
		p.connErr.Store(nil)
	}
}

func int32sString(v []int32) string {
	b := []byte{'['}
	for i, x := range v {
		if i > 0 {
			b = append(b, ' ')
		}
		b = strconv.AppendInt(b, int64(x), 10)
	}
	return string(append(b, ']'))
}
