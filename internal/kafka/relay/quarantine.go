package relay

import (
	"errors"
	"fmt"
	"strconv"
	"time"

	"go.uber.org/zap"
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/beacongate/beacongate/internal/kafka/delivery"
)

// A record Kafka refuses for good (too large for the topic, invalid, a
// policy violation) must leave the retry path, or it blocks every record
// behind it forever. It is set aside: to the dead-letter topic, with the
// reason in headers, when one is configured and takes it; else to the
// quarantine lane of the spool, never replayed, read with
// `beacongate spool inspect -quarantine`.
//
// A quarantine frame's key is the record's key; its value is this
// envelope (protobuf wire format, so it can grow):
//
//	1: value         the record (bytes)
//	2: code          why Kafka refused it, e.g. MSG_SIZE_TOO_LARGE
//	3: error         the client's error text
//	4: topic         the topic it was for
//	5: failed_at_us  when, in unix microseconds
//	6: gateway_id

// Quarantined is one record of the quarantine.
type Quarantined struct {
	Key, Value         []byte
	Code, Error, Topic string
	GatewayID          string
	FailedAt           time.Time
}

func (r *Relay) appendEnvelope(dst, value []byte, f *delivery.Failure) []byte {
	dst = protowire.AppendTag(dst, 1, protowire.BytesType)
	dst = protowire.AppendBytes(dst, value)
	dst = protowire.AppendTag(dst, 2, protowire.BytesType)
	dst = protowire.AppendString(dst, f.Code)
	dst = protowire.AppendTag(dst, 3, protowire.BytesType)
	dst = protowire.AppendString(dst, f.Err.Error())
	dst = protowire.AppendTag(dst, 4, protowire.BytesType)
	dst = protowire.AppendString(dst, r.topic())
	dst = protowire.AppendTag(dst, 5, protowire.VarintType)
	dst = protowire.AppendVarint(dst, uint64(time.Now().UnixMicro()))
	dst = protowire.AppendTag(dst, 6, protowire.BytesType)
	return protowire.AppendString(dst, r.cfg.GatewayID)
}

// DecodeQuarantined reads a quarantine frame.
func DecodeQuarantined(key, env []byte) (Quarantined, error) {
	q := Quarantined{Key: key}
	for len(env) > 0 {
		num, typ, n := protowire.ConsumeTag(env)
		if n < 0 {
			return q, fmt.Errorf("quarantine envelope: %w", protowire.ParseError(n))
		}
		env = env[n:]
		switch {
		case typ == protowire.BytesType:
			v, m := protowire.ConsumeBytes(env)
			if m < 0 {
				return q, fmt.Errorf("quarantine envelope field %d: %w", num, protowire.ParseError(m))
			}
			switch num {
			case 1:
				q.Value = v
			case 2:
				q.Code = string(v)
			case 3:
				q.Error = string(v)
			case 4:
				q.Topic = string(v)
			case 6:
				q.GatewayID = string(v)
			}
			env = env[m:]
		case typ == protowire.VarintType:
			v, m := protowire.ConsumeVarint(env)
			if m < 0 {
				return q, fmt.Errorf("quarantine envelope field %d: %w", num, protowire.ParseError(m))
			}
			if num == 5 {
				q.FailedAt = time.UnixMicro(int64(v))
			}
			env = env[m:]
		default:
			m := protowire.ConsumeFieldValue(num, typ, env)
			if m < 0 {
				return q, fmt.Errorf("quarantine envelope field %d: %w", num, protowire.ParseError(m))
			}
			env = env[m:]
		}
	}
	return q, nil
}

func (r *Relay) topic() string {
	if r.sp != nil {
		return r.sp.Topic()
	}
	return ""
}

// quarantine appends a refused record to the quarantine lane.
func (r *Relay) quarantine(key, value []byte, f *delivery.Failure) error {
	if r.sp == nil {
		return fmt.Errorf("relay: no spool to quarantine a record Kafka refused (%s): %w", f.Code, f)
	}
	if err := r.sp.Quarantine.Append(key, r.appendEnvelope(nil, value, f)); err != nil {
		return fmt.Errorf("relay: cannot quarantine a record Kafka refused (%s): %w", f.Code, err)
	}
	quarantined.WithLabelValues(f.Code).Inc()
	r.thr.Error("quarantine:"+f.Code, "Kafka refuses a record for good: quarantined (see `beacongate spool inspect -quarantine`)",
		zap.String("code", f.Code), zap.Int("bytes", len(key)+len(value)), zap.Error(f.Err))
	return nil
}

// setAside sends a record Kafka refused for good to the dead-letter topic,
// or, without one or when it does not take it, to the quarantine. With
// ack, the outcome is reported to it (the replayer waits before it
// commits); without, a record that can go nowhere is counted lost.
func (r *Relay) setAside(key, value []byte, f *delivery.Failure, ack *delivery.Ack) error {
	rejectedByKafka.WithLabelValues(f.Code).Inc()
	if r.cfg.DeadLetterTopic != "" {
		t := &asideTracker{r: r, key: key, value: value, f: f, ack: ack}
		if ack != nil {
			ack.Add(1)
		}
		err := r.kafka.ProduceTo(r.cfg.DeadLetterTopic, key, value, r.asideHeaders(f), t)
		if err == nil {
			return nil
		}
		if ack != nil {
			ack.Delivered(nil) // not produced; quarantined below instead
		}
	}
	return r.quarantine(key, value, f)
}

func (r *Relay) asideHeaders(f *delivery.Failure) []delivery.Header {
	return []delivery.Header{
		{Key: "beacongate.reason", Value: []byte(f.Reason())},
		{Key: "beacongate.code", Value: []byte(f.Code)},
		{Key: "beacongate.error", Value: []byte(f.Err.Error())},
		{Key: "beacongate.topic", Value: []byte(r.topic())},
		{Key: "beacongate.gateway_id", Value: []byte(r.cfg.GatewayID)},
		{Key: "beacongate.failed_at_us", Value: []byte(strconv.FormatInt(time.Now().UnixMicro(), 10))},
	}
}

// asideTracker follows a refused record to the dead-letter topic.
type asideTracker struct {
	r          *Relay
	key, value []byte
	f          *delivery.Failure
	ack        *delivery.Ack
}

func (t *asideTracker) Delivered(err error) {
	if err == nil {
		deadLetters.WithLabelValues(t.f.Reason()).Inc()
	} else {
		err = t.r.quarantine(t.key, t.value, t.f)
	}
	if t.ack != nil {
		t.ack.Delivered(err)
		return
	}
	if err != nil {
		delivery.CountLost(1)
		t.r.log.Error("a record Kafka refused could go neither to the dead-letter topic nor to the quarantine: record lost",
			zap.String("code", t.f.Code), zap.Error(err))
	}
}

// setAsideAll sets a replay round's refused records aside and waits until
// each is in the dead-letter topic or the quarantine.
func (r *Relay) setAsideAll(list []aside) error {
	if len(list) == 0 {
		return nil
	}
	ack := delivery.NewAck(0)
	var errs []error
	for _, a := range list {
		if err := r.setAside(a.rec.Key, a.rec.Value, a.f, ack); err != nil {
			errs = append(errs, err)
		}
	}
	ack.Release()
	select {
	case <-ack.Done():
	case <-r.abort:
		return errAborted
	}
	if err := ack.Err(); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("relay: %d refused records could not be set aside: %w", len(list), err)
	}
	return nil
}
