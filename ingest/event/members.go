package event

import (
	"bytes"
	"slices"

	"github.com/beacongate/beacongate/ingest/record"
)

// RawField returns the raw JSON text of the top-level member name of obj,
// an object that ValidateObject accepted: a string with its quotes, an
// object or array with its brackets. The last member of that name wins, as
// in Field. It reports false when the member is absent or obj is not a
// valid object; it never panics.
func RawField(obj []byte, name string) ([]byte, bool) {
	var raw []byte
	found := false
	ok := walk(obj, func(key []byte, esc bool, val []byte) bool {
		if keyEquals(key, esc, name) {
			raw, found = val, true
		}
		return true
	})
	return raw, ok && found
}

// RawFields is RawField for several names in one pass over obj: vals[i]
// is set to the raw value of names[i], or left nil when it is absent.
// vals must be as long as names. It reports false when obj is not a
// valid object.
func RawFields(obj []byte, names []string, vals [][]byte) bool {
	clear(vals)
	return walk(obj, func(key []byte, esc bool, val []byte) bool {
		for i, name := range names {
			if keyEquals(key, esc, name) {
				vals[i] = val
			}
		}
		return true
	})
}

// AppendParams appends the top-level members of obj, an object that
// ValidateObject accepted, to dst as name/value parameters, in object
// order: names and string values unescaped (into scratch, as in Field),
// numbers, true and false as their literal text. A null member is left
// out. It stops at the first member whose value is an object or an array
// and returns its index in obj (bad >= 0); bad is -1 when every member was
// taken. Everything appended is valid UTF-8 (validation made sure of it).
func AppendParams(dst []record.Param, scratch []byte, obj []byte) (params []record.Param, newScratch []byte, bad int) {
	bad = -1
	walk(obj, func(key []byte, esc bool, val []byte) bool {
		switch val[0] {
		case '{', '[':
			bad = int(cap(obj) - cap(val)) // offset of val in obj
			return false
		case 'n':
			return true
		}
		var name, value []byte
		name, scratch = unescapeInto(scratch, key, esc)
		if val[0] == '"' {
			s := val[1 : len(val)-1]
			value, scratch = unescapeInto(scratch, s, bytes.IndexByte(s, '\\') >= 0)
		} else {
			value = val
		}
		dst = append(dst, record.Param{Name: name, Value: value})
		return true
	})
	return dst, scratch, bad
}

// unescapeInto returns the raw string contents s unescaped: s itself when
// it has no escapes, otherwise decoded into scratch.
func unescapeInto(scratch, s []byte, esc bool) ([]byte, []byte) {
	if !esc {
		return s[:len(s):len(s)], scratch
	}
	n := len(scratch)
	scratch = unescape(slices.Grow(scratch, len(s)), s)
	return scratch[n:len(scratch):len(scratch)], scratch
}

// walk calls fn for each top-level member of obj with its raw key (without
// quotes; esc when it has escapes) and its raw value, until fn returns
// false. It reports false when obj is not a well-formed object.
func walk(obj []byte, fn func(key []byte, esc bool, val []byte) bool) bool {
	i := skipWS(obj, 0)
	if i >= len(obj) || obj[i] != '{' {
		return false
	}
	i = skipWS(obj, i+1)
	if i < len(obj) && obj[i] == '}' {
		return true
	}
	for {
		if i >= len(obj) || obj[i] != '"' {
			return false
		}
		ke, esc := stringEnd(obj, i+1)
		if ke < 0 {
			return false
		}
		key := obj[i+1 : ke]
		i = skipWS(obj, ke+1)
		if i >= len(obj) || obj[i] != ':' {
			return false
		}
		start := skipWS(obj, i+1)
		end := skipValue(obj, start)
		if end <= start {
			return false
		}
		if !fn(key, esc, obj[start:end]) {
			return true
		}
		i = skipWS(obj, end)
		if i >= len(obj) {
			return false
		}
		if obj[i] == '}' {
			return true
		}
		if obj[i] != ',' {
			return false
		}
		i = skipWS(obj, i+1)
	}
}
