package ingest

import (
	"bytes"
	"compress/flate"
	"compress/gzip"
	"compress/zlib"
	"fmt"
	"runtime"
	"testing"

	"go.uber.org/zap"

	"github.com/beacongate/beacongate/internal/kafka/delivery"
)

func gzipped(t testing.TB, b []byte) []byte {
	var buf bytes.Buffer
	w := gzip.NewWriter(&buf)
	_, _ = w.Write(b)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func zlibbed(t testing.TB, b []byte) []byte {
	var buf bytes.Buffer
	w := zlib.NewWriter(&buf)
	_, _ = w.Write(b)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func rawDeflated(t testing.TB, b []byte) []byte {
	var buf bytes.Buffer
	w, _ := flate.NewWriter(&buf, flate.BestSpeed)
	_, _ = w.Write(b)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestCompressedBodies(t *testing.T) {
	ts := newTestServer(t, Config{})
	beacon := []byte(`{"ev":"gz","n":1}`)
	batch := []byte(`[{"ev":"a"},{"ev":"b"},{"ev":"c"}]`)
	for _, c := range []struct {
		name, path, ce string
		body           []byte
		status, events int
	}{
		{"gzip beacon", "/i", "gzip", gzipped(t, beacon), 204, 1},
		{"x-gzip beacon", "/i", "x-gzip", gzipped(t, beacon), 204, 1},
		{"GZIP beacon", "/i", "GZIP", gzipped(t, beacon), 204, 1},
		{"deflate (zlib) beacon", "/i", "deflate", zlibbed(t, beacon), 204, 1},
		{"deflate (raw) beacon", "/i", "deflate", rawDeflated(t, beacon), 204, 1},
		{"identity beacon", "/i", "identity", beacon, 204, 1},
		{"gzip batch", "/batch", "gzip", gzipped(t, batch), 200, 3},
		{"deflate batch", "/batch", "deflate", zlibbed(t, batch), 200, 3},
		{"gzip form beacon", "/i", "gzip", gzipped(t, []byte("ev=form&x=1")), 204, 1},
	} {
		t.Run(c.name, func(t *testing.T) {
			ct := "application/json"
			if c.name == "gzip form beacon" {
				ct = "application/x-www-form-urlencoded"
			}
			r := ts.do(t, "POST", c.path, ct, string(c.body), "Content-Encoding", c.ce)
			if r.status != c.status {
				t.Fatalf("status %d %q, want %d", r.status, r.body, c.status)
			}
			_, recs := ts.sink.take()
			if len(recs) != c.events {
				t.Fatalf("%d records, want %d", len(recs), c.events)
			}
			if c.path == "/i" && len(recs[0].Payload) == 0 && paramsOf(recs[0]) != "ev=form&x=1" {
				t.Fatalf("beacon not decoded: payload %q params %q", recs[0].Payload, paramsOf(recs[0]))
			}
			if c.path == "/i" && len(recs[0].Payload) > 0 && string(recs[0].Payload) != string(beacon) {
				t.Fatalf("payload %q, want %q", recs[0].Payload, beacon)
			}
		})
	}
}

func TestCompressedBodyRejections(t *testing.T) {
	ts := newTestServer(t, Config{MaxInflatedBytes: 1000})
	good := gzipped(t, []byte(`{"a":1}`))
	corrupt := append([]byte(nil), good...)
	corrupt[len(corrupt)-5] ^= 0xff // CRC
	zbad := zlibbed(t, []byte(`{"a":1}`))
	zbad[len(zbad)-1] ^= 1 // Adler-32
	zdict := append([]byte{0x78, 0xbb}, zlibbed(t, []byte(`{}`))[2:]...)
	for _, c := range []struct {
		name, path, ce string
		body           []byte
		status         int
		reason         string
	}{
		{"zlib bad checksum", "/i", "deflate", zbad, 400, "bad_encoding"},
		{"zlib truncated trailer", "/i", "deflate", zlibbed(t, []byte(`{"a":1}`))[:len(zbad)-2], 400, "bad_encoding"},
		{"zlib preset dictionary", "/i", "deflate", zdict, 400, "bad_encoding"},
		{"brotli", "/i", "br", []byte("x"), 415, "unsupported_content_encoding"},
		{"two codings", "/i", "gzip, gzip", good, 415, "unsupported_content_encoding"},
		{"not gzip", "/i", "gzip", []byte(`{"a":1}`), 400, "bad_encoding"},
		{"bad checksum", "/i", "gzip", corrupt, 400, "bad_encoding"},
		{"truncated gzip", "/i", "gzip", good[:len(good)-6], 400, "bad_encoding"},
		{"truncated deflate", "/batch", "deflate", zlibbed(t, []byte(`[{},{}]`))[:5], 400, "bad_encoding"},
		{"garbage deflate", "/i", "deflate", []byte("\xff\xff\xff\xff"), 400, "bad_encoding"},
		{"inflates past the cap", "/i", "gzip", gzipped(t, append(append([]byte(`{"a":"`), bytes.Repeat([]byte("x"), 1000)...), `"}`...)), 413, "inflated_too_large"},
		{"batch past the cap", "/batch", "deflate", zlibbed(t, bytes.Repeat([]byte("{}\n"), 400)), 413, "inflated_too_large"},
		{"inflates to nothing", "/i", "gzip", gzipped(t, []byte("  ")), 400, "empty"},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := ts.do(t, "POST", c.path, "application/json", string(c.body), "Content-Encoding", c.ce)
			if r.status != c.status || !bytes.HasPrefix([]byte(r.body), []byte(c.reason+":")) {
				t.Fatalf("status %d %q, want %d %s", r.status, r.body, c.status, c.reason)
			}
			if _, recs := ts.sink.take(); len(recs) != 0 {
				t.Fatalf("%d records from a rejected body", len(recs))
			}
		})
	}
	// Exactly at the cap is fine.
	exact := append(append([]byte(`{"a":"`), bytes.Repeat([]byte("x"), 1000-8)...), `"}`...)
	if r := ts.do(t, "POST", "/i", "application/json", string(gzipped(t, exact)), "Content-Encoding", "gzip"); r.status != 204 {
		t.Fatalf("body of exactly the cap: %d %q", r.status, r.body)
	}
}

// TestGzipBomb: 100 MB of zeros, about 100 KB compressed, is stopped at
// the inflate cap; allocations stay far below the inflated size.
func TestGzipBomb(t *testing.T) {
	var buf bytes.Buffer
	w, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	zeros := make([]byte, 1<<20)
	for i := 0; i < 100; i++ {
		_, _ = w.Write(zeros)
	}
	_ = w.Close()
	bomb := buf.Bytes()
	if len(bomb) > 1<<20 {
		t.Fatalf("bomb is %d bytes compressed", len(bomb))
	}
	s, err := New(Config{}, &recordingSink{t: t}, nil, zap.NewNop()) // cap 4 MiB
	if err != nil {
		t.Fatal(err)
	}
	raw := fmt.Sprintf("POST /batch HTTP/1.1\r\nHost: gw\r\nContent-Type: application/json\r\nContent-Encoding: gzip\r\nContent-Length: %d\r\n\r\n%s", len(bomb), bomb)
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	ctx := serveFrom(t, s, "203.0.113.1", raw)
	runtime.ReadMemStats(&after)
	if ctx.Response.StatusCode() != 413 || !bytes.HasPrefix(ctx.Response.Body(), []byte("inflated_too_large:")) {
		t.Fatalf("bomb: %d %q", ctx.Response.StatusCode(), ctx.Response.Body())
	}
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 24<<20 {
		t.Fatalf("bomb allocated %d MiB, want far below its 100 MiB", alloc>>20)
	}
	// The scratch does not keep a cap-sized buffer.
	sc := s.pool.Get().(*scratch)
	if cap(sc.dec.body) > maxPooledInflate {
		t.Fatalf("pooled scratch keeps a %d-byte inflate buffer", cap(sc.dec.body))
	}
	s.pool.Put(sc)
}

// dlqRecorder records dead letters.
type dlqRecorder struct {
	recordingSink
	letters []string
}

func (d *dlqRecorder) DeadLetter(raw []byte, _ delivery.DeadLetter) {
	d.letters = append(d.letters, string(raw))
}

func TestCompressedDeadLetterDecoded(t *testing.T) {
	sink := &dlqRecorder{}
	sink.t = t
	s, err := New(Config{}, sink, nil, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	body := gzipped(t, []byte(`{"a":`))
	raw := fmt.Sprintf("POST /i HTTP/1.1\r\nHost: gw\r\nContent-Type: application/json\r\nContent-Encoding: gzip\r\nContent-Length: %d\r\n\r\n%s", len(body), body)
	ctx := serveFrom(t, s, "203.0.113.1", raw)
	if ctx.Response.StatusCode() != 400 {
		t.Fatalf("status %d", ctx.Response.StatusCode())
	}
	if len(sink.letters) != 1 || sink.letters[0] != `{"a":` {
		t.Fatalf("dead letters %q, want the decoded body", sink.letters)
	}
}
