package ingest

import (
	"bytes"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"strconv"
	"sync/atomic"
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

// sniffConn checks the first byte read from the connection, and puts the
// gateway's answer in place of fasthttp's refusals (below).
type sniffConn struct {
	net.Conn
	checked bool // only the serving goroutine reads: no lock
	// refused: this connection was refused (not_http, or a swapped
	// fasthttp refusal); its later writes are dropped and Close lingers.
	// Atomic: Server.Shutdown may close a connection from its own goroutine.
	refused atomic.Bool
	// rd and wd arm fasthttp's read and write deadlines lazily
	// (deadline.go).
	rd, wd lazyDeadline
}

func (c *sniffConn) SetReadDeadline(t time.Time) error {
	if c.rd.set(t) {
		return c.Conn.SetReadDeadline(t)
	}
	return nil
}

func (c *sniffConn) SetWriteDeadline(t time.Time) error {
	if c.wd.set(t) {
		return c.Conn.SetWriteDeadline(t)
	}
	return nil
}

func (c *sniffConn) SetDeadline(t time.Time) error {
	return errors.Join(c.SetReadDeadline(t), c.SetWriteDeadline(t))
}

// read and write are the connection's, retried once a lazily armed
// deadline fired before the one asked for (deadline.go).
func (c *sniffConn) read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	for n == 0 && err != nil && c.rd.refire(err, c.Conn.SetReadDeadline) {
		n, err = c.Conn.Read(p)
	}
	return n, err
}

func (c *sniffConn) write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	for err != nil && n < len(p) && c.wd.refire(err, c.Conn.SetWriteDeadline) {
		var m int
		m, err = c.Conn.Write(p[n:])
		n += m
	}
	return n, err
}

// Connections fasthttp refuses before it reads anything: past
// -http.concurrency (503) and past -http.max-conns-per-ip (429). Its own
// answers carry neither Retry-After nor a reason and are counted nowhere
// of ours, so a client cannot tell when to come back and an operator
// cannot see them. An HTTP server writes nothing before it has read a
// request but such refusals, so a write on a connection not yet read
// from that starts with one of these status lines is one of them;
// fasthttp then closes the connection (Server.Serve, wrapPerIPConn). The
// accept loop writes it, before any goroutine serves the connection.
const (
	reasonTooManyConns      = "too_many_connections"
	reasonTooManyConnsPerIP = "too_many_connections_per_ip"
)

type fastRefusal struct {
	prefix   []byte // fasthttp's status line
	reason   string
	status   int
	response []byte // ours, whole
}

var fastRefusals = []fastRefusal{
	newFastRefusal(fasthttp.StatusServiceUnavailable, reasonTooManyConns,
		"the gateway serves as many connections as -http.concurrency allows; retry shortly"),
	newFastRefusal(fasthttp.StatusTooManyRequests, reasonTooManyConnsPerIP,
		"this address has as many connections open as -http.max-conns-per-ip allows; reuse one, or retry shortly"),
}

func newFastRefusal(status int, reason, why string) fastRefusal {
	line := "HTTP/1.1 " + strconv.Itoa(status) + " " + fasthttp.StatusMessage(status)
	body := reason + ": " + why + "\n"
	return fastRefusal{
		prefix: []byte(line + "\r\n"),
		reason: reason,
		status: status,
		response: []byte(line + "\r\nServer: beacongate\r\nContent-Type: text/plain; charset=utf-8\r\nRetry-After: 1\r\nContent-Length: " +
			strconv.Itoa(len(body)) + "\r\nConnection: close\r\n\r\n" + body),
	}
}

// A refused connection is closed gracefully: its write side first, then
// what the client still sends is read and dropped for up to
// refusedLinger. Closing a socket with unread bytes sends a reset, and a
// reset that reaches the client before it read the answer makes its
// kernel drop the answer: the client would see "connection reset", not
// the status and Retry-After. At most refusedLingerMax connections linger
// at once (a flood of refusals must not pile up goroutines); past it they
// are closed at once, as fasthttp would.
const (
	refusedLinger    = time.Second
	refusedLingerMax = 256
	refusedDrainMax  = 64 << 10
)

var refusedLingering = make(chan struct{}, refusedLingerMax)

func (c *sniffConn) Close() error {
	cw, tcp := c.Conn.(interface{ CloseWrite() error })
	if !c.refused.Load() || !tcp {
		return c.Conn.Close()
	}
	select {
	case refusedLingering <- struct{}{}:
	default:
		return c.Conn.Close()
	}
	go func() {
		defer func() { <-refusedLingering }()
		_ = cw.CloseWrite()
		_ = c.Conn.SetReadDeadline(time.Now().Add(refusedLinger))
		_, _ = io.Copy(io.Discard, io.LimitReader(c.Conn, refusedDrainMax))
		_ = c.Conn.Close()
	}()
	return nil
}

func (c *sniffConn) Write(p []byte) (int, error) {
	if c.checked {
		return c.write(p)
	}
	if c.refused.Load() {
		return len(p), nil // the rest of fasthttp's refusal
	}
	for _, r := range fastRefusals {
		if bytes.HasPrefix(p, r.prefix) {
			c.refused.Store(true)
			_ = c.SetWriteDeadline(time.Now().Add(notHTTPWriteTimeout))
			_, _ = c.write(r.response)
			countRejected(r.reason, 1)
			countRequest(routeOther, r.status)
			return len(p), nil
		}
	}
	return c.write(p)
}

func (c *sniffConn) Read(p []byte) (int, error) {
	n, err := c.read(p)
	if c.checked || n == 0 {
		return n, err
	}
	c.checked = true
	if mayStartRequest(p[0]) {
		return n, err
	}
	_ = c.SetWriteDeadline(time.Now().Add(notHTTPWriteTimeout))
	_, _ = c.write(notHTTPResponse)
	c.refused.Store(true)
	countRejected(reasonNotHTTP, 1)
	countRequest(routeOther, fasthttp.StatusBadRequest)
	// fasthttp closes a connection whose first read ends, without an
	// answer of its own.
	return 0, io.EOF
}
