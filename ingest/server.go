// Package ingest is the gateway's HTTP front: it answers the tracking
// pixel, sendBeacon POSTs and JSON batches (fasthttp), turns each event
// into a beacongate.v1.Beacon record with its shard key, and hands it to a
// Sink (the Kafka producer). Bad input gets the right 4xx with a one-line
// reason and a counter; nothing from a request outlives its handler.
package ingest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"runtime/debug"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"
	"go.uber.org/zap"

	"github.com/beacongate/beacongate/internal/throttle"
	"github.com/beacongate/beacongate/shard"
)

// Server is the ingest HTTP server.
type Server struct {
	cfg       Config
	sink      Sink
	ready     func() (bool, string)
	keyer     *shard.Keyer
	noted     []string       // JSON members noted while events are validated: the keyer's, and sid when site-aware (scratch.go)
	notedSite int            // sid's index in noted, -1 if not there
	hot       *shard.HotKeys // nil: the hot-key valve is off
	overflow  OverflowSink   // set when hot is
	cors      cors
	ids       *requestIDs
	gatewayID []byte
	log       *zap.Logger
	throttle  *throttle.Logger
	srv       *fasthttp.Server
	pool      sync.Pool
	draining  atomic.Bool
	acker     AckSink        // nil: the sink has no acknowledged mode
	dlq       DeadLetterSink // nil: no dead letters
	ackRoutes [numRoutes]bool
	proxies   proxies
	ipLimit   *limiter          // nil: no per-IP limit
	siteLimit *limiter          // nil: no per-site limit
	sites     map[string][]byte // nil: no allow-list
	mem       *budget           // bodies and inflate buffers in flight
	clock     func() time.Time  // the limiters' clock; nil = time.Now (tests)
	segment   segment           // the Segment tracking API (segment.go)
	snowplow  *snowplowState    // the Snowplow endpoints (snowplow.go)
}

// New builds a server that produces into sink. ready reports whether the
// sink can take traffic (nil: always); /readyz follows it.
func New(cfg Config, sink Sink, ready func() (bool, string), log *zap.Logger) (*Server, error) {
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	keyer, err := shard.New(cfg.Shard)
	if err != nil {
		return nil, fmt.Errorf("ingest: %w", err)
	}
	if ready == nil {
		ready = func() (bool, string) { return true, "" }
	}
	s := &Server{
		cfg:       cfg,
		sink:      sink,
		ready:     ready,
		keyer:     keyer,
		cors:      newCORS(cfg.CORSOrigins, cfg.CORSCredentials),
		ids:       newRequestIDs(),
		gatewayID: []byte(cfg.GatewayID),
		log:       log,
		throttle:  throttle.New(log, 10*time.Second),
	}
	if s.proxies, err = parseProxies(cfg.TrustedProxies, cfg.ClientIPHeader); err != nil {
		return nil, err
	}
	if s.snowplow, err = newSnowplow(cfg); err != nil {
		return nil, err
	}
	s.mem = newBudget(int64(cfg.MaxInflightBytes), cfg.ReadTimeout)
	s.ipLimit = newLimiter(cfg.RateLimitPerIP, cfg.RateBurstPerIP, cfg.RateLimitMaxKeys)
	s.siteLimit = newLimiter(cfg.RateLimitPerSite, cfg.RateBurstPerSite, cfg.RateLimitMaxKeys)
	if len(cfg.Sites) > 0 {
		s.sites = make(map[string][]byte, len(cfg.Sites))
		for sid, key := range cfg.Sites {
			s.sites[sid] = []byte(key)
		}
	}
	if s.hot, s.overflow, err = newHotKeys(cfg.Shard, sink, log); err != nil {
		return nil, err
	}
	s.acker, _ = sink.(AckSink)
	s.dlq, _ = sink.(DeadLetterSink)
	if d, ok := sink.(interface{ DeadLettersOn() bool }); ok && !d.DeadLettersOn() {
		s.dlq = nil // no topic: nothing to prepare, nothing to count as suppressed
	}
	for _, name := range cfg.AckRoutes {
		for r := route(0); r < numRoutes; r++ {
			if routeNames[r] == name {
				s.ackRoutes[r] = true
			}
		}
	}
	if s.segment, err = newSegment(cfg); err != nil {
		return nil, err
	}
	s.noted, s.notedSite = keyer.Names(shard.KindJSON), -1
	if s.siteAware() {
		if s.notedSite = slices.Index(s.noted, paramSite); s.notedSite < 0 {
			s.notedSite = len(s.noted)
			s.noted = append(s.noted, paramSite)
		}
	}
	s.pool.New = func() any { return new(scratch) }
	s.srv = &fasthttp.Server{
		Handler:            s.Handle,
		ErrorHandler:       s.handleReadError,
		Name:               "beacongate",
		ReadBufferSize:     cfg.MaxHeaderBytes,
		MaxRequestBodySize: cfg.MaxBodyBytes,
		ReadTimeout:        cfg.ReadTimeout,
		WriteTimeout:       cfg.WriteTimeout,
		IdleTimeout:        cfg.IdleTimeout,
		MaxConnsPerIP:      cfg.MaxConnsPerIP,
		Concurrency:        cfg.Concurrency,
		HeaderReceived:     s.headerReceived,
		// No endpoint takes multipart bodies (415): do not parse them.
		DisablePreParseMultipartForm: true,
		NoDefaultContentType:         true,
		CloseOnShutdown:              true,
		SecureErrorLogMessage:        true,
		Logger:                       fasthttpLogger{s.throttle},
	}
	// One line, so an operator sees which header sets client_ip (and the
	// per-IP limit) without reading the docs.
	log.Info("http server", zap.String("client_ip", s.proxies.describe()), zap.Strings("trusted_proxies", cfg.TrustedProxies),
		zap.String("memory", describeBudget(cfg)))
	return s, nil
}

