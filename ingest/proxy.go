package ingest

import (
	"bytes"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"unsafe"

	"github.com/valyala/fasthttp"
)

// Client IP behind trusted proxies (docs/security.md). The socket peer is the client
// unless it is one of Config.TrustedProxies: only then is one forwarding
// header believed, because anyone else can write it. That header is
// X-Forwarded-For unless the operator names Forwarded or X-Real-IP: nginx,
// AWS ALB and Google's load balancers append the client to X-Forwarded-For
// but pass a client's own Forwarded and X-Real-IP through untouched, so
// reading those by default would let a client choose its address. A chain
// is walked from the right (the hop nearest to us), skipping addresses
// that are themselves trusted proxies; the first untrusted one is the
// client. Anything malformed falls back to the socket peer.

const (
	hdrForwarded     = "Forwarded"
	hdrXForwardedFor = "X-Forwarded-For"
	hdrXRealIP       = "X-Real-Ip" // fasthttp's normalized form of X-Real-IP
)

// proxies is the parsed TrustedProxies list and the header policy.
type proxies struct {
	nets   []netip.Prefix
	header string // one of the hdr* names, never ""
}

// parseProxies parses CIDRs ("10.0.0.0/8") and bare addresses.
func parseProxies(list []string, header string) (proxies, error) {
	p := proxies{header: hdrXForwardedFor}
	switch strings.ToLower(header) {
	case "", "x-forwarded-for":
	case "forwarded":
		p.header = hdrForwarded
	case "x-real-ip":
		p.header = hdrXRealIP
	default:
		return p, fmt.Errorf("ingest: client IP header %q: want Forwarded, X-Forwarded-For or X-Real-IP", header)
	}
	for _, s := range list {
		s = strings.TrimSpace(s)
		if s == "" {
			continue
		}
		var pfx netip.Prefix
		var err error
		if strings.Contains(s, "/") {
			pfx, err = netip.ParsePrefix(s)
		} else {
			var a netip.Addr
			if a, err = netip.ParseAddr(s); err == nil {
				pfx = netip.PrefixFrom(a, a.BitLen())
			}
		}
		if err != nil || strings.Contains(s, "%") {
			return p, fmt.Errorf("ingest: trusted proxy %q: want a CIDR like 10.0.0.0/8 or an address", s)
		}
		pfx = pfx.Masked()
		if pfx.Addr().Is4In6() && pfx.Bits() >= 96 {
			pfx = netip.PrefixFrom(pfx.Addr().Unmap(), pfx.Bits()-96)
		}
		p.nets = append(p.nets, pfx)
	}
	return p, nil
}

func (p *proxies) trusted(a netip.Addr) bool {
	for _, n := range p.nets {
		if n.Contains(a) {
			return true
		}
	}
	return false
}

// peerAddr is the socket peer as an unmapped netip.Addr (invalid if none).
func peerAddr(ctx *fasthttp.RequestCtx) netip.Addr {
	ip := ctx.RemoteIP()
	a, _ := netip.AddrFromSlice(ip)
	return a.Unmap()
}

// clientAddr is the request's client address: the socket peer, or what a
// trusted peer forwarded.
func (p *proxies) clientAddr(ctx *fasthttp.RequestCtx) netip.Addr {
	peer := peerAddr(ctx)
	if len(p.nets) == 0 || !peer.IsValid() || !p.trusted(peer) {
		return peer
	}
	lines := ctx.Request.Header.PeekAll(p.header)
	if len(lines) == 0 {
		return peer
	}
	var a netip.Addr
	var ok bool
	switch p.header {
	case hdrForwarded:
		a, ok = p.walk(lines, true)
	case hdrXForwardedFor:
		a, ok = p.walk(lines, false)
	default:
		a, ok = parseHostPort(bytes.TrimSpace(lines[len(lines)-1]))
	}
	if !ok {
		return peer
	}
	return a
}

// describe is the start-up log line's view of the policy.
func (p *proxies) describe() string {
	if len(p.nets) == 0 {
		return "socket peer (no trusted proxies)"
	}
	return p.header + " from trusted proxies, else the socket peer"
}

