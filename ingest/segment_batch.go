package ingest

import (
	"fmt"
	"net/http"
	"strconv"

	"github.com/valyala/fasthttp"

	"github.com/beacongate/beacongate/ingest/event"
	"github.com/beacongate/beacongate/ingest/record"
	"github.com/beacongate/beacongate/internal/status"
)

// maxSharedMembers bounds the top-level members of a batch's context and
// integrations: each is merged into every event of the batch by a scan of
// the event's own, so this bounds the merge's work per event.
const maxSharedMembers = 64

var (
	errSegmentShared = status.New(http.StatusBadRequest, "batch_context_too_large", fmt.Sprintf("a batch's context and integrations may have at most %d top-level members each", maxSharedMembers))
	hdrRejected      = []byte("X-Beacon-Rejected")
)

// serveSegmentBatch answers /v1/batch (analytics-node, -go, -python) and
// /v1/b (analytics.js' batching): {"batch":[...], "context", "integrations",
// "sentAt", "writeKey"}, one KIND_BATCH_EVENT record per element. As on
// POST /batch, one bad event does not sink the good ones: they are
// recorded and the answer is still 200 {"success":true} (Segment's SDKs
// know no partial answer; analytics-go retries any other status), the bad
// ones counted, dead-lettered and numbered in X-Beacon-Rejected. Only when
// no event was taken is the answer an error.
func (s *Server) serveSegmentBatch(ctx *fasthttp.RequestCtx, path, query []byte) int {
	s.cors.allow(ctx)
	sc, body, obj, err := s.segmentOpen(ctx, record.KindBatchEvent, path, query, segmentMaxBatchBytes)
	defer s.end(sc)
	if err != nil {
		return s.segmentFail(ctx, err, "")
	}
	// One pass over the body for the members it shares with its events.
	sh := segmentShared{batch: true, receivedAtUs: sc.b.ReceivedAtMicros}
	var arr []byte
	event.EachMember(obj, func(m event.Member) bool {
		switch {
		case m.Is("batch"):
			arr = m.Value
		case m.Is("context"):
			sh.context = m.Value
		case m.Is("integrations"):
			sh.integrations = m.Value
		case m.Is("sentAt"):
			sh.sentAt = m.Value
		}
		return true
	})
	if len(arr) == 0 || arr[0] != '[' {
		s.deadLetter(sc, obj, errSegmentNoBatch, -1)
		return s.segmentFail(ctx, errSegmentNoBatch, "")
	}
	if event.CountMembers(sh.context) > maxSharedMembers || event.CountMembers(sh.integrations) > maxSharedMembers {
		s.deadLetter(sc, obj, errSegmentShared, -1)
		return s.segmentFail(ctx, errSegmentShared, "")
	}
	err = event.Split(arr, s.segmentLimits(segmentMaxEventBytes), func(_ int, ev []byte, err error) bool {
		if err != nil {
			err = badRequest(err)
		}
		sc.items = append(sc.items, batchItem{ev: ev, err: err})
		return true
	})
	if err != nil {
		err = badRequest(err)
		s.deadLetter(sc, body, err, -1)
		return s.segmentFail(ctx, err, "")
	}
	bs, batched := s.sink.(BatchSink)
	sc.stageReset()
	for i := range sc.items {
		it := &sc.items[i]
		if it.err != nil {
			continue
		}
		sc.b.BatchIndex = uint32(i)
		if it.err = s.segmentEvent(sc, nil, it.ev, &sh); it.err != nil {
			continue
		}
		if !batched {
			if it.err = s.segmentProduce(sc); it.err == nil {
				it.ok = true
			}
			continue
		}
		s.segmentEncode(sc)
		if it.err = bs.Admit(sc.key, sc.out); it.err != nil {
			continue
		}
		sc.stage(i)
	}
	if batched {
		sc.produceStaged(bs)
	}

	t := s.settle(sc, body, nil)
	accepted, rejected, retryable := t.accepted, t.rejected, t.retryable
	var first error = t.first
	if accepted > 0 {
		if err := s.waitAck(sc); err != nil {
			return s.segmentFail(ctx, err, "")
		}
	}
	if accepted == 0 && rejected > 0 {
		if retryable {
			first = errSegmentRetry
		}
		// Not counted again: the events were, one by one.
		return s.segmentError(ctx, first, "")
	}
	if rejected > 0 {
		var num [20]byte
		ctx.Response.Header.SetCanonical(hdrRejected, strconv.AppendInt(num[:0], int64(rejected), 10))
	}
	return segmentAnswer(ctx)
}

// errSegmentRetry answers a batch none of whose events could be taken for
// a reason retrying can help with (Kafka and the spool full).
var errSegmentRetry = status.Retry(http.StatusServiceUnavailable, "unavailable", "no event of the batch could be taken now; retry", 1e9)