// Serve serves HTTP on ln until Shutdown. Connections whose first byte
// cannot start a request are refused at once (sniff.go).
func (s *Server) Serve(ln net.Listener) error { return s.srv.Serve(sniffListener{ln}) }

// StartDraining turns /readyz to 503 so load balancers stop sending new
// connections; requests are still served until Shutdown.
func (s *Server) StartDraining() { s.draining.Store(true) }

// Shutdown stops accepting connections and waits, up to ctx, for the
// requests in flight. After it returns no handler calls the Sink.
func (s *Server) Shutdown(ctx context.Context) error {
	s.draining.Store(true)
	return s.srv.ShutdownWithContext(ctx)
}

// Handle is the fasthttp request handler (exported for benchmarks and
// tests that drive a RequestCtx directly).
func (s *Server) Handle(ctx *fasthttp.RequestCtx) {
	r := routeOther
	held, refused := s.takeBody(ctx, false)
	defer func() {
		s.mem.release(held)
		if p := recover(); p != nil {
			// No input may crash the process: answer 500, count it, and log
			// it as the bug it is.
			panicsTotal.Inc()
			s.throttle.Error("panic", "BUG: handler panic", zap.Any("panic", p), zap.ByteString("stack", debug.Stack()))
			ctx.ResetBody()
			ctx.SetStatusCode(fasthttp.StatusInternalServerError)
			countRequest(r, fasthttp.StatusInternalServerError)
		}
	}()
	var status int
	if refused { // a 1-byte body got past the refusal (budget.go)
		ctx.SetConnectionClose()
		status = s.fail(ctx, errMemoryBudget, "")
	} else {
		r, status = s.route(ctx)
	}
	countRequest(r, status)
	durationObs[r].Observe(time.Since(ctx.Time()).Seconds())
}

func (s *Server) serveReady(ctx *fasthttp.RequestCtx) int {
	if s.draining.Load() {
		ctx.SetStatusCode(fasthttp.StatusServiceUnavailable)
		ctx.SetBodyString("not ready: shutting down\n")
		return fasthttp.StatusServiceUnavailable
	}
	if ok, reason := s.ready(); !ok {
		ctx.SetStatusCode(fasthttp.StatusServiceUnavailable)
		ctx.SetBodyString("not ready: " + reason + "\n")
		return fasthttp.StatusServiceUnavailable
	}
	ctx.SetBodyString("ready\n")
	return fasthttp.StatusOK
}

// fail answers err as its status with a one-line "reason: message" body,
// counts the rejection, and returns the status. allow is the Allow header
// of a 405.
func (s *Server) fail(ctx *fasthttp.RequestCtx, err error, allow string) int {
	se := asStatus(err)
	status := se.HTTPStatus()
	ctx.SetStatusCode(status)
	ctx.Response.Header.SetContentTypeBytes(ctTextPlain)
	if allow != "" {
		ctx.Response.Header.SetCanonical(hdrAllow, []byte(allow))
	}
	var ra retryAfterer
	if errors.As(err, &ra) && ra.RetryAfter() > 0 {
		ctx.Response.Header.SetCanonical(hdrRetryAfter, strconv.AppendInt(nil, int64((ra.RetryAfter()+time.Second-1)/time.Second), 10))
	}
	body := ctx.Response.BodyWriter()
	_, _ = fmt.Fprintf(body, "%s: %s\n", se.Reason(), se.Error())
	countRejected(se.Reason(), 1)
	if status >= 500 && status != fasthttp.StatusServiceUnavailable {
		s.throttle.Error("5xx:"+se.Reason(), "request failed", zap.Int("status", status), zap.Error(err))
	}
	return status
}

// handleReadError answers requests fasthttp could not read: oversize
// headers (431), oversize bodies (413), timeouts (408), malformed HTTP
// (400). The connection is closed afterwards.
func (s *Server) handleReadError(ctx *fasthttp.RequestCtx, err error) {
	held, refused := s.takeBody(ctx, true)
	s.mem.release(held)
	if refused { // the body was not read: over the memory budget
		countRequest(routeOther, s.fail(ctx, errMemoryBudget, ""))
		return
	}
	var status int
	var reason, msg string
	var small *fasthttp.ErrSmallBuffer
	var netErr net.Error
	switch {
	case errors.As(err, &small):
		status, reason, msg = fasthttp.StatusRequestHeaderFieldsTooLarge, "header_too_large",
			fmt.Sprintf("request line and headers exceed %d bytes", s.cfg.MaxHeaderBytes)
	case errors.Is(err, fasthttp.ErrBodyTooLarge):
		status, reason, msg = fasthttp.StatusRequestEntityTooLarge, "body_too_large",
			fmt.Sprintf("request body exceeds %d bytes", s.cfg.MaxBodyBytes)
	case errors.As(err, &netErr) && netErr.Timeout():
		status, reason, msg = fasthttp.StatusRequestTimeout, "timeout", "request not received in time"
	default:
		status, reason, msg = fasthttp.StatusBadRequest, "bad_http", "malformed HTTP request"
	}
	ctx.SetStatusCode(status)
	ctx.Response.Header.SetContentTypeBytes(ctTextPlain)
	ctx.SetBodyString(reason + ": " + msg + "\n")
	countRejected(reason, 1)
	countRequest(routeOther, status)
}

// fasthttpLogger routes fasthttp's own messages (mostly connection errors
// from clients) into throttled structured logs.
type fasthttpLogger struct{ t *throttle.Logger }

func (l fasthttpLogger) Printf(format string, args ...any) {
	l.t.Warn("fasthttp", "http server", zap.String("msg", fmt.Sprintf(format, args...)))
}
