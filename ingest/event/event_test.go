package event

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

// reasonOf returns err's Reason, "" for nil, and fails for foreign errors.
func reasonOf(t *testing.T, err error) string {
	t.Helper()
	if err == nil {
		return ""
	}
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("error %v (%T) is not an *Error", err, err)
	}
	return e.Reason()
}

func nest(n int) string { return strings.Repeat("[", n) + strings.Repeat("]", n) }

func TestValidateObject(t *testing.T) {
	tests := []struct {
		name, in string
		lim      Limits
		reason   string // "" = valid
		offset   int    // checked when reason is set and offset >= 0
	}{
		{"empty object", "{}", Limits{}, "", 0},
		{"members", `{"a":1,"b":[true,false,null],"c":{"d":"e"},"f":-0.5e+10,"g":""}`, Limits{}, "", 0},
		{"surrounding ws", " \t\r\n{ \"a\" : [ 1 , 2 ] }\n ", Limits{}, "", 0},
		{"all escapes", `{"s":"\"\\\/\b\f\n\r\t\u00e9\uD83D\uDE00"}`, Limits{}, "", 0},
		{"utf8", `{"é":"日本語 😀"}`, Limits{}, "", 0},
		{"U+FFFD literal", "{\"a\":\"\xef\xbf\xbd\"}", Limits{}, "", 0},
		{"numbers", `{"a":[0,-0,1,10,1.5,1e5,1E-5,-1.0e+0,123456789012345678901234567890]}`, Limits{}, "", 0},
		{"depth at limit", `{"a":` + nest(63) + `}`, Limits{}, "", 0},
		{"custom depth at limit", `{"a":{"b":{}}}`, Limits{MaxDepth: 3}, "", 0},
		{"size at limit", `{"a":"xxxx"}`, Limits{MaxEventBytes: 12}, "", 0},
		{"size ignores ws", "  {\"a\":\"xxxx\"}  ", Limits{MaxEventBytes: 12}, "", 0},

		{"empty", "", Limits{}, "empty", -1},
		{"whitespace", " \r\n\t ", Limits{}, "empty", -1},
		{"array", "[1]", Limits{}, "not_object", -1},
		{"string", `"x"`, Limits{}, "not_object", -1},
		{"number", "1", Limits{}, "not_object", -1},
		{"null", " null ", Limits{}, "not_object", -1},
		{"bom", "\xef\xbb\xbf{}", Limits{}, "invalid_json", 0},
		{"two objects", "{} {}", Limits{}, "invalid_json", 3},
		{"trailing garbage", "{}x", Limits{}, "invalid_json", 2},
		{"truncated", `{"a":1`, Limits{}, "invalid_json", 6},
		{"trailing comma", `{"a":1,}`, Limits{}, "invalid_json", 7},
		{"array trailing comma", `{"a":[1,]}`, Limits{}, "invalid_json", 8},
		{"missing comma", `{"a":1 "b":2}`, Limits{}, "invalid_json", 7},
		{"array missing comma", `{"a":[1 2]}`, Limits{}, "invalid_json", 8},
		{"missing colon", `{"a" 1}`, Limits{}, "invalid_json", 5},
		{"unquoted key", `{a:1}`, Limits{}, "invalid_json", 1},
		{"single quotes", `{'a':1}`, Limits{}, "invalid_json", 1},
		{"mismatched close", `{"a":[1}`, Limits{}, "invalid_json", 7},
		{"leading zero", `{"a":01}`, Limits{}, "invalid_json", 6},
		{"bare dot", `{"a":1.}`, Limits{}, "invalid_json", 5},
		{"dot first", `{"a":.5}`, Limits{}, "invalid_json", 5},
		{"minus", `{"a":-}`, Limits{}, "invalid_json", 5},
		{"exponent", `{"a":1e}`, Limits{}, "invalid_json", 5},
		{"exponent sign", `{"a":1e+}`, Limits{}, "invalid_json", 5},
		{"plus", `{"a":+1}`, Limits{}, "invalid_json", 5},
		{"hex", `{"a":0x1}`, Limits{}, "invalid_json", 6},
		{"NaN", `{"a":NaN}`, Limits{}, "invalid_json", 5},
		{"bad literal", `{"a":tru}`, Limits{}, "invalid_json", 5},
		{"literal case", `{"a":True}`, Limits{}, "invalid_json", 5},
		{"bad escape", `{"a":"\x"}`, Limits{}, "invalid_json", 6},
		{"short unicode escape", `{"a":"\u12"}`, Limits{}, "invalid_json", 6},
		{"raw newline in string", "{\"a\":\"x\ny\"}", Limits{}, "invalid_json", 7},
		{"raw tab in string", "{\"a\":\"\t\"}", Limits{}, "invalid_json", 6},
		{"unterminated string", `{"a":"xxxxxxxxxxxxxxxxxxxxx`, Limits{}, "invalid_json", 27},
		{"comment", `{/*c*/}`, Limits{}, "invalid_json", 1},
		{"non-ascii outside string", "{\"a\":1\xc2\xa0}", Limits{}, "invalid_json", 6},
		{"invalid utf8 in string", "{\"a\":\"ok\xff\"}", Limits{}, "invalid_utf8", 8},
		{"invalid utf8 in key", "{\"\xc3\x28\":1}", Limits{}, "invalid_utf8", 2},
		{"utf8 surrogate bytes", "{\"a\":\"\xed\xa0\x80\"}", Limits{}, "invalid_utf8", 6},
		{"overlong utf8", "{\"a\":\"\xc0\xaf\"}", Limits{}, "invalid_utf8", 6},
		{"truncated utf8", "{\"a\":\"\xe2\x82\"}", Limits{}, "invalid_utf8", 6},
		{"invalid utf8 after 8-byte run", "{\"a\":\"abcdefghijklmnop\x80\"}", Limits{}, "invalid_utf8", 22},
		{"lone high surrogate", `{"a":"\ud800"}`, Limits{}, "invalid_utf8", 6},
		{"lone low surrogate", `{"a":"\udc00"}`, Limits{}, "invalid_utf8", 6},
		{"reversed pair", `{"a":"\udc00\ud800"}`, Limits{}, "invalid_utf8", 6},
		{"high then non-surrogate", `{"a":"\ud800\u0041"}`, Limits{}, "invalid_utf8", 6},
		{"high then text", `{"a":"\ud800x"}`, Limits{}, "invalid_utf8", 6},
		{"too deep", `{"a":` + nest(64) + `}`, Limits{}, "too_deep", 68},
		{"too deep custom", `{"a":{"b":{"c":1}}}`, Limits{MaxDepth: 2}, "too_deep", 10},
		{"deep 10000", strings.Repeat(`{"a":`, 10000) + "1" + strings.Repeat("}", 10000), Limits{}, "too_deep", 64 * 5},
		{"deep 10000 unclosed", strings.Repeat("[", 10000), Limits{}, "too_deep", 64},
		{"deep beyond cap", strings.Repeat(`{"a":`, 2000) + "1" + strings.Repeat("}", 2000), Limits{MaxDepth: 5000}, "too_deep", 1024 * 5},
		{"too large", `{"a":"xxxxx"}`, Limits{MaxEventBytes: 12}, "event_too_large", 0},
		{"too large default", `{"a":"` + strings.Repeat("x", 64<<10) + `"}`, Limits{}, "event_too_large", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ValidateObject([]byte(tt.in), tt.lim)
			if r := reasonOf(t, err); r != tt.reason {
				t.Fatalf("reason %q (%v), want %q", r, err, tt.reason)
			}
			if tt.reason == "" {
				if want := strings.TrimSpace(tt.in); string(got) != want {
					t.Fatalf("got %q, want %q", got, want)
				}
				if !json.Valid(got) {
					t.Fatalf("encoding/json disagrees")
				}
				return
			}
			if got != nil {
				t.Fatalf("got %q with error", got)
			}
			var e *Error
			errors.As(err, &e)
			if tt.offset >= 0 && e.Offset != tt.offset {
				t.Fatalf("offset %d (%v), want %d", e.Offset, err, tt.offset)
			}
		})
	}
}

