package ingest

import (
	"bytes"
	"errors"
	"strconv"
	"unicode/utf8"

	"github.com/valyala/fasthttp"

	"github.com/beacongate/beacongate/ingest/event"
	"github.com/beacongate/beacongate/ingest/record"
	"github.com/beacongate/beacongate/internal/kafka/delivery"
)

// maxListedRejections bounds the summary of a hostile batch.
const maxListedRejections = 100

func batchFormatOK(ct []byte) bool {
	mt := mediaType(ct)
	return len(mt) == 0 || bytes.EqualFold(mt, mtJSON) || bytes.EqualFold(mt, mtText) ||
		bytes.EqualFold(mt, mtNDJSON) || bytes.EqualFold(mt, mtJSONLines)
}

// serveBatch answers POST /batch: a JSON array or NDJSON of events, one
// record each. One bad event does not sink the good ones: the answer is a
// JSON summary with the accepted count and each rejected event's index and
// reason; it is 200 when any event was accepted (or the batch was empty).
func (s *Server) serveBatch(ctx *fasthttp.RequestCtx, path, query []byte) int {
	s.cors.allow(ctx)
	sc, err := s.begin(ctx, routeBatch, record.KindBatchEvent, path, query)
	defer s.end(sc)
	if err != nil {
		return s.fail(ctx, err, "")
	}
	body, err := s.checkBody(sc)
	if err != nil {
		return s.fail(ctx, err, "")
	}
	if !batchFormatOK(ctx.Request.Header.ContentType()) {
		s.deadLetter(sc, body, errContentType, -1)
		return s.fail(ctx, errContentType, "")
	}
	valid := 0
	// The split notes the shard key's members (and sid) while it
	// validates each event: looking them up afterwards (event.Field)
	// would walk every event again, each walk as long as validating it.
	fields := s.noteFields(sc)
	err = event.SplitFields(body, s.cfg.Event, fields, func(_ int, ev []byte, err error) bool {
		if err != nil {
			err = badRequest(err)
		} else if err = s.checkEventSite(sc, ev, fields); err == nil {
			valid++
		}
		sc.items = append(sc.items, batchItem{ev: ev, err: err})
		if fields != nil {
			sc.noted = append(sc.noted, fields.Vals...)
		}
		return true
	})
	if err != nil {
		err = badRequest(err)
		s.deadLetter(sc, body, err, -1)
		return s.fail(ctx, err, "")
	}
	if bs, ok := s.sink.(BatchSink); ok {
		s.produceAll(sc, bs)
	} else {
		for i := range sc.items {
			if it := &sc.items[i]; it.err == nil {
				sc.b.Payload = it.ev
				sc.b.BatchIndex = uint32(i)
				sc.noteItem(i)
				if it.err = s.emit(sc); it.err == nil {
					it.ok = true
				}
			}
		}
	}

	resp := append(sc.resp[:0], `{"rejected":[`...)
	t := s.settle(sc, body, func(i int, se StatusError, listed int) {
		if listed >= maxListedRejections {
			return
		}
		if listed > 0 {
			resp = append(resp, ',')
		}
		resp = append(resp, `{"index":`...)
		resp = strconv.AppendInt(resp, int64(i), 10)
		resp = append(resp, `,"status":`...)
		resp = strconv.AppendInt(resp, int64(se.HTTPStatus()), 10)
		resp = append(resp, `,"reason":`...)
		resp = appendJSONString(resp, se.Reason())
		resp = append(resp, `,"error":`...)
		resp = appendJSONString(resp, se.Error())
		resp = append(resp, '}')
	})
	accepted, rejected, firstStatus, retryable := t.accepted, t.rejected, t.first, t.retryable
	resp = append(resp, `],"accepted":`...)
	resp = strconv.AppendInt(resp, int64(accepted), 10)
	resp = append(resp, `,"rejected_count":`...)
	resp = strconv.AppendInt(resp, int64(rejected), 10)
	resp = append(resp, "}\n"...)
	sc.resp = resp
	if accepted > 0 {
		if err := s.waitAck(sc); err != nil {
			return s.fail(ctx, err, "")
		}
	}

	status := fasthttp.StatusOK
	if accepted == 0 && rejected > 0 {
		// Nothing was accepted: an error status makes that visible to
		// clients and load balancers; 503 when retrying can help.
		status = firstStatus.HTTPStatus()
		if retryable {
			status = fasthttp.StatusServiceUnavailable
			ctx.Response.Header.SetCanonical(hdrRetryAfter, []byte("1"))
		}
	}
	ctx.SetStatusCode(status)
	ctx.Response.Header.SetContentTypeBytes(mtJSON)
	ctx.SetBody(resp)
	return status
}

