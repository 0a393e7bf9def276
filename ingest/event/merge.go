package event

import (
	"bytes"
	"slices"
	"unicode/utf8"
)

// Helpers that rebuild an event object from parts of validated JSON
// objects without decoding it: the Segment endpoints (docs/segment.md) merge
// a batch's context into each of its events this way. Every obj argument
// must be an object that ValidateObject accepted (or a member value of
// one); on anything else the helpers stop early but never panic.

// Raw returns the raw bytes of the value of the top-level member name of
// obj, whatever its type (a sub-slice of obj), and whether there is one.
// As with Field, the last of duplicate members wins and names are
// compared after unescaping.
func Raw(obj []byte, name string) ([]byte, bool) {
	vs, ve := -1, -1
	eachMember(obj, func(key []byte, esc bool, _, start, end int) bool {
		if keyEquals(key, esc, name) {
			vs, ve = start, end
		}
		return true
	})
	if vs < 0 {
		return nil, false
	}
	return obj[vs:ve:ve], true
}

// IsObject reports whether the JSON value v starts as an object.
func IsObject(v []byte) bool {
	i := skipWS(v, 0)
	return i < len(v) && v[i] == '{'
}

// AppendMembers appends the top-level members of obj whose names are not
// in skip, byte for byte and separated by commas, without the braces. n is
// the number of members already written into the enclosing object: a comma
// goes before the first appended member when n > 0. It returns dst and the
// new count.
func AppendMembers(dst, obj []byte, skip []string, n int) ([]byte, int) {
	eachMember(obj, func(key []byte, esc bool, member, start, end int) bool {
		if keyIn(key, esc, skip) {
			return true
		}
		if n > 0 {
			dst = append(dst, ',')
		}
		n++
		dst = append(dst, obj[member:member+len(key)+2]...)
		dst = append(dst, ':')
		dst = append(dst, obj[start:end]...)
		return true
	})
	return dst, n
}

// AppendMerged appends one object holding the members of a, then those
// members of b whose names a does not have: a shallow merge in which a
// wins. A nil or non-object a or b counts as an empty object.
func AppendMerged(dst, a, b []byte) []byte {
	dst = append(dst, '{')
	n := 0
	if IsObject(a) {
		dst, n = AppendMembers(dst, a, nil, n)
	}
	if IsObject(b) {
		eachMember(b, func(key []byte, esc bool, member, start, end int) bool {
			if hasMember(a, key, esc) {
				return true
			}
			if n > 0 {
				dst = append(dst, ',')
			}
			n++
			dst = append(dst, b[member:member+len(key)+2]...)
			dst = append(dst, ':')
			dst = append(dst, b[start:end]...)
			return true
		})
	}
	return append(dst, '}')
}

// hasMember reports whether obj (nil: none) has a top-level member whose
// name equals the raw string contents key (escaped if esc).
func hasMember(obj, key []byte, esc bool) bool {
	if !IsObject(obj) {
		return false
	}
	found := false
	eachMember(obj, func(k []byte, kesc bool, _, _, _ int) bool {
		if rawKeysEqual(k, kesc, key, esc) {
			found = true
			return false
		}
		return true
	})
	return found
}

// rawKeysEqual compares two raw member names after unescaping.
func rawKeysEqual(a []byte, aesc bool, b []byte, besc bool) bool {
	switch {
	case !aesc && !besc:
		return string(a) == string(b)
	case !besc:
		return keyEqualsBytes(a, aesc, b)
	case !aesc:
		return keyEqualsBytes(b, besc, a)
	}
	// Both escaped (rare): unescape one into a stack buffer.
	var buf [128]byte
	u := unescape(buf[:0], b)
	return keyEqualsBytes(a, true, u)
}

// keyEqualsBytes is keyEquals for a name held in bytes.
func keyEqualsBytes(key []byte, esc bool, name []byte) bool {
	if !esc {
		return string(key) == string(name)
	}
	var buf [4]byte
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
		if len(name)-j < len(enc) || string(name[j:j+len(enc)]) != string(enc) {
			return false
		}
		j += len(enc)
	}
	return j == len(name)
}

// eachMember calls fn for each top-level member of obj with its raw name
// (between the quotes), whether the name has escapes, the offset of its
// opening quote and the bounds of its value, until fn returns false.
func eachMember(obj []byte, fn func(key []byte, esc bool, member, start, end int) bool) {
	i := skipWS(obj, 0)
	if i >= len(obj) || obj[i] != '{' {
		return
	}
	i++
	for {
		i = skipWS(obj, i)
		if i >= len(obj) || obj[i] != '"' {
			return // '}' or malformed
		}
		ke, esc := stringEnd(obj, i+1)
		if ke < 0 {
			return
		}
		member := i
		i = skipWS(obj, ke+1)
		if i >= len(obj) || obj[i] != ':' {
			return
		}
		start := skipWS(obj, i+1)
		end := skipValue(obj, start)
		if end <= start {
			return
		}
		if !fn(obj[member+1:ke], esc, member, start, end) {
			return
		}
		if i = skipWS(obj, end); i < len(obj) && obj[i] == ',' {
			i++
		}
	}
}

// CountMembers is the number of top-level members of obj (0 when it is
// not an object).
func CountMembers(obj []byte) int {
	n := 0
	eachMember(obj, func([]byte, bool, int, int, int) bool {
		n++
		return true
	})
	return n
}

// Member is one top-level member of an object: its name as sent (between
// the quotes, with escapes when Esc) and its raw value.
type Member struct {
	Name  []byte
	Esc   bool
	Value []byte
}

// Is reports whether the member's name, unescaped, is name.
func (m Member) Is(name string) bool { return keyEquals(m.Name, m.Esc, name) }

// EachMember calls fn with each top-level member of obj, in order, until
// fn returns false: one pass, for callers that want several members.
func EachMember(obj []byte, fn func(m Member) bool) {
	eachMember(obj, func(key []byte, esc bool, _, start, end int) bool {
		return fn(Member{Name: key, Esc: esc, Value: obj[start:end:end]})
	})
}

// AppendMember appends m as "name":value, its name and value as sent.
func AppendMember(dst []byte, m Member) []byte {
	dst = append(dst, '"')
	dst = append(dst, m.Name...)
	dst = append(dst, '"', ':')
	return append(dst, m.Value...)
}

// Scalar returns a raw value as Field returns a member's: a string
// unescaped (a sub-slice of v without escapes, else decoded into
// scratch[len(scratch):]), a number as its literal text; ok is false for
// anything else.
func Scalar(v, scratch []byte) (val []byte, newScratch []byte, ok bool) {
	if len(v) == 0 {
		return nil, scratch, false
	}
	switch c := v[0]; {
	case c == '"' && len(v) >= 2:
		raw := v[1 : len(v)-1 : len(v)-1]
		if bytes.IndexByte(raw, '\\') < 0 {
			return raw, scratch, true
		}
		n := len(scratch)
		scratch = unescape(slices.Grow(scratch, len(raw)), raw)
		return scratch[n:len(scratch):len(scratch)], scratch, true
	case c == '-' || c >= '0' && c <= '9':
		return v, scratch, true
	}
	return nil, scratch, false
}
