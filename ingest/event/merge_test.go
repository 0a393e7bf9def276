package event

import (
	"bytes"
	"encoding/json"
	"reflect"
	"testing"
)

// mergeOracle is AppendMerged decoded: b's members, then a's over them
// (duplicates: the last wins, as in encoding/json).
func mergeOracle(t testing.TB, a, b []byte) map[string]any {
	m := map[string]any{}
	for _, o := range [][]byte{b, a} {
		var d map[string]any
		if IsObject(o) {
			d = decodeObject(t, o)
		}
		for k, v := range d {
			m[k] = v
		}
	}
	return m
}

// decodeObject decodes the valid JSON object o, numbers as their text:
// JSON allows numbers that no float64 holds (1e400, 400 sevens).
func decodeObject(t testing.TB, o []byte) map[string]any {
	t.Helper()
	var d map[string]any
	dec := json.NewDecoder(bytes.NewReader(o))
	dec.UseNumber()
	if err := dec.Decode(&d); err != nil {
		t.Fatalf("%q: %v", o, err)
	}
	return d
}

func TestAppendMerged(t *testing.T) {
	cases := []struct{ a, b, want string }{
		{`{"ip":"1.2.3.4","library":{"name":"own"}}`, `{"library":{"name":"go"},"locale":"en"}`, `{"ip":"1.2.3.4","library":{"name":"own"},"locale":"en"}`},
		{``, `{"x":1}`, `{"x":1}`},
		{`null`, `{"x":1}`, `{"x":1}`},
		{`{"x":1}`, ``, `{"x":1}`},
		{`{}`, `{}`, `{}`},
		{` { "a" : [1,{"b":"}"}] , "c":"\"" } `, `{"\u0061":2,"d":true}`, `{"a":[1,{"b":"}"}],"c":"\"","d":true}`},
		{`{"\u0061":1}`, `{"a":2,"\u0062":3}`, `{"\u0061":1,"\u0062":3}`},
	}
	for _, c := range cases {
		got := AppendMerged([]byte("pre"), []byte(c.a), []byte(c.b))
		if string(got) != "pre"+c.want {
			t.Errorf("AppendMerged(%s, %s) = %s, want %s", c.a, c.b, got[3:], c.want)
		}
	}
}

func TestRawAndMembers(t *testing.T) {
	obj := []byte(`{"type":"track","context":{"a":1},"n":null,"type":"page","\u0074ype2":[1]}`)
	if v, ok := Raw(obj, "type"); !ok || string(v) != `"page"` {
		t.Errorf("Raw type = %s %v", v, ok)
	}
	if v, ok := Raw(obj, "n"); !ok || string(v) != `null` {
		t.Errorf("Raw n = %s %v", v, ok)
	}
	if v, ok := Raw(obj, "type2"); !ok || string(v) != `[1]` {
		t.Errorf("Raw type2 = %s %v", v, ok)
	}
	if _, ok := Raw(obj, "missing"); ok {
		t.Error("Raw found a missing member")
	}
	got, n := AppendMembers(nil, obj, []string{"type", "context"}, 0)
	if string(got) != `"n":null,"\u0074ype2":[1]` || n != 2 {
		t.Errorf("AppendMembers = %s, %d", got, n)
	}
	if CountMembers(obj) != 5 || CountMembers([]byte(`[]`)) != 0 {
		t.Errorf("CountMembers %d", CountMembers(obj))
	}
}

// FuzzAppendMerged: for any two valid objects, the merge is valid JSON and
// decodes to the oracle's merge.
func FuzzAppendMerged(f *testing.F) {
	f.Add([]byte(`{"ip":"1.2.3.4","library":{"name":"own"}}`), []byte(`{"library":{"name":"go"},"locale":"en"}`))
	f.Add([]byte(`{"\u0061":1,"a":2}`), []byte(`{"a":3,"b":[{"a":1}]}`))
	f.Add([]byte(`{}`), []byte(`{"x":"\ud83d\ude00"}`))
	f.Fuzz(func(t *testing.T, a, b []byte) {
		if _, err := ValidateObject(a, Limits{}); err != nil {
			a = nil
		}
		if _, err := ValidateObject(b, Limits{}); err != nil {
			b = nil
		}
		out := AppendMerged(nil, a, b)
		if _, err := ValidateObject(out, Limits{}); err != nil {
			t.Fatalf("AppendMerged(%q, %q) = %q: %v", a, b, out, err)
		}
		got := decodeObject(t, out)
		if want := mergeOracle(t, a, b); !reflect.DeepEqual(got, want) {
			t.Fatalf("AppendMerged(%q, %q) = %q, want %v", a, b, out, want)
		}
	})
}
