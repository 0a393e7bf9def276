package ingest

import (
	"bytes"

	"github.com/valyala/fasthttp"
)

// analytics.js loads its settings before it sends anything, from
// {cdn}/v1/projects/{writeKey}/settings. This answer makes it send every
// event to this gateway (its Segment.io integration's apiHost is the host
// the settings were asked from) and to nothing else: no device-mode
// destinations, no remote plugins, no metrics to Segment.

var (
	hdrForwardedProto = []byte("X-Forwarded-Proto")
	valHTTPS          = []byte("https")
	valSettingsCache  = []byte("public, max-age=300")
)

// serveSegmentSettings answers GET /v1/projects/{writeKey}/settings.
func (s *Server) serveSegmentSettings(ctx *fasthttp.RequestCtx, key []byte) int {
	s.cors.allow(ctx)
	if len(key) == 0 || bytes.IndexByte(key, '/') >= 0 {
		return s.segmentFail(ctx, errNotFound, "")
	}
	if s.segment.keys != nil {
		if _, ok := s.segment.site(key); !ok {
			return s.segmentFail(ctx, errSegmentBadKey, "")
		}
	}
	proto := "http"
	if ctx.IsTLS() || (s.proxies.trusted(peerAddr(ctx)) && bytes.EqualFold(ctx.Request.Header.PeekBytes(hdrForwardedProto), valHTTPS)) {
		proto = "https"
	}
	b := append([]byte(nil), `{"integrations":{"Segment.io":{"apiKey":`...)
	b = appendJSONString(b, string(key))
	b = append(b, `,"apiHost":`...)
	b = appendJSONString(b, string(ctx.Host())+"/v1")
	b = append(b, `,"protocol":"`...)
	b = append(b, proto...)
	b = append(b, `"}},"plan":{"track":{"__default":{"enabled":true}},"identify":{"__default":{"enabled":true}},"group":{"__default":{"enabled":true}}},`+
		`"edgeFunction":{},"analyticsNextEnabled":true,"middlewareSettings":{},"enabledMiddleware":{},`+
		`"metrics":{"sampleRate":0},"legacyVideoPluginsEnabled":false,"remotePlugins":[]}`...)
	ctx.SetStatusCode(fasthttp.StatusOK)
	ctx.Response.Header.SetContentTypeBytes(mtJSON)
	ctx.Response.Header.SetCanonical(hdrCacheCtl, valSettingsCache)
	ctx.SetBody(b)
	return fasthttp.StatusOK
}
