package record

import "unicode/utf8"

// replacement is U+FFFD, the text written in place of invalid UTF-8.
const replacement = "\uFFFD"

// validUTF8Len returns the length of v as Append writes it, and whether v
// is valid UTF-8 (and so written as is).
func validUTF8Len(v []byte) (n int, valid bool) {
	if utf8.Valid(v) {
		return len(v), true
	}
	return sanitizedLen(v), false
}

// sanitizedLen returns the length of strings.ToValidUTF8(v, "\uFFFD"),
// without building it: each run of invalid bytes becomes one U+FFFD.
func sanitizedLen(v []byte) int {
	n := 0
	invalid := false // the previous byte was invalid
	for i := 0; i < len(v); {
		if v[i] < utf8.RuneSelf {
			i++
			n++
			invalid = false
			continue
		}
		_, w := utf8.DecodeRune(v[i:])
		if w == 1 { // RuneError of width 1: an invalid byte
			i++
			if !invalid {
				n += len(replacement)
				invalid = true
			}
			continue
		}
		i += w
		n += w
		invalid = false
	}
	return n
}

// appendSanitized appends strings.ToValidUTF8(v, "\uFFFD") to dst without
// allocating: valid runs are copied in bulk, each run of invalid bytes
// becomes one U+FFFD. It must agree with sanitizedLen, which sized the
// length prefix already written.
func appendSanitized(dst, v []byte) []byte {
	start := 0       // start of the pending run of valid bytes
	invalid := false // the previous byte was invalid
	for i := 0; i < len(v); {
		if v[i] < utf8.RuneSelf {
			i++
			invalid = false
			continue
		}
		_, w := utf8.DecodeRune(v[i:])
		if w > 1 {
			i += w
			invalid = false
			continue
		}
		dst = append(dst, v[start:i]...)
		if !invalid {
			dst = append(dst, replacement...)
			invalid = true
		}
		i++
		start = i
	}
	return append(dst, v[start:]...)
}
