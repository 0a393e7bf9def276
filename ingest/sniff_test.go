package ingest

import (
	"bufio"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/valyala/fasthttp"
	"go.uber.org/zap"

	"github.com/beacongate/beacongate/internal/kafkatest"
)

// TestNotHTTPRefusedAtOnce: a connection whose first byte cannot start a
// request gets 400 not_http and is closed, with the read timeout far
// longer than the client waits (a 408 after it would fail the test), and
// nothing of it reaches fasthttp's parser. A request that may start so
// is served as before.
func TestNotHTTPRefusedAtOnce(t *testing.T) {
	ts := newTestServer(t, Config{ReadTimeout: time.Minute})
	before := testutil.ToFloat64(eventsRejected.WithLabelValues(reasonNotHTTP))
	for _, c := range []struct {
		name, raw string
		status    int
	}{
		{"TLS ClientHello", "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", 400},
		{"NUL", "\x00\x00\x00\x00", 400},
		{"space", " GET /i HTTP/1.1\r\n\r\n", 400},
		{"SSH banner", "\x7f\x45LF", 400},
		{"leading CRLF is allowed", "\r\nGET /i?uid=1 HTTP/1.1\r\nHost: gw\r\n\r\n", 200},
		{"a request", "GET /i?uid=1 HTTP/1.1\r\nHost: gw\r\n\r\n", 200},
	} {
		t.Run(c.name, func(t *testing.T) {
			conn, err := ts.ln.Dial()
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
			if _, err := conn.Write([]byte(c.raw)); err != nil {
				t.Fatal(err)
			}
			br := bufio.NewReader(conn)
			var resp fasthttp.Response
			if err := resp.Read(br); err != nil {
				t.Fatalf("no answer: %v", err)
			}
			if resp.StatusCode() != c.status {
				t.Fatalf("status %d %q, want %d", resp.StatusCode(), resp.Body(), c.status)
			}
			if c.status == 400 {
				if !strings.HasPrefix(string(resp.Body()), "not_http: ") || !resp.ConnectionClose() {
					t.Fatalf("body %q, close %v", resp.Body(), resp.ConnectionClose())
				}
				if _, err := br.ReadByte(); err != io.EOF {
					t.Fatalf("connection not closed after the refusal: %v", err)
				}
			}
		})
	}
	if got := testutil.ToFloat64(eventsRejected.WithLabelValues(reasonNotHTTP)) - before; got != 4 {
		t.Fatalf("not_http counted %v, want 4", got)
	}
}

func TestMayStartRequest(t *testing.T) {
	for c := 0; c < 256; c++ {
		want := c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || strings.IndexByte("!#$%&'*+-.^_`|~\r\n", byte(c)) >= 0
		if mayStartRequest(byte(c)) != want {
			t.Errorf("mayStartRequest(%#x) = %v", c, !want)
		}
	}
}

// TestConnectionLimitsAnswered: a connection past -http.concurrency or
// -http.max-conns-per-ip gets the gateway's answer (status, Retry-After,
// reason) in place of fasthttp's bare one, counted by reason, and is
// closed; the connection already open is served as before.
func TestConnectionLimitsAnswered(t *testing.T) {
	for _, c := range []struct {
		name   string
		cfg    Config
		status int
		reason string
	}{
		{"concurrency", Config{Concurrency: 1}, 503, reasonTooManyConns},
		{"per IP", Config{MaxConnsPerIP: 1}, 429, reasonTooManyConnsPerIP},
	} {
		t.Run(c.name, func(t *testing.T) {
			s, err := New(c.cfg, &recordingSink{t: t}, nil, zap.NewNop())
			if err != nil {
				t.Fatal(err)
			}
			// TCP, not an in-memory listener: fasthttp limits per IPv4 address.
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			go s.Serve(ln) // ends with Shutdown
			var conns []net.Conn
			t.Cleanup(func() {
				// Shutdown while fasthttp still reads a per-IP connection
				// races inside fasthttp (perIPConn.Close): let the server
				// see every connection closed first.
				for _, c := range conns {
					c.Close()
				}
				kafkatest.WaitFor(t, "connections closed", 5*time.Second, func() bool { return s.srv.GetOpenConnectionsCount() == 0 })
				_ = s.srv.Shutdown()
			})
			request := func(conn net.Conn) (*fasthttp.Response, *bufio.Reader) {
				t.Helper()
				_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
				if _, err := conn.Write([]byte("GET /i?uid=1 HTTP/1.1\r\nHost: gw\r\n\r\n")); err != nil {
					t.Fatal(err)
				}
				br := bufio.NewReader(conn)
				resp := new(fasthttp.Response)
				if err := resp.Read(br); err != nil {
					t.Fatalf("no answer: %v", err)
				}
				return resp, br
			}
			first, err := net.Dial("tcp", ln.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			conns = append(conns, first)
			if resp, _ := request(first); resp.StatusCode() != 200 {
				t.Fatalf("first connection: %d", resp.StatusCode())
			}
			before := testutil.ToFloat64(eventsRejected.WithLabelValues(c.reason))
			second, err := net.Dial("tcp", ln.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			conns = append(conns, second)
			resp, br := request(second)
			if resp.StatusCode() != c.status || string(resp.Header.Peek("Retry-After")) != "1" ||
				!strings.HasPrefix(string(resp.Body()), c.reason+": ") || !resp.ConnectionClose() {
				t.Fatalf("second connection: %d Retry-After %q close %v body %q", resp.StatusCode(),
					resp.Header.Peek("Retry-After"), resp.ConnectionClose(), resp.Body())
			}
			if _, err := br.ReadByte(); err != io.EOF {
				t.Fatalf("more than one answer, or not closed: %v", err)
			}
			if got := testutil.ToFloat64(eventsRejected.WithLabelValues(c.reason)) - before; got != 1 {
				t.Fatalf("%s counted %v, want 1", c.reason, got)
			}
			if resp, _ := request(first); resp.StatusCode() != 200 {
				t.Fatalf("first connection after the refusal: %d", resp.StatusCode())
			}
		})
	}
}
