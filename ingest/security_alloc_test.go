//go:build !race

package ingest

import (
	"bytes"
	"fmt"
	"net"
	"testing"

	"go.uber.org/zap"
)

// allocsPerRequest is TestHotPathAllocs' measurement for one request.
func allocsPerRequest(t *testing.T, s *Server, peer net.IP, raw []byte, status int) float64 {
	t.Helper()
	r := newReplayer(s, peer)
	return testing.AllocsPerRun(200, func() {
		if st, err := r.serve(raw); err != nil || st != status {
			t.Fatalf("status %d (%v, %s), want %d", st, err, r.body(), status)
		}
	})
}

// TestSecurityFeaturesAllocs: trusted proxies, rate limits (for a known
// key), the site allow-list and gzip bodies keep the hot path at 0
// allocations once pools are warm.
func TestSecurityFeaturesAllocs(t *testing.T) {
	cfg := Config{
		TrustedProxies: []string{"10.0.0.0/8", "2001:db8:ffff::/48"},
		RateLimitPerIP: 1e6, RateBurstPerIP: 1e6, RateLimitPerSite: 1e6, RateBurstPerSite: 1e6,
		Sites: map[string]string{"site-1234": "", "keyed": "k3y"},
	}
	s, err := New(cfg, &copySink{}, nil, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	proxy := net.IPv4(10, 1, 2, 3)
	for _, c := range benchRequests {
		raw := bytes.Replace(c.raw, []byte("POST /batch "), []byte("POST /batch?sid=site-1234 "), 1)
		raw = bytes.Replace(raw, []byte("Host: "), []byte("X-Forwarded-For: 6.6.6.6, 198.51.100.4, 10.0.0.9\r\nForwarded: for=\"[2001:db8::7]:4711\";proto=https, for=10.0.0.1\r\nHost: "), 1)
		if n := allocsPerRequest(t, s, proxy, raw, c.status); n != 0 {
			t.Errorf("%s behind a trusted proxy: %v allocations per request, want 0", c.name, n)
		}
	}
	keyed := []byte("GET /i?sid=keyed&key=k3y&ev=x HTTP/1.1\r\nHost: gw\r\nX-Real-IP: 198.51.100.4\r\n\r\n")
	if n := allocsPerRequest(t, s, proxy, keyed, 200); n != 0 {
		t.Errorf("keyed site: %v allocations per request, want 0", n)
	}
	body := gzipped(t, []byte(`{"ev":"page_view","url":"https://example.com/"}`))
	gz := fmt.Appendf(nil, "POST /i?sid=site-1234 HTTP/1.1\r\nHost: gw\r\nContent-Type: application/json\r\nContent-Encoding: gzip\r\nContent-Length: %d\r\n\r\n%s", len(body), body)
	if n := allocsPerRequest(t, s, net.IPv4(198, 51, 100, 7), gz, 204); n != 0 {
		t.Errorf("gzip beacon: %v allocations per request, want 0", n)
	}
	dbody := zlibbed(t, []byte(`[{"ev":"a"},{"ev":"b"}]`))
	df := fmt.Appendf(nil, "POST /batch?sid=site-1234 HTTP/1.1\r\nHost: gw\r\nContent-Type: application/json\r\nContent-Encoding: deflate\r\nContent-Length: %d\r\n\r\n%s", len(dbody), dbody)
	if n := allocsPerRequest(t, s, net.IPv4(198, 51, 100, 7), df, 200); n != 0 {
		t.Errorf("deflate batch: %v allocations per request, want 0", n)
	}
}

// TestRejectionAllocs: floods of 429 and 403 do not allocate per request
// beyond what fail() does for every rejection.
func TestRejectionAllocs(t *testing.T) {
	s, err := New(Config{RateLimitPerIP: 1, RateBurstPerIP: 1, Sites: map[string]string{"a": ""}}, &copySink{}, nil, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	base := allocsPerRequest(t, s, net.IPv4(198, 51, 100, 8), []byte("GET /nope HTTP/1.1\r\nHost: gw\r\n\r\n"), 404)
	serveFrom(t, s, "198.51.100.7", "GET /i?sid=a HTTP/1.1\r\nHost: gw\r\n\r\n") // takes the only token
	limited := allocsPerRequest(t, s, net.IPv4(198, 51, 100, 7), []byte("GET /i?sid=a HTTP/1.1\r\nHost: gw\r\n\r\n"), 429)
	s2, _ := New(Config{Sites: map[string]string{"a": ""}}, &copySink{}, nil, zap.NewNop())
	forbidden := allocsPerRequest(t, s2, net.IPv4(198, 51, 100, 7), []byte("GET /i?sid=b HTTP/1.1\r\nHost: gw\r\n\r\n"), 403)
	t.Logf("allocations: 404 %v, 429 %v, 403 %v", base, limited, forbidden)
	if limited > base+1 || forbidden > base {
		t.Errorf("rejections allocate more than a 404 (%v): 429 %v, 403 %v", base, limited, forbidden)
	}
}

// BenchmarkHandlerSecured is BenchmarkHandler behind a trusted proxy with
// rate limits (never hit) and the site allow-list on.
func BenchmarkHandlerSecured(b *testing.B) {
	cfg := Config{
		TrustedProxies: []string{"10.0.0.0/8"},
		RateLimitPerIP: 1e9, RateBurstPerIP: 1e9, RateLimitPerSite: 1e9, RateBurstPerSite: 1e9,
		Sites: map[string]string{"site-1234": ""},
	}
	for _, c := range benchRequests {
		raw := bytes.Replace(c.raw, []byte("POST /batch "), []byte("POST /batch?sid=site-1234 "), 1)
		raw = bytes.Replace(raw, []byte("Host: "), []byte("X-Forwarded-For: 198.51.100.4, 10.0.0.9\r\nHost: "), 1)
		b.Run(c.name, func(b *testing.B) {
			s, err := New(cfg, &discardSink{}, nil, zap.NewNop())
			if err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			b.SetBytes(int64(len(raw)))
			b.RunParallel(func(pb *testing.PB) {
				r := newReplayer(s, net.IPv4(10, 1, 2, 3))
				for pb.Next() {
					if st, err := r.serve(raw); err != nil || st != c.status {
						b.Fatalf("status %d (%v): %s", st, err, r.body())
					}
				}
			})
		})
	}
}
