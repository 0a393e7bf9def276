package producer

// UrgentFlushAvailable reports whether p reached librdkafka's handle, so
// acknowledged requests do not wait out linger.ms (urgent.go).
func UrgentFlushAvailable(p *Producer) bool { return p.rk != nil }
