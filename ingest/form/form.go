// Package form decodes query strings and application/x-www-form-urlencoded
// bodies into record.Params on the hot path without allocating: the caller
// owns the Param slice and a scratch buffer, and every decoded name and
// value is a sub-slice of that scratch buffer.
//
// The input is hostile, so Parse is strict where net/url is lenient:
// decoded names and values must be valid UTF-8 without NUL bytes, and the
// number of parameters is bounded. ';' is not a separator (as in net/url
// since Go 1.17, which rejects it); Parse keeps it as data.
package form

import (
	"encoding/binary"
	"math/bits"
	"slices"
	"unicode/utf8"

	"github.com/beacongate/beacongate/ingest/internal/lex"
	"github.com/beacongate/beacongate/ingest/record"
)

// DefaultMaxParams is the parameter limit used when Limits.MaxParams is 0.
const DefaultMaxParams = 256

// Limits bound what Parse accepts; the zero value means the defaults.
type Limits struct {
	// MaxParams is the most parameters Parse accepts; <= 0 means
	// DefaultMaxParams. Empty segments ("a=1&&b=2") do not count.
	MaxParams int
}

// Parse decodes raw (a query string without '?', or a form body) and
// appends its parameters, in request order and with duplicates kept, to
// dst.
//
// Decoded bytes are written into scratch[len(scratch):]. Decoding never
// lengthens its input, so Parse grows scratch at most once, up front, to
// len(scratch)+len(raw) bytes; the returned Params point into it and stay
// valid as long as it does. Each Name and Value has its capacity clipped
// to its length, so appending to one cannot overwrite the next. A
// parameter without '=' has an empty, non-nil Value.
//
// Rules: segments are split on '&' and empty ones skipped; the first '='
// splits name from value; '+' decodes to a space and %XX (hex, either
// case) to its byte. A '%' not followed by two hex digits is ErrBadEscape;
// a decoded name or value that is not valid UTF-8 is ErrInvalidUTF8, one
// with a NUL byte ErrNULByte; more than lim.MaxParams parameters is
// ErrTooManyParams. Returned errors are *Error values whose Offset is the
// byte offset in raw.
//
// On error Parse returns dst and scratch cut back to their original
// lengths (scratch's capacity may have grown), so both can be reused.
func Parse(dst []record.Param, scratch []byte, raw []byte, lim Limits) ([]record.Param, []byte, error) {
	maxParams := lim.MaxParams
	if maxParams <= 0 {
		maxParams = DefaultMaxParams
	}
	dst0, s0 := len(dst), len(scratch)
	scratch = slices.Grow(scratch, len(raw))
	buf := scratch[:s0+len(raw)]
	w := s0
	n := 0
	for i := 0; i < len(raw); {
		if raw[i] == '&' {
			i++
			continue
		}
		if n == maxParams {
			err := ErrTooManyParams.At(i, "")
			err.Limit = maxParams
			return dst[:dst0], scratch[:s0], err
		}
		n++
		ns := w
		var err *Error
		if i, w, err = decode(raw, i, buf, w, true); err != nil {
			return dst[:dst0], scratch[:s0], err
		}
		name := buf[ns:w:w]
		vs := w
		if i < len(raw) && raw[i] == '=' {
			if i, w, err = decode(raw, i+1, buf, w, false); err != nil {
				return dst[:dst0], scratch[:s0], err
			}
		}
		dst = append(dst, record.Param{Name: name, Value: buf[vs:w:w]})
	}
	return dst, scratch[:w], nil
}

// decode percent-decodes raw[i:] up to the next '&' (or, for a name, the
// next '=') into buf[w:] and checks the result is UTF-8 without NUL bytes.
// It returns the index of the byte that ended the field and the new w.
func decode(raw []byte, i int, buf []byte, w int, name bool) (int, int, *Error) {
	start, ws := i, w
	var acc byte // OR of the bytes copied one by one: >= 0x80 means not all ASCII
	nul := false
loop:
	for i < len(raw) {
		// Copy plain bytes eight at a time, since most of a query is
		// plain. Storing all eight is safe: decoding never lengthens, so
		// w-ws <= i-start and buf has room; bytes stored past the special
		// one are overwritten or lie beyond what Parse returns.
		for i+8 <= len(raw) {
			x := binary.LittleEndian.Uint64(raw[i:])
			binary.LittleEndian.PutUint64(buf[w:], x)
			if m := special(x); m != 0 {
				n := bits.TrailingZeros64(m) >> 3
				i += n
				w += n
				break
			}
			i += 8
			w += 8
		}
		if i >= len(raw) {
			break
		}
		c := raw[i]
		switch c {
		case '&':
			break loop
		case '=':
			if name {
				break loop
			}
		case '+':
			c = ' '
		case '%':
			if i+2 >= len(raw) {
				return i, w, fieldError(ErrBadEscape, i, name)
			}
			hi, lo := lex.Unhex[raw[i+1]], lex.Unhex[raw[i+2]]
			if hi|lo > 0xf {
				return i, w, fieldError(ErrBadEscape, i, name)
			}
			c = hi<<4 | lo
			i += 2
		}
		if c == 0 {
			nul = true
		}
		acc |= c
		buf[w] = c
		w++
		i++
	}
	dec := buf[ws:w]
	if acc >= utf8.RuneSelf && !utf8.Valid(dec) {
		return i, w, fieldError(ErrInvalidUTF8, rawOffset(raw, start, firstInvalidUTF8(dec)), name)
	}
	if nul {
		return i, w, fieldError(ErrNULByte, rawOffset(raw, start, indexNUL(dec)), name)
	}
	return i, w, nil
}

const (
	ones  = 0x0101010101010101
	highs = 0x8080808080808080
)

// special flags the bytes of x that decode needs to look at: '&', '=',
// '+', '%', NUL and non-ASCII. Its lowest flag is exact (higher ones may
// be spurious), so decode can jump straight to the first such byte.
func special(x uint64) uint64 {
	return hasZero(x^('&'*ones)) | hasZero(x^('='*ones)) | hasZero(x^('+'*ones)) | hasZero(x^('%'*ones)) |
		hasZero(x) | x&highs
}

// hasZero is non-zero if some byte of x is zero.
func hasZero(x uint64) uint64 { return (x - ones) &^ x & highs }

// fieldError builds the error for a problem at raw[off] in a name or value.
func fieldError(kind *Error, off int, name bool) *Error {
	detail := kind.Detail()
	if kind != ErrBadEscape {
		if name {
			detail += " in parameter name"
		} else {
			detail += " in parameter value"
		}
	}
	return kind.At(off, detail)
}

// rawOffset maps index k of the bytes decoded from raw[start:] back to an
// offset in raw. Only error paths call it.
func rawOffset(raw []byte, start, k int) int {
	i := start
	for ; k > 0; k-- {
		if raw[i] == '%' {
			i += 3
		} else {
			i++
		}
	}
	return i
}

func firstInvalidUTF8(b []byte) int {
	for i := 0; i < len(b); {
		r, n := utf8.DecodeRune(b[i:])
		if r == utf8.RuneError && n == 1 {
			return i
		}
		i += n
	}
	return len(b)
}

func indexNUL(b []byte) int {
	for i, c := range b {
		if c == 0 {
			return i
		}
	}
	return len(b)
}

// Get returns the value of the first parameter called name, or nil if
// there is none (a present but empty value is non-nil when it came from
// Parse).
func Get(params []record.Param, name string) []byte {
	for i := range params {
		if string(params[i].Name) == name {
			return params[i].Value
		}
	}
	return nil
}
