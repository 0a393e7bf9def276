package event

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
)

// call is one fn call as Split made it: "i:ev" or "i!reason".
func collect(t *testing.T, body string, lim Limits) ([]string, string) {
	t.Helper()
	var got []string
	err := Split([]byte(body), lim, func(i int, ev []byte, err error) bool {
		if err != nil {
			got = append(got, fmt.Sprintf("%d!%s", i, reasonOf(t, err)))
		} else {
			got = append(got, fmt.Sprintf("%d:%s", i, ev))
		}
		return true
	})
	return got, reasonOf(t, err)
}

func TestSplit(t *testing.T) {
	tests := []struct {
		name, body string
		lim        Limits
		want       []string
		reason     string // Split's own error
		late       bool   // the error comes after fn calls
	}{
		{name: "empty array", body: "[]", want: nil},
		{name: "empty array ws", body: " [ \n ] \r\n", want: nil},
		{name: "array", body: `[{"a":1},{"b":2}]`, want: []string{`0:{"a":1}`, `1:{"b":2}`}},
		{name: "array ws everywhere", body: "\n[ \t{\"a\" : 1} ,\r\n {} ]\n", want: []string{`0:{"a" : 1}`, "1:{}"}},
		{name: "array non-objects", body: `[1,"x",null,[],{},true]`, want: []string{"0!not_object", "1!not_object", "2!not_object", "3!not_object", "4:{}", "5!not_object"}},
		{name: "array missing comma", body: `[{},{} {}]`, want: []string{"0:{}", "1:{}", "2!invalid_json"}},
		{name: "array trailing comma", body: `[{},{},]`, want: []string{"0:{}", "1:{}", "2!invalid_json"}},
		{name: "array leading comma", body: `[,{}]`, want: []string{"0!invalid_json"}},
		{name: "array syntax error in element", body: `[{},{"a":01},{}]`, want: []string{"0:{}", "1!invalid_json"}},
		{name: "array truncated", body: `[{},{"a":`, want: []string{"0:{}", "1!invalid_json"}},
		{name: "array unterminated", body: `[{}`, want: []string{"0:{}", "1!invalid_json"}},
		{name: "array element invalid utf8 continues", body: "[{\"a\":\"\xff\"},{}]", want: []string{"0!invalid_utf8", "1:{}"}},
		{name: "array element lone surrogate continues", body: `[{"a":"\udc00"},{}]`, want: []string{"0!invalid_utf8", "1:{}"}},
		{name: "array element too deep continues", body: `[{"a":[[1]]},{}]`, lim: Limits{MaxDepth: 2}, want: []string{"0!too_deep", "1:{}"}},
		{name: "array element 10000 deep stops", body: "[" + nest(10000) + ",{}]", want: []string{"0!too_deep"}},
		{name: "array element too large continues", body: `[{"a":"xxxxxxxxxx"},{}]`, lim: Limits{MaxEventBytes: 10}, want: []string{"0!event_too_large", "1:{}"}},
		{name: "array of max events", body: `[{},{},{}]`, lim: Limits{MaxEvents: 3}, want: []string{"0:{}", "1:{}", "2:{}"}},
		{name: "array over max events", body: `[{},{},{},{}]`, lim: Limits{MaxEvents: 3}, reason: "too_many_events"},
		{name: "array over max then broken", body: `[{},1,2,3 x`, lim: Limits{MaxEvents: 3}, reason: "too_many_events"},
		{name: "array trailing garbage", body: `[{}] x`, reason: "invalid_json"},
		{name: "array trailing garbage then bracket", body: `[{}] x ]`, reason: "invalid_json", late: true, want: []string{"0:{}"}},
		{name: "array second array", body: `[{}][]`, reason: "invalid_json", late: true, want: []string{"0:{}"}},
		{name: "array extra bracket", body: `[{}]]`, reason: "invalid_json", late: true, want: []string{"0:{}"}},
		{name: "array trailing garbage many commas", body: `[{},{},{}] ]`, lim: Limits{MaxEvents: 2}, reason: "too_many_events"},
		{name: "array trailing garbage counted", body: `[{"a":",,,"}] ]`, lim: Limits{MaxEvents: 2}, reason: "invalid_json"},
		{name: "array strings with brackets", body: `[{"a":"]\"}["},{"b":"\\"}]`, want: []string{`0:{"a":"]\"}["}`, `1:{"b":"\\"}`}},

		{name: "ndjson single", body: `{"a":1}`, want: []string{`0:{"a":1}`}},
		{name: "ndjson", body: "{\"a\":1}\n{\"b\":2}\n", want: []string{`0:{"a":1}`, `1:{"b":2}`}},
		{name: "ndjson crlf and blanks", body: "\r\n{\"a\":1}\r\n\r\n  \n{}\r\n", want: []string{`0:{"a":1}`, "1:{}"}},
		{name: "ndjson resumes after syntax error", body: "{}\n{\"a\":}\n{}\n[1]\n{} {}\n{}", want: []string{"0:{}", "1!invalid_json", "2:{}", "3!not_object", "4!invalid_json", "5:{}"}},
		{name: "ndjson no multi-line values", body: "{\n}", want: []string{"0!invalid_json", "1!invalid_json"}},
		{name: "ndjson invalid utf8", body: "{}\n{\"\xff\":1}\n{}", want: []string{"0:{}", "1!invalid_utf8", "2:{}"}},
		{name: "ndjson too large", body: "{\"a\":\"xxxxxxxxxx\"}\n{}", lim: Limits{MaxEventBytes: 10}, want: []string{"0!event_too_large", "1:{}"}},
		{name: "ndjson too deep", body: "{\"a\":[[1]]}\n{}", lim: Limits{MaxDepth: 2}, want: []string{"0!too_deep", "1:{}"}},
		{name: "ndjson max events", body: "{}\n\n{}\n{}\n\n", lim: Limits{MaxEvents: 3}, want: []string{"0:{}", "1:{}", "2:{}"}},
		{name: "ndjson over max events", body: "{}\n{}\n{}\nx", lim: Limits{MaxEvents: 3}, reason: "too_many_events"},

		{name: "empty", body: "", reason: "empty"},
		{name: "whitespace", body: " \r\n\t", reason: "empty"},
		{name: "number", body: "1", reason: "not_batch"},
		{name: "string", body: `"x"`, reason: "not_batch"},
		{name: "garbage", body: "hello", reason: "not_batch"},
		{name: "bom", body: "\xef\xbb\xbf[{}]", reason: "invalid_json"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, reason := collect(t, tt.body, tt.lim)
			if reason != tt.reason {
				t.Fatalf("Split error %q, want %q (calls %q)", reason, tt.reason, got)
			}
			if tt.reason != "" && !tt.late && got != nil {
				t.Fatalf("fn called before a batch error: %q", got)
			}
			if strings.Join(got, " | ") != strings.Join(tt.want, " | ") {
				t.Fatalf("calls\n got %q\nwant %q", got, tt.want)
			}
		})
	}
}

