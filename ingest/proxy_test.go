package ingest

import (
	"bufio"
	"net"
	"strings"
	"testing"

	"github.com/valyala/fasthttp"
	"go.uber.org/zap"
)

// serveFrom reads raw as a request from peer ("ip" or "ip:port") and
// handles it with s, without a socket.
func serveFrom(t *testing.T, s *Server, peer, raw string) *fasthttp.RequestCtx {
	t.Helper()
	host, port := peer, "40000"
	if h, p, err := net.SplitHostPort(peer); err == nil {
		host, port = h, p
	}
	addr, err := net.ResolveTCPAddr("tcp", net.JoinHostPort(host, port))
	if err != nil {
		t.Fatal(err)
	}
	ctx := new(fasthttp.RequestCtx)
	ctx.Init(&fasthttp.Request{}, addr, nil)
	if err := ctx.Request.Read(bufio.NewReader(strings.NewReader(raw))); err != nil {
		t.Fatal(err)
	}
	s.Handle(ctx)
	return ctx
}

func TestClientIPTrustedProxies(t *testing.T) {
	sink := &recordingSink{t: t}
	s, err := New(Config{TrustedProxies: []string{"10.0.0.0/8", "2001:db8:ffff::/48", "192.0.2.1"}}, sink, nil, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name, peer, headers, want string
	}{
		{"no proxy, no header", "203.0.113.9", "", "203.0.113.9"},
		{"untrusted peer: spoofed XFF ignored", "203.0.113.9", "X-Forwarded-For: 1.2.3.4\r\n", "203.0.113.9"},
		{"untrusted peer: Forwarded ignored", "203.0.113.9", "Forwarded: for=1.2.3.4\r\n", "203.0.113.9"},
		{"untrusted peer: X-Real-IP ignored", "203.0.113.9", "X-Real-IP: 1.2.3.4\r\n", "203.0.113.9"},
		{"trusted peer, XFF one hop", "10.1.2.3", "X-Forwarded-For: 198.51.100.4\r\n", "198.51.100.4"},
		{"spoofed leftmost XFF through proxy", "10.1.2.3", "X-Forwarded-For: 6.6.6.6, 198.51.100.4\r\n", "198.51.100.4"},
		{"chain: skip trusted from the right", "10.1.2.3", "X-Forwarded-For: 6.6.6.6, 198.51.100.4, 10.9.9.9, 192.0.2.1\r\n", "198.51.100.4"},
		{"chain over two header lines", "10.1.2.3", "X-Forwarded-For: 6.6.6.6\r\nX-Forwarded-For: 198.51.100.4, 10.0.0.1\r\n", "198.51.100.4"},
		{"all trusted: leftmost", "10.1.2.3", "X-Forwarded-For: 10.0.0.7, 10.0.0.8\r\n", "10.0.0.7"},
		{"XFF with port and spaces", "10.1.2.3", "X-Forwarded-For:  198.51.100.4:5555 ,\r\n", "198.51.100.4"},
		{"XFF IPv6", "10.1.2.3", "X-Forwarded-For: 2001:db8:1::7\r\n", "2001:db8:1::7"},
		{"XFF bracketed IPv6 with port", "10.1.2.3", "X-Forwarded-For: [2001:db8:1::7]:443\r\n", "2001:db8:1::7"},
		{"XFF v4-mapped", "10.1.2.3", "X-Forwarded-For: ::ffff:198.51.100.4\r\n", "198.51.100.4"},
		{"IPv6 trusted peer", "[2001:db8:ffff::1]:9", "X-Forwarded-For: 198.51.100.4\r\n", "198.51.100.4"},
		{"XFF garbage", "10.1.2.3", "X-Forwarded-For: not-an-ip\r\n", "10.1.2.3"},
		{"XFF garbage right of a good one", "10.1.2.3", "X-Forwarded-For: 198.51.100.4, bogus\r\n", "10.1.2.3"},
		{"XFF zone refused", "10.1.2.3", "X-Forwarded-For: fe80::1%eth0\r\n", "10.1.2.3"},
		{"XFF bad port", "10.1.2.3", "X-Forwarded-For: 198.51.100.4:http\r\n", "10.1.2.3"},
		{"XFF unclosed bracket", "10.1.2.3", "X-Forwarded-For: [2001:db8::1\r\n", "10.1.2.3"},
		{"XFF empty elements only", "10.1.2.3", "X-Forwarded-For: , ,\r\n", "10.1.2.3"},
		// By default only X-Forwarded-For: common proxies pass a client's
		// own Forwarded and X-Real-IP through (docs/security.md).
		{"Forwarded ignored by default", "10.1.2.3", "Forwarded: for=6.6.6.6\r\nX-Forwarded-For: 198.51.100.4\r\n", "198.51.100.4"},
		{"Forwarded alone ignored by default", "10.1.2.3", "Forwarded: for=6.6.6.6\r\n", "10.1.2.3"},
		{"X-Real-IP ignored by default", "10.1.2.3", "X-Real-IP: 6.6.6.6\r\n", "10.1.2.3"},
		{"XFF wins over X-Real-IP", "10.1.2.3", "X-Real-IP: 198.51.100.5\r\nX-Forwarded-For: 198.51.100.4\r\n", "198.51.100.4"},
		{"long garbage", "10.1.2.3", "X-Forwarded-For: " + strings.Repeat("9", 200) + "\r\n", "10.1.2.3"},
	} {
		t.Run(c.name, func(t *testing.T) {
			ctx := serveFrom(t, s, c.peer, "GET /i?ev=x HTTP/1.1\r\nHost: gw\r\n"+c.headers+"\r\n")
			if ctx.Response.StatusCode() != 200 {
				t.Fatalf("status %d: %s", ctx.Response.StatusCode(), ctx.Response.Body())
			}
			keys, recs := sink.take()
			if len(keys) != 1 || keys[0] != c.want {
				t.Fatalf("client IP (shard key) %q, want %q", keys, c.want)
			}
			if want := net.ParseIP(c.want); !want.Equal(net.IP(recs[0].ClientIp)) {
				t.Fatalf("client_ip %v, want %v", net.IP(recs[0].ClientIp), want)
			}
		})
	}
}