// walk goes through the comma-separated elements of all header lines from
// the right and returns the first address that is not a trusted proxy, or
// the leftmost if all are. Any malformed element makes it give up (!ok).
func (p *proxies) walk(lines [][]byte, forwarded bool) (netip.Addr, bool) {
	var last netip.Addr
	for i := len(lines) - 1; i >= 0; i-- {
		v := lines[i]
		for len(v) > 0 {
			var el []byte
			if j := bytes.LastIndexByte(v, ','); j >= 0 {
				el, v = v[j+1:], v[:j]
			} else {
				el, v = v, nil
			}
			el = bytes.TrimSpace(el)
			if len(el) == 0 {
				continue // "a,,b" and trailing commas happen
			}
			if forwarded {
				var ok bool
				if el, ok = forwardedFor(el); !ok {
					return netip.Addr{}, false
				}
			}
			a, ok := parseHostPort(el)
			if !ok {
				return netip.Addr{}, false
			}
			if !p.trusted(a) {
				return a, true
			}
			last = a
		}
	}
	return last, last.IsValid()
}

// forwardedFor is the for= value of one RFC 7239 element
// ("for=192.0.2.60;proto=http;by=203.0.113.43"), unquoted. (A quoted value
// containing a comma or semicolon is not a valid node and is refused.)
func forwardedFor(el []byte) ([]byte, bool) {
	for len(el) > 0 {
		var pair []byte
		if j := bytes.IndexByte(el, ';'); j >= 0 {
			pair, el = el[:j], el[j+1:]
		} else {
			pair, el = el, nil
		}
		pair = bytes.TrimSpace(pair)
		if len(pair) < 4 || pair[3] != '=' || (pair[0]|0x20) != 'f' || (pair[1]|0x20) != 'o' || (pair[2]|0x20) != 'r' {
			continue
		}
		v := pair[4:]
		if len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"' {
			v = v[1 : len(v)-1]
		}
		return v, true
	}
	return nil, false
}

// parseHostPort parses "1.2.3.4", "1.2.3.4:80", "2001:db8::1",
// "[2001:db8::1]" and "[2001:db8::1]:443" without allocating. Zones,
// "unknown" and obfuscated identifiers are refused.
func parseHostPort(b []byte) (netip.Addr, bool) {
	if len(b) == 0 || len(b) > 64 || bytes.IndexByte(b, '%') >= 0 {
		return netip.Addr{}, false
	}
	if b[0] == '[' {
		j := bytes.IndexByte(b, ']')
		if j < 0 || !validPort(b[j+1:]) {
			return netip.Addr{}, false
		}
		b = b[1:j]
	} else if i := bytes.IndexByte(b, ':'); i >= 0 && bytes.IndexByte(b[i+1:], ':') < 0 {
		// Exactly one colon: IPv4 with a port.
		if !validPort(b[i:]) {
			return netip.Addr{}, false
		}
		b = b[:i]
	}
	if len(b) == 0 {
		return netip.Addr{}, false
	}
	a, err := netip.ParseAddr(unsafe.String(&b[0], len(b)))
	if err != nil {
		return netip.Addr{}, false
	}
	return a.Unmap(), true
}

// validPort accepts "" or ":digits" (at most 5).
func validPort(b []byte) bool {
	if len(b) == 0 {
		return true
	}
	if b[0] != ':' || len(b) < 2 || len(b) > 6 {
		return false
	}
	for _, c := range b[1:] {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// setClientAddr fills ClientIP (4 or 16 bytes) and its printed form from a.
func (sc *scratch) setClientAddr(a netip.Addr, anonymize bool) {
	sc.addr = a
	if !a.IsValid() {
		sc.ipText = sc.ipText[:0]
		sc.b.ClientIP = nil
		return
	}
	if a.Is4() {
		b := a.As4()
		sc.setClientIP(net.IP(b[:]), anonymize)
		return
	}
	b := a.As16()
	sc.setClientIP(net.IP(b[:]), anonymize)
}