func TestSplitMaxEventsDefault(t *testing.T) {
	mk := func(n int, sep string) string { return strings.TrimSuffix(strings.Repeat("{}"+sep, n), sep) }
	for _, tt := range []struct{ name, body string }{
		{"array", "[" + mk(DefaultMaxEvents, ",") + "]"},
		{"ndjson", mk(DefaultMaxEvents, "\n")},
		{"ndjson crlf", mk(DefaultMaxEvents, "\r\n") + "\r\n\r\n"},
	} {
		n := 0
		if err := Split([]byte(tt.body), Limits{}, func(i int, ev []byte, err error) bool {
			if err != nil || i != n {
				t.Fatalf("%s: event %d: %v", tt.name, i, err)
			}
			n++
			return true
		}); err != nil || n != DefaultMaxEvents {
			t.Fatalf("%s: %v after %d events", tt.name, err, n)
		}
	}
	for _, tt := range []struct{ name, body string }{
		{"array", "[" + mk(DefaultMaxEvents+1, ",") + "]"},
		{"array non-objects", "[" + strings.TrimSuffix(strings.Repeat("1,", DefaultMaxEvents+1), ",") + "]"},
		{"ndjson", mk(DefaultMaxEvents+1, "\n")},
	} {
		err := Split([]byte(tt.body), Limits{}, func(int, []byte, error) bool {
			t.Fatalf("%s: fn called for a batch over the limit", tt.name)
			return false
		})
		if reasonOf(t, err) != "too_many_events" {
			t.Fatalf("%s: %v", tt.name, err)
		}
	}
}

