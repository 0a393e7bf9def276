package ingest

import (
	"bytes"
	"crypto/subtle"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"github.com/valyala/fasthttp"

	"github.com/beacongate/beacongate/ingest/form"
	"github.com/beacongate/beacongate/ingest/record"
	"github.com/beacongate/beacongate/ingest/snowplow"
	"github.com/beacongate/beacongate/internal/status"
	"github.com/beacongate/beacongate/shard"
)

// The Snowplow tracker protocol (docs/snowplow.md): a tracker pointed at
// the gateway sends GET /i (or /ice.png) with its parameters, or POSTs a
// payload_data body to /com.snowplowanalytics.snowplow/tp2. Every event
// becomes one record with protocol PROTOCOL_SNOWPLOW, event_type e,
// event_id eid, site aid, and the tracker parameters as params (ue_px and
// cx decoded to ue_pr and co), keyed by uid, else duid, else the network
// user id, else the client IP.

// The Snowplow endpoints' paths.
const (
	pathSnowplowTP2    = "/com.snowplowanalytics.snowplow/tp2"
	pathSnowplowPixel  = "/ice.png"
	pathSnowplowHealth = "/health"
)

// Header names and values of the Snowplow answers.
var (
	hdrSPAnonymous    = []byte("SP-Anonymous")
	valSPCache        = []byte("no-cache, no-store, must-revalidate")
	valSPMethods      = []byte("POST, GET, OPTIONS")
	valSPAllowHeaders = []byte("Content-Type, SP-Anonymous")
	valOK             = []byte("ok")
)

var (
	snowplowEventsTotal = promauto.NewCounter(prometheus.CounterOpts{
		Name: "beacongate_snowplow_events_total",
		Help: "Snowplow tracker events accepted (GET and tp2 POST).",
	})
	snowplowAnonymousTotal = promauto.NewCounter(prometheus.CounterOpts{
		Name: "beacongate_snowplow_anonymous_requests_total",
		Help: "Snowplow requests with SP-Anonymous: recorded without client IP and network user id.",
	})
)

var (
	errSnowplowContentType = status.New(http.StatusUnsupportedMediaType, "unsupported_content_type", "unsupported Content-Type for tp2 (want application/json or text/plain)")
	errSnowplowNoEvents    = status.New(http.StatusBadRequest, "empty", "payload_data has no events")
)

// snowplowIDParams are Snowplow's identifiers, removed on opt-out besides
// -privacy.id-params: user, domain user, network user and session ids, an
// IP and a fingerprint the tracker may send.
var snowplowIDParams = []string{"uid", "duid", "nuid", "tnuid", "ip", "sid", "fp", "mac"}

// snowplowState is what New prepares for the Snowplow endpoints.
type snowplowState struct {
	paths    map[string]struct{} // tp2 and the -snowplow.paths aliases
	keyer    *shard.Keyer        // uid, duid, network user id, IP
	anonKeys *shard.Keyer        // SP-Anonymous: uid, duid only
}

// validSnowplowPaths checks the tp2 path aliases (-snowplow.paths).
func validSnowplowPaths(paths []string) error {
	for _, p := range paths {
		if !strings.HasPrefix(p, "/") || strings.ContainsAny(p, "?# ") {
			return fmt.Errorf("ingest: snowplow path %q: want an absolute path such as /com.acme/track", p)
		}
		switch p {
		case pathPixel, pathBatch, pathHealthz, pathReadyz, pathClick, pathJS, pathDemo, pathSnowplowPixel, pathSnowplowHealth:
			return fmt.Errorf("ingest: snowplow path %q is already an endpoint", p)
		}
	}
	return nil
}

func newSnowplow(cfg Config) (*snowplowState, error) {
	st := &snowplowState{paths: map[string]struct{}{pathSnowplowTP2: {}}}
	for _, p := range cfg.SnowplowPaths {
		st.paths[p] = struct{}{}
	}
	// Snowplow's sid is its session id, so a site prefix (-shard.prefix)
	// is taken from aid, the application id, whatever source it names.
	prefix := ""
	if strings.TrimSpace(cfg.Shard.Prefix) != "" {
		prefix = "query:" + snowplow.ParamAppID
	}
	sources := "query:uid,query:duid,ip"
	if cfg.IdentityCookie != "" {
		sources = "query:uid,query:duid,cookie:" + cfg.IdentityCookie + ",ip"
	}
	var err error
	if st.keyer, err = shard.New(shard.Config{Sources: sources, Prefix: prefix, MaxKeyBytes: cfg.Shard.MaxKeyBytes}); err != nil {
		return nil, fmt.Errorf("ingest: snowplow shard key: %w", err)
	}
	if st.anonKeys, err = shard.New(shard.Config{Sources: "query:uid,query:duid", Prefix: prefix, MaxKeyBytes: cfg.Shard.MaxKeyBytes}); err != nil {
		return nil, fmt.Errorf("ingest: snowplow shard key: %w", err)
	}
	return st, nil
}

