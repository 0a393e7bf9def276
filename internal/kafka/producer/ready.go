package producer

import (
	"strconv"
	"time"
)

// Ready reports whether Kafka takes the gateway's records now: no fatal
// error, the queue below the high-water mark, a broker connection up (by
// the last statistics), the topic found, every partition's leader
// reachable, and no topic-level refusal being waited out. The reason says
// why not. The relay follows it to choose between Kafka and the spool,
// and /readyz follows the relay.
func (p *Producer) Ready() (ok bool, reason string) {
	if fe := p.fatal.Load(); fe != nil {
		return false, "fatal producer error: " + fe.Error()
	}
	if n := p.p.Len(); n > p.highMark {
		return false, "producer queue above high-water mark (" + strconv.Itoa(n) + " > " + strconv.Itoa(p.highMark) + " records)"
	}
	// The byte limit binds first for large records (2 KB events fill 32 MiB
	// with 16,000 records), so the mark applies to bytes too.
	if b := p.outBytes.Load(); b > p.highBytes {
		return false, "producer queue above high-water mark (" + strconv.FormatInt(b, 10) + " > " + strconv.FormatInt(p.highBytes, 10) + " bytes)"
	}
	h := p.health.Load()
	if h == nil {
		return false, "connecting to Kafka (no statistics yet)"
	}
	if h.up == 0 {
		if ce := p.connErr.Load(); ce != nil {
			return false, "no broker connection up: last error: " + ce.Error()
		}
		return false, "no broker connection up"
	}
	if !p.topicFound.Load() {
		return false, "topic " + p.topic + " not found (yet)"
	}
	if len(h.unavailable) > 0 {
		return false, "partitions " + int32sString(h.unavailable) + " of topic " + p.topic +
			" have no reachable leader (brokers " + int32sString(h.down) + " down)"
	}
	if hd := p.held.Load(); hd != nil && time.Now().Before(hd.until) {
		return false, "Kafka refuses the topic's records (" + hd.f.Code + "); retrying in " + time.Until(hd.until).Round(time.Millisecond).String()
	}
	return true, ""
}
