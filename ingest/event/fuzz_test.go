package event

import (
	"bytes"
	"encoding/json"
	"errors"
	"testing"
	"unicode/utf8"
	"unsafe"
)

// fuzzLimits are small so that the fuzzer reaches every limit.
var fuzzLimits = Limits{MaxDepth: 8, MaxEventBytes: 256, MaxEvents: 16}

var reasons = map[string]bool{
	"empty": true, "invalid_json": true, "invalid_utf8": true, "not_object": true,
	"too_deep": true, "event_too_large": true, "too_many_events": true, "not_batch": true,
}

func checkErr(t *testing.T, err error) {
	t.Helper()
	var e *Error
	if !errors.As(err, &e) || !reasons[e.Reason()] || e.Error() == "" {
		t.Fatalf("bad error %#v", err)
	}
}

// oracleObject is the definition ValidateObject implements, from
// encoding/json plus the checks it does not make.
func oracleObject(b []byte, lim Limits) bool {
	lim = lim.withDefaults()
	v := bytes.Trim(b, " \t\r\n")
	return json.Valid(b) && utf8.Valid(b) && len(v) > 0 && v[0] == '{' &&
		len(v) <= lim.MaxEventBytes && jsonDepth(v) <= lim.MaxDepth && !loneSurrogate(v)
}

// jsonDepth is the deepest nesting of valid JSON b.
func jsonDepth(b []byte) int {
	depth, most, inStr := 0, 0, false
	for i := 0; i < len(b); i++ {
		switch c := b[i]; {
		case inStr && c == '\\':
			i++
		case c == '"':
			inStr = !inStr
		case inStr:
		case c == '{' || c == '[':
			depth++
			most = max(most, depth)
		case c == '}' || c == ']':
			depth--
		}
	}
	return most
}

// loneSurrogate reports whether valid JSON b escapes a UTF-16 surrogate
// that is not part of a high+low pair.
func loneSurrogate(b []byte) bool {
	hex := func(i int) int {
		var r int
		for _, c := range b[i : i+4] {
			switch {
			case c >= '0' && c <= '9':
				r = r*16 + int(c-'0')
			case c >= 'a' && c <= 'f':
				r = r*16 + int(c-'a'+10)
			default:
				r = r*16 + int(c-'A'+10)
			}
		}
		return r
	}
	inStr := false
	for i := 0; i < len(b); i++ {
		switch {
		case b[i] == '"':
			inStr = !inStr
		case inStr && b[i] == '\\':
			if b[i+1] != 'u' {
				i++
				continue
			}
			r := hex(i + 2)
			switch {
			case r >= 0xdc00 && r < 0xe000:
				return true
			case r >= 0xd800 && r < 0xdc00:
				if i+12 > len(b) || b[i+6] != '\\' || b[i+7] != 'u' {
					return true
				}
				if r2 := hex(i + 8); r2 < 0xdc00 || r2 >= 0xe000 {
					return true
				}
				i += 6
			}
			i += 5
		}
	}
	return false
}

// inside reports whether s lies inside buf's memory.
func inside(s, buf []byte) bool {
	if len(s) == 0 {
		return true
	}
	if len(buf) == 0 {
		return false
	}
	b0 := uintptr(unsafe.Pointer(unsafe.SliceData(buf)))
	p := uintptr(unsafe.Pointer(unsafe.SliceData(s)))
	return p >= b0 && p+uintptr(len(s)) <= b0+uintptr(len(buf))
}

func FuzzValidateObject(f *testing.F) {
	for _, s := range []string{
		`{}`, ` {"a":[1,2,{"b":null}]} `, `{"a":"\ud800"}`, `{"a":"\ud83d\ude00"}`, "{\"a\":\"\xff\"}",
		`{"a":01}`, `{"a":1.}`, `[1]`, "\xef\xbb\xbf{}", `{"a":[[[[[[[[[]]]]]]]]]}`, `{"a":1}x`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		got, err := ValidateObject(b, fuzzLimits)
		want := oracleObject(b, fuzzLimits)
		if (err == nil) != want {
			t.Fatalf("ValidateObject(%q) = %v, oracle says valid=%v", b, err, want)
		}
		if err != nil {
			checkErr(t, err)
			fields := Fields{Names: []string{"a", "b"}}
			if _, err := ValidateObjectFields(b, fuzzLimits, &fields); err == nil || fields.Vals[0] != nil || fields.Vals[1] != nil {
				t.Fatalf("ValidateObjectFields(%q) = %v, noted %q", b, err, fields.Vals)
			}
			return
		}
		if !bytes.Equal(got, bytes.Trim(b, " \t\r\n")) || !inside(got, b) {
			t.Fatalf("returned %q for %q", got, b)
		}
		// ValidateObjectFields returns the same and notes what RawField
		// reads on its own.
		fields := Fields{Names: []string{"a", "b"}}
		got2, err := ValidateObjectFields(b, fuzzLimits, &fields)
		if err != nil || !bytes.Equal(got2, got) {
			t.Fatalf("ValidateObjectFields(%q) = %q, %v", b, got2, err)
		}
		for k, name := range fields.Names {
			raw, ok := RawField(got, name)
			if ok != (fields.Vals[k] != nil) || !bytes.Equal(raw, fields.Vals[k]) {
				t.Fatalf("%q member %q: noted %q, RawField %q", b, name, fields.Vals[k], raw)
			}
		}
	})
}

