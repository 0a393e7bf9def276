// Package snippet holds the first-party browser snippet (/b.js) and the demo
// page the gateway serves (/demo), embedded in the binary with their gzipped
// bodies and caching headers computed once at start-up.
//
// b.js is served as written (plain JavaScript, no build step), so it is
// kept small by hand: a test holds it to 2 KB gzipped. Its behaviour is
// tested in a fake browser by b.test.mjs (node's built-in test runner, run
// by TestSnippetBehaviour). A site needs one tag:
//
//	<script async src="https://collect.example.com/b.js" data-site="site-1"></script>
//
// Calls made before b.js has loaded are queued by a stub and replayed in
// order, before the automatic page view (so an early identify applies to it):
//
//	window.beacongate = window.beacongate || {q: []};
//	beacongate.q.push(['identify', 'u1'], ['track', 'signup', {plan: 'pro'}]);
//
// beacongate.q.push keeps working after load (it runs the call at once).
//
// # Options
//
// Data attributes on the tag, or the same names in camelCase on a
// window.beacongateConfig object set before it (an attribute wins):
//
//	data-endpoint        collector origin; default: the origin b.js came from
//	data-site            site id, sent as "sid"
//	data-auto            "false": no automatic page_view
//	data-storage         where the anonymous id lives: "cookie" (default:
//	                     bg_aid=<uuid>; Path=/; Max-Age=63072000; SameSite=Lax
//	                     [; Domain=...][; Secure on https], renewed on every
//	                     load), "local" (localStorage key bg_aid) or "none"
//	data-cookie-domain   Domain attribute of that cookie
//	data-credentials     "true": the fetch fallback sends cookies
//	data-respect-dnt     "true": with navigator.doNotTrack "1" nothing is
//	                     sent or stored at all
//	data-respect-gpc     "true": with navigator.globalPrivacyControl, events
//	                     carry no anonymous_id nor user_id and add "gpc":true;
//	                     nothing is stored
//
// # API
//
//	beacongate.track(name, props)  props: a plain object, optional
//	beacongate.identify(userId)    later events carry user_id; a falsy id forgets it
//	beacongate.flush()             send what is queued now
//	beacongate.version             "1.0.0" (Version)
//
// No call ever throws into the page.
//
// # Wire format
//
// Every event is one JSON object, absent members left out:
//
//	{"event":"click","props":{"button":"buy"},"ts":1700000000000,
//	 "url":location.href,"ref":document.referrer,"title":document.title,
//	 "sw":screen.width,"sh":screen.height,"lang":navigator.language,
//	 "sid":"site-1","anonymous_id":"<uuid v4>","user_id":"u1","gpc":true,"v":"1.0.0"}
//
// Events are queued in the page and sent as one request per flush: when 10
// are queued, 5 s after the first queued one, when the page is hidden
// (visibilitychange) or left (pagehide), or on flush(). The request is POST
// {endpoint}/batch with a JSON array body typed text/plain (CORS-safelisted:
// no preflight), by navigator.sendBeacon; if that is missing or refuses
// (returns false, e.g. over its 64 KB quota) by fetch with keepalive, mode
// no-cors (the answer is never read, so no CORS headers are needed) and
// credentials "omit" ("include" with data-credentials); if fetch is missing
// or throws, by one image pixel per event: GET {endpoint}/i?ev=<event>
// &uid=<user_id or anonymous_id>&aid=<anonymous_id>&ts&url&ref&title&sw&sh
// &lang&sid&gpc&v&p.<prop>=<value> (nested prop values as JSON). A pixel
// parameter that would take the query past 6990 characters is left out,
// whichever it is (a long prop, url or title); the others are kept.
package snippet

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
)

// Version is the snippet's version, the "v" member of every event it
// sends; a test checks it equals the constant in b.js.
const Version = "1.0.0"

// Asset is a static file the gateway serves, with its caching headers
// precomputed. Assets are shared: callers must not modify them.
type Asset struct {
	Body         []byte // as served (not compressed)
	Gzip         []byte // gzipped body, for clients that accept gzip
	ContentType  string // "text/javascript; charset=utf-8" / "text/html; charset=utf-8"
	ETag         string // strong ETag: quoted hex of the first 16 bytes of sha256(Body)
	CacheControl string
}

var (
	//go:embed b.js
	jsSource []byte
	//go:embed demo.html
	demoSource []byte

	// The snippet is cached for an hour and may be served stale for a day
	// while revalidating: a release reaches every browser within an hour,
	// and the ETag makes revalidation a 304. The demo is always revalidated.
	js   = newAsset(jsSource, "text/javascript; charset=utf-8", "public, max-age=3600, stale-while-revalidate=86400")
	demo = newAsset(demoSource, "text/html; charset=utf-8", "no-cache")
)

// JS is /b.js.
func JS() *Asset { return js }

// Demo is the demo page, /demo.
func Demo() *Asset { return demo }

func newAsset(body []byte, contentType, cacheControl string) *Asset {
	sum := sha256.Sum256(body)
	return &Asset{
		Body:         body,
		Gzip:         gzipBytes(body),
		ContentType:  contentType,
		ETag:         `"` + hex.EncodeToString(sum[:16]) + `"`,
		CacheControl: cacheControl,
	}
}

// gzipBytes compresses once at start-up, so the best (slowest) level costs
// nothing per request. The gzip header carries no name and no time: the
// bytes are the same on every gateway of a fleet.
func gzipBytes(b []byte) []byte {
	var buf bytes.Buffer
	zw, err := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	if err != nil {
		panic(err) // only for an invalid level
	}
	// Writes to a bytes.Buffer do not fail.
	_, _ = zw.Write(b)
	_ = zw.Close()
	return buf.Bytes()
}
