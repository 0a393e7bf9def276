package ingest

import (
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestSitesAllowList(t *testing.T) {
	ts := newTestServer(t, Config{Sites: map[string]string{"web": "", "srv": "s3cret"}})
	before := testutil.ToFloat64(eventsRejected.WithLabelValues("unknown_site")) + testutil.ToFloat64(eventsRejected.WithLabelValues("bad_write_key"))
	for _, c := range []struct {
		name, method, uri, body string
		hdr                     []string
		status                  int
		reason                  string
	}{
		{"keyless site", "GET", "/i?sid=web&ev=v", "", nil, 200, ""},
		{"keyless site ignores a key", "GET", "/i?sid=web&ev=v&key=zzz", "", nil, 200, ""},
		{"no sid", "GET", "/i?ev=v", "", nil, 403, "unknown_site"},
		{"empty sid", "GET", "/i?sid=&ev=v", "", nil, 403, "unknown_site"},
		{"unknown sid", "GET", "/i?sid=evil&ev=v", "", nil, 403, "unknown_site"},
		{"keyed site, no key", "GET", "/i?sid=srv&ev=v", "", nil, 403, "bad_write_key"},
		{"keyed site, wrong key", "GET", "/i?sid=srv&ev=v&key=s3creT", "", nil, 403, "bad_write_key"},
		{"keyed site, key prefix", "GET", "/i?sid=srv&ev=v&key=s3cre", "", nil, 403, "bad_write_key"},
		{"keyed site, query key", "GET", "/i?sid=srv&ev=v&key=s3cret", "", nil, 200, ""},
		{"keyed site, header key", "POST", "/i?sid=srv", `{"ev":"v"}`, []string{"X-Beacon-Key", "s3cret"}, 204, ""},
		{"keyed site, wrong header wins", "GET", "/i?sid=srv&key=s3cret", "", []string{"X-Beacon-Key", "nope"}, 403, "bad_write_key"},
		{"batch unknown site", "POST", "/batch?sid=evil", `[{}]`, nil, 403, "unknown_site"},
		{"batch keyed", "POST", "/batch?sid=srv&key=s3cret", `[{},{}]`, nil, 200, ""},
		{"click unknown site", "GET", "/r?u=https%3A%2F%2Fx.example%2F", "", nil, 403, "unknown_site"},
		{"form beacon: body key stripped", "POST", "/i?sid=web", "ev=v&key=leak", nil, 204, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			ct := ""
			if c.body != "" {
				ct = "application/json"
				if !strings.HasPrefix(c.body, "{") && !strings.HasPrefix(c.body, "[") {
					ct = "application/x-www-form-urlencoded"
				}
			}
			r := ts.do(t, c.method, c.uri, ct, c.body, c.hdr...)
			if r.status != c.status || (c.reason != "" && !strings.HasPrefix(r.body, c.reason+":")) {
				t.Fatalf("status %d %q, want %d %s", r.status, r.body, c.status, c.reason)
			}
			_, recs := ts.sink.take()
			if c.status >= 400 && len(recs) != 0 {
				t.Fatalf("rejected request produced %d records", len(recs))
			}
			for _, b := range recs {
				for _, p := range b.Params {
					if p.Name == "key" {
						t.Fatalf("write key recorded: %s", paramsOf(b))
					}
				}
			}
		})
	}
	after := testutil.ToFloat64(eventsRejected.WithLabelValues("unknown_site")) + testutil.ToFloat64(eventsRejected.WithLabelValues("bad_write_key"))
	if after-before != 9 {
		t.Fatalf("403s counted %v, want 9", after-before)
	}
}

func TestSitesValidate(t *testing.T) {
	if err := (Config{Sites: map[string]string{"": "k"}}).Validate(); err == nil {
		t.Fatal("empty site id accepted")
	}
}

func TestMaxConnsPerIPConfig(t *testing.T) {
	ts := newTestServer(t, Config{MaxConnsPerIP: 8, MaxInflatedBytes: 1 << 20})
	if ts.srv.MaxConnsPerIP != 8 {
		t.Fatalf("fasthttp MaxConnsPerIP %d, want 8", ts.srv.MaxConnsPerIP)
	}
	if ts.cfg.MaxInflatedBytes != 1<<20 {
		t.Fatalf("MaxInflatedBytes %d", ts.cfg.MaxInflatedBytes)
	}
	if d := newTestServer(t, Config{MaxBodyBytes: 1000}); d.cfg.MaxInflatedBytes != 4000 || d.srv.MaxConnsPerIP != 0 {
		t.Fatalf("defaults: inflated %d, conns per IP %d", d.cfg.MaxInflatedBytes, d.srv.MaxConnsPerIP)
	}
	for _, c := range []Config{{MaxConnsPerIP: -1}, {MaxInflatedBytes: -1}, {MaxInflatedBytes: 2 << 30}} {
		if err := c.Validate(); err == nil {
			t.Errorf("%+v accepted", c)
		}
	}
}