// produceAll encodes every valid event of the batch, refuses (413) those
// Kafka could never take, and hands the rest to the sink in one call, so
// that they are taken all or none.
func (s *Server) produceAll(sc *scratch, bs BatchSink) {
	sc.stageReset()
	for i := range sc.items {
		it := &sc.items[i]
		if it.err != nil {
			continue
		}
		sc.b.Payload = it.ev
		sc.b.BatchIndex = uint32(i)
		sc.noteItem(i)
		s.encode(sc)
		if it.err = bs.Admit(sc.key, sc.out); it.err != nil {
			continue
		}
		sc.stage(i)
	}
	sc.produceStaged(bs)
}

// settled sums up a batch's items once the taken ones were produced.
type settled struct {
	accepted, rejected int
	first              StatusError // the first rejection's
	retryable          bool        // a rejection that retrying can help (Retry-After, 503)
}

// settle counts and dead-letters the batch items not taken, sends the
// summary of the dead letters held back, and sums the items up. each, if
// not nil, sees every rejection in order, with how many came before it
// (the /batch answer lists the first ones).
func (s *Server) settle(sc *scratch, body []byte, each func(i int, se StatusError, before int)) settled {
	var t settled
	for i := range sc.items {
		it := &sc.items[i]
		if it.ok {
			t.accepted++
			continue
		}
		se := asStatus(it.err)
		countRejected(se.Reason(), 1)
		raw := it.ev
		if len(raw) == 0 {
			raw = body // the event could not be delimited
		}
		s.deadLetter(sc, raw, se, i)
		var ra retryAfterer
		if errors.As(it.err, &ra) && ra.RetryAfter() > 0 || se.HTTPStatus() == fasthttp.StatusServiceUnavailable {
			t.retryable = true
		}
		if t.first == nil {
			t.first = se
		}
		if each != nil {
			each(i, se, t.rejected)
		}
		t.rejected++
	}
	s.deadLetterSummary(sc, body)
	return t
}

// stageReset empties the batch's staged records.
func (sc *scratch) stageReset() {
	sc.recBuf = sc.recBuf[:0]
	sc.recSpans = sc.recSpans[:0]
	sc.recIdx = sc.recIdx[:0]
}

// stage copies the record just encoded (sc.key, sc.out, its overflow
// mark) for item i into the batch's buffer.
func (sc *scratch) stage(i int) {
	sp := recSpan{key: len(sc.recBuf), overflow: sc.b.Overflow}
	sc.recBuf = append(sc.recBuf, sc.key...)
	sp.end = len(sc.recBuf)
	sc.recBuf = append(sc.recBuf, sc.out...)
	sp.val = len(sc.recBuf)
	sc.recSpans = append(sc.recSpans, sp)
	sc.recIdx = append(sc.recIdx, i)
}

// produceStaged hands the staged records to bs in one call, so that they
// are taken all or none, marks their items taken (or failed), counts
// them, and returns how many were taken.
func (sc *scratch) produceStaged(bs BatchSink) int {
	if len(sc.recIdx) == 0 {
		return 0
	}
	// Sliced only now: recBuf may have moved while it grew.
	for _, sp := range sc.recSpans {
		sc.recs = append(sc.recs, delivery.Record{Key: sc.recBuf[sp.key:sp.end:sp.end], Value: sc.recBuf[sp.end:sp.val:sp.val], Overflow: sp.overflow})
	}
	n, err := bs.ProduceBatch(sc.recs, sc.ack)
	for k, i := range sc.recIdx {
		if k < n {
			sc.items[i].ok = true
		} else {
			sc.items[i].err = err
		}
	}
	acceptedByKind[record.KindBatchEvent].Add(float64(n))
	return n
}

// appendJSONString appends s as a JSON string literal.
func appendJSONString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '"' || c == '\\':
				dst = append(dst, '\\', c)
			case c < 0x20:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			default:
				dst = append(dst, c)
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, `\ufffd`...)
		} else {
			dst = append(dst, s[i:i+size]...)
		}
		i += size
	}
	return append(dst, '"')
}
