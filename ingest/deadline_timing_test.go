package ingest

import (
	"net"
	"testing"
	"time"
)

// BenchmarkDeadlines is what fasthttp asks of a keep-alive connection per
// request (the idle read deadline, the read timeout, the write timeout),
// on loopback TCP connections: set on the connection each time, or
// armed lazily by sniffConn (deadline.go).
func BenchmarkDeadlines(b *testing.B) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()
	for _, lazy := range []bool{false, true} {
		name := "conn"
		if lazy {
			name = "lazy"
		}
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				raw, err := net.Dial("tcp", ln.Addr().String())
				if err != nil {
					b.Error(err)
					return
				}
				defer raw.Close()
				var c net.Conn = raw
				if lazy {
					c = &sniffConn{Conn: raw, checked: true}
				}
				for pb.Next() {
					now := time.Now()
					_ = c.SetReadDeadline(now.Add(60 * time.Second))
					_ = c.SetReadDeadline(now.Add(10 * time.Second))
					_ = c.SetWriteDeadline(now.Add(10 * time.Second))
				}
			})
		})
	}
}