func FuzzSplit(f *testing.F) {
	for _, s := range []string{
		`[]`, `[{},{"a":1}]`, `[1,"x",null,[],{}]`, `[{},{} {}]`, `[{},]`, `[{}] x`,
		"{}\n{\"a\":}\r\n\n[1]\n{}", `{"a":1}`, "{\"a\":\"\xff\"}\n{}", `[{"a":"\udc00"},{}]`,
		`[{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{}]`, "\xef\xbb\xbf[]", "x",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		type call struct {
			ev  []byte
			err error
		}
		var calls []call
		// The members SplitFields notes are what RawField reads from the
		// event on its own.
		f := Fields{Names: []string{"a", "k", "\u00e9"}}
		err := SplitFields(body, fuzzLimits, &f, func(i int, ev []byte, err error) bool {
			if i != len(calls) {
				t.Fatalf("index %d after %d calls", i, len(calls))
			}
			calls = append(calls, call{ev, err})
			for k, name := range f.Names {
				raw, ok := RawField(ev, name)
				if err != nil {
					raw, ok = nil, false
				}
				if ok != (f.Vals[k] != nil) || !bytes.Equal(raw, f.Vals[k]) {
					t.Fatalf("event %d %q (%v), member %q: noted %q, RawField %q", i, ev, err, name, f.Vals[k], raw)
				}
			}
			return true
		})
		if err != nil {
			checkErr(t, err)
			// Only trailing data in a body that ends in ']' is found late.
			if v := bytes.TrimRight(body, " \t\r\n"); len(calls) != 0 && !(errors.Is(err, ErrInvalidJSON) && v[len(v)-1] == ']') {
				t.Fatalf("Split returned %v after %d calls", err, len(calls))
			}
			return
		}
		if len(calls) > fuzzLimits.MaxEvents+1 {
			t.Fatalf("%d calls over the limit", len(calls))
		}
		for i, c := range calls {
			if !inside(c.ev, body) {
				t.Fatalf("event %d not inside body", i)
			}
			if c.err != nil {
				checkErr(t, c.err)
				continue
			}
			if i >= fuzzLimits.MaxEvents {
				t.Fatalf("event %d accepted over the limit", i)
			}
			if v, err := ValidateObject(c.ev, fuzzLimits); err != nil || !bytes.Equal(v, c.ev) {
				t.Fatalf("event %d %q: ValidateObject says %v", i, c.ev, err)
			}
		}

		// Where encoding/json can delimit the batch, the split must agree.
		v := bytes.Trim(body, " \t\r\n")
		switch {
		case len(v) > 0 && v[0] == '[' && json.Valid(v) && utf8.Valid(v) && jsonDepth(v) <= MaxDepthCap:
			var elems []json.RawMessage
			if err := json.Unmarshal(v, &elems); err != nil {
				t.Fatal(err)
			}
			if len(elems) != len(calls) {
				t.Fatalf("%d calls for %d elements", len(calls), len(elems))
			}
			for i, e := range elems {
				if (calls[i].err == nil) != oracleObject(e, fuzzLimits) {
					t.Fatalf("element %d %q: %v", i, e, calls[i].err)
				}
			}
		case len(v) > 0 && v[0] == '{':
			var lines [][]byte
			for _, l := range bytes.Split(body, []byte("\n")) {
				if l = bytes.Trim(l, " \t\r"); len(l) > 0 {
					lines = append(lines, l)
				}
			}
			if len(lines) != len(calls) {
				t.Fatalf("%d calls for %d lines", len(calls), len(lines))
			}
			for i, l := range lines {
				if !bytes.Equal(l, calls[i].ev) || (calls[i].err == nil) != oracleObject(l, fuzzLimits) {
					t.Fatalf("line %d %q: got %q, %v", i, l, calls[i].ev, calls[i].err)
				}
			}
		}
	})
}

func FuzzField(f *testing.F) {
	for _, s := range [][2]string{
		{`{"uid":"u1","sid":2}`, "uid"}, {`{"uid":"u1","sid":2}`, "sid"}, {`{"\u0075id":"a\nb"}`, "uid"},
		{`{"k":1,"k":"x"}`, "k"}, {`{"o":{"k":"in"}}`, "k"}, {`{"k":true}`, "k"}, {`{"k":"\ud83d\ude00"}`, "k"},
		{`{"é":"x"}`, "é"}, {`{"a":`, "a"}, {`["k"]`, "k"},
	} {
		f.Add([]byte(s[0]), s[1])
	}
	f.Fuzz(func(t *testing.T, obj []byte, name string) {
		scratch := make([]byte, 2, 8)
		val, sc, ok := Field(obj, name, scratch)
		if !inside(val, obj) && !inside(val, sc[2:]) {
			t.Fatalf("value %q neither in obj nor scratch", val)
		}
		if len(sc) < 2 || len(sc)-2 > len(obj) {
			t.Fatalf("scratch len %d", len(sc))
		}
		if _, err := ValidateObject(obj, Limits{}); err != nil {
			return
		}
		var m map[string]json.RawMessage
		if err := json.Unmarshal(obj, &m); err != nil {
			t.Fatalf("encoding/json rejects validated %q: %v", obj, err)
		}
		raw, present := m[name]
		var want []byte
		wantOK := false
		if present {
			switch c := raw[0]; {
			case c == '"':
				var s string
				if err := json.Unmarshal(raw, &s); err != nil {
					t.Fatal(err)
				}
				want, wantOK = []byte(s), true
			case c == '-' || c >= '0' && c <= '9':
				want, wantOK = raw, true
			}
		}
		if ok != wantOK || !bytes.Equal(val, want) {
			t.Fatalf("Field(%q, %q) = %q, %v; encoding/json says %q, %v", obj, name, val, ok, want, wantOK)
		}
	})
}