// routeSnowplow serves the Snowplow endpoints and the GET pixel /i (a
// Snowplow event when it carries e, p and tv); ok is false for every
// other request.
func (s *Server) routeSnowplow(ctx *fasthttp.RequestCtx, path, query []byte) (r route, st int, ok bool) {
	m := &ctx.Request.Header
	switch string(path) {
	case pathPixel:
		switch {
		case m.IsGet() || m.IsHead():
			return routePixel, s.serveEvent(ctx, &endpointPixelOrSnowplow, path, query), true
		case m.IsOptions() && asksSPAnonymous(ctx):
			// A tracker's credentialed GET with SP-Anonymous: the
			// collector's preflight, not beacongate's "*".
			return routePreflight, s.snowplowPreflight(ctx), true
		}
		return 0, 0, false
	case pathSnowplowPixel:
		switch {
		case m.IsGet() || m.IsHead():
			s.snowplowCORS(ctx)
			return routePixel, s.serveEvent(ctx, &endpointSnowplowPixel, path, query), true
		case m.IsOptions():
			return routePreflight, s.snowplowPreflight(ctx), true
		}
		return routeOther, s.fail(ctx, errMethod, "GET, HEAD, OPTIONS"), true
	case pathSnowplowHealth:
		if m.IsGet() || m.IsHead() {
			ctx.SetContentTypeBytes(ctTextPlain)
			ctx.SetBodyString("OK")
			return routeHealth, fasthttp.StatusOK, true
		}
		return routeOther, s.fail(ctx, errMethod, "GET, HEAD"), true
	}
	if _, tp2 := s.snowplow.paths[string(path)]; !tp2 {
		return 0, 0, false
	}
	switch {
	case m.IsPost():
		return routeBatch, s.serveTP2(ctx, path, query), true
	case m.IsOptions():
		return routePreflight, s.snowplowPreflight(ctx), true
	}
	return routeOther, s.fail(ctx, errMethod, "POST, OPTIONS"), true
}

// endpointSnowplowPixel is GET /ice.png and endpointPixelOrSnowplow GET
// /i: a plain pixel, or a Snowplow event when the query has e, p and tv.
// /ice.png answers the collector's CORS (routeSnowplow) whatever the
// query; /i answers beacongate's own unless it is a Snowplow event.
var (
	endpointSnowplowPixel   = endpoint{route: routePixel, kind: record.KindPixel, read: (*Server).readSnowplowGET, answer: answerSnowplowPixel}
	endpointPixelOrSnowplow = endpoint{route: routePixel, kind: record.KindPixel, cors: true, read: (*Server).readSnowplowGET, answer: answerSnowplowPixel}
)

func (s *Server) readSnowplowGET(sc *scratch) error {
	if !snowplow.Tracked(sc.params) {
		return nil // beacongate's own pixel
	}
	// Trackers send GETs with fetch and credentials "include": the
	// answer must name the origin and allow credentials, or the browser
	// reports a network error and the tracker sends the event again.
	s.snowplowCORS(sc.ctx)
	var err error
	if sc.params, sc.buf, err = snowplow.Normalize(sc.params, 0, sc.buf); err != nil {
		return badRequest(err)
	}
	s.snowplowRequest(sc)
	s.snowplowEvent(sc)
	return nil
}

// answerSnowplowPixel is the pixel's GIF, with the Snowplow collector's
// Cache-Control for a Snowplow event; it runs only once the event was
// taken, so it counts it.
func answerSnowplowPixel(sc *scratch) int {
	st := answerPixel(sc)
	if sc.b.Protocol == record.ProtocolSnowplow {
		sc.ctx.Response.Header.SetCanonical(hdrCacheCtl, valSPCache)
		snowplowEventsTotal.Inc()
	}
	return st
}

// Site allow-list (-http.sites) for Snowplow: Snowplow's sid is its
// session id, so a Snowplow event names its site in aid, the tracker's
// application id; a site's write key can only come in the X-Beacon-Key
// header (the node tracker's customHeaders), browsers list their sites
// without a key.
var (
	errUnknownApp = status.New(http.StatusForbidden, "unknown_site", "the aid (Snowplow application id) names no site this gateway accepts")
	errBadAppKey  = status.New(http.StatusForbidden, "bad_write_key", "missing or wrong write key for this Snowplow application id (X-Beacon-Key header)")
)

