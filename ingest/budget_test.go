package ingest

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/valyala/fasthttp"
	"go.uber.org/zap"
)

// openBody starts a POST with a Content-Length of n and sends part of its
// body, so the gateway holds its reservation until the rest arrives.
func openBody(t *testing.T, ts *testServer, n int) net.Conn {
	t.Helper()
	c, err := ts.ln.Dial()
	if err != nil {
		t.Fatal(err)
	}
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := fmt.Fprintf(c, "POST /i HTTP/1.1\r\nHost: gw\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n{", n); err != nil {
		t.Fatal(err)
	}
	return c
}

func readResp(t *testing.T, c net.Conn) *fasthttp.Response {
	t.Helper()
	var resp fasthttp.Response
	if err := resp.Read(bufio.NewReader(c)); err != nil {
		t.Fatalf("reading response: %v", err)
	}
	return &resp
}

// waitUsed waits (bounded) until the budget holds want bytes.
func waitUsed(t *testing.T, b *budget, want int64) {
	t.Helper()
	for i := 0; i < 200 && b.used.Load() != want; i++ {
		time.Sleep(10 * time.Millisecond)
	}
	if got := b.used.Load(); got != want {
		t.Fatalf("budget holds %d bytes, want %d", got, want)
	}
}

// TestBudgetRefusesBodies: bodies in flight are reserved before they are
// read; past the budget a body is refused unread with 503 memory_budget
// and Retry-After (counted), a request without a body is unaffected, and
// the budget is whole again once the requests are done.
func TestBudgetRefusesBodies(t *testing.T) {
	const body = 64 << 10
	ts := newTestServer(t, Config{MaxBodyBytes: body, MaxInflatedBytes: body, MaxInflightBytes: 4 * body})
	before := testutil.ToFloat64(eventsRejected.WithLabelValues("memory_budget"))
	var held []net.Conn
	for i := 0; i < 4; i++ {
		held = append(held, openBody(t, ts, body))
	}
	waitUsed(t, ts.mem, 4*body)

	c := openBody(t, ts, body)
	defer c.Close()
	resp := readResp(t, c)
	if resp.StatusCode() != 503 || !bytes.HasPrefix(resp.Body(), []byte("memory_budget: ")) ||
		string(resp.Header.Peek("Retry-After")) != "1" || !resp.ConnectionClose() {
		t.Fatalf("over the budget: %d %q Retry-After %q close %v", resp.StatusCode(), resp.Body(), resp.Header.Peek("Retry-After"), resp.ConnectionClose())
	}
	if r := ts.do(t, "GET", "/i?uid=1", "", ""); r.status != 200 {
		t.Fatalf("pixel while the budget is full: %d", r.status)
	}
	if got := testutil.ToFloat64(eventsRejected.WithLabelValues("memory_budget")) - before; got != 1 {
		t.Fatalf("memory_budget counted %v, want 1", got)
	}
	// Finish one body: answered, its bytes released.
	rest := `"a":"` + strings.Repeat("x", body-8) + `"}`
	if _, err := held[0].Write([]byte(rest)); err != nil {
		t.Fatal(err)
	}
	if resp := readResp(t, held[0]); resp.StatusCode() != 204 {
		t.Fatalf("held body: %d %q", resp.StatusCode(), resp.Body())
	}
	waitUsed(t, ts.mem, 3*body)
	for _, c := range held {
		c.Close() // mid-body: fasthttp's read error handler releases them
	}
	waitUsed(t, ts.mem, 0)
	if r := ts.do(t, "POST", "/i", "application/json", `{"a":1}`); r.status != 204 {
		t.Fatalf("POST after the budget emptied: %d %s", r.status, r.body)
	}
	waitUsed(t, ts.mem, 0)
}

