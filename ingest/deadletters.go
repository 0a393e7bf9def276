package ingest

import (
	"fmt"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/beacongate/beacongate/internal/kafka/delivery"
)

// Dead letters per request are bounded (docs/security.md): a 1 MiB batch
// of 10,000 invalid events would otherwise put 10,000 dead letters, with a
// dozen headers each, into the producer queue the records share. The first
// Config.MaxDeadLettersPerRequest go one by one; the rest are counted and
// summarised in one more dead letter that carries the whole body.

// reasonSuppressed is the summary's reason.
const reasonSuppressed = "dead_letters_suppressed"

var deadLettersSuppressed = promauto.NewCounter(prometheus.CounterOpts{
	Name: "beacongate_dead_letters_suppressed_total",
	Help: "Rejected events not sent one by one to the dead-letter topic because their request had reached -kafka.dlq-max-per-request; each such request sends one summary dead letter instead.",
})

// deadLetterBudget says whether one more dead letter of this request may
// go one by one; if not, it counts the event for the summary.
func (s *Server) deadLetterBudget(sc *scratch, batchIndex int) bool {
	if sc.dlqSent < s.cfg.MaxDeadLettersPerRequest {
		sc.dlqSent++
		return true
	}
	if sc.dlqSuppressed == 0 {
		sc.dlqFirst = batchIndex
	}
	sc.dlqLast = batchIndex
	sc.dlqSuppressed++
	deadLettersSuppressed.Inc()
	return false
}

// deadLetterSummary sends the one dead letter that stands for the events
// deadLetterBudget held back: the request's body (cut by the dead-letter
// sink), with how many and which indexes. Only hostile or broken clients
// get here, so the message may allocate.
func (s *Server) deadLetterSummary(sc *scratch, body []byte) {
	if sc.dlqSuppressed == 0 || s.dlq == nil || len(body) == 0 {
		return
	}
	s.dlq.DeadLetter(body, delivery.DeadLetter{
		Reason: reasonSuppressed, Status: http.StatusBadRequest,
		Error: fmt.Sprintf("%d more rejected events of this request (batch indexes %d to %d) are not sent one by one (at most %d per request); this dead letter holds the request body",
			sc.dlqSuppressed, sc.dlqFirst, sc.dlqLast, s.cfg.MaxDeadLettersPerRequest),
		RequestID: string(sc.b.RequestID), GatewayID: s.cfg.GatewayID, Path: string(sc.b.Path),
		ContentType: string(sc.b.ContentType), ClientIP: string(sc.ipText),
		ReceivedAtMicros: sc.b.ReceivedAtMicros, BatchIndex: -1,
	})
}
