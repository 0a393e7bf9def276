package ingest

import (
	"bufio"
	"bytes"
	"net"

	"github.com/valyala/fasthttp"
)

// replayer serves raw HTTP requests to a Server in memory, reusing its
// buffers as fasthttp's connection loop does: the harness of the
// allocation tests and the handler benchmarks. Not safe for concurrent
// use; give each goroutine its own.
type replayer struct {
	s   *Server
	ctx fasthttp.RequestCtx
	rd  *bytes.Reader
	br  *bufio.Reader
	bw  *bufio.Writer
}

func newReplayer(s *Server, peer net.IP) *replayer {
	r := &replayer{s: s, rd: bytes.NewReader(nil)}
	r.ctx.Init(&fasthttp.Request{}, &net.TCPAddr{IP: peer, Port: 40000}, nil)
	r.br = bufio.NewReaderSize(r.rd, 64<<10)
	r.bw = bufio.NewWriterSize(discardWriter{}, 64<<10)
	return r
}

// serve reads raw as one request, handles it and writes the response
// (to nowhere); it returns the response's status, or the error that
// kept raw from being read or the response from being written.
func (r *replayer) serve(raw []byte) (int, error) {
	r.rd.Reset(raw)
	r.br.Reset(r.rd)
	r.ctx.Request.Reset()
	r.ctx.Response.Reset()
	if err := r.ctx.Request.Read(r.br); err != nil {
		return 0, err
	}
	r.s.Handle(&r.ctx)
	r.bw.Reset(discardWriter{})
	if err := r.ctx.Response.Write(r.bw); err != nil {
		return 0, err
	}
	return r.ctx.Response.StatusCode(), r.bw.Flush()
}

// body is the last response's body, for failure messages.
func (r *replayer) body() []byte { return r.ctx.Response.Body() }

type discardWriter struct{}

func (discardWriter) Write(p []byte) (int, error) { return len(p), nil }