func TestSplitStop(t *testing.T) {
	for _, body := range []string{`[{},{},{}]`, "{}\n{}\n{}"} {
		n := 0
		err := Split([]byte(body), Limits{}, func(i int, ev []byte, err error) bool {
			n++
			return i < 1
		})
		if err != nil || n != 2 {
			t.Fatalf("%q: stopped after %d calls, err %v", body, n, err)
		}
	}
}

func TestSplitOffsets(t *testing.T) {
	body := "{}\n{\"a\":01}\n"
	var off int
	Split([]byte(body), Limits{}, func(i int, ev []byte, err error) bool {
		if err != nil {
			off = err.(*Error).Offset
		}
		return true
	})
	if off != 9 {
		t.Fatalf("offset %d, want 9 (an offset in the body)", off)
	}
}

// TestSplitFields checks the members SplitFields notes against what Field
// and RawField read from each event on their own.
func TestSplitFields(t *testing.T) {
	names := []string{"uid", "n", "o"}
	for _, tc := range []struct {
		name, body string
		want       [][3]string // per event: raw uid, n, o ("" = nil)
	}{
		{"array", `[{"uid":"a","n":1,"o":{"uid":"in"}}, {"x":[{"uid":"deep"}]}, {"n" : -2.5e3 , "uid" : "b\"c" }]`,
			[][3]string{{`"a"`, `1`, `{"uid":"in"}`}, {}, {`"b\"c"`, `-2.5e3`, ``}}},
		{"last wins", `[{"uid":"first","uid":"last"}]`, [][3]string{{`"last"`}}},
		{"escaped name", `[{"\u0075id":"esc","\u006e":true}]`, [][3]string{{`"esc"`, `true`}}},
		{"every type", `[{"uid":null,"n":[1,{"n":2}],"o":false}]`, [][3]string{{`null`, `[1,{"n":2}]`, `false`}}},
		{"rejected", `[{"uid":"ok"},{"uid":"bad","n":"` + "\xff" + `"},1,{"uid":"after"}]`,
			[][3]string{{`"ok"`}, {}, {}, {`"after"`}}},
		{"ndjson", "{\"uid\":\"l1\"}\n\n{\"uid\": \"l2\" ,\"n\":0}\r\n{\"uid\":}\n{\"o\":{}}",
			[][3]string{{`"l1"`}, {`"l2"`, `0`}, {}, {``, ``, `{}`}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := Fields{Names: names}
			var got [][3]string
			err := SplitFields([]byte(tc.body), Limits{}, &f, func(i int, ev []byte, err error) bool {
				var g [3]string
				for k, name := range names {
					g[k] = string(f.Vals[k])
					if err != nil {
						if f.Vals[k] != nil {
							t.Errorf("event %d rejected (%v) but %s noted as %q", i, err, name, f.Vals[k])
						}
						continue
					}
					raw, ok := RawField(ev, name)
					if ok != (f.Vals[k] != nil) || !bytes.Equal(raw, f.Vals[k]) {
						t.Errorf("event %d %s: noted %q, RawField %q (%v)", i, name, f.Vals[k], raw, ok)
					}
					v, _, vok := Value(f.Vals[k], nil)
					fv, _, fok := Field(ev, name, nil)
					if vok != fok || !bytes.Equal(v, fv) {
						t.Errorf("event %d %s: Value %q (%v), Field %q (%v)", i, name, v, vok, fv, fok)
					}
				}
				got = append(got, g)
				return true
			})
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(tc.want) {
				t.Fatalf("%d events, want %d", len(got), len(tc.want))
			}
			for i := range got {
				if got[i] != tc.want[i] {
					t.Errorf("event %d: noted %q, want %q", i, got[i], tc.want[i])
				}
			}
		})
	}
}
