package bench

import (
	"context"
	"fmt"
	"io"
	"net"
	"time"

	"github.com/valyala/fasthttp"
)

// The baseline is a fasthttp server that does the HTTP part of the
// gateway's work and nothing else: it reads the same requests on the same
// kind of keep-alive connections and gives the same answers (the 43-byte
// GIF, 204, a batch summary), but parses no event and produces no record.
// Driven with the same load on the same machine, it is what this machine
// and this load generator can do at all; the gateway's figures divided by
// the baseline's are what the gateway costs, and that ratio holds up on a
// shared 2-core machine where absolute figures do not.

// gif is the gateway's 43-byte transparent GIF89a.
var gif = []byte{
	'G', 'I', 'F', '8', '9', 'a', 0x01, 0x00, 0x01, 0x00, 0x80, 0x00, 0x00,
	0x00, 0x00, 0x00, 0xff, 0xff, 0xff,
	0x21, 0xf9, 0x04, 0x01, 0x00, 0x00, 0x00, 0x00,
	0x2c, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x01, 0x00, 0x00,
	0x02, 0x02, 0x44, 0x01, 0x00,
	0x3b,
}

var (
	baselineBatchAnswer = []byte(`{"rejected":[],"accepted":0,"rejected_count":0}`)
	baselineRequestID   = []byte("baseline-0000000000000000") // the gateway answers one per request
	hdrRequestID        = []byte("X-Request-Id")
	hdrCacheControl     = []byte("Cache-Control")
	valNoStore          = []byte("no-store, max-age=0")
)

func baselineHandler(ctx *fasthttp.RequestCtx) {
	path := string(ctx.Path())
	ctx.Response.Header.SetCanonical(hdrRequestID, baselineRequestID)
	switch {
	case path == "/i" && (ctx.IsGet() || ctx.IsHead()):
		ctx.Response.Header.SetCanonical(hdrCacheControl, valNoStore)
		ctx.SetContentType("image/gif")
		ctx.SetBody(gif)
	case path == "/i" && ctx.IsPost():
		ctx.SetStatusCode(fasthttp.StatusNoContent)
	case path == "/batch" && ctx.IsPost():
		ctx.SetContentType("application/json")
		ctx.SetBody(baselineBatchAnswer)
	case path == "/readyz" || path == "/healthz":
		ctx.SetBodyString("ok")
	default:
		ctx.SetStatusCode(fasthttp.StatusNotFound)
	}
}

// newBaselineServer is configured as the gateway's server is (package
// ingest), so both pay the same for buffers and timeouts.
func newBaselineServer() *fasthttp.Server {
	return &fasthttp.Server{
		Handler:              baselineHandler,
		Name:                 "beacongate-baseline",
		ReadBufferSize:       16 << 10,
		MaxRequestBodySize:   1 << 20,
		ReadTimeout:          10 * time.Second,
		WriteTimeout:         10 * time.Second,
		IdleTimeout:          60 * time.Second,
		NoDefaultContentType: true,
		CloseOnShutdown:      true,
	}
}

// serveBaseline serves the baseline on addr until SIGTERM or SIGINT,
// after printing "listening HOST:PORT" on out.
func serveBaseline(addr string, out io.Writer) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("baseline server: %w", err)
	}
	srv := newBaselineServer()
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	fmt.Fprintf(out, "listening %s\n", ln.Addr())
	stopped := make(chan struct{})
	go func() { waitSignal(); close(stopped) }()
	select {
	case err := <-errc:
		return fmt.Errorf("baseline server on %s: %w", ln.Addr(), err)
	case <-stopped:
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return srv.ShutdownWithContext(ctx)
}
