package ingest

import (
	"crypto/tls"
	"io"
	"net"
	"strconv"
	"time"

	"github.com/valyala/fasthttp"
)

// Bytes that cannot be HTTP are refused at once (docs/security.md). A TLS
// ClientHello or any binary on the plain port would otherwise hold its
// connection (a slot of Concurrency, a read buffer) for the whole read
// timeout and then get 408. The first byte a client sends must be able to
// start a request line: a method's token character, or the empty line
// (CRLF) RFC 9112 lets a server skip. Otherwise the connection gets 400
// not_http and is closed, without fasthttp reading further.

const reasonNotHTTP = "not_http"

// notHTTPResponse is the whole answer, built once.
var notHTTPResponse = func() []byte {
	body := reasonNotHTTP + ": the first bytes cannot start an HTTP request (TLS on the plain port?)\n"
	return []byte("HTTP/1.1 400 Bad Request\r\nServer: beacongate\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: " +
		strconv.Itoa(len(body)) + "\r\nConnection: close\r\n\r\n" + body)
}()

// notHTTPWriteTimeout bounds writing the refusal to a client that does not read.
const notHTTPWriteTimeout = time.Second

// tchar marks the bytes of an RFC 9110 token (a method is one).
var tchar = func() (t [256]bool) {
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for c := 'a'; c <= 'z'; c++ {
		t[c], t[c-'a'+'A'] = true, true
	}
	for _, c := range "!#$%&'*+-.^_`|~" {
		t[c] = true
	}
	return t
}()

// mayStartRequest says whether c can be the first byte of an HTTP/1.x request.
func mayStartRequest(c byte) bool { return tchar[c] || c == '\r' || c == '\n' }

// sniffListener wraps the plain listener's connections in sniffConn. TLS
// connections are left as they are: the handshake already refuses
// non-TLS bytes at once, and fasthttp must see the *tls.Conn.
type sniffListener struct{ net.Listener }

func (l sniffListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return c, err
	}
	if _, ok := c.(*tls.Conn); ok {
		return c, nil
	}
	return &sniffConn{Conn: c}, nil
}

// sniffConn checks the first byte read from the connection.
type sniffConn struct {
	net.Conn
	checked bool // only the serving goroutine reads: no lock
}

func (c *sniffConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if c.checked || n == 0 {
		return n, err
	}
	c.checked = true
	if mayStartRequest(p[0]) {
		return n, err
	}
	_ = c.Conn.SetWriteDeadline(time.Now().Add(notHTTPWriteTimeout))
	_, _ = c.Conn.Write(notHTTPResponse)
	countRejected(reasonNotHTTP, 1)
	countRequest(routeOther, fasthttp.StatusBadRequest)
	// fasthttp closes a connection whose first read ends, without an
	// answer of its own.
	return 0, io.EOF
}
