package ingest

import (
	"github.com/valyala/fasthttp"

	"github.com/beacongate/beacongate/ingest/event"
	"github.com/beacongate/beacongate/ingest/form"
	"github.com/beacongate/beacongate/ingest/record"
)

// The request pipeline. Every event endpoint goes through begin (the
// request-wide fields, refusals and the query), encode (shard key and
// record) and end (the scratch back to the pool); the pixel, the beacon
// and the click, which carry one event each, go through serveEvent as a
// whole, and the batch (serveBatch) through its own loop over events.

// endpoint is what a single-event endpoint adds to the pipeline.
type endpoint struct {
	route route
	kind  record.Kind
	cors  bool // answer CORS first (not for the click, a navigation)
	// read takes the event from what begin left, the body for instance;
	// nil when the query string is the whole event.
	read func(s *Server, sc *scratch) error
	// answer writes the success response and returns its status.
	answer func(sc *scratch) int
}

// serveEvent answers a request carrying one event: begin, read, emit,
// wait for Kafka in acknowledged mode, then e's answer or the error's.
func (s *Server) serveEvent(ctx *fasthttp.RequestCtx, e *endpoint, path, query []byte) int {
	if e.cors {
		s.cors.allow(ctx)
	}
	sc, err := s.begin(ctx, e.route, e.kind, path, query)
	defer s.end(sc)
	if err != nil {
		return s.fail(ctx, err, "")
	}
	if e.read != nil {
		err = e.read(s, sc)
	}
	if err == nil {
		err = s.emit(sc)
	}
	if err != nil {
		// sc.body is only set by a POST: a pixel or click event has no
		// bytes of its own beyond the query, so it is no dead letter.
		s.deadLetter(sc, sc.body, err, -1)
		return s.fail(ctx, err, "")
	}
	if err = s.waitAck(sc); err != nil {
		return s.fail(ctx, err, "")
	}
	return e.answer(sc)
}

// begin takes a scratch from the pool and fills the request-wide fields
// of the record: time, ids, method, host, path, client IP, headers and the
// query parameters. The refusals that need only the request line, the
// headers and the client address come first, before the identity cookie
// is read or made. The caller must call s.end(sc).
func (s *Server) begin(ctx *fasthttp.RequestCtx, r route, kind record.Kind, path, query []byte) (*scratch, error) {
	sc, err := s.open(ctx, r, kind, path, query)
	if err != nil {
		return sc, err
	}
	sc.params, sc.buf, err = form.Parse(sc.params[:0], sc.buf[:0], query, s.cfg.Form)
	if err != nil {
		err = badRequest(err)
		if s.sites == nil {
			// With an allow-list, an unparseable query cannot be
			// attributed to a site (and may hold its write key): no
			// dead letter.
			s.deadLetter(sc, query, err, -1)
		}
		return sc, err
	}
	if err := s.checkParamsSite(sc); err != nil {
		return sc, err
	}
	if s.sites != nil {
		if err := s.checkSite(sc); err != nil {
			return sc, err
		}
		sc.params = dropKeyParams(sc.params)
	}
	if s.siteLimit != nil {
		if err := s.rateLimitSite(queryRequestSite(sc.params)); err != nil {
			return sc, err
		}
	}
	if sc.optOut {
		sc.params = s.dropIDParams(sc.params)
	}
	sc.b.Params = sc.params
	sc.b.ParamsValidUTF8 = true // form.Parse accepts valid UTF-8 only
	return sc, nil
}

// open takes a scratch from the pool and fills in what every request's
// records share, whatever its protocol: time, gateway and request ids,
// kind, method, host, path, client address (after the per-IP limit),
// acknowledged mode, privacy and the request headers recorded. The query
// is only measured here; parsing it and checking its site are the
// caller's, as protocols name sites differently.
func (s *Server) open(ctx *fasthttp.RequestCtx, r route, kind record.Kind, path, query []byte) (*scratch, error) {
	sc := s.pool.Get().(*scratch)
	sc.ctx = ctx
	h := &ctx.Request.Header
	b := &sc.b
	b.ReceivedAtMicros = ctx.Time().UnixMicro()
	b.GatewayID = s.gatewayID
	if id := h.PeekBytes(hdrRequestID); usableRequestID(id) {
		b.RequestID = id
	} else {
		sc.reqID = s.ids.appendNext(sc.reqID[:0])
		b.RequestID = sc.reqID
	}
	ctx.Response.Header.SetCanonical(hdrRequestID, b.RequestID)
	b.Kind = kind
	b.Method = h.Method()
	b.Host = h.Host()
	b.Path = path
	if len(query) > s.cfg.MaxQueryBytes {
		return sc, errURITooLong
	}
	sc.setClientAddr(s.proxies.clientAddr(ctx), s.cfg.AnonymizeIP)
	if err := s.rateLimitIP(sc); err != nil {
		return sc, err
	}
	ack, err := s.ackMode(ctx, r)
	if err != nil {
		return sc, err
	}
	if ack {
		sc.ack = s.acker.NewAck()
	}
	s.privacy(sc)
	b.UserAgent = h.UserAgent()
	b.Referer = h.Referer()
	b.Origin = h.PeekBytes(hdrOrigin)
	if kind != record.KindPixel {
		b.ContentType = h.ContentType()
	}
	return sc, nil
}

// end returns sc to the pool.
func (s *Server) end(sc *scratch) {
	s.mem.release(sc.inflateHeld)
	sc.inflateHeld = 0
	sc.reset()
	s.pool.Put(sc)
}

// encode derives the event's shard key and encodes the record into sc.key
// and sc.out.
func (s *Server) encode(sc *scratch) {
	if sc.optOut && len(sc.b.Payload) > 0 {
		// Whitespace between members is not kept: an opted-out
		// event is the only payload that is not the client's bytes.
		sc.stripped = event.AppendWithout(sc.stripped[:0], sc.b.Payload, s.cfg.IDParams)
		sc.b.Payload = sc.stripped
	}
	sc.jbuf = sc.jbuf[:0]
	sc.b.ShardKey = nil
	keyer := s.keyer
	if sc.keyer != nil {
		keyer = sc.keyer
	}
	sc.key = keyer.AppendKey(sc.key[:0], sc)
	sc.b.ShardKey = sc.key
	sc.b.Overflow = s.hot.Overflow(sc.key, sc.b.ReceivedAtMicros*1000)
	sc.out = record.Append(sc.out[:0], &sc.b)
}

// emit encodes the event's record and produces it.
func (s *Server) emit(sc *scratch) error {
	s.encode(sc)
	return s.produceEncoded(sc)
}

// produceEncoded produces the record in sc.key and sc.out: a hot key's
// overflow through the overflow sink, else acknowledged or not.
func (s *Server) produceEncoded(sc *scratch) error {
	var err error
	if sc.b.Overflow {
		err = s.overflow.ProduceOverflow(sc.key, sc.out, sc.ack)
	} else if sc.ack != nil {
		err = s.acker.ProduceAcked(sc.key, sc.out, sc.ack)
	} else {
		err = s.sink.Produce(sc.key, sc.out)
	}
	if err != nil {
		return err
	}
	acceptedByKind[sc.b.Kind].Inc()
	return nil
}
