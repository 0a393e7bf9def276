package ingest

import (
	"bytes"
	"errors"
	"strconv"
	"unicode/utf8"

	"github.com/valyala/fasthttp"

	"github.com/beacongate/beacongate/ingest/event"
	"github.com/beacongate/beacongate/ingest/record"
)

// capacity is implemented by sinks that can say how full they are, so a
// batch is refused whole (503) rather than half-accepted when it cannot
// fit: a client retrying a half-accepted batch would duplicate events.
type capacity interface {
	Len() int
	QueueMax() int
}

// maxListedRejections bounds the summary of a hostile batch.
const maxListedRejections = 100

var ctJSON = []byte("application/json")

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
	err = event.Split(body, s.cfg.Event, func(_ int, ev []byte, err error) bool {
		sc.items = append(sc.items, batchItem{ev: ev, err: err})
		if err == nil {
			valid++
		}
		return true
	})
	if err != nil {
		err = badRequest(err)
		s.deadLetter(sc, body, err, -1)
		return s.fail(ctx, err, "")
	}
	if c, ok := s.sink.(capacity); ok && valid > 0 && c.Len()+valid > c.QueueMax() {
		return s.fail(ctx, errBatchOverCapacity, "")
	}

	accepted, rejected := 0, 0
	var firstStatus StatusError
	retryable := false
	resp := append(sc.resp[:0], `{"rejected":[`...)
	for i := range sc.items {
		it := &sc.items[i]
		err := it.err
		if err == nil {
			sc.b.Payload = it.ev
			sc.b.BatchIndex = uint32(i)
			err = s.emit(sc)
		} else {
			err = badRequest(err)
		}
		if err == nil {
			accepted++
			continue
		}
		se := asStatus(err)
		countRejected(se.Reason(), 1)
		if raw := it.ev; len(raw) > 0 {
			s.deadLetter(sc, raw, se, i)
		} else {
			s.deadLetter(sc, body, se, i) // the event could not be delimited
		}
		var ra retryAfterer
		if errors.As(err, &ra) && ra.RetryAfter() > 0 {
			retryable = true
		}
		if firstStatus == nil {
			firstStatus = se
		}
		if rejected < maxListedRejections {
			if rejected > 0 {
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
		}
		rejected++
	}
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
	ctx.Response.Header.SetContentTypeBytes(ctJSON)
	ctx.SetBody(resp)
	return status
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
