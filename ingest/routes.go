package ingest

import (
	"bytes"

	"github.com/valyala/fasthttp"
)

// The endpoints' paths.
const (
	pathPixel   = "/i"
	pathBatch   = "/batch"
	pathHealthz = "/healthz"
	pathReadyz  = "/readyz"
	pathClick   = "/r"
	pathJS      = "/b.js"
	pathDemo    = "/demo"
)

// route is the endpoint a request was routed to, the `route` label.
type route uint8

const (
	routePixel route = iota
	routeBeacon
	routeBatch
	routePreflight
	routeHealth
	routeReady
	routeClick
	routeAsset
	routeOther
	routeSegment // the Segment tracking API, /v1/... (segment.go)
	numRoutes
)

var routeNames = [numRoutes]string{"pixel", "beacon", "batch", "preflight", "healthz", "readyz", "click", "asset", "other", "segment"}

// splitTarget splits the request target into path and query. Browsers
// and SDKs send the origin form ("/i?uid=1"), which is routed as it is:
// fasthttp's lazy URI parse (host, path normalization) costs about 5% of a
// pixel's CPU and adds nothing an exact match on "/i" needs. The absolute
// form (from forward proxies) still goes through fasthttp's parser.
func splitTarget(ctx *fasthttp.RequestCtx) (path, query []byte) {
	raw := ctx.Request.Header.RequestURI()
	if len(raw) == 0 || raw[0] != '/' {
		return ctx.Path(), ctx.URI().QueryString()
	}
	if i := bytes.IndexByte(raw, '#'); i >= 0 {
		raw = raw[:i] // clients must not send fragments; fasthttp drops them too
	}
	if i := bytes.IndexByte(raw, '?'); i >= 0 {
		return raw[:i], raw[i+1:]
	}
	return raw, nil
}

func (s *Server) route(ctx *fasthttp.RequestCtx) (route, int) {
	m := &ctx.Request.Header
	path, query := splitTarget(ctx)
	if r, st, ok := s.routeSnowplow(ctx, path, query); ok { // snowplow.go
		return r, st
	}
	switch string(path) {
	case pathPixel:
		switch {
		case m.IsGet() || m.IsHead():
			return routePixel, s.serveEvent(ctx, &endpointPixel, path, query)
		case m.IsPost():
			return routeBeacon, s.serveEvent(ctx, &endpointBeacon, path, query)
		case m.IsOptions():
			return routePreflight, s.cors.preflight(ctx)
		}
		return routeOther, s.fail(ctx, errMethod, "GET, HEAD, POST, OPTIONS")
	case pathBatch:
		switch {
		case m.IsPost():
			return routeBatch, s.serveBatch(ctx, path, query)
		case m.IsOptions():
			return routePreflight, s.cors.preflight(ctx)
		}
		return routeOther, s.fail(ctx, errMethod, "POST, OPTIONS")
	case pathClick:
		if m.IsGet() || m.IsHead() {
			return routeClick, s.serveEvent(ctx, &endpointClick, path, query)
		}
		return routeOther, s.fail(ctx, errMethod, "GET, HEAD")
	case pathJS, pathDemo:
		if m.IsGet() || m.IsHead() {
			return routeAsset, s.serveAsset(ctx, path)
		}
		return routeOther, s.fail(ctx, errMethod, "GET, HEAD")
	case pathHealthz:
		ctx.SetBodyString("ok\n")
		return routeHealth, fasthttp.StatusOK
	case pathReadyz:
		return routeReady, s.serveReady(ctx)
	}
	if bytes.HasPrefix(path, segmentPrefix) {
		return routeSegment, s.routeSegment(ctx, path, query)
	}
	return routeOther, s.fail(ctx, errNotFound, "")
}
