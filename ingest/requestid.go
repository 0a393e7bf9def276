package ingest

import (
	"crypto/rand"
	"encoding/hex"
	"sync/atomic"
)

// requestIDs makes request ids unique per gateway instance without
// allocating: a random 64-bit instance prefix and a counter, 32 hex digits
// like a W3C trace id.
type requestIDs struct {
	prefix [16]byte
	n      atomic.Uint64
}

func newRequestIDs() *requestIDs {
	var r requestIDs
	var b [8]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails on Linux
	hex.Encode(r.prefix[:], b[:])
	return &r
}

const hexDigits = "0123456789abcdef"

// appendNext appends the next id.
func (r *requestIDs) appendNext(dst []byte) []byte {
	dst = append(dst, r.prefix[:]...)
	n := r.n.Add(1)
	for shift := 60; shift >= 0; shift -= 4 {
		dst = append(dst, hexDigits[(n>>uint(shift))&0xf])
	}
	return dst
}

// usableRequestID reports whether a client's X-Request-Id may be kept:
// 1 to 64 bytes of [A-Za-z0-9._:-], so it is valid UTF-8 and safe to
// echo in a header and to log.
func usableRequestID(b []byte) bool {
	if len(b) == 0 || len(b) > 64 {
		return false
	}
	for _, c := range b {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '.', c == '_', c == ':', c == '-':
		default:
			return false
		}
	}
	return true
}
