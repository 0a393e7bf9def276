package event

import (
	"strings"
	"testing"
)

func TestRawField(t *testing.T) {
	obj := []byte(`{"a":1,"d\u0061ta":[{"x":"]"}],"s":"q\"","o":{"data":2},"a":"last"}`)
	for name, want := range map[string]string{"a": `"last"`, "data": `[{"x":"]"}]`, "s": `"q\""`, "o": `{"data":2}`} {
		if got, ok := RawField(obj, name); !ok || string(got) != want {
			t.Errorf("%s: %q %v, want %q", name, got, ok, want)
		}
	}
	for _, bad := range []string{`{"a":1}`, `[1]`, `{"a":`, ``, `{"data"}`} {
		if _, ok := RawField([]byte(bad), "data"); ok {
			t.Errorf("%q: found data", bad)
		}
	}
}

func TestAppendParams(t *testing.T) {
	ps, _, bad := AppendParams(nil, nil, []byte(` { "a" : "x\ty" , "n":-1.5e3,"t":true,"f":false,"z":null,"\u00e9":"\ud83d\ude00" } `))
	var got []string
	for _, p := range ps {
		got = append(got, string(p.Name)+"="+string(p.Value))
	}
	if bad != -1 || strings.Join(got, "&") != "a=x\ty&n=-1.5e3&t=true&f=false&é=😀" {
		t.Errorf("%q bad %d", got, bad)
	}
	obj := `{"a":"1","b":{"c":2},"d":"3"}`
	ps, _, bad = AppendParams(nil, nil, []byte(obj))
	if bad != strings.Index(obj, "{\"c") || len(ps) != 1 {
		t.Errorf("object value: bad %d, %d params", bad, len(ps))
	}
	if _, _, bad := AppendParams(nil, nil, []byte(`{"a":[]}`)); bad != 5 {
		t.Errorf("array value: bad %d", bad)
	}
}

func TestRawFields(t *testing.T) {
	vals := make([][]byte, 3)
	vals[2] = []byte("stale")
	if !RawFields([]byte(`{"schema":"s","x":1,"data":[1,"]"],"schema":"t"}`), []string{"schema", "data", "none"}, vals) {
		t.Fatal("valid object refused")
	}
	if string(vals[0]) != `"t"` || string(vals[1]) != `[1,"]"]` || vals[2] != nil {
		t.Errorf("%q", vals)
	}
	if RawFields([]byte(`{"schema":`), []string{"schema"}, vals[:1]) {
		t.Error("truncated object accepted")
	}
}