// checkSnowplowRequest is checkSite for Snowplow requests (done): a GET
// is checked on its aid, a tp2 POST passes, its events are checked one
// by one in produceTP2. done is false for every other request.
func (s *Server) checkSnowplowRequest(sc *scratch) (done bool, err error) {
	if _, tp2 := s.snowplow.paths[string(sc.b.Path)]; tp2 {
		return true, nil
	}
	if snowplow.Tracked(sc.params) {
		return true, s.checkSnowplowSite(sc, form.Get(sc.params, snowplow.ParamAppID))
	}
	return false, nil
}

// checkSnowplowSite applies the allow-list to a Snowplow event's aid.
func (s *Server) checkSnowplowSite(sc *scratch, aid []byte) error {
	want, ok := s.sites[string(aid)]
	if !ok || len(aid) == 0 {
		return errUnknownApp
	}
	if len(want) > 0 && subtle.ConstantTimeCompare(want, sc.ctx.Request.Header.PeekBytes(hdrBeaconKey)) != 1 {
		return errBadAppKey
	}
	return nil
}

// snowplowRequest applies what is per request: SP-Anonymous (no client
// IP, no network user id, no cookie set) and the Snowplow shard key.
func (s *Server) snowplowRequest(sc *scratch) {
	sc.b.Protocol = record.ProtocolSnowplow
	sc.keyer = s.snowplow.keyer
	if len(sc.ctx.Request.Header.PeekBytes(hdrSPAnonymous)) == 0 {
		return
	}
	snowplowAnonymousTotal.Inc()
	sc.keyer = s.snowplow.anonKeys
	sc.b.ClientIP = nil
	sc.ipText = sc.ipText[:0]
	sc.b.NetworkUserID = nil
	if s.cfg.IdentityCookie != "" {
		sc.ctx.Response.Header.DelCookie(s.cfg.IdentityCookie)
	}
}

// snowplowEvent fills the record's Snowplow fields from sc.params, the
// event's parameters, and applies opt-out to them. It returns aid as the
// tracker sent it, for the allow-list: opt-out may remove it from the
// record (aid is in the default -privacy.id-params), as begin does for a
// GET, after its allow-list check.
func (s *Server) snowplowEvent(sc *scratch) (aid []byte) {
	aid = form.Get(sc.params, snowplow.ParamAppID)
	if sc.optOut {
		sc.params = s.dropIDParams(sc.params)
		sc.params = dropNamed(sc.params, snowplowIDParams)
	}
	sc.b.Params = sc.params
	sc.b.ParamsValidUTF8 = true // form.Parse and the JSON validator accept valid UTF-8 only
	sc.b.EventType = form.Get(sc.params, snowplow.ParamEvent)
	sc.b.EventID = form.Get(sc.params, snowplow.ParamEventID)
	sc.b.Site = form.Get(sc.params, snowplow.ParamAppID)
	return aid
}

// dropNamed removes the parameters named in names, in place.
func dropNamed(params []record.Param, names []string) []record.Param {
	out := params[:0]
	for _, p := range params {
		drop := false
		for _, n := range names {
			if string(p.Name) == n {
				drop = true
				break
			}
		}
		if !drop {
			out = append(out, p)
		}
	}
	clear(params[len(out):])
	return out
}

// snowplowCORS answers CORS as the Snowplow collector does: the request's
// origin echoed with credentials (trackers send with fetch and
// credentials "include", for the network user id cookie), restricted to -http.cors-origins when
// that is a list. The answers carry nothing but "ok" or a GIF.
func (s *Server) snowplowCORS(ctx *fasthttp.RequestCtx) bool {
	origin := ctx.Request.Header.PeekBytes(hdrOrigin)
	if len(origin) == 0 {
		return true
	}
	h := &ctx.Response.Header
	h.SetCanonical(hdrVary, hdrOrigin)
	if !s.cors.any {
		if _, ok := s.cors.allowed[string(origin)]; !ok {
			return false
		}
	}
	h.SetCanonical(hdrACAO, origin)
	h.SetCanonical(hdrACAC, valTrue)
	h.SetCanonical(hdrACEH, valExpose)
	return true
}

func (s *Server) snowplowPreflight(ctx *fasthttp.RequestCtx) int {
	if !s.snowplowCORS(ctx) {
		ctx.SetStatusCode(fasthttp.StatusForbidden)
		ctx.SetBodyString("origin_not_allowed: this origin may not send events here\n")
		countRejected("origin_not_allowed", 1)
		return fasthttp.StatusForbidden
	}
	h := &ctx.Response.Header
	h.SetCanonical(hdrACAM, valSPMethods)
	h.SetCanonical(hdrACAH, valSPAllowHeaders)
	h.SetCanonical(hdrACMA, valMaxAge)
	ctx.SetStatusCode(fasthttp.StatusNoContent)
	return fasthttp.StatusNoContent
}

