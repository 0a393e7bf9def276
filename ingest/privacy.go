package ingest

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"

	"github.com/valyala/fasthttp"

	"github.com/beacongate/beacongate/ingest/record"
)

// Identity and privacy (docs/snippet.md). The gateway can keep its own first-party id
// cookie per browser (like Snowplow's network user id), and every request
// can opt out of tracking: then the record carries no identifier and no
// client IP, whatever the client sent.

// privacy decides opt-out and the identity cookie for a request; it runs
// in begin, before anything reads identifiers.
func (s *Server) privacy(sc *scratch) {
	sc.identityCookie = s.cfg.IdentityCookie
	if s.optedOut(sc.ctx) {
		sc.optOut = true
		sc.b.ClientIP = nil
		sc.ipText = sc.ipText[:0]
		optOutsTotal.Inc()
		return
	}
	if s.cfg.IdentityCookie != "" {
		s.identity(sc)
	}
}

func (s *Server) optedOut(ctx *fasthttp.RequestCtx) bool {
	h := &ctx.Request.Header
	if bytes.Equal(h.PeekBytes(hdrOptOut), []byte("1")) {
		return true
	}
	if s.cfg.OptOutCookie != "" {
		if v := h.Cookie(s.cfg.OptOutCookie); len(v) > 0 && string(v) != "0" {
			return true
		}
	}
	if s.cfg.HonorDNT && bytes.Equal(h.PeekBytes(hdrDNT), []byte("1")) {
		return true
	}
	return s.cfg.HonorGPC && bytes.Equal(h.PeekBytes(hdrGPC), []byte("1"))
}

// identity reads the browser's id cookie, or makes one on its first
// visit, and sets it again on the answer so it lives on while the browser
// keeps coming back. SameSite=None; Secure lets a site on another domain
// send credentialed requests (with -http.cors-credentials).
func (s *Server) identity(sc *scratch) {
	var nuid []byte
	if v := sc.ctx.Request.Header.Cookie(s.cfg.IdentityCookie); validNUID(v) || validUUID(v) {
		nuid = sc.nuid[:copy(sc.nuid[:], v)]
	} else {
		var b [16]byte
		_, _ = rand.Read(b[:]) // never fails on Linux
		nuid = sc.nuid[:32]
		hex.Encode(nuid, b[:])
		identitiesSet.Inc()
	}
	sc.b.NetworkUserID = nuid
	c := fasthttp.AcquireCookie()
	c.SetKey(s.cfg.IdentityCookie)
	c.SetValueBytes(nuid)
	c.SetPath("/")
	if s.cfg.IdentityDomain != "" {
		c.SetDomain(s.cfg.IdentityDomain)
	}
	c.SetMaxAge(int(s.cfg.IdentityMaxAge.Seconds()))
	c.SetSameSite(fasthttp.CookieSameSiteNoneMode)
	c.SetSecure(true)
	c.SetHTTPOnly(true)
	sc.ctx.Response.Header.SetCookie(c)
	fasthttp.ReleaseCookie(c)
}

// validNUID accepts the ids the gateway makes: 32 lower-case hex digits.
func validNUID(v []byte) bool {
	if len(v) != 32 {
		return false
	}
	for _, c := range v {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// validUUID accepts a lower-case UUID (8-4-4-4-12 hex digits), the
// network user id a Snowplow collector keeps in its sp cookie: a site
// that moves from the collector to the gateway (-identity.cookie sp,
// docs/snowplow.md) keeps its browsers' ids.
func validUUID(v []byte) bool {
	if len(v) != 36 {
		return false
	}
	for i, c := range v {
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
				return false
			}
		}
	}
	return true
}

// dropIDParams removes identifying parameters (-privacy.id-params) from an
// opted-out request's params, in place.
func (s *Server) dropIDParams(params []record.Param) []record.Param {
	out := params[:0]
	for _, p := range params {
		if !s.idParam(p.Name) {
			out = append(out, p)
		}
	}
	clear(params[len(out):])
	return out
}

func (s *Server) idParam(name []byte) bool {
	for _, n := range s.cfg.IDParams {
		if string(name) == n {
			return true
		}
	}
	return false
}
