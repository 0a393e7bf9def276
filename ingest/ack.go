package ingest

import (
	"bytes"
	"fmt"
	"net/http"

	"github.com/valyala/fasthttp"

	"github.com/beacongate/beacongate/internal/kafka/delivery"
	"github.com/beacongate/beacongate/internal/status"
)

var errNoAckSupport = status.New(http.StatusBadRequest, "ack_unsupported", "X-Beacon-Ack: kafka is not available on this gateway")

// ackMode says whether this request is answered only once its records are
// safe: the client's X-Beacon-Ack header ("kafka" or "none") wins over the
// route's default (-ack.routes).
func (s *Server) ackMode(ctx *fasthttp.RequestCtx, r route) (bool, error) {
	v := ctx.Request.Header.PeekBytes(hdrBeaconAck)
	switch {
	case len(v) == 0:
		return s.ackRoutes[r] && s.acker != nil, nil
	case bytes.EqualFold(v, valNone):
		return false, nil
	case bytes.EqualFold(v, valKafka):
		if s.acker == nil {
			return false, errNoAckSupport
		}
		return true, nil
	}
	return false, status.New(http.StatusBadRequest, "bad_ack_header", fmt.Sprintf("X-Beacon-Ack %q: want kafka or none", v))
}

// waitAck waits for the request's records when it is acknowledged.
func (s *Server) waitAck(sc *scratch) error {
	if sc.ack == nil {
		return nil
	}
	return s.acker.WaitAcked(sc.ack, s.cfg.AckTimeout)
}

// deadLetter sends raw to the dead-letter topic when the rejection is
// about the event's content (not the method, path or limits of HTTP).
func (s *Server) deadLetter(sc *scratch, raw []byte, err error, batchIndex int) {
	if s.dlq == nil || len(raw) == 0 {
		return
	}
	se := asStatus(err)
	switch se.HTTPStatus() {
	case http.StatusBadRequest, http.StatusRequestEntityTooLarge, http.StatusUnsupportedMediaType:
	default:
		return
	}
	// A request naming two sites cannot be attributed to one, and its
	// body may hold another site's write key: no dead letter.
	if se.Reason() == "empty" || se == errMultipleSites || !s.deadLetterBudget(sc, batchIndex) {
		return
	}
	s.dlq.DeadLetter(raw, delivery.DeadLetter{
		Reason: se.Reason(), Error: se.Error(), Status: se.HTTPStatus(),
		RequestID: string(sc.b.RequestID), GatewayID: s.cfg.GatewayID, Path: string(sc.b.Path),
		ContentType: string(sc.b.ContentType), ClientIP: string(sc.ipText),
		ReceivedAtMicros: sc.b.ReceivedAtMicros, BatchIndex: batchIndex,
	})
}
