package ingest

import (
	"net"
	"strings"
	"testing"

	"github.com/valyala/fasthttp"
	"go.uber.org/zap"

	"github.com/beacongate/beacongate/shard"
)

func TestIdentityCookie(t *testing.T) {
	ts := newTestServer(t, Config{IdentityCookie: "bg_nuid", IdentityDomain: "example.com",
		Shard: shard.Config{Sources: "query:uid,cookie:bg_nuid,ip"}})
	r := ts.do(t, "GET", "/i?ev=first", "", "")
	set := r.headers["Set-Cookie"]
	for _, want := range []string{"bg_nuid=", "SameSite=None", "secure", "HttpOnly", "domain=example.com", "max-age=31536000"} {
		if !strings.Contains(strings.ToLower(set), strings.ToLower(want)) {
			t.Fatalf("Set-Cookie %q lacks %q", set, want)
		}
	}
	keys, recs := ts.sink.take()
	nuid := recs[0].NetworkUserId
	if len(nuid) != 32 || keys[0] != nuid {
		t.Fatalf("first visit: network_user_id %q, key %q: the new id must key this very request", nuid, keys[0])
	}
	// A returning browser keeps its id.
	ts.do(t, "GET", "/i?ev=second", "", "", "Cookie", "bg_nuid="+nuid)
	keys, recs = ts.sink.take()
	if recs[0].NetworkUserId != nuid || keys[0] != nuid {
		t.Fatalf("returning browser: id %q key %q, want %q", recs[0].NetworkUserId, keys[0], nuid)
	}
}

func TestOptOutStripsIdentifiers(t *testing.T) {
	ts := newTestServer(t, Config{IdentityCookie: "bg_nuid", HonorGPC: true})
	for _, hdr := range [][]string{{"X-Beacon-Opt-Out", "1"}, {"Cookie", "bg_optout=1"}, {"Sec-GPC", "1"}} {
		r := ts.do(t, "GET", "/i?uid=u1&aid=a1&ev=view&sid=s1", "", "", hdr...)
		if r.status != 200 || r.headers["Set-Cookie"] != "" {
			t.Fatalf("%v: status %d, Set-Cookie %q (an opted-out browser gets no id)", hdr, r.status, r.headers["Set-Cookie"])
		}
		keys, recs := ts.sink.take()
		b := recs[0]
		if paramsOf(b) != "ev=view&sid=s1" || len(b.ClientIp) != 0 || b.NetworkUserId != "" || keys[0] != "" {
			t.Fatalf("%v: params %q ip %v nuid %q key %q: identifiers left", hdr, paramsOf(b), b.ClientIp, b.NetworkUserId, keys[0])
		}
	}
	ts.do(t, "POST", "/batch", "application/json", `[{"event":"x","user_id":"u1", "anonymous_id" : "a1","props":{"user_id":"kept, not top level"}}]`, "X-Beacon-Opt-Out", "1")
	keys, recs := ts.sink.take()
	if got := string(recs[0].Payload); got != `{"event":"x","props":{"user_id":"kept, not top level"}}` || keys[0] != "" {
		t.Fatalf("opted-out JSON event %q key %q", got, keys[0])
	}
	// The opt-out cookie set to 0 is not an opt-out.
	ts.do(t, "GET", "/i?uid=u1", "", "", "Cookie", "bg_optout=0")
	if keys, _ := ts.sink.take(); keys[0] != "u1" {
		t.Fatalf("bg_optout=0 stripped the id: key %q", keys[0])
	}
}

func TestAnonymizeIP(t *testing.T) {
	sink := &recordingSink{t: t}
	s, err := New(Config{AnonymizeIP: true}, sink, nil, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ ip, key string }{{"203.0.113.77", "203.0.113.0"}, {"2001:db8:1:2:3:4:5:6", "2001:db8:1::"}} {
		var ctx fasthttp.RequestCtx
		ctx.Init(&fasthttp.Request{}, &net.TCPAddr{IP: net.ParseIP(c.ip), Port: 1}, nil)
		ctx.Request.SetRequestURI("/i?ev=x")
		s.Handle(&ctx)
	}
	if sink.keys[0] != "203.0.113.0" || sink.keys[1] != "2001:db8:1::" || sink.records[0].ClientIp[3] != 0 {
		t.Fatalf("anonymized keys %q ip %v", sink.keys, sink.records[0].ClientIp)
	}
}

