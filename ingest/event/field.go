package event

import (
	"bytes"
	"slices"
	"unicode/utf16"
	"unicode/utf8"
)

// Field returns the value of the top-level member name of obj, an object
// that ValidateObject accepted, as bytes usable as a key (a shard key,
// say). Nested members with the same name are never matched, and member
// names are compared after unescaping ("\u0073id" is "sid").
//
// A string value is returned unescaped: as a sub-slice of obj if it has
// no escapes, otherwise decoded into scratch[len(scratch):] (growing it at
// most once) and returned with the grown scratch. A number is returned as
// its literal text. true, false, null, objects and arrays are reported as
// not found, as is everything when obj is not a valid object (Field does
// not validate, but never panics).
//
// If the object has the name more than once, the last member wins, as in
// encoding/json and JavaScript's JSON.parse, so the key agrees with what
// consumers of the event will decode.
func Field(obj []byte, name string, scratch []byte) (val []byte, newScratch []byte, ok bool) {
	i := skipWS(obj, 0)
	if i >= len(obj) || obj[i] != '{' {
		return nil, scratch, false
	}
	i = skipWS(obj, i+1)
	if i < len(obj) && obj[i] == '}' {
		return nil, scratch, false
	}
	vs, ve := -1, -1 // bounds of the last matching member's value
	for {
		if i >= len(obj) || obj[i] != '"' {
			return nil, scratch, false
		}
		ke, esc := stringEnd(obj, i+1)
		if ke < 0 {
			return nil, scratch, false
		}
		key := obj[i+1 : ke]
		i = skipWS(obj, ke+1)
		if i >= len(obj) || obj[i] != ':' {
			return nil, scratch, false
		}
		start := skipWS(obj, i+1)
		end := skipValue(obj, start)
		if end <= start {
			return nil, scratch, false
		}
		if keyEquals(key, esc, name) {
			vs, ve = start, end
		}
		i = skipWS(obj, end)
		if i >= len(obj) {
			return nil, scratch, false
		}
		if obj[i] == '}' {
			break
		}
		if obj[i] != ',' {
			return nil, scratch, false
		}
		i = skipWS(obj, i+1)
	}
	if vs < 0 {
		return nil, scratch, false
	}
	return Value(obj[vs:ve:ve], scratch)
}

// Value returns raw, the JSON text of a valid value (as RawField or a
// split's Fields give it), as Field returns a member's value: a string
// unescaped (a sub-slice of raw, or decoded into scratch[len(scratch):]
// when it has escapes), a number as its literal text; anything else is
// not found.
func Value(raw []byte, scratch []byte) (val []byte, newScratch []byte, ok bool) {
	if len(raw) == 0 {
		return nil, scratch, false
	}
	switch c := raw[0]; {
	case c == '"' && len(raw) >= 2:
		s := raw[1 : len(raw)-1 : len(raw)-1] // capacity clipped, so appends cannot clobber raw
		if bytes.IndexByte(s, '\\') < 0 {
			return s, scratch, true
		}
		n := len(scratch)
		scratch = unescape(slices.Grow(scratch, len(s)), s)
		return scratch[n:len(scratch):len(scratch)], scratch, true
	case c == '-' || c >= '0' && c <= '9':
		return raw[:len(raw):len(raw)], scratch, true
	}
	return nil, scratch, false
}

// AppendWithout appends obj, an object that ValidateObject accepted, to
// dst without its top-level members whose names are in names, compared
// after unescaping as Field compares them. The members kept are copied
// byte for byte, but not the whitespace between them.
func AppendWithout(dst, obj []byte, names []string) []byte {
	dst = append(dst, '{')
	first := true
	i := skipWS(obj, 0) + 1 // past '{'
	for {
		i = skipWS(obj, i)
		if i >= len(obj) || obj[i] != '"' {
			break // '}' (or, against the contract, not an object)
		}
		ke, esc := stringEnd(obj, i+1)
		if ke < 0 {
			break
		}
		member := i
		key := obj[i+1 : ke]
		i = skipWS(obj, ke+1) + 1 // past ':'
		start := skipWS(obj, i)
		end := skipValue(obj, start)
		if end <= start {
			break
		}
		if i = skipWS(obj, end); i < len(obj) && obj[i] == ',' {
			i++
		}
		if keyIn(key, esc, names) {
			continue
		}
		if !first {
			dst = append(dst, ',')
		}
		first = false
		dst = append(dst, obj[member:ke+1]...)
		dst = append(dst, ':')
		dst = append(dst, obj[start:end]...)
	}
	return append(dst, '}')
}