func TestErrorText(t *testing.T) {
	for _, tt := range []struct {
		in   string
		lim  Limits
		want string
	}{
		{`{"a":1 "b":2}`, Limits{}, "event: expected ',' or '}' in object at byte 7"},
		{`{"a":"\ud800"}`, Limits{}, "event: unpaired UTF-16 surrogate escape at byte 6"},
		{`{"a":[[]]}`, Limits{MaxDepth: 2}, "event: nesting deeper than the limit (limit 2) at byte 6"},
		{`{"a":"xxxxx"}`, Limits{MaxEventBytes: 12}, "event: event too large (13 bytes, limit 12) at byte 0"},
		{"\xef\xbb\xbf{}", Limits{}, "event: byte order mark not allowed at byte 0"},
		{"  ", Limits{}, "event: empty body"},
		{"[]", Limits{}, "event: event is not a JSON object"},
	} {
		_, err := ValidateObject([]byte(tt.in), tt.lim)
		if err == nil || err.Error() != tt.want {
			t.Errorf("%q: error %v, want %q", tt.in, err, tt.want)
		}
	}
}

func TestErrorsIs(t *testing.T) {
	_, err := ValidateObject([]byte(`{"a":"\x"}`), Limits{})
	if !errors.Is(err, ErrInvalidJSON) || errors.Is(err, ErrInvalidUTF8) {
		t.Fatalf("errors.Is mismatch for %v", err)
	}
	wrapped := errors.Join(errors.New("ctx"), err)
	if !errors.Is(wrapped, ErrInvalidJSON) {
		t.Fatal("errors.Is through wrapping")
	}
	for _, s := range []*Error{ErrEmpty, ErrInvalidJSON, ErrInvalidUTF8, ErrNotObject, ErrTooDeep, ErrEventTooLarge, ErrTooManyEvents, ErrNotBatch} {
		if s.Reason() == "" || s.Error() == "" || !errors.Is(s, s) {
			t.Fatalf("sentinel %#v broken", s)
		}
	}
}

func TestDepthCap(t *testing.T) {
	// MaxDepth above the cap is clamped, not an unbounded stack.
	ok := `{"a":` + nest(MaxDepthCap-1) + `}`
	if _, err := ValidateObject([]byte(ok), Limits{MaxDepth: 1 << 20}); err != nil {
		t.Fatalf("depth %d: %v", MaxDepthCap, err)
	}
	deep := `{"a":` + nest(MaxDepthCap) + `}`
	if _, err := ValidateObject([]byte(deep), Limits{MaxDepth: 1 << 20}); !errors.Is(err, ErrTooDeep) {
		t.Fatalf("depth %d: %v", MaxDepthCap+1, err)
	}
}
