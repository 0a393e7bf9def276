package form

import (
	"errors"
	"strings"
	"testing"

	"github.com/beacongate/beacongate/ingest/record"
)

type pair struct{ name, value string }

func pairs(ps []record.Param) []pair {
	out := []pair{}
	for _, p := range ps {
		out = append(out, pair{string(p.Name), string(p.Value)})
	}
	return out
}

func TestParse(t *testing.T) {
	many := strings.Repeat("a=1&", 256)
	tests := []struct {
		name   string
		raw    string
		lim    Limits
		want   []pair
		reason string // "" = success
		offset int
	}{
		{name: "empty", raw: "", want: []pair{}},
		{name: "only ampersands", raw: "&&&", want: []pair{}},
		{name: "simple", raw: "a=1&b=2", want: []pair{{"a", "1"}, {"b", "2"}}},
		{name: "empty segments", raw: "&a=1&&b=2&", want: []pair{{"a", "1"}, {"b", "2"}}},
		{name: "no equals", raw: "flag&x=", want: []pair{{"flag", ""}, {"x", ""}}},
		{name: "empty name", raw: "=v&=", want: []pair{{"", "v"}, {"", ""}}},
		{name: "first equals splits", raw: "a=b=c", want: []pair{{"a", "b=c"}}},
		{name: "duplicates kept in order", raw: "k=1&j=0&k=2", want: []pair{{"k", "1"}, {"j", "0"}, {"k", "2"}}},
		{name: "plus is space", raw: "q=a+b&c+d=e", want: []pair{{"q", "a b"}, {"c d", "e"}}},
		{name: "escaped plus", raw: "q=a%2Bb", want: []pair{{"q", "a+b"}}},
		{name: "hex either case", raw: "u=https%3a%2F%2fx.example%2F", want: []pair{{"u", "https://x.example/"}}},
		{name: "escaped separators", raw: "a=%26%3D&b", want: []pair{{"a", "&="}, {"b", ""}}},
		{name: "semicolon is data", raw: "a=1;b=2", want: []pair{{"a", "1;b=2"}}},
		{name: "utf8", raw: "n=%C3%A9t%C3%A9&%E2%82%AC=1", want: []pair{{"n", "été"}, {"€", "1"}}},
		{name: "raw utf8", raw: "n=été", want: []pair{{"n", "été"}}},
		{name: "exactly max", raw: many, want: func() []pair {
			p := make([]pair, 256)
			for i := range p {
				p[i] = pair{"a", "1"}
			}
			return p
		}()},
		{name: "custom max", raw: "a&b&c", lim: Limits{MaxParams: 3}, want: []pair{{"a", ""}, {"b", ""}, {"c", ""}}},

		{name: "lone percent", raw: "a=%", reason: "bad_escape", offset: 2},
		{name: "one digit", raw: "a=%4", reason: "bad_escape", offset: 2},
		{name: "non hex", raw: "x=1&a=%zz", reason: "bad_escape", offset: 6},
		{name: "half hex", raw: "a=%4g", reason: "bad_escape", offset: 2},
		{name: "percent in name", raw: "%=1", reason: "bad_escape", offset: 0},
		{name: "percent before amp", raw: "a=%&b", reason: "bad_escape", offset: 2},
		{name: "invalid utf8", raw: "a=%C3%28", reason: "invalid_utf8", offset: 2},
		{name: "invalid utf8 later", raw: "a=ok%C3%28", reason: "invalid_utf8", offset: 4},
		{name: "raw invalid utf8 name", raw: "a\xff=1", reason: "invalid_utf8", offset: 1},
		{name: "truncated utf8", raw: "a=%E2%82", reason: "invalid_utf8", offset: 2},
		{name: "surrogate utf8", raw: "a=%ED%A0%80", reason: "invalid_utf8", offset: 2},
		{name: "overlong utf8", raw: "a=%C0%AF", reason: "invalid_utf8", offset: 2},
		{name: "nul escaped", raw: "a=x%00", reason: "nul_byte", offset: 3},
		{name: "nul raw name", raw: "b=1&a\x00=1", reason: "nul_byte", offset: 5},
		{name: "too many", raw: many + "a=1", reason: "too_many_params", offset: 1024},
		{name: "too many custom", raw: "a&b&c&d", lim: Limits{MaxParams: 3}, reason: "too_many_params", offset: 6},
		{name: "ten thousand", raw: strings.Repeat("p=v&", 10000), reason: "too_many_params", offset: 1024},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dst := []record.Param{{Name: []byte("keep"), Value: []byte("me")}}
			scratch := []byte("prefix")
			got, sc, err := Parse(dst, scratch, []byte(tt.raw), tt.lim)
			if tt.reason != "" {
				var fe *Error
				if !errors.As(err, &fe) {
					t.Fatalf("err = %v, want *Error %s", err, tt.reason)
				}
				if fe.Reason() != tt.reason || fe.Offset != tt.offset {
					t.Fatalf("err = %v (reason %s offset %d), want %s at %d", err, fe.Reason(), fe.Offset, tt.reason, tt.offset)
				}
				if len(got) != 1 || string(sc) != "prefix" {
					t.Fatalf("on error got %d params, scratch %q; want inputs back", len(got), sc)
				}
				return
			}
			if err != nil {
				t.Fatalf("unexpected error %v", err)
			}
			if string(got[0].Name) != "keep" || string(sc[:6]) != "prefix" {
				t.Fatalf("existing contents clobbered")
			}
			if p := pairs(got[1:]); !equalPairs(p, tt.want) {
				t.Fatalf("got %q, want %q", p, tt.want)
			}
			for _, p := range got[1:] {
				if p.Value == nil || cap(p.Name) != len(p.Name) || cap(p.Value) != len(p.Value) {
					t.Fatalf("param %q: nil value or capacity not clipped", p.Name)
				}
			}
		})
	}
}

