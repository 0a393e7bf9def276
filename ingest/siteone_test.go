package ingest

import (
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

// TestOneSitePerRequest: a request naming two different sites is refused
// (400 multiple_sites, counted, nothing produced), so a keyless site's sid
// cannot carry a keyed site's sid into a record without its key.
func TestOneSitePerRequest(t *testing.T) {
	ts := newTestServer(t, Config{Sites: map[string]string{"keyed": "SECRET", "open": ""}})
	before := testutil.ToFloat64(eventsRejected.WithLabelValues("multiple_sites"))
	form, js := "application/x-www-form-urlencoded", "application/json"
	for _, c := range []struct {
		name, method, uri, ct, body string
		status, records             int
	}{
		{"two sids in the query", "GET", "/i?sid=open&sid=keyed&ev=v", "", "", 400, 0},
		{"two sids, keyed first", "GET", "/i?sid=keyed&key=SECRET&sid=open", "", "", 400, 0},
		{"same sid twice", "GET", "/i?sid=open&sid=open&ev=v", "", "", 200, 1},
		{"form body adds a sid", "POST", "/i?sid=open", form, "ev=v&sid=keyed", 400, 0},
		{"form body repeats the sid", "POST", "/i?sid=open", form, "ev=v&sid=open", 204, 1},
		{"keyed form repeats its sid", "POST", "/i?sid=keyed&key=SECRET", form, "sid=keyed&ev=v", 204, 1},
		{"JSON beacon names another sid", "POST", "/i?sid=open", js, `{"sid":"keyed","ev":"v"}`, 400, 0},
		{"JSON beacon escaped sid name", "POST", "/i?sid=open", js, `{"\u0073id":"keyed"}`, 400, 0},
		{"JSON beacon repeats the sid", "POST", "/i?sid=open", js, `{"sid":"open","ev":"v"}`, 204, 1},
		{"JSON nested sid is not a site", "POST", "/i?sid=open", js, `{"ctx":{"sid":"keyed"}}`, 204, 1},
		{"batch: the other site's events refused", "POST", "/batch?sid=open", js, `[{"sid":"keyed"},{"sid":"open"},{}]`, 200, 2},
		{"batch: all the other site", "POST", "/batch?sid=open", js, `[{"sid":"keyed"}]`, 400, 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := ts.do(t, c.method, c.uri, c.ct, c.body)
			if r.status != c.status {
				t.Fatalf("status %d %q, want %d", r.status, r.body, c.status)
			}
			if c.status == 400 && !strings.Contains(r.body, "multiple_sites") {
				t.Fatalf("body %q, want the reason multiple_sites", r.body)
			}
			_, recs := ts.sink.take()
			if len(recs) != c.records {
				t.Fatalf("%d records, want %d", len(recs), c.records)
			}
			for _, b := range recs {
				for _, p := range b.Params {
					if p.Name == "sid" && p.Value != "open" && !strings.Contains(c.uri, "key=SECRET") {
						t.Fatalf("record carries sid=%s without its key", p.Value)
					}
				}
				if strings.Contains(string(b.Payload), `"sid":"keyed"`) && !strings.Contains(c.name, "nested") {
					t.Fatalf("record payload names the keyed site: %s", b.Payload)
				}
			}
		})
	}
	if got := testutil.ToFloat64(eventsRejected.WithLabelValues("multiple_sites")) - before; got != 7 {
		t.Fatalf("multiple_sites counted %v, want 7", got)
	}
}

// TestOneSiteOnlyWhenSiteAware: without an allow-list or a per-site
// limit, sid is an ordinary parameter and may repeat.
func TestOneSiteOnlyWhenSiteAware(t *testing.T) {
	ts := newTestServer(t, Config{})
	if r := ts.do(t, "GET", "/i?sid=a&sid=b", "", ""); r.status != 200 {
		t.Fatalf("status %d %q", r.status, r.body)
	}
	ts = newTestServer(t, Config{RateLimitPerSite: 1000})
	if r := ts.do(t, "GET", "/i?sid=a&sid=b", "", ""); r.status != 400 {
		t.Fatalf("per-site limit on: status %d %q, want 400", r.status, r.body)
	}
}

// TestMultipleSitesNoDeadLetter: a body refused for naming a second site
// may hold that site's write key, so it is not dead-lettered.
func TestMultipleSitesNoDeadLetter(t *testing.T) {
	ts, _, d := newAckServer(t, Config{Sites: map[string]string{"keyed": "SECRET", "open": ""}})
	if r := ts.do(t, "POST", "/i?sid=open", "application/x-www-form-urlencoded", "sid=keyed&key=SECRET"); r.status != 400 {
		t.Fatalf("status %d %q", r.status, r.body)
	}
	if r := ts.do(t, "POST", "/batch?sid=open", "application/json", `[{"sid":"keyed","key":"SECRET"}]`); r.status != 400 {
		t.Fatalf("batch status %d %q", r.status, r.body)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if len(d.letters) != 0 {
		t.Fatalf("dead letters %q", d.letters)
	}
}
