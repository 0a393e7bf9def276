package relay

import (
	"errors"
	"net/http"
	"time"

	"github.com/beacongate/beacongate/internal/kafka/delivery"
	"github.com/beacongate/beacongate/internal/status"
)

// NewAck starts an acknowledged-mode request.
func (r *Relay) NewAck() *delivery.Ack { return delivery.NewAck(r.appends.Load()) }

// ErrAckTimeout: the records were not safe within the ack timeout. They
// may still reach Kafka: a client that retries can duplicate them.
var ErrAckTimeout = status.Retry(http.StatusServiceUnavailable, "ack_timeout", "records not acknowledged by Kafka nor spooled within the ack timeout", time.Second)

// WaitAcked waits until every record given to ProduceAcked or
// ProduceBatch with a is safe: in Kafka, or in the spool and fsynced.
func (r *Relay) WaitAcked(a *delivery.Ack, timeout time.Duration) error {
	a.Release()
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-a.Done():
	case <-t.C:
		ackTimeouts.Inc()
		return ErrAckTimeout
	}
	if err := a.Err(); err != nil {
		var f *delivery.Failure
		if errors.As(err, &f) {
			return f // Kafka refused a record for good: the client learns why
		}
		return status.Retry(http.StatusServiceUnavailable, "ack_failed", "records could not be delivered nor spooled: "+err.Error(), time.Second)
	}
	// A record went to the spool (directly, or kept after librdkafka
	// handed it back): the answer waits for the fsync.
	if r.sp != nil && (a.Spooled() || r.appends.Load() != a.Mark()) {
		if err := r.sp.Sync(); err != nil {
			return status.Retry(http.StatusServiceUnavailable, "spool_error", "cannot sync the disk spool: "+err.Error(), 5*time.Second)
		}
		ackSyncs.Inc()
	}
	return nil
}
