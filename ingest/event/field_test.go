package event

import "testing"

func TestField(t *testing.T) {
	tests := []struct {
		name, obj, key string
		want           string
		ok             bool
		decoded        bool // value must come from scratch
	}{
		{"string", `{"uid":"u-1","sid":"s"}`, "uid", "u-1", true, false},
		{"second", `{"uid":"u-1","sid":"s"}`, "sid", "s", true, false},
		{"ws", " { \"a\" :\t\"x\" , \"b\" : 2 } ", "b", "2", true, false},
		{"number", `{"n":-1.5e3}`, "n", "-1.5e3", true, false},
		{"zero", `{"n":0}`, "n", "0", true, false},
		{"empty string", `{"s":""}`, "s", "", true, false},
		{"escaped value", `{"s":"a\"b\\c\/d\n\u00e9\ud83d\ude00"}`, "s", "a\"b\\c/d\né😀", true, true},
		{"escaped key", `{"\u0075id":"x"}`, "uid", "x", true, false},
		{"escaped key non-ascii", `{"\u00e9":"x","é":"y"}`, "é", "y", true, false},
		{"escaped key mismatch", `{"\u0075ix":"x"}`, "uid", "", false, false},
		{"key prefix", `{"ui":"x","uidd":"y"}`, "uid", "", false, false},
		{"last wins", `{"k":"first","k":"last"}`, "k", "last", true, false},
		{"last wins over type", `{"k":"first","k":null}`, "k", "", false, false},
		{"nested ignored", `{"o":{"uid":"inner"},"a":[{"uid":"x"}],"uid":"top"}`, "uid", "top", true, false},
		{"nested only", `{"o":{"uid":"inner"}}`, "uid", "", false, false},
		{"string containing key", `{"x":"\"uid\":\"no\"","y":1}`, "uid", "", false, false},
		{"true", `{"b":true}`, "b", "", false, false},
		{"null", `{"b":null}`, "b", "", false, false},
		{"object", `{"b":{}}`, "b", "", false, false},
		{"array", `{"b":[1]}`, "b", "", false, false},
		{"absent", `{"a":1}`, "b", "", false, false},
		{"empty object", `{}`, "a", "", false, false},
		{"empty name", `{"":"e"}`, "", "e", true, false},
		{"not object", `["a"]`, "a", "", false, false},
		{"garbage", `{"a":`, "a", "", false, false},
		{"garbage 2", `{"a" 1}`, "a", "", false, false},
		{"garbage 3", `{"a":"x"`, "a", "", false, false},
		{"empty input", ``, "a", "", false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			scratch := make([]byte, 3, 64)
			copy(scratch, "pre")
			val, sc, ok := Field([]byte(tt.obj), tt.key, scratch)
			if ok != tt.ok || string(val) != tt.want {
				t.Fatalf("Field = %q, %v; want %q, %v", val, ok, tt.want, tt.ok)
			}
			if string(sc[:3]) != "pre" {
				t.Fatalf("scratch prefix clobbered: %q", sc)
			}
			if tt.decoded != (len(sc) > 3) {
				t.Fatalf("scratch used %v, want %v", len(sc) > 3, tt.decoded)
			}
			if tt.decoded && string(sc[3:]) != tt.want {
				t.Fatalf("scratch holds %q", sc[3:])
			}
		})
	}
}

func TestFieldScratchGrows(t *testing.T) {
	val, sc, ok := Field([]byte(`{"k":"\u0041\u0042"}`), "k", nil)
	if !ok || string(val) != "AB" || string(sc) != "AB" {
		t.Fatalf("Field = %q, %q, %v", val, sc, ok)
	}
	val2, sc, ok := Field([]byte(`{"k":"\n"}`), "k", sc)
	if !ok || string(val2) != "\n" || string(sc) != "AB\n" || string(val) != "AB" {
		t.Fatalf("second Field = %q, %q, %v (first now %q)", val2, sc, ok, val)
	}
}

func TestAppendWithout(t *testing.T) {
	names := []string{"user_id", "anonymous_id", "a/b"}
	for _, tt := range []struct{ obj, want string }{
		{`{"event":"x","user_id":"u1", "anonymous_id" : "a1","props":{"user_id":"kept, not top level"}}`, `{"event":"x","props":{"user_id":"kept, not top level"}}`},
		{` { "n" : 1 , "l" : [ 1, {"user_id":2} ] , "user_id":3 } `, `{"n":1,"l":[ 1, {"user_id":2} ]}`},
		{`{"user_id":1}`, `{}`},
		{`{}`, `{}`},
		{`{"\u0075ser_id":1,"user_id":2,"k":"\"user_id\""}`, `{"k":"\"user_id\""}`},
		{`{"a\/b":1,"user_idx":true}`, `{"user_idx":true}`},
	} {
		if got := AppendWithout([]byte("prefix"), []byte(tt.obj), names); string(got) != "prefix"+tt.want {
			t.Errorf("AppendWithout(%s) = %s, want %s", tt.obj, got[len("prefix"):], tt.want)
		}
	}
}
