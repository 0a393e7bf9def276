package producer

import (
	"github.com/confluentinc/confluent-kafka-go/v2/kafka"
	"go.uber.org/zap"
)

// logLoop forwards librdkafka's own log lines (syslog levels) into the
// structured log, instead of its default printf to stderr. Warnings and
// errors are throttled per librdkafka tag: a broker that is down makes
// librdkafka repeat itself for as long as it is down.
func (p *Producer) logLoop(logs <-chan kafka.LogEvent) {
	for e := range logs {
		fields := []zap.Field{zap.String("tag", e.Tag), zap.String("client", e.Name), zap.Int("syslog_level", e.Level)}
		switch {
		case e.Level <= 3:
			p.throttle.Error("rdkafka:"+e.Tag, "librdkafka: "+e.Message, fields...)
		case e.Level == 4:
			p.throttle.Warn("rdkafka:"+e.Tag, "librdkafka: "+e.Message, fields...)
		case e.Level <= 6:
			p.log.Info("librdkafka: "+e.Message, fields...)
		default:
			p.log.Debug("librdkafka: "+e.Message, fields...)
		}
	}
}
