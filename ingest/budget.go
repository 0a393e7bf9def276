package ingest

import (
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"github.com/valyala/fasthttp"

	"github.com/beacongate/beacongate/internal/status"
)

// The memory budget (docs/security.md). A request may hold a body of up to
// MaxBodyBytes (fasthttp allocates the declared Content-Length before
// reading it) and inflate it to MaxInflatedBytes; without a bound, a few
// hundred connections sending maximal gzip bodies take gigabytes. So the
// bytes of bodies and inflate buffers in flight share one budget,
// Config.MaxInflightBytes:
//
//   - a body is reserved when its headers arrive (fasthttp's
//     HeaderReceived), before fasthttp allocates it: the declared length
//     rounded up to a power of two as fasthttp allocates it, or twice
//     MaxBodyBytes (so rounded) for a chunked body, which grows. Past the budget the body is not
//     read: the answer is 503 memory_budget with Retry-After, and the
//     connection is closed;
//   - an inflate buffer is reserved as it grows (every buffer it grew
//     through, as the garbage is not freed before the next GC, and the
//     pooled buffer it starts from); past the budget, the same 503.
//
// Both are released when the request's handler returns. Requests without
// a body (the pixel, the click) never touch the budget.
//
// HeaderReceived sees only the request header, so the body's reservation
// is kept in a map by the header's address (one per connection's
// RequestCtx) until Handle or the read-error handler takes it. A request
// that reaches neither (a client that closes inside a chunked body) leaves
// its entry behind: the next request on that RequestCtx replaces it, and
// entries older than the read timeout, which bounds reading a body, are
// swept whenever a reservation fails.

var errMemoryBudget = status.Retry(http.StatusServiceUnavailable, "memory_budget",
	"the gateway holds as many request bodies as its memory budget allows (-http.max-inflight-bytes); retry", time.Second)

var inflightBytes = promauto.NewGauge(prometheus.GaugeOpts{
	Name: "beacongate_http_inflight_bytes",
	Help: "Bytes of request bodies and inflate buffers reserved in the memory budget (-http.max-inflight-bytes).",
})

// budget counts reserved bytes against a limit.
type budget struct {
	limit int64
	used  atomic.Int64
	stale time.Duration // an entry of held older than this is left behind

	mu   sync.Mutex
	held map[*fasthttp.RequestHeader]hold
}

// hold is a body's reservation; n < 0 marks a body refused.
type hold struct {
	n  int64
	at time.Time
}

func newBudget(limit int64, readTimeout time.Duration) *budget {
	return &budget{limit: limit, stale: readTimeout + time.Second, held: map[*fasthttp.RequestHeader]hold{}}
}

// tryAdd reserves n bytes if they fit.
func (b *budget) tryAdd(n int64) bool {
	for {
		u := b.used.Load()
		if u+n > b.limit {
			return false
		}
		if b.used.CompareAndSwap(u, u+n) {
			inflightBytes.Add(float64(n))
			return true
		}
	}
}

func (b *budget) release(n int64) {
	if n > 0 {
		b.used.Add(-n)
		inflightBytes.Sub(float64(n))
	}
}

// bodyBytes is what a request's body will take once read (0: none):
// fasthttp allocates the declared length rounded up to a power of two,
// and a chunked body grows chunk by chunk (under twice its last buffer).
func (s *Server) bodyBytes(h *fasthttp.RequestHeader) int64 {
	switch cl := h.ContentLength(); {
	case cl == -1:
		return 2 * pow2(s.cfg.MaxBodyBytes)
	case cl > 0 && cl <= s.cfg.MaxBodyBytes:
		return pow2(cl)
	}
	return 0 // none, or over the limit: fasthttp answers 413 unread
}

// pow2 is the least power of two >= n (n > 0), as fasthttp sizes bodies.
func pow2(n int) int64 {
	p := int64(1)
	for p < int64(n) {
		p <<= 1
	}
	return p
}

// headerReceived is fasthttp's HeaderReceived: it reserves the body, or
// makes fasthttp refuse to read it (a 1-byte limit, so the read fails
// before any allocation and handleReadError answers 503).
func (s *Server) headerReceived(h *fasthttp.RequestHeader) fasthttp.RequestConfig {
	n := s.bodyBytes(h)
	if n == 0 {
		return fasthttp.RequestConfig{}
	}
	b := s.mem
	now := time.Now()
	b.mu.Lock()
	if old, ok := b.held[h]; ok { // left behind by this RequestCtx's last request
		b.release(old.n)
	}
	ok := b.tryAdd(n)
	if !ok {
		b.sweepLocked(now)
		ok = b.tryAdd(n)
	}
	if ok {
		b.held[h] = hold{n: n, at: now}
	} else {
		b.held[h] = hold{n: -1, at: now}
	}
	b.mu.Unlock()
	if !ok {
		return fasthttp.RequestConfig{MaxRequestBodySize: 1}
	}
	return fasthttp.RequestConfig{}
}

// sweepLocked releases reservations left behind by requests that never
// reached a handler.
func (b *budget) sweepLocked(now time.Time) {
	for h, e := range b.held {
		if now.Sub(e.at) > b.stale {
			b.release(e.n)
			delete(b.held, h)
		}
	}
}

// takeBody removes the request's body reservation: the bytes to release when
// it is done, and whether its body was refused.
// Handle asks only for requests with a body (the pixel's path stays off
// the lock); the read-error handler always asks, as fasthttp may have
// reset the header by then.
func (s *Server) takeBody(ctx *fasthttp.RequestCtx, always bool) (n int64, refused bool) {
	if !always && ctx.Request.Header.ContentLength() == 0 {
		return 0, false // no body: never reserved
	}
	b := s.mem
	b.mu.Lock()
	e, ok := b.held[&ctx.Request.Header]
	if ok {
		delete(b.held, &ctx.Request.Header)
	}
	b.mu.Unlock()
	if e.n < 0 {
		return 0, true
	}
	return e.n, false
}

// growInflate reserves an inflate buffer of n bytes for sc's request.
func (s *Server) growInflate(sc *scratch, n int) bool {
	if !s.mem.tryAdd(int64(n)) {
		return false
	}
	sc.inflateHeld += int64(n)
	return true
}

// minInflightBytes is the smallest budget that admits one maximal request:
// a chunked body, and the inflate buffers it grows through (doubling up to
// the limit: under twice the limit).
func minInflightBytes(maxBody, maxInflated int) int64 {
	return 2*pow2(maxBody) + 2*int64(maxInflated)
}

func validateBudget(c Config) error {
	if c.MaxInflightBytes < 0 {
		return fmt.Errorf("ingest: negative max in-flight bytes %d", c.MaxInflightBytes)
	}
	if min := minInflightBytes(c.MaxBodyBytes, c.MaxInflatedBytes); int64(c.MaxInflightBytes) < min {
		return fmt.Errorf("ingest: max in-flight bytes %d cannot hold one maximal request: want at least %d (2 x max body bytes %d, rounded up to a power of two, + 2 x max inflated bytes %d)",
			c.MaxInflightBytes, min, c.MaxBodyBytes, c.MaxInflatedBytes)
	}
	if c.Concurrency < 0 {
		return fmt.Errorf("ingest: negative concurrency %d", c.Concurrency)
	}
	return nil
}

// describeBudget is the start-up log line's view of the limits.
func describeBudget(c Config) string {
	return strconv.Itoa(c.MaxInflightBytes>>20) + " MiB of bodies and inflate buffers, " + strconv.Itoa(c.Concurrency) + " connections"
}