// skipValue returns the index after the value at b[i] of valid JSON, or
// -1. It only follows strings and brackets.
func skipValue(b []byte, i int) int {
	if i >= len(b) {
		return -1
	}
	switch b[i] {
	case '"':
		if j, _ := stringEnd(b, i+1); j >= 0 {
			return j + 1
		}
		return -1
	case '{', '[':
		depth := 0
		for ; i < len(b); i++ {
			switch b[i] {
			case '"':
				j, _ := stringEnd(b, i+1)
				if j < 0 {
					return -1
				}
				i = j
			case '{', '[':
				depth++
			case '}', ']':
				if depth--; depth == 0 {
					return i + 1
				}
			}
		}
		return -1
	}
	for ; i < len(b); i++ {
		switch b[i] {
		case ',', '}', ']', ' ', '\t', '\n', '\r':
			return i
		}
	}
	return i
}

// keyIn reports whether keyEquals holds for one of names.
func keyIn(key []byte, esc bool, names []string) bool {
	for _, name := range names {
		if keyEquals(key, esc, name) {
			return true
		}
	}
	return false
}

// keyEquals reports whether the raw string contents key, which has
// escapes if esc, equal name once unescaped. It decodes escapes on the
// fly rather than into a buffer.
func keyEquals(key []byte, esc bool, name string) bool {
	if !esc {
		return string(key) == name
	}
	var buf [utf8.UTFMax]byte
	j := 0
	for i := 0; i < len(key); {
		if key[i] != '\\' {
			if j >= len(name) || key[i] != name[j] {
				return false
			}
			i++
			j++
			continue
		}
		r, n := escapedRune(key, i)
		i += n
		enc := utf8.AppendRune(buf[:0], r)
		if len(name)-j < len(enc) || name[j:j+len(enc)] != string(enc) {
			return false
		}
		j += len(enc)
	}
	return j == len(name)
}

// unescape appends the unescaped form of the raw string contents s to dst.
func unescape(dst, s []byte) []byte {
	for i := 0; i < len(s); {
		k := bytes.IndexByte(s[i:], '\\')
		if k < 0 {
			return append(dst, s[i:]...)
		}
		dst = append(dst, s[i:i+k]...)
		r, n := escapedRune(s, i+k)
		dst = utf8.AppendRune(dst, r)
		i += k + n
	}
	return dst
}

// escapedRune decodes the escape whose backslash is at s[i] and returns
// the rune and the escape's length. A surrogate pair is one rune; a lone
// surrogate or malformed escape (impossible after validation) decodes to
// U+FFFD.
func escapedRune(s []byte, i int) (rune, int) {
	if i+1 >= len(s) {
		return utf8.RuneError, len(s) - i
	}
	switch c := s[i+1]; c {
	case 'b':
		return '\b', 2
	case 'f':
		return '\f', 2
	case 'n':
		return '\n', 2
	case 'r':
		return '\r', 2
	case 't':
		return '\t', 2
	case 'u':
		r, ok := hex4(s, i+2)
		if !ok {
			return utf8.RuneError, 2
		}
		if utf16.IsSurrogate(r) {
			if i+7 < len(s) && s[i+6] == '\\' && s[i+7] == 'u' {
				if r2, ok := hex4(s, i+8); ok {
					if p := utf16.DecodeRune(r, r2); p != utf8.RuneError {
						return p, 12
					}
				}
			}
			return utf8.RuneError, 6
		}
		return r, 6
	default: // '"', '\\', '/'
		return rune(c), 2
	}
}