func TestCORSCredentials(t *testing.T) {
	if err := (Config{CORSCredentials: true}).Validate(); err == nil {
		t.Fatalf("credentials with any origin must not validate")
	}
	ts := newTestServer(t, Config{CORSCredentials: true, CORSOrigins: []string{"https://shop.example"}})
	r := ts.do(t, "POST", "/batch", "text/plain", `[{"a":1}]`, "Origin", "https://shop.example")
	if r.headers["Access-Control-Allow-Origin"] != "https://shop.example" || r.headers["Access-Control-Allow-Credentials"] != "true" ||
		r.headers["Vary"] != "Origin" {
		t.Fatalf("credentialed CORS: %v", r.headers)
	}
	r = ts.do(t, "POST", "/batch", "text/plain", `[{"a":1}]`, "Origin", "https://evil.example")
	if r.headers["Access-Control-Allow-Origin"] != "" || r.headers["Access-Control-Allow-Credentials"] != "" {
		t.Fatalf("unlisted origin got CORS headers: %v", r.headers)
	}
}

func TestClickRedirect(t *testing.T) {
	ts := newTestServer(t, Config{RedirectHosts: []string{"shop.example", ".partner.example"}})
	r := ts.do(t, "GET", "/r?u=https%3A%2F%2Fshop.example%2Fp%3Fid%3D1&campaign=c7&uid=u1", "", "")
	if r.status != 302 || r.headers["Location"] != "https://shop.example/p?id=1" {
		t.Fatalf("redirect: %d Location %q", r.status, r.headers["Location"])
	}
	keys, recs := ts.sink.take()
	if len(recs) != 1 || recs[0].Kind.String() != "KIND_CLICK" || keys[0] != "u1" || !strings.Contains(paramsOf(recs[0]), "campaign=c7") {
		t.Fatalf("click record %v key %q", recs, keys)
	}
	if r := ts.do(t, "GET", "/r?u=https%3A%2F%2Fwww.partner.example%2F", "", ""); r.status != 302 {
		t.Fatalf("subdomain of an allowed suffix: %d", r.status)
	}
	ts.sink.take()
	for _, bad := range []string{
		"/r?u=https%3A%2F%2Fevil.example%2F",              // not allowed
		"/r?u=https%3A%2F%2Fshop.example.evil.example%2F", // suffix trick
		"/r?u=javascript%3Aalert(1)",                      // scheme
		"/r?u=%2F%2Fevil.example",                         // scheme-relative
		"/r?u=https%3A%2F%2Fuser%40shop.example%2F",       // userinfo
		"/r", // missing
	} {
		if r := ts.do(t, "GET", bad, "", ""); r.status != 400 || r.headers["Location"] != "" {
			t.Fatalf("%s: %d Location %q, want 400 and no redirect", bad, r.status, r.headers["Location"])
		}
	}
	if _, recs := ts.sink.take(); len(recs) != 0 {
		t.Fatalf("refused redirects produced %d records", len(recs))
	}
}

func TestAssets(t *testing.T) {
	ts := newTestServer(t, Config{})
	r := ts.do(t, "GET", "/b.js", "", "")
	if r.status != 200 || !strings.HasPrefix(r.headers["Content-Type"], "text/javascript") || r.headers["Etag"] == "" ||
		!strings.Contains(r.headers["Cache-Control"], "max-age") || !strings.Contains(r.body, "beacongate") {
		t.Fatalf("/b.js: %d %v", r.status, r.headers)
	}
	if r2 := ts.do(t, "GET", "/b.js", "", "", "If-None-Match", r.headers["Etag"]); r2.status != 304 {
		t.Fatalf("/b.js with If-None-Match: %d, want 304", r2.status)
	}
	if r2 := ts.do(t, "GET", "/b.js", "", "", "Accept-Encoding", "gzip, br"); r2.headers["Content-Encoding"] != "gzip" || len(r2.body) >= len(r.body) {
		t.Fatalf("/b.js gzipped: %v, %d bytes", r2.headers, len(r2.body))
	}
	if r := ts.do(t, "GET", "/demo", "", ""); r.status != 404 {
		t.Fatalf("/demo without -demo: %d", r.status)
	}
	ts = newTestServer(t, Config{Demo: true})
	if r := ts.do(t, "GET", "/demo", "", ""); r.status != 200 || !strings.Contains(r.body, "/b.js") {
		t.Fatalf("/demo: %d", r.status)
	}
}

func TestAcceptsGzip(t *testing.T) {
	for ae, want := range map[string]bool{
		"gzip": true, "gzip, deflate, br": true, "br;q=1.0, GZIP;q=0.5": true, "*": true,
		"gzip;q=0": false, "gzip; q=0.0": false, "br": false, "": false, "x-gzip2": false,
	} {
		if got := acceptsGzip([]byte(ae)); got != want {
			t.Errorf("acceptsGzip(%q) = %v, want %v", ae, got, want)
		}
	}
}