// TestClientIPForwardedNamed: Forwarded is read only when the operator
// names it, and then only it.
func TestClientIPForwardedNamed(t *testing.T) {
	sink := &recordingSink{t: t}
	s, err := New(Config{TrustedProxies: []string{"10.0.0.0/8", "2001:db8:ffff::/48", "192.0.2.1"}, ClientIPHeader: "Forwarded"}, sink, nil, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name, headers, want string
	}{
		{"Forwarded simple", "Forwarded: for=198.51.100.4\r\n", "198.51.100.4"},
		{"Forwarded quoted IPv6 with port", "Forwarded: for=\"[2001:db8:cafe::17]:4711\"\r\n", "2001:db8:cafe::17"},
		{"Forwarded params and case", "Forwarded: proto=https;For=\"198.51.100.4:80\";by=10.0.0.1\r\n", "198.51.100.4"},
		{"Forwarded chain", "Forwarded: for=6.6.6.6, for=198.51.100.4;proto=http, for=10.0.0.2\r\n", "198.51.100.4"},
		{"Forwarded unknown", "Forwarded: for=unknown\r\n", "10.1.2.3"},
		{"Forwarded obfuscated", "Forwarded: for=_hidden\r\n", "10.1.2.3"},
		{"Forwarded without for", "Forwarded: proto=https\r\n", "10.1.2.3"},
		{"Forwarded unquoted IPv6 refused", "Forwarded: for=\"2001:db8::1\r\n", "10.1.2.3"},
		{"XFF ignored when Forwarded is named", "X-Forwarded-For: 198.51.100.5\r\n", "10.1.2.3"},
		{"Forwarded over XFF", "X-Forwarded-For: 198.51.100.5\r\nForwarded: for=198.51.100.4\r\n", "198.51.100.4"},
	} {
		t.Run(c.name, func(t *testing.T) {
			serveFrom(t, s, "10.1.2.3", "GET /i?ev=x HTTP/1.1\r\nHost: gw\r\n"+c.headers+"\r\n")
			if keys, _ := sink.take(); len(keys) != 1 || keys[0] != c.want {
				t.Fatalf("client IP (shard key) %q, want %q", keys, c.want)
			}
		})
	}
	s, err = New(Config{TrustedProxies: []string{"10.0.0.0/8"}, ClientIPHeader: "x-real-ip"}, sink, nil, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	serveFrom(t, s, "10.0.0.1", "GET /i?ev=x HTTP/1.1\r\nHost: gw\r\nX-Forwarded-For: 6.6.6.6\r\nX-Real-IP: 198.51.100.9\r\n\r\n")
	if keys, _ := sink.take(); len(keys) != 1 || keys[0] != "198.51.100.9" {
		t.Fatalf("named X-Real-IP: key %q", keys)
	}
	serveFrom(t, s, "10.0.0.1", "GET /i?ev=x HTTP/1.1\r\nHost: gw\r\nX-Real-IP: 1.2.3\r\n\r\n")
	if keys, _ := sink.take(); len(keys) != 1 || keys[0] != "10.0.0.1" {
		t.Fatalf("named X-Real-IP, garbage: key %q", keys)
	}
}

func TestClientIPHeaderPinned(t *testing.T) {
	sink := &recordingSink{t: t}
	s, err := New(Config{TrustedProxies: []string{"10.0.0.0/8"}, ClientIPHeader: "x-forwarded-for"}, sink, nil, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	serveFrom(t, s, "10.0.0.1", "GET /i?ev=x HTTP/1.1\r\nHost: gw\r\nForwarded: for=6.6.6.6\r\nX-Forwarded-For: 198.51.100.4\r\n\r\n")
	if keys, _ := sink.take(); len(keys) != 1 || keys[0] != "198.51.100.4" {
		t.Fatalf("pinned X-Forwarded-For: key %q", keys)
	}
}

func TestClientIPAnonymizedBehindProxy(t *testing.T) {
	sink := &recordingSink{t: t}
	s, err := New(Config{TrustedProxies: []string{"10.0.0.0/8"}, AnonymizeIP: true}, sink, nil, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	serveFrom(t, s, "10.0.0.1", "GET /i?ev=x HTTP/1.1\r\nHost: gw\r\nX-Forwarded-For: 198.51.100.77\r\n\r\n")
	if keys, _ := sink.take(); len(keys) != 1 || keys[0] != "198.51.100.0" {
		t.Fatalf("anonymized forwarded IP: key %q", keys)
	}
}

func TestTrustedProxiesValidate(t *testing.T) {
	for _, c := range []struct {
		cfg Config
		ok  bool
	}{
		{Config{TrustedProxies: []string{"10.0.0.0/8", "::1", "2001:db8::/32", "::ffff:10.0.0.0/104"}}, true},
		{Config{TrustedProxies: []string{"10.0.0.0/33"}}, false},
		{Config{TrustedProxies: []string{"proxy.example"}}, false},
		{Config{TrustedProxies: []string{"fe80::1%eth0"}}, false},
		{Config{ClientIPHeader: "X-Real-IP"}, true},
		{Config{ClientIPHeader: "True-Client-IP"}, false},
	} {
		if err := c.cfg.Validate(); (err == nil) != c.ok {
			t.Errorf("%+v: Validate() = %v, want ok %v", c.cfg.TrustedProxies, err, c.ok)
		}
	}
	p, _ := parseProxies([]string{"::ffff:10.0.0.0/104"}, "")
	if a, _ := parseHostPort([]byte("10.2.3.4")); !p.trusted(a) {
		t.Errorf("v4-mapped CIDR does not match an IPv4 address: %v", p.nets)
	}
}

func FuzzParseHostPort(f *testing.F) {
	for _, s := range []string{"1.2.3.4", "[::1]:80", "1.2.3.4:", "[", "]:", "::ffff:1.2.3.4", "for=\"[::1]\""} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		_, _ = parseHostPort(b)
		_, _ = forwardedFor(b)
	})
}
