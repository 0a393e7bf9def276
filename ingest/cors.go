package ingest

import (
	"bytes"

	"github.com/valyala/fasthttp"
)

// cors answers CORS for the event endpoints. With no list (or "*") any
// origin may read responses, without credentials; with a list only those
// origins are echoed back, and Vary: Origin keeps caches honest.
type cors struct {
	any         bool
	credentials bool
	allowed     map[string]struct{}
}

func newCORS(origins []string, credentials bool) cors {
	c := cors{allowed: map[string]struct{}{}, credentials: credentials}
	for _, o := range origins {
		if o == "*" {
			c.any = true
		}
		c.allowed[o] = struct{}{}
	}
	if len(origins) == 0 {
		c.any = true
	}
	return c
}

// allow sets the response headers for a request's Origin and reports
// whether the origin is allowed.
func (c *cors) allow(ctx *fasthttp.RequestCtx) bool {
	origin := ctx.Request.Header.PeekBytes(hdrOrigin)
	if len(origin) == 0 {
		return true // not a CORS request
	}
	h := &ctx.Response.Header
	if c.any {
		h.SetCanonical(hdrACAO, valStar)
		h.SetCanonical(hdrACEH, valExpose)
		return true
	}
	h.SetCanonical(hdrVary, hdrOrigin)
	if _, ok := c.allowed[string(origin)]; !ok {
		return false
	}
	h.SetCanonical(hdrACAO, origin)
	h.SetCanonical(hdrACEH, valExpose)
	if c.credentials {
		h.SetCanonical(hdrACAC, valTrue)
	}
	return true
}

// preflight answers an OPTIONS request.
func (c *cors) preflight(ctx *fasthttp.RequestCtx) int {
	if !c.allow(ctx) {
		ctx.SetStatusCode(fasthttp.StatusForbidden)
		ctx.SetBodyString("origin_not_allowed: this origin may not send events here\n")
		countRejected("origin_not_allowed", 1)
		return fasthttp.StatusForbidden
	}
	h := &ctx.Response.Header
	h.SetCanonical(hdrACAM, valMethods)
	if req := ctx.Request.Header.Peek("Access-Control-Request-Headers"); len(req) > 0 && len(req) <= 512 && tokenList(req) {
		h.SetCanonical(hdrACAH, req)
	} else {
		h.SetCanonical(hdrACAH, valAllowHeaders)
	}
	h.SetCanonical(hdrACMA, valMaxAge)
	ctx.SetStatusCode(fasthttp.StatusNoContent)
	return fasthttp.StatusNoContent
}

// tokenList reports whether b is a comma-separated list of header names,
// so echoing it cannot inject anything into the response.
func tokenList(b []byte) bool {
	return bytes.IndexFunc(b, func(r rune) bool {
		return !(r == ',' || r == ' ' || r == '-' || r == '_' || r == '.' ||
			(r >= 'a' && r <= 'z') || (r >= 'A' && r <= 'Z') || (r >= '0' && r <= '9'))
	}) < 0
}
