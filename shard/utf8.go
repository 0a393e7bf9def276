package shard

import "unicode/utf8"

// The key is both the Kafka record key and the record's shard_key, a
// protobuf string that the record encoder makes valid UTF-8 (each run of
// invalid bytes becomes U+FFFD, as strings.ToValidUTF8 does). Header and
// cookie sources can hold any bytes, so the keyer writes the key already
// valid, the same way: then both are the same bytes, and a consumer that
// re-partitions by shard_key lands where the producer did.

// replacement is U+FFFD, written in place of each run of invalid bytes.
const replacement = "\uFFFD"

// appendText appends b to dst as valid UTF-8, at most room bytes, never
// splitting a rune (or a replacement). It does not allocate when dst has
// room bytes to spare.
func appendText(dst, b []byte, room int) []byte {
	if utf8.Valid(b) {
		return append(dst, cut(b, room)...)
	}
	invalid := false // the previous byte was invalid
	for i := 0; i < len(b); {
		w := 1
		if b[i] >= utf8.RuneSelf {
			_, w = utf8.DecodeRune(b[i:])
			if w == 1 {
				i++
				if !invalid {
					if room < len(replacement) {
						return dst
					}
					dst = append(dst, replacement...)
					room -= len(replacement)
					invalid = true
				}
				continue
			}
		}
		if w > room {
			return dst
		}
		dst = append(dst, b[i:i+w]...)
		room -= w
		i += w
		invalid = false
	}
	return dst
}

// textLen is the length appendText writes for b without a cap.
func textLen(b []byte) int {
	if utf8.Valid(b) {
		return len(b)
	}
	n := 0
	invalid := false
	for i := 0; i < len(b); {
		if b[i] < utf8.RuneSelf {
			i++
			n++
			invalid = false
			continue
		}
		_, w := utf8.DecodeRune(b[i:])
		if w == 1 {
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