func equalPairs(a, b []pair) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestParseHugeValue(t *testing.T) {
	v := strings.Repeat("%41", 1<<20) + strings.Repeat("z", 1<<20)
	got, _, err := Parse(nil, nil, []byte("big="+v+"&x=1"), Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || len(got[0].Value) != 2<<20 || got[0].Value[0] != 'A' || got[0].Value[len(got[0].Value)-1] != 'z' {
		t.Fatalf("huge value mangled: %d params", len(got))
	}
}

func TestParseScratchGrowsOnce(t *testing.T) {
	raw := []byte("a=1&b=%41%42&c")
	// Too small: Parse must grow it and keep earlier params valid.
	scratch := make([]byte, 2, 3)
	copy(scratch, "zz")
	dst, sc, err := Parse(nil, scratch, raw, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if string(sc[:2]) != "zz" || len(sc) > 2+len(raw) {
		t.Fatalf("scratch = %q", sc)
	}
	// A second call appends after the first call's bytes.
	dst, sc, err = Parse(dst, sc, []byte("d=4"), Limits{})
	if err != nil {
		t.Fatal(err)
	}
	want := []pair{{"a", "1"}, {"b", "AB"}, {"c", ""}, {"d", "4"}}
	if p := pairs(dst); !equalPairs(p, want) {
		t.Fatalf("got %q, want %q (scratch %q)", p, want, sc)
	}
}

func TestErrors(t *testing.T) {
	_, _, err := Parse(nil, nil, []byte("a=%zz"), Limits{})
	if !errors.Is(err, ErrBadEscape) || errors.Is(err, ErrInvalidUTF8) {
		t.Fatalf("errors.Is mismatch for %v", err)
	}
	if got, want := err.Error(), "form: malformed percent-escape at byte 2"; got != want {
		t.Fatalf("Error() = %q, want %q", got, want)
	}
	_, _, err = Parse(nil, nil, []byte("a=%C3%28"), Limits{})
	if got, want := err.Error(), "form: invalid UTF-8 in parameter value at byte 2"; got != want {
		t.Fatalf("Error() = %q, want %q", got, want)
	}
	_, _, err = Parse(nil, nil, []byte("a&b"), Limits{MaxParams: 1})
	if got, want := err.Error(), "form: too many parameters (limit 1) at byte 2"; got != want {
		t.Fatalf("Error() = %q, want %q", got, want)
	}
	for _, s := range []*Error{ErrBadEscape, ErrInvalidUTF8, ErrNULByte, ErrTooManyParams} {
		var r interface{ Reason() string } = s
		if r.Reason() == "" || !errors.Is(s, s) {
			t.Fatalf("sentinel %v broken", s)
		}
	}
}

func TestGet(t *testing.T) {
	ps, _, err := Parse(nil, nil, []byte("a=1&b&a=2&c=3"), Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if v := Get(ps, "a"); string(v) != "1" {
		t.Fatalf("Get a = %q", v)
	}
	if v := Get(ps, "b"); v == nil || len(v) != 0 {
		t.Fatalf("Get b = %#v, want empty non-nil", v)
	}
	if v := Get(ps, "zz"); v != nil {
		t.Fatalf("Get zz = %q, want nil", v)
	}
	if v := Get(nil, ""); v != nil {
		t.Fatalf("Get on nil = %q", v)
	}
}
