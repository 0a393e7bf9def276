package ingest

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/fasthttputil"
	"go.uber.org/zap"
)

// countingConn counts the deadlines set on the connection under it.
type countingConn struct {
	net.Conn
	reads, writes *atomic.Int64
}

func (c countingConn) SetReadDeadline(t time.Time) error {
	c.reads.Add(1)
	return c.Conn.SetReadDeadline(t)
}

func (c countingConn) SetWriteDeadline(t time.Time) error {
	c.writes.Add(1)
	return c.Conn.SetWriteDeadline(t)
}

// lazyPipe is a sniffConn (past its first-byte check) over one end of a
// net.Pipe, counting the deadlines armed on it, and the other end.
func lazyPipe(t *testing.T) (c *sniffConn, peer net.Conn, reads, writes *atomic.Int64) {
	a, b := net.Pipe()
	t.Cleanup(func() { a.Close(); b.Close() })
	reads, writes = new(atomic.Int64), new(atomic.Int64)
	return &sniffConn{Conn: countingConn{a, reads, writes}, checked: true}, b, reads, writes
}

// A later read deadline is only remembered: the earlier one stays armed,
// fires, and the read goes on until the deadline asked for.
func TestLazyReadDeadlineLater(t *testing.T) {
	c, _, reads, _ := lazyPipe(t)
	start := time.Now()
	_ = c.SetReadDeadline(start.Add(30 * time.Millisecond))
	want := start.Add(300 * time.Millisecond)
	for i := range 100 {
		_ = c.SetReadDeadline(want.Add(time.Duration(i-99) * time.Microsecond))
	}
	if n := reads.Load(); n != 1 {
		t.Fatalf("%d read deadlines armed for 101 asked, the later ones in order; want 1", n)
	}
	_, err := c.Read(make([]byte, 8))
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("read: %v, want a timeout", err)
	}
	if took := time.Since(start); took < 300*time.Millisecond {
		t.Errorf("the read timed out after %v, before the deadline asked for (300ms)", took)
	}
	if c.rd.rearms.Load() != 1 || reads.Load() != 2 {
		t.Errorf("%d re-arms, %d deadlines armed: the early deadline did not fire and get moved once", c.rd.rearms.Load(), reads.Load())
	}
}

// An earlier deadline is armed at once.
func TestLazyReadDeadlineEarlier(t *testing.T) {
	c, _, reads, _ := lazyPipe(t)
	_ = c.SetReadDeadline(time.Now().Add(30 * time.Second))
	start := time.Now()
	_ = c.SetReadDeadline(start.Add(50 * time.Millisecond))
	if reads.Load() != 2 {
		t.Fatalf("%d read deadlines armed, want 2", reads.Load())
	}
	if _, err := c.Read(make([]byte, 8)); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("read: %v, want a timeout", err)
	}
	if took := time.Since(start); took > 10*time.Second {
		t.Errorf("the read timed out after %v: the earlier deadline (50ms) was not armed", took)
	}
	if c.rd.rearms.Load() != 0 {
		t.Errorf("%d re-arms", c.rd.rearms.Load())
	}
}

// Data that arrives after the early deadline fired, before the one asked
// for, is read; clearing the deadline clears it when the armed one fires.
func TestLazyReadDeadlineData(t *testing.T) {
	c, peer, _, _ := lazyPipe(t)
	_ = c.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
	_ = c.SetReadDeadline(time.Time{}) // none: later than any
	go func() {
		time.Sleep(100 * time.Millisecond)
		_, _ = peer.Write([]byte("late"))
	}()
	buf := make([]byte, 8)
	n, err := c.Read(buf)
	if err != nil || string(buf[:n]) != "late" {
		t.Fatalf("read %q, %v", buf[:n], err)
	}
	if c.rd.rearms.Load() != 1 {
		t.Errorf("%d re-arms: the early deadline did not fire while the read waited", c.rd.rearms.Load())
	}
}

// A later write deadline: a write the peer does not read times out at
// the deadline asked for, not the armed one.
func TestLazyWriteDeadlineLater(t *testing.T) {
	c, _, _, writes := lazyPipe(t)
	start := time.Now()
	_ = c.SetWriteDeadline(start.Add(30 * time.Millisecond))
	_ = c.SetWriteDeadline(start.Add(250 * time.Millisecond))
	if writes.Load() != 1 {
		t.Fatalf("%d write deadlines armed, want 1", writes.Load())
	}
	if _, err := c.Write([]byte("nobody reads")); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("write: %v, want a timeout", err)
	}
	if took := time.Since(start); took < 250*time.Millisecond {
		t.Errorf("the write timed out after %v, before the deadline asked for (250ms)", took)
	}
	if c.wd.rearms.Load() != 1 {
		t.Errorf("%d re-arms", c.wd.rearms.Load())
	}
}

// TestKeepAliveDeadlinesArmedOnce: over one keep-alive connection the
// server asks for three deadlines per request (fasthttp: idle, read,
// write); the connection arms a handful in all.
func TestKeepAliveDeadlinesArmedOnce(t *testing.T) {
	s, err := New(Config{}, &recordingSink{t: t}, nil, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	ln := fasthttputil.NewInmemoryListener()
	reads, writes := new(atomic.Int64), new(atomic.Int64)
	go s.Serve(countingListener{ln, reads, writes})
	t.Cleanup(func() { _ = s.srv.Shutdown() })
	conn, err := ln.Dial()
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	const requests = 100
	resp := fasthttp.AcquireResponse()
	defer fasthttp.ReleaseResponse(resp)
	br := bufio.NewReader(conn)
	for i := range requests {
		if _, err := fmt.Fprintf(conn, "GET /i?ev=v&uid=u%d HTTP/1.1\r\nHost: gw\r\n\r\n", i); err != nil {
			t.Fatal(err)
		}
		if err := resp.Read(br); err != nil || resp.StatusCode() != 200 {
			t.Fatalf("request %d: %v, status %d", i, err, resp.StatusCode())
		}
	}
	// Without lazy arming: 2 read deadlines per request but the first
	// (199) and 1 write deadline each (100).
	if r, w := reads.Load(), writes.Load(); r > 4 || w > 2 {
		t.Errorf("%d requests armed %d read and %d write deadlines", requests, r, w)
	}
}

type countingListener struct {
	net.Listener
	reads, writes *atomic.Int64
}

func (l countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return c, err
	}
	return countingConn{c, l.reads, l.writes}, nil
}
