package form

import (
	"bytes"
	"errors"
	"net/url"
	"slices"
	"testing"
	"unicode/utf8"
	"unsafe"

	"github.com/beacongate/beacongate/ingest/record"
)

// FuzzParse checks Parse never panics, keeps its results inside scratch,
// and agrees with net/url.ParseQuery wherever the two should agree (inputs
// without ';', which url rejects and Parse treats as data).
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"", "a=1&b=2", "a=%", "%4", "a=%zz", "a=%C3%28", "a=%00", "a=b=c&&d",
		"u=https%3A%2F%2Fexample.com%2Fp%3Fq%3D1&x=a+b", "a;b=1", "\xff=1", "=&=",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		const maxParams = 32
		prefix := []byte("PREFIX")
		scratch := append(make([]byte, 0, 16), prefix...)
		dst := make([]record.Param, 1, 4)
		got, sc, err := Parse(dst, scratch, raw, Limits{MaxParams: maxParams})

		if err != nil {
			var fe *Error
			if !errors.As(err, &fe) || fe.Reason() == "" || fe.Offset < 0 || fe.Offset > len(raw) {
				t.Fatalf("bad error %#v", err)
			}
			if len(got) != 1 || len(sc) != len(prefix) || !bytes.Equal(sc, prefix) {
				t.Fatalf("error did not return the inputs: %d params, scratch %q", len(got), sc)
			}
		} else {
			if len(sc) > len(prefix)+len(raw) || !bytes.Equal(sc[:len(prefix)], prefix) {
				t.Fatalf("scratch grew wrongly: len %d for raw %d", len(sc), len(raw))
			}
			for _, p := range got[1:] {
				if !within(p.Name, sc[len(prefix):]) || !within(p.Value, sc[len(prefix):]) {
					t.Fatalf("param %q=%q not inside scratch", p.Name, p.Value)
				}
				if !utf8.Valid(p.Name) || !utf8.Valid(p.Value) || bytes.IndexByte(p.Name, 0) >= 0 || bytes.IndexByte(p.Value, 0) >= 0 {
					t.Fatalf("accepted bad param %q=%q", p.Name, p.Value)
				}
			}
			if len(got)-1 > maxParams {
				t.Fatalf("accepted %d params", len(got)-1)
			}
		}

		if bytes.IndexByte(raw, ';') >= 0 || bytes.Count(raw, []byte("&")) >= 10000 {
			return
		}
		want, uerr := url.ParseQuery(string(raw))
		switch {
		case uerr != nil:
			if err == nil {
				t.Fatalf("url rejects %q (%v) but Parse accepts", raw, uerr)
			}
		case err != nil:
			if errors.Is(err, ErrBadEscape) {
				t.Fatalf("Parse says bad escape, url accepts %q", raw)
			}
			if countParams(want) <= maxParams && allClean(want) {
				t.Fatalf("Parse rejects %q (%v) but url accepts clean params", raw, err)
			}
		default:
			grouped := url.Values{}
			for _, p := range got[1:] {
				grouped[string(p.Name)] = append(grouped[string(p.Name)], string(p.Value))
			}
			if len(grouped) != len(want) {
				t.Fatalf("got %q, url %q", grouped, want)
			}
			for k, vs := range want {
				if !slices.Equal(vs, grouped[k]) {
					t.Fatalf("key %q: got %q, url %q", k, grouped[k], vs)
				}
			}
		}
	})
}

// within reports whether s lies inside buf's memory. An empty s always
// does: Go points a zero-capacity slice at its array's base.
func within(s, buf []byte) bool {
	if len(s) == 0 {
		return true
	}
	b0 := uintptr(unsafe.Pointer(unsafe.SliceData(buf)))
	p := uintptr(unsafe.Pointer(unsafe.SliceData(s)))
	return p >= b0 && p+uintptr(len(s)) <= b0+uintptr(len(buf))
}

func countParams(v url.Values) int {
	n := 0
	for _, vs := range v {
		n += len(vs)
	}
	return n
}

func allClean(v url.Values) bool {
	clean := func(s string) bool { return utf8.ValidString(s) && !bytes.Contains([]byte(s), []byte{0}) }
	for k, vs := range v {
		if !clean(k) {
			return false
		}
		for _, s := range vs {
			if !clean(s) {
				return false
			}
		}
	}
	return true
}
