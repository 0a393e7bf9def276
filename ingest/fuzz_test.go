package ingest

import (
	"bufio"
	"bytes"
	"net"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/valyala/fasthttp"
	"go.uber.org/zap"
)

// FuzzHandler feeds arbitrary bytes to the server as one connection's
// input: nothing may panic, and no response may be a 5xx (a 503 only comes
// from the sink, which accepts everything here).
func FuzzHandler(f *testing.F) {
	for _, c := range benchRequests {
		f.Add(c.raw)
	}
	for _, s := range []string{
		"GET /i?uid=%zz HTTP/1.1\r\nHost: x\r\n\r\n",
		"POST /batch HTTP/1.1\r\nHost: x\r\nContent-Length: 9\r\n\r\n[1,{},[]]",
		"POST /i HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 5\r\n\r\n{\"a\":",
		"POST /i HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n{\"a\":\r\n2\r\n1}\r\n0\r\n\r\n",
		"OPTIONS /i HTTP/1.1\r\nHost: x\r\nOrigin: http://a\r\nAccess-Control-Request-Headers: x\r\n\r\n",
		"GET /i?a=1 HTTP/1.1\r\nHost: x\r\n\r\nGET /readyz HTTP/1.1\r\nHost: x\r\n\r\n",
		"\x16\x03\x01\x00\x05hello",
		"\r\nGET /i?sid=a&sid=b HTTP/1.1\r\nHost: x\r\n\r\n",
	} {
		f.Add([]byte(s))
	}
	s, err := New(Config{MaxBodyBytes: 64 << 10, MaxHeaderBytes: 8 << 10, MaxQueryBytes: 4 << 10}, &copySinkLocked{}, nil, zap.NewNop())
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		panics := testutil.ToFloat64(panicsTotal)
		c := &fuzzConn{r: bytes.NewReader(raw)}
		_ = s.srv.ServeConn(&sniffConn{Conn: c}) // as Serve wraps every plain connection
		if testutil.ToFloat64(panicsTotal) != panics {
			t.Fatalf("handler panicked on %q", raw)
		}
		br := bufio.NewReader(&c.w)
		for {
			var resp fasthttp.Response
			if err := resp.Read(br); err != nil {
				break
			}
			if resp.StatusCode() >= 500 {
				t.Fatalf("status %d for %q: %s", resp.StatusCode(), raw, resp.Body())
			}
		}
	})
}

type copySinkLocked struct{}

func (copySinkLocked) Produce(key, value []byte) error { return nil }

// fuzzConn is a net.Conn that reads the fuzz input and records the output.
type fuzzConn struct {
	net.Conn
	r *bytes.Reader
	w bytes.Buffer
}

func (c *fuzzConn) Read(p []byte) (int, error)       { return c.r.Read(p) }
func (c *fuzzConn) Write(p []byte) (int, error)      { return c.w.Write(p) }
func (c *fuzzConn) Close() error                     { return nil }
func (c *fuzzConn) LocalAddr() net.Addr              { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 8080} }
func (c *fuzzConn) RemoteAddr() net.Addr             { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2), Port: 5000} }
func (c *fuzzConn) SetDeadline(time.Time) error      { return nil }
func (c *fuzzConn) SetReadDeadline(time.Time) error  { return nil }
func (c *fuzzConn) SetWriteDeadline(time.Time) error { return nil }
