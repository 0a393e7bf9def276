package ingest

import (
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/zap"
)

// fakeClock is a manual clock for the limiters.
type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time          { return c.t }
func (c *fakeClock) advance(d time.Duration) { c.t = c.t.Add(d) }

func TestLimiterBucket(t *testing.T) {
	l := newLimiter(2, 3, 0) // 2/s, burst 3
	now := time.Unix(1000, 0).UnixNano()
	key := []byte("k")
	for i := 0; i < 3; i++ {
		if ok, _ := l.allow(key, now); !ok {
			t.Fatalf("burst request %d refused", i)
		}
	}
	ok, wait := l.allow(key, now)
	if ok || wait != 500*time.Millisecond {
		t.Fatalf("4th request: ok %v wait %v, want refused and 500ms", ok, wait)
	}
	if ok, _ := l.allow([]byte("other"), now); !ok {
		t.Fatal("another key shares the bucket")
	}
	now += int64(499 * time.Millisecond)
	if ok, _ := l.allow(key, now); ok {
		t.Fatal("allowed before a token was back")
	}
	now += int64(time.Millisecond)
	if ok, _ := l.allow(key, now); !ok {
		t.Fatal("refused after a token was back")
	}
	// A long pause refills to the burst, not beyond.
	now += int64(time.Hour)
	for i := 0; i < 3; i++ {
		if ok, _ := l.allow(key, now); !ok {
			t.Fatalf("after pause: request %d refused", i)
		}
	}
	if ok, _ := l.allow(key, now); ok {
		t.Fatal("bucket filled beyond its burst")
	}
	// A clock going backwards does not mint tokens.
	if ok, _ := l.allow(key, now-int64(time.Hour)); ok {
		t.Fatal("clock step back minted a token")
	}
}

func TestLimiterDefaultsAndOff(t *testing.T) {
	if newLimiter(0, 0, 0) != nil {
		t.Fatal("rate 0 should be no limiter")
	}
	if l := newLimiter(0.5, 0, 0); l.burst != 1 {
		t.Fatalf("default burst for 0.5/s = %v, want 1", l.burst)
	}
	if l := newLimiter(100, 0, 0); l.burst != 100 {
		t.Fatalf("default burst for 100/s = %v, want 100", l.burst)
	}
}

func TestLimiterBounded(t *testing.T) {
	const maxKeys = 640
	l := newLimiter(1, 1, maxKeys)
	now := time.Unix(1000, 0).UnixNano()
	for i := 0; i < 100*maxKeys; i++ {
		l.allow(fmt.Appendf(nil, "key-%d", i), now) // all active: LRU-ish eviction
	}
	if n := l.len(); n > maxKeys {
		t.Fatalf("%d keys tracked, cap %d", n, maxKeys)
	}
	// Idle entries are dropped first and their keys start afresh.
	now += int64(time.Minute)
	for i := 0; i < 100*maxKeys; i++ {
		if ok, _ := l.allow(fmt.Appendf(nil, "new-%d", i), now); !ok {
			t.Fatalf("new key %d refused", i)
		}
	}
	if n := l.len(); n > maxKeys {
		t.Fatalf("%d keys tracked, cap %d", n, maxKeys)
	}
}