// asksSPAnonymous reports whether a preflight asks for the SP-Anonymous
// header.
func asksSPAnonymous(ctx *fasthttp.RequestCtx) bool {
	req := ctx.Request.Header.Peek("Access-Control-Request-Headers")
	const name = "sp-anonymous"
	for i := 0; i+len(name) <= len(req); i++ {
		if bytes.EqualFold(req[i:i+len(name)], []byte(name)) {
			return true
		}
	}
	return false
}

// tp2FormatOK accepts what trackers send (application/json;
// charset=UTF-8), text/plain and no type.
func tp2FormatOK(ct []byte) bool {
	mt := mediaType(ct)
	return len(mt) == 0 || bytes.EqualFold(mt, mtJSON) || bytes.EqualFold(mt, mtText)
}

// serveTP2 answers POST /com.snowplowanalytics.snowplow/tp2: one record
// per element of data. The valid events are taken all or none (BatchSink);
// the answer is 200 "ok" when every event was taken, 503 with Retry-After
// when retrying can help (trackers retry it: duplicates, never loss),
// else the first rejection's 4xx (trackers drop a batch on 400), after
// the valid events were recorded.
func (s *Server) serveTP2(ctx *fasthttp.RequestCtx, path, query []byte) int {
	s.snowplowCORS(ctx)
	sc, err := s.begin(ctx, routeBatch, record.KindBatchEvent, path, query)
	defer s.end(sc)
	if err != nil {
		return s.fail(ctx, err, "")
	}
	s.snowplowRequest(sc)
	body, err := s.checkBody(sc)
	if err != nil {
		return s.fail(ctx, err, "")
	}
	if !tp2FormatOK(ctx.Request.Header.ContentType()) {
		s.deadLetter(sc, body, errSnowplowContentType, -1)
		return s.fail(ctx, errSnowplowContentType, "")
	}
	err = snowplow.Events(body, s.cfg.Event, func(_ int, ev []byte, err error) bool {
		if err != nil {
			err = badRequest(err)
		}
		sc.items = append(sc.items, batchItem{ev: ev, err: err})
		return true
	})
	if err == nil && len(sc.items) == 0 {
		err = errSnowplowNoEvents
	}
	if err != nil {
		err = badRequest(err)
		s.deadLetter(sc, body, err, -1)
		return s.fail(ctx, err, "")
	}
	s.produceTP2(sc)

	t := s.settle(sc, body, nil)
	accepted, first, retryable := t.accepted, t.first, t.retryable
	if accepted > 0 {
		if err := s.waitAck(sc); err != nil {
			return s.fail(ctx, err, "")
		}
	}
	if first == nil {
		ctx.Response.Header.SetContentTypeBytes(ctTextPlain)
		ctx.Response.SetBodyRaw(valOK)
		return fasthttp.StatusOK
	}
	st := first.HTTPStatus()
	if retryable {
		st = fasthttp.StatusServiceUnavailable
		ctx.Response.Header.SetCanonical(hdrRetryAfter, []byte("1"))
	}
	ctx.SetStatusCode(st)
	ctx.Response.Header.SetContentTypeBytes(ctTextPlain)
	resp := append(sc.resp[:0], first.Reason()...)
	resp = append(resp, ": "...)
	resp = strconv.AppendInt(resp, int64(len(sc.items)-accepted), 10)
	resp = append(resp, " of "...)
	resp = strconv.AppendInt(resp, int64(len(sc.items)), 10)
	resp = append(resp, " events rejected, the others recorded; first: "...)
	resp = append(resp, first.Error()...)
	resp = append(resp, '\n')
	sc.resp = resp
	ctx.SetBody(resp)
	return st
}

// produceTP2 decodes and encodes every valid event of a tp2 body, then
// hands the admitted ones to the sink, all or none when it is a
// BatchSink, else one by one.
func (s *Server) produceTP2(sc *scratch) {
	nq, nb := len(sc.params), len(sc.buf) // the query's parameters come first in every record
	bs, batch := s.sink.(BatchSink)
	sc.stageReset()
	for i := range sc.items {
		it := &sc.items[i]
		if it.err != nil {
			continue
		}
		var err error
		sc.params, sc.buf, err = snowplow.AppendEvent(sc.params[:nq], sc.buf[:nb], it.ev)
		if err != nil {
			it.err = badRequest(err)
			continue
		}
		aid := s.snowplowEvent(sc)
		if s.sites != nil {
			if it.err = s.checkSnowplowSite(sc, aid); it.err != nil {
				continue
			}
		}
		sc.b.BatchIndex = uint32(i)
		if !batch {
			if it.err = s.emit(sc); it.err == nil {
				it.ok = true
				snowplowEventsTotal.Inc()
			}
			continue
		}
		s.encode(sc)
		if it.err = bs.Admit(sc.key, sc.out); it.err != nil {
			continue
		}
		sc.stage(i)
	}
	if batch {
		snowplowEventsTotal.Add(float64(sc.produceStaged(bs)))
	}
}
