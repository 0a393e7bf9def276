package ingest

import (
	"github.com/valyala/fasthttp"

	"github.com/beacongate/beacongate/ingest/form"
	"github.com/beacongate/beacongate/ingest/record"
)

// transparentGIF is the 43-byte 1x1 transparent GIF89a every pixel answer
// carries.
var transparentGIF = []byte{
	'G', 'I', 'F', '8', '9', 'a', // header
	0x01, 0x00, 0x01, 0x00, 0x80, 0x00, 0x00, // 1x1, global color table of 2
	0x00, 0x00, 0x00, 0xff, 0xff, 0xff, // black, white
	0x21, 0xf9, 0x04, 0x01, 0x00, 0x00, 0x00, 0x00, // graphic control: index 0 transparent
	0x2c, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x01, 0x00, 0x00, // image descriptor
	0x02, 0x02, 0x44, 0x01, 0x00, // LZW image data
	0x3b, // trailer
}

// begin takes a scratch from the pool and fills the request-wide fields
// of the record: time, ids, method, host, path, client IP, headers and the
// query parameters. The caller must call s.end(sc).
func (s *Server) begin(ctx *fasthttp.RequestCtx, r route, kind record.Kind, path, query []byte) (*scratch, error) {
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
	sc.setClientAddr(s.proxies.clientAddr(ctx), s.cfg.AnonymizeIP)
	s.privacy(sc)
	b.UserAgent = h.UserAgent()
	b.Referer = h.Referer()
	b.Origin = h.PeekBytes(hdrOrigin)
	if kind != record.KindPixel {
		b.ContentType = h.ContentType()
	}
	if len(query) > s.cfg.MaxQueryBytes {
		return sc, errURITooLong
	}
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
	if s.sites != nil {
		if err := s.checkSite(sc); err != nil {
			return sc, err
		}
		sc.params = dropKeyParams(sc.params)
	}
	if err := s.rateLimitSite(form.Get(sc.params, paramSite)); err != nil {
		return sc, err
	}
	if sc.optOut {
		sc.params = s.dropIDParams(sc.params)
	}
	b.Params = sc.params
	b.ParamsValidUTF8 = true // form.Parse accepts valid UTF-8 only
	return sc, nil
}

func (s *Server) end(sc *scratch) {
	sc.reset()
	s.pool.Put(sc)
}

// encode derives the event's shard key and encodes the record into sc.key
// and sc.out.
func (s *Server) encode(sc *scratch) {
	if sc.optOut && len(sc.b.Payload) > 0 {
		sc.stripped = s.stripIDMembers(sc.stripped[:0], sc.b.Payload)
		sc.b.Payload = sc.stripped
	}
	sc.jbuf = sc.jbuf[:0]
	sc.b.ShardKey = nil
	sc.key = s.keyer.AppendKey(sc.key[:0], sc)
	sc.b.ShardKey = sc.key
	sc.out = record.Append(sc.out[:0], &sc.b)
}

// emit encodes the event's record and produces it.
func (s *Server) emit(sc *scratch) error {
	s.encode(sc)
	var err error
	if sc.ack != nil {
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

// servePixel answers GET and HEAD /i: the query string is the event.
func (s *Server) servePixel(ctx *fasthttp.RequestCtx, path, query []byte) int {
	s.cors.allow(ctx)
	sc, err := s.begin(ctx, routePixel, record.KindPixel, path, query)
	defer s.end(sc)
	if err == nil {
		err = s.emit(sc)
	}
	if err == nil {
		err = s.waitAck(sc)
	}
	if err != nil {
		return s.fail(ctx, err, "")
	}
	h := &ctx.Response.Header
	h.SetContentTypeBytes(ctGIF)
	h.SetCanonical(hdrCacheCtl, valNoStore)
	ctx.Response.SetBodyRaw(transparentGIF)
	return fasthttp.StatusOK
}
