package ingest

import (
	"bytes"
	"strings"

	"github.com/valyala/fasthttp"

	"github.com/beacongate/beacongate/ingest/snippet"
)

// serveAsset answers GET /b.js (the browser snippet) and, with -demo,
// GET /demo: cacheable (ETag, Cache-Control, 304 on If-None-Match) and
// gzipped for clients that accept it.
func (s *Server) serveAsset(ctx *fasthttp.RequestCtx, path []byte) int {
	var a *snippet.Asset
	switch string(path) {
	case pathJS:
		a = snippet.JS()
	case pathDemo:
		if !s.cfg.Demo {
			return s.fail(ctx, errNotFound, "")
		}
		a = snippet.Demo()
	}
	h := &ctx.Response.Header
	h.SetCanonical(hdrETag, []byte(a.ETag))
	h.SetCanonical(hdrCacheCtl, []byte(a.CacheControl))
	h.SetCanonical(hdrVary, hdrAcceptEncoding)
	if inm := ctx.Request.Header.PeekBytes(hdrIfNoneMatch); len(inm) > 0 && bytes.Contains(inm, []byte(a.ETag)) {
		ctx.SetStatusCode(fasthttp.StatusNotModified)
		return fasthttp.StatusNotModified
	}
	h.SetContentType(a.ContentType)
	if acceptsGzip(ctx.Request.Header.PeekBytes(hdrAcceptEncoding)) {
		h.SetCanonical(hdrContentEncoding, valGzip)
		ctx.Response.SetBodyRaw(a.Gzip)
	} else {
		ctx.Response.SetBodyRaw(a.Body)
	}
	return fasthttp.StatusOK
}

// acceptsGzip reads Accept-Encoding: gzip (or *) listed without q=0.
func acceptsGzip(ae []byte) bool {
	for _, part := range bytes.Split(ae, []byte(",")) {
		coding, params, _ := bytes.Cut(bytes.TrimSpace(part), []byte(";"))
		coding = bytes.TrimSpace(coding)
		if !bytes.EqualFold(coding, valGzip) && !bytes.Equal(coding, []byte("*")) {
			continue
		}
		q := bytes.ReplaceAll(params, []byte(" "), nil)
		if bytes.HasPrefix(q, []byte("q=0")) && strings.Trim(string(q[3:]), ".0") == "" {
			return false
		}
		return true
	}
	return false
}
