package main

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"crypto/tls"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
	"go.uber.org/zap"

	"github.com/beacongate/beacongate/internal/kafka/embedded"
)

// TestHostileInput sends a corpus of hostile raw requests to the real
// binary: each gets its expected answer (never a 5xx), nothing hangs past
// its deadline, and the process is still serving at the end with no
// recovered panic.
func TestHostileInput(t *testing.T) {
	b, err := embedded.Start(embedded.Config{Listen: "127.0.0.1:0", Topics: []string{"beacons"}}, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	g := startGateway(t, "-kafka.brokers", b.Addr(), "-http.read-timeout", "2s")

	var bomb bytes.Buffer
	zw := gzip.NewWriter(&bomb)
	zeros := make([]byte, 1<<20)
	for i := 0; i < 64; i++ { // 64 MiB of zeros, ~64 KiB compressed
		zw.Write(zeros)
	}
	zw.Close()
	post := func(path, ctype, extra, body string) string {
		return fmt.Sprintf("POST %s HTTP/1.1\r\nHost: x\r\nContent-Type: %s\r\n%sContent-Length: %d\r\n\r\n%s", path, ctype, extra, len(body), body)
	}
	deep := strings.Repeat(`{"a":`, 10000) + "1" + strings.Repeat("}", 10000)
	var manyHeaders strings.Builder
	for i := 0; i < 3000; i++ {
		fmt.Fprintf(&manyHeaders, "X-H%d: v\r\n", i)
	}
	cases := []struct {
		name string
		raw  string
		want []int // acceptable statuses; 0 = the server may close without answering
	}{
		{"oversized header", "GET /i?uid=1 HTTP/1.1\r\nHost: x\r\nX-Big: " + strings.Repeat("a", 40000) + "\r\n\r\n", []int{431}},
		{"numerous headers", "GET /i?uid=1 HTTP/1.1\r\nHost: x\r\n" + manyHeaders.String() + "\r\n", []int{431}},
		{"10K parameters in a form", post("/i", "application/x-www-form-urlencoded", "", strings.Repeat("a=1&", 10000)), []int{400}},
		{"long query", "GET /i?" + strings.Repeat("a=1&", 3000) + " HTTP/1.1\r\nHost: x\r\n\r\n", []int{414}},
		{"invalid UTF-8", "GET /i?uid=%C3%28 HTTP/1.1\r\nHost: x\r\n\r\n", []int{400}},
		{"NUL byte", "GET /i?uid=a%00b HTTP/1.1\r\nHost: x\r\n\r\n", []int{400}},
		{"raw NUL in the request line", "GET /i?uid=a\x00b HTTP/1.1\r\nHost: x\r\n\r\n", []int{400}},
		{"CRLF injection in a parameter", "GET /i?uid=a%0D%0ASet-Cookie:%20pwned=1 HTTP/1.1\r\nHost: x\r\nX-Request-Id: a\r\n\r\n", []int{200}},
		{"negative Content-Length", "POST /i HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: -5\r\n\r\n{}", []int{400}},
		{"lying Content-Length", "POST /i HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"a\":1}", []int{408, 400, 0}},
		{"bad chunk size", "POST /i HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n", []int{400}},
		{"Content-Length with Transfer-Encoding", "POST /i HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n7\r\n{\"a\":1}\r\n0\r\n\r\n", []int{400, 204}},
		{"gzip bomb", post("/i", "application/json", "Content-Encoding: gzip\r\n", bomb.String()), []int{413}},
		{"deeply nested JSON", post("/i", "application/json", "", deep), []int{400}},
		{"100K-event batch", post("/batch", "application/json", "", "["+strings.Repeat("{},", 99999)+"{}]"), []int{413}},
		{"unknown method", "BREW /i HTTP/1.1\r\nHost: x\r\n\r\n", []int{405}},
		{"binary first bytes (a TLS record), refused before the read timeout", "\x16\x03\x01\x00\x05hello", []int{400}},
		{"absolute URI to another host", "GET http://evil.example/i?uid=1 HTTP/1.1\r\nHost: x\r\n\r\n", []int{200}},
		{"path traversal", "GET /../../etc/passwd HTTP/1.1\r\nHost: x\r\n\r\n", []int{404, 400}},
		{"metrics on the public port", "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n", []int{404}},
		{"pprof on the public port", "GET /debug/pprof/ HTTP/1.1\r\nHost: x\r\n\r\n", []int{404}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			status, hdr := rawOnce(t, g.http, []byte(c.raw))
			ok := false
			for _, w := range c.want {
				ok = ok || w == status
			}
			if !ok || status >= 500 {
				t.Fatalf("status %d, want one of %v", status, c.want)
			}
			if strings.Contains(strings.ToLower(hdr), "pwned") {
				t.Fatalf("injected header in the response:\n%s", hdr)
			}
		})
	}

	t.Run("TLS handshake on the plain port", func(t *testing.T) {
		c, err := net.DialTimeout("tcp", g.http, 2*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		tc := tls.Client(c, &tls.Config{InsecureSkipVerify: true}) // the point is a handshake to a plain port
		_ = tc.SetDeadline(time.Now().Add(5 * time.Second))
		if err := tc.Handshake(); err == nil {
			t.Fatalf("a TLS handshake on the plain port succeeded")
		}
	})
	t.Run("garbage after a good pipelined request", func(t *testing.T) {
		c, err := net.DialTimeout("tcp", g.http, 2*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		c.Write([]byte("GET /i?uid=ok HTTP/1.1\r\nHost: x\r\n\r\n\x16\x03\x01garbage\r\n\r\n"))
		br := bufio.NewReader(c)
		var first, second fasthttp.Response
		if err := first.Read(br); err != nil || first.StatusCode() != 200 {
			t.Fatalf("the good request: %v %d", err, first.StatusCode())
		}
		if err := second.Read(br); err == nil && second.StatusCode() >= 500 {
			t.Fatalf("the garbage got %d", second.StatusCode())
		}
	})

	if st, _, _ := get(t, "http://"+g.http+"/healthz"); st != 200 {
		t.Fatalf("not serving after the corpus: %d", st)
	}
	if n := metric(t, g, "beacongate_http_panics_total"); n != 0 {
		t.Fatalf("%v handler panics recovered", n)
	}
	if code := g.stop(t); code != 0 {
		t.Fatalf("exit code %d", code)
	}
}

// rawOnce writes raw on a new connection and reads one response: its
// status (0 if the server closed without one) and its header text.
func rawOnce(t *testing.T, addr string, raw []byte) (int, string) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	go c.Write(raw) // the server may answer and close before reading it all
	var resp fasthttp.Response
	if err := resp.Read(bufio.NewReader(c)); err != nil {
		if ne, ok := err.(net.Error); ok && ne.Timeout() {
			t.Fatalf("no answer within 10s: the server hung")
		}
		return 0, ""
	}
	return resp.StatusCode(), resp.Header.String()
}