// TestBudgetInflation: an inflate buffer that does not fit in the budget
// is 503 memory_budget, not a bigger allocation; with room, the same bomb
// is 413 inflated_too_large; nothing stays reserved afterwards.
func TestBudgetInflation(t *testing.T) {
	const body, inflated = 64 << 10, 1 << 20
	ts := newTestServer(t, Config{MaxBodyBytes: body, MaxInflatedBytes: inflated, MaxInflightBytes: 2*body + 2*inflated})
	var bomb bytes.Buffer
	zw := gzip.NewWriter(&bomb)
	zw.Write(make([]byte, 4*inflated))
	zw.Close()
	post := func() reply {
		return ts.do(t, "POST", "/i", "application/json", bomb.String(), "Content-Encoding", "gzip")
	}
	if !ts.mem.tryAdd(2 * inflated) { // another request's inflation, say
		t.Fatal("could not pre-reserve")
	}
	if r := post(); r.status != 503 || !strings.HasPrefix(r.body, "memory_budget: ") || r.headers["Retry-After"] != "1" {
		t.Fatalf("inflation over the budget: %d %q", r.status, r.body)
	}
	waitUsed(t, ts.mem, 2*inflated)
	ts.mem.release(2 * inflated)
	if r := post(); r.status != 413 || !strings.HasPrefix(r.body, "inflated_too_large: ") {
		t.Fatalf("inflation within the budget: %d %q", r.status, r.body)
	}
	waitUsed(t, ts.mem, 0)
}

// TestBudgetSweepsLeftBehind: a request whose headers were reserved but
// that reached no handler (a client closing inside a chunked body can make
// fasthttp drop the connection silently) does not hold its bytes for
// good: the next request on its RequestCtx replaces the entry, and
// entries older than the read timeout are swept when a reservation would
// otherwise fail (but not before: they may still be reading).
func TestBudgetSweepsLeftBehind(t *testing.T) {
	const body = 64 << 10
	ts := newTestServer(t, Config{MaxBodyBytes: body, MaxInflatedBytes: body, MaxInflightBytes: 4 * body})
	ts.mem.stale = 200 * time.Millisecond // the read timeout + 1s, shortened
	reserve := func(h *fasthttp.RequestHeader) bool {
		h.SetMethod("POST")
		h.SetContentLength(body)
		return ts.headerReceived(h).MaxRequestBodySize == 0
	}
	var hs [4]fasthttp.RequestHeader
	for i := range hs {
		if !reserve(&hs[i]) {
			t.Fatalf("reservation %d refused", i)
		}
	}
	if !reserve(&hs[0]) { // the same RequestCtx again: replaces, not adds
		t.Fatal("a RequestCtx's next request refused")
	}
	waitUsed(t, ts.mem, 4*body)
	var h5 fasthttp.RequestHeader
	if reserve(&h5) {
		t.Fatal("a fifth body admitted while four may still be reading")
	}
	ts.mem.mu.Lock()
	delete(ts.mem.held, &h5)
	ts.mem.mu.Unlock()
	time.Sleep(300 * time.Millisecond)
	if r := ts.do(t, "POST", "/i", "application/json", `{"a":1}`); r.status != 204 {
		t.Fatalf("POST with only left-behind reservations: %d %s", r.status, r.body)
	}
	waitUsed(t, ts.mem, 0)
}

func TestBudgetValidate(t *testing.T) {
	for _, c := range []struct {
		cfg Config
		ok  bool
	}{
		{Config{}, true},
		{Config{MaxBodyBytes: 64 << 20}, true}, // the default grows to one maximal request
		{Config{MaxInflightBytes: 10<<20 - 1}, false},
		{Config{MaxInflightBytes: 10 << 20}, true},
		{Config{MaxInflightBytes: -1}, false},
		{Config{Concurrency: -1}, false},
	} {
		if err := c.cfg.Validate(); (err == nil) != c.ok {
			t.Errorf("%+v: Validate() = %v, want ok %v", c.cfg, err, c.ok)
		}
	}
	if d := (Config{}).withDefaults(); d.MaxInflightBytes != 256<<20 || d.Concurrency != 10_000 {
		t.Fatalf("defaults: %d bytes, %d connections", d.MaxInflightBytes, d.Concurrency)
	}
}

// BenchmarkBudget is what the memory budget adds to a request with a
// body: the reservation when its headers arrive, taking it in Handle and
// releasing it (one mutex and map operation each; none for a pixel).
func BenchmarkBudget(b *testing.B) {
	s, err := New(Config{}, &discardSink{}, nil, zap.NewNop())
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		ctx := new(fasthttp.RequestCtx)
		ctx.Request.Header.SetMethod("POST")
		ctx.Request.Header.SetContentLength(900)
		for pb.Next() {
			if s.headerReceived(&ctx.Request.Header).MaxRequestBodySize != 0 {
				b.Fatal("refused")
			}
			n, refused := s.takeBody(ctx, false)
			if refused || n != 1024 {
				b.Fatalf("took %d, refused %v", n, refused)
			}
			s.mem.release(n)
		}
	})
}
