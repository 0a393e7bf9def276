package ingest

import (
	"bytes"
	"compress/flate"
	"compress/gzip"
	"hash/adler32"
	"io"
	"net/http"

	"github.com/beacongate/beacongate/internal/status"
)

// Compressed bodies (docs/security.md): Content-Encoding gzip (or x-gzip) and deflate
// are inflated into the request's scratch buffer, never past
// Config.MaxInflatedBytes: the decoder is read through a limit, so a
// decompression bomb costs at most that much memory and the CPU to inflate
// that much, then gets 413. "deflate" is the zlib format (RFC 9110);
// raw DEFLATE, which some old clients send, is accepted too.

var (
	errInflatedTooLarge = status.New(http.StatusRequestEntityTooLarge, "inflated_too_large", "decompressed request body exceeds the limit")
	errBadEncoding      = status.New(http.StatusBadRequest, "bad_encoding", "request body does not decode as its Content-Encoding")
)

// maxPooledInflate: a scratch keeps an inflate buffer up to this size.
const maxPooledInflate = 1 << 20

// decoders are the reusable decompressors of a scratch.
type decoders struct {
	src  bytes.Reader
	gz   *gzip.Reader
	fl   io.ReadCloser // flate, reset with flate.Resetter
	body []byte        // the inflated body
}

// checkBody applies the rules every POST body shares and returns the body,
// inflated if it was compressed. sc.body is set to the best bytes for a
// dead letter (the inflated body when there is one).
func (s *Server) checkBody(sc *scratch) ([]byte, error) {
	ctx := sc.ctx
	body := ctx.PostBody()
	sc.body = body
	ce := bytes.TrimSpace(ctx.Request.Header.ContentEncoding())
	switch {
	case len(ce) == 0 || bytes.EqualFold(ce, valIdentity):
	case bytes.EqualFold(ce, valGzip) || bytes.EqualFold(ce, valXGzip):
		b, err := s.inflate(sc, body, true)
		if err != nil {
			return nil, err
		}
		body = b
	case bytes.EqualFold(ce, valDeflate):
		b, err := s.inflate(sc, body, false)
		if err != nil {
			return nil, err
		}
		body = b
	default:
		return nil, errContentEncoding
	}
	sc.body = body
	if len(bytes.TrimSpace(body)) == 0 {
		return nil, errEmptyBody
	}
	return body, nil
}

func (s *Server) inflate(sc *scratch, in []byte, gz bool) ([]byte, error) {
	d := &sc.dec
	if len(in) == 0 {
		return nil, errEmptyBody
	}
	d.src.Reset(in)
	var r io.Reader
	zlib := false
	if gz {
		if d.gz == nil {
			g, err := gzip.NewReader(&d.src)
			if err != nil {
				return nil, errBadEncoding
			}
			d.gz = g
		} else if err := d.gz.Reset(&d.src); err != nil {
			return nil, errBadEncoding
		}
		r = d.gz
	} else {
		var err error
		if r, zlib, err = d.deflate(); err != nil {
			return nil, errBadEncoding
		}
	}
	if c := cap(d.body); c > 0 && !s.growInflate(sc, c) { // a pooled buffer is memory in flight too
		return nil, errMemoryBudget
	}
	out, err := readCapped(d.body[:0], r, s.cfg.MaxInflatedBytes, s, sc)
	if cap(out) <= maxPooledInflate {
		d.body = out[:0]
	} else {
		d.body = nil // do not keep a bomb-sized buffer in the pool
	}
	if err != nil {
		return nil, err
	}
	if zlib && !d.adler32OK(out) {
		return nil, errBadEncoding
	}
	return out, nil
}

// deflate returns a reader of d.src as raw DEFLATE, after skipping the
// zlib header (RFC 1950, what "deflate" means) when there is one; zlib
// reports true then, and the caller checks the Adler-32 trailer
// (compress/zlib allocates a new digest on every Reset).
func (d *decoders) deflate() (r io.Reader, zlib bool, err error) {
	var hdr [2]byte
	n, _ := d.src.ReadAt(hdr[:], 0)
	if n == 2 && hdr[0]&0x0f == 8 && hdr[0]>>4 <= 7 && (uint16(hdr[0])<<8|uint16(hdr[1]))%31 == 0 {
		if hdr[1]&0x20 != 0 {
			return nil, false, errBadEncoding // preset dictionary: none agreed
		}
		_, _ = d.src.Seek(2, io.SeekStart)
		zlib = true
	}
	if d.fl == nil {
		d.fl = flate.NewReader(&d.src)
	} else if err := d.fl.(flate.Resetter).Reset(&d.src, nil); err != nil {
		return nil, false, err
	}
	return d.fl, zlib, nil
}

// adler32OK checks the zlib trailer after the DEFLATE stream. The flate
// reader reads a bytes.Reader byte by byte, so the trailer is unread.
func (d *decoders) adler32OK(out []byte) bool {
	var sum uint32
	for range 4 {
		c, err := d.src.ReadByte()
		if err != nil {
			return false
		}
		sum = sum<<8 | uint32(c)
	}
	return sum == adler32.Checksum(out)
}

// readCapped reads r to its end into dst, failing with
// errInflatedTooLarge as soon as more than limit bytes come out, and with
// errMemoryBudget when s's budget cannot take a bigger buffer for sc
// (s nil: no budget). Buffers double up to limit, never past it: a full
// buffer at the limit is probed for one more byte instead of grown.
func readCapped(dst []byte, r io.Reader, limit int, s *Server, sc *scratch) ([]byte, error) {
	lr := io.LimitedReader{R: r, N: int64(limit) + 1}
	for {
		var n int
		var err error
		if len(dst) == cap(dst) && len(dst) >= limit {
			var probe [1]byte
			if n, err = lr.Read(probe[:]); n > 0 {
				return dst, errInflatedTooLarge
			}
		} else {
			if len(dst) == cap(dst) {
				c := min(max(2*cap(dst), 4096), limit)
				if s != nil && !s.growInflate(sc, c) {
					return dst, errMemoryBudget
				}
				grown := make([]byte, len(dst), c)
				copy(grown, dst)
				dst = grown
			}
			n, err = lr.Read(dst[len(dst):cap(dst)])
			dst = dst[:len(dst)+n]
			if len(dst) > limit { // a pooled buffer bigger than limit
				return dst, errInflatedTooLarge
			}
		}
		if err == io.EOF {
			return dst, nil
		}
		if err != nil {
			return dst, errBadEncoding // corrupt or truncated stream
		}
	}
}
