package ingest

import (
	"bytes"

	"github.com/valyala/fasthttp"

	"github.com/beacongate/beacongate/ingest/event"
	"github.com/beacongate/beacongate/ingest/form"
	"github.com/beacongate/beacongate/ingest/record"
)

// bodyFormat is what a POST body holds.
type bodyFormat uint8

const (
	formatJSON bodyFormat = iota
	formatForm
	formatUnsupported
)

// mediaType is the Content-Type without parameters or surrounding spaces.
func mediaType(ct []byte) []byte {
	if i := bytes.IndexByte(ct, ';'); i >= 0 {
		ct = ct[:i]
	}
	return bytes.TrimSpace(ct)
}

// firstNonSpace is the first byte of b that is not JSON whitespace, or 0.
func firstNonSpace(b []byte) byte {
	for _, c := range b {
		switch c {
		case ' ', '\t', '\r', '\n':
		default:
			return c
		}
	}
	return 0
}

// beaconFormat decides how to read a POST /i body. navigator.sendBeacon
// with a string sends text/plain (a CORS-safelisted type, so no preflight),
// so text/plain and a missing type are sniffed: '{' starts JSON, anything
// else is read as a form body.
func beaconFormat(ct, body []byte) bodyFormat {
	mt := mediaType(ct)
	switch {
	case bytes.EqualFold(mt, mtJSON):
		return formatJSON
	case bytes.EqualFold(mt, mtForm):
		return formatForm
	case len(mt) == 0 || bytes.EqualFold(mt, mtText):
		if firstNonSpace(body) == '{' {
			return formatJSON
		}
		return formatForm
	}
	return formatUnsupported
}

// endpointBeacon answers POST /i: one event, as JSON (application/json or
// text/plain) or as a form, then 204.
var endpointBeacon = endpoint{route: routeBeacon, kind: record.KindBeacon, cors: true, read: (*Server).readBeacon, answer: answerNoContent}

func answerNoContent(sc *scratch) int {
	sc.ctx.SetStatusCode(fasthttp.StatusNoContent)
	return fasthttp.StatusNoContent
}

func (s *Server) readBeacon(sc *scratch) error {
	body, err := s.checkBody(sc)
	if err != nil {
		return err
	}
	switch beaconFormat(sc.ctx.Request.Header.ContentType(), body) {
	case formatJSON:
		// Validating notes the shard key's members and sid, as a
		// batch's split does (batch.go), so neither walks the event again.
		fields := s.noteFields(sc)
		obj, err := event.ValidateObjectFields(body, s.cfg.Event, fields)
		if err != nil {
			return badRequest(err)
		}
		if fields != nil {
			sc.noted = append(sc.noted[:0], fields.Vals...)
			sc.cur, sc.curEv = sc.noted, obj
		}
		if err := s.checkEventSite(sc, obj, fields); err != nil {
			return err
		}
		sc.b.Payload = obj
	case formatForm:
		// Form parameters go after the query ones, in body order.
		sc.params, sc.buf, err = form.Parse(sc.params, sc.buf, body, s.cfg.Form)
		if err != nil {
			return badRequest(err)
		}
		if err := s.checkParamsSite(sc); err != nil {
			return err
		}
		if sc.optOut {
			sc.params = s.dropIDParams(sc.params)
		}
		if s.sites != nil {
			sc.params = dropKeyParams(sc.params)
		}
		sc.b.Params = sc.params
	default:
		return errContentType
	}
	return nil
}