func TestRateLimitPerIP(t *testing.T) {
	sink := &recordingSink{t: t}
	s, err := New(Config{RateLimitPerIP: 1, RateBurstPerIP: 2, TrustedProxies: []string{"10.0.0.0/8"}}, sink, nil, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	clk := &fakeClock{t: time.Unix(1e9, 0)}
	s.clock = clk.now
	rejected := testutil.ToFloat64(eventsRejected.WithLabelValues("rate_limited"))
	get := func(peer, xff string) int {
		h := ""
		if xff != "" {
			h = "X-Forwarded-For: " + xff + "\r\n"
		}
		ctx := serveFrom(t, s, peer, "GET /i?ev=x HTTP/1.1\r\nHost: gw\r\n"+h+"\r\n")
		if ctx.Response.StatusCode() == 429 && string(ctx.Response.Header.Peek("Retry-After")) != "1" {
			t.Fatalf("429 with Retry-After %q, want 1", ctx.Response.Header.Peek("Retry-After"))
		}
		return ctx.Response.StatusCode()
	}
	for i, want := range []int{200, 200, 429, 429} {
		if st := get("203.0.113.1", ""); st != want {
			t.Fatalf("request %d: status %d, want %d", i, st, want)
		}
	}
	if st := get("203.0.113.2", ""); st != 200 {
		t.Fatalf("another IP: %d", st)
	}
	// Clients behind a trusted proxy are limited one by one, not the proxy.
	for i, want := range []int{200, 200, 429} {
		if st := get("10.0.0.1", "198.51.100.1"); st != want {
			t.Fatalf("forwarded request %d: status %d, want %d", i, st, want)
		}
	}
	if st := get("10.0.0.1", "198.51.100.2"); st != 200 {
		t.Fatalf("another client through the proxy: %d", st)
	}
	// IPv6 clients are limited by /64.
	get("2001:db8:1:2::1", "")
	get("2001:db8:1:2::2", "")
	if st := get("2001:db8:1:2::3", ""); st != 429 {
		t.Fatalf("third request from the same /64: %d, want 429", st)
	}
	clk.advance(time.Second)
	if st := get("203.0.113.1", ""); st != 200 {
		t.Fatalf("after refill: %d", st)
	}
	if got := testutil.ToFloat64(eventsRejected.WithLabelValues("rate_limited")) - rejected; got != 4 {
		t.Fatalf("rate_limited counter +%v, want +4", got)
	}
	if _, recs := sink.take(); len(recs) != 9 {
		t.Fatalf("%d records produced, want 9 (429s must not reach the sink)", len(recs))
	}
}

// newSiteLimited is a server limiting each site to one request at once
// and one more every 2 s, on a clock the test moves.
func newSiteLimited(t *testing.T) (*Server, *recordingSink, *fakeClock) {
	t.Helper()
	sink := &recordingSink{t: t}
	s, err := New(Config{RateLimitPerSite: 0.5, RateBurstPerSite: 1}, sink, nil, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	clk := &fakeClock{t: time.Unix(1e9, 0)}
	s.clock = clk.now
	return s, sink, clk
}

func TestRateLimitPerSite(t *testing.T) {
	s, sink, clk := newSiteLimited(t)
	get := func(q string) (int, string) {
		ctx := serveFrom(t, s, "203.0.113.1", "GET /i?"+q+" HTTP/1.1\r\nHost: gw\r\n\r\n")
		return ctx.Response.StatusCode(), string(ctx.Response.Header.Peek("Retry-After"))
	}
	if st, _ := get("sid=a"); st != 200 {
		t.Fatalf("first: %d", st)
	}
	if st, ra := get("sid=a&ev=2"); st != 429 || ra != "2" {
		t.Fatalf("second: %d Retry-After %q, want 429 and 2", st, ra)
	}
	if st, _ := get("sid=b"); st != 200 {
		t.Fatalf("other site: %d", st)
	}
	for i := 0; i < 5; i++ {
		if st, _ := get("ev=nosid"); st != 200 {
			t.Fatalf("no sid is not site-limited: %d", st)
		}
	}
	// The batch is refused whole, before any event is produced.
	ctx := serveFrom(t, s, "203.0.113.1", "POST /batch?sid=a HTTP/1.1\r\nHost: gw\r\nContent-Type: application/json\r\nContent-Length: 7\r\n\r\n[{},{}]")
	if ctx.Response.StatusCode() != 429 {
		t.Fatalf("batch: %d", ctx.Response.StatusCode())
	}
	if _, recs := sink.take(); len(recs) != 7 {
		t.Fatalf("%d records, want 7", len(recs))
	}
	clk.advance(2 * time.Second)
	if st, _ := get("sid=a"); st != 200 {
		t.Fatalf("after refill: %d", st)
	}
}

func TestRateLimitValidate(t *testing.T) {
	for _, c := range []struct {
		cfg Config
		ok  bool
	}{
		{Config{RateLimitPerIP: 10, RateBurstPerIP: 20, RateLimitPerSite: 1000}, true},
		{Config{RateLimitPerIP: -1}, false},
		{Config{RateBurstPerIP: 5}, false},
		{Config{RateLimitPerSite: 1, RateBurstPerSite: -1}, false},
		{Config{RateLimitMaxKeys: -1}, false},
	} {
		if err := c.cfg.Validate(); (err == nil) != c.ok {
			t.Errorf("%+v: Validate() = %v, want ok %v", c.cfg, err, c.ok)
		}
	}
}

func TestRateErrorRetryAfter(t *testing.T) {
	for _, c := range []struct {
		wait time.Duration
		want time.Duration
	}{{0, time.Second}, {time.Millisecond, time.Second}, {1500 * time.Millisecond, 2 * time.Second}, {10 * time.Minute, 10 * time.Minute}} {
		if got := rateError(errRateIP, c.wait).(retryAfterer).RetryAfter(); got != c.want {
			t.Errorf("wait %v: Retry-After %v, want %v", c.wait, got, c.want)
		}
	}
}

// TestRateLimitPerSiteSnowplow: a Snowplow tracker's GET names its site in
// aid; its sid is the visit's session id. The limit follows aid, so one
// application's visits share one bucket and a new session is not a new
// site.
func TestRateLimitPerSiteSnowplow(t *testing.T) {
	s, sink, _ := newSiteLimited(t)
	get := func(q string) int {
		ctx := serveFrom(t, s, "203.0.113.1", "GET /i?e=pv&p=web&tv=js-3.0&"+q+" HTTP/1.1\r\nHost: gw\r\n\r\n")
		return ctx.Response.StatusCode()
	}
	if st := get("aid=shop&sid=visit-1"); st != 200 {
		t.Fatalf("first: %d", st)
	}
	if st := get("aid=shop&sid=visit-2"); st != 429 {
		t.Fatalf("same aid, another session: %d, want 429", st)
	}
	if st := get("aid=blog&sid=visit-1"); st != 200 {
		t.Fatalf("another aid, a session seen before: %d, want 200", st)
	}
	// Without the tracker parameters, sid is the site, as for any pixel.
	if st := serveFrom(t, s, "203.0.113.1", "GET /i?aid=shop&sid=visit-1 HTTP/1.1\r\nHost: gw\r\n\r\n").Response.StatusCode(); st != 200 {
		t.Fatalf("a beacongate pixel with sid=visit-1: %d, want 200", st)
	}
	if _, recs := sink.take(); len(recs) != 3 {
		t.Fatalf("%d records, want 3", len(recs))
	}
}
